//! The benchmark: figures from a local three-node cluster of real `pagerd` processes with the
//! default Raft and storage configuration (redb fsyncs every commit; the harness's
//! `Timings::default()`, which is pagerd's own: heartbeat 100 ms, election timeout 400-800 ms)
//! and the `[dispatch]` knobs of [`KNOBS`] written explicitly, a fake Twilio and an SMTP server
//! in this process. Not a test: it prints figures; it fails only when an invariant broke or a
//! page was missed.
//!
//! ```text
//! cargo run --release -p chaos-tests --bin bench -- [--json] [--events N] [--kills K]
//!     [--only ingest|storm|api] [--storm-incidents N] [--storm-later N] [--storm-kills K]
//!     [--storm-delay-ms D] [--api-events N] [--api-rounds R]
//!     [--only resources] [--resources-incidents 10000,100000]
//!     [--only ingest-matrix] [--matrix-events N]
//!     [--only timers] [--timers-pending 1000,100000] [--timers-probes P]
//!         [--timers-deadline-probes Q]
//!     [--only failover] [--kills K] [--region-kills R]
//!     [--only console] [--console-incidents N] [--console-streams S] [--console-events E]
//!     [--only report] [--report-incidents N] [--report-runs R] [--report-without-rca]
//!         [--console-list-seconds T] [--console-list-rate R]
//! ```
//!
//! `--only ingest` runs phase 1 only (both throughput runs) and the no-lost-events check: about
//! 15 s, for measuring the write path. `--only storm` runs phase 4 only (about 5 minutes with
//! the defaults). `--only api` runs the api phase (module `api`), which no full run includes:
//! HTTP `POST /v2/enqueue` against gRPC `Events.Send`, and the cost of API-token auth, at 1, 16
//! and 64 clients, over 2R+1 passes with rolling restarts between them (about 2 minutes with
//! the defaults). `--only resources` runs the resources phase (module `resources`), which no
//! full run includes either: RSS, disk and snapshot size with 10k and 100k open incidents, and
//! the time to restart a node and to install a snapshot on a wiped one (figures only).
//!
//! Three more phases run on clusters of their own and are in no full run either:
//!
//! - `--only ingest-matrix` (module `ingest`, about 2-3 minutes with the defaults): events/s,
//!   latency p50/p99/p99.9/max and the leader's CPU per event for gRPC `Events.Send` and HTTP
//!   `POST /v2/enqueue` at 1, 16, 64 and 256 clients, on three nodes and then on five (2/2/1
//!   across three regions); `--matrix-events` per run (one client: a tenth). Then the
//!   no-lost-events check on every node of each cluster.
//! - `--only timers` (module `timers`, about 30 s with the defaults): page latency with
//!   1,000 and then 100,000 open incidents holding timers an hour out (`--timers-pending`):
//!   commit to page of `--timers-probes` sequential triggers, and deadline to page of
//!   `--timers-deadline-probes` level-2 escalations; fails only when a page was missed.
//! - `--only failover` (module `failover`, about 1 minute with the defaults): `--kills`
//!   (default 20 here) leader SIGKILLs on three nodes, then `--region-kills` SIGKILLs of the
//!   leader's whole region on five nodes (2/2/1): kill to new leader, kill to the new leader's
//!   level-2 SMS, and that page's delay after its deadline, p50/p99/max.
//! - `--only console` (module `console`, about 2 minutes with the defaults): the web console
//!   with `--console-incidents` (default 10,000) open incidents: `GET /incidents` (first page,
//!   on a follower and on the leader; a page 5,000 deep) at `--console-list-rate` requests/s
//!   (default 50) for `--console-list-seconds` (default 20) each, open loop, latency from each
//!   request's due time; `wrk` against the list (Debian's `wrk`: `apt-get install wrk`; without
//!   it the phase says so); then the 64-client `Events.Send` run (`--console-events` a run)
//!   without, with `--console-streams` (default 500) live-list streams open, and without again.
//!   Run it from a shell with `ulimit -n 65536` where the open-file limit is 1,024.
//! - `--only report` (module `report`, about a minute with the defaults, no processes): the page
//!   review report over `--report-incidents` (default 1,000,000) incidents with RCA records,
//!   computed on the replicated state in this process, and the RSS per incident held.
//!
//! 1. Throughput: `Events.Send` triggers with distinct dedup keys sent to the leader by one
//!    client (N/10 events), then by 64 concurrent clients, each on its own HTTP/2 connection
//!    (N events). The service's policy notifies its user an hour later, so only the ingest
//!    path is measured.
//!    Per-event latency in an HDR histogram.
//! 2. Commit to page (module `timers`): sequential triggers of a service that pages one SMS at
//!    once; from `Send` returning to the fake Twilio receiving the request (and from `Send`
//!    issued).
//! 3. Failover (module `failover`): trigger an incident whose level 2 is due 1 s later,
//!    SIGKILL the leader at once, and measure the kill to the new leader's level-2 SMS at the
//!    fake Twilio (raw), the kill to a new leader visible in `Cluster.Status`, and the page's
//!    delay after its deadline. The killed node is restarted and caught up between rounds
//!    (`--kills`, default 10 here).
//! 4. Storm (module `storm`): 1,000 incidents whose level-2 deadlines fall within about a
//!    second of each other; level-2 deadline to Twilio request, misses and duplicates, first
//!    without faults, then over `--storm-kills` rounds that SIGKILL the leader while it sends,
//!    with the daemon's `reclaimed` / `reconciled` counters.
//!
//! Finally the invariants run over everything the clients were told (no accepted event lost
//! on any node; pages of phases 2 and 3 by deadline + 3 s; the storm has its own bound) and
//! the scenario line is printed.

