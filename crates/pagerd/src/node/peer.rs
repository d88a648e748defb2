//! The peer protocol: what one member asks another over `raft.v1.Raft/Forward`
//! on the peer port (a follower's writes and membership changes for the
//! leader, read indexes, leadership transfer and election state), how each
//! request is bounded, and how the leader serves it.
//!
//! Requests and replies are JSON (serde) inside the RPC's bytes; the reply is
//! the leader's `Result<ForwardReply, NodeError>`, so a follower returns the
//! leader's error exactly as if it had served the call itself.

use super::{now_ms, Node};
use crate::error::NodeError;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use pager_core::{Command, Rejection, Response};
use pager_raft::PeerNode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a follower sends the leader over `raft.v1.Raft/Forward`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    Write(Command),
    AddNode {
        id: u64,
        node: PeerNode,
        learner_only: bool,
    },
    RemoveNode {
        id: u64,
    },
    /// Make learner `id` a voter.
    PromoteLearner {
        id: u64,
    },
    /// Confirm leadership with a quorum and answer the commit index a
    /// linearizable read must wait for (Raft's ReadIndex).
    ReadIndex,
    /// To the leader: hand leadership to voter `to` (0: the leader picks).
    TransferLeader {
        to: u64,
    },
    /// From the leader to a transfer's target: campaign until leading.
    Campaign {
        within_ms: u64,
    },
    /// To any voter: how far its log goes and how long it has not heard from a leader
    /// (`pager_raft::elections`, before a follower stands).
    ElectionState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    Written(Written),
    Membership(MembershipView),
    ReadIndex(u64),
    /// Who leads after a transfer, and how long it took.
    Leader {
        id: u64,
        term: u64,
        took_ms: u64,
    },
    ElectionState(pager_raft::elections::ElectionState),
}

/// A command applied by the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Written {
    pub response: Response,
    /// Log index the command was committed at.
    pub index: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MembershipView {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub index: u64,
}

impl Node {
    /// Carry out a request on this node, which must be the leader.
    pub async fn serve_local(&self, req: ForwardRequest) -> Result<ForwardReply, NodeError> {
        match req {
            ForwardRequest::ReadIndex => match self.raft.ensure_linearizable().await {
                Ok(read) => Ok(ForwardReply::ReadIndex(read.map_or(0, |l| l.index))),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    Err(NodeError::NotLeader {
                        leader_id: f.leader_id,
                        leader_addr: f.leader_node.map(|n| n.client_addr),
                    })
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => {
                    Err(NodeError::Unavailable(q.to_string()))
                }
                Err(RaftError::Fatal(f)) => Err(NodeError::Fatal(f.to_string())),
            },
            ForwardRequest::Write(mut cmd) => {
                // Only on a leader that has applied an entry of its own term,
                // hence every write acknowledged before it: an unknown key then
                // costs no log entry. A freshly elected leader may still be
                // applying its predecessor's entries (CI caught one rejecting a
                // key its own log already held), and a follower's copy may lag;
                // both skip the check, and apply decides anyway.
                if let Command::Ingest { event, .. } = &cmd {
                    if self.leader_caught_up()
                        && self.read(|s| s.service_for_key(&event.routing_key).is_none())
                    {
                        return Err(NodeError::Rejected(Rejection::NotFound {
                            field: "routing_key".into(),
                            what: "integration key".into(),
                        }));
                    }
                }
                // Held while a leadership transfer is under way; afterwards
                // this node is a follower and the write goes to the new leader.
                let _gate = self.leader.transfer_gate.read().await;
                cmd.stamp(now_ms().max(self.read(|s| s.clock)));
                match self.raft.client_write(cmd).await {
                    Ok(r) => Ok(ForwardReply::Written(Written {
                        response: r.data,
                        index: r.log_id.index,
                    })),
                    Err(e) => Err(self.client_write_error(e)),
                }
            }
            ForwardRequest::AddNode {
                id,
                node,
                learner_only,
            } => {
                self.raft
                    .add_learner(id, node, true)
                    .await
                    .map_err(|e| self.client_write_error(e))?;
                if !learner_only {
                    let mut voters = self.voters();
                    voters.insert(id);
                    self.raft
                        .change_membership(voters, false)
                        .await
                        .map_err(|e| self.client_write_error(e))?;
                }
                Ok(ForwardReply::Membership(self.membership_view()))
            }
            ForwardRequest::PromoteLearner { id } => {
                if !self.learners().contains(&id) {
                    return Err(NodeError::invalid(
                        "id",
                        format!("node {id} is not a learner"),
                    ));
                }
                let mut voters = self.voters();
                voters.insert(id);
                self.raft
                    .change_membership(voters, false)
                    .await
                    .map_err(|e| self.client_write_error(e))?;
                Ok(ForwardReply::Membership(self.membership_view()))
            }
            ForwardRequest::RemoveNode { id } => {
                let mut voters = self.voters();
                if !voters.remove(&id) && !self.learners().contains(&id) {
                    return Err(NodeError::invalid(
                        "id",
                        format!("node {id} is not a member"),
                    ));
                }
                if voters.is_empty() {
                    return Err(NodeError::Precondition(
                        "cannot remove the last voter".into(),
                    ));
                }
                self.raft
                    .change_membership(voters, false)
                    .await
                    .map_err(|e| self.client_write_error(e))?;
                Ok(ForwardReply::Membership(self.membership_view()))
            }
            ForwardRequest::TransferLeader { to } => self.transfer_leadership(to).await,
            ForwardRequest::Campaign { within_ms } => {
                self.campaign(Duration::from_millis(within_ms)).await
            }
            ForwardRequest::ElectionState => Ok(ForwardReply::ElectionState(
                pager_raft::elections::ElectionState::of(&self.raft, &self.log).await,
            )),
        }
    }

