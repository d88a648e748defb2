//! Outbound webhooks: subscriptions (in the on-call document) to the events
//! of the incidents of some services or teams, each event a replicated
//! record delivered like a page.
//!
//! ```text
//!   incident changes ──► event (id, kind, what it said) ──► queue of
//!   (subscription, incident) ──► head sent, retried with backoff for 24 h
//!       ──► delivered, or dead (listed; replay puts it back at the tail)
//! ```
//!
//! One event of a (subscription, incident) is in flight at a time, so the
//! events of one incident arrive in order. An event's id is stable: it is
//! the `webhook-id` of every attempt and replay (receivers drop duplicates
//! by it, as the Standard Webhooks specification expects).

use crate::delivery::DeliveryId;
use crate::incident::IncidentId;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// How long an event is retried before it is dead.
pub const RETRY_WINDOW: Millis = 24 * 60 * 60 * 1_000;
/// Longest wait between two attempts.
pub const MAX_BACKOFF: Millis = 60 * 60 * 1_000;
/// Delivered events are kept this long (then compacted); dead ones until
/// replayed or [`DEAD_KEPT`].
pub const DELIVERED_KEPT: Millis = 7 * 24 * 60 * 60 * 1_000;
/// How long a dead event waits for a replay.
pub const DEAD_KEPT: Millis = 30 * 24 * 60 * 60 * 1_000;

/// A subscription: where to post, and to what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscription {
    /// The receiver, an absolute http(s) URL. Its signing secret is in the
    /// nodes' configuration (`[webhooks.secrets]`), never in the document.
    pub url: String,
    /// The incidents of these services...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// ... and of the services these teams own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// The kinds of event sent; empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<HookKind>,
}

impl WebhookSubscription {
    /// Whether the subscription takes `kind`.
    pub fn wants(&self, kind: HookKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// What happened to the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    /// Opened, or triggered again (an acknowledgement timed out).
    Triggered,
    /// Someone acknowledged it.
    Acknowledged,
    /// Its escalation moved to another level.
    Escalated,
    /// Resolved (or merged into another).
    Resolved,
    /// Someone added a note.
    NoteAdded,
    /// Its RCA changed status (mitigated, completed, duplicate).
    RcaChanged,
}

impl HookKind {
    /// The payload's `type`: `incident.acknowledged`.
    pub fn event_type(self) -> &'static str {
        match self {
            HookKind::Triggered => "incident.triggered",
            HookKind::Acknowledged => "incident.acknowledged",
            HookKind::Escalated => "incident.escalated",
            HookKind::Resolved => "incident.resolved",
            HookKind::NoteAdded => "incident.note_added",
            HookKind::RcaChanged => "incident.rca_changed",
        }
    }
}

/// Where an event is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookStatus {
    /// Behind an earlier event of its incident.
    #[default]
    Queued,
    /// Its delivery is pending or waiting for a retry.
    Sending,
    /// The receiver answered 2xx.
    Delivered,
    /// Failed for good, or for 24 h: listed, waiting for a replay.
    Dead,
}

impl HookStatus {
    /// The word used on the wire and by pagerctl.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::Queued => "queued",
            HookStatus::Sending => "sending",
            HookStatus::Delivered => "delivered",
            HookStatus::Dead => "dead",
        }
    }
}

/// One event for one subscription, and what it says (as it was when it
/// happened: every attempt sends the same body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEvent {
    /// Also the `webhook-id` (`msg_pagerd_ID`).
    pub id: u64,
    /// The subscription's name in the document.
    pub subscription: String,
    /// The incident it is about.
    pub incident: IncidentId,
    /// What happened.
    pub kind: HookKind,
    /// When it happened.
    pub at: Millis,
    /// Who did it (user, "api", "pagerd", the event source).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
    /// The incident's status then.
    pub status: String,
    /// Its service.
    pub service: String,
    /// Its summary.
    pub summary: String,
    /// Its urgency.
    pub urgency: String,
    /// Its escalation level then (1-based).
    pub level: u32,
    /// Its conference bridge then; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bridge_url: String,
    /// The note (`note_added`) or the RCA's status (`rca_changed`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Queued, sending, delivered or dead.
    pub state: HookStatus,
    /// The delivery of the current attempt series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryId>,
    /// Retried until this instant (24 h after it was first sent or replayed).
    #[serde(default)]
    pub retry_until: Millis,
    /// Attempts made, over every series.
    #[serde(default)]
    pub attempts: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// When it was delivered, or died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<Millis>,
    /// Times it was replayed.
    #[serde(default)]
    pub replays: u32,
}

impl HookEvent {
    /// The `webhook-id` of every attempt.
    pub fn message_id(&self) -> String {
        format!("msg_pagerd_{}", self.id)
    }
}

/// What the webhooks last saw of an incident, to tell what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookCursor {
    /// The incident's status.
    pub status: String,
    /// Its primary escalation's (level, repeat).
    pub level: (u32, u32),
    /// Timeline entries already looked at (for notes).
    pub seen: u32,
    /// Its RCA's status; empty without one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rca: String,
}

/// The wait before attempt `attempt + 1` of event `id`: doubling from 5 s,
/// at most an hour, spread by the id.
pub fn backoff(id: u64, attempt: u32) -> Millis {
    let base = 5_000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF);
    base + (id.wrapping_mul(7_919) % 1_000)
}
