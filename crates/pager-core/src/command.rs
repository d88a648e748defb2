//! What goes into the log, what comes back to the proposer, and the effects a
//! runtime acts on.

use crate::delivery::{DeliveryId, PhoneAction};
use crate::event::Event;
use crate::incident::{Assignee, IncidentId, Role};
use crate::oncall::{ContactKind, OnCallDoc};
/// Re-exported where it has always been named: `command::Rejection`.
pub use crate::rejection::Rejection;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// A replicated command. Every `at` is stamped by the leader at proposal
/// (`max(wall clock, last applied at)`); `apply` never reads a clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Replace the on-call document (already validated; `apply` validates again).
    ApplyConfig { at: Millis, doc: Box<OnCallDoc> },
    /// An event from an alert source.
    Ingest { at: Millis, event: Box<Event> },
    Acknowledge {
        at: Millis,
        incident: IncidentId,
        by: String,
    },
    Resolve {
        at: Millis,
        incident: IncidentId,
        by: String,
    },
    /// Fire every timer due at `at`.
    Tick { at: Millis },
    /// The first command a leader *process* commits in its term, before it
    /// sends anything: every unsettled delivery is re-claimed for this term
    /// (an earlier leader, or an earlier process of this node in the same
    /// term after a fast restart, may have sent it: a possible duplicate,
    /// counted), then due timers fire as in `Tick`.
    ///
    /// `key_seed` (fresh random hex from the leader) becomes the cluster's
    /// key for signed links the first time one is committed.
    Takeover {
        at: Millis,
        #[serde(default)]
        key_seed: String,
    },
    /// Stop paging until `until`, then trigger again.
    Snooze {
        at: Millis,
        incident: IncidentId,
        until: Millis,
        by: String,
    },
    /// Replace the primary escalation with a user or a policy, from its first level.
    Reassign {
        at: Millis,
        incident: IncidentId,
        to: Assignee,
        by: String,
    },
    /// Page level `level` (1-based) of the primary escalation now.
    Escalate {
        at: Millis,
        incident: IncidentId,
        level: u32,
        by: String,
    },
    /// Page more people: each target is paged now, and a policy (or a team's
    /// policy) escalates on its own track if nobody answers.
    AddResponders {
        at: Millis,
        incident: IncidentId,
        targets: Vec<Responder>,
        by: String,
    },
    /// Resolve `incident` as a duplicate of `into`; later triggers with its
    /// dedup key fold into `into`.
    Merge {
        at: Millis,
        incident: IncidentId,
        into: IncidentId,
        by: String,
    },
    /// Set (or clear, with an empty user) the incident commander or liaison.
    SetRole {
        at: Millis,
        incident: IncidentId,
        role: Role,
        user: String,
        by: String,
    },
    AddNote {
        at: Millis,
        incident: IncidentId,
        text: String,
        by: String,
    },
    /// A heartbeat monitor pinged with its key.
    Heartbeat { at: Millis, key: String },
    /// A responder answered from their phone: an SMS reply (`4 123`, or a bare
    /// `4` for the latest page to that phone) or a keypress during a call.
    /// `from` must be the number the page went to.
    PhoneReply {
        at: Millis,
        from: String,
        via: ContactKind,
        /// The page's reply code (its delivery id); None: the latest page to `from`.
        delivery: Option<DeliveryId>,
        action: PhoneAction,
    },
    /// Twilio's status callback for the call of `attempt` of `delivery`.
    CallStatus {
        at: Millis,
        delivery: DeliveryId,
        attempt: u32,
        /// `initiated`, `ringing`, `in-progress`, `completed`, `busy`, `no-answer`, `failed`, `canceled`.
        status: String,
        /// `human`, `machine_start`, `machine_end_beep`, ... when machine detection ran.
        answered_by: String,
    },
    /// A contact method became unreachable (STOP) or reachable again (START).
    ContactHealth {
        at: Millis,
        method: ContactKind,
        address: String,
        reachable: bool,
        reason: String,
    },
    /// Add an override to a schedule: a new config version with it (the rest
    /// of the document unchanged), validated like any document.
    AddOverride {
        at: Millis,
        schedule: String,
        #[serde(rename = "override")]
        over: crate::schedule::Override,
        by: String,
    },
    /// Add an API token (its secret's digest; the secret is never logged).
    CreateToken {
        at: Millis,
        name: String,
        role: crate::auth::TokenRole,
        sha256: String,
        by: String,
    },
    RevokeToken {
        at: Millis,
        name: String,
        by: String,
    },
    /// What happened when the leader sent `attempt` of `delivery`.
    Outcome {
        at: Millis,
        delivery: DeliveryId,
        attempt: u32,
        result: SendResult,
    },
    /// Forget incidents resolved before `resolved_before`, with their
    /// deliveries, so the state (memory, snapshots) stays bounded. The leader
    /// proposes it for its retention setting; apply decides from the state
    /// alone.
    Compact { at: Millis, resolved_before: Millis },
}

