//! Failover: how long pages wait when the leader dies. The rounds of the full run's phase 3,
//! and the failover phase (`--only failover`), which runs them on clusters of its own.
//!
//! A round triggers an incident of the `failover` service on the leader (its policy pages
//! level 2, one SMS, [`LEVEL2_MS`] after the trigger), SIGKILLs right after the trigger
//! commits, and measures from the SIGKILL to a new leader reported by `Cluster.Status`
//! (every live node polled every 10 ms, [`chaos_tests::cluster::POLL`]), from the SIGKILL to
//! the level-2 SMS at the fake Twilio, and that SMS's delay after its deadline (the
//! incident's `created_at_ms` + [`LEVEL2_MS`]). The killed nodes are then restarted and
//! caught up before the next round. What is killed:
//!
//! - [`Fault::Leader`]: the leader's process.
//! - [`Fault::Region`]: every node of the leader's region at once ([`faults::kill_region`],
//!   which reads the leader's pending deliveries from `/metrics` first: a few ms between the
//!   commit and the kill). On five nodes laid out 2/2/1, the leader is first handed to a node
//!   of a two-node region (`Cluster.TransferLeader`, alternating over the four such nodes)
//!   when it leads alone in the third, so every round kills two of five nodes, the leader
//!   among them, and the three left must all vote for the new leader.
//!
//! The phase: `--kills` rounds (default 20) of [`Fault::Leader`] on three nodes, then
//! `--region-kills` rounds (default 5) of [`Fault::Region`] on five nodes in three regions
//! (2/2/1). After each cluster's rounds, the invariants run over what its clients saw (no
//! accepted event lost; each level-2 SMS by its deadline + [`FAILOVER_BOUND`]).

use super::ingest::{report_json, Layout, Rig};
use super::timers::accepted;
use super::{api, FAILOVER_BOUND, FAILOVER_KEY, FAILOVER_SMS, LEVEL2_MS, WAIT};
use anyhow::{bail, Context as _};
use chaos_tests::cluster::{Cluster, Leader};
use chaos_tests::history::{from_epoch_ms, History};
use chaos_tests::report::{percentiles, ScenarioReport};
use chaos_tests::workload::OnCall;
use chaos_tests::{client, faults, pages};
use pager_fakes::twilio::FakeTwilio;
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;

/// Handovers tried to get the leader into a two-node region before a region kill.
const TRANSFERS: usize = 3;
/// Leader kills of `--only failover` (`--kills`).
pub const KILLS: usize = 20;

/// What a round kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of the leader.
    Leader,
    /// SIGKILL of every node in the leader's region.
    Region,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Leader => "SIGKILL of the leader",
            Fault::Region => "SIGKILL of the leader's region (2 nodes)",
        }
    }
}

/// The figures of a series of rounds, one entry per round.
#[derive(Default)]
pub struct Failover {
    pub kill_to_page: Vec<Duration>,
    pub election: Vec<Duration>,
    pub late_after_deadline: Vec<Duration>,
}

impl Failover {
    /// The table: one row per figure, p50 / p99 / max over the rounds; `fault` names what
    /// was killed.
    pub fn print(&self, title: &str, fault: Fault) {
        let what = match fault {
            Fault::Leader => "leader",
            Fault::Region => "region",
        };
        println!(
            "{:<38} {:>7} {:>10} {:>10} {:>10}",
            title, "kills", "p50", "p99", "max"
        );
        for (name, v) in [
            (
                format!("SIGKILL {what} -> new leader's page"),
                &self.kill_to_page,
            ),
            (
                format!("SIGKILL {what} -> new leader (Status)"),
                &self.election,
            ),
            (
                "page delay after its deadline".into(),
                &self.late_after_deadline,
            ),
        ] {
            let [p50, p99, max] = p50_p99_max(v);
            println!(
                "{:<38} {:>7} {:>10} {:>10} {:>10}",
                name,
                v.len(),
                p50,
                p99,
                max
            );
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "kill_to_page": dist(&self.kill_to_page),
            "kill_to_new_leader": dist(&self.election),
            "page_delay_after_deadline": dist(&self.late_after_deadline),
        })
    }
}

/// `d` in ms, to 0.1 ms.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// p50, p99 and max of `v` in ms, and every value.
pub fn dist(v: &[Duration]) -> Value {
    let p = percentiles(v, &[50.0, 99.0, 100.0]);
    json!({
        "n": v.len(),
        "p50_ms": p.first().copied().map(ms),
        "p99_ms": p.get(1).copied().map(ms),
        "max_ms": p.get(2).copied().map(ms),
        "all_ms": v.iter().copied().map(ms).collect::<Vec<_>>(),
    })
}

