//! `pagerctl webhook deliveries|replay`: the events posted to the on-call
//! document's webhook subscriptions, and a dead one sent again.

use clap::Subcommand;
use pager_proto::pager::v1::{
    webhooks_client::WebhooksClient, ListWebhookEventsRequest, ReplayWebhookRequest, WebhookEvent,
};
use serde_json::json;

use crate::client::Client;
use crate::output::{text, timestamp, Align, Printer, Table};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Webhook events, newest first: each one's status, attempts and last error.
    Deliveries {
        /// Only this subscription's.
        #[arg(long)]
        subscription: Option<String>,
        /// Only events in this status ("dead": the dead-letter list).
        #[arg(long, value_parser = ["queued", "sending", "delivered", "dead"])]
        status: Option<String>,
        /// Shorthand for --status dead.
        #[arg(long, conflicts_with = "status")]
        dead: bool,
        /// Only this incident's.
        #[arg(long)]
        incident: Option<u64>,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Send a dead event again (same webhook-id, a new 24 hours of retries).
    Replay {
        /// The event's id (`pagerctl webhook deliveries --dead`).
        id: u64,
    },
}

pub async fn run(client: &Client, out: &Printer, cmd: WebhookCommand) -> anyhow::Result<()> {
    match cmd {
        WebhookCommand::Deliveries {
            subscription,
            status,
            dead,
            incident,
            limit,
        } => {
            let req = ListWebhookEventsRequest {
                subscription: subscription.unwrap_or_default(),
                status: if dead {
                    "dead".into()
                } else {
                    status.unwrap_or_default()
                },
                incident_id: incident.unwrap_or(0),
                limit: limit.unwrap_or(0),
                consistency: None,
            };
            let r = client
                .call(&req, |ch, req| async move {
                    WebhooksClient::new(ch).list_events(req).await
                })
                .await?;
            out.emit(
                || render(&r.events),
                || json!({ "events": r.events.iter().map(event_json).collect::<Vec<_>>(), "applied_index": r.applied_index }),
            )
        }
        WebhookCommand::Replay { id } => {
            let r = client
                .call(
                    &ReplayWebhookRequest {
                        event_id: id,
                        by: String::new(),
                    },
                    |ch, req| async move { WebhooksClient::new(ch).replay(req).await },
                )
                .await?;
            out.emit(
                || format!("event {id} queued again\n"),
                || json!({ "replayed": id, "commit_index": r.commit_index }),
            )
        }
    }
}

fn render(events: &[WebhookEvent]) -> String {
    if events.is_empty() {
        return "no webhook events\n".into();
    }
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("SUBSCRIPTION", Align::Left),
        ("INCIDENT", Align::Right),
        ("TYPE", Align::Left),
        ("AT", Align::Left),
        ("STATUS", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("ERROR", Align::Left),
    ]);
    for e in events {
        table.row(vec![
            e.id.to_string(),
            text(&e.subscription),
            e.incident_id.to_string(),
            e.r#type.clone(),
            timestamp(e.at_ms),
            e.status.clone(),
            e.attempts.to_string(),
            text(&e.error),
        ]);
    }
    table.render()
}

fn event_json(e: &WebhookEvent) -> serde_json::Value {
    json!({
        "id": e.id,
        "message_id": e.message_id,
        "subscription": e.subscription,
        "incident_id": e.incident_id,
        "type": e.r#type,
        "at_ms": e.at_ms,
        "status": e.status,
        "attempts": e.attempts,
        "error": e.error,
        "settled_at_ms": e.settled_at_ms,
        "replays": e.replays,
        "by": e.by,
    })
}
