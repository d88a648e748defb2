//! Conversions between protobuf messages and pager-core types, at the edge.

use crate::error::NodeError;
use crate::node::MembershipView;
use pager_core::command::Responder;
use pager_core::diff::{Change, ChangeKind};
use pager_core::incident::{Assignee, Role, Track};
use pager_core::oncall::Problem;
use pager_core::query::PlannedPage;
use pager_core::schedule::Shift;
use pager_core::{
    Delivery, Event, EventAction, Incident, IncidentStatus, Millis, Rejection, Severity,
};
use pager_notify::mask;
use pager_proto::pager::v1 as pb;

pub fn event_from_pb(req: pb::SendEventRequest) -> Result<Event, NodeError> {
    let action = match pb::EventAction::try_from(req.action) {
        Ok(pb::EventAction::Unspecified) | Ok(pb::EventAction::Trigger) => EventAction::Trigger,
        Ok(pb::EventAction::Acknowledge) => EventAction::Acknowledge,
        Ok(pb::EventAction::Resolve) => EventAction::Resolve,
        Err(_) => {
            return Err(NodeError::invalid(
                "action",
                format!("unknown action {}", req.action),
            ))
        }
    };
    let severity = if req.severity.is_empty() && action != EventAction::Trigger {
        Severity::default()
    } else {
        Severity::parse(&req.severity).ok_or_else(|| {
            NodeError::invalid(
                "severity",
                format!(
                    "{:?} is not one of critical, error, warning, info",
                    req.severity
                ),
            )
        })?
    };
    Ok(Event {
        routing_key: req.routing_key,
        action,
        dedup_key: req.dedup_key,
        summary: req.summary,
        source: req.source,
        severity,
        component: req.component,
        group: req.group,
        class: req.class,
        custom_details: req.custom_details.into_iter().collect(),
    })
}

pub fn status_to_pb(s: IncidentStatus) -> pb::IncidentStatus {
    match s {
        IncidentStatus::Triggered => pb::IncidentStatus::Triggered,
        IncidentStatus::Acknowledged => pb::IncidentStatus::Acknowledged,
        IncidentStatus::Resolved => pb::IncidentStatus::Resolved,
    }
}

pub fn status_from_pb(v: i32) -> Result<Option<IncidentStatus>, NodeError> {
    match pb::IncidentStatus::try_from(v) {
        Ok(pb::IncidentStatus::Unspecified) => Ok(None),
        Ok(pb::IncidentStatus::Triggered) => Ok(Some(IncidentStatus::Triggered)),
        Ok(pb::IncidentStatus::Acknowledged) => Ok(Some(IncidentStatus::Acknowledged)),
        Ok(pb::IncidentStatus::Resolved) => Ok(Some(IncidentStatus::Resolved)),
        Err(_) => Err(NodeError::invalid(
            "statuses",
            format!("unknown status {v}"),
        )),
    }
}

/// The incident as the API shows it; `deliveries` from the same state read.
pub fn incident_to_pb<'a>(
    inc: &Incident,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> pb::Incident {
    pb::Incident {
        id: inc.id,
        revision: inc.revision,
        service: inc.service.clone(),
        dedup_key: inc.dedup_key.clone(),
        summary: inc.summary.clone(),
        severity: inc.severity.as_str().into(),
        urgency: inc.urgency.as_str().into(),
        status: status_to_pb(inc.status) as i32,
        created_at_ms: inc.created_at,
        acknowledged_at_ms: inc.acknowledged_at.unwrap_or(0),
        resolved_at_ms: inc.resolved_at.unwrap_or(0),
        acknowledged_by: inc.acknowledged_by.clone(),
        resolved_by: inc.resolved_by.clone(),
        escalation_level: inc.escalation().0,
        escalation_repeat: inc.escalation().1,
        folded_events: inc.folded,
        runbook_url: inc.runbook_url.clone(),
        source: inc.source.clone(),
        deliveries: deliveries.map(delivery_to_pb).collect(),
        timeline: inc
            .timeline
            .iter()
            .map(|t| pb::TimelineEntry {
                at_ms: t.at,
                what: t.what.clone(),
                by: t.by.clone(),
            })
            .collect(),
        commander: inc.commander.clone(),
        liaison: inc.liaison.clone(),
        snoozed_until_ms: inc.snoozed_until.unwrap_or(0),
        merged_into: inc.merged_into.unwrap_or(0),
        ack_due_ms: inc.ack_due.unwrap_or(0),
        sla_breached: inc.sla_breached,
        escalations: inc.tracks.iter().map(track_to_pb).collect(),
        integrations: Vec::new(),
        bridge_url: inc.bridge_url.clone(),
    }
}

