//! The storm phase: many incidents escalating at once, first without faults, then with the
//! leader SIGKILLed while it sends.
//!
//! Workload: [`SERVICES`] services, each with its own policy: level 1 texts the service's first
//! user at once, level 2 texts a second user `delay` later (then nothing for an hour). A round
//! triggers `n` incidents (distinct dedup keys, spread round-robin over the services) from
//! concurrent clients to the leader, reads each incident's `created_at_ms` back with
//! `Incidents.Get`, and waits until every level-1 SMS reached the fake Twilio and the leader has
//! no delivery pending (outcomes committed), so the level-2 deadlines (`created_at_ms + delay`,
//! within the trigger burst of each other) start from a quiet leader.
//!
//! - Round 0 has no fault.
//! - Rounds 1..=kills wait until `k` level-2 SMS of the round reached the fake (`k` cycles
//!   through 1, n/4, n/2, 3n/4: the leader is sending), SIGKILL the leader, and restart it once
//!   the round settled.
//!
//! A round has settled when every level-2 SMS arrived and the leader reports
//! `pagerd_deliveries_pending 0` (every outcome recorded, reconciled ones included); it is given
//! until the last deadline plus [`MISS_AFTER`]. The counters `pagerd_deliveries_total` are read
//! from the leader before and after each round.
//!
//! Figures come from the fake's record once all rounds are over: per level-2 page, its deadline
//! to the first SMS to its recipient naming its incident (received time at the fake); a page
//! that never came, or came more than [`MISS_AFTER`] after its deadline, is a miss; every
//! further SMS for the same incident and recipient is a duplicate (level 1 is counted too).

use anyhow::Context as _;
use chaos_tests::cluster::Cluster;
use chaos_tests::history::{epoch_ms, from_epoch_ms, Accepted, History};
use chaos_tests::metrics::{self, Metrics};
use chaos_tests::pages::incident_in;
use chaos_tests::report::percentiles;
use chaos_tests::workload::{OnCall, User};
use chaos_tests::{client, faults};
use pager_fakes::twilio::{FakeTwilio, RecordedMessage};
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Services (and policies) of the storm; each has a level-1 and a level-2 user of its own.
pub const SERVICES: usize = 50;
/// A level-2 page later than this after its deadline, or never seen, is a miss.
pub const MISS_AFTER: Duration = Duration::from_secs(30);
/// Level 2 escalates to nothing for this long: the storm never sees a third page.
const AFTER_LAST_LEVEL_MS: u64 = 3_600_000;
/// Interval between two `/metrics` reads while waiting for the leader to settle.
const SETTLE_POLL: Duration = Duration::from_millis(50);
/// Concurrent `Incidents.Get` calls when reading the incidents of a round back.
const READERS: usize = 16;
/// Misses described in full (deliveries and timeline) on stdout; the JSON has them all.
const MISSES_SHOWN: usize = 10;
/// Fractions of a round's level-2 pages at the fake before the SIGKILL, cycled over kill rounds.
const KILL_AT: [(usize, usize); 4] = [(0, 4), (1, 4), (2, 4), (3, 4)];

const STORM_PREFIX_L1: &str = "+1555030";
const STORM_PREFIX_L2: &str = "+1555031";

fn level1_sms(service: usize) -> String {
    format!("{STORM_PREFIX_L1}{service:04}")
}

fn level2_sms(service: usize) -> String {
    format!("{STORM_PREFIX_L2}{service:04}")
}

fn routing_key(service: usize) -> String {
    format!("bench-storm-{service:02}")
}

/// True for the phone numbers of the storm's users (the other phases leave them out of their
/// checks).
pub fn is_storm_number(to: &str) -> bool {
    to.starts_with(STORM_PREFIX_L1) || to.starts_with(STORM_PREFIX_L2)
}

/// `doc` with the storm's users, policies and services added.
pub fn add_to(mut doc: OnCall, delay: Duration) -> OnCall {
    let delay_ms = delay.as_millis() as u64;
    for s in 0..SERVICES {
        let (first, second) = (format!("storm{s:02}-first"), format!("storm{s:02}-second"));
        let name = format!("storm{s:02}");
        doc = doc
            .user(User::new(&first).sms(&level1_sms(s)))
            .user(User::new(&second).sms(&level2_sms(s)))
            .policy(
                &name,
                0,
                &[
                    (delay_ms, &[first.as_str()]),
                    (AFTER_LAST_LEVEL_MS, &[second.as_str()]),
                ],
            )
            .service(&name, &routing_key(s), &name);
    }
    doc
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Incidents of round 0 (no fault) and of the first kill round.
    pub first: usize,
    /// Incidents of every later kill round.
    pub later: usize,
    pub kills: usize,
    /// Level 1 to level 2.
    pub delay: Duration,
    /// Concurrent clients triggering a round.
    pub clients: usize,
}

