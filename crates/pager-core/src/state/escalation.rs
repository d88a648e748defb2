//! Escalation: paging a track's level (users, schedules, teams resolved at
//! that instant), moving to the next level or repeat, the policy's fallback,
//! and each paged user's notification rules becoming deliveries or timers.

use super::{Cx, State};
use crate::command::Effect;
use crate::delivery::{contact_key, mask_address, Delivery};
use crate::incident::{Assignee, IncidentId, IncidentStatus};
use crate::oncall::{ContactKind, Target};
use crate::time::Millis;
use crate::timer::Timer;
use std::collections::BTreeSet;
use std::sync::Arc;

impl State {
    /// Trigger an incident again (snooze over, acknowledgement timeout,
    /// reassignment, manual escalation): every track pages from where it stands.
    pub(super) fn retrigger(&mut self, cx: &mut Cx, id: IncidentId, by: &str) {
        let Some(inc) = self.incidents.get_mut(&id) else {
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
                .and_then(|i| i.tracks.get_mut(t))
            {
                track.done = false;
            }
            self.page_track(cx, id, t, cx.at);
        }
    }

    /// Page the current level of track `t` (skipping levels with nobody on
    /// call) and arm the timer for what comes next, counting from `base`.
    pub(super) fn page_track(&mut self, cx: &mut Cx, id: IncidentId, t: usize, base: Millis) {
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
                    .and_then(|i| i.tracks.get_mut(t))
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
                .and_then(|i| i.tracks.get_mut(t))
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

    pub(super) fn escalate(&mut self, cx: &mut Cx, id: IncidentId, t: usize, base: Millis) {
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
                    .and_then(|i| i.tracks.get_mut(t))
                {
                    (tr.level, tr.repeat) = (level as u32, repeat);
                }
                self.page_track(cx, id, t, base);
            }
            None => self.page_fallback(cx, id, t, &policy.fallback, base),
        }
    }

    pub(super) fn page_fallback(
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
            .and_then(|i| i.tracks.get_mut(t))
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
    pub(super) fn resolve_targets(
        &self,
        targets: &[Target],
        at: Millis,
    ) -> (Vec<String>, Vec<String>) {
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

    pub(super) fn page_user(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        user: &str,
        base: Millis,
        shadow: bool,
    ) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let urgency = inc.urgency;
        if !self.config.users.contains_key(user) {
            self.note(
                id,
                cx.stamp(),
                "pagerd",
                format!("user {user:?} no longer exists: not paged"),
            );
            return;
        }
        if !shadow {
            self.rca_paged(cx, id, user);
        }
        let Some(u) = self.config.users.get(user) else {
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
    pub(super) fn fire_rule(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        user: &str,
        rule: usize,
        shadow: bool,
    ) {
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
            shadow,
            notice,
            ..Delivery::claimed(did, id, user, cm, cx.meta.term, cx.at)
        };
        self.deliveries.insert(did, Arc::new(d));
        self.pending.insert(did);
        if let Some(phone) = phone {
            self.latest_to_phone.insert(phone, did);
        }
        self.stats.deliveries_created += 1;
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.deliveries.push(did);
        }
        cx.effects.push(Effect::Deliver {
            delivery: did,
            term: cx.meta.term,
        });
    }

    /// Cancel the paging timers and unsent deliveries of an incident.
    pub(super) fn stop_paging(&mut self, cx: &mut Cx, id: IncidentId) {
        self.clear_timers(id, Timer::pages);
        self.cancel_deliveries(cx, id);
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
