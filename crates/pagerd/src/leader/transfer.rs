//! Leadership transfer, the daemon's part: before pager-raft's hand-over
//! (`pager_raft::transfer`, which waits for the target to hold the whole log,
//! goes quiet and has it campaign), let the sends under way record their
//! outcomes here and hold new writes (the transfer gate), so neither is lost
//! or repeated across the change; route the request to the leader and the
//! campaign to the target over the peer protocol. Writes held meanwhile find
//! this node a follower and go to the new leader.
//!
//! Also here: handing leadership to a preferred region
//! ([`prefer_regions`]) and away before a planned stop ([`Node::step_down`]).

use crate::error::NodeError;
use crate::node::{ForwardReply, ForwardRequest, Node};
use openraft::ServerState;
use pager_raft::transfer::{self as raft_transfer, CampaignError};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// The leader's sends under way. A hand-over stops new ones and waits for
/// those under way to record their outcomes before it holds writes;
/// otherwise their outcome writes would be held, fail on the new leader's
/// term, and the new leader would re-send pages that went out.
#[derive(Debug, Default)]
pub struct Sends {
    under_way: std::sync::atomic::AtomicUsize,
    draining: std::sync::atomic::AtomicBool,
    done: tokio::sync::Notify,
    /// Wakes the dispatcher to look again at pages a send skipped.
    pub retry: tokio::sync::Notify,
}

/// One send under way; dropped once its outcome is recorded (or abandoned).
pub struct Sending<'a>(&'a Sends);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0
            .under_way
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.done.notify_waiters();
    }
}

impl Sends {
    /// `None` while a hand-over drains sends.
    pub fn start(&self) -> Option<Sending<'_>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.under_way.fetch_add(1, SeqCst);
        if self.draining.load(SeqCst) {
            self.under_way.fetch_sub(1, SeqCst);
            self.done.notify_waiters();
            return None;
        }
        Some(Sending(self))
    }

    /// Stop new sends and wait until none is under way, up to `deadline`.
    /// Sends resume when the returned guard drops.
    async fn drain(&self, deadline: Instant) -> Draining<'_> {
        use std::sync::atomic::Ordering::SeqCst;
        self.draining.store(true, SeqCst);
        loop {
            let done = self.done.notified();
            if self.under_way.load(SeqCst) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                break;
            }
        }
        Draining(self)
    }
}

