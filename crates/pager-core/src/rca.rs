//! After the page: the root cause analysis record every high-urgency
//! incident gets, and its card on the page board.
//!
//! ```text
//!   trigger ──► Open ──resolve──► Mitigated ──complete──► Completed
//!                 │                   │  (due: mitigated + tier's rca_due;
//!                 └──merge/duplicate──┴──► Duplicate   reminders daily)
//!
//!   card: new page → root cause analysis → follow-ups underway
//!         → follow-ups complete → complete (never with a repair item open)
//! ```
//!
//! The record outlives its incident: compaction forgets resolved incidents
//! after their retention, but an RCA that is not done, and its card, stay.

use crate::incident::IncidentId;
use crate::time::Millis;
use crate::timer::TimerKey;
use serde::{Deserialize, Serialize};

/// Whether the incidents of a service or tier need an RCA.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcaPolicy {
    /// A record, a due date after mitigation and reminders when it is overdue.
    Required,
    /// A record and a card, but no due date and no reminders (the default).
    #[default]
    Optional,
    /// No record and no card.
    Off,
}

impl RcaPolicy {
    /// The word used in documents and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RcaPolicy::Required => "required",
            RcaPolicy::Optional => "optional",
            RcaPolicy::Off => "off",
        }
    }
}

/// Where an RCA is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcaStatus {
    /// The incident is still open.
    Open,
    /// The incident is resolved: the clock runs.
    Mitigated,
    /// Written and complete.
    Completed,
    /// The incident was merged into another or marked a duplicate: no RCA needed.
    Duplicate,
}

impl RcaStatus {
    /// The word used on the wire and in the console.
    pub fn as_str(self) -> &'static str {
        match self {
            RcaStatus::Open => "open",
            RcaStatus::Mitigated => "mitigated",
            RcaStatus::Completed => "completed",
            RcaStatus::Duplicate => "duplicate",
        }
    }

    /// Nothing more is asked of anyone.
    pub fn is_done(self) -> bool {
        matches!(self, RcaStatus::Completed | RcaStatus::Duplicate)
    }
}

/// The five stages of a page on the board (seed 000).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The page arrived.
    #[default]
    New,
    /// Someone is finding out why.
    RootCause,
    /// Repair items are being worked on.
    FollowUpsUnderway,
    /// Every repair item is done.
    FollowUpsComplete,
    /// Off the board.
    Complete,
}

impl Stage {
    /// Every stage, in board order.
    pub const ALL: [Stage; 5] = [
        Stage::New,
        Stage::RootCause,
        Stage::FollowUpsUnderway,
        Stage::FollowUpsComplete,
        Stage::Complete,
    ];

    /// The word used on the wire and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::RootCause => "root_cause",
            Stage::FollowUpsUnderway => "follow_ups_underway",
            Stage::FollowUpsComplete => "follow_ups_complete",
            Stage::Complete => "complete",
        }
    }

    /// The stage a word names (`as_str`, or with dashes instead of underscores).
    pub fn parse(word: &str) -> Option<Stage> {
        let w = word.trim().to_ascii_lowercase().replace('-', "_");
        Stage::ALL.into_iter().find(|s| s.as_str() == w)
    }

    /// A column heading.
    pub fn title(self) -> &'static str {
        match self {
            Stage::New => "New page",
            Stage::RootCause => "Root cause analysis",
            Stage::FollowUpsUnderway => "Follow-ups underway",
            Stage::FollowUpsComplete => "Follow-ups complete",
            Stage::Complete => "Complete",
        }
    }
}

/// One thing to fix so the page does not come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairItem {
    /// What to do.
    pub title: String,
    /// Where it is tracked (a ticket); empty when nowhere yet.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link: String,
    /// Done.
    #[serde(default)]
    pub done: bool,
}

/// One line of an RCA's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcaLine {
    /// When, in milliseconds since the Unix epoch.
    pub at: Millis,
    /// What happened.
    pub what: String,
}

