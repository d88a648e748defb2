//! The public gRPC API on the client port: Events, Incidents, Config, Cluster,
//! and OnCall (in [`oncall`]). Reads are served from this node's state; writes
//! go through `Node::write`.

mod followups;
mod oncall;
mod tokens;
mod users;
mod webhooks;

use crate::edge::convert;
use crate::error::NodeError;
use crate::node::{self, ForwardRequest, Node};
use openraft::ServerState;
use pager_core::command::Response as CoreResponse;
use pager_core::oncall::Problem;
use pager_core::schedule::GAP_LOOKAHEAD;
use pager_core::TokenRole;
use pager_core::{Command, IncidentStatus, OnCallDoc, Rejection};
use pager_proto::pager::v1 as pb;
use pager_raft::PeerNode;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct Api {
    pub node: Arc<Node>,
}

fn unexpected(r: CoreResponse) -> Status {
    match r {
        CoreResponse::Rejected(rej) => NodeError::Rejected(rej).into(),
        other => Status::internal(format!("unexpected response {other:?}")),
    }
}

#[tonic::async_trait]
impl pb::events_server::Events for Api {
    async fn send(
        &self,
        req: Request<pb::SendEventRequest>,
    ) -> Result<Response<pb::SendEventResponse>, Status> {
        Ok(Response::new(
            send_event(&self.node, req.into_inner()).await?,
        ))
    }

    async fn send_batch(
        &self,
        req: Request<pb::SendBatchRequest>,
    ) -> Result<Response<pb::SendBatchResponse>, Status> {
        let events = req.into_inner().events;
        if events.is_empty() || events.len() > MAX_BATCH {
            return Err(NodeError::invalid(
                "events",
                format!("1 to {MAX_BATCH} events, got {}", events.len()),
            )
            .into());
        }
        // Concurrently: the write path packs concurrent events into shared
        // log entries, so a batch costs a few fsyncs, not one per event.
        let results =
            futures::future::join_all(events.into_iter().map(|e| send_event(&self.node, e))).await;
        let results = results
            .into_iter()
            .map(|r| pb::SendBatchResult {
                outcome: Some(match r {
                    Ok(ok) => pb::send_batch_result::Outcome::Ok(ok),
                    Err(e) => {
                        let status = Status::from(e);
                        pb::send_batch_result::Outcome::Error(pb::EventError {
                            code: status.code() as i32,
                            message: status.message().to_string(),
                        })
                    }
                }),
            })
            .collect();
        Ok(Response::new(pb::SendBatchResponse { results }))
    }
}

/// Most events in one `SendBatch`.
pub const MAX_BATCH: usize = 1000;

/// Validate one event and commit it: `Events/Send`, one event of
/// `SendBatch`, and the HTTP event endpoints all come through here.
pub async fn send_event(
    node: &Node,
    req: pb::SendEventRequest,
) -> Result<pb::SendEventResponse, NodeError> {
    if req.encoded_len() > pager_core::event::MAX_EVENT_BYTES {
        return Err(NodeError::invalid("payload", "event larger than 512 KiB"));
    }
    if let Err(retry_after) = node
        .limiter
        .take(&req.routing_key, std::time::Instant::now())
    {
        return Err(NodeError::RateLimited {
            per_second: node.cfg.events_per_second_per_key.ceil() as u64,
            retry_after,
        });
    }
    let event = convert::event_from_pb(req)?;
    event.validate().map_err(NodeError::Rejected)?;
    let w = node
        .write(Command::Ingest {
            at: 0,
            event: Box::new(event),
        })
        .await?;
    match w.response {
        CoreResponse::Event {
            incident,
            dedup_key,
            folded,
        } => Ok(pb::SendEventResponse {
            incident_id: incident.unwrap_or(0),
            dedup_key,
            folded,
            commit_index: w.index,
        }),
        CoreResponse::Rejected(r) => Err(NodeError::Rejected(r)),
        other => Err(NodeError::Fatal(format!(
            "unexpected answer to an event: {other:?}"
        ))),
    }
}

