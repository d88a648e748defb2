//! Incidents: triggered → acknowledged → resolved, with a timeline.

use crate::event::Severity;
use crate::oncall::Urgency;
use crate::time::Millis;
use crate::timer::TimerKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub type IncidentId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Triggered => "triggered",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub service: String,
    pub dedup_key: String,
    pub summary: String,
    pub source: String,
    pub severity: Severity,
    pub urgency: Urgency,
    pub runbook_url: String,
    pub custom_details: BTreeMap<String, String>,
    pub status: IncidentStatus,
    pub created_at: Millis,
    pub acknowledged_at: Option<Millis>,
    pub acknowledged_by: String,
    pub resolved_at: Option<Millis>,
    pub resolved_by: String,
    /// The escalation policy as it was named when the incident opened.
    pub policy: String,
    /// Level now paging (0-based) and how many times the policy has repeated.
    pub level: u32,
    pub repeat: u32,
    /// Triggers folded into this incident after the first.
    pub folded: u64,
    /// Deliveries of this incident, in creation order.
    pub deliveries: Vec<u64>,
    /// Timers of this incident still pending, so acknowledge can cancel them.
    pub timers: BTreeSet<TimerKey>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    pub what: String,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status != IncidentStatus::Resolved
    }

    pub(crate) fn note(&mut self, at: Millis, what: impl Into<String>) {
        self.timeline.push(TimelineEntry {
            at,
            what: what.into(),
        });
    }
}
