//! Events coming in: validation, routing rules, dedup and grouping, alert
//! storms folding into one incident, maintenance windows, and opening an
//! incident.

use super::{Cx, RouterCache, State};
use crate::command::{Effect, Rejection, Response};
use crate::event::{Event, EventAction, Severity};
use crate::incident::{Assignee, Incident, IncidentId, IncidentStatus, Track};
use crate::oncall::{Urgency, UrgencyRule};
use crate::routing::{Decision, Router};
use crate::time::Millis;
use crate::timer::{Timer, TimerSet};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A service's alert-storm watch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Storm {
    /// When incidents opened in the last minute, oldest first.
    pub(super) recent: std::collections::VecDeque<Millis>,
    /// The open storm incident new triggers fold into.
    pub(super) incident: Option<IncidentId>,
}

/// The window a storm threshold counts over.
const STORM_WINDOW: Millis = 60_000;

impl State {
    pub(super) fn ingest(&mut self, cx: &mut Cx, event: &Event) -> Response {
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
    pub(super) fn ingest_to(
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
                if let Some(inc) = self.incidents.get_mut(&id) {
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
    pub(super) fn storm_target(
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
            if let Some(inc) = self.incidents.get_mut(&id) {
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
    pub(super) fn group_target(&self, service: &str, at: Millis) -> Option<IncidentId> {
        let window = self.config.services.get(service)?.grouping_window?;
        let id = *self.last_ungrouped.get(service)?;
        let inc = self.incidents.get(&id)?;
        (inc.is_open() && at < inc.created_at + window.millis()).then_some(id)
    }

    pub(super) fn urgency_of(&self, service: &str, severity: Severity, at: Millis) -> Urgency {
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

    pub(super) fn open(
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
            sla_breached: false,
            snoozed: false,
            snoozed_until: None,
            merged_into: None,
            commander: String::new(),
            liaison: String::new(),
            bridge_url: String::new(),
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
        self.open_rca(cx, id);
        self.chat_open(cx, id);
        self.ticket_open(cx, id);
        self.hooks_open(cx, id);
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
}
