//! The replicated state and the one function that changes it.
//!
//! ```text
//!   Command (stamped `at`, log index + term in LogMeta)
//!      │
//!      ▼
//!   State::apply ──► Response (to the proposer)
//!      │         └─► Vec<Effect> (Deliver, WakeAt, IncidentOpened, …)
//!      ▼
//!   incidents · deliveries · timers · heartbeats (all data, all replicated)
//! ```
//!
//! Escalation: an incident runs one or more *tracks* (track 0: the service's
//! policy or a reassignment; others: responders). Paging a level resolves
//! its targets at that instant (users, schedules, teams); a level with
//! nobody on call is skipped at once; after the last level and repeat the
//! policy's fallback is paged. Each paged user's notification rules become
//! deliveries now or `Notify` timers.
//!
//! Layout: this file holds [`State`], the dispatch in [`State::apply`] and
//! the queries every node reads; each kind of command applies in its own room:
//! - `ingest`: events, routing, dedup, grouping, storms, opening an incident
//! - `actions`: acknowledge, resolve, snooze, reassign, escalate, merge, notes
//! - `escalation`: paging levels and users, notification rules, fallback
//! - `delivery`: outcomes, retries, reclaiming after a takeover, cancelling
//! - `timers`: firing what is due at a `Tick`
//! - `phone`: SMS replies, keypresses, call status, unreachable contacts
//! - `heartbeat`: heartbeat monitors
//! - `admin`: the on-call document, compaction, overrides, API tokens

use crate::command::{Command, Effect, Rejection, Response};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, Unreachable};
use crate::incident::{Incident, IncidentId, IncidentStatus, Stamp};
use crate::oncall::OnCallDoc;
use crate::routing::Router;
use crate::time::Millis;
use crate::timer::{Timer, TimerKey, Timers};
use crate::LogMeta;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod actions;
mod admin;
mod chat;
mod delivery;
mod escalation;
mod followup;
mod handoff;
mod heartbeat;
mod incidents;
mod ingest;
mod phone;
mod reports;
mod ticket;
mod timers;
mod webhook;
mod weekly;

pub use handoff::{Handoff, HandoffNote};
pub use heartbeat::HeartbeatState;
pub use incidents::{Incidents, RECENT_CHANGES};
use ingest::Storm;
pub use reports::{ReportInput, NO_TEAM};
pub use weekly::{next_weekly, WEEKLY_DAYS};

/// Result of applying one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The answer to the proposer.
    pub response: Response,
    /// What changed, in order, for the runtime to act on.
    pub effects: Vec<Effect>,
}

/// Counters kept in the replicated state (so every node reports the same).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events ingested with a known integration key.
    pub events: u64,
    /// Incidents opened.
    pub incidents_opened: u64,
    /// Triggers that joined an open incident instead of opening one.
    pub triggers_folded: u64,
    /// Deliveries created: one per page.
    pub deliveries_created: u64,
    /// Deliveries the provider accepted.
    pub deliveries_sent: u64,
    /// Deliveries that failed for good.
    pub deliveries_failed: u64,
    /// Deliveries re-claimed by a new leader with no recorded outcome: each is
    /// a page that may have gone out twice.
    pub deliveries_reclaimed: u64,
    /// Failed attempts whose request may have reached the provider anyway.
    pub deliveries_in_doubt: u64,
    /// Events a routing rule suppressed (recorded, nobody paged).
    pub events_suppressed: u64,
    /// Triggers that arrived during a maintenance window of their service.
    pub events_in_maintenance: u64,
    /// Deliveries in doubt that the leader found at the provider (sent by an
    /// earlier leader): duplicates avoided.
    #[serde(default)]
    pub deliveries_reconciled: u64,
    /// Voice calls that ended with no key pressed (no answer, busy, failed, voicemail).
    #[serde(default)]
    pub calls_unanswered: u64,
    /// Acknowledge / resolve / escalate answers from phones (SMS or keypress).
    #[serde(default)]
    pub phone_replies: u64,
    /// Notification rules skipped because their contact method was unreachable.
    #[serde(default)]
    pub contacts_skipped: u64,
    /// Incidents acknowledged (or resolved unacknowledged) after their tier's SLA.
    #[serde(default)]
    pub sla_breaches: u64,
    /// Webhook events delivered.
    #[serde(default)]
    pub webhooks_delivered: u64,
    /// Webhook events dead.
    #[serde(default)]
    pub webhooks_dead: u64,
}

