//! What a responder does to an incident: acknowledge, resolve, snooze,
//! reassign, escalate, add responders, merge, set a role, add a note.

use super::{
    not_found_incident, rejected_invalid, Cx, State, MAX_BRIDGE_URL, MAX_NOTE_BYTES, MAX_TRACKS,
    NOTE_REPEAT_WINDOW,
};
use crate::command::{Effect, Rejection, Responder, Response};
use crate::incident::{Assignee, IncidentId, IncidentStatus, Role, Track};
use crate::time::Millis;
use crate::timer::Timer;

impl State {
    pub(super) fn acknowledge(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return not_found_incident();
        };
        if inc.status == IncidentStatus::Triggered {
            inc.status = IncidentStatus::Acknowledged;
            inc.acknowledged_at = Some(cx.at);
            inc.acknowledged_by = by.to_string();
            inc.note(cx.stamp(), by, "acknowledged");
            cx.effects
                .push(Effect::IncidentAcknowledged { incident: id });
            self.check_sla(cx, id);
            self.rca_acknowledged(cx, id, by);
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

    /// Acknowledged (or resolved without one) now: past the tier's SLA is a
    /// breach, on the timeline and in the counters, once per incident.
    fn check_sla(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return;
        };
        let Some(due) = inc.ack_due else {
            return;
        };
        if inc.sla_breached || cx.at <= due {
            return;
        }
        inc.sla_breached = true;
        let sla = due.saturating_sub(inc.created_at);
        let late = cx.at - due;
        inc.note(
            cx.stamp(),
            "pagerd",
            format!(
                "SLA breached: acknowledge within {}, {} late",
                crate::time::Span(sla),
                crate::time::Span(late - late % 1000)
            ),
        );
        self.stats.sla_breaches += 1;
    }

    pub(super) fn resolve(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(inc) = self.incidents.get_mut(&id) else {
            return not_found_incident();
        };
        if inc.status != IncidentStatus::Resolved {
            let unacknowledged = inc.acknowledged_at.is_none();
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
            if unacknowledged {
                self.check_sla(cx, id);
            }
            self.cancel_deliveries(cx, id);
            self.rca_mitigated(cx, id);
            self.roll_up(id);
        }
        Response::Incident { id }
    }

    pub(super) fn snooze(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        until: Millis,
        by: &str,
    ) -> Response {
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
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.snoozed_until = Some(until);
            inc.snoozed = true;
            inc.note(
                cx.stamp(),
                by,
                format!("snoozed until {}", crate::time::rfc3339(until)),
            );
        }
        Response::Incident { id }
    }

    pub(super) fn reassign(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        to: &Assignee,
        by: &str,
    ) -> Response {
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
        if let Some(inc) = self.incidents.get_mut(&id) {
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

    pub(super) fn escalate_now(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        level: u32,
        by: &str,
    ) -> Response {
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
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.tracks.truncate(1);
            inc.tracks[0].level = level - 1;
            inc.tracks[0].done = false;
            inc.note(cx.stamp(), by, format!("escalated to level {level}"));
        }
        self.retrigger(cx, id, by);
        Response::Incident { id }
    }

    pub(super) fn add_responders(
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
        let Some(inc) = self.incidents.get_mut(&id) else {
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

    pub(super) fn merge(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        into: IncidentId,
        by: &str,
    ) -> Response {
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
        if let Some(src) = self.incidents.get_mut(&id) {
            src.merged_into = Some(into);
            src.note(cx.stamp(), by, format!("merged into #{into}"));
        }
        self.rca_duplicate(cx, id, Some(into), by);
        if same_service {
            // Later triggers with the duplicate's key fold into the survivor.
            self.open_by_key
                .entry(service)
                .or_default()
                .insert(key, into);
        }
        if let Some(dst) = self.incidents.get_mut(&into) {
            dst.note(cx.stamp(), by, format!("#{id} merged in as a duplicate"));
        }
        Response::Incident { id: into }
    }

    pub(super) fn set_role(
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
        let Some(inc) = self.incidents.get_mut(&id) else {
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

    /// `SetBridge`: an absolute http(s) URL of at most 2 KiB, or empty to clear.
    pub(super) fn set_bridge(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        url: &str,
        by: &str,
    ) -> Response {
        let url = url.trim();
        let ok = url.is_empty()
            || ((url.starts_with("https://") || url.starts_with("http://"))
                && url.len() <= MAX_BRIDGE_URL
                && !url.contains(char::is_whitespace)
                && url
                    .split("://")
                    .nth(1)
                    .is_some_and(|r| !r.is_empty() && !r.starts_with('/')));
        if !ok {
            return rejected_invalid(
                "url",
                format!("must be an absolute http(s) URL of at most {MAX_BRIDGE_URL} bytes, or empty to clear"),
            );
        }
        let Some(inc) = self.incidents.get_mut(&id) else {
            return not_found_incident();
        };
        if inc.bridge_url == url {
            return Response::Incident { id };
        }
        inc.bridge_url = url.to_string();
        let what = if url.is_empty() {
            "conference bridge cleared".to_string()
        } else {
            format!("conference bridge: {url}")
        };
        inc.note(cx.stamp(), by, what);
        Response::Incident { id }
    }

    pub(super) fn add_note(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        text: &str,
        by: &str,
    ) -> Response {
        if text.trim().is_empty() || text.len() > MAX_NOTE_BYTES {
            return rejected_invalid("text", format!("1 to {MAX_NOTE_BYTES} bytes"));
        }
        let Some(inc) = self.incidents.get_mut(&id) else {
            return not_found_incident();
        };
        let what = format!("note: {text}");
        // A form sent again (a retry after an election, a double tap) must not
        // write the note twice: the same text by the same user within
        // NOTE_REPEAT_WINDOW is the note already there.
        let repeated = inc
            .timeline
            .iter()
            .rev()
            .take_while(|e| e.at + NOTE_REPEAT_WINDOW >= cx.at)
            .any(|e| e.by == by && e.what == what);
        if !repeated {
            inc.note(cx.stamp(), by, what);
        }
        Response::Incident { id }
    }
}

fn assignee_text(a: &Assignee) -> String {
    match a {
        Assignee::Policy(p) => format!("policy {p}"),
        Assignee::User(u) => format!("user {u}"),
    }
}
