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
    ApplyConfig {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The new document; it replaces the live one whole.
        doc: Box<OnCallDoc>,
    },
    /// An event from an alert source.
    Ingest {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The event as the source sent it (`apply` validates it again).
        event: Box<Event>,
    },
    /// Acknowledge a triggered incident: stop paging it (unsent deliveries and
    /// paging timers are cancelled) and, with the service's `ack_timeout`, arm a
    /// retrigger. An incident already acknowledged or resolved is left as it is.
    Acknowledge {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident to acknowledge.
        incident: IncidentId,
        /// Who acknowledged it: recorded in the timeline and as `acknowledged_by`.
        by: String,
    },
    /// Resolve an open incident: drop its timers, cancel its unsent deliveries and
    /// free its dedup key. An incident already resolved is left as it is.
    Resolve {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident to resolve.
        incident: IncidentId,
        /// Who resolved it: recorded in the timeline and as `resolved_by`.
        by: String,
    },
    /// Fire every timer due at `at`.
    Tick {
        /// Timers due at or before this instant fire (milliseconds since the Unix epoch).
        at: Millis,
    },
    /// The first command a leader *process* commits in its term, before it
    /// sends anything: every unsettled delivery is re-claimed for this term
    /// (an earlier leader, or an earlier process of this node in the same
    /// term after a fast restart, may have sent it: a possible duplicate,
    /// counted), then due timers fire as in `Tick`.
    ///
    /// `key_seed` (fresh random hex from the leader) becomes the cluster's
    /// key for signed links the first time one is committed.
    Takeover {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// Fresh random hex from the leader; becomes the link key if none is set yet.
        #[serde(default)]
        key_seed: String,
    },
    /// Stop paging until `until`, then trigger again.
    Snooze {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident to snooze (acknowledged first if it is triggered).
        incident: IncidentId,
        /// When it triggers again, in milliseconds since the Unix epoch; must be after `at`.
        until: Millis,
        /// Who snoozed it, for the timeline.
        by: String,
    },
    /// Replace the primary escalation with a user or a policy, from its first level.
    Reassign {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident to reassign.
        incident: IncidentId,
        /// The user or escalation policy that takes over the primary track.
        to: Assignee,
        /// Who reassigned it, for the timeline.
        by: String,
    },
    /// Page level `level` (1-based) of the primary escalation now.
    Escalate {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident to escalate; its primary track must run a policy.
        incident: IncidentId,
        /// The level of the policy to page, 1-based.
        level: u32,
        /// Who escalated it, for the timeline.
        by: String,
    },
    /// Page more people: each target is paged now, and a policy (or a team's
    /// policy) escalates on its own track if nobody answers.
    AddResponders {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The open incident that needs more people.
        incident: IncidentId,
        /// Who to page; each becomes a track of its own (a team without a policy: one
        /// per member).
        targets: Vec<Responder>,
        /// Who asked for them, for the timeline.
        by: String,
    },
    /// Resolve `incident` as a duplicate of `into`; later triggers with its
    /// dedup key fold into `into`.
    Merge {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The duplicate, resolved by the merge.
        incident: IncidentId,
        /// The open incident that survives.
        into: IncidentId,
        /// Who merged them, for both timelines.
        by: String,
    },
    /// Set (or clear, with an empty user) the incident commander or liaison.
    SetRole {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident whose role changes.
        incident: IncidentId,
        /// Which role: commander or liaison.
        role: Role,
        /// The user who takes it (a name in the document's `users`); empty clears it.
        user: String,
        /// Who set it, for the timeline.
        by: String,
    },
    /// Set (or, empty, clear) the incident's conference bridge: an http(s) URL.
    SetBridge {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident.
        incident: IncidentId,
        /// The bridge's URL; empty clears it.
        url: String,
        /// Who set it, for the timeline.
        by: String,
    },
    /// Add a note to an incident's timeline (1 to [`crate::state::MAX_NOTE_BYTES`] bytes).
    AddNote {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident the note is about.
        incident: IncidentId,
        /// The note as written; the timeline records it as `note: <text>`.
        text: String,
        /// Who wrote it.
        by: String,
    },
    /// A heartbeat monitor pinged with its key.
    Heartbeat {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The key the monitor pinged with; names one of the document's `heartbeats`.
        key: String,
    },
    /// A responder answered from their phone: an SMS reply (`4 123`, or a bare
    /// `4` for the latest page to that phone) or a keypress during a call.
    /// `from` must be the number the page went to.
    PhoneReply {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The phone number the answer came from.
        from: String,
        /// SMS for a text reply, voice for a keypress during a call.
        via: ContactKind,
        /// The page's reply code (its delivery id); None: the latest page to `from`.
        delivery: Option<DeliveryId>,
        /// What the responder asked for.
        action: PhoneAction,
    },
    /// Twilio's status callback for the call of `attempt` of `delivery`.
    CallStatus {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The voice delivery the call was made for.
        delivery: DeliveryId,
        /// The attempt the call was; a status for another attempt is ignored.
        attempt: u32,
        /// `initiated`, `ringing`, `in-progress`, `completed`, `busy`, `no-answer`, `failed`, `canceled`.
        status: String,
        /// `human`, `machine_start`, `machine_end_beep`, ... when machine detection ran.
        answered_by: String,
    },
    /// A contact method became unreachable (STOP) or reachable again (START).
    ContactHealth {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The kind of contact method: SMS, voice or email.
        method: ContactKind,
        /// Its phone number or email address.
        address: String,
        /// True when it can be paged again (START), false when it cannot (STOP).
        reachable: bool,
        /// Why it cannot be reached; later pages to the user say so.
        reason: String,
    },
    /// Add an override to a schedule: a new config version with it (the rest
    /// of the document unchanged), validated like any document.
    AddOverride {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The name of the schedule that gets the override.
        schedule: String,
        /// Who takes the pager, from when to when.
        #[serde(rename = "override")]
        over: crate::schedule::Override,
        /// Who added it.
        by: String,
    },
    /// Add an API token (its secret's digest; the secret is never logged).
    CreateToken {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The token's name, unique among tokens (1 to [`crate::auth::MAX_TOKEN_NAME`] bytes).
        name: String,
        /// What the token may do.
        role: crate::auth::TokenRole,
        /// SHA-256 of the secret, 64 hex digits; unique among tokens.
        sha256: String,
        /// Who created it; kept as the token's `created_by`.
        by: String,
    },
    /// Remove the API token with this name: its secret no longer authenticates.
    RevokeToken {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The name of the token to remove.
        name: String,
        /// Who revoked it.
        by: String,
    },
    /// Set (or replace) a user's console password and role. Rejected unless
    /// the user is in the current on-call document and `phc` is an Argon2id
    /// PHC string.
    SetPassword {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The user's stable name in the on-call document.
        user: String,
        /// What the user may do once signed in.
        role: crate::auth::TokenRole,
        /// The Argon2id hash of the password, as a PHC string.
        phc: String,
        /// Who set it.
        by: String,
    },
    /// Remove a user's console password: they can no longer sign in.
    ClearPassword {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The user whose password goes.
        user: String,
        /// Who removed it.
        by: String,
    },
    /// Send `user` a test page on one of their contact methods: a real SMS,
    /// call or email marked as a test, delivered like any page (claimed by
    /// term, retried, reconciled), recorded, and never an incident. At most
    /// [`crate::state::TEST_PAGES_PER_HOUR`] per user an hour.
    TestPage {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The user to page (a name in the document's `users`).
        user: String,
        /// The name of the user's contact method to try.
        contact: String,
        /// Who asked for it.
        by: String,
    },
    /// Email `user` a link to set their console password (valid once, until
    /// it expires or their password changes), delivered like any page. The
    /// address is the user's `email`, else their first email contact method.
    Invite {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The user to invite (a name in the document's `users`).
        user: String,
        /// The console role the password will grant.
        role: crate::auth::TokenRole,
        /// Who sent the invitation.
        by: String,
    },
    /// Sign a user out of every console session (their password stays).
    RevokeSessions {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The user whose sessions end; they must have a password.
        user: String,
        /// Who revoked them.
        by: String,
    },
    /// What happened when the leader sent `attempt` of `delivery`.
    Outcome {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The delivery that was sent.
        delivery: DeliveryId,
        /// The attempt that was sent; an outcome for an earlier attempt is ignored.
        attempt: u32,
        /// What the provider answered.
        result: SendResult,
    },
    /// Change the written part of an incident's RCA, or its assignee.
    EditRca {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident whose RCA it is.
        incident: IncidentId,
        /// The fields that change.
        edit: Box<crate::rca::RcaEdit>,
        /// Who edited it.
        by: String,
    },
    /// Complete an incident's RCA; refused, naming the field, while a field
    /// it needs is empty.
    CompleteRca {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident whose RCA it is.
        incident: IncidentId,
        /// Who completed it.
        by: String,
    },
    /// The incident is a duplicate (of `of`, when given): no RCA is needed.
    MarkDuplicate {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The duplicate.
        incident: IncidentId,
        /// The incident it duplicates, when known.
        of: Option<IncidentId>,
        /// Who marked it.
        by: String,
    },
    /// Move an incident's card on the page board.
    MoveCard {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The incident whose card it is.
        incident: IncidentId,
        /// Where it goes; `Complete` is refused while a repair item is open.
        stage: crate::rca::Stage,
        /// Who moved it.
        by: String,
    },
    /// A note for the next on-call of a schedule, sent with the handoff summary.
    HandoffNote {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The schedule.
        schedule: String,
        /// What the next on-call should know.
        text: String,
        /// Who left it.
        by: String,
    },
    /// Deliver a dead webhook event again (same id, a new 24 hours).
    ReplayWebhook {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// The event.
        event: u64,
        /// Who asked.
        by: String,
    },
    /// Make a new secret address for a calendar feed: the old one stops working.
    RotateCalendar {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// Whose feed.
        subject: CalendarSubject,
        /// Who rotated it.
        by: String,
    },
    /// Forget incidents resolved before `resolved_before`, with their
    /// deliveries, so the state (memory, snapshots) stays bounded. The leader
    /// proposes it for its retention setting; apply decides from the state
    /// alone.
    Compact {
        /// When the leader stamped it, in milliseconds since the Unix epoch.
        at: Millis,
        /// Incidents resolved before this instant go (milliseconds since the Unix epoch).
        resolved_before: Millis,
    },
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
            | Command::SetBridge { $at, .. }
            | Command::AddNote { $at, .. }
            | Command::Heartbeat { $at, .. }
            | Command::PhoneReply { $at, .. }
            | Command::CallStatus { $at, .. }
            | Command::ContactHealth { $at, .. }
            | Command::AddOverride { $at, .. }
            | Command::CreateToken { $at, .. }
            | Command::RevokeToken { $at, .. }
            | Command::SetPassword { $at, .. }
            | Command::ClearPassword { $at, .. }
            | Command::RevokeSessions { $at, .. }
            | Command::TestPage { $at, .. }
            | Command::Invite { $at, .. }
            | Command::Outcome { $at, .. }
            | Command::EditRca { $at, .. }
            | Command::CompleteRca { $at, .. }
            | Command::MarkDuplicate { $at, .. }
            | Command::MoveCard { $at, .. }
            | Command::RotateCalendar { $at, .. }
            | Command::HandoffNote { $at, .. }
            | Command::ReplayWebhook { $at, .. }
            | Command::Compact { $at, .. } => $body,
        }
    };
}

