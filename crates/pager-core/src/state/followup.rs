//! After the page: RCA records, their reminders, and the page board.
//!
//! A record opens with every high-urgency incident of a service whose RCA
//! policy is not `off`; the incident's own changes move it (acknowledge
//! assigns, resolve mitigates and starts the clock, merge makes it a
//! duplicate) and the commands here write and complete it and move its card.
//! Reminders are timers like escalations: the leader fires them, a new leader
//! fires what the old one did not, and each is a replicated email delivery.

use super::{rejected_invalid, Cx, State};
use crate::command::{Effect, Rejection, Response};
use crate::delivery::{Delivery, Purpose};
use crate::incident::{IncidentId, IncidentStatus};
use crate::oncall::{ContactKind, ContactMethod, Urgency};
use crate::rca::{
    Rca, RcaEdit, RcaLine, RcaPolicy, RcaStatus, Stage, ADMINS_AFTER, DEFAULT_RCA_DUE,
    REMINDER_EVERY,
};
use crate::time::Millis;
use crate::timer::{Timer, TimerKey};
use std::sync::Arc;

fn no_rca(incident: IncidentId) -> Response {
    Response::Rejected(Rejection::NotFound {
        field: "incident".into(),
        what: format!("an RCA record for incident {incident}"),
    })
}

impl State {
    /// The RCA policy of a service: its own, else its tier's, else optional.
    pub fn rca_policy(&self, service: &str) -> RcaPolicy {
        let Some(svc) = self.config.services.get(service) else {
            return RcaPolicy::Off;
        };
        svc.rca
            .or_else(|| {
                svc.tier
                    .as_ref()
                    .and_then(|t| self.config.tiers.get(t))
                    .and_then(|t| t.rca)
            })
            .unwrap_or_default()
    }

    /// How long after mitigation a required RCA of `service` is due.
    fn rca_due_after(&self, service: &str) -> Millis {
        self.config
            .services
            .get(service)
            .and_then(|s| s.tier.as_ref())
            .and_then(|t| self.config.tiers.get(t))
            .and_then(|t| t.rca_due)
            .map(|d| d.millis())
            .unwrap_or(DEFAULT_RCA_DUE)
    }

    /// The user's address for low-urgency email: `email`, else their first
    /// email contact method.
    pub(super) fn email_of(&self, user: &str) -> Option<ContactMethod> {
        let u = self.config.users.get(user)?;
        match u.email.trim() {
            "" => u
                .contact_methods
                .iter()
                .find(|c| c.kind == ContactKind::Email)
                .cloned(),
            e => Some(ContactMethod {
                name: "email".into(),
                kind: ContactKind::Email,
                address: e.to_string(),
            }),
        }
    }

    fn rca_mut(&mut self, id: IncidentId, index: u64) -> Option<&mut Rca> {
        let rca = Arc::make_mut(self.rcas.get_mut(&id)?);
        rca.revision = index;
        Some(rca)
    }

    /// A new incident: its RCA record, when it is high urgency and its
    /// service wants one.
    pub(super) fn open_rca(&mut self, cx: &Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        let policy = self.rca_policy(&inc.service);
        if inc.urgency != Urgency::High || policy == RcaPolicy::Off {
            return;
        }
        let team = self
            .config
            .services
            .get(&inc.service)
            .and_then(|s| s.team.clone())
            .unwrap_or_default();
        let rca = Rca {
            incident: id,
            service: inc.service.clone(),
            team,
            title: inc.summary.clone(),
            required: policy == RcaPolicy::Required,
            status: RcaStatus::Open,
            assignee: String::new(),
            opened_at: cx.at,
            mitigated_at: None,
            due: None,
            completed_at: None,
            completed_by: String::new(),
            duplicate_of: None,
            written: None,
            stage: Stage::New,
            stage_since: cx.at,
            reminders: 0,
            reminder: None,
            revision: cx.meta.index,
        };
        self.rcas.insert(id, Arc::new(rca));
    }

