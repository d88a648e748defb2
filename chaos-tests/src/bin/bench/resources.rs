//! The `resources` phase (`--only resources`): what open incidents cost a node. Figures only,
//! no assertions.
//!
//! One three-node cluster of its own, with pagerd's default Raft configuration except that no
//! log is kept behind a snapshot (`max_in_snapshot_log_to_keep = 0`; pagerd keeps 1,000
//! entries), so that a wiped node catches up by snapshot (no providers: the console channel, which nothing reaches,
//! since the one service's policy notifies an hour later). After start and the on-call
//! document, each node's RSS (`VmRSS` of `/proc/<pid>/status`) is the baseline. Then, for each
//! level of `--resources-incidents` (default 10,000 and 100,000 open incidents, cumulative):
//!
//! 1. Load: triggers with distinct dedup keys through `Events.SendBatch` (1,000 a call, four
//!    calls in flight) to the leader, until that many incidents are open; wait until every
//!    node applied the leader's index, then 2 s more.
//! 2. RSS of each node, total and per open incident above the baseline (`VmHWM`, the peak, too).
//! 3. Disk: bytes of each node's data dir (every file under it but `pagerd.toml` and
//!    `pagerd.log`), then `Cluster.Snapshot` on each node, waiting until its `snapshot.json`
//!    changes (size or mtime), its size and the data dir again (the snapshot purges the log), and
//!    each node's `VmHWM` then: the peak RSS, snapshots included.
//! 4. Restart: SIGKILL a follower, start it again; time from the spawn to serving
//!    `Cluster.Status` and to its applied index equal to the leader's (nothing is written
//!    meanwhile), and its RSS then.
//! 5. Snapshot install: `Cluster.RemoveNode` of a follower, SIGKILL, wipe its data, start it
//!    empty, `Cluster.Snapshot` on the leader (so the log behind is purged), then
//!    `Cluster.AddNode` as a learner: time from AddNode to its applied index equal to the
//!    leader's; then `Cluster.PromoteLearner`. Its RSS then.

use super::{BULK_KEY, WAIT};
use anyhow::{anyhow, bail, Context as _};
use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions};
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Events per `Events.SendBatch` call (the API's maximum).
const BATCH: usize = 1_000;
/// `SendBatch` calls in flight while loading.
const IN_FLIGHT: usize = 4;
/// `raft.snapshot_every_entries` (pagerd's default); the harness adds
/// `max_in_snapshot_log_to_keep = 0`.
const SNAPSHOT_EVERY: u64 = 5_000;
/// Bound on loading, catching up, snapshots and restarts at one level.
const LONG: Duration = Duration::from_secs(600);

/// `VmRSS` and `VmHWM` of a process, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub rss: u64,
    pub hwm: u64,
}

fn rss_of(pid: u32) -> anyhow::Result<Rss> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parse {line:?}"))?;
        Ok(kb * 1024)
    };
    Ok(Rss {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

fn node_rss(c: &Cluster, id: u64) -> anyhow::Result<Rss> {
    let pid = c
        .pid(id)
        .ok_or_else(|| anyhow!("node {id} is not running"))?;
    rss_of(pid)
}

fn data_dir(c: &Cluster, id: u64) -> PathBuf {
    c.root().join(format!("node{id}"))
}

/// Apparent and allocated bytes of every file under `dir`, but the harness's config and log.
fn disk_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    fn walk(dir: &Path, top: bool, acc: &mut (u64, u64)) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if top
                && matches!(
                    path.file_name().and_then(|n| n.to_str()),
                    Some("pagerd.toml" | "pagerd.log")
                )
            {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if md.is_dir() {
                walk(&path, false, acc);
            } else {
                acc.0 += md.len();
                acc.1 += md.blocks() * 512;
            }
        }
    }
    let mut acc = (0, 0);
    walk(dir, true, &mut acc);
    acc
}

