//! A follower that was down while the others took a burst of large events
//! catches up by log replication once it is back.
//!
//! openraft 0.9 would read up to 300 entries for one `AppendEntries` (each entry
//! up to 256 commands, an event up to 512 KiB), and the RPC must be sent,
//! decoded and fsynced within one heartbeat interval, its timeout: the follower
//! timed out on every try and stayed behind until a snapshot moved the log past
//! it. The log reader now caps what one `AppendEntries` carries by bytes
//! (`pager_raft::log_store::MAX_APPEND_BYTES`). No snapshot is taken here (the
//! test cluster snapshots every 5,000 entries), so only replication can catch
//! the follower up.

mod common;

use common::{trigger, Cluster, QUIET_ONCALL};
use pager_proto::pager::v1 as pb;
use pagerd::config::RawConfig;
use std::time::Duration;

fn no_rate_limit(raw: &mut RawConfig) {
    raw.dispatch.events_per_second_per_key = 0.0;
}

/// Calls of `Events.SendBatch`, events per call, bytes of custom details per event: 12 MB.
const CALLS: usize = 30;
const EVENTS: usize = 100;
const DETAIL_BYTES: usize = 4_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_a_burst_of_large_events_catches_up() {
    let mut c = Cluster::start_tuned(3, no_rate_limit).await;
    let leader = c.leader().await;
    c.apply(leader, QUIET_ONCALL).await;
    let behind = c.follower(leader);
    c.kill(behind).await;

    let mut events = c.events(leader).await;
    let detail = "x".repeat(DETAIL_BYTES);
    for call in 0..CALLS {
        let batch = (0..EVENTS)
            .map(|i| {
                let mut e = trigger("web-key-0001", &format!("burst-{call}-{i}"));
                e.custom_details.insert("log".into(), detail.clone());
                e
            })
            .collect();
        let r = events
            .send_batch(pb::SendBatchRequest { events: batch })
            .await
            .expect("batch accepted by the leader and the other follower")
            .into_inner();
        use pb::send_batch_result::Outcome;
        assert!(
            r.results
                .iter()
                .all(|r| matches!(r.outcome, Some(Outcome::Ok(_)))),
            "every event of call {call} accepted"
        );
    }
    let last = c
        .node(leader)
        .node
        .metrics()
        .last_log_index
        .expect("the leader has a log");
    let snapshot = c.node(leader).node.metrics().snapshot;
    assert!(
        snapshot.is_none_or(|s| s.index < 3),
        "no snapshot covers the burst ({snapshot:?}): the follower must replay the log"
    );

    c.restart(behind).await;
    let mut m = c.node(behind).node.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(60),
        m.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= last)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "node {behind} did not catch up to index {last} within 60 s: at {:?}",
            c.node(behind).node.metrics().last_applied
        )
    })
    .expect("metrics");
    let incidents = c.node(behind).node.read(|s| s.incidents.len());
    assert_eq!(
        incidents,
        CALLS * EVENTS,
        "every event reached the follower"
    );
    c.shutdown().await;
}