use anyhow::{bail, Context as _};
use chaos_tests::client;
use chaos_tests::cluster::{AuthOptions, Cluster, DispatchKnobs};
use chaos_tests::history::{Accepted, History};
use chaos_tests::invariants;
use chaos_tests::pages;
use chaos_tests::report::ScenarioReport;
use chaos_tests::workload::{OnCall, User};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "pagerd benchmark on a local three-node cluster of real processes")]
struct Args {
    /// Print one JSON object (after the table).
    #[arg(long)]
    json: bool,
    /// Events sent by the concurrent clients; one client sends a tenth of this.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Concurrent clients of the second throughput phase.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Triggers of the commit-to-page phase.
    #[arg(long, default_value_t = 200)]
    triggers: usize,
    /// Leader kills of the failover phase [default: 10 in a full run, 20 with
    /// `--only failover`].
    #[arg(long)]
    kills: Option<usize>,
    /// Run only some phases: `ingest` = the two throughput runs (no commit-to-page, no failover);
    /// `storm` = the storm phase alone; `api` = the api phase (HTTP vs gRPC, auth on vs off);
    /// the others run on clusters of their own (see the module documentation).
    #[arg(long, value_enum, default_value_t = Only::All)]
    only: Only,
    /// Storm: incidents of the round without faults and of the first kill round.
    #[arg(long, default_value_t = 1_000)]
    storm_incidents: usize,
    /// Storm: incidents of each later kill round.
    #[arg(long, default_value_t = 1_000)]
    storm_later: usize,
    /// Storm: rounds with a leader SIGKILL (after one round without faults).
    #[arg(long, default_value_t = 20)]
    storm_kills: usize,
    /// Storm: delay from level 1 to level 2 of the storm's policies.
    #[arg(long, default_value_t = 10_000)]
    storm_delay_ms: u64,
    /// Api: events of a run at 16 and 64 clients; one client sends a tenth. Reads are three
    /// times as many (one client: half), acknowledgements a quarter (one client: a tenth).
    #[arg(long, default_value_t = 5_000)]
    api_events: usize,
    /// Api: pairs of passes (auth on, auth off) after the first pass (auth off).
    #[arg(long, default_value_t = 3)]
    api_rounds: usize,
    /// Resources: open incidents at which to measure (cumulative, ascending).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    resources_incidents: Vec<usize>,
    /// Ingest matrix: events of a run at 16, 64 and 256 clients; one client sends a tenth.
    #[arg(long, default_value_t = 20_000)]
    matrix_events: usize,
    /// Timers: open incidents with pending timers at which to measure (cumulative,
    /// ascending; 0 = the empty state).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 100_000])]
    timers_pending: Vec<usize>,
    /// Timers: sequential commit-to-page probes per level.
    #[arg(long, default_value_t = 200)]
    timers_probes: usize,
    /// Timers: incidents per level whose level-2 deadline is measured.
    #[arg(long, default_value_t = 200)]
    timers_deadline_probes: usize,
    /// Failover: SIGKILLs of the leader's region on five nodes (2/2/1), after the leader
    /// kills on three.
    #[arg(long, default_value_t = 5)]
    region_kills: usize,
    /// Console: open incidents preloaded before the list is measured.
    #[arg(long, default_value_t = 10_000)]
    console_incidents: usize,
    /// Console: server-sent-event streams (live incident lists) open during the second
    /// ingest run, spread over the three nodes.
    #[arg(long, default_value_t = 500)]
    console_streams: usize,
    /// Console: events of each 64-client ingest run (as `--matrix-events`; 10-20 s here).
    #[arg(long, default_value_t = 20_000)]
    console_events: usize,
    /// Report: incidents held (each with an RCA record).
    #[arg(long, default_value_t = 1_000_000)]
    report_incidents: usize,
    /// Report: runs of each report.
    #[arg(long, default_value_t = 20)]
    report_runs: usize,
    /// Report: the same incidents without RCA records (what a record costs).
    #[arg(long)]
    report_without_rca: bool,
    /// Console: seconds of each list-latency run.
    #[arg(long, default_value_t = 20)]
    console_list_seconds: u64,
    /// Console: list requests a second (open loop).
    #[arg(long, default_value_t = 50)]
    console_list_rate: u32,
    /// Integrations: incidents triggered at once.
    #[arg(long, default_value_t = 1_000)]
    integrations_incidents: usize,
    /// Integrations: delay from level 1 to level 2 (whole seconds).
    #[arg(long, default_value_t = 10_000)]
    integrations_delay_ms: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Only {
    /// Every phase.
    All,
    /// The two throughput phases only.
    Ingest,
    /// The storm phase only.
    Storm,
    /// The api phase only: HTTP vs gRPC events, auth on vs off.
    Api,
    /// The resources phase only: RSS, disk, snapshot size, restart and install times.
    Resources,
    /// The ingest matrix: gRPC and HTTP events at 1 to 256 clients, on 3 and 5 nodes.
    IngestMatrix,
    /// Page latency with many pending timers.
    Timers,
    /// Leader and region SIGKILLs on 3 and 5 nodes.
    Failover,
    /// The web console: list latency, and ingest with 500 live streams open.
    Console,
    /// The page review report over 1,000,000 incidents, and memory per incident with an RCA.
    Report,
    /// Incidents at once with Slack, Jira and a webhook each: SMS deadlines and integrations.
    Integrations,
}

#[path = "bench/storm.rs"]
mod storm;

#[path = "bench/api.rs"]
mod api;

#[path = "bench/resources.rs"]
mod resources;

#[path = "bench/ingest.rs"]
mod ingest;

#[path = "bench/timers.rs"]
mod timers;

#[path = "bench/failover.rs"]
mod failover;

#[path = "bench/console.rs"]
mod console;

#[path = "bench/report.rs"]
mod report;

#[path = "bench/integrations.rs"]
mod integrations;

/// Whether the full run (no `--only`) includes the storm phase.
const STORM_IN_FULL_RUN: bool = true;
/// Leader kills of the full run's failover phase (`--kills`).
const KILLS_IN_FULL_RUN: usize = 10;

const BULK_KEY: &str = "bench-bulk-0001";
const LATENCY_KEY: &str = "bench-latency-01";
const FAILOVER_KEY: &str = "bench-failover-1";
const LATENCY_SMS: &str = "+15550200001";
const FAILOVER_SMS: &str = "+15550200002";
/// Delay of the failover policy's level 2.
const LEVEL2_MS: u64 = 1_000;
/// How late after its deadline a page may be (the invariant's failover bound).
const FAILOVER_BOUND: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(30);

fn oncall() -> OnCall {
    OnCall::default()
        // Paged but notified only an hour later: the bench never sees those notifications.
        .user(
            User::new("later")
                .email("later@example.com")
                .after(3_600_000),
        )
        .user(User::new("lat").sms(LATENCY_SMS))
        .user(User::new("oncall").sms(FAILOVER_SMS))
        .policy("quiet", 0, &[(3_600_000, &["later"])])
        .policy("sms-now", 0, &[(3_600_000, &["lat"])])
        .policy(
            "two-step",
            0,
            &[(LEVEL2_MS, &["later"]), (LEVEL2_MS, &["oncall"])],
        )
        .service("bulk", BULK_KEY, "quiet")
        .service("latency", LATENCY_KEY, "sms-now")
        .service("failover", FAILOVER_KEY, "two-step")
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn fmt_us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.0} ms", v as f64 / 1_000.0)
    } else {
        format!("{:.2} ms", v as f64 / 1_000.0)
    }
}