impl Command {
    /// The instant the leader stamped on the command, in milliseconds since the Unix epoch.
    pub fn at(&self) -> Millis {
        each_at!(self, at => *at)
    }

    /// Set the instant; the leader calls this just before proposing.
    pub fn stamp(&mut self, now: Millis) {
        each_at!(self, at => *at = now)
    }
}

/// Whose shifts a calendar feed holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarSubject {
    /// One user's shifts on every schedule.
    User(String),
    /// Every shift of one schedule.
    Schedule(String),
}

impl CalendarSubject {
    /// `user:alice`, `schedule:primary`: the key of its version.
    pub fn key(&self) -> String {
        match self {
            CalendarSubject::User(u) => format!("user:{u}"),
            CalendarSubject::Schedule(s) => format!("schedule:{s}"),
        }
    }
}

/// Who to add to an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Responder {
    /// A user, by name, paged on a track of their own.
    User(String),
    /// A team: its escalation policy when it has one, else all its members.
    Team(String),
    /// An escalation policy, by name, run from its first level on a track of its own.
    Policy(String),
}

/// What the provider said when the leader sent one attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendResult {
    /// The provider accepted the page.
    Sent {
        /// The provider's id for the message or call.
        provider_id: String,
        /// Not sent now: found at the provider, sent by an earlier leader.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reconciled: bool,
    },
    /// The attempt failed: the provider refused it, or could not be reached.
    Failed {
        /// Worth trying again after a backoff, while attempts remain.
        retryable: bool,
        /// The request may have reached the provider (timeout after sending):
        /// a retry may duplicate the page.
        #[serde(default)]
        in_doubt: bool,
        /// The provider's error code, when it gave one (some mark the address unreachable).
        code: Option<i64>,
        /// The provider's (or the transport's) error message.
        message: String,
    },
}