/// p50, p99 and max of `v` for the tables, to 0.1 ms below 100 ms ("-" when empty).
pub fn p50_p99_max(v: &[Duration]) -> [String; 3] {
    let fmt = |d: &Duration| match ms(*d) {
        v if v < 100.0 => format!("{v:.1} ms"),
        v => format!("{v:.0} ms"),
    };
    match percentiles(v, &[50.0, 99.0, 100.0]).as_slice() {
        [a, b, c] => [a, b, c].map(fmt),
        _ => ["-".into(), "-".into(), "-".into()],
    }
}

/// `created_at_ms` of incident `id`, as `inc`'s node has it.
pub async fn created_ms(
    inc: &mut pb::incidents_client::IncidentsClient<Channel>,
    id: u64,
) -> anyhow::Result<u64> {
    Ok(inc
        .get(pb::GetIncidentRequest {
            id,
            ..Default::default()
        })
        .await
        .with_context(|| format!("get incident {id}"))?
        .into_inner()
        .created_at_ms)
}

/// Phase 3 of the full run: `kills` rounds of [`Fault::Leader`].
pub async fn failover(
    c: &mut Cluster,
    twilio: &FakeTwilio,
    kills: usize,
    history: &mut History,
    doc: &OnCall,
) -> anyhow::Result<Failover> {
    rounds(c, twilio, kills, Fault::Leader, history, doc).await
}

/// What a round's fault killed and saw.
struct Killed {
    what: String,
    nodes: Vec<u64>,
    wall: SystemTime,
    /// The new leader, and from the SIGKILL to it in `Cluster.Status`.
    new: Leader,
    election: Duration,
}

async fn inflict(
    c: &mut Cluster,
    history: &mut History,
    leader: Leader,
    fault: Fault,
) -> anyhow::Result<Killed> {
    match fault {
        Fault::Leader => {
            let k = faults::kill_known_leader(c, history, leader, WAIT).await?;
            Ok(Killed {
                what: format!("node {}", k.old.id),
                nodes: vec![k.old.id],
                wall: k.killed.wall,
                new: k.new,
                election: k.election,
            })
        }
        Fault::Region => {
            let region = c.region_of(leader.id);
            let nodes = faults::kill_region(c, history, &region, WAIT).await?;
            let Some(record) = history.faults.last().cloned() else {
                bail!("kill_region recorded no fault");
            };
            let Some(election) = record.failover else {
                bail!(
                    "region {region} did not hold the leader (node {})",
                    leader.id
                );
            };
            Ok(Killed {
                what: format!("region {region} (nodes {nodes:?})"),
                nodes,
                wall: record.at,
                new: c.wait_for_leader(WAIT).await?,
                election,
            })
        }
    }
}

/// The leader, handed first to a node of a two-node region when it leads alone in its own.
async fn leader_in_pair(c: &Cluster, round: usize) -> anyhow::Result<Leader> {
    let pair = |id: u64| c.nodes_in(&c.region_of(id)).len() >= 2;
    let mut leader = c.wait_for_leader(WAIT).await?;
    for _ in 0..TRANSFERS {
        if pair(leader.id) {
            return Ok(leader);
        }
        let targets: Vec<u64> = c.ids().into_iter().filter(|&id| pair(id)).collect();
        let Some(&to) = targets.get(round % targets.len().max(1)) else {
            bail!("no region of the cluster has two nodes");
        };
        eprintln!(
            "bench: failover: node {} leads alone in region {}: handing leadership to node {to}",
            leader.id,
            c.region_of(leader.id)
        );
        leader = api::transfer_leader(c, leader, to, None).await?;
    }
    if pair(leader.id) {
        return Ok(leader);
    }
    bail!(
        "node {} still leads alone in region {} after {TRANSFERS} handovers",
        leader.id,
        c.region_of(leader.id)
    )
}