struct Throughput {
    clients: usize,
    events: usize,
    errors: usize,
    elapsed: Duration,
    latency: Histogram<u64>,
    accepted: Vec<Accepted>,
}

impl Throughput {
    fn rate(&self) -> f64 {
        (self.events - self.errors) as f64 / self.elapsed.as_secs_f64()
    }
    fn json(&self) -> Value {
        json!({
            "clients": self.clients,
            "events": self.events,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "events_per_s": self.rate(),
            "latency_us": {
                "p50": self.latency.value_at_quantile(0.5),
                "p99": self.latency.value_at_quantile(0.99),
                "p999": self.latency.value_at_quantile(0.999),
                "max": self.latency.max(),
            },
        })
    }
}

/// `events` triggers with distinct dedup keys from `clients` concurrent clients to `node`.
async fn throughput(
    c: &Cluster,
    node: u64,
    clients: usize,
    events: usize,
    tag: &str,
) -> anyhow::Result<Throughput> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..clients {
        // One connection per client.
        let mut ev = client::events(&c.channel(node)?);
        let (next, tag) = (next.clone(), tag.to_string());
        tasks.spawn(async move {
            let mut h = histogram();
            let mut accepted = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    return (h, accepted, errors);
                }
                let dedup = format!("{tag}-{i}");
                let t = Instant::now();
                match ev
                    .send(client::trigger(BULK_KEY, &dedup, "bench event"))
                    .await
                {
                    Ok(r) => {
                        let _ = h.record(us(t.elapsed()));
                        let r = r.into_inner();
                        accepted.push(Accepted {
                            incident: r.incident_id,
                            dedup_key: r.dedup_key,
                            folded: r.folded,
                            commit_index: r.commit_index,
                            via: node,
                        });
                    }
                    Err(s) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("bench: Events.Send {dedup}: {s}");
                        }
                    }
                }
            }
        });
    }
    let mut out = Throughput {
        clients,
        events,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        accepted: Vec::with_capacity(events),
    };
    while let Some(done) = tasks.join_next().await {
        let (h, accepted, errors) = done.context("client task")?;
        out.latency.add(&h).context("merge histograms")?;
        out.accepted.extend(accepted);
        out.errors += errors;
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// The `[dispatch]` knobs every node runs with, written explicitly so the figures say what they
/// were measured with. The per-recipient burst is far above what any phase sends to one number
/// in a minute (the storm: 20 pages per number per round), so the throttle never binds;
/// `concurrency` and the reconcile grace are pagerd's defaults.
const KNOBS: DispatchKnobs = DispatchKnobs {
    concurrency: 64,
    messages_per_second: 0.0,
    recipient_burst: 1_000,
    recipient_window_ms: 60_000,
    high_urgency_max_delay_ms: 5_000,
    reconcile_grace_ms: 1_000,
};

fn knobs_json() -> Value {
    json!({
        "concurrency": KNOBS.concurrency,
        "messages_per_second": KNOBS.messages_per_second,
        "recipient_burst": KNOBS.recipient_burst,
        "recipient_window_ms": KNOBS.recipient_window_ms,
        "high_urgency_max_delay_ms": KNOBS.high_urgency_max_delay_ms,
        "reconcile_grace_ms": KNOBS.reconcile_grace_ms,
    })
}

/// The first line of the output: what ran, on what, for how long.
fn header(what: &str, took: Duration) {
    println!(
        "pagerd bench: {what} on 127.0.0.1, fsync on, {} cores, {} build, {:.0} s in all",
        cores(),
        chaos_tests::binary::profile(),
        took.as_secs_f64()
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The JSON object of an `--only` phase that runs on clusters of its own: the machine, the
/// phase's name, its time, and its figures under `key`.
fn phase_json(only: &str, took: Duration, key: &str, figures: Value) -> Value {
    let mut out = json!({
        "machine": { "cores": cores(), "build": chaos_tests::binary::profile() },
        "only": only,
        "seconds": took.as_secs_f64(),
    });
    out[key] = figures;
    out
}

/// `--only resources`: its own cluster, figures only.
async fn resources_only(args: &Args) -> anyhow::Result<()> {
    if args.resources_incidents.is_empty() || args.resources_incidents.contains(&0) {
        bail!("--resources-incidents needs counts above 0");
    }
    let total = Instant::now();
    let r = resources::run_phase(&args.resources_incidents).await?;
    let took = total.elapsed();
    header("resources, 3 pagerd processes", took);
    r.print();
    if args.json {
        println!("{}", phase_json("resources", took, "resources", r.json()));
    }
    Ok(())
}

/// `--only ingest-matrix`: clusters of its own; fails only when an accepted event was lost.
async fn matrix_only(args: &Args) -> anyhow::Result<()> {
    let total = Instant::now();
    let m = ingest::run_phase(ingest::Settings {
        events: args.matrix_events,
    })
    .await?;
    let took = total.elapsed();
    header("ingest matrix, 3 then 5 pagerd processes", took);
    m.print();
    if args.json {
        println!(
            "{}",
            phase_json("ingest-matrix", took, "ingest_matrix", m.json())
        );
    }
    if !m.is_clean() {
        bail!("{} accepted events are missing: see above", m.lost());
    }
    Ok(())
}

/// `--only timers`: its own cluster; fails only when a page was missed.
async fn timers_only(args: &Args) -> anyhow::Result<()> {
    if args.timers_pending.windows(2).any(|w| w[0] > w[1]) {
        bail!("--timers-pending must be ascending (the levels are cumulative)");
    }
    if args.timers_probes == 0 || args.timers_deadline_probes == 0 {
        bail!("--timers-probes and --timers-deadline-probes must be at least 1");
    }
    let total = Instant::now();
    let t = timers::run_phase(&timers::Settings {
        pending: args.timers_pending.clone(),
        probes: args.timers_probes,
        deadline_probes: args.timers_deadline_probes,
    })
    .await?;
    let took = total.elapsed();
    header("timers, 3 pagerd processes", took);
    t.print();
    if args.json {
        println!("{}", phase_json("timers", took, "timers", t.json()));
    }
    if !t.is_clean() {
        bail!(
            "{} deadline probes missed, {} pages missed by deadline + {} s (or another invariant broke): see above",
            t.missed(),
            t.report_missed(),
            FAILOVER_BOUND.as_secs()
        );
    }
    Ok(())
}

/// `--only failover`: clusters of its own; fails only when an invariant broke.
async fn failover_only(args: &Args) -> anyhow::Result<()> {
    let total = Instant::now();
    let f = failover::run_phase(failover::Settings {
        kills: args.kills.unwrap_or(failover::KILLS),
        region_kills: args.region_kills,
    })
    .await?;
    let took = total.elapsed();
    header("failover, 3 then 5 pagerd processes", took);
    f.print();
    if args.json {
        println!("{}", phase_json("failover", took, "failover", f.json()));
    }
    if !f.is_clean() {
        bail!("invariants broke: see the report lines above");
    }
    Ok(())
}

/// `--only report`: in this process, on the replicated state; figures only.
/// `--only integrations`: its own cluster and fakes; fails only when a page or an integration
/// request was missed or sent twice.
async fn integrations_only(args: &Args) -> anyhow::Result<()> {
    if args.integrations_delay_ms < 1_000 || args.integrations_delay_ms % 1_000 != 0 {
        bail!("--integrations-delay-ms must be whole seconds");
    }
    let total = Instant::now();
    let r = integrations::run_phase(&integrations::Settings {
        incidents: args.integrations_incidents,
        clients: args.clients,
        delay: Duration::from_millis(args.integrations_delay_ms),
    })
    .await?;
    let took = total.elapsed();
    header(
        "integrations, 3 pagerd processes, fake Twilio, Slack, Jira and webhook receiver",
        took,
    );
    r.print();
    if args.json {
        println!(
            "{}",
            phase_json("integrations", took, "integrations", r.json())
        );
    }
    if !r.is_clean() {
        bail!("a page or an integration request was missed or sent twice: see above");
    }
    Ok(())
}

fn report_only(args: &Args) -> anyhow::Result<()> {
    let total = Instant::now();
    let r = report::run_phase(report::Settings {
        incidents: args.report_incidents,
        runs: args.report_runs,
        without_rca: args.report_without_rca,
    })?;
    let took = total.elapsed();
    header("report, the replicated state in this process", took);
    r.print();
    if args.json {
        println!("{}", phase_json("report", took, "report", r.json()));
    }
    Ok(())
}

/// `--only console`: its own cluster; fails only when an accepted event was lost.
async fn console_only(args: &Args) -> anyhow::Result<()> {
    if args.console_incidents < console::MIN_INCIDENTS {
        bail!(
            "--console-incidents must be at least {} (the deep page is 5,000 below the newest)",
            console::MIN_INCIDENTS
        );
    }
    if args.console_list_rate == 0 || args.console_list_seconds == 0 || args.console_events == 0 {
        bail!(
            "--console-list-rate, --console-list-seconds and --console-events must be at least 1"
        );
    }
    let total = Instant::now();
    let r = console::run_phase(console::Settings {
        incidents: args.console_incidents,
        rate: args.console_list_rate,
        seconds: args.console_list_seconds,
        streams: args.console_streams,
        events: args.console_events,
    })
    .await?;
    let took = total.elapsed();
    header("console, 3 pagerd processes", took);
    r.print();
    if args.json {
        println!("{}", phase_json("console", took, "console", r.json()));
    }
    if !r.is_clean() {
        bail!("{} accepted events are missing: see above", r.lost());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.events < 10 || args.clients == 0 {
        bail!("--events must be at least 10 and --clients at least 1");
    }
    if args.api_events < 10 || args.api_rounds == 0 {
        bail!("--api-events must be at least 10 and --api-rounds at least 1");
    }
    if args.storm_delay_ms < 1_000 || args.storm_delay_ms % 1_000 != 0 {
        bail!("--storm-delay-ms must be whole seconds (pagerd's escalate_after is at least 1s)");
    }
    match args.only {
        Only::Resources => return resources_only(&args).await,
        Only::IngestMatrix => return matrix_only(&args).await,
        Only::Timers => return timers_only(&args).await,
        Only::Failover => return failover_only(&args).await,
        Only::Console => return console_only(&args).await,
        Only::Report => return report_only(&args),
        Only::Integrations => return integrations_only(&args).await,
        Only::All | Only::Ingest | Only::Storm | Only::Api => {}
    }
    let kills = args.kills.unwrap_or(KILLS_IN_FULL_RUN);
    let all = args.only == Only::All;
    let ingest = matches!(args.only, Only::All | Only::Ingest);
    let api_on = args.only == Only::Api;
    let storm_on = args.only == Only::Storm || (all && STORM_IN_FULL_RUN);
    let total = Instant::now();
    let say = |msg: String| eprintln!("bench: [{:6.1} s] {msg}", total.elapsed().as_secs_f64());
    let storm_delay = Duration::from_millis(args.storm_delay_ms);
    let doc = storm::add_to(oncall(), storm_delay);
    // The api phase switches auth on and off by restarting the nodes; the section is there
    // from the start so every config names the same bootstrap token.
    let auth = api_on.then(|| AuthOptions {
        enabled: false,
        bootstrap_admin_token: api::BOOTSTRAP.into(),
    });
    let ingest::Rig {
        cluster: mut c,
        twilio,
        smtp,
    } = ingest::Rig::start(ingest::Layout::Three, auth, &doc).await?;
    say(format!("3 nodes up under {}", c.root().display()));
    let leader = c.wait_for_leader(WAIT).await?;
    let mut history = History::default();

    let (one, many) = if ingest {
        let single = args.events / 10;
        say(format!("{single} events from 1 client"));
        let one = throughput(&c, leader.id, 1, single, "one").await?;
        say(format!(
            "{} events from {} clients",
            args.events, args.clients
        ));
        let many = throughput(&c, leader.id, args.clients, args.events, "many").await?;
        history.accepted.extend(one.accepted.iter().cloned());
        history.accepted.extend(many.accepted.iter().cloned());
        (Some(one), Some(many))
    } else {
        (None, None)
    };

    let (to_page, fo) = if all {
        say(format!("{} triggers, commit to page", args.triggers));
        let leader = c.wait_for_leader(WAIT).await?;
        let to_page = timers::commit_to_page(
            &c,
            leader.id,
            &twilio,
            args.triggers,
            "latency",
            &mut history,
            &doc,
        )
        .await?;
        say(format!("{kills} leader kills"));
        let fo = failover::failover(&mut c, &twilio, kills, &mut history, &doc).await?;
        (to_page, fo)
    } else {
        (timers::ToPage::default(), failover::Failover::default())
    };

    let storm = if storm_on {
        let settings = storm::Settings {
            first: args.storm_incidents,
            later: args.storm_later,
            kills: args.storm_kills,
            delay: storm_delay,
            clients: args.clients,
        };
        say(format!(
            "storm: {} incidents without faults, then {} rounds with a leader kill",
            settings.first, settings.kills
        ));
        Some(storm::run(&mut c, &twilio, &mut history, settings).await?)
    } else {
        None
    };

    let api = if api_on {
        let settings = api::Settings {
            events: args.api_events,
            rounds: args.api_rounds,
        };
        say(format!(
            "api: HTTP vs gRPC events, auth off then on / off {} times, at {:?} clients, {} events a run",
            settings.rounds,
            api::CLIENTS,
            settings.events
        ));
        Some(api::run_phase(&mut c, &mut history, settings).await?)
    } else {
        None
    };

    say("checking invariants".into());
    // The storm's pages have their own accounting (deadline + storm::MISS_AFTER).
    let observed: Vec<_> = pages::observed(Some(&twilio), Some(&smtp))
        .into_iter()
        .filter(|p| !storm::is_storm_number(&p.to))
        .collect();
    let findings = invariants::check_all(&c, &history, &observed, ingest::BOUNDS).await?;
    let report = ScenarioReport::new("bench", &history, &findings);
    let took = total.elapsed();

    header("3 pagerd processes", took);
    println!();
    let throughputs: Vec<&Throughput> = one.iter().chain(many.iter()).collect();
    if !throughputs.is_empty() {
        println!(
            "{:<38} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "phase", "n", "events/s", "p50", "p99", "p99.9"
        );
    }
    for t in &throughputs {
        println!(
            "{:<38} {:>7} {:>10.0} {:>10} {:>10} {:>10}",
            format!(
                "Events.Send, {} client{}",
                t.clients,
                if t.clients == 1 { "" } else { "s" }
            ),
            t.events,
            t.rate(),
            fmt_us(t.latency.value_at_quantile(0.5)),
            fmt_us(t.latency.value_at_quantile(0.99)),
            fmt_us(t.latency.value_at_quantile(0.999)),
        );
    }
    if all {
        println!(
            "{:<38} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "Send returned -> Twilio received",
            args.triggers,
            "",
            fmt_us(to_page.from_return.value_at_quantile(0.5)),
            fmt_us(to_page.from_return.value_at_quantile(0.99)),
            "",
        );
        println!(
            "{:<38} {:>7} {:>10} {:>10} {:>10} {:>10}",
            "Send issued -> Twilio received",
            args.triggers,
            "",
            fmt_us(to_page.from_issue.value_at_quantile(0.5)),
            fmt_us(to_page.from_issue.value_at_quantile(0.99)),
            "",
        );
        println!();
        fo.print("failover", failover::Fault::Leader);
    }
    if let Some(st) = &storm {
        st.print(&KNOBS.lines());
    }
    if let Some(a) = &api {
        a.print();
        if a.errors() > 0 {
            println!("api: {} calls failed (see stderr)", a.errors());
        }
    }
    println!();
    if to_page.before_return > 0 {
        println!(
            "{} of {} pages reached Twilio before Send returned (counted as 0).",
            to_page.before_return, args.triggers
        );
    }
    let send_errors: usize = throughputs.iter().map(|t| t.errors).sum();
    if send_errors > 0 {
        println!("Events.Send errors: {send_errors}");
    }
    println!("{}", report.with_violations());
    if args.json {
        let out = json!({
            "machine": { "cores": cores(), "build": chaos_tests::binary::profile() },
            "only": format!("{:?}", args.only).to_lowercase(),
            "seconds": took.as_secs_f64(),
            "dispatch": knobs_json(),
            "throughput": throughputs.iter().map(|t| t.json()).collect::<Vec<_>>(),
            "commit_to_page_us": {
                "n": args.triggers,
                "from_send_returned": {
                    "p50": to_page.from_return.value_at_quantile(0.5),
                    "p99": to_page.from_return.value_at_quantile(0.99),
                },
                "from_send_issued": {
                    "p50": to_page.from_issue.value_at_quantile(0.5),
                    "p99": to_page.from_issue.value_at_quantile(0.99),
                },
                "before_send_returned": to_page.before_return,
            },
            "failover": fo.json(),
            "storm": storm.as_ref().map(|st| st.json(knobs_json())),
            "api": api.as_ref().map(api::Api::json),
            "report": ingest::report_json(&report),
        });
        println!("{out}");
    }
    let storm_clean = storm.as_ref().map_or(true, |st| st.is_clean());
    if !report.is_clean() || !storm_clean {
        c.print_log_tails(20);
        if !report.is_clean() {
            bail!("invariants broke: see the report above");
        }
        bail!("the storm missed pages (or sent one early, or did not settle): see above");
    }
    Ok(())
}
