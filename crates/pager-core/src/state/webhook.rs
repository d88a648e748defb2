//! Webhook events (see [`crate::webhook`]): told apart after each entry from
//! what the incidents it changed look like now against what the webhooks
//! last saw of them, queued per (subscription, incident), delivered one at a
//! time, retried for 24 hours, then dead until replayed.

use super::delivery::RetryRule;
use super::{Cx, State};
use crate::command::{Rejection, Response, SendResult};
use crate::delivery::{DeliveryId, DeliveryStatus, Purpose};
use crate::incident::{Incident, IncidentId};
use crate::oncall::{ContactKind, ContactMethod};
use crate::time::Millis;
use crate::webhook::{self, HookCursor, HookEvent, HookKind, HookStatus, RETRY_WINDOW};

impl State {
    /// The subscriptions that take events of `service`'s incidents.
    fn hook_subscribers(&self, service: &str) -> Vec<String> {
        let team = self
            .config
            .services
            .get(service)
            .and_then(|s| s.team.as_deref());
        self.config
            .webhooks
            .iter()
            .filter(|(_, s)| {
                s.services.iter().any(|x| x == service)
                    || team.is_some_and(|t| s.teams.iter().any(|x| x == t))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A new incident: its `triggered` event, and a cursor to tell its
    /// later changes by, when some subscription takes its service.
    pub(super) fn hooks_open(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        if self.hook_subscribers(&inc.service).is_empty() {
            return;
        }
        let cursor = cursor_of(inc, self.rca_status(id));
        let by = inc
            .timeline
            .first()
            .map(|e| e.by.clone())
            .unwrap_or_default();
        self.hook_cursors.insert(id, cursor);
        self.hook_emit(cx, id, HookKind::Triggered, &by, String::new());
    }

    fn rca_status(&self, id: IncidentId) -> String {
        self.rcas
            .get(&id)
            .map(|r| r.status.as_str().to_string())
            .unwrap_or_default()
    }

    /// After an entry is applied: the events of the incidents it changed.
    pub(super) fn hooks_changed(&mut self, cx: &mut Cx) {
        if self.hook_cursors.is_empty() {
            return;
        }
        let changed: Vec<IncidentId> = self
            .incidents
            .just_changed()
            .iter()
            .copied()
            .filter(|id| self.hook_cursors.contains_key(id))
            .collect();
        for id in changed {
            let (Some(inc), Some(old)) = (self.incidents.get(&id), self.hook_cursors.get(&id))
            else {
                continue;
            };
            let now = cursor_of(inc, self.rca_status(id));
            let mut events: Vec<(HookKind, String, String)> = Vec::new();
            if now.status != old.status {
                let (kind, by) = match inc.status {
                    crate::incident::IncidentStatus::Triggered => (
                        HookKind::Triggered,
                        last_by(inc, old.seen).unwrap_or_default(),
                    ),
                    crate::incident::IncidentStatus::Acknowledged => {
                        (HookKind::Acknowledged, inc.acknowledged_by.clone())
                    }
                    crate::incident::IncidentStatus::Resolved => {
                        (HookKind::Resolved, inc.resolved_by.clone())
                    }
                };
                events.push((kind, by, String::new()));
            }
            if now.level != old.level && inc.is_open() {
                events.push((
                    HookKind::Escalated,
                    last_by(inc, old.seen).unwrap_or_default(),
                    format!("level {}", now.level.0 + 1),
                ));
            }
            for e in inc.timeline.iter().skip(old.seen as usize) {
                if let Some(text) = e.what.strip_prefix("note: ") {
                    events.push((HookKind::NoteAdded, e.by.clone(), text.to_string()));
                }
            }
            if now.rca != old.rca && !now.rca.is_empty() {
                events.push((HookKind::RcaChanged, String::new(), now.rca.clone()));
            }
            self.hook_cursors.insert(id, now);
            for (kind, by, detail) in events {
                self.hook_emit(cx, id, kind, &by, detail);
            }
        }
    }

    /// Record `kind` for every subscription that takes it, and start the
    /// delivery of each that is at the head of its queue.
    fn hook_emit(&mut self, cx: &mut Cx, id: IncidentId, kind: HookKind, by: &str, detail: String) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let subs: Vec<String> = self
            .hook_subscribers(&inc.service)
            .into_iter()
            .filter(|s| self.config.webhooks.get(s).is_some_and(|w| w.wants(kind)))
            .collect();
        let bridge_url = inc.bridge_url.clone();
        let (status, service, summary, urgency, level) = (
            inc.status.as_str().to_string(),
            inc.service.clone(),
            inc.summary.clone(),
            inc.urgency.as_str().to_string(),
            inc.escalation().0 + 1,
        );
        for subscription in subs {
            self.next_hook_event += 1;
            let event = HookEvent {
                id: self.next_hook_event,
                subscription: subscription.clone(),
                incident: id,
                kind,
                at: cx.at,
                by: by.to_string(),
                status: status.clone(),
                service: service.clone(),
                summary: summary.clone(),
                urgency: urgency.clone(),
                level,
                bridge_url: bridge_url.clone(),
                detail: detail.clone(),
                state: HookStatus::Queued,
                delivery: None,
                retry_until: 0,
                attempts: 0,
                error: String::new(),
                settled_at: None,
                replays: 0,
            };
            self.hook_queues.entry(id).or_default().push(event.id);
            self.hook_events.insert(event.id, event);
            self.hook_next(cx, id, &subscription);
        }
    }

    /// Send the oldest queued event of (`subscription`, `incident`) unless
    /// one of theirs is being sent.
    fn hook_next(&mut self, cx: &mut Cx, incident: IncidentId, subscription: &str) {
        let Some(queue) = self.hook_queues.get(&incident) else {
            return;
        };
        let mut head = None;
        for eid in queue {
            let Some(e) = self.hook_events.get(eid) else {
                continue;
            };
            if e.subscription != subscription {
                continue;
            }
            match e.state {
                HookStatus::Sending => return,
                HookStatus::Queued => {
                    head = Some(*eid);
                    break;
                }
                _ => {}
            }
        }
        let Some(eid) = head else {
            return;
        };
        let Some(url) = self
            .config
            .webhooks
            .get(subscription)
            .map(|w| w.url.clone())
        else {
            // The subscription is gone from the document: its events die.
            self.hook_settle(
                cx,
                eid,
                false,
                "the subscription is no longer in the document",
            );
            return;
        };
        let cm = ContactMethod {
            name: subscription.to_string(),
            kind: ContactKind::Webhook,
            address: url,
        };
        let delivery = self.queue_detached(cx, incident, "", Purpose::Webhook { event: eid }, &cm);
        if let Some(e) = self.hook_events.get_mut(&eid) {
            e.state = HookStatus::Sending;
            e.delivery = Some(delivery);
            e.retry_until = cx.at + RETRY_WINDOW;
        }
    }

    /// Delivered (`ok`) or dead: out of its queue, and the next one goes.
    fn hook_settle(&mut self, cx: &mut Cx, eid: u64, ok: bool, error: &str) {
        let Some(e) = self.hook_events.get_mut(&eid) else {
            return;
        };
        e.state = if ok {
            HookStatus::Delivered
        } else {
            HookStatus::Dead
        };
        e.settled_at = Some(cx.at);
        if ok {
            e.error.clear();
        } else if !error.is_empty() {
            e.error = error.to_string();
        }
        let (incident, subscription) = (e.incident, e.subscription.clone());
        if let Some(queue) = self.hook_queues.get_mut(&incident) {
            queue.retain(|x| *x != eid);
            if queue.is_empty() {
                self.hook_queues.remove(&incident);
            }
        }
        if ok {
            self.stats.webhooks_delivered += 1;
        } else {
            self.stats.webhooks_dead += 1;
        }
        self.hook_next(cx, incident, &subscription);
    }

    /// The outcome of an attempt: delivered; retried with backoff while
    /// within 24 hours of the first attempt; else dead.
    pub(super) fn hook_outcome(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        event: u64,
        result: &SendResult,
    ) -> Response {
        let Some(attempt) = self
            .deliveries
            .get(&id)
            .filter(|d| d.status == DeliveryStatus::Pending)
            .map(|d| d.attempt)
        else {
            return Response::Noop; // settled already (a duplicate outcome after a re-claim)
        };
        let until = self.hook_events.get(&event).map_or(0, |e| e.retry_until);
        let rule = RetryRule::Until {
            until,
            backoff: webhook::backoff,
            key: event,
        };
        let settled = self.settle_detached(cx, id, attempt, result, rule);
        if let Some(e) = self.hook_events.get_mut(&event) {
            e.attempts += 1;
            if let Some(d) = self.deliveries.get(&id) {
                e.error.clone_from(&d.error);
            }
        }
        match settled {
            Some((_, Ok(_))) => self.hook_settle(cx, event, true, ""),
            Some((_, Err(error))) => self.hook_settle(cx, event, false, &error),
            None => {} // waiting for its retry
        }
        Response::Noop
    }

    /// `ReplayWebhook`: a dead event goes again, behind its incident's
    /// queued ones, with a new 24 hours and the same id.
    pub(super) fn replay_webhook(&mut self, cx: &mut Cx, event: u64, by: &str) -> Response {
        let Some(e) = self.hook_events.get_mut(&event) else {
            return Response::Rejected(Rejection::NotFound {
                field: "event".into(),
                what: format!("webhook event {event}"),
            });
        };
        if e.state != HookStatus::Dead {
            return super::rejected_invalid(
                "event",
                format!(
                    "event {event} is {}: only a dead one is replayed",
                    e.state.as_str()
                ),
            );
        }
        e.state = HookStatus::Queued;
        e.settled_at = None;
        e.delivery = None;
        e.replays += 1;
        let (incident, subscription) = (e.incident, e.subscription.clone());
        self.hook_queues.entry(incident).or_default().push(event);
        self.note(
            incident,
            cx.stamp(),
            by,
            format!("webhook event {event} to {subscription} replayed"),
        );
        self.hook_next(cx, incident, &subscription);
        Response::Noop
    }

    /// After a compaction: delivered events older than a week and dead ones
    /// older than 30 days go, and the cursors of incidents forgotten.
    pub(super) fn forget_hooks(&mut self, now: Millis) {
        self.hook_events
            .retain(|_, e| match (e.state, e.settled_at) {
                (HookStatus::Delivered, Some(t)) => t + webhook::DELIVERED_KEPT > now,
                (HookStatus::Dead, Some(t)) => t + webhook::DEAD_KEPT > now,
                _ => true,
            });
        let incidents = &self.incidents;
        self.hook_cursors.retain(|id, _| incidents.contains_key(id));
    }
}

fn cursor_of(inc: &Incident, rca: String) -> HookCursor {
    HookCursor {
        status: inc.status.as_str().to_string(),
        level: inc.escalation(),
        seen: inc.timeline.len() as u32,
        rca,
    }
}

/// Who made the newest change after entry `seen`.
fn last_by(inc: &Incident, seen: u32) -> Option<String> {
    inc.timeline
        .iter()
        .skip(seen as usize)
        .last()
        .map(|e| e.by.clone())
}