impl Api {
    /// Commit an administrative command (tokens, passwords) whose answer is
    /// only accepted or rejected: its commit index, or the rejection as a
    /// status naming the field at fault.
    pub(super) async fn commit(&self, cmd: pager_core::Command) -> Result<u64, Status> {
        let w = self.node.write(cmd).await?;
        match w.response {
            CoreResponse::Rejected(r) => Err(NodeError::Rejected(r).into()),
            _ => Ok(w.index),
        }
    }

    fn incident(&self, id: u64) -> Result<pb::Incident, Status> {
        self.node
            .read(|s| {
                s.incidents.get(&id).map(|inc| pb::Incident {
                    integrations: convert::integrations_to_pb(s, id),
                    ..convert::incident_to_pb(
                        inc,
                        inc.deliveries
                            .iter()
                            .filter_map(|d| s.deliveries.get(d).map(|d| &**d)),
                    )
                })
            })
            .ok_or_else(|| Status::not_found(format!("id: incident {id} not found")))
    }

    /// Commit an incident action and answer with the incident as of that
    /// commit. `fix` turns a rejection's wording from the command's terms
    /// into the request's (see [`convert::rename_rejection`]); it runs once
    /// this node has applied the rejection, so it may read the state.
    async fn act(
        &self,
        cmd: Command,
        fix: impl FnOnce(Rejection) -> Rejection,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        let w = self.node.write(cmd).await?;
        // The answer shows the incident as of this write, even on a follower.
        self.node.wait_applied(w.index).await?;
        match w.response {
            CoreResponse::Incident { id } => Ok(Response::new(pb::IncidentActionResponse {
                incident: Some(self.incident(id)?),
                commit_index: w.index,
            })),
            CoreResponse::Rejected(rej) => Err(NodeError::Rejected(fix(rej)).into()),
            other => Err(unexpected(other)),
        }
    }
}

/// Keep a rejection as core worded it (its fields are the request's).
fn as_is(rej: Rejection) -> Rejection {
    rej
}

/// A document in `format` ("toml", the default, or "json"). A document that
/// does not parse is a [`Problem`] at path "document"; an unknown format is
/// an invalid argument.
fn parse_document(document: &str, format: &str) -> Result<Result<OnCallDoc, Problem>, NodeError> {
    match format {
        "" | "toml" => Ok(OnCallDoc::from_toml(document)),
        "json" => Ok(OnCallDoc::from_json(document)),
        other => Err(NodeError::invalid(
            "format",
            format!("{other:?} is not toml or json"),
        )),
    }
}

/// Warnings of `doc`: schedules with nobody on call somewhere in the lookahead
/// from now, and tiers whose SLA the service's policy cannot meet.
fn gap_warnings(doc: &OnCallDoc) -> Vec<pb::ConfigProblem> {
    let now = node::now_ms();
    doc.schedule_gaps(now, now.saturating_add(GAP_LOOKAHEAD.millis()))
        .into_iter()
        .chain(doc.sla_warnings())
        .map(convert::problem_to_pb)
        .collect()
}

fn by_or_api(by: String) -> String {
    if by.trim().is_empty() {
        "api".into()
    } else {
        by
    }
}

#[tonic::async_trait]
impl pb::incidents_server::Incidents for Api {
    type WatchStream = tokio_stream::wrappers::ReceiverStream<Result<pb::IncidentChange, Status>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        tokio::spawn(watch(self.node.clone(), req, tx));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn get(
        &self,
        req: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::Incident>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        Ok(Response::new(self.incident(req.id)?))
    }

