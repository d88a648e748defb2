//! The api phase (`--only api`): what a request costs through each front door of the leader,
//! and what API-token auth adds to it.
//!
//! One cluster, `2 * rounds + 1` passes, each after a rolling restart of the three nodes on
//! their data (followers first, then the leader: SIGKILL, restart, caught up) with a new
//! `[auth]` section: auth off, then `rounds` times auth on (`auth.enabled = true`) and off
//! again. Every config keeps the same `auth.bootstrap_admin_token`, which the harness presents
//! on its status polls. Off passes bracket every on pass, so drift over the run (the state
//! grows by `2.1 * events` incidents a pass from each front door, snapshots grow with it) and
//! the machine's noise show as the spread of the off passes. With the defaults (5,000 events,
//! 3 rounds: 7 passes) the nodes end with about 147,000 incidents, a snapshot of about 130 MB
//! each.
//!
//! After each rolling restart, leadership is handed to node 1 ([`PINNED_LEADER`]), so every
//! pass runs against the same node (its data dir, its ports). Each pass runs, at 1, 16 and 64
//! concurrent clients, everything to that leader:
//!
//! - `HTTP POST /v2/enqueue`, a PagerDuty Events API v2 trigger, on the leader's HTTP port from
//!   one reqwest client whose pool keeps a connection per concurrent client (HTTP/1.1
//!   keep-alive: one request in flight per connection);
//! - gRPC `Events.Send` on the leader's client port, one HTTP/2 connection per client, with the
//!   same event (routing key, summary, source, severity; a distinct dedup key each, so every
//!   event opens an incident);
//! - gRPC `Incidents.Get` of incidents this pass's `Events.Send` opened, with a token;
//! - gRPC `Incidents.Acknowledge` of other such incidents (each once), with the same token.
//!
//! What auth covers (pagerd's `grpc/tokens.rs`, `Api::authorize`): `Events.Send`,
//! `Events.SendBatch` and the HTTP event endpoints take no token; the integration key
//! (`routing_key`) is the credential and is checked against the on-call document whether auth
//! is on or off. So for events, auth on should cost nothing, and they are measured as the
//! control. Every other gRPC call runs `Api::authorize`: with a token that is not the
//! bootstrap one, SHA-256 of the secret, hex, and a scan of the replicated token table under
//! the state's read lock. `Incidents.Get` (a local read) shows that cost at its largest
//! relative to the call; `Incidents.Acknowledge` (a Raft write) behind a commit. The token is a
//! responder token made once with `Tokens.Create` (it is replicated state, so it survives the
//! restarts) and is sent in every pass, auth off included: the passes differ only in the
//! server's check.
//!
//! Besides rate and latency, each run reports the CPU time the leader, and the three nodes,
//! spent per call (per-thread `/proc/<pid>/task/*/schedstat`, ns): the check's cost shows
//! there even where the rate cannot show it. Two things outside the compared path disturb a
//! run, and each run reports both: the CPU that neither the bench nor the three nodes used
//! (`/proc/stat` busy time minus the processes' own, as a share of both cores; the machine is
//! shared with other sessions' builds and tests), and the snapshots any node finished during
//! the run (every 5,000 log entries; an acknowledgement is an entry of its own, and the
//! leader's answers stall around a snapshot, longer as the state grows). The summaries take
//! the median over the undisturbed runs of each setting (others' CPU at most
//! [`OTHERS_MAX`]%, no snapshot finished), over all of them when none is; the JSON says how
//! many runs each median used.

use super::{fmt_us, histogram, us, BULK_KEY, WAIT};
use anyhow::{anyhow, Context as _};
use chaos_tests::client;
use chaos_tests::cluster::{AuthOptions, Cluster, Leader, Ports};
use chaos_tests::faults;
use chaos_tests::history::{Accepted, Acked, FaultRecord, History};
use hdrhistogram::Histogram;
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// The nodes' `auth.bootstrap_admin_token` (pagerd wants at least 16 characters).
pub const BOOTSTRAP: &str = "bench-bootstrap-admin-0001";
/// Name of the responder token the token-checked calls present.
const TOKEN_NAME: &str = "bench-responder";
/// The node every pass runs against: after each rolling restart, leadership is handed to it
/// (`Cluster.TransferLeader`), so the passes differ in their auth setting, not in which node
/// serves them.
const PINNED_LEADER: u64 = 1;
/// Concurrent clients of each run.
pub const CLIENTS: [usize; 3] = [1, 16, 64];
/// Pause after a rolling restart before measuring: openraft backs off replication to a peer it
/// could not reach for about 500 ms, and the restarted leader's successor starts from a quiet
/// log.
const SETTLE: Duration = Duration::from_secs(1);
/// Errors of one run printed as they happen (all are counted).
const ERRORS_SHOWN: usize = 3;
/// Bound on one HTTP request (connect included), as on a gRPC call of the harness.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// A run during which other processes used more of the CPU than this (percent of both
/// cores) is left out of the summaries. Quiet, the share is 0-8%: kernel threads writing the
/// nodes' fsyncs count as others.
pub const OTHERS_MAX: f64 = 15.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Http,
    Send,
    Get,
    Ack,
}

