//! After the page: `Followups` (RCA records and the page board). Reads come
//! from this node's replica (with the request's consistency); writes are
//! commands through the leader, answered with the record as of the commit.

use super::{by_or_api, Api};
use crate::error::NodeError;
use crate::node::now_ms;
use pager_core::rca::{Rca, RcaEdit, RcaLine, RepairItem, Stage, STALE_CARD};
use pager_core::{Command, Response as CoreResponse, TokenRole};
use pager_proto::pager::v1 as pb;
use tonic::{Request, Response, Status};

/// The wire form of a record, as of `now` (for `overdue`).
pub fn rca_to_pb(r: &Rca, now: u64) -> pb::Rca {
    pb::Rca {
        incident_id: r.incident,
        service: r.service.clone(),
        team: r.team.clone(),
        title: r.title.clone(),
        required: r.required,
        status: r.status.as_str().into(),
        assignee: r.assignee.clone(),
        opened_at_ms: r.opened_at,
        mitigated_at_ms: r.mitigated_at.unwrap_or(0),
        due_ms: r.due.unwrap_or(0),
        overdue: r.overdue(now),
        completed_at_ms: r.completed_at.unwrap_or(0),
        completed_by: r.completed_by.clone(),
        duplicate_of: r.duplicate_of.unwrap_or(0),
        customer_impact: r.text().customer_impact,
        significant: r.text().significant,
        postmortem_needed: r.postmortem_needed(),
        summary: r.text().summary.clone(),
        timeline: r
            .text()
            .timeline
            .iter()
            .map(|l| pb::RcaLine {
                at_ms: l.at,
                what: l.what.clone(),
            })
            .collect(),
        impact: r.text().impact.clone(),
        findings: r.text().findings.clone(),
        mitigation: r.text().mitigation.clone(),
        repairs: r
            .text()
            .repairs
            .iter()
            .map(|i| pb::RepairItem {
                title: i.title.clone(),
                link: i.link.clone(),
                done: i.done,
            })
            .collect(),
        stage: r.stage.as_str().into(),
        stage_since_ms: r.stage_since,
        reminders: r.reminders,
        revision: r.revision,
    }
}

/// A card of the board, as of `now` (for `stale` and `overdue`).
pub fn card_to_pb(r: &Rca, now: u64) -> pb::Card {
    pb::Card {
        incident_id: r.incident,
        title: r.title.clone(),
        service: r.service.clone(),
        team: r.team.clone(),
        stage: r.stage.as_str().into(),
        stage_since_ms: r.stage_since,
        stale: r.stage != Stage::Complete && now.saturating_sub(r.stage_since) > STALE_CARD,
        assignee: r.assignee.clone(),
        rca_status: r.status.as_str().into(),
        open_repairs: r.text().open_repairs() as u32,
        due_ms: r.due.unwrap_or(0),
        overdue: r.overdue(now),
    }
}

/// The edit a request asks for (fields left unset stay as they are).
pub fn edit_from_pb(req: &pb::EditRcaRequest) -> RcaEdit {
    RcaEdit {
        customer_impact: req.customer_impact,
        significant: req.significant,
        summary: req.summary.clone(),
        timeline: req.set_timeline.then(|| {
            req.timeline
                .iter()
                .map(|l| RcaLine {
                    at: l.at_ms,
                    what: l.what.clone(),
                })
                .collect()
        }),
        impact: req.impact.clone(),
        findings: req.findings.clone(),
        mitigation: req.mitigation.clone(),
        repairs: req.set_repairs.then(|| {
            req.repairs
                .iter()
                .map(|i| RepairItem {
                    title: i.title.clone(),
                    link: i.link.clone(),
                    done: i.done,
                })
                .collect()
        }),
        assignee: req.assignee.clone(),
        if_revision: (req.if_revision != 0).then_some(req.if_revision),
    }
}

/// A stage from its wire word, or the field at fault.
pub fn stage_from_str(word: &str) -> Result<Stage, NodeError> {
    Stage::parse(word).ok_or_else(|| {
        let known: Vec<&str> = Stage::ALL.iter().map(|s| s.as_str()).collect();
        NodeError::invalid(
            "stage",
            format!("{word:?} is not a stage; one of {}", known.join(", ")),
        )
    })
}

const STATUSES: [&str; 4] = ["open", "mitigated", "completed", "duplicate"];

impl Api {
    /// Commit a follow-up command and answer with the record as of the commit.
    async fn followup(&self, cmd: Command) -> Result<Response<pb::RcaResponse>, Status> {
        let w = self.node.write(cmd).await?;
        self.node.wait_applied(w.index).await?;
        match w.response {
            CoreResponse::Incident { id } => {
                let rca = self
                    .node
                    .read(|s| s.rcas.get(&id).map(|r| rca_to_pb(r, now_ms())));
                Ok(Response::new(pb::RcaResponse {
                    rca,
                    commit_index: w.index,
                }))
            }
            CoreResponse::Rejected(r) => Err(NodeError::Rejected(r).into()),
            other => Err(Status::internal(format!("unexpected answer: {other:?}"))),
        }
    }
}

