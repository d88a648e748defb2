//! `Webhooks`: the events posted to the document's subscriptions, and the
//! replay of a dead one. Reads come from this node's replica (with the
//! request's consistency); a replay is a command through the leader.

use super::{by_or_api, Api};
use crate::error::NodeError;
use pager_core::webhook::HookEvent;
use pager_core::{Command, TokenRole};
use pager_proto::pager::v1 as pb;
use tonic::{Request, Response, Status};

const STATUSES: [&str; 4] = ["queued", "sending", "delivered", "dead"];
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

/// The wire form of an event.
pub fn event_to_pb(e: &HookEvent) -> pb::WebhookEvent {
    pb::WebhookEvent {
        id: e.id,
        message_id: e.message_id(),
        subscription: e.subscription.clone(),
        incident_id: e.incident,
        r#type: e.kind.event_type().into(),
        at_ms: e.at,
        status: e.state.as_str().into(),
        attempts: e.attempts,
        error: e.error.clone(),
        settled_at_ms: e.settled_at.unwrap_or(0),
        replays: e.replays,
        by: e.by.clone(),
    }
}

#[tonic::async_trait]
impl pb::webhooks_server::Webhooks for Api {
    async fn list_events(
        &self,
        req: Request<pb::ListWebhookEventsRequest>,
    ) -> Result<Response<pb::ListWebhookEventsResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        if !req.status.is_empty() && !STATUSES.contains(&req.status.as_str()) {
            return Err(NodeError::invalid(
                "status",
                format!("{:?} is not one of {}", req.status, STATUSES.join(", ")),
            )
            .into());
        }
        let limit = match req.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        } as usize;
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        let (events, applied_index) = self.node.read(|s| {
            let events = s
                .hook_events
                .values()
                .rev()
                .filter(|e| req.subscription.is_empty() || e.subscription == req.subscription)
                .filter(|e| req.status.is_empty() || e.state.as_str() == req.status)
                .filter(|e| req.incident_id == 0 || e.incident == req.incident_id)
                .take(limit)
                .map(event_to_pb)
                .collect();
            (events, s.last_applied.index)
        });
        Ok(Response::new(pb::ListWebhookEventsResponse {
            events,
            applied_index,
        }))
    }

    async fn replay(
        &self,
        req: Request<pb::ReplayWebhookRequest>,
    ) -> Result<Response<pb::ReplayWebhookResponse>, Status> {
        let caller = self.authorize(&req, TokenRole::Admin)?;
        let req = req.into_inner();
        let by = if req.by.trim().is_empty() {
            by_or_api(caller)
        } else {
            req.by
        };
        let commit_index = self
            .commit(Command::ReplayWebhook {
                at: 0,
                event: req.event_id,
                by,
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => Status::not_found(format!(
                    "event_id: webhook event {} is not kept",
                    req.event_id
                )),
                _ => s,
            })?;
        Ok(Response::new(pb::ReplayWebhookResponse { commit_index }))
    }
}
