//! The `OnCall` service: who is on call, a schedule's shifts, and simulated
//! page plans. Read-only, from this node's state; nothing is written.

use super::Api;
use crate::edge::convert;
use crate::error::NodeError;
use crate::node;
use pager_core::oncall::OnCallDoc;
use pager_core::schedule::Schedule;
use pager_core::{Millis, Rejection, TokenRole};
use pager_proto::pager::v1 as pb;
use tonic::{Request, Response, Status};

const DAY_MS: Millis = 86_400_000;

/// `ListShifts` without `to_ms` covers this much.
pub const DEFAULT_SHIFTS_RANGE: Millis = 7 * DAY_MS;

/// `ListShifts` answers for at most this much (a month of hourly turns is
/// ~700 shifts; this bounds the answer and the work behind it).
pub const MAX_SHIFTS_RANGE: Millis = 90 * DAY_MS;

/// `at_ms` of a request: 0 means now, by this node's clock.
fn instant(at_ms: u64) -> Millis {
    if at_ms == 0 {
        node::now_ms()
    } else {
        at_ms
    }
}

fn not_found(field: &str, what: String) -> Status {
    NodeError::Rejected(Rejection::NotFound {
        field: field.into(),
        what,
    })
    .into()
}

fn schedule_on_call(name: &str, s: &Schedule, at: Millis) -> pb::ScheduleOnCall {
    let on = s.on_call_at(at);
    let next_users = on
        .until
        .map(|until| s.on_call_at(until).users)
        .unwrap_or_default();
    pb::ScheduleOnCall {
        schedule: name.to_string(),
        time_zone: s.time_zone.name().to_string(),
        users: on.users,
        shadows: on.shadows,
        until_ms: on.until.unwrap_or(0),
        next_users,
    }
}

fn service_on_call(doc: &OnCallDoc, service: &str, at: Millis) -> Option<pb::ServiceOnCall> {
    let policy = doc.services.get(service)?.escalation_policy.clone();
    let levels = doc.service_on_call(service, at)?;
    let levels = levels
        .into_iter()
        .map(|l| {
            // Who the level pages after its next change (a handoff in one of
            // its schedules).
            let next_users = l
                .until
                .and_then(|until| doc.service_on_call(service, until))
                .and_then(|later| later.into_iter().find(|n| n.level == l.level))
                .map(|n| n.users)
                .unwrap_or_default();
            pb::LevelOnCall {
                level: l.level,
                users: l.users,
                shadows: l.shadows,
                until_ms: l.until.unwrap_or(0),
                next_users,
            }
        })
        .collect();
    Some(pb::ServiceOnCall {
        service: service.to_string(),
        escalation_policy: policy,
        levels,
    })
}

fn user_on_call(doc: &OnCallDoc, user: &str, at: Millis) -> pb::UserOnCall {
    let schedules = doc
        .user_on_call(user, at)
        .into_iter()
        .map(|u| {
            let next_users = match (u.until, doc.schedules.get(&u.schedule)) {
                (Some(until), Some(s)) => s.on_call_at(until).users,
                _ => Vec::new(),
            };
            pb::UserSchedule {
                schedule: u.schedule,
                shadow: u.shadow,
                until_ms: u.until.unwrap_or(0),
                next_users,
            }
        })
        .collect();
    pb::UserOnCall {
        user: user.to_string(),
        schedules,
    }
}