/// The cluster's key for signed links (email acknowledge / resolve). Set once
/// from the first committed `Takeover`; never printed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkKey(String);

impl LinkKey {
    /// The key itself, for signing and checking links; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "LinkKey(unset)"
        } else {
            "LinkKey(<redacted>)"
        })
    }
}

/// Longest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 4096;
/// Longest conference bridge URL.
pub const MAX_BRIDGE_URL: usize = 2048;

/// Test pages one user may ask for in an hour (each is a real SMS, call or
/// email, and costs what one does).
pub const TEST_PAGES_PER_HOUR: usize = 5;

/// A note with the same text by the same user within this long of an earlier
/// one is that note, not a second one (a form sent again after an election).
pub const NOTE_REPEAT_WINDOW: Millis = 10 * 60 * 1000;
/// Most tracks (primary plus responders) on one incident.
pub const MAX_TRACKS: usize = 16;

/// The compiled routing rules: derived from `config`, never serialized,
/// rebuilt on config apply and on first use after a snapshot restore.
#[derive(Debug, Clone, Default)]
struct RouterCache(Option<Router>);

impl PartialEq for RouterCache {
    fn eq(&self, _: &Self) -> bool {
        true // derived data: equal whenever the configs are
    }
}

/// The replicated state of the paging domain: every node applies the same log
/// to it and holds the same value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Shared so apply can read it while changing the rest of the state
    /// without copying (replaced whole by `ApplyConfig`).
    pub config: Arc<OnCallDoc>,
    /// Documents applied so far (an override adds one); 0 before the first.
    pub config_version: u64,
    #[serde(skip)]
    router: RouterCache,
    /// Integration key → service name; derived from `config` on apply.
    key_index: BTreeMap<String, String>,
    /// Every incident kept, and which changed lately (for watchers).
    pub incidents: Incidents,
    /// Open incidents by service, then dedup key (a merged incident's key
    /// points at the incident it was merged into).
    open_by_key: BTreeMap<String, BTreeMap<String, IncidentId>>,
    /// Per service, the newest incident opened without a dedup key, for grouping.
    last_ungrouped: BTreeMap<String, IncidentId>,
    /// Every delivery of the incidents kept, by id; shared like `incidents`.
    pub deliveries: BTreeMap<DeliveryId, Arc<Delivery>>,
    /// Deliveries in `Pending`: what the leader has to send.
    pending: BTreeSet<DeliveryId>,
    /// Phone number → the newest SMS or voice delivery to it (a bare reply
    /// code acts on it).
    #[serde(default)]
    latest_to_phone: BTreeMap<String, DeliveryId>,
    /// Contact methods that cannot be reached, by [`contact_key`].
    #[serde(default)]
    pub unreachable: BTreeMap<String, Unreachable>,
    /// Signs email acknowledge / resolve links; unset until the first `Takeover`.
    #[serde(default)]
    pub link_key: LinkKey,
    /// API tokens by name.
    #[serde(default)]
    pub tokens: BTreeMap<String, crate::auth::ApiToken>,
    /// Console passwords by user (users of the current document only).
    #[serde(default)]
    pub credentials: BTreeMap<String, crate::auth::Credential>,
    /// Users without a password signed out everywhere (single sign-on
    /// sessions): the log index of their last `RevokeSessions`.
    #[serde(default)]
    pub signed_out: BTreeMap<String, u64>,
    /// Per service with a storm threshold: recent incident openings and the
    /// open storm incident.
    #[serde(default)]
    storms: BTreeMap<String, Storm>,
    /// Every pending timer, by due instant.
    pub timers: Timers,
    /// Each heartbeat monitor's progress, by name, from its first ping.
    pub heartbeats: BTreeMap<String, HeartbeatState>,
    next_incident: IncidentId,
    next_delivery: DeliveryId,
    /// The latest `at` applied: replicated time never runs backwards.
    pub clock: Millis,
    /// Log position of the last applied command.
    pub last_applied: LogMeta,
    /// Counters, the same on every node.
    pub stats: Stats,
    /// RCA records and their cards, by incident; they outlive compacted
    /// incidents until done and off the board.
    #[serde(default)]
    pub rcas: BTreeMap<IncidentId, Arc<crate::rca::Rca>>,
    /// Calendar feeds whose secret address was rotated, by
    /// [`crate::command::CalendarSubject::key`]: the log index of the last
    /// rotation (a feed never rotated is at 0).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calendars: BTreeMap<String, u64>,
    /// Resolved incidents rolled up by the day they opened (days since the
    /// epoch, UTC), then service: reports outlive compaction.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollups: BTreeMap<u32, BTreeMap<String, Arc<crate::report::DayRollup>>>,
    /// Each schedule's next handoff, its reminder and the notes waiting for it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub handoffs: BTreeMap<String, Handoff>,
    /// Each team's next weekly report email (its timer).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weekly_reports: BTreeMap<String, TimerKey>,
    /// Each incident's Slack message (incidents of services with a channel).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chat: BTreeMap<IncidentId, crate::chat::ChatThread>,
    /// Each incident's Jira ticket (high-urgency incidents of services with `jira`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tickets: BTreeMap<IncidentId, crate::ticket::Ticket>,
    /// Webhook events, by id: queued, being sent, delivered (a week) or dead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hook_events: BTreeMap<u64, crate::webhook::HookEvent>,
    /// The events of each incident not yet delivered or dead, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hook_queues: BTreeMap<IncidentId, Vec<u64>>,
    /// What the webhooks last saw of each incident some subscription takes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hook_cursors: BTreeMap<IncidentId, crate::webhook::HookCursor>,
    #[serde(default)]
    next_hook_event: u64,
}

