//! The leader's webhook sends: one event ([`pager_core::webhook`]) to its
//! subscription's URL, signed as the Standard Webhooks specification
//! describes with the subscription's secret from this node's
//! `[webhooks.secrets]`. The body is built from the event record (what the
//! incident was when it happened), so every attempt and replay sends the same
//! body under the same `webhook-id`; only `webhook-timestamp` is new.
//!
//! A send left in doubt is simply sent again: the receiver drops a repeated
//! `webhook-id`, as the specification expects of it.

use crate::config::WebhookSettings;
use pager_core::delivery::Purpose;
use pager_core::webhook::HookEvent;
use pager_core::{ContactKind, Delivery, State};
use pager_outbound::{OutboundError, WebhookClient};
use serde_json::json;

/// One event to post.
#[derive(Debug, Clone)]
pub struct WebhookJob {
    pub delivery: u64,
    pub subscription: String,
    pub url: String,
    /// `webhook-id`.
    pub message_id: String,
    /// JSON, the same for every attempt.
    pub body: Vec<u8>,
}

/// The webhook job of delivery `d`, if it is one; `Err` (why) when its event
/// is gone.
pub fn build(state: &State, d: &Delivery, console: &str) -> Option<Result<WebhookJob, String>> {
    if d.method != ContactKind::Webhook {
        return None;
    }
    let Purpose::Webhook { event } = d.purpose else {
        return Some(Err("not a webhook event".into()));
    };
    let Some(e) = state.hook_events.get(&event) else {
        return Some(Err(format!("webhook event {event} is no longer kept")));
    };
    Some(Ok(WebhookJob {
        delivery: d.id,
        subscription: e.subscription.clone(),
        url: d.address.clone(),
        message_id: e.message_id(),
        body: body(e, console),
    }))
}

/// `{"type", "timestamp", "data"}`, the specification's suggested shape.
pub fn body(e: &HookEvent, console: &str) -> Vec<u8> {
    let timestamp = jiff::Timestamp::from_millisecond(e.at as i64)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut data = json!({
        "event_id": e.message_id(),
        "incident": {
            "id": e.incident,
            "service": e.service,
            "summary": e.summary,
            "status": e.status,
            "urgency": e.urgency,
            "escalation_level": e.level,
            "bridge_url": e.bridge_url,
            "url": format!("{console}/incidents/{}", e.incident),
        },
        "by": e.by,
    });
    match e.kind {
        pager_core::webhook::HookKind::NoteAdded => data["note"] = json!(e.detail),
        pager_core::webhook::HookKind::RcaChanged => data["rca_status"] = json!(e.detail),
        _ => {}
    }
    let body = json!({
        "type": e.kind.event_type(),
        "timestamp": timestamp,
        "data": data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Post it, signed; `Ok` is the receiver's status (the provider id recorded).
pub async fn send(
    client: &WebhookClient,
    settings: &WebhookSettings,
    job: &WebhookJob,
) -> Result<String, OutboundError> {
    let Some(secret) = settings.secrets.get(&job.subscription) else {
        return Err(OutboundError::permanent(format!(
            "no secret for webhook subscription {:?} in this node's [webhooks.secrets]",
            job.subscription
        )));
    };
    let now = jiff::Timestamp::now().as_second();
    let status = client
        .post(&job.url, &job.message_id, now, &job.body, secret)
        .await?;
    Ok(status.to_string())
}
