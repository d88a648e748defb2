//! Replicas are identical once quiet: every live node, having applied the same log index,
//! holds byte-for-byte the same state.
//!
//! pagerd already has a digest of the state: `Cluster.Backup` streams a node's state with a
//! header naming the applied index and the body's SHA-256. With `allow_stale` each node
//! answers from its own state (no read barrier through the leader), so the check asks every
//! live node and compares the digests of those at the same index. The state changes while
//! the leader still has work (ticks at deadlines, outcomes of pages), so the check waits for
//! a moment when every node reports the same applied index, then compares; if a write lands
//! between two answers, it asks again.

use super::Violation;
use crate::client;
use crate::cluster::{Cluster, POLL};
use anyhow::Context as _;
use pager_proto::pager::v1 as pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const NAME: &str = "replicas-identical";

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The index every node had applied when compared; `None` if never quiet.
    pub index: Option<u64>,
    pub nodes: usize,
    pub violations: Vec<Violation>,
}

/// `(index, sha256)` of node `node`'s state.
pub async fn digest(cluster: &Cluster, node: u64) -> anyhow::Result<(u64, String)> {
    let ch = cluster.channel(node)?;
    let mut stream = client::cluster(&ch)
        .backup(pb::BackupRequest { allow_stale: true })
        .await
        .with_context(|| format!("Cluster.Backup on node {node}"))?
        .into_inner();
    let first = stream
        .message()
        .await
        .with_context(|| format!("Cluster.Backup on node {node}: first chunk"))?
        .and_then(|c| c.header)
        .with_context(|| format!("Cluster.Backup on node {node}: no header"))?;
    // The body is not needed; dropping the stream cancels it.
    Ok((first.index, first.sha256))
}

/// Compare every live node's state digest, waiting up to `quiet` for a moment when all have
/// applied the same index.
pub async fn check(cluster: &Cluster, quiet: Duration) -> anyhow::Result<Outcome> {
    let deadline = Instant::now() + quiet;
    let nodes = cluster.live();
    let mut last: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    loop {
        let mut applied = BTreeMap::new();
        for &id in &nodes {
            applied.insert(id, cluster.status(id).await?.applied_index);
        }
        let mut indexes: Vec<u64> = applied.values().copied().collect();
        indexes.dedup();
        if indexes.len() == 1 {
            last.clear();
            for &id in &nodes {
                last.insert(id, digest(cluster, id).await?);
            }
            let mut at: Vec<u64> = last.values().map(|(i, _)| *i).collect();
            at.dedup();
            if let [index] = at[..] {
                let mut out = Outcome {
                    index: Some(index),
                    nodes: nodes.len(),
                    violations: Vec::new(),
                };
                let mut digests: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
                for (id, (_, sha)) in &last {
                    digests.entry(sha.as_str()).or_default().push(*id);
                }
                if digests.len() > 1 {
                    let list: Vec<String> = digests
                        .iter()
                        .map(|(sha, ids)| format!("nodes {ids:?}: sha256 {sha}"))
                        .collect();
                    out.violations.push(Violation {
                        invariant: NAME,
                        detail: format!(
                            "at applied index {index} the states differ: {}",
                            list.join("; ")
                        ),
                    });
                }
                return Ok(out);
            }
        }
        if Instant::now() > deadline {
            return Ok(Outcome {
                index: None,
                nodes: nodes.len(),
                violations: vec![Violation {
                    invariant: NAME,
                    detail: format!(
                        "the nodes never applied the same index within {quiet:?}: last applied \
                         {applied:?}, last digests {last:?}"
                    ),
                }],
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