/// Per-apply context: where in the log we are, the instant, and the effects so far.
struct Cx {
    meta: LogMeta,
    at: Millis,
    effects: Vec<Effect>,
}

impl Cx {
    fn stamp(&self) -> Stamp {
        Stamp {
            index: self.meta.index,
            at: self.at,
        }
    }
}

fn rejected_invalid(field: &str, reason: impl Into<String>) -> Response {
    Response::Rejected(Rejection::Invalid {
        field: field.into(),
        reason: reason.into(),
    })
}

fn not_found_incident() -> Response {
    Response::Rejected(Rejection::NotFound {
        field: "id".into(),
        what: "incident".into(),
    })
}

impl State {
    /// Apply one committed command. Pure: never blocks, never reads a clock.
    /// A `Rejected` response means nothing but `clock` and `last_applied` changed.
    pub fn apply(&mut self, meta: LogMeta, cmd: &Command) -> Applied {
        let at = cmd.at().max(self.clock);
        self.clock = at;
        self.incidents.begin(self.last_applied.index);
        self.last_applied = meta;
        let before = self.timers.next_deadline();
        let mut cx = Cx {
            meta,
            at,
            effects: Vec::new(),
        };
        // A new document (or an override) may move shifts: compared after.
        let before_doc = matches!(
            cmd,
            Command::ApplyConfig { .. } | Command::AddOverride { .. }
        )
        .then(|| (self.config.clone(), self.config_version == 0));
        let response = match cmd {
            Command::ApplyConfig { doc, .. } => self.apply_config(doc),
            Command::Ingest { event, .. } => self.ingest(&mut cx, event),
            Command::Acknowledge { incident, by, .. } => self.acknowledge(&mut cx, *incident, by),
            Command::Resolve { incident, by, .. } => self.resolve(&mut cx, *incident, by),
            Command::Tick { .. } => {
                self.fire_due(&mut cx);
                Response::Noop
            }
            Command::Takeover { key_seed, .. } => {
                if self.link_key.0.is_empty() && !key_seed.is_empty() {
                    self.link_key = LinkKey(key_seed.clone());
                }
                self.reclaim_unsettled(&mut cx);
                self.fire_due(&mut cx);
                Response::Noop
            }
            Command::Snooze {
                incident,
                until,
                by,
                ..
            } => self.snooze(&mut cx, *incident, *until, by),
            Command::Reassign {
                incident, to, by, ..
            } => self.reassign(&mut cx, *incident, to, by),
            Command::Escalate {
                incident,
                level,
                by,
                ..
            } => self.escalate_now(&mut cx, *incident, *level, by),
            Command::AddResponders {
                incident,
                targets,
                by,
                ..
            } => self.add_responders(&mut cx, *incident, targets, by),
            Command::Merge {
                incident, into, by, ..
            } => self.merge(&mut cx, *incident, *into, by),
            Command::SetRole {
                incident,
                role,
                user,
                by,
                ..
            } => self.set_role(&mut cx, *incident, *role, user, by),
            Command::AddNote {
                incident, text, by, ..
            } => self.add_note(&mut cx, *incident, text, by),
            Command::Heartbeat { key, .. } => self.heartbeat(&mut cx, key),
            Command::Compact {
                resolved_before, ..
            } => {
                let r = self.compact(*resolved_before);
                self.forget_hooks(cx.at);
                r
            }
            Command::PhoneReply {
                from,
                via,
                delivery,
                action,
                ..
            } => self.phone_reply(&mut cx, from, *via, *delivery, *action),
            Command::CallStatus {
                delivery,
                attempt,
                status,
                answered_by,
                ..
            } => self.call_status(&mut cx, *delivery, *attempt, status, answered_by),
            Command::AddOverride { schedule, over, .. } => self.add_override(schedule, over),
            Command::CreateToken {
                name,
                role,
                sha256,
                by,
                ..
            } => self.create_token(cx.at, name, *role, sha256, by),
            Command::RevokeToken { name, .. } => match self.tokens.remove(name) {
                Some(_) => Response::Noop,
                None => Response::Rejected(Rejection::NotFound {
                    field: "name".into(),
                    what: format!("token {name:?}"),
                }),
            },
            Command::SetPassword {
                user,
                role,
                phc,
                by,
                ..
            } => self.set_password(cx.meta.index, cx.at, user, *role, phc, by),
            Command::TestPage { user, contact, .. } => self.test_page(&mut cx, user, contact),
            Command::Invite { user, role, .. } => self.invite(&mut cx, user, *role),
            Command::RevokeSessions { user, .. } => match self.credentials.get_mut(user) {
                Some(c) => {
                    c.sessions_version = cx.meta.index;
                    Response::Noop
                }
                None if self.config.users.contains_key(user) => {
                    self.signed_out.insert(user.clone(), cx.meta.index);
                    Response::Noop
                }
                None => Response::Rejected(Rejection::NotFound {
                    field: "user".into(),
                    what: format!("user {user:?} in the on-call document"),
                }),
            },
            Command::ClearPassword { user, .. } => match self.credentials.remove(user) {
                Some(_) => Response::Noop,
                None => Response::Rejected(Rejection::NotFound {
                    field: "user".into(),
                    what: format!("a password for user {user:?}"),
                }),
            },
            Command::ContactHealth {
                method,
                address,
                reachable,
                reason,
                ..
            } => self.contact_health(&mut cx, *method, address, *reachable, reason),
            Command::Outcome {
                delivery,
                attempt,
                result,
                ..
            } => self.outcome(&mut cx, *delivery, *attempt, result),
            Command::EditRca {
                incident, edit, by, ..
            } => self.edit_rca(&mut cx, *incident, edit, by),
            Command::CompleteRca { incident, by, .. } => self.complete_rca(&mut cx, *incident, by),
            Command::MarkDuplicate {
                incident, of, by, ..
            } => self.mark_duplicate(&mut cx, *incident, *of, by),
            Command::MoveCard {
                incident,
                stage,
                by,
                ..
            } => self.move_card(&mut cx, *incident, *stage, by),
            Command::RotateCalendar { subject, .. } => self.rotate_calendar(&cx, subject),
            Command::ReplayWebhook { event, by, .. } => self.replay_webhook(&mut cx, *event, by),
            Command::SetBridge {
                incident, url, by, ..
            } => self.set_bridge(&mut cx, *incident, url, by),
            Command::HandoffNote {
                schedule, text, by, ..
            } => self.handoff_note(&cx, schedule, text, by),
        };
        if let (Some((doc, first)), Response::ConfigApplied { .. }) = (&before_doc, &response) {
            self.document_changed(&mut cx, doc, *first);
        }
        self.incidents.settle(meta.index);
        self.chat_changed(&mut cx);
        self.tickets_changed(&mut cx);
        self.hooks_changed(&mut cx);
        let after = self.timers.next_deadline();
        if after != before {
            if let Some(t) = after {
                cx.effects.push(Effect::WakeAt(t));
            }
        }
        Applied {
            response,
            effects: cx.effects,
        }
    }

