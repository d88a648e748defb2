//! Phones answering back: SMS reply codes and keypresses, call status
//! callbacks, unreachable contact methods, and moving a user on to their
//! next contact method at once when one cannot reach them.

use super::{Cx, State};
use crate::command::Response;
use crate::delivery::{contact_key, DeliveryId, PhoneAction, Unreachable};
use crate::incident::{Assignee, IncidentId, IncidentStatus};
use crate::oncall::ContactKind;
use crate::timer::{Timer, TimerKey};
use std::sync::Arc;

/// Call statuses after which Twilio says no more about a call.
const CALL_ENDED: [&str; 5] = ["completed", "busy", "no-answer", "failed", "canceled"];

impl State {
    pub(super) fn phone_reply(
        &mut self,
        cx: &mut Cx,
        from: &str,
        via: ContactKind,
        code: Option<DeliveryId>,
        action: PhoneAction,
    ) -> Response {
        let found = match code {
            Some(id) => self.deliveries.get(&id).filter(|d| d.address == from),
            None => self
                .latest_to_phone
                .get(from)
                .and_then(|id| self.deliveries.get(id)),
        };
        let Some(d) = found else {
            let message = match code {
                Some(id) => format!("pagerd: no page {id} was sent to this phone."),
                None => "pagerd: no page was sent to this phone.".to_string(),
            };
            return Response::Reply {
                incident: None,
                message,
            };
        };
        let (did, incident, user) = (d.id, d.incident, d.user.clone());
        if via == ContactKind::Voice {
            if let Some(d) = self.deliveries.get_mut(&did).map(Arc::make_mut) {
                d.reached = true;
                d.updated_at = cx.at;
            }
        }
        self.stats.phone_replies += 1;
        let Some(inc) = self.incidents.get(&incident) else {
            return Response::Reply {
                incident: None,
                message: format!("pagerd: incident {incident} no longer exists."),
            };
        };
        let by = format!("{user} ({})", via.as_str());
        let (status, ack_by, res_by) = (
            inc.status,
            inc.acknowledged_by.clone(),
            inc.resolved_by.clone(),
        );
        let message = match (action, status) {
            (_, IncidentStatus::Resolved) => {
                format!("Incident {incident} was already resolved by {res_by}.")
            }
            (PhoneAction::Acknowledge, IncidentStatus::Acknowledged) => {
                format!("Incident {incident} was already acknowledged by {ack_by}.")
            }
            (PhoneAction::Acknowledge, IncidentStatus::Triggered) => {
                self.acknowledge(cx, incident, &by);
                format!("Acknowledged incident {incident}.")
            }
            (PhoneAction::Resolve, _) => {
                self.resolve(cx, incident, &by);
                format!("Resolved incident {incident}.")
            }
            (PhoneAction::Escalate, _) => match self.next_level(incident) {
                Some(level) => {
                    self.escalate_now(cx, incident, level, &by);
                    format!("Escalated incident {incident} to level {level}.")
                }
                None => format!(
                    "Incident {incident} cannot be escalated: it is at its last level or assigned to a user."
                ),
            },
        };
        Response::Reply {
            incident: Some(incident),
            message,
        }
    }

    /// The 1-based level after the one the primary track is paging.
    fn next_level(&self, id: IncidentId) -> Option<u32> {
        let track = self.incidents.get(&id)?.tracks.first()?;
        let Assignee::Policy(p) = &track.assignee else {
            return None;
        };
        let levels = self.config.escalation_policies.get(p)?.levels.len() as u32;
        (track.level + 1 < levels).then_some(track.level + 2)
    }

    pub(super) fn call_status(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        attempt: u32,
        status: &str,
        answered_by: &str,
    ) -> Response {
        let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) else {
            return Response::Noop;
        };
        if d.attempt != attempt || d.method != ContactKind::Voice {
            return Response::Noop;
        }
        let first_end =
            CALL_ENDED.contains(&status) && !CALL_ENDED.contains(&d.call_status.as_str());
        d.call_status = status.to_string();
        d.updated_at = cx.at;
        if !first_end || d.reached {
            return Response::Noop;
        }
        let machine = answered_by.starts_with("machine") || answered_by == "fax";
        let why = if machine {
            "voicemail"
        } else if status == "completed" {
            "no key pressed"
        } else {
            status
        };
        let (incident, user, shadow) = (d.incident, d.user.clone(), d.shadow);
        self.stats.calls_unanswered += 1;
        let paging = self
            .incidents
            .get(&incident)
            .is_some_and(|i| i.status == IncidentStatus::Triggered);
        let next = if paging {
            "; next contact method now"
        } else {
            ""
        };
        self.note(
            incident,
            cx.stamp(),
            "pagerd",
            format!("voice call to {user} not answered ({why}, attempt {attempt}){next}"),
        );
        if paging {
            self.advance_user(cx, incident, &user, shadow);
        }
        Response::Noop
    }

    pub(super) fn contact_health(
        &mut self,
        cx: &mut Cx,
        method: ContactKind,
        address: &str,
        reachable: bool,
        reason: &str,
    ) -> Response {
        let message = if reachable {
            self.unreachable.remove(&contact_key(method, address));
            format!(
                "pagerd: {} paging to this number is on again.",
                method.as_str()
            )
        } else {
            self.mark_unreachable(cx, method, address, reason, None);
            format!(
                "pagerd: {} paging to this number is off; pages go to your other contact methods. Text START to turn it back on.",
                method.as_str()
            )
        };
        Response::Reply {
            incident: None,
            message,
        }
    }

    pub(super) fn mark_unreachable(
        &mut self,
        cx: &mut Cx,
        method: ContactKind,
        address: &str,
        reason: &str,
        code: Option<i64>,
    ) {
        let key = contact_key(method, address);
        if self.unreachable.contains_key(&key) {
            return;
        }
        self.unreachable.insert(
            key,
            Unreachable {
                method,
                address: address.to_string(),
                reason: reason.to_string(),
                code,
                since: cx.at,
            },
        );
    }

    /// Fire `user`'s next pending notification rule on `incident` now instead
    /// of after its delay (the current one could not reach them).
    pub(super) fn advance_user(&mut self, cx: &mut Cx, id: IncidentId, user: &str, shadow: bool) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        if inc.status != IncidentStatus::Triggered {
            return;
        }
        let next: Option<(TimerKey, u32)> =
            inc.timers
                .iter()
                .find_map(|key| match self.timers.get(key) {
                    Some(Timer::Notify {
                        user: u,
                        rule,
                        shadow: s,
                        ..
                    }) if u == user && *s == shadow => Some((*key, *rule)),
                    _ => None,
                });
        let Some((key, rule)) = next else {
            return;
        };
        self.timers.remove(&key);
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.timers.remove(&key);
        }
        self.fire_rule(cx, id, user, rule as usize, shadow);
    }
}
