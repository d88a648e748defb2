//! Replicated time: firing the timers that are due at a `Tick`, and the
//! index that ties each timer to its incident.

use super::{Cx, State};
use crate::incident::{IncidentId, IncidentStatus};
use crate::time::Millis;
use crate::timer::{Timer, TimerKey};

impl State {
    pub(super) fn fire_due(&mut self, cx: &mut Cx) {
        while let Some((key, timer)) = self.timers.pop_due(cx.at) {
            let status = match timer.incident() {
                Some(id) => match self.incidents.get_mut(&id) {
                    Some(inc) => {
                        inc.timers.remove(&key);
                        Some(inc.status)
                    }
                    // Incident 0 is no incident: a test page's retry.
                    None if id == 0 => Some(IncidentStatus::Triggered),
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
                Timer::RcaReminder { incident } => self.rca_remind(cx, incident, key),
                Timer::ShiftChange { schedule } => self.shift_change(cx, &schedule, key),
                Timer::ShiftReminder { schedule } => self.shift_reminder(cx, &schedule, key),
                Timer::WeeklyReport { team } => self.weekly_report_due(cx, &team, key),
            }
        }
    }

    /// Remove the incident's timers that `which` selects.
    pub(super) fn clear_timers(&mut self, id: IncidentId, which: impl Fn(&Timer) -> bool) {
        let Some(inc) = self.incidents.get_mut(&id) else {
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

    pub(super) fn set_timer(&mut self, id: IncidentId, at: Millis, timer: Timer) {
        let key = self.timers.insert(at, timer);
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.timers.insert(key);
        }
    }
}