impl Call {
    const ALL: [Call; 4] = [Call::Http, Call::Send, Call::Get, Call::Ack];

    pub fn name(self) -> &'static str {
        match self {
            Call::Http => "HTTP POST /v2/enqueue",
            Call::Send => "gRPC Events.Send",
            Call::Get => "gRPC Incidents.Get",
            Call::Ack => "gRPC Incidents.Acknowledge",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Call::Http => "http_enqueue",
            Call::Send => "grpc_send",
            Call::Get => "grpc_get",
            Call::Ack => "grpc_acknowledge",
        }
    }

    /// Whether pagerd checks a token on this call when auth is on.
    fn token_checked(self) -> bool {
        matches!(self, Call::Get | Call::Ack)
    }

    /// Requests of one run. Events: `events` at 16 and 64 clients, a tenth of it from one
    /// client. Reads, about 15 times cheaper: three times as many. Acknowledgements, written one
    /// per log entry (not batched as events are) and each needing an incident of its own: a
    /// quarter of `events`, a tenth from one client.
    fn count(self, clients: usize, events: usize) -> usize {
        match (self, clients) {
            (Call::Get, 1) => events / 2,
            (Call::Get, _) => events * 3,
            (_, 1) => events / 10,
            (Call::Ack, _) => events / 4,
            _ => events,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Requests of a run at 16 and 64 clients (see [`Call::count`]).
    pub events: usize,
    /// Pairs of passes (auth on, then off) after the first pass (auth off).
    pub rounds: usize,
}

impl Settings {
    /// Auth setting of each pass, in order.
    fn passes(&self) -> Vec<bool> {
        std::iter::once(false)
            .chain((0..self.rounds).flat_map(|_| [true, false]))
            .collect()
    }
}

/// Acknowledgements a pass makes: each needs an incident of its own.
fn acks_per_pass(events: usize) -> usize {
    CLIENTS.iter().map(|&c| Call::Ack.count(c, events)).sum()
}

/// Incidents `Events.Send` opens in a pass.
fn sends_per_pass(events: usize) -> usize {
    CLIENTS.iter().map(|&c| Call::Send.count(c, events)).sum()
}

pub struct Pass {
    pub auth: bool,
    /// The leader every request of the pass went to.
    pub leader: Leader,
    pub ports: Ports,
    /// The leader once the pass was over (a different one would mean requests were refused or
    /// forwarded).
    pub leader_after: Leader,
    /// Rolling restart before the pass, to the cluster caught up.
    pub restart: Duration,
}

pub struct Run {
    /// Index into [`Api::passes`].
    pub pass: usize,
    /// Share of the machine's CPU (both cores) busy in other processes during the run, in
    /// percent; `None` where `/proc` cannot tell.
    pub others: Option<f64>,
    /// CPU time the leader, and all three nodes, spent per successful call, in µs.
    pub leader_cpu_us: Option<f64>,
    pub nodes_cpu_us: Option<f64>,
    /// Nodes that finished a snapshot during the run (from their logs).
    pub snapshots: Vec<u64>,
    /// Wall-clock bounds of the run, to match the nodes' log lines.
    pub began: SystemTime,
    pub ended: SystemTime,
    pub call: Call,
    pub clients: usize,
    pub n: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// Dedup keys of the HTTP events answered 202 (the answer names no incident; the api
    /// phase does not look them up).
    pub enqueued: Vec<String>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        (self.n - self.errors) as f64 / self.elapsed.as_secs_f64()
    }

    /// Neither other processes nor a snapshot took a share of the run.
    fn undisturbed(&self) -> bool {
        self.others.map_or(true, |o| o <= OTHERS_MAX) && self.snapshots.is_empty()
    }

    /// The table columns n, per s (titled `rate`), p50, p99, p99.9.
    pub fn rate_header(rate: &str) -> String {
        format!(
            "{:>6} {:>9} {:>9} {:>9} {:>9}",
            "n", rate, "p50", "p99", "p99.9"
        )
    }

    /// Under [`Run::rate_header`].
    pub fn rate_cells(&self) -> String {
        format!(
            "{:>6} {:>9.0} {:>9} {:>9} {:>9}",
            self.n,
            self.rate(),
            fmt_lat(self.latency.value_at_quantile(0.5)),
            fmt_lat(self.latency.value_at_quantile(0.99)),
            fmt_lat(self.latency.value_at_quantile(0.999)),
        )
    }

    /// The table columns errors, leader µs, nodes µs, others, snapshot.
    pub fn cost_header() -> String {
        format!(
            "{:>6} {:>9} {:>9} {:>7} {:>9}",
            "errors", "leader µs", "nodes µs", "others", "snapshot"
        )
    }

    /// Under [`Run::cost_header`].
    pub fn cost_cells(&self) -> String {
        let snapshots: Vec<String> = self.snapshots.iter().map(|n| format!("n{n}")).collect();
        format!(
            "{:>6} {:>9} {:>9} {:>7} {:>9}",
            self.errors,
            fmt_cpu(self.leader_cpu_us),
            fmt_cpu(self.nodes_cpu_us),
            self.others.map_or("-".to_string(), |o| format!("{o:.0}%")),
            if snapshots.is_empty() {
                "-".to_string()
            } else {
                snapshots.join(",")
            },
        )
    }

    /// The run's figures (without its pass's settings).
    pub fn json(&self) -> Value {
        json!({
            "call": self.call.key(),
            "clients": self.clients,
            "n": self.n,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "per_s": self.rate(),
            "latency_us": {
                "p50": self.latency.value_at_quantile(0.5),
                "p99": self.latency.value_at_quantile(0.99),
                "p999": self.latency.value_at_quantile(0.999),
                "max": self.latency.max(),
            },
            "others_cpu_pct": self.others,
            "leader_cpu_us_per_call": self.leader_cpu_us,
            "nodes_cpu_us_per_call": self.nodes_cpu_us,
            "snapshots_by": self.snapshots,
            "undisturbed": self.undisturbed(),
        })
    }
}