/// The incident's Slack message and Jira ticket, as the API shows them.
pub fn integrations_to_pb(s: &pager_core::State, id: u64) -> Vec<pb::Integration> {
    let mut out = Vec::new();
    if let Some(t) = s.chat.get(&id) {
        let state = match (t.ts.is_empty(), t.busy.is_some()) {
            (false, _) => "posted",
            (true, true) => "posting",
            (true, false) => "not posted",
        };
        out.push(pb::Integration {
            provider: "slack".into(),
            reference: if t.ts.is_empty() {
                String::new()
            } else {
                format!("{}/{}", t.channel, t.ts)
            },
            state: state.into(),
            sent: t.sent,
            failed: t.failed,
            error: t.error.clone(),
            busy: t.busy.is_some(),
        });
    }
    if let Some(t) = s.tickets.get(&id) {
        out.push(pb::Integration {
            provider: "jira".into(),
            reference: t.key.clone(),
            state: t.stage.as_str().into(),
            sent: t.sent,
            failed: t.failed,
            error: t.error.clone(),
            busy: t.busy.is_some(),
        });
    }
    out
}

pub fn track_to_pb(t: &Track) -> pb::EscalationTrack {
    use pb::escalation_track::Assignee as A;
    pb::EscalationTrack {
        assignee: Some(match &t.assignee {
            Assignee::User(u) => A::User(u.clone()),
            Assignee::Policy(p) => A::Policy(p.clone()),
        }),
        level: t.level,
        repeat: t.repeat,
        done: t.done,
    }
}

pub fn delivery_to_pb(d: &Delivery) -> pb::Delivery {
    pb::Delivery {
        id: d.id,
        user: d.user.clone(),
        method: d.method.as_str().into(),
        address: mask::address(&d.address),
        attempt: d.attempt,
        term: d.claim_term,
        status: d.status.as_str().into(),
        provider_id: d.provider_id.clone(),
        error: d.error.clone(),
        created_at_ms: d.created_at,
        updated_at_ms: d.updated_at,
        shadow: d.shadow,
        reclaims: d.reclaims,
        in_doubt: d.in_doubt,
        call_status: d.call_status.clone(),
        reached: d.reached,
        contact: d.contact.clone(),
        claimed_at_ms: d.claimed_at,
    }
}

/// A name the request must carry: `field: required` when it is blank.
pub fn required(field: &str, value: String) -> Result<String, NodeError> {
    if value.trim().is_empty() {
        Err(NodeError::invalid(field, "required"))
    } else {
        Ok(value)
    }
}

/// `ReassignRequest.to`: exactly one of user or policy.
pub fn assignee_from_pb(to: Option<pb::reassign_request::To>) -> Result<Assignee, NodeError> {
    use pb::reassign_request::To;
    match to {
        Some(To::User(u)) => Ok(Assignee::User(required("user", u)?)),
        Some(To::Policy(p)) => Ok(Assignee::Policy(required("policy", p)?)),
        None => Err(NodeError::invalid("to", "required: a user or a policy")),
    }
}

/// `AddRespondersRequest.responders`: at least one, each naming one target.
pub fn responders_from_pb(responders: Vec<pb::Responder>) -> Result<Vec<Responder>, NodeError> {
    use pb::responder::Target;
    if responders.is_empty() {
        return Err(NodeError::invalid("responders", "at least one responder"));
    }
    responders
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |kind: &str| format!("responders[{i}].{kind}");
            match r.target {
                Some(Target::User(u)) => Ok(Responder::User(required(&field("user"), u)?)),
                Some(Target::Team(t)) => Ok(Responder::Team(required(&field("team"), t)?)),
                Some(Target::Policy(p)) => Ok(Responder::Policy(required(&field("policy"), p)?)),
                None => Err(NodeError::invalid(
                    &format!("responders[{i}]"),
                    "required: a user, a team or a policy",
                )),
            }
        })
        .collect()
}

