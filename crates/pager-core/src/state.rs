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

use crate::command::{Command, Effect, Rejection, Responder, Response, SendResult};
use crate::delivery::{
    contact_key, mask_address, Delivery, DeliveryId, DeliveryStatus, Unreachable, MAX_ATTEMPTS,
    UNREACHABLE_CODES,
};
use crate::event::{Event, EventAction, Severity};
use crate::incident::{Assignee, Incident, IncidentId, IncidentStatus, Role, Stamp, Track};
use crate::oncall::{ContactKind, OnCallDoc, Target, Urgency, UrgencyRule};
use crate::routing::{Decision, Router};
use crate::time::Millis;
use crate::timer::{Timer, TimerKey, TimerSet, Timers};
use crate::LogMeta;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod phone;
use std::sync::Arc;

/// Result of applying one command.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub response: Response,
    pub effects: Vec<Effect>,
}

/// Counters kept in the replicated state (so every node reports the same).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub events: u64,
    pub incidents_opened: u64,
    pub triggers_folded: u64,
    pub deliveries_created: u64,
    pub deliveries_sent: u64,
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
}

/// The cluster's key for signed links (email acknowledge / resolve). Set once
/// from the first committed `Takeover`; never printed.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LinkKey(String);

impl LinkKey {
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

/// A service's alert-storm watch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Storm {
    /// When incidents opened in the last minute, oldest first.
    recent: std::collections::VecDeque<Millis>,
    /// The open storm incident new triggers fold into.
    incident: Option<IncidentId>,
}

/// The window a storm threshold counts over.
const STORM_WINDOW: Millis = 60_000;

/// A heartbeat monitor's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatState {
    pub last_seen: Millis,
    /// The pending `HeartbeatMissed` timer.
    pub timer: Option<TimerKey>,
    /// The incident a missed ping opened, until a ping resolves it.
    pub incident: Option<IncidentId>,
}

