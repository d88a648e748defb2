//! Events from alert sources, with PagerDuty Events API v2 semantics.

use crate::rejection::Rejection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// PagerDuty's limit on one event.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;
pub const MAX_SUMMARY_BYTES: usize = 1024;
pub const MAX_KEY_BYTES: usize = 255;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    #[default]
    Trigger,
    Acknowledge,
    Resolve,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "critical" => Some(Severity::Critical),
            "error" => Some(Severity::Error),
            "warning" => Some(Severity::Warning),
            "info" => Some(Severity::Info),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub routing_key: String,
    pub action: EventAction,
    /// Empty on a trigger means "generate one" (from the log index).
    pub dedup_key: String,
    pub summary: String,
    pub source: String,
    pub severity: Severity,
    pub component: String,
    pub group: String,
    pub class: String,
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
