//! Planned and unplanned restarts under traffic, on three nodes: a rolling restart with
//! SIGTERM (each node in turn; the leader hands leadership over before it exits, so the
//! handover is measured and no election timeout is waited out), then a follower loses its
//! data: it is removed from the membership, wiped, started empty (it must not come back as
//! the voter it was), added back as a learner that catches up by snapshot (the leader
//! snapshots and purges its log first), and promoted. Every invariant is checked at the end
//! and the report line printed.
//!
//! Run: `cargo test -p chaos-tests --test t50_restarts -- --nocapture`

use chaos_tests::faults;
use chaos_tests::scenario::{Scenario, ScenarioOptions};
use std::time::Duration;
use tracing::info;

/// Lines the wiped node logs when it installs a snapshot sent by the leader.
fn installs(log: &str) -> usize {
    log.matches("snapshot installed").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_and_a_wiped_node_rejoining_lose_nothing() {
    let mut s = Scenario::start(
        "t50_restarts",
        ScenarioOptions {
            snapshot_every_entries: Some(100),
            ..ScenarioOptions::default()
        },
    )
    .await
    .expect("three nodes behind proxies");
    let wait = s.opts.wait;
    let traffic = s.traffic(50).expect("traffic");
    s.run_for(Duration::from_secs(2)).await;

    info!("--- rolling restart: SIGTERM each node in turn");
    let handovers = faults::rolling_restart(&mut s.cluster, &mut s.history, wait)
        .await
        .expect("every node stops cleanly and comes back");
    info!(?handovers, "--- rolled");
    assert!(!handovers.is_empty(), "no node led when it got SIGTERM");
    // A planned stop hands over (pagerd logs it) rather than leaving the others to wait out
    // an election timeout. (How long it took is reported, not asserted.)
    let transferred: usize = s
        .cluster
        .ids()
        .into_iter()
        .map(|id| {
            let log = s.cluster.log(id).expect("log");
            log.matches("leadership transferred").count()
        })
        .sum();
    assert_eq!(
        transferred,
        handovers.len(),
        "each leader that got SIGTERM handed leadership over"
    );
    s.run_for(Duration::from_secs(1)).await;

    let leader = s.cluster.wait_for_leader(wait).await.expect("a leader");
    let victim = s.cluster.follower_of(leader.id).expect("a follower");
    let before = installs(&s.cluster.log(victim).expect("log"));
    info!(victim, "--- wipe a follower and add it back as a learner");
    faults::wipe_and_rejoin(&mut s.cluster, &mut s.history, victim, wait)
        .await
        .expect("the wiped node rejoins by snapshot and is promoted");
    let after = installs(&s.cluster.log(victim).expect("log"));
    assert!(
        after > before,
        "node {victim} caught up without installing a snapshot"
    );
    s.run_for(Duration::from_secs(2)).await;

    s.finish(traffic).await.expect("every invariant holds");
}