    /// A user was paged for the incident: they hold its RCA until someone
    /// acknowledges (the first paged only).
    pub(super) fn rca_paged(&mut self, cx: &Cx, id: IncidentId, user: &str) {
        if self.rcas.get(&id).is_some_and(|r| r.assignee.is_empty()) {
            if let Some(rca) = self.rca_mut(id, cx.meta.index) {
                rca.assignee = user.to_string();
            }
        }
    }

    /// The incident was acknowledged by `by` (`alice`, `alice (sms)`): a
    /// user of the document takes its RCA.
    pub(super) fn rca_acknowledged(&mut self, cx: &Cx, id: IncidentId, by: &str) {
        let name = by.split(" (").next().unwrap_or(by);
        if !self.config.users.contains_key(name) || !self.rcas.contains_key(&id) {
            return;
        }
        if let Some(rca) = self.rca_mut(id, cx.meta.index) {
            if rca.status == RcaStatus::Open {
                rca.assignee = name.to_string();
            }
        }
    }

    /// The incident was resolved: the RCA is mitigated, and a required one
    /// is due after the tier's time, with a reminder then.
    pub(super) fn rca_mitigated(&mut self, cx: &Cx, id: IncidentId) {
        let Some(rca) = self.rcas.get(&id) else {
            return;
        };
        if rca.status != RcaStatus::Open {
            return;
        }
        let due = rca
            .required
            .then(|| cx.at + self.rca_due_after(&rca.service));
        let key = due.map(|d| self.timers.insert(d, Timer::RcaReminder { incident: id }));
        if let Some(rca) = self.rca_mut(id, cx.meta.index) {
            rca.status = RcaStatus::Mitigated;
            rca.mitigated_at = Some(cx.at);
            rca.due = due;
            rca.reminder = key;
        }
    }

    /// The incident is a duplicate: its RCA is not needed, and its card is done.
    pub(super) fn rca_duplicate(
        &mut self,
        cx: &Cx,
        id: IncidentId,
        of: Option<IncidentId>,
        by: &str,
    ) {
        let Some(rca) = self.rcas.get(&id) else {
            return;
        };
        if rca.status.is_done() {
            return;
        }
        if let Some(key) = rca.reminder {
            self.timers.remove(&key);
        }
        if let Some(rca) = self.rca_mut(id, cx.meta.index) {
            rca.status = RcaStatus::Duplicate;
            rca.duplicate_of = of;
            rca.completed_at = Some(cx.at);
            rca.completed_by = by.to_string();
            rca.reminder = None;
            rca.stage = Stage::Complete;
            rca.stage_since = cx.at;
        }
    }

    /// `EditRca`: the written part changes as a whole or not at all.
    pub(super) fn edit_rca(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        edit: &RcaEdit,
        by: &str,
    ) -> Response {
        let Some(rca) = self.rcas.get(&id) else {
            return no_rca(id);
        };
        if edit.if_revision.is_some_and(|r| r != rca.revision) {
            return rejected_invalid(
                "revision",
                "someone changed this RCA since the form was opened: reload it and edit again",
            );
        }
        if let Some(a) = &edit.assignee {
            if !self.config.users.contains_key(a) {
                return Response::Rejected(Rejection::NotFound {
                    field: "assignee".into(),
                    what: format!("user {a:?}"),
                });
            }
        }
        let mut text = edit.applied_to(rca.text());
        if let Some((field, why)) = text.oversized() {
            return rejected_invalid(field, why);
        }
        // The first edit starts the timeline from the incident's own.
        if text.timeline.is_empty() && edit.timeline.is_none() {
            text.timeline = self.incident_lines(id);
        }
        let completed = rca.status == RcaStatus::Completed;
        if completed {
            if let Some((field, why)) = text.missing() {
                return rejected_invalid(field, format!("the RCA is complete: {why}"));
            }
        }
        let open_before = rca.text().open_repairs();
        let index = cx.meta.index;
        let Some(rca) = self.rca_mut(id, index) else {
            return no_rca(id);
        };
        rca.set_text(text);
        if let Some(a) = &edit.assignee {
            rca.assignee = a.clone();
        }
        // A card past the RCA follows its repair items.
        let open = rca.text().open_repairs();
        if open != open_before {
            let stage = match (rca.stage, open) {
                (Stage::FollowUpsUnderway, 0) => Some(Stage::FollowUpsComplete),
                (Stage::FollowUpsComplete | Stage::Complete, n) if n > 0 => {
                    Some(Stage::FollowUpsUnderway)
                }
                _ => None,
            };
            if let Some(stage) = stage {
                rca.stage = stage;
                rca.stage_since = cx.at;
            }
        }
        self.note_if_kept(cx, id, by, "edited the RCA");
        Response::Incident { id }
    }