#[tonic::async_trait]
impl pb::followups_server::Followups for Api {
    async fn list_rcas(
        &self,
        req: Request<pb::ListRcasRequest>,
    ) -> Result<Response<pb::ListRcasResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        if !req.status.is_empty() && !STATUSES.contains(&req.status.as_str()) {
            return Err(NodeError::invalid(
                "status",
                format!("{:?} is not one of {}", req.status, STATUSES.join(", ")),
            )
            .into());
        }
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        let now = now_ms();
        let (rcas, applied_index) = self.node.read(|s| {
            let rcas = s
                .rcas()
                .rev()
                .filter(|r| req.team.is_empty() || r.team == req.team)
                .filter(|r| req.status.is_empty() || r.status.as_str() == req.status)
                .filter(|r| req.assignee.is_empty() || r.assignee == req.assignee)
                .filter(|r| !req.overdue_only || r.overdue(now))
                .map(|r| rca_to_pb(r, now))
                .collect();
            (rcas, s.last_applied.index)
        });
        Ok(Response::new(pb::ListRcasResponse {
            rcas,
            applied_index,
        }))
    }

    async fn get_rca(&self, req: Request<pb::GetRcaRequest>) -> Result<Response<pb::Rca>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        let id = req.incident_id;
        self.node
            .read(|s| s.rcas.get(&id).map(|r| rca_to_pb(r, now_ms())))
            .map(Response::new)
            .ok_or_else(|| {
                Status::not_found(format!("incident_id: incident {id} has no RCA record"))
            })
    }

    async fn edit_rca(
        &self,
        req: Request<pb::EditRcaRequest>,
    ) -> Result<Response<pb::RcaResponse>, Status> {
        let caller = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let edit = edit_from_pb(&req);
        self.followup(Command::EditRca {
            at: 0,
            incident: req.incident_id,
            edit: Box::new(edit),
            by: by_or_caller(req.by, caller),
        })
        .await
    }

    async fn complete_rca(
        &self,
        req: Request<pb::CompleteRcaRequest>,
    ) -> Result<Response<pb::RcaResponse>, Status> {
        let caller = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        self.followup(Command::CompleteRca {
            at: 0,
            incident: req.incident_id,
            by: by_or_caller(req.by, caller),
        })
        .await
    }

    async fn mark_duplicate(
        &self,
        req: Request<pb::MarkDuplicateRequest>,
    ) -> Result<Response<pb::RcaResponse>, Status> {
        let caller = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        self.followup(Command::MarkDuplicate {
            at: 0,
            incident: req.incident_id,
            of: (req.of != 0).then_some(req.of),
            by: by_or_caller(req.by, caller),
        })
        .await
    }

    async fn board(
        &self,
        req: Request<pb::BoardRequest>,
    ) -> Result<Response<pb::BoardResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        let now = now_ms();
        let (columns, applied_index) = self.node.read(|s| {
            let columns = Stage::ALL
                .iter()
                .map(|&stage| {
                    let cards: Vec<pb::Card> = s
                        .rcas()
                        .filter(|r| r.stage == stage)
                        .filter(|r| req.team.is_empty() || r.team == req.team)
                        .map(|r| card_to_pb(r, now))
                        .collect();
                    let count = cards.len() as u32;
                    pb::Column {
                        stage: stage.as_str().into(),
                        title: stage.title().into(),
                        count,
                        cards: if stage == Stage::Complete && !req.include_complete {
                            Vec::new()
                        } else {
                            cards
                        },
                    }
                })
                .collect();
            (columns, s.last_applied.index)
        });
        Ok(Response::new(pb::BoardResponse {
            columns,
            applied_index,
        }))
    }

    async fn report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        let now = now_ms();
        // Under the state's lock only the shared roll-ups are taken; the merge
        // (every time to acknowledge and resolve of the range) runs off it.
        let (input, applied_index) = self.node.read(|s| {
            (
                s.report_input(req.from_ms, req.to_ms, &req.team, &req.service, now),
                s.last_applied.index,
            )
        });
        let input = input.map_err(|(field, why)| NodeError::invalid(field, why))?;
        let report = tokio::task::spawn_blocking(move || input.finish())
            .await
            .map_err(|e| Status::internal(format!("report task: {e}")))?;
        Ok(Response::new(report_to_pb(&report, applied_index)))
    }

    async fn move_card(
        &self,
        req: Request<pb::MoveCardRequest>,
    ) -> Result<Response<pb::RcaResponse>, Status> {
        let caller = self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let stage = stage_from_str(&req.stage)?;
        self.followup(Command::MoveCard {
            at: 0,
            incident: req.incident_id,
            stage,
            by: by_or_caller(req.by, caller),
        })
        .await
    }
}

/// The wire form of a report.
pub fn report_to_pb(r: &pager_core::report::Report, applied_index: u64) -> pb::ReportResponse {
    let rows = |v: &[pager_core::report::Count]| {
        v.iter()
            .map(|c| pb::CountRow {
                name: c.name.clone(),
                incidents: c.incidents,
                pages: c.pages,
            })
            .collect()
    };
    pb::ReportResponse {
        from_ms: r.from,
        to_ms: r.to,
        incidents: r.incidents,
        open: r.open,
        pages: r.pages,
        off_hours_pages: r.off_hours_pages,
        escalated: r.escalated,
        sla_breaches: r.sla_breaches,
        mtta_p50_s: r.mtta_p50_s,
        mtta_p90_s: r.mtta_p90_s,
        mttr_p50_s: r.mttr_p50_s,
        mttr_p90_s: r.mttr_p90_s,
        by_team: rows(&r.by_team),
        by_service: rows(&r.by_service),
        noisiest: r
            .noisiest
            .iter()
            .map(|a| pb::AlertRow {
                service: a.service.clone(),
                alert: a.alert.clone(),
                incidents: a.counts.incidents,
                auto_resolved: a.counts.auto_resolved,
                unacknowledged: a.counts.unacknowledged,
                snoozed: a.counts.snoozed,
            })
            .collect(),
        night_wakeups: rows(&r.night_wakeups),
        open_rcas: r.open_rcas,
        overdue_rcas: r.overdue_rcas,
        applied_index,
    }
}

fn by_or_caller(by: String, caller: String) -> String {
    if by.trim().is_empty() {
        by_or_api(caller)
    } else {
        by
    }
}