/// The written part of an RCA: the short form (`summary`, no customer
/// impact) or the full template (everything else).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcaText {
    /// Customers were affected: the full template is needed.
    #[serde(default)]
    pub customer_impact: bool,
    /// Lasting customer impact: a post-mortem meeting walks through the RCA.
    #[serde(default)]
    pub significant: bool,
    /// The short form, for issues without customer impact.
    #[serde(default)]
    pub summary: String,
    /// History of the incident (pre-filled from its timeline when first edited).
    #[serde(default)]
    pub timeline: Vec<RcaLine>,
    /// Who and what was affected, for how long.
    #[serde(default)]
    pub impact: String,
    /// What was investigated, and the root cause found.
    #[serde(default)]
    pub findings: String,
    /// What was done, by whom and when, to mitigate and to resolve.
    #[serde(default)]
    pub mitigation: String,
    /// What will be fixed.
    #[serde(default)]
    pub repairs: Vec<RepairItem>,
}

/// Longest free-text field of an RCA, in bytes.
pub const MAX_RCA_FIELD_BYTES: usize = 16 * 1024;
/// Most timeline lines or repair items on one RCA.
pub const MAX_RCA_ITEMS: usize = 200;

impl RcaText {
    /// The first field that is too long or has too many entries, with why.
    pub fn oversized(&self) -> Option<(&'static str, String)> {
        let fields = [
            ("summary", &self.summary),
            ("impact", &self.impact),
            ("findings", &self.findings),
            ("mitigation", &self.mitigation),
        ];
        for (name, text) in fields {
            if text.len() > MAX_RCA_FIELD_BYTES {
                return Some((name, format!("longer than {MAX_RCA_FIELD_BYTES} bytes")));
            }
        }
        if self.timeline.len() > MAX_RCA_ITEMS {
            return Some(("timeline", format!("more than {MAX_RCA_ITEMS} lines")));
        }
        if self.repairs.len() > MAX_RCA_ITEMS {
            return Some(("repairs", format!("more than {MAX_RCA_ITEMS} items")));
        }
        if let Some(i) = self.repairs.iter().position(|r| r.title.trim().is_empty()) {
            return Some(("repairs", format!("item {} has no title", i + 1)));
        }
        None
    }

    /// What completing still needs: the field missing, with why; `None` when
    /// it may be completed.
    pub fn missing(&self) -> Option<(&'static str, &'static str)> {
        if !self.customer_impact {
            if self.summary.trim().is_empty() && self.findings.trim().is_empty() {
                return Some((
                    "summary",
                    "a short summary is needed (or the full template when customers were affected)",
                ));
            }
            return None;
        }
        let needed = [
            (
                "timeline",
                self.timeline.is_empty(),
                "the timeline is empty",
            ),
            (
                "impact",
                self.impact.trim().is_empty(),
                "say what the impact was",
            ),
            (
                "findings",
                self.findings.trim().is_empty(),
                "say what was found and the root cause",
            ),
            (
                "mitigation",
                self.mitigation.trim().is_empty(),
                "say what was done, by whom and when",
            ),
        ];
        needed
            .into_iter()
            .find(|(_, missing, _)| *missing)
            .map(|(field, _, why)| (field, why))
    }

    /// Repair items still open.
    pub fn open_repairs(&self) -> usize {
        self.repairs.iter().filter(|r| !r.done).count()
    }
}