    /// The incident's timeline as the start of its RCA's.
    fn incident_lines(&self, id: IncidentId) -> Vec<RcaLine> {
        let Some(inc) = self.incidents.get(&id) else {
            return Vec::new();
        };
        inc.timeline
            .iter()
            .take(crate::rca::MAX_RCA_ITEMS)
            .map(|e| RcaLine {
                at: e.at,
                what: format!("{} ({})", e.what, e.by),
            })
            .collect()
    }

    /// `CompleteRca`: refused while the incident is open or a field it
    /// needs is empty.
    pub(super) fn complete_rca(&mut self, cx: &mut Cx, id: IncidentId, by: &str) -> Response {
        let Some(rca) = self.rcas.get(&id) else {
            return no_rca(id);
        };
        match rca.status {
            RcaStatus::Open => {
                return rejected_invalid("incident", "the incident is still open: resolve it first")
            }
            RcaStatus::Duplicate => {
                return rejected_invalid("incident", "a duplicate needs no RCA")
            }
            RcaStatus::Completed => return Response::Incident { id },
            RcaStatus::Mitigated => {}
        }
        if let Some((field, why)) = rca.text().missing() {
            return rejected_invalid(field, why);
        }
        if let Some(key) = rca.reminder {
            self.timers.remove(&key);
        }
        let Some(rca) = self.rca_mut(id, cx.meta.index) else {
            return no_rca(id);
        };
        rca.status = RcaStatus::Completed;
        rca.completed_at = Some(cx.at);
        rca.completed_by = by.to_string();
        rca.reminder = None;
        if rca.stage < Stage::FollowUpsUnderway {
            rca.stage = if rca.text().open_repairs() > 0 {
                Stage::FollowUpsUnderway
            } else {
                Stage::FollowUpsComplete
            };
            rca.stage_since = cx.at;
        }
        self.note_if_kept(cx, id, by, "completed the RCA");
        // Also when the incident is no longer kept (its ticket is, with the RCA).
        self.ticket_next(cx, id);
        Response::Incident { id }
    }

    /// `MarkDuplicate`: by hand, when the incident was not merged.
    pub(super) fn mark_duplicate(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        of: Option<IncidentId>,
        by: &str,
    ) -> Response {
        if !self.rcas.contains_key(&id) {
            return no_rca(id);
        }
        if let Some(of) = of {
            if of == id {
                return rejected_invalid("of", "an incident is not a duplicate of itself");
            }
            if !self.incidents.contains_key(&of) && !self.rcas.contains_key(&of) {
                return Response::Rejected(Rejection::NotFound {
                    field: "of".into(),
                    what: format!("incident {of}"),
                });
            }
        }
        if self
            .rcas
            .get(&id)
            .is_some_and(|r| r.status == RcaStatus::Completed)
        {
            return rejected_invalid("incident", "its RCA is already complete");
        }
        self.rca_duplicate(cx, id, of, by);
        let what = match of {
            Some(of) => format!("marked a duplicate of #{of}: no RCA needed"),
            None => "marked a duplicate: no RCA needed".to_string(),
        };
        self.note_if_kept(cx, id, by, what);
        self.ticket_next(cx, id);
        Response::Incident { id }
    }

