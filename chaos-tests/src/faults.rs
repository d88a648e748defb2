//! Faults, each recorded in the scenario's [`History`]: SIGKILL of the leader (with the
//! failover it causes measured) and the restart of a killed node.

use crate::cluster::{Cluster, Killed, Leader};
use crate::history::{FaultRecord, History};
use std::time::{Duration, SystemTime};

/// What [`kill_leader`] did and saw.
#[derive(Debug, Clone, Copy)]
pub struct LeaderKill {
    pub old: Leader,
    pub killed: Killed,
    /// The first live node seen reporting itself leader after the kill.
    pub new: Leader,
    /// From the SIGKILL to `new` reporting itself leader in `Cluster.Status`.
    pub election: Duration,
}

/// SIGKILL the current leader (as every live node sees it) and wait for another node to
/// become leader.
pub async fn kill_leader(
    cluster: &mut Cluster,
    history: &mut History,
    timeout: Duration,
) -> anyhow::Result<LeaderKill> {
    let old = cluster.wait_for_leader(timeout).await?;
    kill_known_leader(cluster, history, old, timeout).await
}

/// [`kill_leader`] without first asking who leads: SIGKILL `old` at once.
pub async fn kill_known_leader(
    cluster: &mut Cluster,
    history: &mut History,
    old: Leader,
    timeout: Duration,
) -> anyhow::Result<LeaderKill> {
    let killed = cluster.kill(old.id)?;
    let (new, seen) = cluster.wait_for_new_leader(old, timeout).await?;
    let election = seen.duration_since(killed.at);
    history.faults.push(FaultRecord {
        kind: "kill-leader".into(),
        node: old.id,
        at: killed.wall,
        failover: Some(election),
    });
    Ok(LeaderKill {
        old,
        killed,
        new,
        election,
    })
}

/// Restart a killed node and wait until it has applied what the leader had applied when it
/// came back. Returns the leader and that index.
pub async fn restart(
    cluster: &mut Cluster,
    history: &mut History,
    id: u64,
    timeout: Duration,
) -> anyhow::Result<(Leader, u64)> {
    let at = SystemTime::now();
    cluster.restart(id).await?;
    history.faults.push(FaultRecord {
        kind: "restart".into(),
        node: id,
        at,
        failover: None,
    });
    let leader = cluster.wait_for_leader(timeout).await?;
    let index = cluster.wait_all_caught_up(leader.id, timeout).await?;
    Ok((leader, index))
}
