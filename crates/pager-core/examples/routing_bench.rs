//! Benchmark: routing one event through 50 rules, in ns per event on one core.
//! A program that prints figures (and `--json`), not a test.
//!
//! cargo run --release -p pager-core --example routing_bench [-- --json] [--n 500000]
//!
//! The 50 rules mix the ops as a real config might: per team, an `equals` on
//! `component`, a case-insensitive regex on `summary`, a `contains`, and a
//! `details.*` test. Two workloads: events no rule matches (every rule is
//! evaluated: the worst case), and a mix where events match rules spread
//! over the list (some with `continue = true`).

use pager_core::routing::{Condition, Op, Router, RoutingRule};
use pager_core::{Event, Severity, Urgency};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

const RULES: usize = 50;

fn rules() -> Vec<RoutingRule> {
    (0..RULES)
        .map(|i| {
            let team = format!("team{i}");
            let conditions = match i % 4 {
                0 => vec![
                    Condition::new("component", Op::Equals, Some(&format!("comp{i}"))),
                    Condition::new("severity", Op::NotEquals, Some("info")),
                ],
                1 => vec![Condition::new(
                    "summary",
                    Op::Matches,
                    Some(&format!(r"(?i)\bservice-{i}\b.*(timeout|down|lag \d+s)")),
                )],
                2 => vec![
                    Condition::new("source", Op::Contains, Some(&format!("host{i}."))),
                    Condition::new("details.region", Op::Exists, None),
                ],
                _ => vec![
                    Condition::new("details.team", Op::Equals, Some(&team)),
                    Condition::new("class", Op::Matches, Some(r"^(disk|cpu|memory)$")),
                ],
            };
            RoutingRule {
                name: format!("rule-{i}"),
                conditions,
                route_to: vec![team, "sre".into()],
                set_severity: (i % 5 == 0).then_some(Severity::Critical),
                set_urgency: (i % 7 == 0).then_some(Urgency::Low),
                runbook_url: Some(format!("https://runbooks.example.com/{i}")),
                continue_matching: i % 3 == 0,
                ..Default::default()
            }
        })
        .collect()
}

fn event(i: usize, matching: bool) -> Event {
    // `matching`: aim at rule `k`; otherwise look similar but match nothing.
    let k = i % RULES;
    let n = if matching { k } else { 1000 + k };
    let mut custom_details = BTreeMap::from([
        ("region".to_string(), "eu-west-1".to_string()),
        ("pod".to_string(), format!("api-{i}-7f9c")),
    ]);
    custom_details.insert("team".into(), format!("team{n}"));
    let (region_ok, source) = if matching {
        (true, format!("host{n}.prod.example.com"))
    } else {
        (false, format!("node{n}.prod.example.com"))
    };
    if !region_ok {
        custom_details.remove("region");
    }
    Event {
        routing_key: "int-key-0001".into(),
        dedup_key: format!("dedup-{i}"),
        summary: format!("Service-{n} request timeout on checkout path after 30s"),
        source,
        severity: Severity::Error,
        component: format!("comp{n}"),
        group: "prod".into(),
        class: if matching { "disk" } else { "network" }.into(),
        custom_details,
        ..Default::default()
    }
}

/// Mean ns per routed event over `n` events drawn from `events`.
fn measure(router: &Router, events: &[Event], n: usize) -> (f64, usize) {
    // warm the regex caches
    for e in events {
        black_box(router.route(e, Some("owner")));
    }
    let mut matched = 0;
    let start = Instant::now();
    for i in 0..n {
        let d = router.route(black_box(&events[i % events.len()]), Some("owner"));
        matched += d.matched.len();
        black_box(d);
    }
    (start.elapsed().as_nanos() as f64 / n as f64, matched)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let n: usize = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000)
        .max(1);

    let rules = rules();
    let start = Instant::now();
    let router = Router::new(&rules).expect("bench rules compile");
    let compile_us = start.elapsed().as_secs_f64() * 1e6;

    let misses: Vec<Event> = (0..1000).map(|i| event(i, false)).collect();
    let hits: Vec<Event> = (0..1000).map(|i| event(i, true)).collect();
    let (miss_ns, miss_matched) = measure(&router, &misses, n);
    let (hit_ns, hit_matched) = measure(&router, &hits, n);
    assert_eq!(miss_matched, 0, "the no-match workload matched a rule");
    let rules_per_hit = hit_matched as f64 / n as f64;

    if json {
        println!(
            "{}",
            serde_json::json!({
                "rules": RULES,
                "events": n,
                "compile_us": compile_us.round(),
                "no_match_ns_per_event": miss_ns.round(),
                "matching_ns_per_event": hit_ns.round(),
                "matching_rules_applied_per_event": (rules_per_hit * 100.0).round() / 100.0,
            })
        );
    } else {
        println!("pager-core routing, one core, {RULES} rules, {n} events");
        println!(
            "  compile {RULES} rules (Router::new)        {:>10.0} µs",
            compile_us
        );
        println!(
            "  no rule matches (all {RULES} evaluated)     {:>10.0} ns/event",
            miss_ns
        );
        println!(
            "  matching mix ({rules_per_hit:.2} rules applied/event) {:>10.0} ns/event",
            hit_ns
        );
    }
}
