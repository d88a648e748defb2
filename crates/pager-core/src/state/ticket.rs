//! Incidents in Jira: each high-urgency incident of a service with `jira`
//! gets one ticket, moved one step at a time (see [`crate::ticket`]) as the
//! incident is resolved or merged and its RCA completed. A step is a
//! delivery of the incident that is not among its pages: acknowledging
//! cancels pages, never the ticket.

use super::delivery::RetryRule;
use super::{Cx, State};
use crate::command::{Response, SendResult};
use crate::delivery::{DeliveryId, Purpose};
use crate::incident::{IncidentId, IncidentStatus};
use crate::oncall::{ContactKind, ContactMethod, Urgency};
use crate::rca::RcaStatus;
use crate::ticket::{Ticket, TicketStage, TicketStep};

impl State {
    /// A new incident: its ticket, when it is high urgency and its service
    /// has `jira`.
    pub(super) fn ticket_open(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        if inc.urgency != Urgency::High {
            return;
        }
        let Some(target) = self
            .config
            .services
            .get(&inc.service)
            .and_then(|s| s.jira.clone())
        else {
            return;
        };
        self.tickets.insert(
            id,
            Ticket {
                target,
                key: String::new(),
                stage: TicketStage::Open,
                busy: None,
                stuck: None,
                sent: 0,
                failed: 0,
                error: String::new(),
            },
        );
        self.ticket_queue(cx, id, TicketStep::Create);
    }

    /// After an entry is applied: the incidents it changed that have a
    /// ticket get their next move.
    pub(super) fn tickets_changed(&mut self, cx: &mut Cx) {
        if self.tickets.is_empty() {
            return;
        }
        let changed: Vec<IncidentId> = self
            .incidents
            .just_changed()
            .iter()
            .copied()
            .filter(|id| self.tickets.contains_key(id))
            .collect();
        for id in changed {
            self.ticket_next(cx, id);
        }
    }

    /// Where the ticket should be: from the RCA when there is one (it
    /// outlives the incident), else from the incident.
    fn ticket_wanted(&self, id: IncidentId) -> TicketStage {
        if let Some(rca) = self.rcas.get(&id) {
            return match rca.status {
                RcaStatus::Open => TicketStage::Open,
                RcaStatus::Mitigated => TicketStage::Mitigated,
                RcaStatus::Completed => TicketStage::RcaCompleted,
                RcaStatus::Duplicate => TicketStage::Duplicate,
            };
        }
        match self.incidents.get(&id) {
            Some(inc) if inc.status == IncidentStatus::Resolved => match inc.merged_into {
                Some(_) => TicketStage::Duplicate,
                None => TicketStage::Mitigated,
            },
            _ => TicketStage::Open,
        }
    }

    /// The ticket's next move, unless one is in flight, the create never got
    /// out, or the move failed for good already (it needs a person).
    pub(super) fn ticket_next(&mut self, cx: &mut Cx, id: IncidentId) {
        let want = self.ticket_wanted(id);
        let Some(t) = self.tickets.get(&id) else {
            return;
        };
        if t.busy.is_some() || t.key.is_empty() {
            return;
        }
        let Some(to) = t.stage.next_towards(want) else {
            return;
        };
        if t.stuck == Some(to) {
            return;
        }
        self.ticket_queue(cx, id, TicketStep::Move { to });
    }

    fn ticket_queue(&mut self, cx: &mut Cx, id: IncidentId, step: TicketStep) {
        let Some(project) = self.tickets.get(&id).map(|t| t.target.project.clone()) else {
            return;
        };
        let cm = ContactMethod {
            name: "jira".into(),
            kind: ContactKind::Jira,
            address: project,
        };
        let delivery = self.queue_detached(cx, id, "", Purpose::Ticket { step }, &cm);
        if let Some(t) = self.tickets.get_mut(&id) {
            t.busy = Some(delivery);
        }
    }

    /// The outcome of a step: settle it, note it on the incident, then the
    /// next move.
    pub(super) fn ticket_outcome(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        attempt: u32,
        step: TicketStep,
        result: &SendResult,
    ) -> Response {
        let Some((incident, sent)) =
            self.settle_detached(cx, id, attempt, result, RetryRule::Attempts)
        else {
            return Response::Noop;
        };
        let Some(t) = self.tickets.get_mut(&incident) else {
            return Response::Noop;
        };
        if t.busy == Some(id) {
            t.busy = None;
        }
        let note = match (step, sent) {
            (TicketStep::Create, Ok(key)) => {
                t.sent += 1;
                t.error.clear();
                t.key = key;
                format!("Jira ticket {} opened", t.key)
            }
            (TicketStep::Move { to }, Ok(_)) => {
                t.sent += 1;
                t.error.clear();
                t.stage = to;
                format!("Jira ticket {} moved to {}", t.key, t.target.name_of(to))
            }
            (TicketStep::Create, Err(error)) => {
                t.failed += 1;
                let note = format!("Jira ticket not opened: {error}");
                t.error = error;
                note
            }
            (TicketStep::Move { to }, Err(error)) => {
                t.failed += 1;
                t.stuck = Some(to);
                let note = format!(
                    "Jira ticket {} not moved to {}: {error}",
                    t.key,
                    t.target.name_of(to)
                );
                t.error = error;
                note
            }
        };
        self.note(incident, cx.stamp(), "pagerd", note);
        self.ticket_next(cx, incident);
        Response::Noop
    }

    /// After a compaction: forget the tickets of incidents whose incident
    /// and RCA are both forgotten, unless a step is still in flight.
    pub(super) fn forget_tickets(&mut self) {
        let (incidents, rcas) = (&self.incidents, &self.rcas);
        self.tickets.retain(|id, t| {
            incidents.contains_key(id) || rcas.contains_key(id) || t.busy.is_some()
        });
    }
}