#[tonic::async_trait]
impl pb::on_call_server::OnCall for Api {
    async fn who_is_on_call(
        &self,
        req: Request<pb::WhoIsOnCallRequest>,
    ) -> Result<Response<pb::WhoIsOnCallResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        use pb::who_is_on_call_request::Subject;
        let req = req.into_inner();
        let at = instant(req.at_ms);
        let mut out = pb::WhoIsOnCallResponse {
            at_ms: at,
            ..Default::default()
        };
        match req.subject {
            None => {
                out.schedules = self.node.read(|s| {
                    s.config
                        .schedules
                        .iter()
                        .map(|(name, sched)| schedule_on_call(name, sched, at))
                        .collect()
                });
            }
            Some(Subject::Schedule(name)) => {
                let name = convert::required("schedule", name)?;
                let answer = self.node.read(|s| {
                    s.config
                        .schedules
                        .get(&name)
                        .map(|sched| schedule_on_call(&name, sched, at))
                });
                let answer =
                    answer.ok_or_else(|| not_found("schedule", format!("schedule {name:?}")))?;
                out.schedules = vec![answer];
            }
            Some(Subject::Service(name)) => {
                let name = convert::required("service", name)?;
                let answer = self.node.read(|s| service_on_call(&s.config, &name, at));
                out.service =
                    Some(answer.ok_or_else(|| not_found("service", format!("service {name:?}")))?);
            }
            Some(Subject::User(name)) => {
                let name = convert::required("user", name)?;
                let answer = self.node.read(|s| {
                    s.config
                        .users
                        .contains_key(&name)
                        .then(|| user_on_call(&s.config, &name, at))
                });
                out.user = Some(answer.ok_or_else(|| not_found("user", format!("user {name:?}")))?);
            }
        }
        Ok(Response::new(out))
    }

    async fn list_shifts(
        &self,
        req: Request<pb::ListShiftsRequest>,
    ) -> Result<Response<pb::ListShiftsResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let name = convert::required("schedule", req.schedule)?;
        let from = instant(req.from_ms);
        let to = if req.to_ms == 0 {
            from.saturating_add(DEFAULT_SHIFTS_RANGE)
        } else {
            req.to_ms
        };
        if to <= from {
            return Err(NodeError::invalid("to_ms", "must be after from_ms").into());
        }
        if to - from > MAX_SHIFTS_RANGE {
            return Err(NodeError::invalid(
                "to_ms",
                format!("at most {} days after from_ms", MAX_SHIFTS_RANGE / DAY_MS),
            )
            .into());
        }
        // Walk the schedule outside the state lock: applies need it.
        let schedule = self
            .node
            .read(|s| s.config.schedules.get(&name).cloned())
            .ok_or_else(|| not_found("schedule", format!("schedule {name:?}")))?;
        let shifts = schedule
            .shifts(from, to)
            .into_iter()
            .map(convert::shift_to_pb)
            .collect();
        Ok(Response::new(pb::ListShiftsResponse {
            schedule: name,
            time_zone: schedule.time_zone.name().to_string(),
            from_ms: from,
            to_ms: to,
            shifts,
        }))
    }

    async fn simulate(
        &self,
        req: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let service = convert::required("service", req.service)?;
        let severity = convert::severity_from_pb(&req.severity)?;
        let at = instant(req.at_ms);
        // The simulation applies commands to a copy of the state: take the
        // copy under the lock, run it off the async workers and the lock.
        let state = self.node.read(|s| s.clone());
        let start = at.max(state.clock);
        let name = service.clone();
        let pages = tokio::task::spawn_blocking(move || state.simulate(&name, at, severity))
            .await
            .map_err(|e| Status::internal(format!("simulation failed: {e}")))?
            .map_err(NodeError::Rejected)?;
        Ok(Response::new(pb::SimulateResponse {
            service,
            at_ms: start,
            pages: pages
                .into_iter()
                .map(|p| convert::planned_page_to_pb(p, start))
                .collect(),
        }))
    }

    async fn create_override(
        &self,
        req: Request<pb::CreateOverrideRequest>,
    ) -> Result<Response<pb::CreateOverrideResponse>, Status> {
        let by = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let over = pager_core::schedule::Override {
            user: convert::required("user", req.user)?,
            replaces: Some(req.replaces).filter(|r| !r.is_empty()),
            start: req.start_ms,
            end: req.end_ms,
        };
        if over.end <= over.start {
            return Err(NodeError::invalid("end_ms", "must be after start_ms").into());
        }
        let w = self
            .node
            .write(pager_core::Command::AddOverride {
                at: 0,
                schedule: convert::required("schedule", req.schedule)?,
                over,
                by,
            })
            .await?;
        match w.response {
            pager_core::Response::ConfigApplied { version } => {
                Ok(Response::new(pb::CreateOverrideResponse {
                    config_version: version,
                    commit_index: w.index,
                }))
            }
            pager_core::Response::Rejected(r) => Err(NodeError::Rejected(r).into()),
            other => Err(Status::internal(format!("unexpected answer {other:?}"))),
        }
    }

    async fn calendar_url(
        &self,
        req: Request<pb::CalendarUrlRequest>,
    ) -> Result<Response<pb::CalendarUrlResponse>, Status> {
        use pager_core::command::CalendarSubject;
        let by = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let subject = match (req.user.trim(), req.schedule.trim()) {
            (u, "") if !u.is_empty() => CalendarSubject::User(u.to_string()),
            ("", s) if !s.is_empty() => CalendarSubject::Schedule(s.to_string()),
            ("", "") => return Err(NodeError::invalid("user", "name a user or a schedule").into()),
            _ => {
                return Err(
                    NodeError::invalid("schedule", "name a user or a schedule, not both").into(),
                )
            }
        };
        let mut commit_index = 0;
        if req.rotate {
            let w = self
                .node
                .write(pager_core::Command::RotateCalendar {
                    at: 0,
                    subject: subject.clone(),
                    by,
                })
                .await?;
            if let pager_core::Response::Rejected(r) = w.response {
                return Err(NodeError::Rejected(r).into());
            }
            self.node.wait_applied(w.index).await?;
            commit_index = w.index;
        }
        let public = self.node.cfg.public_url.clone();
        let token = self.node.read(|s| {
            let known = match &subject {
                CalendarSubject::User(u) => s.config.users.contains_key(u),
                CalendarSubject::Schedule(sc) => s.config.schedules.contains_key(sc),
            };
            if !known {
                return Err(Status::not_found(format!(
                    "{}: {} not found",
                    match subject {
                        CalendarSubject::User(_) => "user",
                        CalendarSubject::Schedule(_) => "schedule",
                    },
                    subject.key()
                )));
            }
            crate::edge::calendar::token(
                s.link_key.expose(),
                &subject,
                s.calendar_version(&subject),
            )
            .ok_or_else(|| Status::unavailable("the cluster has not elected a leader yet"))
        })?;
        Ok(Response::new(pb::CalendarUrlResponse {
            url: format!("{public}/v1/calendar/{token}.ics"),
            commit_index,
        }))
    }

    async fn add_handoff_note(
        &self,
        req: Request<pb::AddHandoffNoteRequest>,
    ) -> Result<Response<pb::AddHandoffNoteResponse>, Status> {
        let caller = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let by = if req.by.trim().is_empty() {
            caller
        } else {
            req.by
        };
        let w = self
            .node
            .write(pager_core::Command::HandoffNote {
                at: 0,
                schedule: req.schedule,
                text: req.text,
                by,
            })
            .await?;
        match w.response {
            pager_core::Response::Rejected(r) => Err(NodeError::Rejected(r).into()),
            _ => Ok(Response::new(pb::AddHandoffNoteResponse {
                commit_index: w.index,
            })),
        }
    }
}