/// Note in each run the nodes that finished a snapshot while it ran (from the nodes' logs).
pub fn mark_snapshots(c: &Cluster, runs: &mut [Run]) {
    let snapshots = super::storm::snapshot_times(c);
    for r in runs {
        r.snapshots = snapshots
            .iter()
            .filter(|(_, at)| *at >= r.began && *at <= r.ended)
            .map(|(node, _)| *node)
            .collect();
    }
}

pub struct Api {
    pub settings: Settings,
    pub passes: Vec<Pass>,
    pub runs: Vec<Run>,
    pub seconds: f64,
}

/// Everything a client task needs to make its calls.
enum Conn {
    Http {
        client: reqwest::Client,
        url: Arc<str>,
    },
    Events(pb::events_client::EventsClient<Channel>),
    Incidents {
        client: pb::incidents_client::IncidentsClient<Channel>,
        bearer: Option<MetadataValue<Ascii>>,
        ids: Arc<Vec<u64>>,
        ack: bool,
    },
}

/// What one successful call leaves for the history.
enum Done {
    Event(Accepted),
    /// An HTTP event answered 202: its dedup key (the answer names no incident).
    Enqueued(String),
    Ack(Acked),
    Read,
}

impl Conn {
    async fn call(&mut self, i: usize, dedup: String, via: u64) -> Result<Done, String> {
        match self {
            Conn::Http { client, url } => {
                // The PagerDuty equivalent of `client::trigger(BULK_KEY, dedup, "bench event")`.
                let body = json!({
                    "routing_key": BULK_KEY,
                    "event_action": "trigger",
                    "dedup_key": dedup,
                    "payload": {
                        "summary": "bench event",
                        "source": "chaos-tests",
                        "severity": "critical",
                    },
                });
                let resp = client
                    .post(url.as_ref())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                let status = resp.status();
                // Read the whole answer, so the connection goes back to the pool.
                let answer = resp
                    .bytes()
                    .await
                    .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
                if status == reqwest::StatusCode::ACCEPTED {
                    Ok(Done::Enqueued(dedup))
                } else {
                    Err(format!(
                        "POST {url}: {status}: {}",
                        String::from_utf8_lossy(&answer)
                    ))
                }
            }
            Conn::Events(ev) => {
                let r = ev
                    .send(client::trigger(BULK_KEY, &dedup, "bench event"))
                    .await
                    .map_err(|s| format!("Events.Send {dedup}: {s}"))?
                    .into_inner();
                Ok(Done::Event(Accepted {
                    incident: r.incident_id,
                    dedup_key: r.dedup_key,
                    folded: r.folded,
                    commit_index: r.commit_index,
                    via,
                }))
            }
            Conn::Incidents {
                client: inc,
                bearer,
                ids,
                ack,
            } => {
                if *ack {
                    let id = *ids
                        .get(i)
                        .ok_or_else(|| format!("no incident left to acknowledge (#{i})"))?;
                    let req = pb::IncidentActionRequest {
                        id,
                        by: String::new(),
                    };
                    let r = inc
                        .acknowledge(client::authorized(req, bearer.as_ref()))
                        .await
                        .map_err(|s| format!("Incidents.Acknowledge {id}: {s}"))?
                        .into_inner();
                    Ok(Done::Ack(Acked {
                        incident: id,
                        commit_index: r.commit_index,
                        returned_at: SystemTime::now(),
                    }))
                } else {
                    let id = ids[i % ids.len()];
                    let req = pb::GetIncidentRequest {
                        id,
                        ..Default::default()
                    };
                    inc.get(client::authorized(req, bearer.as_ref()))
                        .await
                        .map_err(|s| format!("Incidents.Get {id}: {s}"))?;
                    Ok(Done::Read)
                }
            }
        }
    }
}

