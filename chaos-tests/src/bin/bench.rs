//! The benchmark: figures from a local three-node cluster of real `pagerd` processes with the
//! default Raft and storage configuration (redb fsyncs every commit; Raft heartbeat 100 ms,
//! election timeout 500-1000 ms) and the `[dispatch]` knobs of [`KNOBS`] written explicitly, a
//! fake Twilio and an SMTP server in this process. Not a test: it prints figures; it fails only
//! when an invariant broke or the storm missed a page.
//!
//! ```text
//! cargo run --release -p chaos-tests --bin bench -- [--json] [--events N] [--kills K]
//!     [--only ingest|storm|api] [--storm-incidents N] [--storm-later N] [--storm-kills K]
//!     [--storm-delay-ms D] [--api-events N] [--api-rounds R]
//!     [--only resources] [--resources-incidents 10000,100000]
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
//! 1. Throughput: `Events.Send` triggers with distinct dedup keys sent to the leader by one
//!    client (N/10 events), then by 64 concurrent clients, each on its own HTTP/2 connection
//!    (N events). The service's policy notifies its user an hour later, so only the ingest
//!    path is measured.
//!    Per-event latency in an HDR histogram.
//! 2. Commit to page: sequential triggers of a service that pages one SMS at once; from
//!    `Send` returning to the fake Twilio receiving the request (and from `Send` issued).
//! 3. Failover: trigger an incident whose level 2 is due 1 s later, SIGKILL the leader at once,
//!    and measure the kill to the new leader's level-2 SMS at the fake Twilio (raw), the kill
//!    to a new leader visible in `Cluster.Status`, and the page's delay after its deadline.
//!    The killed node is restarted and caught up between rounds.
//! 4. Storm (module `storm`): 1,000 incidents whose level-2 deadlines fall within about a
//!    second of each other; level-2 deadline to Twilio request, misses and duplicates, first
//!    without faults, then over `--storm-kills` rounds that SIGKILL the leader while it sends,
//!    with the daemon's `reclaimed` / `reconciled` counters.
//!
//! Finally the invariants run over everything the clients were told (no accepted event lost
//! on any node; pages of phases 2 and 3 by deadline + 3 s; the storm has its own bound) and
//! the scenario line is printed.

use anyhow::{bail, Context as _};
use chaos_tests::cluster::{
    AuthOptions, Cluster, ClusterOptions, DispatchKnobs, SmtpTarget, TwilioTarget,
};
use chaos_tests::history::{from_epoch_ms, Accepted, History};
use chaos_tests::invariants::{self, Bounds};
use chaos_tests::pages;
use chaos_tests::report::{percentiles, ScenarioReport};
use chaos_tests::workload::{OnCall, User};
use chaos_tests::{client, faults};
use clap::Parser;
use hdrhistogram::Histogram;
use pager_notify::fake::smtp::{self, SmtpServer};
use pager_notify::fake::twilio::{self, FakeTwilio};
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    /// Leader kills of the failover phase.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Run only some phases: `ingest` = the two throughput runs (no commit-to-page, no failover);
    /// `storm` = the storm phase alone; `api` = the api phase (HTTP vs gRPC, auth on vs off).
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
}

#[path = "bench/storm.rs"]
mod storm;

#[path = "bench/api.rs"]
mod api;

#[path = "bench/resources.rs"]
mod resources;

/// Whether the full run (no `--only`) includes the storm phase.
const STORM_IN_FULL_RUN: bool = true;

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

fn fmt_ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
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

struct ToPage {
    from_return: Histogram<u64>,
    from_issue: Histogram<u64>,
    /// Pages received before `Send` returned to the client (counted as 0 from return).
    before_return: usize,
}