pub fn role_from_pb(v: i32) -> Result<Role, NodeError> {
    match pb::IncidentRole::try_from(v) {
        Ok(pb::IncidentRole::Commander) => Ok(Role::Commander),
        Ok(pb::IncidentRole::Liaison) => Ok(Role::Liaison),
        Ok(pb::IncidentRole::Unspecified) => {
            Err(NodeError::invalid("role", "required: commander or liaison"))
        }
        Err(_) => Err(NodeError::invalid("role", format!("unknown role {v}"))),
    }
}

/// `SimulateRequest.severity`; empty means critical.
pub fn severity_from_pb(s: &str) -> Result<Severity, NodeError> {
    if s.is_empty() {
        return Ok(Severity::Critical);
    }
    Severity::parse(s).ok_or_else(|| {
        NodeError::invalid(
            "severity",
            format!("{s:?} is not one of critical, error, warning, info"),
        )
    })
}

pub fn problem_to_pb(p: Problem) -> pb::ConfigProblem {
    pb::ConfigProblem {
        path: p.path,
        message: p.message,
    }
}

pub fn change_to_pb(c: Change) -> pb::ConfigChange {
    let kind = match c.kind {
        ChangeKind::Added => pb::ConfigChangeKind::Added,
        ChangeKind::Removed => pb::ConfigChangeKind::Removed,
        ChangeKind::Changed => pb::ConfigChangeKind::Changed,
    };
    pb::ConfigChange {
        path: c.path,
        kind: kind as i32,
    }
}

pub fn shift_to_pb(s: Shift) -> pb::Shift {
    pb::Shift {
        user: s.user,
        start_ms: s.start,
        end_ms: s.end,
        layer: s.layer.unwrap_or_default(),
    }
}

/// One planned page; `start` is the simulated trigger's instant.
pub fn planned_page_to_pb(p: PlannedPage, start: Millis) -> pb::PlannedPage {
    pb::PlannedPage {
        at_ms: p.at,
        offset_ms: p.at.saturating_sub(start),
        user: p.user,
        method: p.method,
        contact: p.contact,
        shadow: p.shadow,
        level: p.level,
        repeat: p.repeat,
    }
}

/// Core names a command's fields (`until`, `targets[1]`); the API names the
/// request's (`until_ms`, `responders[1]`). The field of a rejection is
/// renamed by the first `(core, api)` pair naming it or a prefix of it
/// (`targets` renames `targets[1]`).
pub fn rename_rejection(rej: Rejection, pairs: &[(&str, &str)]) -> Rejection {
    let rename = |field: String| {
        for (core, api) in pairs {
            if let Some(rest) = field.strip_prefix(core) {
                if rest.is_empty() || rest.starts_with('[') || rest.starts_with('.') {
                    return format!("{api}{rest}");
                }
            }
        }
        field
    };
    match rej {
        Rejection::Invalid { field, reason } => Rejection::Invalid {
            field: rename(field),
            reason,
        },
        Rejection::NotFound { field, what } => Rejection::NotFound {
            field: rename(field),
            what,
        },
        other => other,
    }
}

/// `user "zed"`, `team "db"`: a responder as a not-found message names it.
pub fn responder_text(r: &Responder) -> (&'static str, String) {
    match r {
        Responder::User(u) => ("user", format!("user {u:?}")),
        Responder::Team(t) => ("team", format!("team {t:?}")),
        Responder::Policy(p) => ("policy", format!("escalation policy {p:?}")),
    }
}

pub fn assignee_text(a: &Assignee) -> (&'static str, String) {
    match a {
        Assignee::User(u) => ("user", format!("user {u:?}")),
        Assignee::Policy(p) => ("policy", format!("escalation policy {p:?}")),
    }
}

impl From<MembershipView> for pb::MembershipResponse {
    fn from(v: MembershipView) -> Self {
        pb::MembershipResponse {
            voters: v.voters,
            learners: v.learners,
            commit_index: v.index,
        }
    }
}