/// Where and with what a pass sends.
pub struct Target {
    pass: usize,
    /// Dedup keys of the pass's events start with it.
    tag: &'static str,
    node: u64,
    ports: Ports,
    /// Presented on `Get` and `Acknowledge`; none: no `authorization` header.
    bearer: Option<MetadataValue<Ascii>>,
    /// The nodes' processes, whose CPU time is not "others'".
    pids: Vec<u32>,
    /// The leader's process.
    leader_pid: Option<u32>,
}

impl Target {
    /// Pass `pass` against `leader` of `c`, whose live processes are read for CPU time.
    pub fn new(
        c: &Cluster,
        pass: usize,
        tag: &'static str,
        leader: u64,
        bearer: Option<MetadataValue<Ascii>>,
    ) -> anyhow::Result<Target> {
        Ok(Target {
            pass,
            tag,
            node: leader,
            ports: c.ports(leader)?,
            bearer,
            pids: c.ids().into_iter().filter_map(|id| c.pid(id)).collect(),
            leader_pid: c.pid(leader),
        })
    }
}

/// On-CPU time of each thread of process `pid` so far, in ns, by thread id
/// (`/proc/<pid>/task/*/schedstat`; `/proc/<pid>/stat` counts in 10 ms ticks only).
fn thread_cpu_ns(pid: u32) -> Option<HashMap<u32, u64>> {
    let mut out = HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        out.insert(tid, text.split_whitespace().next()?.parse::<u64>().ok()?);
    }
    Some(out)
}

/// CPU ns the threads of `after` used since `before`. A thread that exited in between is
/// missed (its time since `before` with it); threads that started count in full.
fn cpu_ns_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// Per-thread CPU of the leader and of every node (the leader among them).
struct NodesCpu {
    leader: Option<HashMap<u32, u64>>,
    all: Vec<Option<HashMap<u32, u64>>>,
}

impl NodesCpu {
    fn read(t: &Target) -> NodesCpu {
        NodesCpu {
            leader: t.leader_pid.and_then(thread_cpu_ns),
            all: t.pids.iter().map(|&pid| thread_cpu_ns(pid)).collect(),
        }
    }

    /// CPU ns from `self` to `later`: the leader's, and all nodes' together.
    fn until(&self, later: &NodesCpu) -> (Option<u64>, Option<u64>) {
        let leader = self
            .leader
            .as_ref()
            .zip(later.leader.as_ref())
            .map(|(b, a)| cpu_ns_between(b, a));
        let all = self
            .all
            .iter()
            .zip(&later.all)
            .map(|(b, a)| {
                b.as_ref()
                    .zip(a.as_ref())
                    .map(|(b, a)| cpu_ns_between(b, a))
            })
            .sum::<Option<u64>>();
        (leader, all)
    }
}

/// CPU time in clock ticks (`/proc`'s USER_HZ): the machine's busy and total time over every
/// core, and the time of this process plus the nodes'.
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    busy: u64,
    total: u64,
    ours: u64,
}

impl CpuTicks {
    fn read(pids: &[u32]) -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"; guest time is
        // already in user and nice.
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = ticks.iter().sum();
        let idle = ticks.get(3)? + ticks.get(4)?;
        let mut ours = process_ticks("self")?;
        for pid in pids {
            ours += process_ticks(&pid.to_string())?;
        }
        Some(CpuTicks {
            busy: total - idle,
            total,
            ours,
        })
    }

    /// Percent of the machine busy in other processes from `self` to `later`.
    fn others_until(self, later: CpuTicks) -> Option<f64> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)?;
        let busy = later.busy.saturating_sub(self.busy);
        let ours = later.ours.saturating_sub(self.ours);
        Some(100.0 * busy.saturating_sub(ours) as f64 / total as f64)
    }
}

/// User plus system ticks of process `pid` ("self" for this one), all its threads.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `n` calls of `call` from `clients` concurrent clients to the pass's leader. `ids`: the
/// incidents `Get` reads (round robin) or `Ack` acknowledges (one each).
/// A new channel to the target node, its HTTP/2 connection open (one `Cluster.Status` call).
async fn connected(c: &Cluster, t: &Target) -> anyhow::Result<Channel> {
    let ch = c.channel(t.node)?;
    client::cluster(&ch)
        .status(client::authorized(
            pb::ClusterStatusRequest {},
            t.bearer.as_ref(),
        ))
        .await
        .context("Cluster.Status to open a client's connection")?;
    Ok(ch)
}

/// Opens `clients` idle connections in the pool: as many concurrent `GET /healthz`.
async fn warm_http_pool(http: &reqwest::Client, t: &Target, clients: usize) -> anyhow::Result<()> {
    let url = format!("http://{}/healthz", t.ports.http);
    let mut gets = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url) = (http.clone(), url.clone());
        gets.spawn(async move { http.get(&url).send().await?.bytes().await });
    }
    while let Some(r) = gets.join_next().await {
        r?.with_context(|| format!("GET {url} to open a client's connection"))?;
    }
    Ok(())
}