/// The answer to the proposer of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Entries with no command (blank, membership) and commands with nothing to say.
    Noop,
    /// The on-call document was applied.
    ConfigApplied {
        /// The new `config_version`.
        version: u64,
    },
    /// What an ingested event did.
    Event {
        /// None when an acknowledge/resolve matched no open incident.
        incident: Option<IncidentId>,
        /// The dedup key the event was filed under (generated when it had none).
        dedup_key: String,
        /// A trigger that joined an open incident and paged nobody new.
        folded: bool,
    },
    /// The incident the command acted on.
    Incident {
        /// Its id (for `Merge`, the incident that survives).
        id: IncidentId,
    },
    /// What `Compact` removed.
    Compacted {
        /// Incidents removed.
        incidents: u64,
        /// Deliveries removed with them.
        deliveries: u64,
    },
    /// The answer to a phone: what happened, in words for an SMS or a voice.
    Reply {
        /// The incident the answer is about; None when there is none (no page matched).
        incident: Option<IncidentId>,
        /// The text to send back.
        message: String,
    },
    /// The delivery a `TestPage` or an `Invite` created.
    Queued {
        /// Its delivery id.
        delivery: DeliveryId,
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
    /// A trigger opened a new incident.
    IncidentOpened {
        /// The incident opened.
        incident: IncidentId,
    },
    /// A trigger joined an open incident (same dedup key, grouping or an alert storm).
    IncidentFolded {
        /// The incident it joined.
        incident: IncidentId,
    },
    /// A triggered incident was acknowledged.
    IncidentAcknowledged {
        /// The incident acknowledged.
        incident: IncidentId,
    },
    /// An open incident was resolved.
    IncidentResolved {
        /// The incident resolved.
        incident: IncidentId,
    },
    /// A snoozed or acknowledged incident was triggered again.
    IncidentRetriggered {
        /// The incident triggered again.
        incident: IncidentId,
    },
    /// A level of one of an incident's tracks was paged.
    Escalated {
        /// The incident paged for.
        incident: IncidentId,
        /// The level paged, 0-based.
        level: u32,
        /// Completed repeats of the policy (0 on the first pass).
        repeat: u32,
    },
    /// A delivery became sendable by the leader of `term`.
    Deliver {
        /// The delivery to send.
        delivery: DeliveryId,
        /// The term whose leader must send it.
        term: u64,
    },
    /// A delivery another term claimed was re-claimed (its page may have gone
    /// out already: a possible duplicate).
    Reclaimed {
        /// The delivery re-claimed.
        delivery: DeliveryId,
        /// The term that claims it now.
        term: u64,
    },
    /// The provider accepted a delivery; it is no longer pending.
    DeliverySent {
        /// The delivery sent.
        delivery: DeliveryId,
    },
    /// An attempt of a delivery failed; it is no longer pending.
    DeliveryFailed {
        /// The delivery that failed.
        delivery: DeliveryId,
        /// When its retry is due, in milliseconds since the Unix epoch; None: failed for good.
        retry_at: Option<Millis>,
    },
    /// An unsent delivery was cancelled: its incident stopped paging it.
    DeliveryCancelled {
        /// The delivery cancelled.
        delivery: DeliveryId,
    },
    /// The earliest timer changed; the leader should wake at this instant.
    WakeAt(Millis),
}
