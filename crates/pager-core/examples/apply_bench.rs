//! Benchmark: pager-core apply throughput on one core and heap bytes per open
//! incident. A program that prints figures (and `--json`), not a test.
//!
//! cargo run --release -p pager-core --example apply_bench [-- --json] [--n 200000]

// A counting allocator: GlobalAlloc is an unsafe trait.
#![allow(unsafe_code)]

use pager_core::command::{Command, SendResult};
use pager_core::{Event, EventAction, LogMeta, OnCallDoc, State};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live heap bytes, to measure the state's footprint.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" }, { name = "email", type = "email", address = "alice@example.com" } ]
notification_rules.high = [ { after = "0", contact = "sms" }, { after = "5m", contact = "email" } ]
[escalation_policies.p]
repeat = 1
levels = [ { escalate_after = "15m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
runbook_url = "https://runbooks.example.com/db"
"#;

struct Log {
    state: State,
    index: u64,
}

impl Log {
    fn apply(&mut self, cmd: &Command) {
        self.index += 1;
        self.state.apply(
            LogMeta {
                index: self.index,
                term: 1,
            },
            cmd,
        );
    }
}

fn trigger(at: u64, i: u64) -> Command {
    Command::Ingest {
        at,
        event: Box::new(Event {
            routing_key: "db-key-0001".into(),
            action: EventAction::Trigger,
            dedup_key: format!("host-{i}-disk"),
            summary: format!("disk 95% full on db-{i}.prod.example.com"),
            source: format!("db-{i}"),
            ..Default::default()
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let n: u64 = args
        .iter()
        .position(|a| a == "--n")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let t0 = 1_700_000_000_000u64;
    let doc = OnCallDoc::from_toml(DOC).expect("bench doc parses");

    // 1. Triggers only: each opens an incident, plans an SMS, arms 2 timers.
    let mut log = Log {
        state: State::default(),
        index: 0,
    };
    log.apply(&Command::ApplyConfig {
        at: t0,
        doc: Box::new(doc.clone()),
    });
    let cmds: Vec<Command> = (0..n).map(|i| trigger(t0 + i, i)).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    for c in &cmds {
        log.apply(c);
    }
    let trig_secs = start.elapsed().as_secs_f64();
    drop(cmds);
    let bytes_per_open = (LIVE.load(Ordering::Relaxed) - before) as f64 / n as f64;
    let snapshot_bytes =
        serde_json::to_vec(&log.state).map(|v| v.len()).unwrap_or(0) as f64 / n as f64;
    // What a snapshot costs the apply path: the copy taken under the state lock.
    let start = Instant::now();
    let copy = log.state.clone();
    let clone_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(copy);
    let start = Instant::now();
    let encoded = serde_json::to_vec(&log.state).map(|v| v.len()).unwrap_or(0);
    let encode_ms = start.elapsed().as_secs_f64() * 1e3;

    // 2. A mix: trigger, SMS outcome, acknowledge (a realistic incident life).
    let mut log2 = Log {
        state: State::default(),
        index: 0,
    };
    log2.apply(&Command::ApplyConfig {
        at: t0,
        doc: Box::new(doc),
    });
    let mut mix = Vec::with_capacity(3 * n as usize);
    for i in 0..n {
        let at = t0 + i * 3;
        mix.push(trigger(at, i));
        mix.push(Command::Outcome {
            at: at + 1,
            delivery: i + 1,
            attempt: 1,
            result: SendResult::Sent {
                provider_id: format!("SM{i:032x}"),
                reconciled: false,
            },
        });
        mix.push(Command::Acknowledge {
            at: at + 2,
            incident: i + 1,
            by: "alice".into(),
        });
    }
    let start = Instant::now();
    for c in &mix {
        log2.apply(c);
    }
    let mix_secs = start.elapsed().as_secs_f64();

    let trig_rate = n as f64 / trig_secs;
    let mix_rate = mix.len() as f64 / mix_secs;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "commands": n,
                "trigger_commands_per_sec": trig_rate.round(),
                "trigger_outcome_ack_commands_per_sec": mix_rate.round(),
                "heap_bytes_per_open_incident": bytes_per_open.round(),
                "snapshot_bytes_per_open_incident": snapshot_bytes.round(),
                "state_clone_ms": clone_ms,
                "snapshot_encode_ms": encode_ms,
                "snapshot_bytes": encoded,
            })
        );
    } else {
        println!("pager-core apply, one core, {n} incidents");
        println!(
            "  triggers (open + plan SMS + 2 timers)   {:>12.0} commands/s",
            trig_rate
        );
        println!(
            "  trigger/outcome/ack mix                 {:>12.0} commands/s",
            mix_rate
        );
        println!(
            "  heap per open incident                  {:>12.0} bytes",
            bytes_per_open
        );
        println!(
            "  snapshot (JSON) per open incident       {:>12.0} bytes",
            snapshot_bytes
        );
        println!(
            "  state copy for a snapshot (apply waits) {:>12.1} ms",
            clone_ms
        );
        println!(
            "  snapshot JSON encode (off the apply path){:>11.1} ms ({encoded} bytes)",
            encode_ms
        );
    }
}