pub async fn run(
    c: &Cluster,
    t: &Target,
    call: Call,
    clients: usize,
    n: usize,
    ids: Arc<Vec<u64>>,
    history: &mut History,
) -> anyhow::Result<Run> {
    if call == Call::Ack && ids.len() < n {
        anyhow::bail!(
            "{n} acknowledgements need as many incidents, have {}",
            ids.len()
        );
    }
    if call == Call::Get && ids.is_empty() {
        anyhow::bail!("no incident to read");
    }
    // One pool for the run's HTTP clients: a connection per client once they all sent.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("build the HTTP client")?;
    let url: Arc<str> = format!("http://{}/v2/enqueue", t.ports.http).into();
    // Every client's connection is opened before the clock starts: with 256 clients, 256
    // connects at once inside the measured run cost time (and on a starved machine some hit
    // the connect timeout), which is not what the figures are about.
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(match call {
            Call::Http => Conn::Http {
                client: http.clone(),
                url: url.clone(),
            },
            // One HTTP/2 connection per client.
            Call::Send => Conn::Events(client::events(&connected(c, t).await?)),
            Call::Get | Call::Ack => Conn::Incidents {
                client: client::incidents(&connected(c, t).await?),
                bearer: t.bearer.clone(),
                ids: ids.clone(),
                ack: call == Call::Ack,
            },
        });
    }
    if call == Call::Http {
        warm_http_pool(&http, t, clients).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let cpu = CpuTicks::read(&t.pids);
    let node_cpu = NodesCpu::read(t);
    let began = SystemTime::now();
    let started = Instant::now();
    for mut conn in conns {
        let next = next.clone();
        let (pass, via, tag) = (t.pass, t.node, t.tag);
        tasks.spawn(async move {
            let mut h = histogram();
            let (mut accepted, mut acked, mut enqueued, mut errors) =
                (Vec::new(), Vec::new(), Vec::new(), 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return (h, accepted, acked, enqueued, errors);
                }
                let dedup = format!("{tag}-p{pass}-{}-c{clients}-{i}", call.key());
                let began = Instant::now();
                match conn.call(i, dedup, via).await {
                    Ok(done) => {
                        let _ = h.record(us(began.elapsed()));
                        match done {
                            Done::Event(a) => accepted.push(a),
                            Done::Enqueued(key) => enqueued.push(key),
                            Done::Ack(a) => acked.push(a),
                            Done::Read => {}
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= ERRORS_SHOWN {
                            eprintln!("bench: api: {e}");
                        }
                    }
                }
            }
        });
    }
    let mut out = Run {
        pass: t.pass,
        others: None,
        leader_cpu_us: None,
        nodes_cpu_us: None,
        snapshots: Vec::new(),
        began,
        ended: began,
        call,
        clients,
        n,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        enqueued: Vec::new(),
    };
    while let Some(done) = tasks.join_next().await {
        let (h, accepted, acked, enqueued, errors) = done.context("client task")?;
        out.latency.add(&h).context("merge histograms")?;
        history.accepted.extend(accepted);
        history.acks.extend(acked);
        out.enqueued.extend(enqueued);
        out.errors += errors;
    }
    out.elapsed = started.elapsed();
    out.ended = SystemTime::now();
    let (leader_ns, nodes_ns) = node_cpu.until(&NodesCpu::read(t));
    out.others = cpu
        .zip(CpuTicks::read(&t.pids))
        .and_then(|(before, after)| before.others_until(after));
    let done = (n - out.errors).max(1) as f64;
    out.leader_cpu_us = leader_ns.map(|ns| ns as f64 / 1_000.0 / done);
    out.nodes_cpu_us = nodes_ns.map(|ns| ns as f64 / 1_000.0 / done);
    Ok(out)
}

/// Rewrite every node's `[auth]` (auth `enabled` or not) and restart each node on its data:
/// followers, then the leader. Returns the leader once every node caught up.
async fn rolling_restart(
    c: &mut Cluster,
    history: &mut History,
    enabled: bool,
) -> anyhow::Result<Leader> {
    c.set_auth(Some(AuthOptions {
        enabled,
        bootstrap_admin_token: BOOTSTRAP.into(),
    }))?;
    let leader = c.wait_for_leader(WAIT).await?;
    for id in c.ids().into_iter().filter(|&id| id != leader.id) {
        let killed = c.kill(id)?;
        history.faults.push(FaultRecord {
            kind: "kill-follower".into(),
            node: id,
            at: killed.wall,
            failover: None,
        });
        faults::restart(c, history, id, WAIT)
            .await
            .with_context(|| format!("restart node {id} with auth.enabled = {enabled}"))?;
    }
    let kill = faults::kill_known_leader(c, history, leader, WAIT).await?;
    faults::restart(c, history, kill.old.id, WAIT)
        .await
        .with_context(|| format!("restart node {} with auth.enabled = {enabled}", leader.id))?;
    let leader = c.wait_for_leader(WAIT).await?;
    if leader.id != PINNED_LEADER {
        let admin = client::bearer(BOOTSTRAP)?;
        transfer_leader(c, leader, PINNED_LEADER, Some(&admin)).await?;
    }
    tokio::time::sleep(SETTLE).await;
    let leader = c.wait_for_leader(WAIT).await?;
    c.wait_all_caught_up(leader.id, WAIT).await?;
    Ok(leader)
}

