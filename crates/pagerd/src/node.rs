//! The node runtime: the Raft handle, the replicated state, and the write
//! path. A write is stamped and proposed here when this node leads, or
//! forwarded to the leader over the peer port; either way the caller gets the
//! leader's answer once the command is applied.

use crate::config::NodeConfig;
use crate::error::NodeError;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use pager_core::{Command, Rejection, Response, State};
use pager_raft::{PeerClients, PeerNode, Raft, RaftMetrics, StateHandle};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

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
    /// (`elections`, before a follower stands).
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
    ElectionState(crate::elections::ElectionState),
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

pub struct Node {
    pub cfg: Arc<NodeConfig>,
    pub raft: Raft,
    /// A look at the Raft log (the term of its last entry, for `elections`); it does not
    /// keep the log open once Raft has stopped.
    pub log: pager_raft::LogPeek,
    pub state: StateHandle,
    pub peers: PeerClients,
    /// Last applied log id, published by the state machine after each apply batch.
    pub applied: watch::Receiver<Option<pager_raft::LogId>>,
    /// The term in which *this process* committed its `Takeover`. The
    /// dispatcher sends only in that term: until then, deliveries claimed by
    /// the term may have been sent by an earlier process (written by the
    /// scheduler, read by the dispatcher).
    pub takeover_term: watch::Sender<u64>,
    /// When the leader may send each page (account rate, per-recipient throttle).
    pub pacer: crate::pacer::Pacer,
    /// Claim → provider accepted, per page this node sent as leader.
    pub page_latency: crate::latency::Histogram,
    /// Times this node saw the cluster's leader change.
    pub leader_changes: std::sync::atomic::AtomicU64,
    /// Events per integration key taken by this node.
    pub limiter: crate::ratelimit::KeyLimiter,
    /// Turns true when the node shuts down: long-lived streams end then, so
    /// the servers' graceful shutdown does not wait for their clients.
    pub stopping: watch::Receiver<bool>,
    /// Writes take it shared; a leadership transfer takes it exclusively to
    /// hold new writes while the target catches up and campaigns.
    pub transfer_gate: tokio::sync::RwLock<()>,
    /// Quorum view and self-monitoring counters.
    pub health: crate::monitor::Health,
    /// Sends under way and whether new ones may start (a hand-over drains them
    /// first, so their outcomes commit here instead of being re-sent).
    pub sends: crate::transfer::Sends,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Node {
    pub fn id(&self) -> u64 {
        self.cfg.node_id
    }

    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        self.state.read(f)
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.raft.metrics().borrow().clone()
    }