    async fn list(
        &self,
        req: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let statuses: Vec<IncidentStatus> = req
            .statuses
            .iter()
            .map(|v| convert::status_from_pb(*v))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit.min(1000)
        } as usize;
        let urgency = match req.urgency.as_str() {
            "" => None,
            "high" => Some(pager_core::Urgency::High),
            "low" => Some(pager_core::Urgency::Low),
            other => {
                return Err(
                    NodeError::invalid("urgency", format!("{other:?} is not high or low")).into(),
                )
            }
        };
        let below = match req.page_token.as_str() {
            "" => u64::MAX,
            t => t
                .parse::<u64>()
                .map_err(|_| NodeError::invalid("page_token", "not a token this API returned"))?,
        };
        let before = match req.created_before_ms {
            0 => u64::MAX,
            t => t,
        };
        let c = req.consistency.unwrap_or_default();
        self.node.read_barrier(c.min_index, c.linearizable).await?;
        let (incidents, next, applied_index) = self.node.read(|s| {
            let mut page: Vec<&pager_core::Incident> = s
                .incidents
                .range(..below)
                .rev()
                .filter(|(_, i)| statuses.is_empty() || statuses.contains(&i.status))
                .filter(|(_, i)| req.service.is_empty() || i.service == req.service)
                .filter(|(_, i)| urgency.is_none_or(|u| i.urgency == u))
                .filter(|(_, i)| i.created_at >= req.created_from_ms && i.created_at < before)
                .map(|(_, i)| &**i)
                .take(limit + 1)
                .collect();
            let more = page.len() > limit;
            page.truncate(limit);
            let next = match (more, page.last()) {
                (true, Some(last)) => last.id.to_string(),
                _ => String::new(),
            };
            let incidents = page
                .into_iter()
                .map(|i| convert::incident_to_pb(i, std::iter::empty()))
                .collect();
            (incidents, next, s.last_applied.index)
        });
        Ok(Response::new(pb::ListIncidentsResponse {
            incidents,
            next_page_token: next,
            applied_index,
        }))
    }

    async fn acknowledge(
        &self,
        req: Request<pb::IncidentActionRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        self.act(
            Command::Acknowledge {
                at: 0,
                incident: req.id,
                by: by_or_api(req.by),
            },
            as_is,
        )
        .await
    }

    async fn resolve(
        &self,
        req: Request<pb::IncidentActionRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        self.act(
            Command::Resolve {
                at: 0,
                incident: req.id,
                by: by_or_api(req.by),
            },
            as_is,
        )
        .await
    }

    async fn snooze(
        &self,
        req: Request<pb::SnoozeRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        if req.until_ms == 0 {
            return Err(NodeError::invalid("until_ms", "required").into());
        }
        // The leader stamps the command and core checks `until` against that
        // instant: a follower's clock does not decide what "future" means.
        self.act(
            Command::Snooze {
                at: 0,
                incident: req.id,
                until: req.until_ms,
                by: by_or_api(req.by),
            },
            |r| convert::rename_rejection(r, &[("until", "until_ms")]),
        )
        .await
    }

    async fn reassign(
        &self,
        req: Request<pb::ReassignRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let to = convert::assignee_from_pb(req.to)?;
        let (field, what) = convert::assignee_text(&to);
        self.act(
            Command::Reassign {
                at: 0,
                incident: req.id,
                to,
                by: by_or_api(req.by),
            },
            |r| match r {
                Rejection::NotFound { field: f, .. } if f == "to" => Rejection::NotFound {
                    field: field.into(),
                    what,
                },
                other => other,
            },
        )
        .await
    }

    async fn escalate(
        &self,
        req: Request<pb::EscalateRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        // The range of `level` is the policy's at the commit: core checks it.
        self.act(
            Command::Escalate {
                at: 0,
                incident: req.id,
                level: req.level,
                by: by_or_api(req.by),
            },
            as_is,
        )
        .await
    }

    async fn add_responders(
        &self,
        req: Request<pb::AddRespondersRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let targets = convert::responders_from_pb(req.responders)?;
        let named: Vec<_> = targets.iter().map(convert::responder_text).collect();
        self.act(
            Command::AddResponders {
                at: 0,
                incident: req.id,
                targets,
                by: by_or_api(req.by),
            },
            |r| match r {
                // Core says `targets[1]`; the request's field is `responders[1].team`.
                Rejection::NotFound { field, what } => {
                    let index = field
                        .strip_prefix("targets[")
                        .and_then(|rest| rest.strip_suffix(']'))
                        .and_then(|i| i.parse::<usize>().ok());
                    match index.and_then(|i| named.get(i).map(|n| (i, n))) {
                        Some((i, (kind, text))) => Rejection::NotFound {
                            field: format!("responders[{i}].{kind}"),
                            what: text.clone(),
                        },
                        None => convert::rename_rejection(
                            Rejection::NotFound { field, what },
                            &[("targets", "responders")],
                        ),
                    }
                }
                other => convert::rename_rejection(other, &[("targets", "responders")]),
            },
        )
        .await
    }

    async fn merge(
        &self,
        req: Request<pb::MergeRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let (id, into) = (req.id, req.into);
        self.act(
            Command::Merge {
                at: 0,
                incident: id,
                into,
                by: by_or_api(req.by),
            },
            |r| match r {
                // Core names `id` whichever incident is missing; this node has
                // applied the rejection, so its state tells which one was.
                Rejection::NotFound { field, what }
                    if field == "id"
                        && self.node.read(|s| {
                            s.incidents.contains_key(&id) && !s.incidents.contains_key(&into)
                        }) =>
                {
                    Rejection::NotFound {
                        field: "into".into(),
                        what,
                    }
                }
                other => other,
            },
        )
        .await
    }

    async fn set_role(
        &self,
        req: Request<pb::SetRoleRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        let role = convert::role_from_pb(req.role)?;
        self.act(
            Command::SetRole {
                at: 0,
                incident: req.id,
                role,
                user: req.user.trim().to_string(),
                by: by_or_api(req.by),
            },
            as_is,
        )
        .await
    }

    async fn set_bridge(
        &self,
        req: Request<pb::SetBridgeRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        self.act(
            Command::SetBridge {
                at: 0,
                incident: req.id,
                url: req.url,
                by: by_or_api(req.by),
            },
            as_is,
        )
        .await
    }

    async fn add_note(
        &self,
        req: Request<pb::AddNoteRequest>,
    ) -> Result<Response<pb::IncidentActionResponse>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let req = req.into_inner();
        self.act(
            Command::AddNote {
                at: 0,
                incident: req.id,
                text: req.text,
                by: by_or_api(req.by),
            },
            as_is,
        )
        .await
    }
}

