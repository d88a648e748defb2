//! The replicated state and the one function that changes it.
//!
//! ```text
//!   Command (stamped `at`, log index + term in LogMeta)
//!      │
//!      ▼
//!   State::apply ──► Response (to the proposer)
//!      │         └─► Vec<Effect> (Deliver, WakeAt, IncidentOpened, …)
//!      ▼
//!   incidents · deliveries · timers (all data, all replicated)
//! ```

use crate::command::{Command, Effect, Rejection, Response, SendResult};
use crate::delivery::{Delivery, DeliveryId, DeliveryStatus, MAX_ATTEMPTS};
use crate::event::{Event, EventAction};
use crate::incident::{Incident, IncidentId, IncidentStatus};
use crate::oncall::{OnCallDoc, Target};
use crate::time::Millis;
use crate::timer::{Timer, Timers};
use crate::LogMeta;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub config: OnCallDoc,
    pub config_version: u64,
    /// Integration key → service name; derived from `config` on apply.
    key_index: BTreeMap<String, String>,
    pub incidents: BTreeMap<IncidentId, Incident>,
    /// Open incidents by service, then dedup key.
    open_by_key: BTreeMap<String, BTreeMap<String, IncidentId>>,
    pub deliveries: BTreeMap<DeliveryId, Delivery>,
    /// Deliveries in `Pending`: what the leader has to send.
    pending: BTreeSet<DeliveryId>,
    pub timers: Timers,
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
            Command::Takeover { .. } => {
                self.reclaim_unsettled(&mut cx);
                self.fire_due(&mut cx);
                Response::Noop
            }
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
        self.pending.iter().filter_map(|id| self.deliveries.get(id))
    }

    pub fn service_for_key(&self, key: &str) -> Option<&str> {
        self.key_index.get(key).map(String::as_str)
    }

    /// The open incident of a service with this dedup key.
    pub fn open_incident(&self, service: &str, dedup_key: &str) -> Option<IncidentId> {
        self.open_by_key.get(service)?.get(dedup_key).copied()
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
            let inc = timer.incident();
            match self.incidents.get(&inc) {
                Some(i) if i.timers.contains(key) => {}
                _ => return Err(format!("timer {key:?} not indexed on incident {inc}")),
            }
        }
        for inc in self.incidents.values() {
            if inc.status != IncidentStatus::Triggered && !inc.timers.is_empty() {
                return Err(format!(
                    "incident {} is {:?} but has timers",
                    inc.id, inc.status
                ));
            }
            let indexed = self.open_incident(&inc.service, &inc.dedup_key) == Some(inc.id);
            if inc.is_open() != indexed {
                return Err(format!(
                    "incident {} open={} but indexed={indexed}",
                    inc.id,
                    inc.is_open()
                ));
            }
        }
        Ok(())
    }

    // ---- commands ----

    fn apply_config(&mut self, doc: &OnCallDoc) -> Response {
        let problems = doc.validate();
        if !problems.is_empty() {
            return Response::Rejected(Rejection::ConfigInvalid { problems });
        }
        self.config = doc.clone();
        self.config_version += 1;
        self.key_index = doc
            .services
            .iter()
            .flat_map(|(name, svc)| {
                svc.integration_keys
                    .iter()
                    .map(move |k| (k.clone(), name.clone()))
            })
            .collect();
        Response::ConfigApplied {
            version: self.config_version,
        }
    }

    fn ingest(&mut self, cx: &mut Cx, event: &Event) -> Response {
        if let Err(rejection) = event.validate() {
            return Response::Rejected(rejection);
        }
        let Some(service) = self.key_index.get(&event.routing_key).cloned() else {
            return Response::Rejected(Rejection::NotFound {
                field: "routing_key".into(),
                what: "integration key".into(),
            });
        };
        self.stats.events += 1;
        let dedup_key = if event.dedup_key.is_empty() {
            format!("pgd-{}", cx.meta.index)
        } else {
            event.dedup_key.clone()
        };
        let open = self.open_incident(&service, &dedup_key);
        let by = if event.source.is_empty() {
            "event".to_string()
        } else {
            format!("event from {}", event.source)
        };
        match (event.action, open) {
            (EventAction::Trigger, Some(id)) => {
                self.stats.triggers_folded += 1;
                if let Some(inc) = self.incidents.get_mut(&id) {
                    inc.folded += 1;
                    inc.note(cx.at, format!("trigger folded in ({by})"));
                }
                cx.effects.push(Effect::IncidentFolded { incident: id });
                Response::Event {
                    incident: Some(id),
                    dedup_key,
                    folded: true,
                }
            }
            (EventAction::Trigger, None) => {
                let id = self.open(cx, &service, dedup_key.clone(), event);
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

    fn open(&mut self, cx: &mut Cx, service: &str, dedup_key: String, event: &Event) -> IncidentId {
        self.next_incident += 1;
        let id = self.next_incident;
        let (policy, urgency, runbook_url) = match self.config.services.get(service) {
            Some(s) => (
                s.escalation_policy.clone(),
                s.urgency,
                s.runbook_url.clone(),
            ),
            None => (String::new(), Default::default(), String::new()),
        };
        let mut inc = Incident {
            id,
            service: service.to_string(),
            dedup_key: dedup_key.clone(),
            summary: event.summary.clone(),
            source: event.source.clone(),
            severity: event.severity,
            urgency,
            runbook_url,
            custom_details: event.custom_details.clone(),
            status: IncidentStatus::Triggered,
            created_at: cx.at,
            acknowledged_at: None,
            acknowledged_by: String::new(),
            resolved_at: None,
            resolved_by: String::new(),
            policy,
            level: 0,
            repeat: 0,
            folded: 0,
            deliveries: Vec::new(),
            timers: BTreeSet::new(),
            timeline: Vec::new(),
        };
        inc.note(cx.at, "triggered");
        self.incidents.insert(id, inc);
        self.open_by_key
            .entry(service.to_string())
            .or_default()
            .insert(dedup_key, id);
        self.stats.incidents_opened += 1;
        cx.effects.push(Effect::IncidentOpened { incident: id });
        self.page_level(cx, id, cx.at);
        id
    }

    fn acknowledge(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return not_found_incident();
        };
        if inc.status == IncidentStatus::Triggered {
            inc.status = IncidentStatus::Acknowledged;
            inc.acknowledged_at = Some(cx.at);
            inc.acknowledged_by = by.to_string();
            inc.note(cx.at, format!("acknowledged by {by}"));
            cx.effects
                .push(Effect::IncidentAcknowledged { incident: id });
            self.stop_paging(cx, id);
        }
        Response::Incident { id }
    }

    fn resolve(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return not_found_incident();
        };
        if inc.status != IncidentStatus::Resolved {
            inc.status = IncidentStatus::Resolved;
            inc.resolved_at = Some(cx.at);
            inc.resolved_by = by.to_string();
            inc.note(cx.at, format!("resolved by {by}"));
            let (service, key) = (inc.service.clone(), inc.dedup_key.clone());
            if let Some(keys) = self.open_by_key.get_mut(&service) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.open_by_key.remove(&service);
                }
            }
            cx.effects.push(Effect::IncidentResolved { incident: id });
            self.stop_paging(cx, id);
        }
        Response::Incident { id }
    }

    /// Cancel every timer and unsent delivery of an incident.
    fn stop_paging(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        for key in std::mem::take(&mut inc.timers) {
            self.timers.remove(&key);
        }
        for did in &inc.deliveries {
            if let Some(d) = self.deliveries.get_mut(did) {
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

    /// Re-claim for this term every delivery that is claimed and unsettled.
    fn reclaim_unsettled(&mut self, cx: &mut Cx) {
        let unsettled: Vec<DeliveryId> = self.pending.iter().copied().collect();
        for id in unsettled {
            if let Some(d) = self.deliveries.get_mut(&id) {
                d.claim_term = cx.meta.term;
                d.reclaims += 1;
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
            let incident = timer.incident();
            let live = match self.incidents.get_mut(&incident) {
                Some(inc) => {
                    inc.timers.remove(&key);
                    inc.status == IncidentStatus::Triggered
                }
                None => false,
            };
            if !live {
                continue;
            }
            // Chained timers count from when this one was due, not from a late
            // tick, so an outage never stretches the escalation plan.
            match timer {
                Timer::Escalate { incident } => self.escalate(cx, incident, key.at),
                Timer::Notify {
                    incident,
                    user,
                    rule,
                } => self.fire_rule(cx, incident, &user, rule as usize),
                Timer::Retry { delivery, .. } => self.retry(cx, delivery),
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
        let Some(d) = self.deliveries.get_mut(&id) else {
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
            (DeliveryStatus::Pending, SendResult::Sent { provider_id }) => {
                d.status = DeliveryStatus::Sent;
                d.provider_id = provider_id.clone();
                d.updated_at = cx.at;
                let what = format!(
                    "{} to {} sent (attempt {attempt})",
                    d.method.as_str(),
                    d.user
                );
                self.pending.remove(&id);
                self.stats.deliveries_sent += 1;
                cx.effects.push(Effect::DeliverySent { delivery: id });
                self.note(incident, cx.at, what);
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
                if *in_doubt {
                    self.stats.deliveries_in_doubt += 1;
                }
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
                self.note(incident, cx.at, what);
            }
            (DeliveryStatus::Cancelled, SendResult::Sent { provider_id }) => {
                // It was in flight when the incident was acknowledged.
                d.provider_id = provider_id.clone();
                d.updated_at = cx.at;
            }
            _ => {} // already settled (a duplicate outcome after a re-claim)
        }
        Response::Noop
    }

    // ---- escalation ----

    /// Page every target of the incident's current level and arm the timer
    /// for the next level (or the next repeat of the policy), counting from `base`.
    fn page_level(&mut self, cx: &mut Cx, id: IncidentId, base: Millis) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let Some(policy) = self.config.escalation_policies.get(&inc.policy) else {
            let msg = format!(
                "escalation policy {:?} no longer exists: nobody paged",
                inc.policy
            );
            self.note(id, cx.at, msg);
            return;
        };
        let (level_ix, repeat) = (inc.level as usize, inc.repeat);
        let Some(level) = policy.levels.get(level_ix) else {
            return;
        };
        let users: Vec<String> = level
            .targets
            .iter()
            .map(|Target::User(u)| u.clone())
            .collect();
        let has_next = level_ix + 1 < policy.levels.len() || repeat < policy.repeat;
        let next_at = base + level.escalate_after.millis();
        cx.effects.push(Effect::Escalated {
            incident: id,
            level: level_ix as u32,
            repeat,
        });
        self.note(
            id,
            cx.at,
            format!(
                "paging level {} (repeat {repeat}): {}",
                level_ix + 1,
                users.join(", ")
            ),
        );
        for user in &users {
            self.page_user(cx, id, user, base);
        }
        if has_next {
            self.set_timer(id, next_at, Timer::Escalate { incident: id });
        }
    }

    fn escalate(&mut self, cx: &mut Cx, id: IncidentId, base: Millis) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let levels = self
            .config
            .escalation_policies
            .get(&inc.policy)
            .map(|p| p.levels.len())
            .unwrap_or(0);
        if inc.level as usize + 1 < levels {
            inc.level += 1;
        } else {
            inc.level = 0;
            inc.repeat += 1;
        }
        self.page_level(cx, id, base);
    }

    fn page_user(&mut self, cx: &mut Cx, id: IncidentId, user: &str, base: Millis) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let urgency = inc.urgency;
        let Some(u) = self.config.users.get(user) else {
            self.note(
                id,
                cx.at,
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
        for (rule, after) in delays.into_iter().enumerate() {
            if after == 0 {
                self.fire_rule(cx, id, user, rule);
            } else {
                let timer = Timer::Notify {
                    incident: id,
                    user: user.to_string(),
                    rule: rule as u32,
                };
                self.set_timer(id, base + after, timer);
            }
        }
    }

    /// Create the delivery for notification rule `rule` of `user`.
    fn fire_rule(&mut self, cx: &mut Cx, id: IncidentId, user: &str, rule: usize) {
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
        self.next_delivery += 1;
        let did = self.next_delivery;
        let d = Delivery {
            id: did,
            incident: id,
            user: user.to_string(),
            contact: cm.name.clone(),
            method: cm.kind,
            address: cm.address.clone(),
            attempt: 1,
            claim_term: cx.meta.term,
            reclaims: 0,
            status: DeliveryStatus::Pending,
            provider_id: String::new(),
            error: String::new(),
            created_at: cx.at,
            updated_at: cx.at,
        };
        self.deliveries.insert(did, d);
        self.pending.insert(did);
        self.stats.deliveries_created += 1;
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.deliveries.push(did);
        }
        cx.effects.push(Effect::Deliver {
            delivery: did,
            term: cx.meta.term,
        });
    }

    fn retry(&mut self, cx: &mut Cx, id: DeliveryId) {
        let Some(d) = self.deliveries.get_mut(&id) else {
            return;
        };
        if d.status != DeliveryStatus::RetryWait {
            return;
        }
        d.status = DeliveryStatus::Pending;
        d.attempt += 1;
        d.claim_term = cx.meta.term;
        d.updated_at = cx.at;
        self.pending.insert(id);
        cx.effects.push(Effect::Deliver {
            delivery: id,
            term: cx.meta.term,
        });
    }

    fn set_timer(&mut self, id: IncidentId, at: Millis, timer: Timer) {
        let key = self.timers.insert(at, timer);
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.timers.insert(key);
        }
    }

    fn note(&mut self, id: IncidentId, at: Millis, what: String) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.note(at, what);
        }
    }
}

fn not_found_incident() -> Response {
    Response::Rejected(Rejection::NotFound {
        field: "id".into(),
        what: "incident".into(),
    })
}

/// Exponential backoff from 1 s, capped at 60 s, with a jitter of up to
/// 250 ms derived from the delivery id (deterministic: no RNG in apply).
fn backoff(id: DeliveryId, attempt: u32) -> Millis {
    let base = 1_000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(6))
        .min(60_000);
    base + (id.wrapping_mul(7_919) % 250)
}