/// Ask `leader` to hand leadership to node `to` (`Cluster.TransferLeader`, presenting `bearer`
/// when given) and wait for a leader, which it returns. A refusal is reported, and whichever
/// node leads then is returned.
pub async fn transfer_leader(
    c: &Cluster,
    leader: Leader,
    to: u64,
    bearer: Option<&MetadataValue<Ascii>>,
) -> anyhow::Result<Leader> {
    let req = pb::TransferLeaderRequest { node_id: to };
    if let Err(s) = client::cluster(&c.channel(leader.id)?)
        .transfer_leader(client::authorized(req, bearer))
        .await
    {
        eprintln!(
            "bench: node {} did not hand leadership to node {to}: {s}",
            leader.id
        );
    }
    c.wait_for_leader(WAIT).await
}

/// A responder token, made with the bootstrap admin token.
async fn responder_token(c: &Cluster, leader: u64) -> anyhow::Result<String> {
    let admin = client::bearer(BOOTSTRAP)?;
    let req = pb::CreateTokenRequest {
        name: TOKEN_NAME.into(),
        role: "responder".into(),
    };
    let made = pb::tokens_client::TokensClient::new(c.channel(leader)?)
        .create(client::authorized(req, Some(&admin)))
        .await
        .map_err(|s| anyhow!("Tokens.Create {TOKEN_NAME}: {s}"))?
        .into_inner();
    Ok(made.secret)
}

/// The phase: see the module documentation. `c` must have been started with
/// [`ClusterOptions::auth`](chaos_tests::cluster::ClusterOptions) carrying [`BOOTSTRAP`], and
/// the on-call document (with [`BULK_KEY`]) applied.
pub async fn run_phase(
    c: &mut Cluster,
    history: &mut History,
    settings: Settings,
) -> anyhow::Result<Api> {
    let began = Instant::now();
    let mut out = Api {
        settings,
        passes: Vec::new(),
        runs: Vec::new(),
        seconds: 0.0,
    };
    let leader = c.wait_for_leader(WAIT).await?;
    let bearer = client::bearer(&responder_token(c, leader.id).await?)?;
    let passes = settings.passes();
    for (pass, &auth) in passes.iter().enumerate() {
        let restarting = Instant::now();
        let leader = rolling_restart(c, history, auth).await?;
        let restart = restarting.elapsed();
        let ports = c.ports(leader.id)?;
        eprintln!(
            "bench: api: pass {}/{}: auth {}, node {} leads (term {}), client port {}, HTTP port {}; rolling restart took {} ms",
            pass + 1,
            passes.len(),
            if auth { "on" } else { "off" },
            leader.id,
            leader.term,
            ports.client,
            ports.http,
            restart.as_millis()
        );
        let t = Target::new(c, pass, "api", leader.id, Some(bearer.clone()))?;
        let none = Arc::new(Vec::new());
        let from = history.accepted.len();
        for clients in CLIENTS {
            let n = Call::Http.count(clients, settings.events);
            out.runs
                .push(run(c, &t, Call::Http, clients, n, none.clone(), history).await?);
        }
        for clients in CLIENTS {
            let n = Call::Send.count(clients, settings.events);
            out.runs
                .push(run(c, &t, Call::Send, clients, n, none.clone(), history).await?);
        }
        // Incidents this pass's `Events.Send` opened: read by `Get`, each acknowledged once.
        let mut opened: Vec<u64> = history.accepted[from..]
            .iter()
            .filter(|a| a.incident != 0 && !a.folded)
            .map(|a| a.incident)
            .collect();
        opened.sort_unstable();
        opened.dedup();
        let opened = Arc::new(opened);
        for clients in CLIENTS {
            let n = Call::Get.count(clients, settings.events);
            out.runs
                .push(run(c, &t, Call::Get, clients, n, opened.clone(), history).await?);
        }
        let mut left = opened.iter().copied();
        for clients in CLIENTS {
            let n = Call::Ack.count(clients, settings.events);
            let ids = Arc::new(left.by_ref().take(n).collect::<Vec<u64>>());
            out.runs
                .push(run(c, &t, Call::Ack, clients, n, ids, history).await?);
        }
        let leader_after = c.wait_for_leader(WAIT).await?;
        if leader_after != leader {
            eprintln!(
                "bench: api: pass {}: the leader changed during the pass (node {} term {} -> node {} term {})",
                pass + 1,
                leader.id,
                leader.term,
                leader_after.id,
                leader_after.term
            );
        }
        out.passes.push(Pass {
            auth,
            leader,
            ports,
            leader_after,
            restart,
        });
    }
    out.seconds = began.elapsed().as_secs_f64();
    mark_snapshots(c, &mut out.runs);
    Ok(out)
}