/// Sequential triggers paging one SMS each; commit (Send returned) to Twilio request received.
async fn commit_to_page(
    c: &Cluster,
    node: u64,
    twilio: &FakeTwilio,
    n: usize,
    history: &mut History,
    doc: &OnCall,
) -> anyhow::Result<ToPage> {
    let mut ev = client::events(&c.channel(node)?);
    let mut inc = client::incidents(&c.channel(node)?);
    let mut out = ToPage {
        from_return: histogram(),
        from_issue: histogram(),
        before_return: 0,
    };
    for i in 0..n {
        let issued = SystemTime::now();
        let r = ev
            .send(client::trigger(
                LATENCY_KEY,
                &format!("latency-{i}"),
                "latency probe",
            ))
            .await
            .with_context(|| format!("latency trigger {i}"))?
            .into_inner();
        let returned = SystemTime::now();
        let sms = pages::wait_for_sms(twilio, r.incident_id, LATENCY_SMS, WAIT).await?;
        match sms.received_at.duration_since(returned) {
            Ok(d) => {
                let _ = out.from_return.record(us(d));
            }
            Err(_) => {
                out.before_return += 1;
                let _ = out.from_return.record(1);
            }
        }
        let from_issue = sms.received_at.duration_since(issued).unwrap_or_default();
        let _ = out.from_issue.record(us(from_issue));
        let created = inc
            .get(pb::GetIncidentRequest {
                id: r.incident_id,
                ..Default::default()
            })
            .await
            .with_context(|| format!("get incident {}", r.incident_id))?
            .into_inner()
            .created_at_ms;
        history
            .expected
            .extend(doc.expected_pages("latency", r.incident_id, created, None));
        history.accepted.push(Accepted {
            incident: r.incident_id,
            dedup_key: r.dedup_key,
            folded: r.folded,
            commit_index: r.commit_index,
            via: node,
        });
    }
    Ok(out)
}

#[derive(Default)]
struct Failover {
    kill_to_page: Vec<Duration>,
    election: Vec<Duration>,
    late_after_deadline: Vec<Duration>,
}

async fn failover(
    c: &mut Cluster,
    twilio: &FakeTwilio,
    kills: usize,
    history: &mut History,
    doc: &OnCall,
) -> anyhow::Result<Failover> {
    let mut out = Failover::default();
    for round in 0..kills {
        let leader = c.wait_for_leader(WAIT).await?;
        let r = client::events(&c.channel(leader.id)?)
            .send(client::trigger(
                FAILOVER_KEY,
                &format!("failover-{round}"),
                "failover probe",
            ))
            .await
            .with_context(|| format!("failover trigger {round}"))?
            .into_inner();
        let kill = faults::kill_known_leader(c, history, leader, WAIT).await?;
        let sms = pages::wait_for_sms(twilio, r.incident_id, FAILOVER_SMS, WAIT)
            .await
            .with_context(|| format!("round {round}: level-2 page after killing the leader"))?;
        let created = client::incidents(&c.channel(kill.new.id)?)
            .get(pb::GetIncidentRequest {
                id: r.incident_id,
                ..Default::default()
            })
            .await
            .with_context(|| format!("get incident {}", r.incident_id))?
            .into_inner()
            .created_at_ms;
        let due = from_epoch_ms(created + LEVEL2_MS);
        let kill_to_page = sms
            .received_at
            .duration_since(kill.killed.wall)
            .unwrap_or_default();
        let late = sms.received_at.duration_since(due).unwrap_or_default();
        eprintln!(
            "bench: failover {}/{kills}: killed node {}, node {} leads after {} ms, page {} ms after the kill, {} ms after its deadline",
            round + 1,
            kill.old.id,
            kill.new.id,
            kill.election.as_millis(),
            kill_to_page.as_millis(),
            late.as_millis()
        );
        out.kill_to_page.push(kill_to_page);
        out.election.push(kill.election);
        out.late_after_deadline.push(late);
        history.accepted.push(Accepted {
            incident: r.incident_id,
            dedup_key: r.dedup_key,
            folded: r.folded,
            commit_index: r.commit_index,
            via: leader.id,
        });
        // Level 2's SMS; level 1's hour-late email is never due during the bench.
        history.expected.extend(
            doc.expected_pages("failover", r.incident_id, created, None)
                .into_iter()
                .filter(|p| p.to == FAILOVER_SMS),
        );
        let restarted = Instant::now();
        let (_, index) = faults::restart(c, history, kill.old.id, WAIT).await?;
        eprintln!(
            "bench: node {} restarted and caught up to index {index} in {} ms",
            kill.old.id,
            restarted.elapsed().as_millis()
        );
    }
    Ok(out)
}

fn dist(v: &[Duration]) -> Value {
    let p = percentiles(v, &[50.0, 100.0]);
    json!({
        "n": v.len(),
        "p50_ms": p.first().map(|d| d.as_millis() as u64),
        "max_ms": p.get(1).map(|d| d.as_millis() as u64),
        "all_ms": v.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
    })
}

