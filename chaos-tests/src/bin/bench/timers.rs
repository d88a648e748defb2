//! Page latency with many pending timers (`--only timers`), and the commit-to-page probes it
//! shares with the full run's phase 2 ([`commit_to_page`]). Figures only; the run fails only
//! when a page was missed (or another invariant broke).
//!
//! One three-node cluster of its own (pagerd's defaults, the bench's `[dispatch]` knobs, the
//! fake Twilio). For each level of `--timers-pending` (default 1,000 and 100,000; cumulative,
//! ascending; 0 measures the empty state):
//!
//! 1. Load: open incidents of the `timers-load` service, whose policy pages a user who is
//!    notified an hour later and escalates to level 2 an hour later, through
//!    `Events.SendBatch` (1,000 triggers a call, [`IN_FLIGHT`] calls at a time, distinct dedup
//!    keys) until that many are open: two pending timers each in the replicated state (the
//!    notification and the escalation), none due during the bench. Then wait until every node
//!    has applied the leader's index, and 1 s more.
//! 2. Commit to page: `--timers-probes` sequential triggers of the `latency` service, whose
//!    level 1 pages one SMS at once: from `Send` returning (committed) to the fake Twilio
//!    receiving the request, and from `Send` issued.
//! 3. Deadlines: `--timers-deadline-probes` incidents of the `timers-probe` service, sent in
//!    `Events.SendBatch` calls of [`PROBE_BATCH`], one call every [`PROBE_GAP`]; level 2 of
//!    their policy (one SMS) is due [`PROBE_DELAY_MS`] after each incident's `created_at_ms`.
//!    Wait until every level-2 SMS arrived, at most until the last deadline + the storm's
//!    miss bound. From the fake's record once every level ran: deadline to the first SMS
//!    (p50/p99/max), misses (no SMS within the bound), early pages and duplicates (further
//!    SMS for the same incident and number; the commit-to-page probes' too).
//!
//! At the end the invariants run over the probes (every probe incident on every node; every
//! probe SMS by its deadline + the failover bound; pages beyond those counted as duplicates);
//! the load's incidents are not checked one by one.

use super::failover::{created_ms, dist, p50_p99_max};
use super::ingest::{report_json, Layout, Rig};
use super::storm::MISS_AFTER;
use super::{fmt_us, histogram, us, LATENCY_KEY, LATENCY_SMS, WAIT};
use anyhow::Context as _;
use chaos_tests::client;
use chaos_tests::cluster::Cluster;
use chaos_tests::history::{from_epoch_ms, Accepted, History};
use chaos_tests::metrics;
use chaos_tests::pages::{self, incident_in};
use chaos_tests::report::ScenarioReport;
use chaos_tests::workload::{OnCall, User};
use hdrhistogram::Histogram;
use pager_fakes::twilio::FakeTwilio;
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;

/// The number the deadline probes' level 2 texts.
pub const TIMER_SMS: &str = "+15550200003";
const LOAD_KEY: &str = "bench-timers-load";
const PROBE_KEY: &str = "bench-timers-probe";
/// Level 1 to level 2 of the deadline probes (pagerd's `escalate_after` is whole seconds).
pub const PROBE_DELAY_MS: u64 = 2_000;
/// Deadline probes per `Events.SendBatch` call: their deadlines fall within a few ms.
pub const PROBE_BATCH: usize = 20;
/// From one batch of deadline probes to the next.
pub const PROBE_GAP: Duration = Duration::from_millis(250);
const HOUR_MS: u64 = 3_600_000;
/// Triggers per `Events.SendBatch` call while loading (the API's maximum).
const LOAD_BATCH: usize = 1_000;
/// `Events.SendBatch` calls in flight while loading.
pub const IN_FLIGHT: usize = 4;
/// Bound on loading a level and catching up.
const LONG: Duration = Duration::from_secs(600);

/// `doc` with the timers phase's services: `timers-load` (two timers an hour out) and
/// `timers-probe` (level 2, one SMS to [`TIMER_SMS`], after [`PROBE_DELAY_MS`]).
pub fn add_to(doc: OnCall) -> OnCall {
    doc.user(User::new("timers-l2").sms(TIMER_SMS))
        .policy("hold", 0, &[(HOUR_MS, &["later"]), (HOUR_MS, &["later"])])
        .policy(
            "level2-soon",
            0,
            &[(PROBE_DELAY_MS, &["later"]), (HOUR_MS, &["timers-l2"])],
        )
        .service("timers-load", LOAD_KEY, "hold")
        .service("timers-probe", PROBE_KEY, "level2-soon")
}

