//! The leader's clock. Timers live in the replicated state; the scheduler only
//! sleeps until the earliest one (woken early when an apply moves it) and
//! proposes `Tick{at}`. A process that
//! becomes leader first commits a `Takeover`: deliveries left unsettled by an
//! earlier leader (or by an earlier process of this node, restarted fast
//! enough to lead the same term again) are re-claimed and counted, and
//! overdue timers fire, all within one election.

use crate::node::{now_ms, Node};
use pager_core::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// The clock loop and what it owns. `wake` changes whenever an apply moved
/// the earliest deadline (`WakeAt` effects, [`crate::leader::effects`]); the
/// deadline itself is read from the state, since one that disappears (the
/// incident was acknowledged) says nothing.
pub struct Scheduler {
    pub node: Arc<Node>,
    pub wake: watch::Receiver<u64>,
    pub shutdown: watch::Receiver<bool>,
}

impl Scheduler {
    pub async fn run(self) {
        let Scheduler {
            node,
            mut wake,
            mut shutdown,
        } = self;
        let mut metrics = node.raft.metrics();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some(term) = node.leader_term() else {
                tokio::select! {
                    _ = metrics.changed() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            if *node.leader.takeover_term.borrow() != term {
                info!(node = node.id(), term, "became leader: proposing takeover");
                // The link key is set by the first takeover ever committed;
                // later seeds are ignored by apply. Only a fresh cluster needs one.
                let key_seed = if node.read(|s| s.link_key.expose().is_empty()) {
                    random_key()
                } else {
                    String::new()
                };
                if propose(&node, term, Command::Takeover { at: 0, key_seed }).await {
                    node.leader.takeover_term.send_replace(term);
                }
                continue;
            }
            let wait = node
                .read(|s| s.next_deadline())
                .map(|due| Duration::from_millis(due.saturating_sub(now_ms())));
            match wait {
                Some(d) if d.is_zero() => {
                    propose(&node, term, Command::Tick { at: 0 }).await;
                }
                Some(d) => {
                    // On waking, the loop reads the deadline again: due now, it ticks.
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = wake.changed() => {}
                        _ = metrics.changed() => {}
                        _ = shutdown.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = wake.changed() => {}
                        _ = metrics.changed() => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }
}

/// Propose as the leader of `term`; false if it did not commit (leadership lost, no quorum,
/// or not within the write timeout).
async fn propose(node: &Node, term: u64, cmd: Command) -> bool {
    match node.propose_in_term(term, cmd).await {
        Ok(_) => true,
        Err(e) => {
            warn!(node = node.id(), cause = %e, "scheduler proposal not committed");
            // Back off briefly rather than spin while leadership settles.
            tokio::time::sleep(Duration::from_millis(50)).await;
            false
        }
    }
}

/// 32 random bytes from the OS, hex.
fn random_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
