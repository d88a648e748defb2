//! Incidents: triggered → acknowledged → resolved, with escalation tracks,
//! roles and a timeline of every change with who and when.

use crate::event::Severity;
use crate::oncall::Urgency;
use crate::time::Millis;
use crate::timer::TimerSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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

/// One escalation running on an incident: the service's policy (track 0),
/// or a responder request. A `User` track pages one user once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub assignee: Assignee,
    /// Level now paging (0-based) and completed repeats of the policy.
    pub level: u32,
    pub repeat: u32,
    /// Every level and repeat passed (the fallback, if any, was paged).
    pub done: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignee {
    Policy(String),
    User(String),
}

impl Track {
    pub fn new(assignee: Assignee) -> Track {
        Track {
            assignee,
            level: 0,
            repeat: 0,
            done: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Commander,
    Liaison,
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
    /// Acknowledge by this instant (from the service's tier).
    pub ack_due: Option<Millis>,
    pub snoozed_until: Option<Millis>,
    /// Resolved as a duplicate of this incident.
    pub merged_into: Option<IncidentId>,
    pub commander: String,
    pub liaison: String,
    /// Track 0 is the service's policy (or the reassignment); others are responders.
    pub tracks: Vec<Track>,
    /// Triggers folded into this incident after the first.
    pub folded: u64,
    /// Deliveries of this incident, in creation order.
    pub deliveries: Vec<u64>,
    /// Timers of this incident still pending, so actions can cancel them.
    pub timers: TimerSet,
    pub timeline: Vec<TimelineEntry>,
    /// Log index of the last change (the last timeline entry): watchers
    /// resume from a revision and get every incident changed after it.
    #[serde(default)]
    pub revision: u64,
}

/// Where and when a change happened: the log index of the command and its instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub index: u64,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    /// Who made the change: a user, "api", "event from <source>", or "pagerd".
    #[serde(default)]
    pub by: String,
    pub what: String,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status != IncidentStatus::Resolved
    }

    /// Level and repeat of the primary track, for display.
    pub fn escalation(&self) -> (u32, u32) {
        self.tracks
            .first()
            .map(|t| (t.level, t.repeat))
            .unwrap_or((0, 0))
    }

    /// Record a change: every change to an incident goes through here.
    pub(crate) fn note(&mut self, stamp: Stamp, by: &str, what: impl Into<String>) {
        self.revision = stamp.index;
        // Most incidents keep a handful of entries: grow one at a time up to four instead of
        // jumping to four (224 bytes) at the first, then double as usual.
        if self.timeline.len() < 4 {
            self.timeline.reserve_exact(1);
        }
        self.timeline.push(TimelineEntry {
            at: stamp.at,
            by: by.to_string(),
            what: what.into(),
        });
    }
}