/// The node's `snapshot.json` (`snapshots/snapshot.json` under its data dir, or wherever it is).
fn snapshot_file(dir: &Path) -> Option<PathBuf> {
    let usual = dir.join("snapshots").join("snapshot.json");
    if usual.exists() {
        return Some(usual);
    }
    fn find(dir: &Path) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(f) = find(&p) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n == "snapshot.json") {
                return Some(p);
            }
        }
        None
    }
    find(dir)
}

fn file_stamp(path: Option<&Path>) -> Option<(u64, SystemTime)> {
    let md = std::fs::metadata(path?).ok()?;
    Some((md.len(), md.modified().ok()?))
}

/// `Cluster.Snapshot` on node `id`; waits until its snapshot file changed. Returns the file's
/// size and the time from the call to the change.
async fn force_snapshot(c: &Cluster, id: u64) -> anyhow::Result<(u64, Duration)> {
    let dir = data_dir(c, id);
    let before = file_stamp(snapshot_file(&dir).as_deref());
    let t = Instant::now();
    client::cluster(&c.channel(id)?)
        .snapshot(pb::SnapshotRequest {})
        .await
        .with_context(|| format!("Cluster.Snapshot on node {id}"))?;
    let deadline = Instant::now() + LONG;
    loop {
        let now = file_stamp(snapshot_file(&dir).as_deref());
        if let Some((len, _)) = now {
            if now != before && len > 0 {
                // The file is renamed into place whole: its size is final.
                return Ok((len, t.elapsed()));
            }
        }
        if Instant::now() > deadline {
            bail!("node {id}: snapshot.json unchanged {LONG:?} after Cluster.Snapshot");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Trigger `n` incidents with keys `res-<from>..` on `node` by `SendBatch`; returns the
/// events not accepted. The console phase preloads with it too.
pub async fn load(c: &Cluster, node: u64, from: usize, n: usize) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let mut ev = client::events(&c.channel(node)?);
        let next = next.clone();
        tasks.spawn(async move {
            let mut errors = 0usize;
            loop {
                let start = next.fetch_add(BATCH, Ordering::Relaxed);
                if start >= n {
                    return Ok::<usize, anyhow::Error>(errors);
                }
                let end = (start + BATCH).min(n);
                let events = (start..end)
                    .map(|i| client::trigger(BULK_KEY, &format!("res-{}", from + i), "resources"))
                    .collect();
                let r = ev
                    .send_batch(pb::SendBatchRequest { events })
                    .await
                    .with_context(|| format!("Events.SendBatch of events {start}..{end}"))?
                    .into_inner();
                for res in r.results {
                    match res.outcome {
                        Some(pb::send_batch_result::Outcome::Ok(_)) => {}
                        other => {
                            errors += 1;
                            if errors <= 3 {
                                eprintln!("bench: resources: SendBatch result: {other:?}");
                            }
                        }
                    }
                }
            }
        });
    }
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        errors += done.context("load task")??;
    }
    Ok(errors)
}

/// Wait until node `id` has applied exactly `index` or more; the time it took.
async fn until_applied(c: &Cluster, id: u64, index: u64) -> anyhow::Result<Duration> {
    let t = Instant::now();
    c.wait_applied(id, index, LONG).await?;
    Ok(t.elapsed())
}

pub struct Level {
    open: usize,
    load_errors: usize,
    load: Duration,
    leader: u64,
    applied_index: u64,
    /// Per node id: RSS with this many open incidents.
    rss: Vec<(u64, Rss)>,
    /// Per node id: data dir bytes (apparent, allocated) before the forced snapshots.
    disk_before: Vec<(u64, (u64, u64))>,
    /// Per node id: snapshot.json bytes and time to write it.
    snapshot: Vec<(u64, u64, Duration)>,
    disk_after: Vec<(u64, (u64, u64))>,
    /// Per node id: RSS and peak RSS once the forced snapshots are written.
    rss_after_snapshot: Vec<(u64, Rss)>,
    restart_node: u64,
    restart_serving: Duration,
    restart_caught_up: Duration,
    restart_rss: Rss,
    install_node: u64,
    install: Option<Duration>,
    install_rss: Option<Rss>,
    install_snapshot_bytes: Option<u64>,
    install_note: Option<String>,
}

