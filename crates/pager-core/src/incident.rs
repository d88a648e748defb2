//! Incidents: triggered → acknowledged → resolved, with escalation tracks,
//! roles and a timeline of every change with who and when.

use crate::event::Severity;
use crate::oncall::Urgency;
use crate::time::Millis;
use crate::timer::TimerSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An incident's number, from 1 in opening order.
pub type IncidentId = u64;

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    /// Open and paging.
    Triggered,
    /// Open, and someone is on it: paging has stopped.
    Acknowledged,
    /// Closed: nothing pages for it and its dedup key is free again.
    Resolved,
}

impl IncidentStatus {
    /// The lowercase name, as serialized.
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
    /// The policy or user this track pages.
    pub assignee: Assignee,
    /// Level now paging (0-based) and completed repeats of the policy.
    pub level: u32,
    /// Completed repeats of the policy (0 on the first pass).
    pub repeat: u32,
    /// Every level and repeat passed (the fallback, if any, was paged).
    pub done: bool,
}

/// Who an escalation track pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignee {
    /// An escalation policy, by name, paged level by level.
    Policy(String),
    /// One user, by name, paged once.
    User(String),
}

impl Track {
    /// A track for `assignee` at its first level, on its first pass, not done.
    pub fn new(assignee: Assignee) -> Track {
        Track {
            assignee,
            level: 0,
            repeat: 0,
            done: false,
        }
    }
}

/// A role a user can hold on an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The incident commander, who leads the response.
    Commander,
    /// The communications liaison, who keeps others informed.
    Liaison,
}

/// One problem on one service: paged until someone acknowledges it, kept
/// until it is resolved (and compacted away some time after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The incident's number.
    pub id: IncidentId,
    /// The service it was opened on (a name in the document's `services`).
    pub service: String,
    /// While it is open, triggers with this key fold into it (generated when the
    /// first event had none).
    pub dedup_key: String,
    /// What is wrong, from the event that opened it.
    pub summary: String,
    /// Where the problem is, from the event that opened it.
    pub source: String,
    /// From the event that opened it, or as a routing rule re-rated it.
    pub severity: Severity,
    /// High or low: which notification rules of the paged users apply.
    pub urgency: Urgency,
    /// The runbook link, from a routing rule or the service; empty when none.
    pub runbook_url: String,
    /// Details from the event that opened it.
    pub custom_details: BTreeMap<String, String>,
    /// Triggered, acknowledged or resolved.
    pub status: IncidentStatus,
    /// When it opened, in milliseconds since the Unix epoch.
    pub created_at: Millis,
    /// When it was acknowledged, in milliseconds since the Unix epoch; cleared when
    /// it triggers again.
    pub acknowledged_at: Option<Millis>,
    /// Who acknowledged it; cleared when it triggers again.
    pub acknowledged_by: String,
    /// When it was resolved, in milliseconds since the Unix epoch.
    pub resolved_at: Option<Millis>,
    /// Who resolved it.
    pub resolved_by: String,
    /// Acknowledge by this instant (from the service's tier).
    pub ack_due: Option<Millis>,
    /// Acknowledged after `ack_due`, or resolved unacknowledged after it:
    /// the tier's SLA was breached (recorded once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sla_breached: bool,
    /// Snoozed at least once (a report counts it: the alert may be misconfigured).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snoozed: bool,
    /// While snoozed: when it triggers again, in milliseconds since the Unix epoch.
    pub snoozed_until: Option<Millis>,
    /// Resolved as a duplicate of this incident.
    pub merged_into: Option<IncidentId>,
    /// The incident commander's user name; empty when nobody holds the role.
    pub commander: String,
    /// The communications liaison's user name; empty when nobody holds the role.
    pub liaison: String,
    /// The conference bridge (an http(s) URL) the commander set; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bridge_url: String,
    /// Track 0 is the service's policy (or the reassignment); others are responders.
    pub tracks: Vec<Track>,
    /// Triggers folded into this incident after the first.
    pub folded: u64,
    /// Deliveries of this incident, in creation order.
    pub deliveries: Vec<u64>,
    /// Timers of this incident still pending, so actions can cancel them.
    pub timers: TimerSet,
    /// Every change, oldest first, with who made it and when.
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

/// One change to an incident: when, by whom, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When it happened, in milliseconds since the Unix epoch.
    pub at: Millis,
    /// Who made the change: a user, "api", "event from <source>", or "pagerd".
    #[serde(default)]
    pub by: String,
    /// What changed, in words (`acknowledged`, `paging level 2 (repeat 0): alice`).
    pub what: String,
}

impl Incident {
    /// Whether it is still open: triggered or acknowledged, not resolved.
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