    // ---- queries (pure, used by every node) ----

    /// The earliest timer's due instant, in milliseconds since the Unix epoch: the
    /// leader proposes a `Tick` then.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// Deliveries the leader of their `claim_term` must send, oldest first. For
    /// counting and inspection: the runtime learns them from `Deliver` effects.
    pub fn pending_deliveries(&self) -> impl Iterator<Item = &Delivery> + '_ {
        self.pending
            .iter()
            .filter_map(|id| self.deliveries.get(id).map(|d| &**d))
    }

    /// The service that owns an integration key, from the index built when the
    /// document was applied.
    pub fn service_for_key(&self, key: &str) -> Option<&str> {
        self.key_index.get(key).map(String::as_str)
    }

    /// The open incident of a service with this dedup key.
    pub fn open_incident(&self, service: &str, dedup_key: &str) -> Option<IncidentId> {
        self.open_by_key.get(service)?.get(dedup_key).copied()
    }

    /// Incidents changed after log index `revision`, oldest change first.
    /// Costs what changed since, not what is held, for any revision among the
    /// last 100,000 changes since the last restore; a scan before that.
    pub fn changed_since(&self, revision: u64) -> Vec<&Incident> {
        self.incidents.changed_since(revision)
    }

    /// The version a console session of `user` must name to be valid now:
    /// the log index of their last new password or sign-out everywhere (0
    /// when neither happened).
    pub fn sessions_version(&self, user: &str) -> u64 {
        match self.credentials.get(user) {
            Some(c) => c.sessions_version,
            None => self.signed_out.get(user).copied().unwrap_or(0),
        }
    }

    /// Checks that cross-references hold; tests call it after every apply.
    pub fn check_invariants(&self) -> Result<(), String> {
        for id in &self.pending {
            match self.deliveries.get(id) {
                Some(d) if d.status == DeliveryStatus::Pending => {}
                other => {
                    return Err(format!(
                        "pending set holds delivery {id} in state {other:?}"
                    ))
                }
            }
        }
        for d in self.deliveries.values() {
            if d.status == DeliveryStatus::Pending && !self.pending.contains(&d.id) {
                return Err(format!("delivery {} is pending but not indexed", d.id));
            }
        }
        for (key, timer) in self.timers.iter() {
            match timer.incident() {
                // A test page's retry: it belongs to no incident (ids start at 1).
                Some(0) => match timer {
                    Timer::Retry { delivery, .. }
                        if self
                            .deliveries
                            .get(delivery)
                            .is_some_and(|d| !d.purpose.is_page()) => {}
                    _ => return Err(format!("timer {key:?} on incident 0")),
                },
                Some(inc) => match self.incidents.get(&inc) {
                    Some(i) if i.timers.contains(key) => {
                        if timer.pages() && i.status != IncidentStatus::Triggered {
                            return Err(format!(
                                "paging timer {key:?} on {:?} incident {inc}",
                                i.status
                            ));
                        }
                        if i.status == IncidentStatus::Resolved {
                            return Err(format!("timer {key:?} on resolved incident {inc}"));
                        }
                    }
                    _ => return Err(format!("timer {key:?} not indexed on incident {inc}")),
                },
                None => {
                    if let Timer::RcaReminder { incident } = timer {
                        if self.rcas.get(incident).and_then(|r| r.reminder) != Some(*key) {
                            return Err(format!("RCA reminder {key:?} not indexed on {incident}"));
                        }
                        continue;
                    }
                    let Timer::HeartbeatMissed { name } = timer else {
                        continue;
                    };
                    if self.heartbeats.get(name).and_then(|h| h.timer) != Some(*key) {
                        return Err(format!("heartbeat timer {key:?} not indexed on {name}"));
                    }
                }
            }
        }
        for inc in self.incidents.values() {
            if inc.timers.iter().any(|k| !self.timers.contains(k)) {
                return Err(format!("incident {} indexes a timer that is gone", inc.id));
            }
            let indexed = self.open_incident(&inc.service, &inc.dedup_key) == Some(inc.id);
            if inc.is_open() != indexed && inc.merged_into.is_none() {
                return Err(format!(
                    "incident {} open={} but indexed={indexed}",
                    inc.id,
                    inc.is_open()
                ));
            }
        }
        for keys in self.open_by_key.values() {
            for id in keys.values() {
                if !self.incidents.get(id).is_some_and(|i| i.is_open()) {
                    return Err(format!(
                        "dedup index points at incident {id}, which is not open"
                    ));
                }
            }
        }
        self.check_rcas()?;
        self.check_handoffs()?;
        self.check_weekly_reports()?;
        self.incidents.check(self.last_applied.index)
    }

    fn note(&mut self, id: IncidentId, stamp: Stamp, by: &str, what: impl Into<String>) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.note(stamp, by, what);
        }
    }
}