impl Settings {
    fn incidents(&self, round: usize) -> usize {
        if round <= 1 {
            self.first
        } else {
            self.later
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Incident {
    id: u64,
    service: usize,
    created_ms: u64,
}

/// The delivery counters of `pagerd_deliveries_total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub created: u64,
    pub sent: u64,
    pub reclaimed: u64,
    pub in_doubt: u64,
    pub reconciled: u64,
}

impl Counters {
    fn of(m: &Metrics) -> Counters {
        Counters {
            created: m.deliveries("created"),
            sent: m.deliveries("sent"),
            reclaimed: m.deliveries("reclaimed"),
            in_doubt: m.deliveries("in_doubt"),
            reconciled: m.deliveries("reconciled"),
        }
    }
    fn minus(self, o: Counters) -> Counters {
        Counters {
            created: self.created.saturating_sub(o.created),
            sent: self.sent.saturating_sub(o.sent),
            reclaimed: self.reclaimed.saturating_sub(o.reclaimed),
            in_doubt: self.in_doubt.saturating_sub(o.in_doubt),
            reconciled: self.reconciled.saturating_sub(o.reconciled),
        }
    }
    fn json(&self) -> Value {
        json!({
            "created": self.created,
            "sent": self.sent,
            "reclaimed": self.reclaimed,
            "in_doubt": self.in_doubt,
            "reconciled": self.reconciled,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Kill {
    node: u64,
    new_leader: u64,
    at: SystemTime,
    election: Duration,
    /// Level-2 SMS of the round the harness waited for before killing.
    after_pages: usize,
}

/// One round as it ran.
struct Round {
    index: usize,
    incidents: Vec<Incident>,
    trigger_errors: usize,
    triggered_in: Duration,
    /// From the first trigger until every level-1 page was out and recorded; `None` when that
    /// did not happen before the first level-2 deadline.
    level1_settled: Option<Duration>,
    kill: Option<Kill>,
    /// Every level-2 page out and every outcome recorded within the miss bound.
    settled: bool,
    /// From the first level-2 deadline to settled.
    settle_after_deadline: Option<Duration>,
    /// Wall time the round settled (or gave up).
    ended: SystemTime,
    /// Snapshots any node finished between the first level-2 deadline and `ended`: node and
    /// ms after the first deadline (from the nodes' logs).
    snapshots: Vec<(u64, i64)>,
    counters: Counters,
    restart_ms: Option<u128>,
}

impl Round {
    fn deadlines(&self, delay: Duration) -> (u64, u64) {
        let d = delay.as_millis() as u64;
        let first = self
            .incidents
            .iter()
            .map(|i| i.created_ms)
            .min()
            .unwrap_or(0);
        let last = self
            .incidents
            .iter()
            .map(|i| i.created_ms)
            .max()
            .unwrap_or(0);
        (first + d, last + d)
    }
}

/// A level-2 page that did not arrive within the bound, with the daemon's account of it.
#[derive(Debug, Clone)]
pub struct Miss {
    pub round: usize,
    pub incident: u64,
    pub to: String,
    pub deadline_ms: u64,
    /// How late it came, if it came at all.
    pub late: Option<Duration>,
    /// `Incidents.Get` from the leader at the end: deliveries and timeline.
    pub daemon: String,
}

/// Per-round figures, from the fake's final record.
#[derive(Debug, Clone, Default)]
struct Tally {
    level1: Vec<Duration>,
    level2: Vec<Duration>,
    /// Level-2 pages that first arrived after the kill.
    after_kill: usize,
    /// Of those: deadline to Twilio, and SIGKILL to Twilio.
    after_kill_level2: Vec<Duration>,
    kill_to_page: Vec<Duration>,
    early: Vec<String>,
    misses: Vec<(u64, String, u64, Option<Duration>)>,
    dup_level1: usize,
    dup_level2: usize,
}

/// Everything the phase measured.
pub struct Storm {
    pub settings: Settings,
    rounds: Vec<Round>,
    tallies: Vec<Tally>,
    pub misses: Vec<Miss>,
    pub counters: Counters,
    pub took: Duration,
}

/// Run round 0 and `kills` kill rounds; see the module documentation.
pub async fn run(
    c: &mut Cluster,
    twilio: &FakeTwilio,
    history: &mut History,
    s: Settings,
) -> anyhow::Result<Storm> {
    let started = Instant::now();
    let leader = c.wait_for_leader(super::WAIT).await?;
    let before = counters(c, leader.id).await?;
    let mut rounds = Vec::new();
    for index in 0..=s.kills {
        let round = run_round(c, twilio, history, &s, index).await?;
        rounds.push(round);
    }
    let leader = c.wait_for_leader(super::WAIT).await?;
    let after = counters(c, leader.id).await?;
    let snapshots = snapshot_times(c);
    for r in &mut rounds {
        let (first, _) = r.deadlines(s.delay);
        r.snapshots = snapshots
            .iter()
            .filter(|(_, at)| *at >= from_epoch_ms(first) && *at <= r.ended)
            .map(|(node, at)| (*node, signed_ms(*at, first)))
            .collect();
    }
    // Anything still on its way (a retry) has had the whole settle; read the record once.
    let messages = twilio.messages();
    let tallies = tally(&rounds, &messages, s.delay);
    let mut misses = Vec::new();
    for (round, t) in rounds.iter().zip(&tallies) {
        for (incident, to, deadline_ms, late) in &t.misses {
            let daemon = describe_incident(c, leader.id, *incident, *deadline_ms).await;
            misses.push(Miss {
                round: round.index,
                incident: *incident,
                to: to.clone(),
                deadline_ms: *deadline_ms,
                late: *late,
                daemon,
            });
        }
    }
    Ok(Storm {
        settings: s,
        rounds,
        tallies,
        misses,
        counters: after.minus(before),
        took: started.elapsed(),
    })
}

async fn counters(c: &Cluster, node: u64) -> anyhow::Result<Counters> {
    let m = metrics::scrape(c.ports(node)?.http)
        .await
        .with_context(|| format!("metrics of node {node}"))?;
    Ok(Counters::of(&m))
}

async fn run_round(
    c: &mut Cluster,
    twilio: &FakeTwilio,
    history: &mut History,
    s: &Settings,
    index: usize,
) -> anyhow::Result<Round> {
    let n = s.incidents(index);
    let leader = c.wait_for_leader(super::WAIT).await?;
    let before = counters(c, leader.id).await?;
    let base = twilio.messages().len();
    let started = Instant::now();
    let (accepted, trigger_errors) = trigger(c, leader.id, s.clients, n, index).await?;
    let triggered_in = started.elapsed();
    history
        .accepted
        .extend(accepted.iter().map(|(_, a)| a.clone()));
    let incidents = created(c, leader.id, &accepted).await?;
    let mut round = Round {
        index,
        incidents,
        trigger_errors,
        triggered_in,
        level1_settled: None,
        kill: None,
        settled: false,
        settle_after_deadline: None,
        ended: SystemTime::now(),
        snapshots: Vec::new(),
        counters: Counters::default(),
        restart_ms: None,
    };
    let (first_deadline, last_deadline) = round.deadlines(s.delay);
    let first_deadline_at = instant_of(first_deadline);
    let give_up = instant_of(last_deadline) + MISS_AFTER;
    eprintln!(
        "bench: storm round {index}: {} incidents triggered on node {} in {} ms ({} errors), level-2 deadlines within {} ms",
        round.incidents.len(),
        leader.id,
        triggered_in.as_millis(),
        trigger_errors,
        last_deadline - first_deadline
    );

    // Level 1 out and recorded before the level-2 deadlines, so they start from a quiet leader.
    let level1: Vec<(u64, String)> = round
        .incidents
        .iter()
        .map(|i| (i.id, level1_sms(i.service)))
        .collect();
    if settle(c, twilio, base, &level1, first_deadline_at).await? {
        round.level1_settled = Some(started.elapsed());
    } else {
        eprintln!("bench: storm round {index}: level 1 not settled by the first level-2 deadline");
    }
    let base2 = twilio.messages().len();
    let level2: Vec<(u64, String)> = round
        .incidents
        .iter()
        .map(|i| (i.id, level2_sms(i.service)))
        .collect();

    let mut killed = None;
    if index > 0 && !level2.is_empty() {
        let (num, den) = KILL_AT[(index - 1) % KILL_AT.len()];
        let k = (level2.len() * num / den).max(1);
        // Whoever leads now (a spontaneous election since the trigger is possible).
        let leader = c.wait_for_leader(super::WAIT).await?;
        let left = give_up.saturating_duration_since(Instant::now());
        if twilio.wait_for_messages(base2 + k, left).await.is_ok() {
            let kill = faults::kill_known_leader(c, history, leader, super::WAIT).await?;
            eprintln!(
                "bench: storm round {index}: killed leader {} after {k} level-2 pages, {} ms after the first deadline; node {} leads after {} ms",
                leader.id,
                signed_ms(kill.killed.wall, first_deadline),
                kill.new.id,
                kill.election.as_millis()
            );
            round.kill = Some(Kill {
                node: leader.id,
                new_leader: kill.new.id,
                at: kill.killed.wall,
                election: kill.election,
                after_pages: k,
            });
            killed = Some(kill.old);
        } else {
            eprintln!(
                "bench: storm round {index}: fewer than {k} level-2 pages by the miss bound; no kill"
            );
        }
    }

    round.settled = settle(c, twilio, base2, &level2, give_up).await?;
    if round.settled {
        round.settle_after_deadline = Instant::now().checked_duration_since(first_deadline_at);
    } else {
        eprintln!(
            "bench: storm round {index}: NOT settled within {} s of the last deadline",
            MISS_AFTER.as_secs()
        );
    }
    round.ended = SystemTime::now();
    let leader = c.wait_for_leader(super::WAIT).await?;
    round.counters = counters(c, leader.id).await?.minus(before);
    eprintln!(
        "bench: storm round {index}: settled={} {} ms after the first deadline; reclaimed {} reconciled {} in_doubt {}",
        round.settled,
        round.settle_after_deadline.map_or(0, |d| d.as_millis()),
        round.counters.reclaimed,
        round.counters.reconciled,
        round.counters.in_doubt
    );
    if let Some(old) = killed {
        let restarted = Instant::now();
        faults::restart(c, history, old.id, super::WAIT).await?;
        round.restart_ms = Some(restarted.elapsed().as_millis());
    }
    Ok(round)
}

/// `n` triggers with distinct dedup keys, round-robin over the services, from `clients`
/// concurrent clients (one connection each) to `node`. Returns each accepted event with its
/// service, and the number of errors.
async fn trigger(
    c: &Cluster,
    node: u64,
    clients: usize,
    n: usize,
    round: usize,
) -> anyhow::Result<(Vec<(usize, Accepted)>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.clamp(1, n.max(1)) {
        let mut ev = client::events(&c.channel(node)?);
        let next = next.clone();
        tasks.spawn(async move {
            let mut ok = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return (ok, errors);
                }
                let service = i % SERVICES;
                let dedup = format!("storm-{round}-{i}");
                match ev
                    .send(client::trigger(&routing_key(service), &dedup, "storm"))
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        ok.push((
                            service,
                            Accepted {
                                incident: r.incident_id,
                                dedup_key: r.dedup_key,
                                folded: r.folded,
                                commit_index: r.commit_index,
                                via: node,
                            },
                        ));
                    }
                    Err(s) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("bench: storm trigger {dedup}: {s}");
                        }
                    }
                }
            }
        });
    }
    let mut accepted = Vec::with_capacity(n);
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        let (ok, e) = done.context("storm client task")?;
        accepted.extend(ok);
        errors += e;
    }
    Ok((accepted, errors))
}

