//! The leader's clock. Timers live in the replicated state; the scheduler only
//! sleeps until the earliest one and proposes `Tick{at}`. A node that becomes
//! leader proposes a Tick at once, so overdue work (and deliveries left in
//! doubt by the old leader) fire within one election.

use crate::node::{now_ms, Node};
use pager_core::Command;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

pub async fn run(node: Arc<Node>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut metrics = node.raft.metrics();
    let mut applied = node.applied.clone();
    let mut ticked_term = 0u64;
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
        if term != ticked_term {
            info!(
                node = node.id(),
                term, "became leader: proposing a tick for overdue work"
            );
            if propose_tick(&node).await {
                ticked_term = term;
            }
            continue;
        }
        let wait = node
            .read(|s| s.next_deadline())
            .map(|due| Duration::from_millis(due.saturating_sub(now_ms())));
        match wait {
            Some(d) if d.is_zero() => {
                propose_tick(&node).await;
            }
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => { propose_tick(&node).await; }
                    _ = applied.changed() => {}
                    _ = metrics.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
            None => {
                tokio::select! {
                    _ = applied.changed() => {}
                    _ = metrics.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// Propose a tick as leader; false if it did not commit (lost leadership or no quorum).
async fn propose_tick(node: &Node) -> bool {
    match node
        .serve_local(crate::node::ForwardRequest::Write(Command::Tick { at: 0 }))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            warn!(node = node.id(), cause = %e, "tick not committed");
            // Do not spin while leadership settles.
            tokio::time::sleep(Duration::from_millis(50)).await;
            false
        }
    }
}