/// A latency for the tables: microseconds below 1 ms (reads take about 100 µs), else as the
/// other phases print it.
pub fn fmt_lat(v: u64) -> String {
    if v < 1_000 {
        format!("{v} µs")
    } else {
        fmt_us(v)
    }
}

/// CPU µs per call, one decimal.
fn fmt_cpu(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.1}"))
}

/// The median of `v` (the mean of the middle two for an even count); 0 when empty.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One call at one concurrency over the passes of one auth setting: per pass, the rate and the
/// latency percentiles; summarised by their medians over the undisturbed runs (over all runs
/// when every one was disturbed).
struct Pooled {
    /// Every run's rate, in pass order, and whether it was undisturbed.
    each: Vec<(f64, bool)>,
    /// Of the runs summarised:
    rates: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    leader_cpu: Vec<f64>,
    nodes_cpu: Vec<f64>,
    errors: usize,
}

impl Pooled {
    /// Median CPU per call of the leader, in µs.
    fn leader_cpu(&self) -> f64 {
        median(&self.leader_cpu)
    }
    fn nodes_cpu(&self) -> f64 {
        median(&self.nodes_cpu)
    }
    fn rate(&self) -> f64 {
        median(&self.rates)
    }
    fn p50(&self) -> u64 {
        median(&self.p50) as u64
    }
    fn p99(&self) -> u64 {
        median(&self.p99) as u64
    }
    /// Each pass's rate, disturbed runs in parentheses.
    fn rates_text(&self) -> String {
        self.each
            .iter()
            .map(|&(r, quiet)| {
                if quiet {
                    format!("{r:.0}")
                } else {
                    format!("({r:.0})")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn latency_text(&self) -> String {
        format!("{} / {}", fmt_lat(self.p50()), fmt_lat(self.p99()))
    }
    fn json(&self) -> Value {
        json!({
            "per_s": self.rate(),
            "latency_us": { "p50": self.p50(), "p99": self.p99() },
            "leader_cpu_us_per_call": self.leader_cpu(),
            "nodes_cpu_us_per_call": self.nodes_cpu(),
            "runs_used": self.rates.len(),
            "per_s_each_pass": self.each.iter().map(|e| e.0).collect::<Vec<_>>(),
            "undisturbed_each_pass": self.each.iter().map(|e| e.1).collect::<Vec<_>>(),
            "errors": self.errors,
        })
    }
}

impl Api {
    fn pooled(&self, call: Call, clients: usize, auth: bool) -> Pooled {
        let all: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| r.call == call && r.clients == clients && self.passes[r.pass].auth == auth)
            .collect();
        let quiet: Vec<&Run> = all.iter().copied().filter(|r| r.undisturbed()).collect();
        let used = if quiet.is_empty() { &all } else { &quiet };
        Pooled {
            each: all.iter().map(|r| (r.rate(), r.undisturbed())).collect(),
            rates: used.iter().map(|r| r.rate()).collect(),
            p50: used
                .iter()
                .map(|r| r.latency.value_at_quantile(0.5) as f64)
                .collect(),
            p99: used
                .iter()
                .map(|r| r.latency.value_at_quantile(0.99) as f64)
                .collect(),
            leader_cpu: used.iter().filter_map(|r| r.leader_cpu_us).collect(),
            nodes_cpu: used.iter().filter_map(|r| r.nodes_cpu_us).collect(),
            errors: all.iter().map(|r| r.errors).sum(),
        }
    }

    pub fn errors(&self) -> usize {
        self.runs.iter().map(|r| r.errors).sum()
    }

    pub fn print(&self) {
        println!();
        println!(
            "api: one cluster, {} passes (auth off, then on and off {} times), each after a rolling restart (SIGKILL + restart of every node on its data, leader last) and a leadership transfer to node {}; every request to the pass's leader; {:.0} s in all",
            self.passes.len(),
            self.settings.rounds,
            PINNED_LEADER,
            self.seconds
        );
        for (i, p) in self.passes.iter().enumerate() {
            println!(
                "api: pass {}: auth {:<3} leader node {} (term {}), client port {}, HTTP port {}, restart {} ms{}",
                i + 1,
                if p.auth { "on" } else { "off" },
                p.leader.id,
                p.leader.term,
                p.ports.client,
                p.ports.http,
                p.restart.as_millis(),
                if p.leader_after == p.leader {
                    String::new()
                } else {
                    format!(
                        "; LEADER CHANGED to node {} during the pass",
                        p.leader_after.id
                    )
                }
            );
        }
        println!(
            "{:<28} {:>4} {:>4} {:>7} {} {}",
            "call",
            "pass",
            "auth",
            "clients",
            Run::rate_header("per s"),
            Run::cost_header()
        );
        for r in &self.runs {
            println!(
                "{:<28} {:>4} {:>4} {:>7} {} {}",
                r.call.name(),
                r.pass + 1,
                if self.passes[r.pass].auth {
                    "on"
                } else {
                    "off"
                },
                r.clients,
                r.rate_cells(),
                r.cost_cells(),
            );
        }
        println!("(leader µs, nodes µs: CPU time the leader, and the three nodes, spent per call; others: CPU of both cores used by other processes during the run; snapshot: nodes that finished one during the run)");
        println!();
        println!(
            "HTTP /v2/enqueue vs gRPC Events.Send, auth off (medians over the undisturbed runs: others <= {OTHERS_MAX:.0}%, no snapshot)"
        );
        println!(
            "{:>7} {:>10} {:>10} {:>10} {:>19} {:>19} {:>21}",
            "clients",
            "HTTP/s",
            "gRPC/s",
            "HTTP/gRPC",
            "HTTP p50 / p99",
            "gRPC p50 / p99",
            "leader µs HTTP / gRPC"
        );
        for clients in CLIENTS {
            let h = self.pooled(Call::Http, clients, false);
            let g = self.pooled(Call::Send, clients, false);
            println!(
                "{:>7} {:>10.0} {:>10.0} {:>10.2} {:>19} {:>19} {:>21}",
                clients,
                h.rate(),
                g.rate(),
                h.rate() / g.rate(),
                h.latency_text(),
                g.latency_text(),
                format!("{:.0} / {:.0}", h.leader_cpu(), g.leader_cpu()),
            );
        }
        println!();
        println!("auth on vs off (per s: each pass in order, disturbed runs in parentheses; on/off and latencies: medians over the undisturbed runs)");
        println!(
            "{:<28} {:>7} {:>31} {:>25} {:>7} {:>19} {:>19} {:>21}",
            "call",
            "clients",
            "off, per s",
            "on, per s",
            "on/off",
            "off p50 / p99",
            "on p50 / p99",
            "leader µs off -> on"
        );
        for call in Call::ALL {
            for clients in CLIENTS {
                let off = self.pooled(call, clients, false);
                let on = self.pooled(call, clients, true);
                println!(
                    "{:<28} {:>7} {:>31} {:>25} {:>7.3} {:>19} {:>19} {:>21}",
                    format!(
                        "{}{}",
                        call.name(),
                        if call.token_checked() { "" } else { " *" }
                    ),
                    clients,
                    off.rates_text(),
                    on.rates_text(),
                    on.rate() / off.rate(),
                    off.latency_text(),
                    on.latency_text(),
                    format!("{:.1} -> {:.1}", off.leader_cpu(), on.leader_cpu()),
                );
            }
        }
        println!("(* no token on this call: the integration key is the credential, auth on or off; Get and Acknowledge present a responder token)");
    }

    pub fn json(&self) -> Value {
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                let mut v = r.json();
                v["pass"] = json!(r.pass + 1);
                v["auth"] = json!(self.passes[r.pass].auth);
                v
            })
            .collect();
        let transports: Vec<Value> = CLIENTS
            .iter()
            .map(|&clients| {
                let h = self.pooled(Call::Http, clients, false);
                let g = self.pooled(Call::Send, clients, false);
                json!({
                    "clients": clients,
                    "http_enqueue": h.json(),
                    "grpc_send": g.json(),
                    "http_over_grpc": h.rate() / g.rate(),
                })
            })
            .collect();
        let auth: Vec<Value> = Call::ALL
            .iter()
            .flat_map(|&call| CLIENTS.iter().map(move |&clients| (call, clients)))
            .map(|(call, clients)| {
                let off = self.pooled(call, clients, false);
                let on = self.pooled(call, clients, true);
                json!({
                    "call": call.key(),
                    "token_checked": call.token_checked(),
                    "clients": clients,
                    "off": off.json(),
                    "on": on.json(),
                    "on_over_off": on.rate() / off.rate(),
                })
            })
            .collect();
        json!({
            "seconds": self.seconds,
            "events": self.settings.events,
            "rounds": self.settings.rounds,
            "sends_per_pass": sends_per_pass(self.settings.events),
            "acks_per_pass": acks_per_pass(self.settings.events),
            "summaries": "medians over the undisturbed runs of each auth setting (others_cpu_pct <= others_max_pct and no snapshot finished during the run); all runs when none is",
            "others_max_pct": OTHERS_MAX,
            "passes": self.passes.iter().enumerate().map(|(i, p)| json!({
                "pass": i + 1,
                "auth": p.auth,
                "leader": p.leader.id,
                "term": p.leader.term,
                "client": p.ports.client.to_string(),
                "http": p.ports.http.to_string(),
                "leader_after": p.leader_after.id,
                "restart_ms": p.restart.as_millis() as u64,
            })).collect::<Vec<_>>(),
            "auth_path": "Events.Send and POST /v2/enqueue take no token (the routing key is the credential); Incidents.Get and Incidents.Acknowledge present a responder token: Api::authorize = SHA-256 of the secret + scan of the replicated token table",
            "runs": runs,
            "http_vs_grpc": transports,
            "auth": auth,
        })
    }
}
