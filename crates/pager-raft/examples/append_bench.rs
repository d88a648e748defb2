//! The log store's write path alone, without Raft or the network: how many appends a second one
//! proposer gets when each waits for its fsync (as openraft 0.9's leader does: `RaftCore` awaits
//! every `append` until its `LogFlushed` callback), and when `--batch N` entries share an append.
//! One append per wait is the leader's ceiling in entries/s; see `pager_raft::batch`.
//!
//! ```text
//! cargo run --release -p pager-raft --example append_bench -- [--n 3000] [--batch 1] [--dir DIR]
//! ```
//!
//! The directory defaults to a temp dir under `$TMPDIR` (put it on the disk you measure).

use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{EntryPayload, RaftLogReader};
use pager_core::event::{Event, EventAction, Severity};
use pager_core::Command;
use pager_raft::{Entry, LogId};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn entry(index: u64) -> Entry {
    let event = Event {
        routing_key: "bench-bulk-0001".into(),
        action: EventAction::Trigger,
        dedup_key: format!("many-{index}"),
        summary: "bench event".into(),
        source: String::new(),
        severity: Severity::Critical,
        component: String::new(),
        group: String::new(),
        class: String::new(),
        custom_details: Default::default(),
    };
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(
            Command::Ingest {
                at: 1_700_000_000_000 + index,
                event: Box::new(event),
            }
            .into(),
        ),
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = arg("--n").map_or(3000, |v| v.parse().unwrap());
    let batch: u64 = arg("--batch").map_or(1, |v| v.parse().unwrap());
    let tmp = match arg("--dir") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let (mut log, _sm) = pager_raft::open(tmp.path()).await.unwrap();

    let mut waits = Vec::new();
    let started = Instant::now();
    let mut index = 1;
    while index <= n {
        let entries: Vec<Entry> = (index..index + batch).map(entry).collect();
        let t = Instant::now();
        log.blocking_append(entries).await.unwrap();
        waits.push(t.elapsed());
        index += batch;
    }
    let took = started.elapsed();
    let t = Instant::now();
    let mut reader = log.get_log_reader().await;
    let read = reader.try_get_log_entries(1..n + 1).await.unwrap();
    let read_took = t.elapsed();
    assert_eq!(read.len() as u64, n);
    println!(
        "appends={} batch={batch} entries/s={:.0} appends/s={:.0} wait p50={:?} p99={:?} max={:?}; read {n} in {:?}",
        waits.len(),
        n as f64 / took.as_secs_f64(),
        waits.len() as f64 / took.as_secs_f64(),
        pct(&mut waits, 0.5),
        pct(&mut waits, 0.99),
        pct(&mut waits, 1.0),
        read_took,
    );
}
