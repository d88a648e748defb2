//! Events from alert sources, with PagerDuty Events API v2 semantics.

use crate::rejection::Rejection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// PagerDuty's limit on one event.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;
/// Longest summary of a trigger, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 1024;
/// Longest routing key or dedup key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;

/// What an event asks for (PagerDuty's `event_action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// Open an incident, or fold into the open one with the same dedup key (the default).
    #[default]
    Trigger,
    /// Acknowledge the open incident with this dedup key, if there is one.
    Acknowledge,
    /// Resolve the open incident with this dedup key, if there is one.
    Resolve,
}

/// How bad the source says the problem is; under `urgency = "severity"` it
/// decides the incident's urgency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The worst (the default); high urgency under the `severity` rule.
    #[default]
    Critical,
    /// High urgency under the `severity` rule.
    Error,
    /// Low urgency under the `severity` rule.
    Warning,
    /// Information only; low urgency under the `severity` rule.
    Info,
}

impl Severity {
    /// The severity with this lowercase name; None for any other text.
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "critical" => Some(Severity::Critical),
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }

    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// An event as an alert source sends it (the fields of a PagerDuty v2 event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The integration key it was sent with: it names the service that owns it.
    pub routing_key: String,
    /// Trigger, acknowledge or resolve.
    pub action: EventAction,
    /// Empty on a trigger means "generate one" (from the log index).
    pub dedup_key: String,
    /// What is wrong, in one line; required on a trigger (at most [`MAX_SUMMARY_BYTES`]).
    pub summary: String,
    /// Where the problem is (a host, a monitor), as the source names it.
    pub source: String,
    /// How bad the source says it is.
    pub severity: Severity,
    /// The affected part of the source (`postgres`).
    pub component: String,
    /// A logical grouping of components (`prod-datapipe`).
    pub group: String,
    /// The kind of event (`ping failure`, `cpu load`).
    pub class: String,
    /// Free-form details, copied to the incident and shown in email pages.
    pub custom_details: BTreeMap<String, String>,
}

impl Event {
    /// Bytes the event occupies, roughly as a client sent it.
    pub fn size(&self) -> usize {
        let fixed = [
            &self.routing_key,
            &self.dedup_key,
            &self.summary,
            &self.source,
            &self.component,
            &self.group,
            &self.class,
        ]
        .iter()
        .map(|s| s.len())
        .sum::<usize>();
        fixed
            + self
                .custom_details
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }

    /// Checks that need no state. Routing-key existence is checked by `apply`
    /// (and by the leader before proposing) against the live on-call config.
    pub fn validate(&self) -> Result<(), Rejection> {
        let invalid = |field: &str, reason: &str| Rejection::Invalid {
            field: field.into(),
            reason: reason.into(),
        };
        if self.routing_key.is_empty() {
            return Err(invalid("routing_key", "required"));
        }
        if self.routing_key.len() > MAX_KEY_BYTES {
            return Err(invalid("routing_key", "longer than 255 bytes"));
        }
        if self.dedup_key.len() > MAX_KEY_BYTES {
            return Err(invalid("dedup_key", "longer than 255 bytes"));
        }
        match self.action {
            EventAction::Trigger => {
                if self.summary.trim().is_empty() {
                    return Err(invalid("summary", "required on trigger"));
                }
                if self.summary.len() > MAX_SUMMARY_BYTES {
                    return Err(invalid("summary", "longer than 1024 bytes"));
                }
            }
            EventAction::Acknowledge | EventAction::Resolve => {
                if self.dedup_key.is_empty() {
                    return Err(invalid("dedup_key", "required on acknowledge and resolve"));
                }
            }
        }
        if self.size() > MAX_EVENT_BYTES {
            return Err(invalid("payload", "event larger than 512 KiB"));
        }
        Ok(())
    }
}
