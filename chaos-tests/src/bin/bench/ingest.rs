//! The ingest matrix (`--only ingest-matrix`): events/s, latency and the leader's CPU per event
//! through each front door, by cluster size and concurrency. Figures only; the run fails only
//! when an accepted event is missing from a node afterwards.
//!
//! Two clusters, one after the other, each of its own with pagerd's defaults (the harness's
//! `Timings::default()`, fsync on every commit, snapshot every 5,000 entries) and the bench's
//! `[dispatch]` knobs: three nodes, then five nodes laid out 2/2/1 across three regions (as
//! `deploy/` lays them out and `t40_regions` runs them; on loopback the regions only name the
//! nodes). On each, with every request to the leader, for 1, 16, 64 and 256 concurrent clients
//! ([`CLIENTS`]), first gRPC `Events.Send` then HTTP `POST /v2/enqueue` (a PagerDuty Events
//! API v2 trigger), the same event each time (routing key, summary, source, severity) with a
//! distinct dedup key, so every event opens an incident of the `bulk` service, whose policy
//! notifies its user an hour later: nothing is paged and only ingest is measured. A run is
//! `--matrix-events` events (one client: a tenth of it), sent by the api phase's
//! [`api::run`]: one HTTP/2 connection per gRPC client; one reqwest pool for the HTTP
//! clients, which keeps a keep-alive connection per client (HTTP/1.1: one request in flight
//! per connection). Per run: events/s, latency p50/p99/p99.9/max, errors, the CPU time the
//! leader (and all nodes) spent per event (per-thread `schedstat`), the CPU other processes
//! took meanwhile, and the nodes that finished a snapshot meanwhile (they stall the leader's
//! answers; see `BENCH-RESULTS.md`).
//!
//! After a cluster's runs, the no-lost-event invariant checks that every accepted event is
//! present, with its dedup key, on every node. gRPC answers carry the incident id; HTTP answers
//! carry only the dedup key, so the HTTP events are first looked up in the leader's
//! `Incidents.List` (an accepted key the leader does not list counts as lost) and then checked
//! on every node like the others.
//!
//! This module also holds what the phases that start clusters of their own share: the
//! [`Layout`]s, a cluster with the fake providers ([`Rig`]), the check at the end
//! ([`Rig::check`]) and the report's JSON.

use super::api::{self, Call, Run, Target};
use super::{fmt_us, oncall, FAILOVER_BOUND, KNOBS, WAIT};
use anyhow::Context as _;
use chaos_tests::client;
use chaos_tests::cluster::{
    AuthOptions, Cluster, ClusterOptions, Leader, SmtpTarget, TwilioTarget,
};
use chaos_tests::history::{Accepted, History};
use chaos_tests::invariants::{self, Bounds};
use chaos_tests::pages;
use chaos_tests::report::ScenarioReport;
use chaos_tests::workload::OnCall;
use pager_fakes::smtp::{self, SmtpServer};
use pager_fakes::twilio::{self, FakeTwilio};
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Concurrent clients of the runs.
pub const CLIENTS: [usize; 4] = [1, 16, 64, 256];
/// The front doors, in the order each concurrency runs them.
const CALLS: [Call; 2] = [Call::Send, Call::Http];
/// Pause once the cluster is up and caught up, before the first run.
const SETTLE: Duration = Duration::from_secs(1);
/// Incidents per `Incidents.List` page (the API's maximum).
const LIST_PAGE: u32 = 1_000;
/// What the invariants allow every phase: a page by its deadline + one failover, one page in
/// flight after an acknowledgement, [`WAIT`] for a node to apply what a client was told.
pub const BOUNDS: Bounds = Bounds {
    failover: FAILOVER_BOUND,
    in_flight_after_ack: 1,
    catch_up: WAIT,
};
/// The five-node layout: two regions of two nodes and one of one.
const REGIONS_221: [&str; 5] = ["us-east", "us-east", "eu-west", "eu-west", "ap-south"];

/// The shape of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Three nodes, each in a region of its own.
    Three,
    /// Five nodes, 2/2/1 across three regions.
    FiveRegions,
}

impl Layout {
    pub fn nodes(self) -> usize {
        match self {
            Layout::Three => 3,
            Layout::FiveRegions => REGIONS_221.len(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Three => "3 nodes",
            Layout::FiveRegions => "5 nodes, 2/2/1 across three regions",
        }
    }

    /// For scenario names and JSON keys.
    pub fn key(self) -> &'static str {
        match self {
            Layout::Three => "3",
            Layout::FiveRegions => "5-regions",
        }
    }