struct Draining<'a>(&'a Sends);

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        self.0
            .draining
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Node {
    /// From any node: ask the leader to hand leadership to voter `to` (0: the
    /// leader picks). Returns (new leader, its term, milliseconds taken).
    pub async fn transfer_leader(&self, to: u64) -> Result<(u64, u64, u64), NodeError> {
        let req = ForwardRequest::TransferLeader { to };
        let bound = self.bound_of(&req);
        let asked = tokio::time::timeout(bound, self.route(req));
        match asked.await {
            Ok(Ok(ForwardReply::Leader { id, term, took_ms })) => Ok((id, term, took_ms)),
            Ok(Ok(_)) => Err(NodeError::Fatal(
                "unexpected reply to a leadership transfer".into(),
            )),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NodeError::Unavailable(format!(
                "no answer within {} ms (no leader?)",
                bound.as_millis()
            ))),
        }
    }

    /// How long a transfer may take in all (see `pager_raft::transfer::budget`).
    /// Writes wait for it at most this long.
    pub fn transfer_budget(&self) -> Duration {
        raft_transfer::budget(&self.cfg.raft)
    }

    /// The voter best placed to lead next: the one holding the most of the
    /// log, then one in a preferred region, then the lowest id.
    pub fn successor(&self) -> Option<u64> {
        raft_transfer::successor(&self.raft, self.id(), &self.cfg.preferred_regions)
    }

    /// On the leader: hand leadership to voter `to` (0: [`Node::successor`]).
    pub(crate) async fn transfer_leadership(&self, to: u64) -> Result<ForwardReply, NodeError> {
        let started = Instant::now();
        let deadline = started + self.transfer_budget();
        let me = self.id();
        let m = self.metrics();
        if m.state != ServerState::Leader {
            return Err(NodeError::NotLeader {
                leader_id: m.current_leader,
                leader_addr: m
                    .current_leader
                    .and_then(|id| self.member(id))
                    .map(|n| n.client_addr),
            });
        }
        let to = match to {
            0 => self.successor().ok_or_else(|| {
                NodeError::Precondition("no other voter to hand leadership to".into())
            })?,
            id => id,
        };
        if to == me {
            return Ok(ForwardReply::Leader {
                id: me,
                term: m.current_term,
                took_ms: 0,
            });
        }
        if !self.voters().contains(&to) {
            return Err(NodeError::invalid(
                "node_id",
                format!("node {to} is not a voter"),
            ));
        }
        let peer = self
            .peer_addr_of(to)
            .ok_or_else(|| NodeError::invalid("node_id", format!("node {to} has no address")))?;
        let unavailable = |what: String| {
            NodeError::Unavailable(format!(
                "leadership transfer to node {to}: {what}; node {me} leads on"
            ))
        };

        // 0. Let sends under way record their outcomes here (bounded by a
        // quarter of the budget); new ones wait for the next leader.
        let budget = deadline.saturating_duration_since(Instant::now());
        let _drained = self.leader.sends.drain(Instant::now() + budget / 4).await;

        // 1. Hold new writes; those in flight commit first.
        let _held = tokio::time::timeout_at(deadline, self.leader.transfer_gate.write())
            .await
            .map_err(|_| unavailable("writes in flight did not commit in time".into()))?;

        // 2-4. The target catches up, this node goes quiet, the target campaigns.
        let ask_campaign = |within: Duration| async move {
            let campaign = ForwardRequest::Campaign {
                within_ms: within.as_millis() as u64,
            };
            match self.forward(&peer, &campaign).await {
                Ok(ForwardReply::Leader { id, term, .. }) if id == to => Ok(term),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(e) => {
                    warn!(to, cause = %e, "leadership transfer failed");
                    Err(e.to_string())
                }
            }
        };
        let term = raft_transfer::hand_over(&self.raft, to, deadline, ask_campaign)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let took_ms = started.elapsed().as_millis() as u64;
        info!(from = me, to, term, took_ms, "leadership transferred");
        Ok(ForwardReply::Leader {
            id: to,
            term,
            took_ms,
        })
    }

    /// On the transfer target: campaign until this node leads or `within`
    /// passes (`pager_raft::transfer::campaign`).
    pub(crate) async fn campaign(&self, within: Duration) -> Result<ForwardReply, NodeError> {
        let started = Instant::now();
        let me = self.id();
        match raft_transfer::campaign(&self.raft, me, within).await {
            Ok(term) => Ok(ForwardReply::Leader {
                id: me,
                term,
                took_ms: started.elapsed().as_millis() as u64,
            }),
            Err(CampaignError::NotVoter) => Err(NodeError::invalid(
                "node_id",
                format!("node {me} is not a voter"),
            )),
            Err(CampaignError::Lost { within }) => Err(NodeError::Unavailable(format!(
                "node {me} did not win an election within {} ms",
                within.as_millis()
            ))),
            Err(CampaignError::Fatal(e)) => Err(NodeError::Fatal(e)),
        }
    }
}

/// How often a leader outside the preferred regions looks for a voter in one.
const PREFERENCE_CHECK: Duration = Duration::from_secs(5);

/// With `cluster.preferred_regions` set: while this node leads from another
/// region, hand leadership to a caught-up voter in the most preferred region
/// that has one. A leader must have led for a full check interval first, so a
/// failover's new leader is not moved while the cluster settles.
pub async fn prefer_regions(
    node: std::sync::Arc<Node>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let preferred = node.cfg.preferred_regions.clone();
    if preferred.is_empty() {
        return;
    }
    let mut led_since: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PREFERENCE_CHECK) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let Some(term) = node.leader_term() else {
            led_since = None;
            continue;
        };
        let since = match led_since {
            Some((t, at)) if t == term => at,
            _ => {
                led_since = Some((term, Instant::now()));
                continue;
            }
        };
        if since.elapsed() < PREFERENCE_CHECK || preferred.contains(&node.cfg.region) {
            continue;
        }
        let Some(to) = node.preferred_successor(&preferred) else {
            continue;
        };
        info!(to, "leading outside the preferred regions; handing over");
        if let Err(e) = node.transfer_leadership(to).await {
            warn!(to, cause = %e, "hand-over to the preferred region failed");
        }
    }
}

impl Node {
    /// A voter in the most preferred region holding the leader's whole log.
    fn preferred_successor(&self, preferred: &[String]) -> Option<u64> {
        raft_transfer::preferred_successor(&self.raft, self.id(), preferred)
    }

    /// Before a planned stop (SIGTERM): if this node leads and has another
    /// voter, hand leadership over so escalations do not wait for an
    /// election timeout. Returns the new leader, if the hand-over happened.
    pub async fn step_down(&self) -> Option<u64> {
        self.leader_term()?;
        if self.voters().len() < 2 {
            return None;
        }
        match self.transfer_leadership(0).await {
            Ok(ForwardReply::Leader { id, .. }) => Some(id),
            Ok(_) => None,
            Err(e) => {
                warn!(cause = %e, "could not hand over leadership before stopping");
                None
            }
        }
    }
}
