//! Benchmark: `Schedule::on_call_at` on a schedule of 5 layers and 50
//! overrides in America/New_York, at random instants over two years (DST
//! changes included). A program that prints figures (and `--json`), not a
//! test. The target is one query in at most 10 µs.
//!
//! cargo run --release -p pager-core --example schedule_bench [-- --json] [--n 100000]

use jiff::tz::TimeZoneDatabase;
use pager_core::schedule::Schedule;
use pager_core::Millis;
use std::hint::black_box;
use std::time::Instant;

const SCHEDULE: &str = r#"
time_zone = "America/New_York"

[[layers]]
name = "volunteers"
start = "2025-12-01T08:00:00"
rotation = "daily"
users = ["v1", "v2", "v3", "v4", "v5"]

[[layers]]
name = "nights"
start = "2025-12-01T20:00:00"
rotation = { days = 2 }
users = ["n1", "n2", "n3"]
restrictions = [ { from = "20:00", to = "08:00" } ]

[[layers]]
name = "weekends"
start = "2025-12-06T00:00:00"
rotation = "weekly"
users = ["w1", "w2"]
restrictions = [ { days = ["sat", "sun"], from = "00:00", to = "00:00" } ]

[[layers]]
name = "business-hours"
start = "2025-12-01T08:00:00"
rotation = "weekly"
handoff = "09:00"
users = ["alice", "bob", "carol", "dave"]
shadows = ["trainee"]
restrictions = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00" } ]

[[layers]]
name = "release-duty"
start = "2025-12-01T00:00:00"
rotation = { custom = "36h" }
users = ["r1", "r2"]
restrictions = [ { days = ["tue", "thu"], from = "14:00", to = "16:30" } ]
"#;

/// splitmix64: a fixed sequence, so every run measures the same instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let n: usize = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    let mut schedule: Schedule = toml::from_str(SCHEDULE).expect("bench schedule parses");
    // 2026-01-01T00:00Z and two years on.
    let from: Millis = 1_767_225_600_000;
    let span: Millis = 2 * 365 * 86_400_000;
    let mut rng = Rng(0x5eed);
    let users = ["v1", "alice", "bob", "n2", "w1", "erin", "frank"];
    for i in 0..50u64 {
        let start = from + rng.next() % span / 60_000 * 60_000;
        let hours = 1 + rng.next() % 72;
        let replaces = (i % 2 == 0).then(|| users[(rng.next() % 5) as usize].to_string());
        schedule.overrides.push(pager_core::schedule::Override {
            user: users[5 + (i % 2) as usize].into(),
            replaces,
            start,
            end: start + hours * 3_600_000,
        });
    }
    let problems = schedule.validate("bench", &|_| true);
    assert!(problems.is_empty(), "{problems:?}");

    let instants: Vec<Millis> = (0..n).map(|_| from + rng.next() % span).collect();

    // Warm up, then the mean over the whole batch (no timer per query).
    for &t in instants.iter().take(1000) {
        black_box(schedule.on_call_at(t));
    }
    let start = Instant::now();
    let mut answered = 0usize;
    for &t in &instants {
        answered += black_box(schedule.on_call_at(black_box(t))).users.len();
    }
    let mean_ns = start.elapsed().as_nanos() as f64 / n as f64;

    // Per query, for the tail (includes ~20 ns of timer overhead).
    let mut each: Vec<u64> = instants
        .iter()
        .map(|&t| {
            let s = Instant::now();
            black_box(schedule.on_call_at(black_box(t)));
            s.elapsed().as_nanos() as u64
        })
        .collect();
    // Split by distance to a DST change (conversions within 3 days of one
    // go through jiff instead of the clock's fast path).
    let tz = TimeZoneDatabase::bundled()
        .get("America/New_York")
        .expect("bundled");
    let near = |t: Millis| {
        let ts = jiff::Timestamp::from_millisecond(t as i64).expect("in range");
        let d = |tr: Option<jiff::tz::TimeZoneTransition>| {
            tr.map_or(u64::MAX, |tr| {
                tr.timestamp().as_millisecond().abs_diff(t as i64)
            })
        };
        d(tz.preceding(ts).next()).min(d(tz.following(ts).next())) < 4 * 86_400_000
    };
    let (mut near_ns, mut near_n, mut far_ns, mut far_n) = (0u64, 0u64, 0u64, 0u64);
    for (&t, &ns) in instants.iter().zip(&each) {
        if near(t) {
            near_ns += ns;
            near_n += 1;
        } else {
            far_ns += ns;
            far_n += 1;
        }
    }
    let near_mean = near_ns as f64 / near_n.max(1) as f64;
    let far_mean = far_ns as f64 / far_n.max(1) as f64;
    each.sort_unstable();
    let pct = |p: f64| each[((each.len() - 1) as f64 * p) as usize];
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));

    // The alternative to resolving the zone once: a lookup per query.
    let lookups = 100_000;
    let start = Instant::now();
    for _ in 0..lookups {
        black_box(
            TimeZoneDatabase::bundled()
                .get(black_box("America/New_York"))
                .ok(),
        );
    }
    let lookup_ns = start.elapsed().as_nanos() as f64 / lookups as f64;

    // The 14-day look-ahead for gaps, and a week of shifts.
    let runs = 200;
    let start = Instant::now();
    let mut gaps = 0;
    for i in 0..runs {
        let t = from + i * 3 * 86_400_000;
        gaps += black_box(schedule.gaps(t, t + 14 * 86_400_000)).len();
    }
    let gaps_us = start.elapsed().as_secs_f64() * 1e6 / runs as f64;
    let shifts = schedule.shifts(from, from + 7 * 86_400_000).len();

    if json {
        println!(
            "{}",
            serde_json::json!({
                "queries": n,
                "layers": schedule.layers.len(),
                "overrides": schedule.overrides.len(),
                "on_call_at_mean_ns": mean_ns.round(),
                "on_call_at_p50_ns": p50,
                "on_call_at_p99_ns": p99,
                "on_call_at_max_ns": max,
                "on_call_at_mean_within_4d_of_dst_change_ns": near_mean.round(),
                "on_call_at_mean_elsewhere_ns": far_mean.round(),
                "zone_lookup_per_query_ns": lookup_ns.round(),
                "gaps_14d_us": gaps_us.round(),
                "shifts_in_a_week": shifts,
                "answered_fraction": answered as f64 / n as f64,
                "gaps_found": gaps,
            })
        );
    } else {
        println!(
            "schedule on_call_at: {} layers, {} overrides, {n} random instants over 2026-2027 (America/New_York)",
            schedule.layers.len(),
            schedule.overrides.len()
        );
        println!("  mean                                {mean_ns:>10.0} ns/query");
        println!("  p50 / p99 / max (timed each)        {p50:>10} / {p99} / {max} ns");
        println!("  mean within 4 days of a DST change  {near_mean:>10.0} ns ({near_n} queries)");
        println!("  mean elsewhere                      {far_mean:>10.0} ns ({far_n} queries)");
        println!(
            "  bundled-db zone lookup, if per call {lookup_ns:>10.0} ns (avoided: resolved once)"
        );
        println!("  gaps() over 14 days                 {gaps_us:>10.1} µs");
        println!("  shifts in the first week            {shifts:>10}");
    }
}