/// Each accepted incident with its `created_at_ms`, read from `node`.
async fn created(
    c: &Cluster,
    node: u64,
    accepted: &[(usize, Accepted)],
) -> anyhow::Result<Vec<Incident>> {
    let ids: Arc<Vec<(usize, u64)>> = Arc::new(
        accepted
            .iter()
            .filter(|(_, a)| a.incident != 0 && !a.folded)
            .map(|(s, a)| (*s, a.incident))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..READERS.min(ids.len()) {
        let (ids, next) = (ids.clone(), next.clone());
        let mut incidents = client::incidents(&c.channel(node)?);
        readers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(service, id)) = ids.get(i) else {
                    return anyhow::Ok(out);
                };
                let inc = incidents
                    .get(pb::GetIncidentRequest {
                        id,
                        ..Default::default()
                    })
                    .await
                    .with_context(|| format!("Incidents.Get({id}) on node {node}"))?
                    .into_inner();
                out.push(Incident {
                    id,
                    service,
                    created_ms: inc.created_at_ms,
                });
            }
        });
    }
    let mut out = Vec::with_capacity(ids.len());
    while let Some(done) = readers.join_next().await {
        out.extend(done.context("incident reader task")??);
    }
    out.sort_by_key(|i| i.id);
    Ok(out)
}

