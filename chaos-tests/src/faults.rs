//! Faults, each recorded in the scenario's [`History`] (kind, node, instant, and the failover
//! it caused when it deposed a leader: from the fault to another node seen leading):
//!
//! - processes: SIGKILL of the leader, of a whole region, of every node (then all restarted);
//!   SIGSTOP of the leader past the election timeout, then SIGCONT (a zombie leader);
//!   SIGTERM of every node in turn (a rolling restart: the leader hands over first); restart
//!   of a killed node; a node wiped and added back as a learner, then promoted;
//! - network, through the link proxies ([`crate::proxy::Links`]): the leader isolated in a
//!   minority, a follower cut off (symmetric), the leader's outgoing links cut (asymmetric),
//!   latency on every link;
//! - providers: Twilio unreachable, answering 429, answering late; SMTP down. Windows in which
//!   a provider (or the whole cluster) could not take pages are recorded as [`Outage`]s, which
//!   extend the deadline of the pages due in them.
//!
//! Before a fault that may depose the leader, the leader's pages in flight are noted
//! ([`History::in_flight`]).

use crate::client;
use crate::cluster::{Cluster, Killed, Leader};
use crate::history::{FaultRecord, History, InFlight, Outage};
use crate::metrics;
use crate::pages::PageChannel;
use crate::proxy::{Gates, LinkMode};
use anyhow::Context as _;
use pager_fakes::smtp::SmtpServer;
use pager_fakes::twilio::{FakeTwilio, Fault};
use pager_proto::pager::v1 as pb;
use std::time::{Duration, Instant, SystemTime};

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

/// Note the leader's pages in flight (`pagerd_deliveries_pending`) just before fault `kind`,
/// for the report. A scrape that fails (the node is already unreachable) notes nothing.
pub async fn note_in_flight(cluster: &Cluster, history: &mut History, kind: &str, leader: u64) {
    let Ok(ports) = cluster.ports(leader) else {
        return;
    };
    if let Ok(m) = metrics::scrape(ports.http).await {
        history.in_flight.push(InFlight {
            fault: kind.into(),
            pending: m.pending(),
        });
    }
}

fn record(
    history: &mut History,
    kind: &str,
    node: u64,
    at: SystemTime,
    failover: Option<Duration>,
) {
    history.faults.push(FaultRecord {
        kind: kind.into(),
        node,
        at,
        failover,
    });
}

/// SIGSTOP the leader, keep it stopped until the others have elected a new leader (measured
/// as the failover) and `hold` more, then SIGCONT it: a zombie leader that wakes up believing
/// it still leads, well after its lease ran out. Returns once every node names one leader.
pub async fn pause_leader(
    cluster: &mut Cluster,
    history: &mut History,
    hold: Duration,
    timeout: Duration,
) -> anyhow::Result<LeaderKill> {
    let old = cluster.wait_for_leader(timeout).await?;
    note_in_flight(cluster, history, "pause-leader", old.id).await;
    let paused = cluster.pause(old.id)?;
    let waited = cluster.wait_for_new_leader(old, timeout).await;
    let (new, seen) = match waited {
        Ok(found) => found,
        Err(e) => {
            let _ = cluster.resume(old.id);
            return Err(e);
        }
    };
    let election = seen.duration_since(paused.at);
    // Waiting out the pause is the fault itself.
    tokio::time::sleep(hold.saturating_sub(seen.elapsed())).await;
    cluster.resume(old.id)?;
    record(history, "pause-leader", old.id, paused.wall, Some(election));
    cluster.wait_for_leader(timeout).await?;
    Ok(LeaderKill {
        old,
        killed: paused,
        new,
        election,
    })
}

/// A new leader after a network fault on `old`; if none comes, every link is healed first so
/// the scenario's checks see a whole cluster.
async fn elected_or_heal(
    cluster: &mut Cluster,
    old: Leader,
    timeout: Duration,
) -> anyhow::Result<(Leader, Instant)> {
    let elected = cluster.wait_for_new_leader(old, timeout).await;
    if elected.is_err() {
        cluster.net()?.links.heal();
    }
    elected
}