    /// `Some(term)` while this node is the leader.
    pub fn leader_term(&self) -> Option<u64> {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.state == ServerState::Leader).then_some(m.current_term)
    }

    /// Propose `cmd` as the leader of `term` and wait until it is applied. Fails once this node
    /// no longer leads `term`, or after the write timeout, whichever comes first. openraft 0.9
    /// can leave the write of a leader that stepped down unanswered (seen after a restarted
    /// node briefly led its old term and then installed the new leader's snapshot): a loop that
    /// awaited it would stall for good, and the scheduler's did, so a later term of the same
    /// node never proposed its `Takeover` and paged nothing for 10 s (chaos t70, five nodes).
    pub(crate) async fn propose_in_term(
        &self,
        term: u64,
        cmd: Command,
    ) -> Result<ForwardReply, NodeError> {
        let write = tokio::time::timeout(
            self.cfg.write_timeout,
            self.serve_local(ForwardRequest::Write(cmd)),
        );
        tokio::select! {
            r = write => r.unwrap_or_else(|_| Err(NodeError::Unavailable(format!(
                "not committed within {} ms",
                self.cfg.write_timeout.as_millis()
            )))),
            _ = self.raft.term_lost(term) => {
                Err(NodeError::Unavailable(format!("no longer the leader of term {term}")))
            }
        }
    }

    /// True while this node leads and its state machine has applied an entry
    /// of the current term: everything committed before this term is applied.
    fn leader_caught_up(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader
            && m.last_applied
                .is_some_and(|applied| applied.leader_id.term == m.current_term)
    }

    /// Propose `cmd` through the leader (this node or another) and return the
    /// applied response. Bounded by the write timeout: without a quorum it
    /// fails with `Unavailable`, and retrying is safe for idempotent commands.
    pub async fn write(&self, cmd: Command) -> Result<Written, NodeError> {
        let deadline = tokio::time::Instant::now() + self.cfg.write_timeout;
        match tokio::time::timeout_at(deadline, self.route(ForwardRequest::Write(cmd))).await {
            Ok(Ok(ForwardReply::Written(w))) => Ok(w),
            Ok(Ok(_)) => Err(NodeError::Fatal("unexpected reply to a write".into())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NodeError::Unavailable(format!(
                "not committed within {} ms (no quorum or no leader); safe to retry",
                self.cfg.write_timeout.as_millis()
            ))),
        }
    }

    pub async fn change_membership(
        &self,
        req: ForwardRequest,
    ) -> Result<MembershipView, NodeError> {
        match self.route(req).await? {
            ForwardReply::Membership(m) => Ok(m),
            _ => Err(NodeError::Fatal(
                "unexpected reply to a membership change".into(),
            )),
        }
    }

    /// Serve locally when leading, else forward to the leader. While no
    /// leader is known, or the one asked has just lost leadership (it refused
    /// without applying anything), wait for the next leader and try again;
    /// the caller bounds the whole wait.
    pub(crate) async fn route(&self, req: ForwardRequest) -> Result<ForwardReply, NodeError> {
        let mut metrics = self.raft.metrics();
        loop {
            let res = match self.serve_local(req.clone()).await {
                Err(NodeError::NotLeader {
                    leader_id: Some(id),
                    leader_addr,
                }) if id != self.id() => match self.peer_addr_of(id) {
                    Some(peer) => self.forward(&peer, &req).await,
                    None => {
                        return Err(NodeError::NotLeader {
                            leader_id: Some(id),
                            leader_addr,
                        })
                    }
                },
                other => other,
            };
            match res {
                Err(NodeError::NotLeader { .. }) => {
                    // Election under way: wait for the membership view to change.
                    let _ = metrics.borrow_and_update();
                    let _ = metrics.changed().await;
                }
                other => return other,
            }
        }
    }

    /// Make a read on this node reflect at least `min_index` and, when
    /// `linearizable`, everything committed before the read began (ReadIndex
    /// through the leader, whichever node serves the read). Bounded by the
    /// write timeout. Returns the index the read waited for.
    pub async fn read_barrier(&self, min_index: u64, linearizable: bool) -> Result<u64, NodeError> {
        let mut target = min_index;
        if linearizable {
            let asked = tokio::time::timeout(
                self.cfg.write_timeout,
                self.route(ForwardRequest::ReadIndex),
            );
            match asked.await {
                Ok(Ok(ForwardReply::ReadIndex(index))) => target = target.max(index),
                Ok(Ok(_)) => {
                    return Err(NodeError::Fatal("unexpected reply to a read index".into()))
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(NodeError::Unavailable(format!(
                        "leadership not confirmed within {} ms (no quorum or no leader)",
                        self.cfg.write_timeout.as_millis()
                    )))
                }
            }
        }
        if target > 0 {
            self.wait_applied(target).await?;
        }
        Ok(target)
    }

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
                let _gate = self.transfer_gate.read().await;
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
                crate::elections::ElectionState::of(self).await,
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
            ForwardRequest::ElectionState => crate::elections::ask_timeout(self),
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

    pub fn peer_addr_of(&self, id: u64) -> Option<String> {
        self.metrics()
            .membership_config
            .nodes()
            .find(|(nid, _)| **nid == id)
            .map(|(_, n)| n.peer_addr.clone())
    }

    pub fn member(&self, id: u64) -> Option<PeerNode> {
        self.metrics()
            .membership_config
            .nodes()
            .find(|(nid, _)| **nid == id)
            .map(|(_, n)| n.clone())
    }

    pub fn voters(&self) -> BTreeSet<u64> {
        self.metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Another member's public HTTP base URL (a voter's first), for a
    /// call's `FallbackUrl`: if this node dies mid-call, Twilio fetches the
    /// call's TwiML there.
    pub fn fallback_http_url(&self) -> Option<String> {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let me = self.id();
        let mut others: Vec<(bool, u64, String)> = membership
            .nodes()
            .filter(|(id, n)| **id != me && !n.http_url.is_empty())
            .map(|(id, n)| {
                (
                    !membership.voter_ids().any(|v| v == *id),
                    *id,
                    n.http_url.clone(),
                )
            })
            .collect();
        others.sort();
        others.into_iter().next().map(|(_, _, url)| url)
    }

    pub fn learners(&self) -> BTreeSet<u64> {
        self.metrics()
            .membership_config
            .membership()
            .learner_ids()
            .collect()
    }

    pub fn membership_view(&self) -> MembershipView {
        let m = self.metrics();
        MembershipView {
            voters: self.voters().into_iter().collect(),
            learners: self.learners().into_iter().collect(),
            index: m.last_applied.map(|l| l.index).unwrap_or(0),
        }
    }

    /// Initialise a new cluster. `members` empty: this node alone.
    pub async fn init(&self, members: BTreeMap<u64, PeerNode>) -> Result<(), NodeError> {
        let members = if members.is_empty() {
            BTreeMap::from([(self.id(), self.self_node())])
        } else {
            members
        };
        self.raft.initialize(members).await.map_err(|e| match e {
            RaftError::APIError(e) => NodeError::Precondition(e.to_string()),
            RaftError::Fatal(f) => NodeError::Fatal(f.to_string()),
        })
    }

    pub fn self_node(&self) -> PeerNode {
        self.cfg.peer_node()
    }

    /// Wait until this node has applied `index` (read-your-writes after a
    /// write the leader applied), bounded by the write timeout.
    pub async fn wait_applied(&self, index: u64) -> Result<(), NodeError> {
        let mut rx = self.applied.clone();
        let caught_up = async {
            rx.wait_for(|l| l.is_some_and(|l| l.index >= index))
                .await
                .map(|_| ())
        };
        let result = tokio::time::timeout(self.cfg.write_timeout, caught_up).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Unavailable("node is shutting down".into())),
            Err(_) => Err(NodeError::Unavailable(format!(
                "committed at index {index} but this node has not applied it yet; read from the leader"
            ))),
        }
    }

    /// Wait until this node knows a leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut m = self.raft.metrics();
        let r = tokio::time::timeout(timeout, m.wait_for(|m| m.current_leader.is_some())).await;
        match r {
            Ok(Ok(m)) => m.current_leader,
            _ => None,
        }
    }
}