#[tonic::async_trait]
impl pb::config_server::Config for Api {
    async fn apply(
        &self,
        req: Request<pb::ApplyConfigRequest>,
    ) -> Result<Response<pb::ApplyConfigResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let req = req.into_inner();
        let doc = parse_document(&req.document, &req.format)?
            .map_err(|p| NodeError::Rejected(Rejection::ConfigInvalid { problems: vec![p] }))?;
        let problems = doc.validate();
        if !problems.is_empty() {
            return Err(NodeError::Rejected(Rejection::ConfigInvalid { problems }).into());
        }
        let warnings = gap_warnings(&doc);
        let counts = (
            doc.users.len() as u32,
            doc.services.len() as u32,
            doc.escalation_policies.len() as u32,
        );
        let (version, commit_index) = if req.dry_run {
            (self.node.read(|s| s.config_version), 0)
        } else {
            let w = self
                .node
                .write(Command::ApplyConfig {
                    at: 0,
                    doc: Box::new(doc),
                })
                .await?;
            // Read-your-writes: a Get or Diff on this node right after sees it.
            self.node.wait_applied(w.index).await?;
            match w.response {
                CoreResponse::ConfigApplied { version } => (version, w.index),
                other => return Err(unexpected(other)),
            }
        };
        Ok(Response::new(pb::ApplyConfigResponse {
            version,
            commit_index,
            users: counts.0,
            services: counts.1,
            escalation_policies: counts.2,
            warnings,
        }))
    }

    async fn get(
        &self,
        req: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let (version, document) = self.node.read(|s| (s.config_version, s.config.to_toml()));
        Ok(Response::new(pb::GetConfigResponse { version, document }))
    }

    async fn diff(
        &self,
        req: Request<pb::DiffConfigRequest>,
    ) -> Result<Response<pb::DiffConfigResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let req = req.into_inner();
        let version = self.node.read(|s| s.config_version);
        let doc = match parse_document(&req.document, &req.format)? {
            Ok(doc) => doc,
            Err(p) => {
                return Ok(Response::new(pb::DiffConfigResponse {
                    version,
                    changes: vec![],
                    problems: vec![convert::problem_to_pb(p)],
                    warnings: vec![],
                }))
            }
        };
        let (version, changes) = self.node.read(|s| (s.config_version, s.config.diff(&doc)));
        Ok(Response::new(pb::DiffConfigResponse {
            version,
            changes: changes.into_iter().map(convert::change_to_pb).collect(),
            problems: doc
                .validate()
                .into_iter()
                .map(convert::problem_to_pb)
                .collect(),
            warnings: gap_warnings(&doc),
        }))
    }
}