/// What a partition did and saw.
#[derive(Debug, Clone)]
pub struct Partitioned {
    pub old: Leader,
    /// The leader once the partition healed and every node agreed.
    pub after: Leader,
    /// From the partition to a new leader elsewhere, when the leader was cut off.
    pub failover: Option<Duration>,
}

/// Cut the leader off (both ways, [`LinkMode::Stall`]: its packets vanish) together with as
/// few followers as leaves it a minority; the majority elects a new leader. After `hold`, heal.
pub async fn isolate_leader(
    cluster: &mut Cluster,
    history: &mut History,
    hold: Duration,
    timeout: Duration,
) -> anyhow::Result<Partitioned> {
    let old = cluster.wait_for_leader(timeout).await?;
    let ids = cluster.ids();
    let followers: Vec<u64> = ids.iter().copied().filter(|&i| i != old.id).collect();
    // The largest minority: floor((n - 1) / 2) nodes, the leader among them.
    let minority_size = (ids.len() - 1) / 2;
    let mut minority = vec![old.id];
    minority.extend(followers.iter().take(minority_size.saturating_sub(1)));
    let majority: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|i| !minority.contains(i))
        .collect();
    note_in_flight(cluster, history, "isolate-leader", old.id).await;
    let (at, wall) = (Instant::now(), SystemTime::now());
    cluster
        .net()?
        .links
        .partition(&[minority.clone(), majority.clone()], LinkMode::Stall);
    tracing::info!(?minority, ?majority, "partition: leader in the minority");
    let (new, seen) = elected_or_heal(cluster, old, timeout).await?;
    let failover = seen.duration_since(at);
    cluster.wait_for_leader_among(&majority, timeout).await?;
    tokio::time::sleep(hold.saturating_sub(at.elapsed())).await;
    cluster.net()?.links.heal();
    record(history, "isolate-leader", old.id, wall, Some(failover));
    let after = cluster.wait_for_leader(timeout).await?;
    tracing::info!(new = new.id, after = after.id, "healed");
    Ok(Partitioned {
        old,
        after,
        failover: Some(failover),
    })
}

/// Cut one follower off from everyone, both ways ([`LinkMode::Stall`]), for `hold`; the
/// majority keeps a leader throughout. On heal the follower, whose term kept rising while it
/// campaigned alone, may depose the leader: the failover, if any, is measured from the heal.
pub async fn partition_follower(
    cluster: &mut Cluster,
    history: &mut History,
    hold: Duration,
    timeout: Duration,
) -> anyhow::Result<Partitioned> {
    let old = cluster.wait_for_leader(timeout).await?;
    let follower = cluster.follower_of(old.id)?;
    let rest: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|&i| i != follower)
        .collect();
    let wall = SystemTime::now();
    let at = Instant::now();
    cluster
        .net()?
        .links
        .partition(&[vec![follower], rest.clone()], LinkMode::Stall);
    tracing::info!(follower, "partition: one follower alone");
    // The majority side keeps (or re-elects) a leader throughout.
    cluster.wait_for_leader_among(&rest, timeout).await?;
    tokio::time::sleep(hold.saturating_sub(at.elapsed())).await;
    let healed = Instant::now();
    cluster.net()?.links.heal();
    let after = cluster.wait_for_leader(timeout).await?;
    let failover = (after != old).then(|| healed.elapsed());
    record(history, "partition", follower, wall, failover);
    Ok(Partitioned {
        old,
        after,
        failover,
    })
}