    pub(crate) async fn forward(
        &self,
        peer: &str,
        req: &ForwardRequest,
    ) -> Result<ForwardReply, NodeError> {
        let body = serde_json::to_vec(req)
            .map_err(|e| NodeError::Fatal(format!("encode forward: {e}")))?;
        let reply = self
            .peers
            .forward(peer, body, self.bound_of(req))
            .await
            .map_err(|s| {
                NodeError::Unavailable(format!("forward to leader at {peer}: {}", s.message()))
            })?;
        let reply: Result<ForwardReply, NodeError> = serde_json::from_slice(&reply)
            .map_err(|e| NodeError::Fatal(format!("decode reply from leader at {peer}: {e}")))?;
        reply
    }

    /// How long a forwarded request may take: the write timeout, or for a
    /// leadership transfer (and its campaign) the transfer budget and a write
    /// timeout more, since a transfer waits out leases.
    pub(crate) fn bound_of(&self, req: &ForwardRequest) -> Duration {
        match req {
            ForwardRequest::TransferLeader { .. } | ForwardRequest::Campaign { .. } => {
                self.transfer_budget() + self.cfg.write_timeout
            }
            ForwardRequest::ElectionState => pager_raft::elections::ask_timeout(&self.cfg.raft),
            _ => self.cfg.write_timeout,
        }
    }

    /// The handler for `Forward` RPCs from followers.
    pub async fn handle_forward(&self, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        let req: ForwardRequest = serde_json::from_slice(&body)
            .map_err(|e| tonic::Status::invalid_argument(format!("forward request: {e}")))?;
        let bound = self.bound_of(&req);
        let res = match tokio::time::timeout(bound, self.serve_local(req)).await {
            Ok(r) => r,
            Err(_) => Err(NodeError::Unavailable(
                "leader could not commit in time".into(),
            )),
        };
        serde_json::to_vec(&res)
            .map_err(|e| tonic::Status::internal(format!("encode forward reply: {e}")))
    }

    fn client_write_error(&self, e: RaftError<u64, ClientWriteError<u64, PeerNode>>) -> NodeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => NodeError::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.client_addr),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
                NodeError::Precondition(c.to_string())
            }
            RaftError::Fatal(f) => NodeError::Fatal(f.to_string()),
        }
    }
}