/// Wait until each `(incident, number)` of `want` has an SMS at the fake (among the messages
/// from index `base` on) and the leader has no delivery pending, until `until`. False if that
/// did not happen by then.
async fn settle(
    c: &Cluster,
    twilio: &FakeTwilio,
    base: usize,
    want: &[(u64, String)],
    until: Instant,
) -> anyhow::Result<bool> {
    let mut target = base + want.len();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let Ok(messages) = twilio.wait_for_messages(target, left).await else {
            return Ok(false);
        };
        let seen: HashSet<(u64, &str)> = messages[base.min(messages.len())..]
            .iter()
            .filter_map(|m| Some((incident_in(&m.body)?, m.to.as_str())))
            .collect();
        let missing = want
            .iter()
            .filter(|(i, to)| !seen.contains(&(*i, to.as_str())))
            .count();
        if missing == 0 {
            break;
        }
        target = messages.len() + missing;
    }
    // Every page is out; wait until the leader has recorded every outcome.
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let leader = c.wait_for_leader(left).await?;
        if let Ok(m) = metrics::scrape(c.ports(leader.id)?.http).await {
            if m.pending() == 0 {
                return Ok(true);
            }
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// The per-round figures from the fake's record.
fn tally(rounds: &[Round], messages: &[RecordedMessage], delay: Duration) -> Vec<Tally> {
    let mut by_page: HashMap<(u64, &str), Vec<SystemTime>> = HashMap::new();
    for m in messages.iter().filter(|m| is_storm_number(&m.to)) {
        if let Some(incident) = incident_in(&m.body) {
            by_page
                .entry((incident, m.to.as_str()))
                .or_default()
                .push(m.received_at);
        }
    }
    let delay_ms = delay.as_millis() as u64;
    rounds
        .iter()
        .map(|round| {
            let mut t = Tally::default();
            for inc in &round.incidents {
                let pages = [
                    (1, level1_sms(inc.service), inc.created_ms),
                    (2, level2_sms(inc.service), inc.created_ms + delay_ms),
                ];
                for (level, to, due_ms) in pages {
                    let got = by_page.get(&(inc.id, to.as_str()));
                    let first = got.and_then(|v| v.iter().min().copied());
                    let extra = got.map_or(0, |v| v.len().saturating_sub(1));
                    let due = from_epoch_ms(due_ms);
                    let late = first.map(|f| f.duration_since(due));
                    if level == 1 {
                        t.dup_level1 += extra;
                        if let Some(Ok(d)) = late {
                            t.level1.push(d);
                        }
                        continue;
                    }
                    t.dup_level2 += extra;
                    match late {
                        Some(Ok(d)) => {
                            if d > MISS_AFTER {
                                t.misses.push((inc.id, to.clone(), due_ms, Some(d)));
                            }
                            t.level2.push(d);
                            if let (Some(k), Some(f)) = (round.kill, first) {
                                if let Ok(since_kill) = f.duration_since(k.at) {
                                    t.after_kill += 1;
                                    t.after_kill_level2.push(d);
                                    t.kill_to_page.push(since_kill);
                                }
                            }
                        }
                        Some(Err(early)) => t.early.push(format!(
                            "incident {} level 2 to {to} arrived {} ms before its deadline",
                            inc.id,
                            early.duration().as_millis()
                        )),
                        None => t.misses.push((inc.id, to.clone(), due_ms, None)),
                    }
                }
            }
            t
        })
        .collect()
}

/// What `node` says about `incident`: its deliveries and timeline, times relative to the
/// level-2 deadline.
async fn describe_incident(c: &Cluster, node: u64, incident: u64, deadline_ms: u64) -> String {
    let rel = |ms: u64| -> String {
        if ms == 0 {
            "-".into()
        } else {
            format!("{:+} ms", ms as i64 - deadline_ms as i64)
        }
    };
    let inc = match c.channel(node) {
        Ok(ch) => client::incidents(&ch)
            .get(pb::GetIncidentRequest {
                id: incident,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
            .map_err(|s| anyhow::anyhow!("{s}")),
        Err(e) => Err(e),
    };
    let inc = match inc {
        Ok(inc) => inc,
        Err(e) => return format!("Incidents.Get({incident}) on node {node}: {e:#}"),
    };
    let mut out = format!(
        "incident {} status {:?} level {} (times relative to the level-2 deadline)\n",
        inc.id,
        pb::IncidentStatus::try_from(inc.status).unwrap_or(pb::IncidentStatus::Unspecified),
        inc.escalation_level
    );
    for d in &inc.deliveries {
        out.push_str(&format!(
            "  delivery {} {} {} to {}: {} attempt {} term {} reclaims {} in_doubt {} provider {:?} error {:?} created {} claimed {} updated {}\n",
            d.id,
            d.user,
            d.method,
            d.address,
            d.status,
            d.attempt,
            d.term,
            d.reclaims,
            d.in_doubt,
            d.provider_id,
            d.error,
            rel(d.created_at_ms),
            rel(d.claimed_at_ms),
            rel(d.updated_at_ms)
        ));
    }
    for e in &inc.timeline {
        out.push_str(&format!("  {} {} ({})\n", rel(e.at_ms), e.what, e.by));
    }
    out
}

/// When each node finished a snapshot, from the `snapshot built` lines of its log.
pub fn snapshot_times(c: &Cluster) -> Vec<(u64, SystemTime)> {
    let mut out = Vec::new();
    for id in c.ids() {
        let Ok(log) = c.log(id) else { continue };
        for line in log.lines().filter(|l| l.contains("snapshot built")) {
            if let Some(at) = line.get(..27).and_then(parse_log_time) {
                out.push((id, at));
            }
        }
    }
    out
}

/// `2026-11-21T16:21:39.494241Z` (the UTC timestamps of pagerd's text log).
fn parse_log_time(s: &str) -> Option<SystemTime> {
    chaos_tests::elections::parse_rfc3339(s)
}

/// The `Instant` at which the wall clock reads `ms` since the epoch (now if that has passed).
fn instant_of(ms: u64) -> Instant {
    let now = SystemTime::now();
    let wall = from_epoch_ms(ms);
    Instant::now() + wall.duration_since(now).unwrap_or_default()
}

/// `at` minus `ms` since the epoch, in ms (negative when before).
fn signed_ms(at: SystemTime, ms: u64) -> i64 {
    epoch_ms(at) as i64 - ms as i64
}

fn dist_ms(v: &[Duration]) -> Value {
    let p = percentiles(v, &[50.0, 99.0, 100.0]);
    let ms = |i: usize| p.get(i).map(|d| d.as_secs_f64() * 1_000.0);
    json!({ "n": v.len(), "p50_ms": ms(0), "p99_ms": ms(1), "max_ms": ms(2) })
}

fn p50_p99_max(v: &[Duration]) -> [String; 3] {
    match percentiles(v, &[50.0, 99.0, 100.0]).as_slice() {
        [a, b, c] => [fmt(*a), fmt(*b), fmt(*c)],
        _ => ["-".into(), "-".into(), "-".into()],
    }
}

fn fmt(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1_000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// The tallies of several rounds together.
#[derive(Default)]
struct Gathered {
    level1: Vec<Duration>,
    level2: Vec<Duration>,
    after_kill_level2: Vec<Duration>,
    kill_to_page: Vec<Duration>,
    missed: usize,
    dup_level1: usize,
    dup_level2: usize,
}

impl Gathered {
    fn of<'a>(rounds: impl Iterator<Item = (&'a Round, &'a Tally)>) -> Gathered {
        let mut g = Gathered::default();
        for (_, t) in rounds {
            g.level1.extend(&t.level1);
            g.level2.extend(&t.level2);
            g.after_kill_level2.extend(&t.after_kill_level2);
            g.kill_to_page.extend(&t.kill_to_page);
            g.missed += t.misses.len();
            g.dup_level1 += t.dup_level1;
            g.dup_level2 += t.dup_level2;
        }
        g
    }
}

impl Storm {
    fn kill_rounds(&self) -> impl Iterator<Item = (&Round, &Tally)> {
        self.rounds
            .iter()
            .zip(&self.tallies)
            .filter(|(r, _)| r.kill.is_some())
    }

    fn no_fault(&self) -> impl Iterator<Item = (&Round, &Tally)> {
        self.rounds
            .iter()
            .zip(&self.tallies)
            .filter(|(r, _)| r.kill.is_none())
    }

    pub fn missed(&self) -> usize {
        self.tallies.iter().map(|t| t.misses.len()).sum()
    }

    pub fn early(&self) -> usize {
        self.tallies.iter().map(|t| t.early.len()).sum()
    }

    pub fn duplicates(&self) -> (usize, usize) {
        (
            self.tallies.iter().map(|t| t.dup_level1).sum(),
            self.tallies.iter().map(|t| t.dup_level2).sum(),
        )
    }

    pub fn unsettled(&self) -> usize {
        self.rounds.iter().filter(|r| !r.settled).count()
    }

    /// Problems that fail the run: misses, early pages, unsettled rounds.
    pub fn is_clean(&self) -> bool {
        self.missed() == 0 && self.early() == 0 && self.unsettled() == 0
    }

    /// The human-readable section.
    pub fn print(&self, knobs: &[String]) {
        let s = &self.settings;
        let incidents: usize = self.rounds.iter().map(|r| r.incidents.len()).sum();
        println!();
        println!(
            "storm: {} rounds ({} incidents; round 0 without faults, {} rounds with a leader SIGKILL), {SERVICES} services x 2 users, level 2 after {} ms, {} s in all",
            self.rounds.len(),
            incidents,
            self.rounds.iter().filter(|r| r.kill.is_some()).count(),
            s.delay.as_millis(),
            self.took.as_secs()
        );
        println!("storm: [dispatch] {}", knobs.join(", "));
        println!(
            "{:<44} {:>7} {:>10} {:>10} {:>10} {:>7} {:>6}",
            "storm", "pages", "p50", "p99", "max", "missed", "dups"
        );
        let row = |name: &str, v: &[Duration], missed: usize, dups: usize| {
            let [p50, p99, max] = p50_p99_max(v);
            println!(
                "{:<44} {:>7} {:>10} {:>10} {:>10} {:>7} {:>6}",
                name,
                v.len(),
                p50,
                p99,
                max,
                missed,
                dups
            );
        };
        let no_fault = Gathered::of(self.no_fault());
        row(
            "level 1: created -> Twilio, no faults",
            &no_fault.level1,
            0,
            no_fault.dup_level1,
        );
        row(
            "level 2: deadline -> Twilio, no faults",
            &no_fault.level2,
            no_fault.missed,
            no_fault.dup_level2,
        );
        let kills = Gathered::of(self.kill_rounds());
        row(
            &format!(
                "level 2: deadline -> Twilio, {} kills",
                self.kill_rounds().count()
            ),
            &kills.level2,
            kills.missed,
            kills.dup_level2,
        );
        row(
            "  those first received after the kill",
            &kills.after_kill_level2,
            0,
            0,
        );
        row("  the same, SIGKILL -> Twilio", &kills.kill_to_page, 0, 0);
        println!();
        println!(
            "{:>5} {:>9} {:>8} {:>7} {:>6} {:>8} {:>8} {:>7} {:>9} {:>9} {:>7} {:>5} {:>9} {:>10} {:>8} {:>8}  {:<9}",
            "round",
            "incidents",
            "trigger",
            "spread",
            "kill",
            "kill at",
            "election",
            "after",
            "l2 p50",
            "l2 max",
            "missed",
            "dups",
            "reclaimed",
            "reconciled",
            "in_doubt",
            "settled",
            "snapshots"
        );
        for (r, t) in self.rounds.iter().zip(&self.tallies) {
            let (first, last) = r.deadlines(s.delay);
            let [p50, _, max] = p50_p99_max(&t.level2);
            let (kill, at, election, after) = match r.kill {
                Some(k) => (
                    format!("n{}", k.node),
                    format!("{:+} ms", signed_ms(k.at, first)),
                    format!("{} ms", k.election.as_millis()),
                    t.after_kill.to_string(),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into()),
            };
            let snapshots: Vec<String> = r
                .snapshots
                .iter()
                .map(|(node, ms)| format!("n{node}@{ms:+}"))
                .collect();
            println!(
                "{:>5} {:>9} {:>5} ms {:>4} ms {:>6} {:>8} {:>8} {:>7} {:>9} {:>9} {:>7} {:>5} {:>9} {:>10} {:>8} {:>8}  {}",
                r.index,
                r.incidents.len(),
                r.triggered_in.as_millis(),
                last - first,
                kill,
                at,
                election,
                after,
                p50,
                max,
                t.misses.len(),
                t.dup_level2,
                r.counters.reclaimed,
                r.counters.reconciled,
                r.counters.in_doubt,
                match r.settle_after_deadline {
                    Some(d) if r.settled => format!("+{} ms", d.as_millis()),
                    _ => "NO".into(),
                },
                if snapshots.is_empty() {
                    "-".to_string()
                } else {
                    snapshots.join(" ")
                }
            );
        }
        println!(
            "(trigger: all incidents of the round accepted; spread: last minus first level-2 deadline; kill at: SIGKILL after the first deadline; \
election: to a new leader in Status; after: level-2 pages first received after the kill; settled: every level-2 page out and no delivery pending, after the first deadline; \
snapshots: snapshot builds finished meanwhile, node@ms after the first deadline)"
        );
        let (d1, d2) = self.duplicates();
        let c = self.counters;
        println!(
            "storm counters (leader's /metrics, whole storm): created {} sent {} reclaimed {} reconciled {} in_doubt {}; duplicates received: level 1 {d1}, level 2 {d2}",
            c.created, c.sent, c.reclaimed, c.reconciled, c.in_doubt
        );
        for r in &self.rounds {
            if r.level1_settled.is_none() {
                println!(
                    "storm round {}: level 1 was still settling at the first level-2 deadline",
                    r.index
                );
            }
            if r.trigger_errors > 0 {
                println!(
                    "storm round {}: {} triggers failed (not counted)",
                    r.index, r.trigger_errors
                );
            }
        }
        for t in &self.tallies {
            for e in &t.early {
                println!("storm EARLY: {e}");
            }
        }
        for m in self.misses.iter().take(MISSES_SHOWN) {
            println!(
                "storm MISS: round {} incident {} level 2 to {} due at {} ms: {}\n{}",
                m.round,
                m.incident,
                m.to,
                m.deadline_ms,
                m.late.map_or("never arrived".to_string(), |d| format!(
                    "arrived {} ms late",
                    d.as_millis()
                )),
                m.daemon
            );
        }
        if self.misses.len() > MISSES_SHOWN {
            println!(
                "storm: {} more misses in the JSON",
                self.misses.len() - MISSES_SHOWN
            );
        }
        println!(
            "storm: rounds={} incidents={incidents} level2_pages={} missed={} early={} duplicates_level2={d2} duplicates_level1={d1} reclaimed={} reconciled={} unsettled_rounds={}",
            self.rounds.len(),
            self.tallies.iter().map(|t| t.level2.len()).sum::<usize>(),
            self.missed(),
            self.early(),
            c.reclaimed,
            c.reconciled,
            self.unsettled()
        );
    }

    pub fn json(&self, knobs: Value) -> Value {
        let s = &self.settings;
        let gather = |g: Gathered| {
            json!({
                "level1_created_to_twilio": dist_ms(&g.level1),
                "level2_deadline_to_twilio": dist_ms(&g.level2),
                "level2_first_received_after_kill": {
                    "deadline_to_twilio": dist_ms(&g.after_kill_level2),
                    "kill_to_twilio": dist_ms(&g.kill_to_page),
                },
                "missed": g.missed,
                "duplicates_level1": g.dup_level1,
                "duplicates_level2": g.dup_level2,
            })
        };
        let rounds: Vec<Value> = self
            .rounds
            .iter()
            .zip(&self.tallies)
            .map(|(r, t)| {
                let (first, last) = r.deadlines(s.delay);
                json!({
                    "round": r.index,
                    "incidents": r.incidents.len(),
                    "trigger_errors": r.trigger_errors,
                    "trigger_ms": r.triggered_in.as_millis() as u64,
                    "deadline_spread_ms": last - first,
                    "level1_settled_ms": r.level1_settled.map(|d| d.as_millis() as u64),
                    "kill": r.kill.map(|k| json!({
                        "node": k.node,
                        "new_leader": k.new_leader,
                        "after_level2_pages": k.after_pages,
                        "at_ms_after_first_deadline": signed_ms(k.at, first),
                        "election_ms": k.election.as_millis() as u64,
                        "restart_and_catch_up_ms": r.restart_ms.map(|ms| ms as u64),
                    })),
                    "level2_deadline_to_twilio": dist_ms(&t.level2),
                    "level2_after_kill": t.after_kill,
                    "missed": t.misses.len(),
                    "early": t.early.len(),
                    "duplicates_level1": t.dup_level1,
                    "duplicates_level2": t.dup_level2,
                    "counters": r.counters.json(),
                    "settled": r.settled,
                    "settled_ms_after_first_deadline": r.settle_after_deadline.map(|d| d.as_millis() as u64),
                    "snapshots_ms_after_first_deadline": r.snapshots.iter().map(|(node, ms)| json!({"node": node, "ms": ms})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let (d1, d2) = self.duplicates();
        json!({
            "services": SERVICES,
            "level2_delay_ms": s.delay.as_millis() as u64,
            "incidents_first": s.first,
            "incidents_later": s.later,
            "kills": s.kills,
            "clients": s.clients,
            "miss_after_ms": MISS_AFTER.as_millis() as u64,
            "dispatch": knobs,
            "seconds": self.took.as_secs_f64(),
            "no_faults": gather(Gathered::of(self.no_fault())),
            "with_kills": gather(Gathered::of(self.kill_rounds())),
            "missed": self.missed(),
            "early": self.early(),
            "unsettled_rounds": self.unsettled(),
            "duplicates_level1": d1,
            "duplicates_level2": d2,
            "counters": self.counters.json(),
            "rounds": rounds,
            "misses": self.misses.iter().map(|m| json!({
                "round": m.round,
                "incident": m.incident,
                "to": m.to,
                "deadline_ms": m.deadline_ms,
                "late_ms": m.late.map(|d| d.as_millis() as u64),
                "daemon": m.daemon,
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps() {
        let at = parse_log_time("2026-11-21T16:21:39.494241Z").expect("a timestamp");
        let ms = epoch_ms(at);
        // 2026-11-21T00:00:00Z is 1795219200 s after the epoch.
        assert_eq!(
            ms,
            (1_795_219_200 + 16 * 3_600 + 21 * 60 + 39) * 1_000 + 494
        );
        assert_eq!(parse_log_time("2026-11-21 16:21:39.494241Z"), None);
        assert_eq!(parse_log_time("=== chaos-tests: start"), None);
    }
}