/// An asymmetric partition: every link *out of* the leader is cut ([`LinkMode::Cut`]: its
/// connections are refused) while it still receives. Followers stop hearing heartbeats and
/// elect a new leader, whose messages reach the old one. After `hold`, heal.
pub async fn cut_leader_outgoing(
    cluster: &mut Cluster,
    history: &mut History,
    hold: Duration,
    timeout: Duration,
) -> anyhow::Result<Partitioned> {
    let old = cluster.wait_for_leader(timeout).await?;
    note_in_flight(cluster, history, "asymmetric", old.id).await;
    let (at, wall) = (Instant::now(), SystemTime::now());
    cluster.net()?.links.isolate_outgoing(old.id, LinkMode::Cut);
    tracing::info!(
        leader = old.id,
        "asymmetric partition: the leader's outgoing links cut"
    );
    let (_, seen) = elected_or_heal(cluster, old, timeout).await?;
    let failover = seen.duration_since(at);
    tokio::time::sleep(hold.saturating_sub(at.elapsed())).await;
    cluster.net()?.links.heal();
    record(history, "asymmetric", old.id, wall, Some(failover));
    let after = cluster.wait_for_leader(timeout).await?;
    Ok(Partitioned {
        old,
        after,
        failover: Some(failover),
    })
}

/// Add `latency` to every byte between every two nodes, either way, for `hold`.
pub async fn slow_links(
    cluster: &mut Cluster,
    history: &mut History,
    latency: Duration,
    hold: Duration,
    timeout: Duration,
) -> anyhow::Result<Leader> {
    let before = cluster.wait_for_leader(timeout).await?;
    let wall = SystemTime::now();
    cluster.net()?.links.set_latency_everywhere(latency);
    tracing::info!(
        latency_ms = latency.as_millis() as u64,
        "latency on every link"
    );
    tokio::time::sleep(hold).await;
    cluster.net()?.links.heal();
    let after = cluster.wait_for_leader(timeout).await?;
    record(history, "latency", before.id, wall, None);
    Ok(after)
}

