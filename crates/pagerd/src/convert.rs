//! Conversions between protobuf messages and pager-core types, at the edge.

use crate::error::NodeError;
use pager_core::{Delivery, Event, EventAction, Incident, IncidentStatus, Severity};
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
        escalation_level: inc.level,
        escalation_repeat: inc.repeat,
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
            })
            .collect(),
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
    }
}
