//! Retention: the leader forgets incidents resolved longer ago than
//! `retention.keep_resolved_secs`, so memory and snapshots stay bounded.
//! It proposes `Compact` with an explicit cutoff; apply decides from the
//! state alone, so replicas stay identical whatever each node's setting.

use crate::node::{now_ms, Node};
use pager_core::{Command, Response};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

pub async fn run(node: Arc<Node>, mut stopped: watch::Receiver<bool>) {
    let Some(keep) = node.cfg.keep_resolved else {
        return;
    };
    let keep_ms = keep.as_millis() as u64;
    let mut tick = tokio::time::interval(node.cfg.retention_check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if node.leader_term().is_none() {
            continue;
        }
        let cutoff = now_ms().saturating_sub(keep_ms);
        if !node.read(|s| s.has_resolved_before(cutoff)) {
            continue;
        }
        let cmd = Command::Compact {
            at: 0,
            resolved_before: cutoff,
        };
        match node.write(cmd).await {
            Ok(w) => {
                if let Response::Compacted {
                    incidents,
                    deliveries,
                } = w.response
                {
                    info!(
                        incidents,
                        deliveries,
                        index = w.index,
                        "forgot incidents resolved before the retention cutoff"
                    );
                }
            }
            Err(e) => warn!(cause = %e, "retention: compact not committed; next check retries"),
        }
    }
}