/// `match` on every command's `at` field, listing the variants once.
macro_rules! each_at {
    ($cmd:expr, $at:ident => $body:expr) => {
        match $cmd {
            Command::ApplyConfig { $at, .. }
            | Command::Ingest { $at, .. }
            | Command::Acknowledge { $at, .. }
            | Command::Resolve { $at, .. }
            | Command::Tick { $at }
            | Command::Takeover { $at, .. }
            | Command::Snooze { $at, .. }
            | Command::Reassign { $at, .. }
            | Command::Escalate { $at, .. }
            | Command::AddResponders { $at, .. }
            | Command::Merge { $at, .. }
            | Command::SetRole { $at, .. }
            | Command::AddNote { $at, .. }
            | Command::Heartbeat { $at, .. }
            | Command::PhoneReply { $at, .. }
            | Command::CallStatus { $at, .. }
            | Command::ContactHealth { $at, .. }
            | Command::AddOverride { $at, .. }
            | Command::CreateToken { $at, .. }
            | Command::RevokeToken { $at, .. }
            | Command::Outcome { $at, .. }
            | Command::Compact { $at, .. } => $body,
        }
    };
}

impl Command {
    pub fn at(&self) -> Millis {
        each_at!(self, at => *at)
    }

    /// Set the instant; the leader calls this just before proposing.
    pub fn stamp(&mut self, now: Millis) {
        each_at!(self, at => *at = now)
    }
}

/// Who to add to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Responder {
    User(String),
    /// A team: its escalation policy when it has one, else all its members.
    Team(String),
    Policy(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendResult {
    Sent {
        provider_id: String,
        /// Not sent now: found at the provider, sent by an earlier leader.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reconciled: bool,
    },
    Failed {
        retryable: bool,
        /// The request may have reached the provider (timeout after sending):
        /// a retry may duplicate the page.
        #[serde(default)]
        in_doubt: bool,
        code: Option<i64>,
        message: String,
    },
}

/// The answer to the proposer of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Entries with no command (blank, membership) and commands with nothing to say.
    Noop,
    ConfigApplied {
        version: u64,
    },
    Event {
        /// None when an acknowledge/resolve matched no open incident.
        incident: Option<IncidentId>,
        dedup_key: String,
        /// A trigger that joined an open incident and paged nobody new.
        folded: bool,
    },
    Incident {
        id: IncidentId,
    },
    /// What `Compact` removed.
    Compacted {
        incidents: u64,
        deliveries: u64,
    },
    /// The answer to a phone: what happened, in words for an SMS or a voice.
    Reply {
        incident: Option<IncidentId>,
        message: String,
    },
    /// Nothing was applied.
    Rejected(Rejection),
}

/// What changed in an apply, for the runtime to act on: the one contract
/// between this crate and the daemon's leader loops (`pagerd::leader::effects`).
///
/// - `Deliver { delivery, term }` is emitted whenever a delivery becomes
///   pending for the leader of `term` (created, retried, or re-claimed by a
///   `Takeover`, which emits one for *every* unsettled delivery), and
///   `DeliverySent` / `DeliveryFailed` / `DeliveryCancelled` whenever one stops
///   being pending. So the deliveries a leader must send are exactly those its
///   own `Takeover` and the commands after it announced and did not settle.
/// - `WakeAt(t)` is emitted when the earliest deadline changed and is now `t`
///   (nothing when the last timer goes: the runtime reads
///   [`crate::State::next_deadline`] when it wakes).
///
/// Effects say what changed, never what it is now: a runtime reads the row
/// (the delivery to send, the deadline due) from the state when it acts.
/// Only the leader executes deliveries; every node may use the rest for logs
/// and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    IncidentOpened {
        incident: IncidentId,
    },
    IncidentFolded {
        incident: IncidentId,
    },
    IncidentAcknowledged {
        incident: IncidentId,
    },
    IncidentResolved {
        incident: IncidentId,
    },
    /// A snoozed or acknowledged incident was triggered again.
    IncidentRetriggered {
        incident: IncidentId,
    },
    Escalated {
        incident: IncidentId,
        level: u32,
        repeat: u32,
    },
    /// A delivery became sendable by the leader of `term`.
    Deliver {
        delivery: DeliveryId,
        term: u64,
    },
    /// A delivery another term claimed was re-claimed (its page may have gone
    /// out already: a possible duplicate).
    Reclaimed {
        delivery: DeliveryId,
        term: u64,
    },
    DeliverySent {
        delivery: DeliveryId,
    },
    DeliveryFailed {
        delivery: DeliveryId,
        retry_at: Option<Millis>,
    },
    DeliveryCancelled {
        delivery: DeliveryId,
    },
    /// The earliest timer changed; the leader should wake at this instant.
    WakeAt(Millis),
}
