//! No accepted event is lost: every incident id a client got back from `Events.Send` is
//! present, with the dedup key it was filed under, on every live node, once that node has
//! applied the highest commit index any client was told about.

use super::Violation;
use crate::client;
use crate::cluster::Cluster;
use crate::history::History;
use anyhow::Context as _;
use pager_proto::pager::v1 as pb;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "no-lost-event";

/// Concurrent `Incidents.Get` calls per node.
const READERS: usize = 8;

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Events accepted (including folded triggers).
    pub accepted: usize,
    /// Distinct incidents they named.
    pub incidents: usize,
    /// (incident, node) pairs missing or wrong.
    pub lost: usize,
    pub violations: Vec<Violation>,
}

pub async fn check(
    cluster: &Cluster,
    history: &History,
    catch_up: Duration,
) -> anyhow::Result<Outcome> {
    let index = history.max_commit_index();
    let mut keys: BTreeMap<u64, &str> = BTreeMap::new();
    for a in history.accepted.iter().filter(|a| a.incident != 0) {
        keys.entry(a.incident).or_insert(&a.dedup_key);
    }
    let ids: Arc<Vec<(u64, String)>> = Arc::new(
        keys.into_iter()
            .map(|(id, key)| (id, key.to_string()))
            .collect(),
    );
    let mut out = Outcome {
        accepted: history.accepted.len(),
        incidents: ids.len(),
        ..Outcome::default()
    };
    for node in cluster.live() {
        if let Err(e) = cluster.wait_applied(node, index, catch_up).await {
            out.lost += ids.len();
            out.violations.push(Violation {
                invariant: NAME,
                detail: format!("node {node} cannot be checked: {e:#}"),
            });
            continue;
        }
        let next = Arc::new(AtomicUsize::new(0));
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..READERS.min(ids.len()) {
            let (ids, next) = (ids.clone(), next.clone());
            let mut incidents = client::incidents(&cluster.channel(node)?);
            readers.spawn(async move {
                let mut problems = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, key)) = ids.get(i) else {
                        return Ok::<_, anyhow::Error>(problems);
                    };
                    match incidents.get(pb::GetIncidentRequest { id: *id, ..Default::default() }).await {
                        Ok(inc) if inc.get_ref().dedup_key == *key => {}
                        Ok(inc) => problems.push(format!(
                            "node {node}: incident {id} has dedup key {:?}, the client was told {key:?}",
                            inc.get_ref().dedup_key
                        )),
                        Err(s) if s.code() == tonic::Code::NotFound => problems.push(format!(
                            "node {node}: incident {id} (dedup key {key:?}) is missing"
                        )),
                        Err(s) => {
                            return Err(anyhow::anyhow!("node {node}: Incidents.Get({id}): {s}"))
                        }
                    }
                }
            });
        }
        while let Some(done) = readers.join_next().await {
            for detail in done.context("incident reader task")?? {
                out.lost += 1;
                out.violations.push(Violation {
                    invariant: NAME,
                    detail,
                });
            }
        }
    }
    Ok(out)
}
