//! The node runtime: the Raft handle, the replicated state, and the write
//! path. A write is stamped and proposed here when this node leads, or
//! forwarded to the leader over the peer port; either way the caller gets the
//! leader's answer once the command is applied.

//!
//! - [`peer`]: the protocol between members on the peer port and the leader's
//!   side of it
//! - [`membership`]: voters, learners, their addresses, initialisation

use crate::config::NodeConfig;
use crate::error::NodeError;
use openraft::ServerState;
use pager_core::{Command, State};
use pager_raft::{PeerClients, Raft, RaftMetrics, StateHandle};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

mod membership;
mod peer;

pub use peer::{ForwardReply, ForwardRequest, MembershipView, Written};

pub struct Node {
    pub cfg: Arc<NodeConfig>,
    pub raft: Raft,
    /// A look at the Raft log (the term of its last entry, for `pager_raft::elections`);
    /// it does not keep the log open once Raft has stopped.
    pub log: pager_raft::LogPeek,
    pub state: StateHandle,
    pub peers: PeerClients,
    /// Last applied log id, published by the state machine after each apply batch.
    pub applied: watch::Receiver<Option<pager_raft::LogId>>,
    /// What the leader's loops share (takeover term, pacing, page latency,
    /// sends under way, the transfer gate).
    pub leader: crate::leader::LeaderState,
    /// Times this node saw the cluster's leader change.
    pub leader_changes: std::sync::atomic::AtomicU64,
    /// Events per integration key taken by this node.
    pub limiter: crate::edge::ratelimit::KeyLimiter,
    /// Turns true when the node shuts down: long-lived streams end then, so
    /// the servers' graceful shutdown does not wait for their clients.
    pub stopping: watch::Receiver<bool>,
    /// Quorum view and self-monitoring counters.
    pub health: crate::leader::monitor::Health,
    /// Slack members mapped to the document's users (requests from Slack).
    pub slack_users: crate::edge::slack::Directory,
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