/// Longest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 4096;
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Shared so apply can read it while changing the rest of the state
    /// without copying (replaced whole by `ApplyConfig`).
    pub config: Arc<OnCallDoc>,
    pub config_version: u64,
    #[serde(skip)]
    router: RouterCache,
    /// Integration key → service name; derived from `config` on apply.
    key_index: BTreeMap<String, String>,
    /// Values are shared with snapshots in progress (copy on write), so
    /// copying the state for a snapshot does not copy every incident.
    pub incidents: BTreeMap<IncidentId, Arc<Incident>>,
    /// Open incidents by service, then dedup key (a merged incident's key
    /// points at the incident it was merged into).
    open_by_key: BTreeMap<String, BTreeMap<String, IncidentId>>,
    /// Per service, the newest incident opened without a dedup key, for grouping.
    last_ungrouped: BTreeMap<String, IncidentId>,
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
    #[serde(default)]
    pub link_key: LinkKey,
    /// API tokens by name.
    #[serde(default)]
    pub tokens: BTreeMap<String, crate::auth::ApiToken>,
    /// Per service with a storm threshold: recent incident openings and the
    /// open storm incident.
    #[serde(default)]
    storms: BTreeMap<String, Storm>,
    pub timers: Timers,
    pub heartbeats: BTreeMap<String, HeartbeatState>,
    next_incident: IncidentId,
    next_delivery: DeliveryId,
    /// The latest `at` applied: replicated time never runs backwards.
    pub clock: Millis,
    /// Log position of the last applied command.
    pub last_applied: LogMeta,
    pub stats: Stats,
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
        self.last_applied = meta;
        let before = self.timers.next_deadline();
        let mut cx = Cx {
            meta,
            at,
            effects: Vec::new(),
        };
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
            } => self.compact(*resolved_before),
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
        };
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

    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// Deliveries the leader of their `claim_term` must send, oldest first.
    pub fn pending_deliveries(&self) -> impl Iterator<Item = &Delivery> + '_ {
        self.pending
            .iter()
            .filter_map(|id| self.deliveries.get(id).map(|d| &**d))
    }

    pub fn service_for_key(&self, key: &str) -> Option<&str> {
        self.key_index.get(key).map(String::as_str)
    }

    /// The open incident of a service with this dedup key.
    pub fn open_incident(&self, service: &str, dedup_key: &str) -> Option<IncidentId> {
        self.open_by_key.get(service)?.get(dedup_key).copied()
    }

    /// Incidents changed after log index `revision`, oldest change first.
    /// A scan, not an index: watchers call it once per applied batch.
    pub fn changed_since(&self, revision: u64) -> Vec<&Incident> {
        let mut changed: Vec<&Incident> = self
            .incidents
            .values()
            .filter(|i| i.revision > revision)
            .map(|i| &**i)
            .collect();
        changed.sort_by_key(|i| (i.revision, i.id));
        changed
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
        Ok(())
    }

    // ---- configuration ----

    fn apply_config(&mut self, doc: &OnCallDoc) -> Response {
        let problems = doc.validate();
        if !problems.is_empty() {
            return Response::Rejected(Rejection::ConfigInvalid { problems });
        }
        self.config = Arc::new(doc.clone());
        self.config_version += 1;
        self.router = RouterCache(Router::new(&doc.routing_rules).ok());
        self.key_index = doc
            .services
            .iter()
            .flat_map(|(name, svc)| {
                svc.integration_keys
                    .iter()
                    .map(move |k| (k.clone(), name.clone()))
            })
            .collect();
        // Monitors that left the document stop; their timers go with them.
        let gone: Vec<String> = self
            .heartbeats
            .keys()
            .filter(|n| !doc.heartbeats.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(key) = self.heartbeats.remove(&name).and_then(|h| h.timer) {
                self.timers.remove(&key);
            }
        }
        Response::ConfigApplied {
            version: self.config_version,
        }
    }

    // ---- events ----

    fn ingest(&mut self, cx: &mut Cx, event: &Event) -> Response {
        if let Err(rejection) = event.validate() {
            return Response::Rejected(rejection);
        }
        let Some(owner) = self.key_index.get(&event.routing_key).cloned() else {
            return Response::Rejected(Rejection::NotFound {
                field: "routing_key".into(),
                what: "integration key".into(),
            });
        };
        self.stats.events += 1;
        if self.router.0.is_none() && !self.config.routing_rules.is_empty() {
            self.router = RouterCache(Router::new(&self.config.routing_rules).ok());
        }
        let decision = match &self.router.0 {
            Some(router) => router.route(event, Some(&owner)),
            None => Decision {
                services: vec![owner],
                ..Decision::default()
            },
        };
        // Copy the event only when a rule re-rates it (hot path).
        let event: std::borrow::Cow<Event> = match decision.severity {
            Some(sev) if sev != event.severity => std::borrow::Cow::Owned(Event {
                severity: sev,
                ..event.clone()
            }),
            _ => std::borrow::Cow::Borrowed(event),
        };
        if decision.suppressed {
            self.stats.events_suppressed += 1;
            let dedup_key = if event.dedup_key.is_empty() {
                format!("pgd-{}", cx.meta.index)
            } else {
                event.dedup_key.clone()
            };
            return Response::Event {
                incident: None,
                dedup_key,
                folded: false,
            };
        }
        // One event may page several services: the answer names the first.
        let mut first = None;
        for service in &decision.services {
            if !self.config.services.contains_key(service) {
                continue;
            }
            let r = self.ingest_to(cx, service, &event, &decision);
            first.get_or_insert(r);
        }
        first.unwrap_or(Response::Event {
            incident: None,
            dedup_key: event.dedup_key.clone(),
            folded: false,
        })
    }

    /// Dedup, fold or open one service's incident for an event.
    fn ingest_to(
        &mut self,
        cx: &mut Cx,
        service: &str,
        event: &Event,
        decision: &Decision,
    ) -> Response {
        let by = if event.source.is_empty() {
            "event".to_string()
        } else {
            format!("event from {}", event.source)
        };
        let grouped = if event.dedup_key.is_empty() && event.action == EventAction::Trigger {
            self.group_target(service, cx.at)
        } else {
            None
        };
        let dedup_key = match grouped {
            Some(id) => self
                .incidents
                .get(&id)
                .map(|i| i.dedup_key.clone())
                .unwrap_or_default(),
            None if event.dedup_key.is_empty() => format!("pgd-{}", cx.meta.index),
            None => event.dedup_key.clone(),
        };
        let open = self.open_incident(service, &dedup_key);
        match (event.action, open) {
            (EventAction::Trigger, Some(id)) => {
                self.stats.triggers_folded += 1;
                if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
                    inc.folded += 1;
                    inc.note(cx.stamp(), &by, "trigger folded in");
                }
                cx.effects.push(Effect::IncidentFolded { incident: id });
                Response::Event {
                    incident: Some(id),
                    dedup_key,
                    folded: true,
                }
            }
            (EventAction::Trigger, None)
                if self.maintenance_until(service, cx.at, false).is_some() =>
            {
                self.stats.events_in_maintenance += 1;
                Response::Event {
                    incident: None,
                    dedup_key,
                    folded: false,
                }
            }
            (EventAction::Trigger, None) => {
                if let Some(storm) = self.storm_target(cx, service, event, &by, decision) {
                    // Later events with this key act on the storm incident.
                    self.open_by_key
                        .entry(service.to_string())
                        .or_default()
                        .insert(dedup_key.clone(), storm);
                    return Response::Event {
                        incident: Some(storm),
                        dedup_key,
                        folded: true,
                    };
                }
                let id = self.open(cx, service, dedup_key.clone(), event, &by, decision);
                if event.dedup_key.is_empty() {
                    self.last_ungrouped.insert(service.to_string(), id);
                }
                Response::Event {
                    incident: Some(id),
                    dedup_key,
                    folded: false,
                }
            }
            (EventAction::Acknowledge, found) | (EventAction::Resolve, found) => {
                if let Some(id) = found {
                    if event.action == EventAction::Acknowledge {
                        self.acknowledge(cx, id, &by);
                    } else {
                        self.resolve(cx, id, &by);
                    }
                }
                Response::Event {
                    incident: found,
                    dedup_key,
                    folded: false,
                }
            }
        }
    }

    /// During an alert storm on `service`, the storm incident a new trigger
    /// folds into (opened, and paged, by the first trigger over the
    /// threshold); otherwise None, and the opening is counted.
    fn storm_target(
        &mut self,
        cx: &mut Cx,
        service: &str,
        event: &Event,
        by: &str,
        decision: &Decision,
    ) -> Option<IncidentId> {
        let threshold = self
            .config
            .services
            .get(service)?
            .storm_threshold_per_minute? as usize;
        let storm = self.storms.entry(service.to_string()).or_default();
        while storm
            .recent
            .front()
            .is_some_and(|t| *t + STORM_WINDOW <= cx.at)
        {
            storm.recent.pop_front();
        }
        let open_storm = storm
            .incident
            .filter(|id| self.incidents.get(id).is_some_and(|i| i.is_open()));
        if let Some(id) = open_storm {
            self.stats.triggers_folded += 1;
            if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
                inc.folded += 1;
                inc.note(
                    cx.stamp(),
                    by,
                    format!("storm: {:?} folded in: {}", event.dedup_key, event.summary),
                );
            }
            cx.effects.push(Effect::IncidentFolded { incident: id });
            return Some(id);
        }
        if storm.recent.len() < threshold {
            storm.recent.push_back(cx.at);
            return None;
        }
        let opened = storm.recent.len();
        let storm_event = Event {
            summary: format!(
                "Alert storm on {service}: {opened} incidents opened in the last minute; new triggers fold here until this is resolved"
            ),
            source: "pagerd".into(),
            ..event.clone()
        };
        let key = format!("storm:{service}:{}", cx.meta.index);
        let id = self.open(cx, service, key, &storm_event, "pagerd (storm)", decision);
        self.note(
            id,
            cx.stamp(),
            by,
            format!("storm: {:?} folded in: {}", event.dedup_key, event.summary),
        );
        if let Some(storm) = self.storms.get_mut(service) {
            storm.incident = Some(id);
            storm.recent.clear();
        }
        Some(id)
    }

    /// The open incident a key-less trigger folds into, per the service's grouping window.
    fn group_target(&self, service: &str, at: Millis) -> Option<IncidentId> {
        let window = self.config.services.get(service)?.grouping_window?;
        let id = *self.last_ungrouped.get(service)?;
        let inc = self.incidents.get(&id)?;
        (inc.is_open() && at < inc.created_at + window.millis()).then_some(id)
    }

    fn urgency_of(&self, service: &str, severity: Severity, at: Millis) -> Urgency {
        match self
            .config
            .services
            .get(service)
            .map(|s| s.urgency)
            .unwrap_or_default()
        {
            UrgencyRule::High => Urgency::High,
            UrgencyRule::Low => Urgency::Low,
            UrgencyRule::Severity => match severity {
                Severity::Critical | Severity::Error => Urgency::High,
                Severity::Warning | Severity::Info => Urgency::Low,
            },
            UrgencyRule::SupportHours => {
                let inside = self
                    .config
                    .services
                    .get(service)
                    .and_then(|s| s.support_hours.as_ref())
                    .is_some_and(|h| crate::schedule::within(&h.time_zone, &h.windows, at));
                if inside {
                    Urgency::High
                } else {
                    Urgency::Low
                }
            }
        }
    }

    /// The end of the maintenance window `service` is in at `at`, if any
    /// (`pausing`: only windows that pause escalations).
    pub fn maintenance_until(&self, service: &str, at: Millis, pausing: bool) -> Option<Millis> {
        self.config
            .maintenance_windows
            .iter()
            .filter(|w| w.start <= at && at < w.end && (!pausing || w.pause_escalations))
            .filter(|w| w.services.iter().any(|s| s == service))
            .map(|w| w.end)
            .max()
    }

    fn open(
        &mut self,
        cx: &mut Cx,
        service: &str,
        dedup_key: String,
        event: &Event,
        by: &str,
        decision: &Decision,
    ) -> IncidentId {
        self.next_incident += 1;
        let id = self.next_incident;
        let svc = self.config.services.get(service);
        let policy = svc.map(|s| s.escalation_policy.clone()).unwrap_or_default();
        let runbook_url = decision
            .runbook_url
            .clone()
            .or_else(|| svc.map(|s| s.runbook_url.clone()))
            .unwrap_or_default();
        let ack_sla = svc
            .and_then(|s| s.tier.as_ref())
            .and_then(|t| self.config.tiers.get(t))
            .map(|t| t.ack_sla.millis());
        let auto_resolve = svc.and_then(|s| s.auto_resolve_after);
        let mut inc = Incident {
            id,
            service: service.to_string(),
            dedup_key: dedup_key.clone(),
            summary: event.summary.clone(),
            source: event.source.clone(),
            severity: event.severity,
            urgency: decision
                .urgency
                .unwrap_or_else(|| self.urgency_of(service, event.severity, cx.at)),
            runbook_url,
            custom_details: event.custom_details.clone(),
            status: IncidentStatus::Triggered,
            created_at: cx.at,
            acknowledged_at: None,
            acknowledged_by: String::new(),
            resolved_at: None,
            resolved_by: String::new(),
            ack_due: ack_sla.map(|sla| cx.at + sla),
            snoozed_until: None,
            merged_into: None,
            commander: String::new(),
            liaison: String::new(),
            tracks: vec![Track::new(Assignee::Policy(policy))],
            folded: 0,
            deliveries: Vec::new(),
            timers: TimerSet::default(),
            timeline: Vec::new(),
            revision: cx.meta.index,
        };
        inc.note(cx.stamp(), by, "triggered");
        if !decision.matched.is_empty() {
            inc.note(
                cx.stamp(),
                "pagerd",
                format!("routed by rule(s): {}", decision.matched.join(", ")),
            );
        }
        self.incidents.insert(id, Arc::new(inc));
        self.open_by_key
            .entry(service.to_string())
            .or_default()
            .insert(dedup_key, id);
        self.stats.incidents_opened += 1;
        cx.effects.push(Effect::IncidentOpened { incident: id });
        if let Some(span) = auto_resolve {
            self.set_timer(
                id,
                cx.at + span.millis(),
                Timer::AutoResolve { incident: id },
            );
        }
        self.page_track(cx, id, 0, cx.at);
        id
    }

    // ---- incident actions ----

    fn acknowledge(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return not_found_incident();
        };
        if inc.status == IncidentStatus::Triggered {
            inc.status = IncidentStatus::Acknowledged;
            inc.acknowledged_at = Some(cx.at);
            inc.acknowledged_by = by.to_string();
            inc.note(cx.stamp(), by, "acknowledged");
            cx.effects
                .push(Effect::IncidentAcknowledged { incident: id });
            self.stop_paging(cx, id);
            let timeout = self
                .config
                .services
                .get(&self.incidents[&id].service)
                .and_then(|s| s.ack_timeout);
            if let Some(span) = timeout {
                self.set_timer(id, cx.at + span.millis(), Timer::Retrigger { incident: id });
            }
        }
        Response::Incident { id }
    }

    fn resolve(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return not_found_incident();
        };
        if inc.status != IncidentStatus::Resolved {
            inc.status = IncidentStatus::Resolved;
            inc.resolved_at = Some(cx.at);
            inc.resolved_by = by.to_string();
            inc.snoozed_until = None;
            inc.note(cx.stamp(), by, "resolved");
            let service = inc.service.clone();
            for key in std::mem::take(&mut inc.timers) {
                self.timers.remove(&key);
            }
            if let Some(keys) = self.open_by_key.get_mut(&service) {
                keys.retain(|_, v| *v != id);
                if keys.is_empty() {
                    self.open_by_key.remove(&service);
                }
            }
            cx.effects.push(Effect::IncidentResolved { incident: id });
            self.cancel_deliveries(cx, id);
        }
        Response::Incident { id }
    }

    /// Whether some incident was resolved before `before` (the leader's
    /// cheap check before proposing `Compact`).
    pub fn has_resolved_before(&self, before: Millis) -> bool {
        self.incidents
            .values()
            .any(|i| Self::compactable(i, before))
    }

    fn compactable(i: &Incident, before: Millis) -> bool {
        i.status == IncidentStatus::Resolved && i.resolved_at.is_some_and(|t| t < before)
    }

    /// Forget incidents resolved before `before` and their deliveries. An
    /// incident with a delivery still pending (cannot happen after resolve,
    /// which cancels them) is kept.
    fn compact(&mut self, before: Millis) -> Response {
        let old: Vec<IncidentId> = self
            .incidents
            .values()
            .filter(|i| Self::compactable(i, before))
            .filter(|i| !i.deliveries.iter().any(|d| self.pending.contains(d)))
            .map(|i| i.id)
            .collect();
        let mut deliveries = 0;
        for id in &old {
            let Some(inc) = self.incidents.remove(id) else {
                continue;
            };
            for key in &inc.timers {
                self.timers.remove(key);
            }
            for d in &inc.deliveries {
                deliveries += u64::from(self.deliveries.remove(d).is_some());
            }
        }
        let (incidents, known) = (&self.incidents, &self.deliveries);
        self.latest_to_phone.retain(|_, d| known.contains_key(d));
        self.last_ungrouped.retain(|_, i| incidents.contains_key(i));
        Response::Compacted {
            incidents: old.len() as u64,
            deliveries,
        }
    }

    fn snooze(&mut self, cx: &mut Cx, id: IncidentId, until: Millis, by: &str) -> Response {
        let Some(inc) = self.incidents.get(&id) else {
            return not_found_incident();
        };
        if !inc.is_open() {
            return rejected_invalid("id", "incident is resolved");
        }
        if until <= cx.at {
            return rejected_invalid("until", "must be in the future");
        }
        if inc.status == IncidentStatus::Triggered {
            self.acknowledge(cx, id, by);
        }
        self.clear_timers(id, |t| matches!(t, Timer::Retrigger { .. }));
        self.set_timer(id, until, Timer::Retrigger { incident: id });
        if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            inc.snoozed_until = Some(until);
            inc.note(
                cx.stamp(),
                by,
                format!("snoozed until {}", crate::time::rfc3339(until)),
            );
        }
        Response::Incident { id }
    }

    fn reassign(&mut self, cx: &mut Cx, id: IncidentId, to: &Assignee, by: &str) -> Response {
        if !self.incidents.contains_key(&id) {
            return not_found_incident();
        }
        let known = match to {
            Assignee::Policy(p) => self.config.escalation_policies.contains_key(p),
            Assignee::User(u) => self.config.users.contains_key(u),
        };
        if !known {
            return Response::Rejected(Rejection::NotFound {
                field: "to".into(),
                what: format!("{to:?}"),
            });
        }
        if !self.incidents[&id].is_open() {
            return rejected_invalid("id", "incident is resolved");
        }
        self.stop_paging(cx, id);
        if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            inc.tracks = vec![Track::new(to.clone())];
            inc.note(
                cx.stamp(),
                by,
                format!("reassigned to {}", assignee_text(to)),
            );
        }
        self.retrigger(cx, id, by);
        Response::Incident { id }
    }

    fn escalate_now(&mut self, cx: &mut Cx, id: IncidentId, level: u32, by: &str) -> Response {
        let Some(inc) = self.incidents.get(&id) else {
            return not_found_incident();
        };
        if !inc.is_open() {
            return rejected_invalid("id", "incident is resolved");
        }
        let Some(Assignee::Policy(p)) = inc.tracks.first().map(|t| &t.assignee) else {
            return rejected_invalid("level", "the incident is assigned to a user, not a policy");
        };
        let levels = self
            .config
            .escalation_policies
            .get(p)
            .map(|p| p.levels.len())
            .unwrap_or(0) as u32;
        if level == 0 || level > levels {
            return rejected_invalid("level", format!("must be 1 to {levels}"));
        }
        self.stop_paging(cx, id);
        if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            inc.tracks.truncate(1);
            inc.tracks[0].level = level - 1;
            inc.tracks[0].done = false;
            inc.note(cx.stamp(), by, format!("escalated to level {level}"));
        }
        self.retrigger(cx, id, by);
        Response::Incident { id }
    }

    fn add_responders(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        targets: &[Responder],
        by: &str,
    ) -> Response {
        let Some(inc) = self.incidents.get(&id) else {
            return not_found_incident();
        };
        if !inc.is_open() {
            return rejected_invalid("id", "incident is resolved");
        }
        if targets.is_empty() {
            return rejected_invalid("targets", "at least one responder");
        }
        let mut tracks = Vec::new();
        for (i, r) in targets.iter().enumerate() {
            let found = match r {
                Responder::User(u) => self
                    .config
                    .users
                    .contains_key(u)
                    .then(|| vec![Assignee::User(u.clone())]),
                Responder::Policy(p) => self
                    .config
                    .escalation_policies
                    .contains_key(p)
                    .then(|| vec![Assignee::Policy(p.clone())]),
                Responder::Team(t) => {
                    self.config
                        .teams
                        .get(t)
                        .map(|team| match &team.escalation_policy {
                            Some(p) => vec![Assignee::Policy(p.clone())],
                            None => team
                                .members
                                .iter()
                                .map(|m| Assignee::User(m.clone()))
                                .collect(),
                        })
                }
            };
            match found {
                Some(a) => tracks.extend(a),
                None => {
                    return Response::Rejected(Rejection::NotFound {
                        field: format!("targets[{i}]"),
                        what: format!("{r:?}"),
                    })
                }
            }
        }
        if inc.tracks.len() + tracks.len() > MAX_TRACKS {
            return rejected_invalid(
                "targets",
                format!("at most {MAX_TRACKS} escalations on one incident"),
            );
        }
        let names: Vec<String> = tracks.iter().map(assignee_text).collect();
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return not_found_incident();
        };
        inc.note(
            cx.stamp(),
            by,
            format!("responders added: {}", names.join(", ")),
        );
        let first = inc.tracks.len();
        inc.tracks.extend(tracks.into_iter().map(Track::new));
        let count = inc.tracks.len();
        if inc.status == IncidentStatus::Acknowledged {
            // Asking for help re-opens paging for the new responders only.
            inc.status = IncidentStatus::Triggered;
            self.clear_timers(id, |t| matches!(t, Timer::Retrigger { .. }));
            cx.effects
                .push(Effect::IncidentRetriggered { incident: id });
        }
        for t in first..count {
            self.page_track(cx, id, t, cx.at);
        }
        Response::Incident { id }
    }

    fn merge(&mut self, cx: &mut Cx, id: IncidentId, into: IncidentId, by: &str) -> Response {
        if id == into {
            return rejected_invalid("into", "cannot merge an incident into itself");
        }
        let (Some(src), Some(dst)) = (self.incidents.get(&id), self.incidents.get(&into)) else {
            return not_found_incident();
        };
        if !dst.is_open() {
            return rejected_invalid("into", "target incident is resolved");
        }
        if !src.is_open() {
            return rejected_invalid("id", "incident is resolved");
        }
        let (service, key, same_service) = (
            src.service.clone(),
            src.dedup_key.clone(),
            src.service == dst.service,
        );
        self.resolve(cx, id, by);
        if let Some(src) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            src.merged_into = Some(into);
            src.note(cx.stamp(), by, format!("merged into #{into}"));
        }
        if same_service {
            // Later triggers with the duplicate's key fold into the survivor.
            self.open_by_key
                .entry(service)
                .or_default()
                .insert(key, into);
        }
        if let Some(dst) = self.incidents.get_mut(&into).map(Arc::make_mut) {
            dst.note(cx.stamp(), by, format!("#{id} merged in as a duplicate"));
        }
        Response::Incident { id: into }
    }

    fn set_role(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        role: Role,
        user: &str,
        by: &str,
    ) -> Response {
        if !user.is_empty() && !self.config.users.contains_key(user) {
            return Response::Rejected(Rejection::NotFound {
                field: "user".into(),
                what: format!("user {user:?}"),
            });
        }
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return not_found_incident();
        };
        let (slot, name) = match role {
            Role::Commander => (&mut inc.commander, "incident commander"),
            Role::Liaison => (&mut inc.liaison, "communications liaison"),
        };
        *slot = user.to_string();
        let what = if user.is_empty() {
            format!("{name} cleared")
        } else {
            format!("{name}: {user}")
        };
        inc.note(cx.stamp(), by, what);
        Response::Incident { id }
    }

    fn add_note(&mut self, cx: &mut Cx, id: IncidentId, text: &str, by: &str) -> Response {
        if text.trim().is_empty() || text.len() > MAX_NOTE_BYTES {
            return rejected_invalid("text", format!("1 to {MAX_NOTE_BYTES} bytes"));
        }
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return not_found_incident();
        };
        inc.note(cx.stamp(), by, format!("note: {text}"));
        Response::Incident { id }
    }

    // ---- heartbeats ----

    fn heartbeat(&mut self, cx: &mut Cx, key: &str) -> Response {
        let Some((name, hb)) = self.config.heartbeats.iter().find(|(_, h)| h.key == key) else {
            return Response::Rejected(Rejection::NotFound {
                field: "key".into(),
                what: "heartbeat key".into(),
            });
        };
        let (name, interval) = (name.clone(), hb.interval);
        let st = self.heartbeats.entry(name.clone()).or_default();
        st.last_seen = cx.at;
        let (old, open) = (st.timer.take(), st.incident.take());
        if let Some(k) = old {
            self.timers.remove(&k);
        }
        let key = self.timers.insert(
            cx.at + interval.millis(),
            Timer::HeartbeatMissed { name: name.clone() },
        );
        if let Some(st) = self.heartbeats.get_mut(&name) {
            st.timer = Some(key);
        }
        if let Some(id) = open {
            self.resolve(cx, id, &format!("heartbeat {name}"));
            return Response::Incident { id };
        }
        Response::Noop
    }

    fn heartbeat_missed(&mut self, cx: &mut Cx, name: &str) {
        let Some(hb) = self.config.heartbeats.get(name).cloned() else {
            return;
        };
        let Some(key) = self
            .config
            .services
            .get(&hb.service)
            .and_then(|s| s.integration_keys.first())
            .cloned()
        else {
            return;
        };
        if let Some(st) = self.heartbeats.get_mut(name) {
            st.timer = None;
        }
        let summary = if hb.summary.is_empty() {
            format!("heartbeat {name} missed: no ping for {}", hb.interval)
        } else {
            hb.summary.clone()
        };
        let event = Event {
            routing_key: key,
            dedup_key: format!("heartbeat:{name}"),
            summary,
            source: "pagerd".into(),
            ..Default::default()
        };
        if let Response::Event {
            incident: Some(id), ..
        } = self.ingest(cx, &event)
        {
            if let Some(st) = self.heartbeats.get_mut(name) {
                st.incident = Some(id);
            }
        }
    }

    fn add_override(&mut self, schedule: &str, over: &crate::schedule::Override) -> Response {
        if !self.config.schedules.contains_key(schedule) {
            return Response::Rejected(Rejection::NotFound {
                field: "schedule".into(),
                what: format!("schedule {schedule:?}"),
            });
        }
        if over.end <= over.start {
            return rejected_invalid("end", "must be after start");
        }
        let mut doc = (*self.config).clone();
        if let Some(s) = doc.schedules.get_mut(schedule) {
            s.overrides.push(over.clone());
        }
        self.apply_config(&doc)
    }

    // ---- tokens ----

    fn create_token(
        &mut self,
        at: Millis,
        name: &str,
        role: crate::auth::TokenRole,
        sha256: &str,
        by: &str,
    ) -> Response {
        if name.trim().is_empty() || name.len() > crate::auth::MAX_TOKEN_NAME {
            return rejected_invalid(
                "name",
                format!("1 to {} bytes", crate::auth::MAX_TOKEN_NAME),
            );
        }
        if self.tokens.contains_key(name) {
            return rejected_invalid(
                "name",
                format!("a token named {name:?} exists; revoke it first"),
            );
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return rejected_invalid("sha256", "64 hex digits");
        }
        if self.tokens.values().any(|t| t.sha256 == sha256) {
            return rejected_invalid("sha256", "another token has this secret");
        }
        self.tokens.insert(
            name.to_string(),
            crate::auth::ApiToken {
                name: name.to_string(),
                role,
                sha256: sha256.to_ascii_lowercase(),
                created_at: at,
                created_by: by.to_string(),
            },
        );
        Response::Noop
    }

    /// The token whose secret has this digest.
    pub fn token_by_digest(&self, sha256: &str) -> Option<&crate::auth::ApiToken> {
        self.tokens.values().find(|t| t.sha256 == sha256)
    }

    // ---- time ----

    /// Re-claim for this term every delivery that is claimed and unsettled.
    fn reclaim_unsettled(&mut self, cx: &mut Cx) {
        let unsettled: Vec<DeliveryId> = self.pending.iter().copied().collect();
        for id in unsettled {
            if let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) {
                d.claim_term = cx.meta.term;
                d.reclaims += 1;
                d.in_doubt = true;
                d.updated_at = cx.at;
                self.stats.deliveries_reclaimed += 1;
                cx.effects.push(Effect::Reclaimed {
                    delivery: id,
                    term: cx.meta.term,
                });
                cx.effects.push(Effect::Deliver {
                    delivery: id,
                    term: cx.meta.term,
                });
            }
        }
    }

    fn fire_due(&mut self, cx: &mut Cx) {
        while let Some((key, timer)) = self.timers.pop_due(cx.at) {
            let status = match timer.incident() {
                Some(id) => match self.incidents.get_mut(&id).map(Arc::make_mut) {
                    Some(inc) => {
                        inc.timers.remove(&key);
                        Some(inc.status)
                    }
                    None => continue,
                },
                None => None,
            };
            if timer.pages() && status != Some(IncidentStatus::Triggered) {
                continue;
            }
            if let (true, Some(id)) = (timer.pages(), timer.incident()) {
                let service = self
                    .incidents
                    .get(&id)
                    .map(|i| i.service.clone())
                    .unwrap_or_default();
                if let Some(end) = self.maintenance_until(&service, key.at, true) {
                    // Paused for maintenance: due again when the window ends.
                    self.set_timer(id, end, timer);
                    continue;
                }
            }
            // Chained timers count from when this one was due, not from a late
            // tick, so an outage never stretches the escalation plan.
            match timer {
                Timer::Escalate { incident, track } => {
                    self.escalate(cx, incident, track as usize, key.at)
                }
                Timer::Notify {
                    incident,
                    user,
                    rule,
                    shadow,
                } => self.fire_rule(cx, incident, &user, rule as usize, shadow),
                Timer::Retry { delivery, .. } => self.retry(cx, delivery),
                Timer::Retrigger { incident } => self.retrigger(cx, incident, "pagerd"),
                Timer::AutoResolve { incident } => {
                    self.resolve(cx, incident, "pagerd (auto-resolve)");
                }
                Timer::HeartbeatMissed { name } => self.heartbeat_missed(cx, &name),
            }
        }
    }

    fn outcome(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        attempt: u32,
        result: &SendResult,
    ) -> Response {
        let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) else {
            return Response::Rejected(Rejection::NotFound {
                field: "delivery".into(),
                what: format!("delivery {id}"),
            });
        };
        if d.attempt != attempt {
            return Response::Noop; // an outcome of an earlier attempt: already settled
        }
        let incident = d.incident;
        match (d.status, result) {
            (
                DeliveryStatus::Pending,
                SendResult::Sent {
                    provider_id,
                    reconciled,
                },
            ) => {
                d.status = DeliveryStatus::Sent;
                d.provider_id = provider_id.clone();
                d.updated_at = cx.at;
                d.in_doubt = false;
                let what = if *reconciled {
                    format!(
                        "{} to {} found sent by an earlier leader (attempt {attempt}): not sent again",
                        d.method.as_str(),
                        d.user
                    )
                } else {
                    format!(
                        "{} to {} sent (attempt {attempt})",
                        d.method.as_str(),
                        d.user
                    )
                };
                self.pending.remove(&id);
                self.stats.deliveries_sent += 1;
                if *reconciled {
                    self.stats.deliveries_reconciled += 1;
                }
                cx.effects.push(Effect::DeliverySent { delivery: id });
                self.note(incident, cx.stamp(), "pagerd", what);
            }
            (
                DeliveryStatus::Pending,
                SendResult::Failed {
                    retryable,
                    in_doubt,
                    code,
                    message,
                },
            ) => {
                let (method, address, user, shadow) =
                    (d.method, d.address.clone(), d.user.clone(), d.shadow);
                if *in_doubt {
                    self.stats.deliveries_in_doubt += 1;
                }
                // Still in doubt if an earlier claim was and this attempt
                // proved nothing (it never reached the provider).
                d.in_doubt = *in_doubt || (d.in_doubt && *retryable);
                d.error = match code {
                    Some(c) => format!("{c}: {message}"),
                    None => message.clone(),
                };
                d.updated_at = cx.at;
                self.pending.remove(&id);
                let what;
                let retry_at = if *retryable && attempt < MAX_ATTEMPTS {
                    d.status = DeliveryStatus::RetryWait;
                    let when = cx.at + backoff(id, attempt);
                    what = format!(
                        "{} to {} failed, retrying: {}",
                        d.method.as_str(),
                        d.user,
                        d.error
                    );
                    self.set_timer(
                        incident,
                        when,
                        Timer::Retry {
                            incident,
                            delivery: id,
                        },
                    );
                    Some(when)
                } else {
                    d.status = DeliveryStatus::Failed;
                    what = format!("{} to {} failed: {}", d.method.as_str(), d.user, d.error);
                    self.stats.deliveries_failed += 1;
                    None
                };
                cx.effects.push(Effect::DeliveryFailed {
                    delivery: id,
                    retry_at,
                });
                self.note(incident, cx.stamp(), "pagerd", what);
                if retry_at.is_none() {
                    if let Some(c) = code.filter(|c| UNREACHABLE_CODES.contains(c)) {
                        self.mark_unreachable(cx, method, &address, message, Some(c));
                    }
                    // Failed for good: the user's next contact method now,
                    // not after its delay.
                    self.advance_user(cx, incident, &user, shadow);
                }
            }
            (DeliveryStatus::Cancelled, SendResult::Sent { provider_id, .. }) => {
                // It was in flight when the incident was acknowledged.
                d.provider_id = provider_id.clone();
                d.updated_at = cx.at;
            }
            _ => {} // already settled (a duplicate outcome after a re-claim)
        }
        Response::Noop
    }

    // ---- escalation ----

    /// Trigger an incident again (snooze over, acknowledgement timeout,
    /// reassignment, manual escalation): every track pages from where it stands.
    fn retrigger(&mut self, cx: &mut Cx, id: IncidentId, by: &str) {
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return;
        };
        if !inc.is_open() {
            return;
        }
        if inc.status == IncidentStatus::Acknowledged {
            inc.status = IncidentStatus::Triggered;
            inc.acknowledged_at = None;
            inc.acknowledged_by.clear();
            inc.snoozed_until = None;
            inc.note(cx.stamp(), by, "triggered again");
            cx.effects
                .push(Effect::IncidentRetriggered { incident: id });
        }
        self.clear_timers(id, |t| matches!(t, Timer::Retrigger { .. }));
        let tracks = self.incidents[&id].tracks.len();
        for t in 0..tracks {
            if let Some(track) = self
                .incidents
                .get_mut(&id)
                .and_then(|i| Arc::make_mut(i).tracks.get_mut(t))
            {
                track.done = false;
            }
            self.page_track(cx, id, t, cx.at);
        }
    }

    /// Page the current level of track `t` (skipping levels with nobody on
    /// call) and arm the timer for what comes next, counting from `base`.
    fn page_track(&mut self, cx: &mut Cx, id: IncidentId, t: usize, base: Millis) {
        let Some(track) = self
            .incidents
            .get(&id)
            .and_then(|i| i.tracks.get(t))
            .cloned()
        else {
            return;
        };
        let config = Arc::clone(&self.config);
        let policy = match &track.assignee {
            Assignee::User(u) => {
                self.note(id, cx.stamp(), "pagerd", format!("paging {u}"));
                self.page_user(cx, id, u, base, false);
                if let Some(tr) = self
                    .incidents
                    .get_mut(&id)
                    .and_then(|i| Arc::make_mut(i).tracks.get_mut(t))
                {
                    tr.done = true;
                }
                return;
            }
            Assignee::Policy(p) => match config.escalation_policies.get(p) {
                Some(policy) => policy,
                None => {
                    self.note(
                        id,
                        cx.stamp(),
                        "pagerd",
                        format!("escalation policy {p:?} no longer exists: nobody paged"),
                    );
                    return;
                }
            },
        };
        let (mut level, mut repeat) = (track.level as usize, track.repeat);
        // At most one full pass looking for a level with someone on call.
        for _ in 0..policy.levels.len().max(1) {
            let Some(lv) = policy.levels.get(level) else {
                break;
            };
            let (users, shadows) = self.resolve_targets(&lv.targets, base);
            if users.is_empty() {
                self.note(
                    id,
                    cx.stamp(),
                    "pagerd",
                    format!("level {}: nobody on call, skipped", level + 1),
                );
                match next_step(policy, level, repeat) {
                    Some((l, r)) => (level, repeat) = (l, r),
                    None => {
                        self.page_fallback(cx, id, t, &policy.fallback, base);
                        return;
                    }
                }
                continue;
            }
            if let Some(tr) = self
                .incidents
                .get_mut(&id)
                .and_then(|i| Arc::make_mut(i).tracks.get_mut(t))
            {
                (tr.level, tr.repeat) = (level as u32, repeat);
            }
            cx.effects.push(Effect::Escalated {
                incident: id,
                level: level as u32,
                repeat,
            });
            let mut who = users.join(", ");
            if !shadows.is_empty() {
                who.push_str(&format!(" (shadows: {})", shadows.join(", ")));
            }
            self.note(
                id,
                cx.stamp(),
                "pagerd",
                format!("paging level {} (repeat {repeat}): {who}", level + 1),
            );
            for u in &users {
                self.page_user(cx, id, u, base, false);
            }
            for u in &shadows {
                self.page_user(cx, id, u, base, true);
            }
            if next_step(policy, level, repeat).is_some() || policy.fallback.is_some() {
                let at = base + lv.escalate_after.millis();
                self.set_timer(
                    id,
                    at,
                    Timer::Escalate {
                        incident: id,
                        track: t as u32,
                    },
                );
            }
            return;
        }
        // Nobody on call anywhere in the policy.
        self.page_fallback(cx, id, t, &policy.fallback, base);
    }

    fn escalate(&mut self, cx: &mut Cx, id: IncidentId, t: usize, base: Millis) {
        let Some(track) = self
            .incidents
            .get(&id)
            .and_then(|i| i.tracks.get(t))
            .cloned()
        else {
            return;
        };
        let Assignee::Policy(p) = &track.assignee else {
            return;
        };
        let config = Arc::clone(&self.config);
        let Some(policy) = config.escalation_policies.get(p) else {
            return;
        };
        match next_step(policy, track.level as usize, track.repeat) {
            Some((level, repeat)) => {
                if let Some(tr) = self
                    .incidents
                    .get_mut(&id)
                    .and_then(|i| Arc::make_mut(i).tracks.get_mut(t))
                {
                    (tr.level, tr.repeat) = (level as u32, repeat);
                }
                self.page_track(cx, id, t, base);
            }
            None => self.page_fallback(cx, id, t, &policy.fallback, base),
        }
    }

    fn page_fallback(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        t: usize,
        fallback: &Option<Target>,
        base: Millis,
    ) {
        if let Some(tr) = self
            .incidents
            .get_mut(&id)
            .and_then(|i| Arc::make_mut(i).tracks.get_mut(t))
        {
            tr.done = true;
        }
        let Some(target) = fallback else {
            self.note(id, cx.stamp(), "pagerd", "escalation policy exhausted");
            return;
        };
        let (users, _) = self.resolve_targets(std::slice::from_ref(target), base);
        if users.is_empty() {
            self.note(
                id,
                cx.stamp(),
                "pagerd",
                "escalation policy exhausted; fallback has nobody on call",
            );
            return;
        }
        self.note(
            id,
            cx.stamp(),
            "pagerd",
            format!("paging fallback: {}", users.join(", ")),
        );
        for u in &users {
            self.page_user(cx, id, u, base, false);
        }
    }

    /// Users (responders, then shadows) the targets name at `at`, each once.
    fn resolve_targets(&self, targets: &[Target], at: Millis) -> (Vec<String>, Vec<String>) {
        let mut users: Vec<String> = Vec::new();
        let mut shadows: Vec<String> = Vec::new();
        for t in targets {
            match t {
                Target::User(u) => users.push(u.clone()),
                Target::Team(name) => {
                    if let Some(team) = self.config.teams.get(name) {
                        users.extend(team.members.iter().cloned());
                    }
                }
                Target::Schedule(name) => {
                    if let Some(s) = self.config.schedules.get(name) {
                        let on = s.on_call_at(at);
                        users.extend(on.users);
                        shadows.extend(on.shadows);
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        users.retain(|u| seen.insert(u.clone()));
        shadows.retain(|u| seen.insert(u.clone()));
        (users, shadows)
    }

    fn page_user(&mut self, cx: &mut Cx, id: IncidentId, user: &str, base: Millis, shadow: bool) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let urgency = inc.urgency;
        let Some(u) = self.config.users.get(user) else {
            self.note(
                id,
                cx.stamp(),
                "pagerd",
                format!("user {user:?} no longer exists: not paged"),
            );
            return;
        };
        let delays: Vec<Millis> = u
            .notification_rules
            .for_urgency(urgency)
            .iter()
            .map(|r| r.after.millis())
            .collect();
        // Arm the delayed rules first: an immediate rule that cannot reach
        // the user moves on to the next of them at once.
        let mut now = Vec::new();
        for (rule, after) in delays.into_iter().enumerate() {
            if after == 0 {
                now.push(rule);
            } else {
                let timer = Timer::Notify {
                    incident: id,
                    user: user.to_string(),
                    rule: rule as u32,
                    shadow,
                };
                self.set_timer(id, base + after, timer);
            }
        }
        for rule in now {
            self.fire_rule(cx, id, user, rule, shadow);
        }
    }

    /// Create the delivery for notification rule `rule` of `user`.
    fn fire_rule(&mut self, cx: &mut Cx, id: IncidentId, user: &str, rule: usize, shadow: bool) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let urgency = inc.urgency;
        let Some(u) = self.config.users.get(user) else {
            return;
        };
        let Some(r) = u.notification_rules.for_urgency(urgency).get(rule) else {
            return;
        };
        let Some(cm) = u.contact_methods.iter().find(|c| c.name == r.contact) else {
            return;
        };
        if let Some(down) = self.unreachable.get(&contact_key(cm.kind, &cm.address)) {
            let what = format!(
                "{} to {user} skipped: {} is unreachable ({}); next contact method now",
                cm.kind.as_str(),
                mask_address(&cm.address),
                down.reason
            );
            self.stats.contacts_skipped += 1;
            self.note(id, cx.stamp(), "pagerd", what);
            self.advance_user(cx, id, user, shadow);
            return;
        }
        // Tell the user which of their contact methods cannot be reached.
        let notice = u
            .contact_methods
            .iter()
            .filter_map(|c| {
                let down = self.unreachable.get(&contact_key(c.kind, &c.address))?;
                let hint = if c.kind == ContactKind::Sms
                    && (down.code == Some(21610) || down.reason.contains("STOP"))
                {
                    " Text START to re-enable it."
                } else {
                    ""
                };
                Some(format!(
                    "Your {} {} is unreachable ({}).{hint}",
                    c.kind.as_str(),
                    mask_address(&c.address),
                    down.reason
                ))
            })
            .collect::<Vec<_>>()
            .join(" ");
        let phone =
            matches!(cm.kind, ContactKind::Sms | ContactKind::Voice).then(|| cm.address.clone());
        self.next_delivery += 1;
        let did = self.next_delivery;
        let d = Delivery {
            id: did,
            incident: id,
            user: user.to_string(),
            contact: cm.name.clone(),
            method: cm.kind,
            address: cm.address.clone(),
            shadow,
            attempt: 1,
            claim_term: cx.meta.term,
            reclaims: 0,
            status: DeliveryStatus::Pending,
            claimed_at: cx.at,
            in_doubt: false,
            call_status: String::new(),
            reached: false,
            notice,
            provider_id: String::new(),
            error: String::new(),
            created_at: cx.at,
            updated_at: cx.at,
        };
        self.deliveries.insert(did, Arc::new(d));
        self.pending.insert(did);
        if let Some(phone) = phone {
            self.latest_to_phone.insert(phone, did);
        }
        self.stats.deliveries_created += 1;
        if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            inc.deliveries.push(did);
        }
        cx.effects.push(Effect::Deliver {
            delivery: did,
            term: cx.meta.term,
        });
    }

    fn retry(&mut self, cx: &mut Cx, id: DeliveryId) {
        let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) else {
            return;
        };
        if d.status != DeliveryStatus::RetryWait {
            return;
        }
        d.status = DeliveryStatus::Pending;
        d.attempt += 1;
        d.claim_term = cx.meta.term;
        d.claimed_at = cx.at;
        d.updated_at = cx.at;
        self.pending.insert(id);
        cx.effects.push(Effect::Deliver {
            delivery: id,
            term: cx.meta.term,
        });
    }

    /// Cancel the paging timers and unsent deliveries of an incident.
    fn stop_paging(&mut self, cx: &mut Cx, id: IncidentId) {
        self.clear_timers(id, Timer::pages);
        self.cancel_deliveries(cx, id);
    }

    fn cancel_deliveries(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        for did in &inc.deliveries {
            if let Some(d) = self.deliveries.get_mut(did).map(Arc::make_mut) {
                if matches!(
                    d.status,
                    DeliveryStatus::Pending | DeliveryStatus::RetryWait
                ) {
                    d.status = DeliveryStatus::Cancelled;
                    d.updated_at = cx.at;
                    self.pending.remove(did);
                    cx.effects
                        .push(Effect::DeliveryCancelled { delivery: *did });
                }
            }
        }
    }

    /// Remove the incident's timers that `which` selects.
    fn clear_timers(&mut self, id: IncidentId, which: impl Fn(&Timer) -> bool) {
        let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) else {
            return;
        };
        let keys: Vec<TimerKey> = inc.timers.iter().copied().collect();
        for key in keys {
            if self.timers.get(&key).is_some_and(&which) {
                self.timers.remove(&key);
                inc.timers.remove(&key);
            }
        }
    }

    fn set_timer(&mut self, id: IncidentId, at: Millis, timer: Timer) {
        let key = self.timers.insert(at, timer);
        if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            inc.timers.insert(key);
        }
    }

    fn note(&mut self, id: IncidentId, stamp: Stamp, by: &str, what: impl Into<String>) {
        if let Some(inc) = self.incidents.get_mut(&id).map(Arc::make_mut) {
            inc.note(stamp, by, what);
        }
    }
}

/// The level and repeat after `level` of `repeat`, or None past the last.
fn next_step(
    policy: &crate::oncall::EscalationPolicy,
    level: usize,
    repeat: u32,
) -> Option<(usize, u32)> {
    if level + 1 < policy.levels.len() {
        Some((level + 1, repeat))
    } else if repeat < policy.repeat {
        Some((0, repeat + 1))
    } else {
        None
    }
}

fn assignee_text(a: &Assignee) -> String {
    match a {
        Assignee::Policy(p) => format!("policy {p}"),
        Assignee::User(u) => format!("user {u}"),
    }
}

/// Exponential backoff from 1 s, capped at 60 s, with a jitter of up to
/// 250 ms derived from the delivery id (deterministic: no RNG in apply).
fn backoff(id: DeliveryId, attempt: u32) -> Millis {
    let base = 1_000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(6))
        .min(60_000);
    base + (id.wrapping_mul(7_919) % 250)
}