    /// `MoveCard`: any stage but `Complete` while a repair item is open or
    /// a required RCA is not done.
    pub(super) fn move_card(
        &mut self,
        cx: &mut Cx,
        id: IncidentId,
        stage: Stage,
        by: &str,
    ) -> Response {
        let Some(rca) = self.rcas.get(&id) else {
            return no_rca(id);
        };
        if rca.stage == stage {
            return Response::Incident { id };
        }
        if stage == Stage::Complete {
            let open = rca.text().open_repairs();
            if open > 0 {
                return rejected_invalid(
                    "stage",
                    format!(
                        "{open} repair item(s) still open: a card is complete when they are done"
                    ),
                );
            }
            if rca.required && !rca.status.is_done() {
                return rejected_invalid("stage", "the RCA is required and not complete yet");
            }
        }
        let Some(rca) = self.rca_mut(id, cx.meta.index) else {
            return no_rca(id);
        };
        rca.stage = stage;
        rca.stage_since = cx.at;
        self.note_if_kept(cx, id, by, format!("moved the card to {}", stage.title()));
        Response::Incident { id }
    }

    /// A timeline entry on the incident, when it is still kept (watchers see
    /// the change through the incident's revision).
    fn note_if_kept(&mut self, cx: &mut Cx, id: IncidentId, by: &str, what: impl Into<String>) {
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.note(cx.stamp(), by, what);
        }
    }

    /// The reminder due at `key` for an overdue RCA: an email to its
    /// assignee, and once two days overdue to the team's admins too; then the
    /// next one a day later, until it is completed or marked a duplicate.
    pub(super) fn rca_remind(&mut self, cx: &mut Cx, id: IncidentId, key: TimerKey) {
        let Some(rca) = self.rcas.get(&id) else {
            return;
        };
        if rca.reminder != Some(key) || rca.status != RcaStatus::Mitigated {
            return; // cancelled or replaced
        }
        let due = rca.due.unwrap_or(key.at);
        let late = key.at.saturating_sub(due);
        let days_overdue = (late / REMINDER_EVERY) as u32;
        let mut to: Vec<(String, bool)> = Vec::new();
        if !rca.assignee.is_empty() {
            to.push((rca.assignee.clone(), false));
        }
        if late >= ADMINS_AFTER {
            if let Some(team) = self.config.teams.get(&rca.team) {
                for a in &team.admins {
                    if *a != rca.assignee && !to.iter().any(|(u, _)| u == a) {
                        to.push((a.clone(), true));
                    }
                }
            }
        }
        let mut sent = 0;
        for (user, to_admin) in to {
            let Some(cm) = self.email_of(&user) else {
                continue;
            };
            let purpose = Purpose::RcaReminder {
                incident: id,
                days_overdue,
                to_admin,
            };
            self.queue_standalone(cx, &user, purpose, &cm);
            sent += 1;
        }
        let next = self
            .timers
            .insert(key.at + REMINDER_EVERY, Timer::RcaReminder { incident: id });
        let index = cx.meta.index;
        if let Some(rca) = self.rca_mut(id, index) {
            rca.reminders += 1;
            rca.reminder = Some(next);
        }
        let what = match sent {
            0 => "RCA overdue: nobody with an email address to remind".to_string(),
            n => format!("RCA overdue: {n} reminder(s) sent"),
        };
        self.note_if_kept(cx, id, "pagerd", what);
    }

    /// A delivery of no incident, without the hourly limit people's own
    /// requests have (reminders are the system's).
    pub(super) fn queue_standalone(
        &mut self,
        cx: &mut Cx,
        user: &str,
        purpose: Purpose,
        cm: &ContactMethod,
    ) -> crate::delivery::DeliveryId {
        self.queue_detached(cx, 0, user, purpose, cm)
    }

    /// A delivery about `incident` (0: none) that is not among its pages:
    /// acknowledging or resolving the incident does not cancel it.
    pub(super) fn queue_detached(
        &mut self,
        cx: &mut Cx,
        incident: IncidentId,
        user: &str,
        purpose: Purpose,
        cm: &ContactMethod,
    ) -> crate::delivery::DeliveryId {
        self.next_delivery += 1;
        let id = self.next_delivery;
        let d = Delivery {
            purpose,
            ..Delivery::claimed(id, incident, user, cm, cx.meta.term, cx.at)
        };
        self.deliveries.insert(id, Arc::new(d));
        self.pending.insert(id);
        self.stats.deliveries_created += 1;
        cx.effects.push(Effect::Deliver {
            delivery: id,
            term: cx.meta.term,
        });
        id
    }

    /// `RotateCalendar`: the feed's address moves to a new version.
    pub(super) fn rotate_calendar(
        &mut self,
        cx: &Cx,
        subject: &crate::command::CalendarSubject,
    ) -> Response {
        use crate::command::CalendarSubject;
        let (field, known) = match subject {
            CalendarSubject::User(u) => ("user", self.config.users.contains_key(u)),
            CalendarSubject::Schedule(s) => ("schedule", self.config.schedules.contains_key(s)),
        };
        if !known {
            return Response::Rejected(Rejection::NotFound {
                field: field.into(),
                what: subject.key(),
            });
        }
        self.calendars.insert(subject.key(), cx.meta.index);
        Response::Noop
    }

    /// The version a feed's address must name to work now.
    pub fn calendar_version(&self, subject: &crate::command::CalendarSubject) -> u64 {
        self.calendars.get(&subject.key()).copied().unwrap_or(0)
    }

    /// The shifts of a feed in `[from, to)`; see [`crate::oncall::OnCallDoc::feed_shifts`].
    pub fn calendar_shifts(
        &self,
        subject: &crate::command::CalendarSubject,
        from: Millis,
        to: Millis,
    ) -> Option<Vec<(String, crate::schedule::Shift)>> {
        self.config.feed_shifts(subject, from, to)
    }

    /// RCA records in incident order.
    pub fn rcas(&self) -> impl DoubleEndedIterator<Item = &Rca> + '_ {
        self.rcas.values().map(|r| &**r)
    }

    /// Compaction: forget the RCAs whose incident is gone, that are done,
    /// and whose card has been complete since before `before`. The others
    /// stay however old their incident.
    pub(super) fn forget_rcas(&mut self, before: Millis) {
        let incidents = &self.incidents;
        self.rcas.retain(|id, r| {
            incidents.contains_key(id)
                || !(r.status.is_done() && r.stage == Stage::Complete && r.stage_since < before)
        });
    }

    pub(super) fn check_rcas(&self) -> Result<(), String> {
        for (id, rca) in &self.rcas {
            if rca.incident != *id {
                return Err(format!("RCA of incident {} filed under {id}", rca.incident));
            }
            if let Some(key) = rca.reminder {
                match self.timers.get(&key) {
                    Some(Timer::RcaReminder { incident }) if incident == id => {}
                    other => {
                        return Err(format!(
                            "RCA {id} names reminder {key:?}, which is {other:?}"
                        ))
                    }
                }
                if rca.status != RcaStatus::Mitigated {
                    return Err(format!("RCA {id} is {:?} with a reminder", rca.status));
                }
            }
            if rca.status == RcaStatus::Open
                && self
                    .incidents
                    .get(id)
                    .is_some_and(|i| i.status == IncidentStatus::Resolved)
            {
                return Err(format!("RCA {id} is open but its incident is resolved"));
            }
        }
        Ok(())
    }
}