fn node_info(id: u64, n: &PeerNode) -> pb::NodeInfo {
    pb::NodeInfo {
        id,
        peer_addr: n.peer_addr.clone(),
        client_addr: n.client_addr.clone(),
        region: n.region.clone(),
        http_url: n.http_url.clone(),
    }
}

fn peer_node(field: &str, info: pb::NodeInfo) -> Result<(u64, PeerNode), NodeError> {
    if info.id == 0 {
        return Err(NodeError::invalid(
            &format!("{field}.id"),
            "must be 1 or more",
        ));
    }
    for (k, v) in [
        ("peer_addr", &info.peer_addr),
        ("client_addr", &info.client_addr),
    ] {
        if let Err(reason) = crate::config::check_host_port(v) {
            return Err(NodeError::invalid(&format!("{field}.{k}"), reason));
        }
    }
    Ok((
        info.id,
        PeerNode {
            peer_addr: info.peer_addr,
            client_addr: info.client_addr,
            region: info.region,
            http_url: info.http_url.trim_end_matches('/').to_string(),
        },
    ))
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Api {
    async fn init(
        &self,
        req: Request<pb::InitClusterRequest>,
    ) -> Result<Response<pb::InitClusterResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let mut members = BTreeMap::new();
        for (i, n) in req.into_inner().nodes.into_iter().enumerate() {
            let (id, node) = peer_node(&format!("nodes[{i}]"), n)?;
            members.insert(id, node);
        }
        if !members.is_empty() && !members.contains_key(&self.node.id()) {
            return Err(
                NodeError::invalid("nodes", "must include the node receiving the call").into(),
            );
        }
        self.node.init(members).await?;
        Ok(Response::new(pb::InitClusterResponse {}))
    }

    async fn status(
        &self,
        req: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        self.authorize(&req, TokenRole::Responder)?;
        let m = self.node.metrics();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let last_log = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let members = m
            .membership_config
            .nodes()
            .map(|(id, n)| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten())
                    .map(|l| l.index)
                    .or_else(|| (*id == m.id).then_some(last_log))
                    .unwrap_or(0);
                pb::MemberStatus {
                    node: Some(node_info(*id, n)),
                    voter: membership.voter_ids().any(|v| v == *id),
                    matched_index: matched,
                    lag: if m.replication.is_some() {
                        last_log.saturating_sub(matched)
                    } else {
                        0
                    },
                }
            })
            .collect();
        let leader_client_addr = m
            .current_leader
            .and_then(|l| self.node.member(l))
            .map(|n| n.client_addr)
            .unwrap_or_default();
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        Ok(Response::new(pb::ClusterStatus {
            node_id: m.id,
            region: self.node.cfg.region.clone(),
            role: role.into(),
            term: m.current_term,
            leader_id: m.current_leader.unwrap_or(0),
            leader_client_addr,
            last_log_index: last_log,
            // openraft 0.9 does not publish the commit index; entries are
            // applied as soon as they commit, so applied is its lower bound.
            commit_index: applied,
            applied_index: applied,
            members,
        }))
    }

    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let req = req.into_inner();
        let info = req
            .node
            .ok_or_else(|| NodeError::invalid("node", "required"))?;
        let (id, node) = peer_node("node", info)?;
        let v = self
            .node
            .change_membership(ForwardRequest::AddNode {
                id,
                node,
                learner_only: req.learner_only,
            })
            .await?;
        Ok(Response::new(v.into()))
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let id = req.into_inner().id;
        let v = self
            .node
            .change_membership(ForwardRequest::RemoveNode { id })
            .await?;
        Ok(Response::new(v.into()))
    }

    async fn promote_learner(
        &self,
        req: Request<pb::PromoteLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let id = req.into_inner().id;
        let v = self
            .node
            .change_membership(ForwardRequest::PromoteLearner { id })
            .await?;
        Ok(Response::new(v.into()))
    }

    type BackupStream = tokio_stream::Iter<std::vec::IntoIter<Result<pb::BackupChunk, Status>>>;

    async fn backup(
        &self,
        req: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        if !req.into_inner().allow_stale {
            // Everything committed before the call is in the backup.
            self.node.read_barrier(0, true).await?;
        }
        let state = self.node.state.clone();
        let (info, body) = tokio::task::spawn_blocking(move || state.export())
            .await
            .map_err(|e| Status::internal(format!("backup task: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?;
        let header = pb::BackupHeader {
            line: info.header(),
            node_id: self.node.id(),
            term: info.term,
            index: info.index,
            bytes: info.bytes,
            sha256: info.sha256.clone(),
        };
        let mut chunks = vec![Ok(pb::BackupChunk {
            header: Some(header),
            data: Vec::new(),
        })];
        chunks.extend(body.chunks(BACKUP_CHUNK).map(|c| {
            Ok(pb::BackupChunk {
                header: None,
                data: c.to_vec(),
            })
        }));
        Ok(Response::new(tokio_stream::iter(chunks)))
    }

    async fn transfer_leader(
        &self,
        req: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let to = req.into_inner().node_id;
        let (leader_id, term, took_ms) = self.node.transfer_leader(to).await?;
        Ok(Response::new(pb::TransferLeaderResponse {
            leader_id,
            term,
            took_ms,
        }))
    }

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::SnapshotResponse>, Status> {
        self.authorize(&req, TokenRole::Admin)?;
        let applied_index = self.node.read(|s| s.last_applied.index);
        self.node
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| NodeError::Fatal(e.to_string()))?;
        Ok(Response::new(pb::SnapshotResponse {
            node_id: self.node.id(),
            applied_index,
        }))
    }
}

/// The client port's services, by their full gRPC names.
pub const PUBLIC_SERVICES: [&str; 9] = [
    "pager.v1.Events",
    "pager.v1.Incidents",
    "pager.v1.Config",
    "pager.v1.OnCall",
    "pager.v1.Cluster",
    "pager.v1.Tokens",
    "pager.v1.Users",
    "pager.v1.Followups",
    "pager.v1.Webhooks",
];

/// Keep grpc.health.v1 in step with the cluster: the public services are
/// SERVING while this node knows a leader, NOT_SERVING otherwise.
pub async fn report_health(
    node: Arc<Node>,
    mut health: tonic_health::server::HealthReporter,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use tonic_health::ServingStatus;
    health.set_service_status("", ServingStatus::Serving).await;
    let mut metrics = node.raft.metrics();
    let mut last = None;
    let mut leader = None;
    loop {
        let (ready, now_leader) = {
            let m = metrics.borrow_and_update();
            (m.current_leader.is_some(), m.current_leader)
        };
        if now_leader.is_some() && now_leader != leader {
            if leader.is_some() {
                node.leader_changes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            leader = now_leader;
        }
        if last != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for s in PUBLIC_SERVICES {
                health.set_service_status(s, status).await;
            }
            last = Some(ready);
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Changes a watcher may have buffered before the sender waits for it.
pub(crate) const WATCH_BUFFER: usize = 256;

/// Bytes per backup message (gRPC's default receive limit is 4 MiB).
const BACKUP_CHUNK: usize = 1 << 20;

/// How a [`follow`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Followed {
    /// The watcher hung up.
    HungUp,
    /// The node is shutting down: resume on another node.
    Stopping,
}

/// Feed one watcher: every incident changed after revision `from`, then again
/// after each applied batch, until the watcher hangs up or the node stops.
/// Each pass hands `pass` the changed incidents (in revision order) and the
/// index the pass read through, in the same consistent read, and sends what
/// it makes: the gRPC watch one change per incident, the console's live list
/// one batch per pass. Several incidents may share a revision (one log entry
/// holds many events), so only a pass's `through` is a safe place to resume.
///
/// Finding the changes costs what changed, not what is held (the state
/// keeps a list of recent changes), but a pass still holds the read lock
/// while `pass` runs, so a watcher that can wait (a person's browser) passes
/// `pace`: after a pass that found `n` changed incidents, the next waits
/// `pace(n)`, whatever the rate of applied batches.
pub(crate) async fn follow<T: Send>(
    node: Arc<Node>,
    from: u64,
    pace: Option<fn(usize) -> std::time::Duration>,
    mut pass: impl FnMut(&pager_core::State, &[&pager_core::Incident], u64) -> Vec<T>,
    tx: tokio::sync::mpsc::Sender<T>,
) -> Followed {
    let mut applied = node.applied.clone();
    let mut stopping = node.stopping.clone();
    let mut cursor = from;
    loop {
        let passed = tokio::time::Instant::now();
        // One consistent read: every change up to `seen` is in it.
        let (changes, seen, found) = node.read(|s| {
            let seen = s.last_applied.index;
            let changed = s.changed_since(cursor);
            let changes = if changed.is_empty() {
                Vec::new()
            } else {
                pass(s, &changed, seen)
            };
            (changes, seen, changed.len())
        });
        for change in changes {
            if tx.send(change).await.is_err() {
                return Followed::HungUp;
            }
        }
        cursor = cursor.max(seen);
        if *stopping.borrow_and_update() {
            return Followed::Stopping;
        }
        if let Some(pace) = pace {
            tokio::select! {
                _ = tokio::time::sleep_until(passed + pace(found)) => {}
                _ = tx.closed() => return Followed::HungUp,
                _ = stopping.changed() => return Followed::Stopping,
            }
        }
        tokio::select! {
            r = applied.changed() => if r.is_err() { return Followed::Stopping },
            _ = tx.closed() => return Followed::HungUp,
            _ = stopping.changed() => return Followed::Stopping,
        }
    }
}

async fn watch(
    node: Arc<Node>,
    req: pb::WatchRequest,
    tx: tokio::sync::mpsc::Sender<Result<pb::IncidentChange, Status>>,
) {
    let change = |s: &pager_core::State, changed: &[&pager_core::Incident], _through| {
        changed
            .iter()
            .filter(|i| req.service.is_empty() || i.service == req.service)
            .map(|i| {
                Ok(pb::IncidentChange {
                    revision: i.revision,
                    incident: Some(pb::Incident {
                        integrations: convert::integrations_to_pb(s, i.id),
                        ..convert::incident_to_pb(
                            i,
                            i.deliveries
                                .iter()
                                .filter_map(|d| s.deliveries.get(d).map(|d| &**d)),
                        )
                    }),
                })
            })
            .collect()
    };
    if follow(node, req.from_revision, None, change, tx.clone()).await == Followed::Stopping {
        let _ = tx
            .send(Err(Status::unavailable(
                "node shutting down; resume the watch on another node",
            )))
            .await;
    }
}