fn p50_max(v: &[Duration]) -> (String, String) {
    match percentiles(v, &[50.0, 100.0]).as_slice() {
        [a, b] => (fmt_ms(*a), fmt_ms(*b)),
        _ => ("-".into(), "-".into()),
    }
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

/// `--only resources`: its own cluster, figures only.
async fn resources_only(args: &Args) -> anyhow::Result<()> {
    if args.resources_incidents.is_empty() || args.resources_incidents.contains(&0) {
        bail!("--resources-incidents needs counts above 0");
    }
    let total = Instant::now();
    let r = resources::run_phase(&args.resources_incidents).await?;
    let took = total.elapsed();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "pagerd bench: resources, 3 pagerd processes on 127.0.0.1, fsync on, {cores} cores, {} build, {:.0} s in all",
        chaos_tests::binary::profile(),
        took.as_secs_f64()
    );
    r.print();
    if args.json {
        let out = json!({
            "machine": { "cores": cores, "build": chaos_tests::binary::profile() },
            "only": "resources",
            "seconds": took.as_secs_f64(),
            "resources": r.json(),
        });
        println!("{out}");
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
    if args.only == Only::Resources {
        return resources_only(&args).await;
    }
    let all = args.only == Only::All;
    let ingest = matches!(args.only, Only::All | Only::Ingest);
    let api_on = args.only == Only::Api;
    let storm_on = args.only == Only::Storm || (all && STORM_IN_FULL_RUN);
    let total = Instant::now();
    let say = |msg: String| eprintln!("bench: [{:6.1} s] {msg}", total.elapsed().as_secs_f64());
    let twilio = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
    let smtp = SmtpServer::start().context("start the SMTP server")?;
    let mut c = Cluster::start(ClusterOptions {
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
        // The api phase switches auth on and off by restarting the nodes; the section is there
        // from the start so every config names the same bootstrap token.
        auth: api_on.then(|| AuthOptions {
            enabled: false,
            bootstrap_admin_token: api::BOOTSTRAP.into(),
        }),
        ..ClusterOptions::default()
    })
    .await
    .context("start the cluster")?;
    say(format!("3 nodes up under {}", c.root().display()));
    let storm_delay = Duration::from_millis(args.storm_delay_ms);
    let doc = storm::add_to(oncall(), storm_delay);
    let leader = c.wait_for_leader(WAIT).await?;
    client::config(&c.channel(leader.id)?)
        .apply(pb::ApplyConfigRequest {
            document: doc.to_toml(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .context("apply the on-call document")?;
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
        let to_page =
            commit_to_page(&c, leader.id, &twilio, args.triggers, &mut history, &doc).await?;
        say(format!("{} leader kills", args.kills));
        let fo = failover(&mut c, &twilio, args.kills, &mut history, &doc).await?;
        (to_page, fo)
    } else {
        let to_page = ToPage {
            from_return: histogram(),
            from_issue: histogram(),
            before_return: 0,
        };
        (to_page, Failover::default())
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
    let findings = invariants::check_all(
        &c,
        &history,
        &observed,
        Bounds {
            failover: FAILOVER_BOUND,
            in_flight_after_ack: 1,
            catch_up: WAIT,
        },
    )
    .await?;
    let report = ScenarioReport::new("bench", &history, &findings);
    let took = total.elapsed();

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "pagerd bench: 3 pagerd processes on 127.0.0.1, fsync on, {cores} cores, {} build, {:.0} s in all",
        chaos_tests::binary::profile(),
        took.as_secs_f64()
    );
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
        println!(
            "{:<38} {:>7} {:>10} {:>10}",
            "failover", "kills", "p50", "max"
        );
        for (name, v) in [
            ("SIGKILL leader -> new leader's page", &fo.kill_to_page),
            ("SIGKILL leader -> new leader (Status)", &fo.election),
            ("page delay after its deadline", &fo.late_after_deadline),
        ] {
            let (p50, max) = p50_max(v);
            println!("{:<38} {:>7} {:>10} {:>10}", name, v.len(), p50, max);
        }
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
    println!("{report}");
    for v in &report.violations {
        println!("  {v}");
    }
    if args.json {
        let out = json!({
            "machine": { "cores": cores, "build": chaos_tests::binary::profile() },
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
            "failover": {
                "kill_to_page": dist(&fo.kill_to_page),
                "kill_to_new_leader": dist(&fo.election),
                "page_delay_after_deadline": dist(&fo.late_after_deadline),
            },
            "storm": storm.as_ref().map(|st| st.json(knobs_json())),
            "api": api.as_ref().map(api::Api::json),
            "report": {
                "accepted": report.events_accepted,
                "lost": report.lost,
                "pages_expected": report.pages_expected,
                "missed": report.missed,
                "duplicates": report.duplicates,
                "worst_delay_after_deadline_ms": report.worst_delay.map(|d| d.as_millis() as u64),
                "violations": report.violations.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            },
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