pub struct Resources {
    baseline: Vec<(u64, Rss)>,
    levels: Vec<Level>,
}

fn base_of(base: &[(u64, Rss)], id: u64) -> u64 {
    base.iter()
        .find(|(n, _)| *n == id)
        .map_or(0, |(_, r)| r.rss)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Remove, wipe and add back follower `id`; the time from AddNode to caught up.
async fn wipe_and_install(c: &mut Cluster, leader: u64, id: u64) -> anyhow::Result<Duration> {
    let mut admin = client::cluster(&c.channel(leader)?);
    admin
        .remove_node(pb::RemoveNodeRequest { id })
        .await
        .with_context(|| format!("Cluster.RemoveNode({id})"))?;
    c.kill(id)?;
    c.wipe(id)?;
    c.restart(id).await?;
    // The leader's log up to now into a snapshot, the log behind it purged: the new node
    // can only catch up from the snapshot.
    force_snapshot(c, leader).await?;
    let target = c.status(leader).await?.applied_index;
    let t = Instant::now();
    admin
        .add_node(pb::AddNodeRequest {
            node: Some(c.node_info(id)?),
            learner_only: true,
        })
        .await
        .with_context(|| format!("Cluster.AddNode({id}) as a learner"))?;
    c.wait_applied(id, target, LONG).await?;
    let took = t.elapsed();
    admin
        .promote_learner(pb::PromoteLearnerRequest { id })
        .await
        .with_context(|| format!("Cluster.PromoteLearner({id})"))?;
    let now = c.wait_for_leader(WAIT).await?;
    c.wait_all_caught_up(now.id, LONG).await?;
    Ok(took)
}

pub async fn run_phase(levels: &[usize]) -> anyhow::Result<Resources> {
    let total = Instant::now();
    let say = |msg: String| {
        eprintln!(
            "bench: resources [{:6.1} s] {msg}",
            total.elapsed().as_secs_f64()
        )
    };
    // pagerd's default snapshot interval, but no log kept behind a snapshot (pagerd keeps
    // 1,000 entries): a wiped node can then only catch up by snapshot.
    let mut c = Cluster::start(ClusterOptions {
        snapshot_every_entries: Some(SNAPSHOT_EVERY),
        ..ClusterOptions::default()
    })
    .await
    .context("start the cluster")?;
    say(format!("3 nodes up under {}", c.root().display()));
    let leader = c.wait_for_leader(WAIT).await?;
    client::config(&c.channel(leader.id)?)
        .apply(pb::ApplyConfigRequest {
            document: super::oncall().to_toml(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .context("apply the on-call document")?;
    c.wait_all_caught_up(leader.id, WAIT).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut baseline = Vec::new();
    for id in c.ids() {
        baseline.push((id, node_rss(&c, id)?));
    }
    say(format!("baseline RSS {baseline:?}"));
    let mut out = Resources {
        baseline,
        levels: Vec::new(),
    };
    let mut open = 0usize;
    for &level in levels {
        if level <= open {
            continue;
        }
        let leader = c.wait_for_leader(WAIT).await?.id;
        say(format!("loading {} incidents to {level}", level - open));
        let t = Instant::now();
        let load_errors = load(&c, leader, open, level - open).await?;
        let applied_index = c.wait_all_caught_up(leader, LONG).await?;
        let load_took = t.elapsed();
        open = level;
        say(format!(
            "{level} open ({load_errors} not accepted) in {:.1} s, index {applied_index}",
            load_took.as_secs_f64()
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut rss = Vec::new();
        let mut disk_before = Vec::new();
        for id in c.ids() {
            rss.push((id, node_rss(&c, id)?));
            disk_before.push((id, disk_bytes(&data_dir(&c, id))));
        }
        say(format!("RSS {rss:?}, disk {disk_before:?}"));
        let mut snapshot = Vec::new();
        let mut disk_after = Vec::new();
        for id in c.ids() {
            let (len, took) = force_snapshot(&c, id).await?;
            snapshot.push((id, len, took));
        }
        // Purging the log behind the snapshot may lag the file a little.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut rss_after_snapshot = Vec::new();
        for id in c.ids() {
            disk_after.push((id, disk_bytes(&data_dir(&c, id))));
            rss_after_snapshot.push((id, node_rss(&c, id)?));
        }
        say(format!("snapshots {snapshot:?}, disk after {disk_after:?}"));

        let leader = c.wait_for_leader(WAIT).await?.id;
        let restart_node = c.follower_of(leader)?;
        let target = c.status(leader).await?.applied_index;
        c.kill(restart_node)?;
        let t = Instant::now();
        c.restart(restart_node).await?;
        let restart_serving = t.elapsed();
        until_applied(&c, restart_node, target).await?;
        let restart_caught_up = t.elapsed();
        let restart_rss = node_rss(&c, restart_node)?;
        say(format!(
            "node {restart_node} restarted: serving in {} ms, caught up to {target} in {} ms",
            restart_serving.as_millis(),
            restart_caught_up.as_millis()
        ));
        c.wait_for_leader(LONG).await?;

        let leader = c.wait_for_leader(WAIT).await?.id;
        let install_node = c.follower_of(leader)?;
        let (install, install_rss, install_snapshot_bytes, install_note) =
            match wipe_and_install(&mut c, leader, install_node).await {
                Ok(d) => {
                    let r = node_rss(&c, install_node).ok();
                    let snap = file_stamp(snapshot_file(&data_dir(&c, install_node)).as_deref())
                        .map(|(len, _)| len);
                    say(format!(
                        "node {install_node} wiped and added back: caught up in {} ms",
                        d.as_millis()
                    ));
                    (Some(d), r, snap, None)
                }
                Err(e) => {
                    say(format!("snapshot install on node {install_node}: {e:#}"));
                    (None, None, None, Some(format!("{e:#}")))
                }
            };
        let failed = install.is_none();
        out.levels.push(Level {
            open: level,
            load_errors,
            load: load_took,
            leader,
            applied_index,
            rss,
            disk_before,
            snapshot,
            disk_after,
            rss_after_snapshot,
            restart_node,
            restart_serving,
            restart_caught_up,
            restart_rss,
            install_node,
            install,
            install_rss,
            install_snapshot_bytes,
            install_note,
        });
        if failed {
            // The membership may be in any state: stop here with what was measured.
            break;
        }
    }
    Ok(out)
}

impl Resources {
    pub fn print(&self) {
        println!();
        println!(
            "{:<12} {:>5} {:>12} {:>12} {:>14} {:>12} {:>12} {:>12} {:>12}",
            "resources",
            "node",
            "RSS",
            "above base",
            "B/incident",
            "disk",
            "snapshot",
            "disk after",
            "peak RSS"
        );
        for (id, r) in &self.baseline {
            println!(
                "{:<12} {:>5} {:>12} {:>12} {:>14} {:>12} {:>12} {:>12} {:>12}",
                "0 (base)",
                id,
                mib(r.rss),
                "",
                "",
                "",
                "",
                "",
                mib(r.hwm)
            );
        }
        for l in &self.levels {
            for (id, r) in &l.rss {
                let above = r.rss.saturating_sub(base_of(&self.baseline, *id));
                let disk = l.disk_before.iter().find(|(n, _)| n == id).map(|d| d.1 .0);
                let after = l.disk_after.iter().find(|(n, _)| n == id).map(|d| d.1 .0);
                let snap = l.snapshot.iter().find(|(n, ..)| n == id).map(|s| s.1);
                let peak = l
                    .rss_after_snapshot
                    .iter()
                    .find(|(n, _)| n == id)
                    .map(|r| r.1.hwm);
                println!(
                    "{:<12} {:>5} {:>12} {:>12} {:>14.0} {:>12} {:>12} {:>12} {:>12}",
                    l.open,
                    format!("{id}{}", if *id == l.leader { "L" } else { "" }),
                    mib(r.rss),
                    mib(above),
                    above as f64 / l.open as f64,
                    disk.map_or("-".into(), mib),
                    snap.map_or("-".into(), mib),
                    after.map_or("-".into(), mib),
                    peak.map_or("-".into(), mib),
                );
            }
        }
        println!();
        println!(
            "{:<12} {:>12} {:>14} {:>14} {:>14} {:>14}",
            "open", "load", "restart serve", "restart c.up", "RSS restarted", "snap install"
        );
        for l in &self.levels {
            println!(
                "{:<12} {:>12} {:>14} {:>14} {:>14} {:>14}",
                l.open,
                format!("{:.1} s", l.load.as_secs_f64()),
                format!("{} ms", l.restart_serving.as_millis()),
                format!("{} ms", l.restart_caught_up.as_millis()),
                mib(l.restart_rss.rss),
                l.install
                    .map_or("failed".into(), |d| format!("{} ms", d.as_millis())),
            );
            if l.load_errors > 0 {
                println!("  {} events of the load were not accepted", l.load_errors);
            }
            if let Some(n) = &l.install_note {
                println!("  snapshot install: {n}");
            }
        }
    }

    pub fn json(&self) -> Value {
        let rss = |v: &[(u64, Rss)]| -> Value {
            v.iter()
                .map(|(id, r)| json!({"node": id, "rss_bytes": r.rss, "hwm_bytes": r.hwm}))
                .collect()
        };
        let disk = |v: &[(u64, (u64, u64))]| -> Value {
            v.iter()
                .map(|(id, (a, b))| json!({"node": id, "bytes": a, "allocated_bytes": b}))
                .collect()
        };
        json!({
            "baseline": rss(&self.baseline),
            "levels": self.levels.iter().map(|l| json!({
                "open_incidents": l.open,
                "load_errors": l.load_errors,
                "load_seconds": l.load.as_secs_f64(),
                "leader": l.leader,
                "applied_index": l.applied_index,
                "rss": rss(&l.rss),
                "rss_above_baseline_per_incident_bytes": l.rss.iter().map(|(id, r)| json!({
                    "node": id,
                    "bytes": r.rss.saturating_sub(base_of(&self.baseline, *id)) as f64 / l.open as f64,
                })).collect::<Vec<_>>(),
                "data_dir_before_snapshot": disk(&l.disk_before),
                "snapshot": l.snapshot.iter().map(|(id, len, took)| json!({
                    "node": id, "bytes": len, "ms": took.as_millis() as u64,
                })).collect::<Vec<_>>(),
                "data_dir_after_snapshot": disk(&l.disk_after),
                "rss_after_snapshot": rss(&l.rss_after_snapshot),
                "restart": {
                    "node": l.restart_node,
                    "to_serving_ms": l.restart_serving.as_millis() as u64,
                    "to_caught_up_ms": l.restart_caught_up.as_millis() as u64,
                    "rss_bytes": l.restart_rss.rss,
                },
                "snapshot_install": {
                    "node": l.install_node,
                    "add_node_to_caught_up_ms": l.install.map(|d| d.as_millis() as u64),
                    "rss_bytes": l.install_rss.map(|r| r.rss),
                    "installed_snapshot_bytes": l.install_snapshot_bytes,
                    "error": l.install_note,
                },
            })).collect::<Vec<_>>(),
        })
    }
}