pub struct ToPage {
    pub from_return: Histogram<u64>,
    pub from_issue: Histogram<u64>,
    /// Pages received before `Send` returned to the client (counted as 0 from return).
    pub before_return: usize,
    /// The probes' incidents.
    pub incidents: Vec<u64>,
}

impl Default for ToPage {
    fn default() -> Self {
        ToPage {
            from_return: histogram(),
            from_issue: histogram(),
            before_return: 0,
            incidents: Vec::new(),
        }
    }
}

impl ToPage {
    fn json(&self) -> Value {
        let h = |h: &Histogram<u64>| {
            json!({
                "p50": h.value_at_quantile(0.5),
                "p99": h.value_at_quantile(0.99),
                "max": h.max(),
            })
        };
        json!({
            "n": self.incidents.len(),
            "from_send_returned": h(&self.from_return),
            "from_send_issued": h(&self.from_issue),
            "before_send_returned": self.before_return,
        })
    }
}

/// `n` sequential triggers of the `latency` service (dedup keys `<tag>-<i>`), each paging one
/// SMS; from `Send` returned (committed), and from `Send` issued, to the Twilio request.
pub async fn commit_to_page(
    c: &Cluster,
    node: u64,
    twilio: &FakeTwilio,
    n: usize,
    tag: &str,
    history: &mut History,
    doc: &OnCall,
) -> anyhow::Result<ToPage> {
    let mut ev = client::events(&c.channel(node)?);
    let mut inc = client::incidents(&c.channel(node)?);
    let mut out = ToPage::default();
    for i in 0..n {
        let issued = SystemTime::now();
        let r = ev
            .send(client::trigger(
                LATENCY_KEY,
                &format!("{tag}-{i}"),
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
        let created = created_ms(&mut inc, r.incident_id).await?;
        history
            .expected
            .extend(doc.expected_pages("latency", r.incident_id, created, None));
        out.incidents.push(r.incident_id);
        history.accepted.push(accepted(r, node));
    }
    Ok(out)
}

/// What the history keeps of an event node `via` accepted.
pub fn accepted(r: pb::SendEventResponse, via: u64) -> Accepted {
    Accepted {
        incident: r.incident_id,
        dedup_key: r.dedup_key,
        folded: r.folded,
        commit_index: r.commit_index,
        via,
    }
}

/// One `Events.SendBatch` call: the events accepted, in order, and how many were refused.
async fn send_batch(
    ev: &mut pb::events_client::EventsClient<Channel>,
    events: Vec<pb::SendEventRequest>,
    via: u64,
) -> anyhow::Result<(Vec<Accepted>, usize)> {
    let n = events.len();
    let answer = ev
        .send_batch(pb::SendBatchRequest { events })
        .await
        .with_context(|| format!("Events.SendBatch of {n} events"))?
        .into_inner();
    let mut ok = Vec::with_capacity(n);
    let mut refused = 0;
    for result in answer.results {
        if let Some(pb::send_batch_result::Outcome::Ok(r)) = result.outcome {
            ok.push(accepted(r, via));
        } else {
            refused += 1;
            if refused <= 3 {
                eprintln!("bench: timers: an event of a batch was refused: {result:?}");
            }
        }
    }
    Ok((ok, refused))
}

/// Open `n` more incidents of `timers-load` on `node` (dedup keys from `from` on); the events
/// refused.
async fn load(c: &Cluster, node: u64, from: usize, n: usize) -> anyhow::Result<usize> {
    let channel = c.channel(node)?;
    let mut calls = tokio::task::JoinSet::new();
    let mut refused = 0;
    for start in (0..n).step_by(LOAD_BATCH) {
        if calls.len() >= IN_FLIGHT {
            if let Some(done) = calls.join_next().await {
                refused += done.context("load call")??;
            }
        }
        let events = (start..n.min(start + LOAD_BATCH))
            .map(|i| client::trigger(LOAD_KEY, &format!("timers-load-{}", from + i), "timer"))
            .collect();
        let mut ev = client::events(&channel);
        calls.spawn(async move { send_batch(&mut ev, events, node).await.map(|r| r.1) });
    }
    while let Some(done) = calls.join_next().await {
        refused += done.context("load call")??;
    }
    Ok(refused)
}

/// A deadline probe: its incident and when its level 2 is due (ms since the epoch).
#[derive(Debug, Clone, Copy)]
struct Probe {
    incident: u64,
    due_ms: u64,
}

/// `q` deadline probes on `node`, in batches (see the module documentation).
async fn deadline_probes(
    c: &Cluster,
    node: u64,
    q: usize,
    level: usize,
    history: &mut History,
    doc: &OnCall,
) -> anyhow::Result<(Vec<Probe>, usize)> {
    let mut ev = client::events(&c.channel(node)?);
    let mut inc = client::incidents(&c.channel(node)?);
    let mut probes = Vec::with_capacity(q);
    let mut refused = 0;
    let mut next = tokio::time::Instant::now();
    for start in (0..q).step_by(PROBE_BATCH) {
        tokio::time::sleep_until(next).await;
        next += PROBE_GAP;
        let events = (start..q.min(start + PROBE_BATCH))
            .map(|i| client::trigger(PROBE_KEY, &format!("timers{level}-l2-{i}"), "deadline"))
            .collect();
        let (accepted, r) = send_batch(&mut ev, events, node).await?;
        refused += r;
        for a in accepted {
            let created = created_ms(&mut inc, a.incident).await?;
            history.expected.extend(
                doc.expected_pages("timers-probe", a.incident, created, None)
                    .into_iter()
                    .filter(|p| p.to == TIMER_SMS),
            );
            probes.push(Probe {
                incident: a.incident,
                due_ms: created + PROBE_DELAY_MS,
            });
            history.accepted.push(a);
        }
    }
    Ok((probes, refused))
}

/// Wait until the fake has an SMS to `to` about each of `incidents`, at most until `until`.
/// Returns how many have none.
async fn wait_for_all(twilio: &FakeTwilio, to: &str, incidents: &[u64], until: Instant) -> usize {
    loop {
        let messages = twilio.messages();
        let mut seen: Vec<u64> = messages
            .iter()
            .filter(|m| m.to == to)
            .filter_map(|m| incident_in(&m.body))
            .collect();
        seen.sort_unstable();
        let missing = incidents
            .iter()
            .filter(|i| seen.binary_search(i).is_err())
            .count();
        let left = until.saturating_duration_since(Instant::now());
        if missing == 0 || left.is_zero() {
            return missing;
        }
        let _ = twilio.wait_for_messages(messages.len() + 1, left).await;
    }
}

/// A line of the timers table.
fn row(c: [String; 11]) {
    println!(
        "{:>8} {:>8} {:>8}  {:<36} {:>5} {:>10} {:>10} {:>10} {:>6} {:>5} {:>5}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
    );
}

/// One level of pending timers.
pub struct Level {
    pending: usize,
    load_refused: usize,
    load: Duration,
    /// `pagerd_incidents{status="triggered"}` on the leader after the load.
    open: u64,
    leader: u64,
    to_page: ToPage,
    probes: Vec<Probe>,
    probes_refused: usize,
    /// Of the deadline probes, from the fake's final record:
    deadline_to_page: Vec<Duration>,
    missed: usize,
    early: usize,
    duplicates: usize,
    /// Of the commit-to-page probes.
    latency_duplicates: usize,
}

pub struct Timers {
    levels: Vec<Level>,
    probes: usize,
    deadline_probes: usize,
    report: ScenarioReport,
    seconds: f64,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Open incidents with pending timers at which to measure (cumulative, ascending).
    pub pending: Vec<usize>,
    /// Sequential commit-to-page probes per level.
    pub probes: usize,
    /// Deadline probes per level.
    pub deadline_probes: usize,
}

/// Deadline to first SMS, misses, early pages and duplicates of each level, from the fake's
/// record.
fn tally(levels: &mut [Level], twilio: &FakeTwilio) {
    let mut by_page: HashMap<(u64, String), Vec<SystemTime>> = HashMap::new();
    for m in twilio.messages() {
        if let Some(incident) = incident_in(&m.body) {
            by_page
                .entry((incident, m.to))
                .or_default()
                .push(m.received_at);
        }
    }
    let extra = |incident: u64, to: &str| {
        by_page
            .get(&(incident, to.to_string()))
            .map_or(0, |v| v.len().saturating_sub(1))
    };
    for l in levels {
        for p in &l.probes {
            l.duplicates += extra(p.incident, TIMER_SMS);
            let first = by_page
                .get(&(p.incident, TIMER_SMS.to_string()))
                .and_then(|v| v.iter().min());
            match first.map(|f| f.duration_since(from_epoch_ms(p.due_ms))) {
                Some(Ok(d)) if d <= MISS_AFTER => l.deadline_to_page.push(d),
                Some(Ok(_)) | None => l.missed += 1,
                Some(Err(_)) => l.early += 1,
            }
        }
        l.latency_duplicates = l
            .to_page
            .incidents
            .iter()
            .map(|&i| extra(i, LATENCY_SMS))
            .sum();
    }
}

pub async fn run_phase(s: &Settings) -> anyhow::Result<Timers> {
    let began = Instant::now();
    let say = |msg: String| {
        eprintln!(
            "bench: timers [{:6.1} s] {msg}",
            began.elapsed().as_secs_f64()
        )
    };
    let doc = add_to(super::oncall());
    let rig = Rig::start(Layout::Three, None, &doc).await?;
    let c = &rig.cluster;
    say(format!("3 nodes up under {}", c.root().display()));
    let mut history = History::default();
    let mut levels = Vec::new();
    let mut open = 0;
    for (index, &pending) in s.pending.iter().enumerate() {
        let leader = c.wait_for_leader(WAIT).await?.id;
        let t = Instant::now();
        let load_refused = load(c, leader, open, pending.saturating_sub(open)).await?;
        c.wait_all_caught_up(leader, LONG).await?;
        let load_took = t.elapsed();
        open = open.max(pending);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let leader = c.wait_for_leader(WAIT).await?.id;
        let triggered = metrics::scrape(c.ports(leader)?.http)
            .await
            .with_context(|| format!("metrics of node {leader}"))?
            .get("pagerd_incidents{status=\"triggered\"}") as u64;
        say(format!(
            "{pending} incidents with pending timers loaded in {:.1} s ({load_refused} refused); the leader, node {leader}, has {triggered} open",
            load_took.as_secs_f64()
        ));
        let to_page = commit_to_page(
            c,
            leader,
            &rig.twilio,
            s.probes,
            &format!("timers{index}-latency"),
            &mut history,
            &doc,
        )
        .await?;
        say(format!(
            "{} commit-to-page probes: p50 {} p99 {} from Send returned",
            s.probes,
            fmt_us(to_page.from_return.value_at_quantile(0.5)),
            fmt_us(to_page.from_return.value_at_quantile(0.99))
        ));
        let (probes, probes_refused) =
            deadline_probes(c, leader, s.deadline_probes, index, &mut history, &doc).await?;
        let last_due = probes.iter().map(|p| p.due_ms).max().unwrap_or(0);
        let until = Instant::now()
            + from_epoch_ms(last_due)
                .duration_since(SystemTime::now())
                .unwrap_or_default()
            + MISS_AFTER;
        let ids: Vec<u64> = probes.iter().map(|p| p.incident).collect();
        let missing = wait_for_all(&rig.twilio, TIMER_SMS, &ids, until).await;
        say(format!(
            "{} deadline probes ({probes_refused} refused): {missing} level-2 SMS missing",
            probes.len()
        ));
        levels.push(Level {
            pending,
            load_refused,
            load: load_took,
            open: triggered,
            leader,
            to_page,
            probes,
            probes_refused,
            deadline_to_page: Vec::new(),
            missed: 0,
            early: 0,
            duplicates: 0,
            latency_duplicates: 0,
        });
    }
    tally(&mut levels, &rig.twilio);
    let report = rig.check("bench-timers", &history).await?;
    Ok(Timers {
        levels,
        probes: s.probes,
        deadline_probes: s.deadline_probes,
        report,
        seconds: began.elapsed().as_secs_f64(),
    })
}

impl Timers {
    /// Deadline probes with no level-2 SMS within [`MISS_AFTER`] of the deadline.
    pub fn missed(&self) -> usize {
        self.levels.iter().map(|l| l.missed).sum()
    }

    /// Pages of the probes that missed their deadline + the failover bound (the invariant).
    pub fn report_missed(&self) -> usize {
        self.report.missed
    }

    pub fn is_clean(&self) -> bool {
        self.missed() == 0 && self.report.is_clean()
    }

    pub fn print(&self) {
        println!();
        println!(
            "timers: 3 nodes; per level {} sequential triggers paging one SMS at once, and {} incidents (batches of {PROBE_BATCH} every {} ms) whose level 2 (one SMS) is due {PROBE_DELAY_MS} ms after the trigger; {:.0} s",
            self.probes,
            self.deadline_probes,
            PROBE_GAP.as_millis(),
            self.seconds
        );
        row([
            "pending", "open", "load", "probe", "n", "p50", "p99", "max", "missed", "early", "dups",
        ]
        .map(String::from));
        for l in &self.levels {
            // p50, p99, max of a histogram of µs.
            let h = |h: &Histogram<u64>| {
                [h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max()].map(fmt_us)
            };
            let [r50, r99, rmax] = h(&l.to_page.from_return);
            let [i50, i99, imax] = h(&l.to_page.from_issue);
            let [d50, d99, dmax] = p50_p99_max(&l.deadline_to_page);
            let probes = l.to_page.incidents.len().to_string();
            let none = String::new;
            row([
                l.pending.to_string(),
                l.open.to_string(),
                format!("{:.1} s", l.load.as_secs_f64()),
                "Send returned -> Twilio received".into(),
                probes.clone(),
                r50,
                r99,
                rmax,
                none(),
                none(),
                l.latency_duplicates.to_string(),
            ]);
            row([
                none(),
                none(),
                none(),
                "Send issued -> Twilio received".into(),
                probes,
                i50,
                i99,
                imax,
                none(),
                none(),
                none(),
            ]);
            row([
                none(),
                none(),
                none(),
                "level-2 deadline -> Twilio received".into(),
                l.probes.len().to_string(),
                d50,
                d99,
                dmax,
                l.missed.to_string(),
                l.early.to_string(),
                l.duplicates.to_string(),
            ]);
            if l.load_refused + l.probes_refused > 0 {
                println!(
                    "  {} events of the load and {} probes were refused",
                    l.load_refused, l.probes_refused
                );
            }
            if l.to_page.before_return > 0 {
                println!(
                    "  {} of {} pages reached Twilio before Send returned (counted as 0)",
                    l.to_page.before_return,
                    l.to_page.incidents.len()
                );
            }
        }
        println!("(pending: incidents loaded, two timers an hour out each; open: the leader's triggered incidents, probes included; missed: no SMS within {} s of the deadline)", MISS_AFTER.as_secs());
        println!("{}", self.report.with_violations());
    }

    pub fn json(&self) -> Value {
        json!({
            "probes": self.probes,
            "deadline_probes": self.deadline_probes,
            "probe_batch": PROBE_BATCH,
            "probe_gap_ms": PROBE_GAP.as_millis() as u64,
            "level2_after_ms": PROBE_DELAY_MS,
            "miss_after_ms": MISS_AFTER.as_millis() as u64,
            "seconds": self.seconds,
            "levels": self.levels.iter().map(|l| json!({
                "pending_incidents": l.pending,
                "pending_timers": 2 * l.pending,
                "open_on_leader": l.open,
                "leader": l.leader,
                "load_seconds": l.load.as_secs_f64(),
                "load_refused": l.load_refused,
                "commit_to_page_us": l.to_page.json(),
                "commit_to_page_duplicates": l.latency_duplicates,
                "deadline_probes": l.probes.len(),
                "deadline_probes_refused": l.probes_refused,
                "deadline_to_twilio": dist(&l.deadline_to_page),
                "missed": l.missed,
                "early": l.early,
                "duplicates": l.duplicates,
            })).collect::<Vec<_>>(),
            "report": report_json(&self.report),
        })
    }
}