/// `n` rounds killing `fault`; see the module documentation.
pub async fn rounds(
    c: &mut Cluster,
    twilio: &FakeTwilio,
    n: usize,
    fault: Fault,
    history: &mut History,
    doc: &OnCall,
) -> anyhow::Result<Failover> {
    let mut out = Failover::default();
    for round in 0..n {
        let leader = match fault {
            Fault::Leader => c.wait_for_leader(WAIT).await?,
            Fault::Region => leader_in_pair(c, round).await?,
        };
        let r = client::events(&c.channel(leader.id)?)
            .send(client::trigger(
                FAILOVER_KEY,
                &format!("failover-{round}"),
                "failover probe",
            ))
            .await
            .with_context(|| format!("failover trigger {round}"))?
            .into_inner();
        let kill = inflict(c, history, leader, fault).await?;
        let sms = pages::wait_for_sms(twilio, r.incident_id, FAILOVER_SMS, WAIT)
            .await
            .with_context(|| format!("round {round}: level-2 page after the SIGKILL"))?;
        let created = created_ms(
            &mut client::incidents(&c.channel(kill.new.id)?),
            r.incident_id,
        )
        .await?;
        let due = from_epoch_ms(created + LEVEL2_MS);
        let kill_to_page = sms
            .received_at
            .duration_since(kill.wall)
            .unwrap_or_default();
        let late = sms.received_at.duration_since(due).unwrap_or_default();
        eprintln!(
            "bench: failover {}/{n}: killed {}, node {} leads after {} ms, page {} ms after the kill, {} ms after its deadline",
            round + 1,
            kill.what,
            kill.new.id,
            kill.election.as_millis(),
            kill_to_page.as_millis(),
            late.as_millis()
        );
        out.kill_to_page.push(kill_to_page);
        out.election.push(kill.election);
        out.late_after_deadline.push(late);
        let incident = r.incident_id;
        history.accepted.push(accepted(r, leader.id));
        // Level 2's SMS; level 1's hour-late email is never due during the bench.
        history.expected.extend(
            doc.expected_pages("failover", incident, created, None)
                .into_iter()
                .filter(|p| p.to == FAILOVER_SMS),
        );
        for id in kill.nodes {
            let restarted = Instant::now();
            let (_, index) = faults::restart(c, history, id, WAIT).await?;
            eprintln!(
                "bench: node {id} restarted and caught up to index {index} in {} ms",
                restarted.elapsed().as_millis()
            );
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Rounds of [`Fault::Leader`] on three nodes.
    pub kills: usize,
    /// Rounds of [`Fault::Region`] on five nodes, 2/2/1.
    pub region_kills: usize,
}

/// One cluster's rounds.
pub struct Part {
    layout: Layout,
    fault: Fault,
    figures: Failover,
    report: ScenarioReport,
    seconds: f64,
}

pub struct Phase {
    parts: Vec<Part>,
}

impl Phase {
    /// Whether every cluster's invariants held.
    pub fn is_clean(&self) -> bool {
        self.parts.iter().all(|p| p.report.is_clean())
    }

    pub fn print(&self) {
        for p in &self.parts {
            println!();
            println!(
                "failover: {}, {} rounds of {}, {:.0} s",
                p.layout.name(),
                p.figures.election.len(),
                p.fault.name(),
                p.seconds
            );
            p.figures
                .print(&format!("{} nodes", p.layout.nodes()), p.fault);
            println!("{}", p.report.with_violations());
        }
    }

    pub fn json(&self) -> Value {
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|p| {
                let mut v = p.figures.json();
                v["layout"] = json!(p.layout.name());
                v["nodes"] = json!(p.layout.nodes());
                v["fault"] = json!(format!("{:?}", p.fault).to_lowercase());
                v["level2_after_ms"] = json!(LEVEL2_MS);
                v["seconds"] = json!(p.seconds);
                v["report"] = report_json(&p.report);
                v
            })
            .collect();
        json!({ "failover_bound_ms": FAILOVER_BOUND.as_millis() as u64, "parts": parts })
    }
}

pub async fn run_phase(s: Settings) -> anyhow::Result<Phase> {
    let mut parts = Vec::new();
    for (layout, fault, n) in [
        (Layout::Three, Fault::Leader, s.kills),
        (Layout::FiveRegions, Fault::Region, s.region_kills),
    ] {
        if n == 0 {
            continue;
        }
        let began = Instant::now();
        let doc = super::oncall();
        let mut rig = Rig::start(layout, None, &doc).await?;
        eprintln!(
            "bench: failover: {} up under {}; {n} rounds of {}",
            layout.name(),
            rig.cluster.root().display(),
            fault.name()
        );
        let mut history = History::default();
        let figures = rounds(&mut rig.cluster, &rig.twilio, n, fault, &mut history, &doc).await?;
        let report = rig
            .check(&format!("bench-failover-{}", layout.key()), &history)
            .await?;
        parts.push(Part {
            layout,
            fault,
            figures,
            report,
            seconds: began.elapsed().as_secs_f64(),
        });
    }
    Ok(Phase { parts })
}