/// The RCA record of one incident, and its card on the board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rca {
    /// The incident it is about (which may since have been compacted).
    pub incident: IncidentId,
    /// Copied from the incident when it opened, so the record stands alone.
    pub service: String,
    /// The owning team of the service, when it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub team: String,
    /// The incident's summary.
    pub title: String,
    /// Required (due date and reminders) or optional.
    pub required: bool,
    /// Open, mitigated, completed or duplicate.
    pub status: RcaStatus,
    /// The user who writes it: whoever acknowledged the incident, before
    /// that the first user paged; empty when nobody was.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub assignee: String,
    /// When the incident opened.
    pub opened_at: Millis,
    /// When the incident was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigated_at: Option<Millis>,
    /// Complete by this instant (required RCAs, once mitigated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Millis>,
    /// When it was completed, and by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Millis>,
    /// Who completed it or marked it a duplicate.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub completed_by: String,
    /// A duplicate of this incident, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<IncidentId>,
    /// The written part; `None` until someone writes (most records, held
    /// for every high-urgency incident, are never written): read it with
    /// [`Rca::text`].
    #[serde(rename = "text", default, skip_serializing_if = "Option::is_none")]
    pub written: Option<Box<RcaText>>,
    /// The card's stage on the board.
    #[serde(default)]
    pub stage: Stage,
    /// When the card last moved (or was created).
    pub stage_since: Millis,
    /// Reminders sent while overdue.
    #[serde(default)]
    pub reminders: u32,
    /// The pending reminder timer, so completing cancels it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder: Option<TimerKey>,
    /// Log index of the last change.
    pub revision: u64,
}

/// What an RCA nobody wrote says.
static UNWRITTEN: RcaText = RcaText {
    customer_impact: false,
    significant: false,
    summary: String::new(),
    timeline: Vec::new(),
    impact: String::new(),
    findings: String::new(),
    mitigation: String::new(),
    repairs: Vec::new(),
};

impl Rca {
    /// The written part (empty until someone writes).
    pub fn text(&self) -> &RcaText {
        self.written.as_deref().unwrap_or(&UNWRITTEN)
    }

    /// Replace the written part (an empty one takes no room).
    pub fn set_text(&mut self, text: RcaText) {
        self.written = (text != UNWRITTEN).then(|| Box::new(text));
    }

    /// Needs writing and its due date has passed at `now`.
    pub fn overdue(&self, now: Millis) -> bool {
        !self.status.is_done() && self.due.is_some_and(|d| now >= d)
    }

    /// A post-mortem meeting should walk through it.
    pub fn postmortem_needed(&self) -> bool {
        self.text().customer_impact && self.text().significant
    }
}

/// A change to an RCA's written part; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcaEdit {
    /// See [`RcaText::customer_impact`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_impact: Option<bool>,
    /// See [`RcaText::significant`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub significant: Option<bool>,
    /// See [`RcaText::summary`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// See [`RcaText::timeline`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<RcaLine>>,
    /// See [`RcaText::impact`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    /// See [`RcaText::findings`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<String>,
    /// See [`RcaText::mitigation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
    /// See [`RcaText::repairs`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repairs: Option<Vec<RepairItem>>,
    /// A new assignee (a user of the document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Refuse the edit (field `revision`) unless the record is still at
    /// this revision: a form opened before someone else saved is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_revision: Option<u64>,
}

impl RcaEdit {
    /// The text with this edit applied.
    pub fn applied_to(&self, text: &RcaText) -> RcaText {
        let mut t = text.clone();
        if let Some(v) = self.customer_impact {
            t.customer_impact = v;
        }
        if let Some(v) = self.significant {
            t.significant = v;
        }
        let strings = [
            (&self.summary, &mut t.summary),
            (&self.impact, &mut t.impact),
            (&self.findings, &mut t.findings),
            (&self.mitigation, &mut t.mitigation),
        ];
        for (new, old) in strings {
            if let Some(v) = new {
                *old = v.clone();
            }
        }
        if let Some(v) = &self.timeline {
            t.timeline = v.clone();
        }
        if let Some(v) = &self.repairs {
            t.repairs = v.clone();
        }
        t
    }
}

/// Reminders of an overdue RCA: on the due date, then daily.
pub const REMINDER_EVERY: Millis = 24 * 3_600_000;
/// The team's admins are told too once it is this overdue.
pub const ADMINS_AFTER: Millis = 2 * 24 * 3_600_000;
/// An RCA is due this long after mitigation unless the tier says otherwise.
pub const DEFAULT_RCA_DUE: Millis = 3 * 24 * 3_600_000;
/// A card this long in one stage (not complete) is highlighted as stale.
pub const STALE_CARD: Millis = 7 * 24 * 3_600_000;