    fn regions(self) -> Vec<String> {
        match self {
            Layout::Three => Vec::new(),
            Layout::FiveRegions => REGIONS_221.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// A cluster of real processes with the fake Twilio and the SMTP server its nodes page
/// through, and the on-call document applied.
pub struct Rig {
    pub cluster: Cluster,
    pub twilio: FakeTwilio,
    pub smtp: SmtpServer,
}

impl Rig {
    /// Start `layout` with the bench's `[dispatch]` knobs and `auth`, and apply `doc`.
    pub async fn start(
        layout: Layout,
        auth: Option<AuthOptions>,
        doc: &OnCall,
    ) -> anyhow::Result<Rig> {
        let twilio = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
        let smtp = SmtpServer::start().context("start the SMTP server")?;
        let cluster = Cluster::start(ClusterOptions {
            nodes: layout.nodes(),
            regions: layout.regions(),
            twilio: Some(TwilioTarget {
                base_url: twilio.base_url(),
                account_sid: twilio::TEST_ACCOUNT_SID.into(),
                auth_token: twilio::TEST_AUTH_TOKEN.into(),
                from: twilio::TEST_FROM.into(),
                timeout_ms: 5_000,
            }),
            smtp: Some(SmtpTarget {
                addr: smtp.addr(),
                from: smtp::TEST_FROM.into(),
                timeout_ms: 5_000,
            }),
            dispatch: Some(KNOBS),
            auth,
            ..ClusterOptions::default()
        })
        .await
        .with_context(|| format!("start the cluster ({})", layout.name()))?;
        let leader = cluster.wait_for_leader(WAIT).await?;
        let document = doc.to_toml();
        client::config(&cluster.channel(leader.id)?)
            .apply(pb::ApplyConfigRequest {
                document,
                format: "toml".into(),
                ..Default::default()
            })
            .await
            .context("apply the on-call document")?;
        Ok(Rig {
            cluster,
            twilio,
            smtp,
        })
    }

    /// The invariants over `history` and every page the providers received (pages by their
    /// deadline + [`FAILOVER_BOUND`]), as the scenario line `scenario`. On a violation, the
    /// end of every node's log goes to stderr.
    pub async fn check(&self, scenario: &str, history: &History) -> anyhow::Result<ScenarioReport> {
        let observed = pages::observed(Some(&self.twilio), Some(&self.smtp));
        let findings = invariants::check_all(&self.cluster, history, &observed, BOUNDS).await?;
        let report = ScenarioReport::new(scenario, history, &findings);
        if !report.is_clean() {
            self.cluster.print_log_tails(20);
        }
        Ok(report)
    }
}

/// The scenario line's figures, for the JSON.
pub fn report_json(report: &ScenarioReport) -> Value {
    json!({
        "accepted": report.events_accepted,
        "lost": report.lost,
        "pages_expected": report.pages_expected,
        "missed": report.missed,
        "duplicates": report.duplicates,
        "worst_delay_after_deadline_ms": report.worst_delay.map(|d| d.as_millis() as u64),
        "violations": report.violations.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Events of a run at 16, 64 and 256 clients; one client sends a tenth.
    pub events: usize,
}

impl Settings {
    fn count(&self, clients: usize) -> usize {
        if clients == 1 {
            (self.events / 10).max(1)
        } else {
            self.events
        }
    }
}

/// One cluster's runs.
pub struct Matrix {
    layout: Layout,
    leader: Leader,
    /// The leader once every run was over (another one: requests were refused meanwhile).
    leader_after: Leader,
    runs: Vec<Run>,
    /// HTTP events answered 202 whose dedup key the leader did not list afterwards.
    http_unlisted: usize,
    report: ScenarioReport,
    seconds: f64,
}

pub struct Ingest {
    settings: Settings,
    clusters: Vec<Matrix>,
}

/// Every incident `node` holds, by dedup key, and the highest index it had applied while
/// answering.
async fn incidents_by_key(c: &Cluster, node: u64) -> anyhow::Result<(HashMap<String, u64>, u64)> {
    let mut inc = client::incidents(&c.channel(node)?);
    let mut out = HashMap::new();
    let mut index = 0;
    let mut page_token = String::new();
    loop {
        let page = inc
            .list(pb::ListIncidentsRequest {
                limit: LIST_PAGE,
                page_token,
                ..Default::default()
            })
            .await
            .with_context(|| format!("Incidents.List on node {node}"))?
            .into_inner();
        index = index.max(page.applied_index);
        out.extend(page.incidents.into_iter().map(|i| (i.dedup_key, i.id)));
        if page.next_page_token.is_empty() {
            return Ok((out, index));
        }
        page_token = page.next_page_token;
    }
}

async fn one_cluster(layout: Layout, index: usize, s: Settings) -> anyhow::Result<Matrix> {
    let began = Instant::now();
    let rig = Rig::start(layout, None, &oncall()).await?;
    let c = &rig.cluster;
    let leader = c.wait_for_leader(WAIT).await?;
    c.wait_all_caught_up(leader.id, WAIT).await?;
    tokio::time::sleep(SETTLE).await;
    eprintln!(
        "bench: ingest-matrix: {} up under {}, node {} leads (term {})",
        layout.name(),
        c.root().display(),
        leader.id,
        leader.term
    );
    let target = Target::new(c, index, "matrix", leader.id, None)?;
    let mut history = History::default();
    let mut runs = Vec::new();
    let none = Arc::new(Vec::new());
    for clients in CLIENTS {
        for call in CALLS {
            let n = s.count(clients);
            let r = api::run(c, &target, call, clients, n, none.clone(), &mut history).await?;
            eprintln!(
                "bench: ingest-matrix: {}: {} x{clients}: {:.0}/s, p99 {}, {} errors",
                layout.key(),
                call.name(),
                r.rate(),
                fmt_us(r.latency.value_at_quantile(0.99)),
                r.errors
            );
            runs.push(r);
        }
    }
    let leader_after = c.wait_for_leader(WAIT).await?;
    api::mark_snapshots(c, &mut runs);
    let (listed, applied) = incidents_by_key(c, leader_after.id).await?;
    let mut http_unlisted = 0;
    for key in runs.iter().flat_map(|r| &r.enqueued) {
        match listed.get(key) {
            Some(&incident) => history.accepted.push(Accepted {
                incident,
                dedup_key: key.clone(),
                folded: false,
                // Listed by a node that had applied this index.
                commit_index: applied,
                via: leader.id,
            }),
            None => {
                http_unlisted += 1;
                if http_unlisted <= 3 {
                    eprintln!("bench: ingest-matrix: HTTP event {key} was accepted but node {} does not list it", leader_after.id);
                }
            }
        }
    }
    let mut report = rig
        .check(&format!("bench-ingest-{}", layout.key()), &history)
        .await?;
    report.lost += http_unlisted;
    Ok(Matrix {
        layout,
        leader,
        leader_after,
        runs,
        http_unlisted,
        report,
        seconds: began.elapsed().as_secs_f64(),
    })
}

pub async fn run_phase(settings: Settings) -> anyhow::Result<Ingest> {
    let mut clusters = Vec::new();
    for (index, layout) in [Layout::Three, Layout::FiveRegions].into_iter().enumerate() {
        // Each cluster's processes end with its `Rig`, before the next one starts.
        clusters.push(one_cluster(layout, index, settings).await?);
    }
    Ok(Ingest { settings, clusters })
}

impl Ingest {
    /// Events lost on some node (the HTTP events the leader did not list included).
    pub fn lost(&self) -> usize {
        self.clusters.iter().map(|m| m.report.lost).sum()
    }

    pub fn is_clean(&self) -> bool {
        self.clusters
            .iter()
            .all(|m| m.report.is_clean() && m.http_unlisted == 0)
    }

    pub fn print(&self) {
        println!();
        println!(
            "ingest-matrix: every request to the leader; {} events a run ({} from one client); distinct dedup keys, nothing paged",
            self.settings.events,
            self.settings.count(1)
        );
        println!(
            "{:<10} {:<22} {:>7} {} {:>9} {}",
            "cluster",
            "call",
            "clients",
            Run::rate_header("events/s"),
            "max",
            Run::cost_header()
        );
        for m in &self.clusters {
            for r in &m.runs {
                println!(
                    "{:<10} {:<22} {:>7} {} {:>9} {}",
                    format!("{} nodes", m.layout.nodes()),
                    r.call.name(),
                    r.clients,
                    r.rate_cells(),
                    api::fmt_lat(r.latency.max()),
                    r.cost_cells()
                );
            }
        }
        println!("(leader µs, nodes µs: CPU time the leader, and all the nodes, spent per event; others: CPU of all cores used by other processes during the run; snapshot: nodes that finished one during the run)");
        for m in &self.clusters {
            println!(
                "ingest-matrix: {}: node {} led (term {}){}; {:.0} s with the check",
                m.layout.name(),
                m.leader.id,
                m.leader.term,
                if m.leader_after == m.leader {
                    String::new()
                } else {
                    format!(
                        ", LEADER CHANGED to node {} (term {}) by the end",
                        m.leader_after.id, m.leader_after.term
                    )
                },
                m.seconds
            );
            if m.http_unlisted > 0 {
                println!(
                    "  {} HTTP events answered 202 are not on the leader (counted as lost)",
                    m.http_unlisted
                );
            }
            println!("{}", m.report.with_violations());
        }
    }

    pub fn json(&self) -> Value {
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|m| {
                json!({
                    "layout": m.layout.name(),
                    "nodes": m.layout.nodes(),
                    "regions": m.layout.regions(),
                    "leader": m.leader.id,
                    "term": m.leader.term,
                    "leader_after": m.leader_after.id,
                    "seconds": m.seconds,
                    "runs": m.runs.iter().map(|r| {
                        let mut v = r.json();
                        v["leader_cpu_s_per_event"] = json!(r.leader_cpu_us.map(|us| us / 1e6));
                        v
                    }).collect::<Vec<_>>(),
                    "http_unlisted": m.http_unlisted,
                    "report": report_json(&m.report),
                })
            })
            .collect();
        json!({
            "events": self.settings.events,
            "events_one_client": self.settings.count(1),
            "clients": CLIENTS,
            "clusters": clusters,
        })
    }
}