/// SIGKILL every live node of `region` at once. When the leader was among them, waits for a
/// new one (the failover). Returns the nodes killed.
pub async fn kill_region(
    cluster: &mut Cluster,
    history: &mut History,
    region: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<u64>> {
    let leader = cluster.wait_for_leader(timeout).await?;
    let victims: Vec<u64> = cluster
        .nodes_in(region)
        .into_iter()
        .filter(|&id| cluster.is_live(id))
        .collect();
    if victims.is_empty() {
        anyhow::bail!("no live node in region {region}");
    }
    note_in_flight(cluster, history, "kill-region", leader.id).await;
    let mut first = None;
    for &id in &victims {
        let k = cluster.kill(id)?;
        first.get_or_insert(k);
    }
    let Some(first) = first else {
        anyhow::bail!("no node of region {region} was killed");
    };
    let failover = if victims.contains(&leader.id) {
        let (_, seen) = cluster.wait_for_new_leader(leader, timeout).await?;
        Some(seen.duration_since(first.at))
    } else {
        None
    };
    tracing::info!(region, ?victims, ?failover, "region killed");
    record(history, "kill-region", leader.id, first.wall, failover);
    Ok(victims)
}

/// SIGKILL every node, keep the cluster down for `down`, start them all again. Pages due
/// meanwhile are owed from the moment a leader is back ([`Outage`] `cluster-down`). The
/// failover is from the kill to the first leader after the restart.
pub async fn kill_all_and_restart(
    cluster: &mut Cluster,
    history: &mut History,
    down: Duration,
    timeout: Duration,
) -> anyhow::Result<Leader> {
    let leader = cluster.wait_for_leader(timeout).await?;
    note_in_flight(cluster, history, "kill-all", leader.id).await;
    let mut first = None;
    for id in cluster.live() {
        let k = cluster.kill(id)?;
        first.get_or_insert(k);
    }
    let Some(first) = first else {
        anyhow::bail!("no live node to kill");
    };
    tokio::time::sleep(down.saturating_sub(first.at.elapsed())).await;
    for id in cluster.ids() {
        cluster.restart(id).await?;
    }
    let back = cluster.wait_for_leader(timeout).await?;
    let failover = first.at.elapsed();
    history.outages.push(Outage {
        what: "cluster-down".into(),
        channels: Vec::new(),
        from: first.wall,
        to: SystemTime::now(),
    });
    record(history, "kill-all", leader.id, first.wall, Some(failover));
    cluster.wait_all_caught_up(back.id, timeout).await?;
    Ok(back)
}

/// Restart every node in turn with SIGTERM (a planned stop: a leader hands leadership over
/// before it exits), each back and caught up before the next. The failover is measured for
/// the node that led when it got SIGTERM: from the signal to another node leading.
pub async fn rolling_restart(
    cluster: &mut Cluster,
    history: &mut History,
    timeout: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut handovers = Vec::new();
    for id in cluster.ids() {
        let leader = cluster.wait_for_leader(timeout).await?;
        let was_leader = leader.id == id;
        if was_leader {
            note_in_flight(cluster, history, "sigterm", id).await;
        }
        let stopped = cluster.terminate(id, timeout).await?;
        let failover = if was_leader {
            let (_, seen) = cluster.wait_for_new_leader(leader, timeout).await?;
            let took = seen.duration_since(stopped.at);
            handovers.push(took);
            Some(took)
        } else {
            None
        };
        record(history, "sigterm", id, stopped.wall, failover);
        cluster.restart(id).await?;
        let now = cluster.wait_for_leader(timeout).await?;
        cluster.wait_all_caught_up(now.id, timeout).await?;
    }
    Ok(handovers)
}

/// Take node `id` (a follower) out of the membership, stop it, delete its data, start it
/// empty, and add it back as a learner that catches up (by snapshot, when the leader's log
/// was purged: see [`crate::cluster::ClusterOptions::snapshot_every_entries`]), then promote
/// it. A node that lost its data lost its vote: it must not count as the voter it was until
/// it is promoted, which the membership answers are checked for.
pub async fn wipe_and_rejoin(
    cluster: &mut Cluster,
    history: &mut History,
    id: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let leader = cluster.wait_for_leader(timeout).await?;
    if leader.id == id {
        anyhow::bail!("node {id} leads; wipe a follower");
    }
    let wall = SystemTime::now();
    let mut admin = client::cluster(&cluster.channel(leader.id)?);
    let removed = admin
        .remove_node(pb::RemoveNodeRequest { id })
        .await
        .with_context(|| format!("Cluster.RemoveNode({id})"))?
        .into_inner();
    if removed.voters.contains(&id) || removed.learners.contains(&id) {
        anyhow::bail!("node {id} is still a member after RemoveNode: {removed:?}");
    }
    cluster.terminate(id, timeout).await?;
    cluster.wipe(id)?;
    cluster.restart(id).await?;
    // Empty and not bootstrapping, it leads nothing and votes in no membership.
    let alone = cluster.status(id).await?;
    if alone.role == "leader" || alone.members.iter().any(|m| m.voter) {
        anyhow::bail!("node {id} came back from a wipe as a voter: {alone:?}");
    }
    // The leader's log up to now goes into a snapshot and is purged.
    let leader = cluster
        .wait_for_leader_among(&live_except(cluster, id), timeout)
        .await?;
    let mut admin = client::cluster(&cluster.channel(leader.id)?);
    admin
        .snapshot(pb::SnapshotRequest {})
        .await
        .context("Cluster.Snapshot on the leader")?;
    let added = admin
        .add_node(pb::AddNodeRequest {
            node: Some(cluster.node_info(id)?),
            learner_only: true,
        })
        .await
        .with_context(|| format!("Cluster.AddNode({id}) as a learner"))?
        .into_inner();
    if !added.learners.contains(&id) || added.voters.contains(&id) {
        anyhow::bail!("node {id} was not added as a learner only: {added:?}");
    }
    let target = cluster.status(leader.id).await?.applied_index;
    cluster.wait_applied(id, target, timeout).await?;
    let role = cluster.status(id).await?.role;
    if role != "learner" {
        anyhow::bail!("node {id} caught up as {role:?}, not as a learner");
    }
    let promoted = admin
        .promote_learner(pb::PromoteLearnerRequest { id })
        .await
        .with_context(|| format!("Cluster.PromoteLearner({id})"))?
        .into_inner();
    if !promoted.voters.contains(&id) {
        anyhow::bail!("node {id} is not a voter after PromoteLearner: {promoted:?}");
    }
    record(history, "wipe-rejoin", id, wall, None);
    let now = cluster.wait_for_leader(timeout).await?;
    cluster.wait_all_caught_up(now.id, timeout).await?;
    Ok(())
}

fn live_except(cluster: &Cluster, id: u64) -> Vec<u64> {
    cluster.live().into_iter().filter(|&i| i != id).collect()
}

/// Twilio unreachable from every node (its gates refuse connections) for `hold`.
pub async fn twilio_down(
    cluster: &Cluster,
    history: &mut History,
    hold: Duration,
) -> anyhow::Result<()> {
    let gates = cluster
        .net()?
        .twilio
        .as_ref()
        .context("the cluster has no Twilio gates")?;
    provider_down(
        gates,
        history,
        "twilio-down",
        &[PageChannel::Sms, PageChannel::Voice],
        hold,
    )
    .await
}

/// The SMTP server stopped (connections refused, sessions cut) for `hold`.
pub async fn smtp_down(
    smtp: &SmtpServer,
    history: &mut History,
    hold: Duration,
) -> anyhow::Result<()> {
    let from = SystemTime::now();
    smtp.stop().await;
    tokio::time::sleep(hold).await;
    smtp.restart().await.context("restart the SMTP server")?;
    history.outages.push(Outage {
        what: "smtp-down".into(),
        channels: vec![PageChannel::Email],
        from,
        to: SystemTime::now(),
    });
    record(history, "smtp-down", 0, from, None);
    Ok(())
}

async fn provider_down(
    gates: &Gates,
    history: &mut History,
    what: &str,
    channels: &[PageChannel],
    hold: Duration,
) -> anyhow::Result<()> {
    let from = SystemTime::now();
    gates.down().await;
    tokio::time::sleep(hold).await;
    gates.up().await.with_context(|| format!("end {what}"))?;
    history.outages.push(Outage {
        what: what.into(),
        channels: channels.to_vec(),
        from,
        to: SystemTime::now(),
    });
    record(history, what, 0, from, None);
    Ok(())
}

/// The next `n` requests to Twilio get `429 Too Many Requests` (Twilio's 20429); pagerd backs
/// off and retries. The window is an [`Outage`] until the faults are used up (at most
/// `within`).
pub async fn twilio_429(
    twilio: &FakeTwilio,
    history: &mut History,
    n: usize,
    within: Duration,
) -> anyhow::Result<()> {
    twilio_faults(
        twilio,
        history,
        "twilio-429",
        Fault::too_many_requests(),
        n,
        within,
    )
    .await
}

/// The next `n` requests to Twilio are answered only after `delay` (recorded at once: the
/// page is out, the answer late; past `twilio.timeout_ms` the sender cannot know).
pub async fn twilio_slow(
    twilio: &FakeTwilio,
    history: &mut History,
    n: usize,
    delay: Duration,
    within: Duration,
) -> anyhow::Result<()> {
    twilio_faults(
        twilio,
        history,
        "twilio-slow",
        Fault::Delay(delay),
        n,
        within,
    )
    .await
}

async fn twilio_faults(
    twilio: &FakeTwilio,
    history: &mut History,
    what: &str,
    fault: Fault,
    n: usize,
    within: Duration,
) -> anyhow::Result<()> {
    let from = SystemTime::now();
    // A refusal is recorded as rejected; a late answer's message is recorded at once.
    let refused = matches!(fault, Fault::Status { .. } | Fault::Drop);
    let count = || {
        if refused {
            twilio.rejected().len()
        } else {
            twilio.messages().len()
        }
    };
    let target = count() + n;
    twilio.fail_next(n, fault);
    // Woken by each record the fake makes; at most `within`, then what is left is dropped so
    // the fault ends.
    let _ = if refused {
        twilio.wait_for_rejected(target, within).await.map(|_| ())
    } else {
        twilio.wait_for_messages(target, within).await.map(|_| ())
    };
    twilio.clear_faults();
    tracing::info!(what, used = count() + n - target, n, "twilio fault over");
    history.outages.push(Outage {
        what: what.into(),
        channels: vec![PageChannel::Sms, PageChannel::Voice],
        from,
        to: SystemTime::now(),
    });
    record(history, what, 0, from, None);
    Ok(())
}
