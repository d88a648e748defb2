//! `--only report`: the page review report over many incidents, and what an
//! incident with an RCA record costs in memory. In this process, on the
//! replicated state itself (`pager_core::State`, the same value every node
//! holds): the report is a read of one node's replica, so no cluster or
//! network stands between the figure and what it measures.
//!
//! `--report-incidents N` (default 1,000,000) high-urgency incidents of a
//! service whose tier requires an RCA are applied as the log would carry them
//! (trigger, the page's outcome, acknowledge, resolve), spread evenly over 90
//! days, one alert in ten repeating; every incident gets an RCA record and a
//! daily roll-up entry. Then:
//! - memory: the process's RSS before and after, per incident held (incident,
//!   delivery, RCA record, roll-up figures);
//! - the 90-day report, for everyone and for one team: `--report-runs` runs
//!   each (default 20), p50 and max;
//! - the same after compacting every incident away: what reports cost once
//!   only roll-ups are left.
//!
//! `--report-without-rca` runs the same with the tier's `rca = "off"`: the
//! difference in RSS per incident is what an RCA record costs.

use anyhow::Context as _;
use pager_core::command::{Command, Response, SendResult};
use pager_core::{Event, EventAction, LogMeta, OnCallDoc, State};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub struct Settings {
    pub incidents: usize,
    pub runs: usize,
    /// The tier's `rca = "off"`: the same incidents without RCA records, for
    /// what the records themselves cost.
    pub without_rca: bool,
}

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[users.bob]
time_zone = "America/New_York"
contact_methods = [ { name = "m", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[teams.db]
members = ["alice", "bob"]
[teams.web]
members = ["bob"]
[escalation_policies.db]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[escalation_policies.web]
levels = [ { escalate_after = "1h", targets = [ { user = "bob" } ] } ]
[tiers.one]
ack_sla = "5m"
rca = "required"
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
team = "db"
tier = "one"
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "web"
team = "web"
tier = "one"
"#;

/// 2026-09-01T00:00:00Z: the 90 days end on 2026-11-30.
const START: u64 = 1_788_220_800_000;
const DAYS: u64 = 90;
const DAY: u64 = 86_400_000;

pub struct Timing {
    pub p50: Duration,
    pub max: Duration,
}

pub struct ReportPhase {
    pub settings: Settings,
    pub load: Duration,
    pub rss_before: u64,
    pub rss_after: u64,
    pub rcas: usize,
    pub rollup_days: usize,
    pub all: Timing,
    /// `report_input` alone: what a node's read lock is held for.
    pub under_lock: Timing,
    pub team: Timing,
    pub all_compacted: Timing,
    pub incidents_in_report: u32,
    pub mttr_p50_s: Option<u32>,
}

fn rss() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/self/status").context("read /proc/self/status")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kb: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("parse VmRSS")?;
    Ok(kb * 1024)
}

struct Log {
    state: State,
    index: u64,
}

impl Log {
    fn apply(&mut self, cmd: &Command) -> Response {
        self.index += 1;
        self.state
            .apply(
                LogMeta {
                    index: self.index,
                    term: 1,
                },
                cmd,
            )
            .response
    }
}

/// What happens to an incident after it opens, due at an instant.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Later {
    Sent(u64),
    Ack(u64, &'static str),
    Resolve(u64, &'static str),
}

/// Apply `n` incidents' lives (trigger, the page's outcome, acknowledge,
/// resolve) in time order, as a log would hold them: the state's clock never
/// runs backwards, so applying an incident's resolve before the next one's
/// trigger would stamp that trigger late.
fn load_incidents(log: &mut Log, n: usize) -> anyhow::Result<()> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let step = (DAYS * DAY) / n.max(1) as u64;
    let mut queue: BinaryHeap<Reverse<(u64, u64, Later)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let run = |log: &mut Log, at: u64, later: Later| {
        let cmd = match later {
            Later::Sent(d) => Command::Outcome {
                at,
                delivery: d,
                attempt: 1,
                result: SendResult::Sent {
                    provider_id: format!("SM{d}"),
                    reconciled: false,
                },
            },
            Later::Ack(id, who) => Command::Acknowledge {
                at,
                incident: id,
                by: who.into(),
            },
            Later::Resolve(id, who) => Command::Resolve {
                at,
                incident: id,
                by: who.into(),
            },
        };
        log.apply(&cmd);
    };
    for i in 0..=n {
        let at = START + i as u64 * step;
        while queue
            .peek()
            .is_some_and(|Reverse((due, ..))| *due <= at || i == n)
        {
            let Some(Reverse((due, _, later))) = queue.pop() else {
                break;
            };
            run(log, due, later);
        }
        if i == n {
            break;
        }
        let (key, who) = if i % 3 == 0 {
            ("web-key-0001", "bob")
        } else {
            ("db-key-0001", "alice")
        };
        // One alert in ten repeats a summary; the rest are 5,000 hosts.
        let summary = if i % 10 == 0 {
            "disk full on the primary".to_string()
        } else {
            format!("disk full on host{}", i % 5000)
        };
        let r = log.apply(&Command::Ingest {
            at,
            event: Box::new(Event {
                routing_key: key.into(),
                action: EventAction::Trigger,
                dedup_key: format!("k{i}"),
                summary,
                source: "bench".into(),
                ..Default::default()
            }),
        });
        let Response::Event {
            incident: Some(id), ..
        } = r
        else {
            anyhow::bail!("trigger {i} was not applied: {r:?}");
        };
        let mut push = |due: u64, later: Later| {
            seq += 1;
            queue.push(Reverse((due, seq, later)));
        };
        let pending: Vec<u64> = log.state.pending_deliveries().map(|d| d.id).collect();
        for d in pending {
            push(at + 500, Later::Sent(d));
        }
        // Acknowledged within 1 s to 10 min, resolved 12 min to 72 min in.
        push(at + 1_000 + (i as u64 % 600) * 1_000, Later::Ack(id, who));
        push(
            at + 720_000 + (i as u64 % 3600) * 1_000,
            Later::Resolve(id, who),
        );
    }
    Ok(())
}

fn time(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Timing> {
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        took.push(t.elapsed());
    }
    took.sort();
    Ok(Timing {
        p50: took[took.len() / 2],
        max: took[took.len() - 1],
    })
}

pub fn run_phase(s: Settings) -> anyhow::Result<ReportPhase> {
    let text = if s.without_rca {
        DOC.replace(r#"rca = "required""#, r#"rca = "off""#)
    } else {
        DOC.to_string()
    };
    let doc = OnCallDoc::from_toml(&text).map_err(|p| anyhow::anyhow!("{p}"))?;
    let mut log = Log {
        state: State::default(),
        index: 0,
    };
    log.apply(&Command::ApplyConfig {
        at: START,
        doc: Box::new(doc),
    });
    let rss_before = rss()?;
    let load = Instant::now();
    load_incidents(&mut log, s.incidents)?;
    let load = load.elapsed();
    let rss_after = rss()?;
    let end = START + DAYS * DAY;
    let now = end;
    let mut incidents_in_report = 0;
    let mut mttr_p50_s = None;
    let all = time(s.runs, || {
        let r = log
            .state
            .report(START, end, "", "", now)
            .map_err(|(f, w)| anyhow::anyhow!("{f}: {w}"))?;
        incidents_in_report = r.incidents;
        mttr_p50_s = r.mttr_p50_s;
        Ok(())
    })?;
    let under_lock = time(s.runs, || {
        log.state
            .report_input(START, end, "", "", now)
            .map(|_| ())
            .map_err(|(f, w)| anyhow::anyhow!("{f}: {w}"))
    })?;
    let team = time(s.runs, || {
        log.state
            .report(START, end, "web", "", now)
            .map(|_| ())
            .map_err(|(f, w)| anyhow::anyhow!("{f}: {w}"))
    })?;
    let rcas = log.state.rcas.len();
    let rollup_days = log.state.rollups.len();
    log.apply(&Command::Compact {
        at: end + 100 * DAY,
        resolved_before: end + 99 * DAY,
    });
    let all_compacted = time(s.runs, || {
        let r = log
            .state
            .report(START, end, "", "", now)
            .map_err(|(f, w)| anyhow::anyhow!("{f}: {w}"))?;
        anyhow::ensure!(
            r.incidents == incidents_in_report,
            "compaction changed the report: {} incidents, was {incidents_in_report}",
            r.incidents
        );
        Ok(())
    })?;
    Ok(ReportPhase {
        settings: s,
        load,
        rss_before,
        rss_after,
        rcas,
        rollup_days,
        all,
        under_lock,
        team,
        all_compacted,
        incidents_in_report,
        mttr_p50_s,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl ReportPhase {
    fn per_incident(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64
            / self.settings.incidents.max(1) as f64
    }

    pub fn print(&self) {
        println!();
        println!(
            "report: {} high-urgency incidents over {DAYS} days applied in {:.1} s (trigger, outcome, acknowledge, resolve), {} RCA records, roll-ups for {} days",
            self.settings.incidents,
            self.load.as_secs_f64(),
            self.rcas,
            self.rollup_days
        );
        println!(
            "memory: RSS {:.0} MiB before, {:.0} MiB after: {:.0} bytes ({:.2} KiB) per incident with its delivery, RCA record and roll-up figures",
            self.rss_before as f64 / 1048576.0,
            self.rss_after as f64 / 1048576.0,
            self.per_incident(),
            self.per_incident() / 1024.0
        );
        println!("report                              runs      p50       max");
        for (label, t) in [
            ("90 days, every team", &self.all),
            ("  of which under the read lock", &self.under_lock),
            ("90 days, one team", &self.team),
            ("90 days, every team, compacted", &self.all_compacted),
        ] {
            println!(
                "{label:<34} {:>5} {:>8.1} ms {:>8.1} ms",
                self.settings.runs,
                ms(t.p50),
                ms(t.max)
            );
        }
        println!(
            "(the report counted {} incidents, MTTR p50 {} s: the same before and after compaction)",
            self.incidents_in_report,
            self.mttr_p50_s.map_or("-".into(), |s| s.to_string())
        );
    }

    pub fn json(&self) -> Value {
        let t = |t: &Timing| json!({"p50_ms": ms(t.p50), "max_ms": ms(t.max)});
        json!({
            "incidents": self.settings.incidents,
            "rca_records": !self.settings.without_rca,
            "days": DAYS,
            "runs": self.settings.runs,
            "load_s": self.load.as_secs_f64(),
            "rcas": self.rcas,
            "rollup_days": self.rollup_days,
            "rss_before": self.rss_before,
            "rss_after": self.rss_after,
            "bytes_per_incident": self.per_incident(),
            "report_all": t(&self.all),
            "report_all_under_lock": t(&self.under_lock),
            "report_team": t(&self.team),
            "report_all_compacted": t(&self.all_compacted),
            "incidents_in_report": self.incidents_in_report,
        })
    }
}
