//! Network faults through the link proxies, under traffic, on three nodes: a follower cut off
//! both ways (symmetric), every link out of the leader refused (asymmetric), the leader
//! isolated in a minority, then latency on every link. Every invariant is checked at the end
//! and the report line printed.
//!
//! Run: `cargo test -p chaos-tests --test t20_partitions -- --nocapture`

use chaos_tests::faults;
use chaos_tests::scenario::{Scenario, ScenarioOptions};
use std::time::Duration;
use tracing::info;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_lose_no_event_and_miss_no_page() {
    let mut s = Scenario::start("t20_partitions", ScenarioOptions::default())
        .await
        .expect("three nodes behind proxies");
    let wait = s.opts.wait;
    let traffic = s.traffic(20).expect("traffic");
    s.run_for(Duration::from_secs(2)).await;

    info!("--- symmetric: a follower alone");
    let p =
        faults::partition_follower(&mut s.cluster, &mut s.history, Duration::from_secs(3), wait)
            .await
            .expect("a follower cut off and healed");
    info!(?p, "healed");
    s.run_for(Duration::from_secs(1)).await;

    info!("--- asymmetric: the leader's outgoing links refused");
    let p =
        faults::cut_leader_outgoing(&mut s.cluster, &mut s.history, Duration::from_secs(3), wait)
            .await
            .expect("a new leader while the old one cannot send");
    assert_ne!(p.old.id, 0);
    s.run_for(Duration::from_secs(1)).await;

    info!("--- the leader isolated in a minority");
    let p = faults::isolate_leader(&mut s.cluster, &mut s.history, Duration::from_secs(3), wait)
        .await
        .expect("the majority elects a leader");
    assert!(p.failover.is_some());
    s.run_for(Duration::from_secs(1)).await;

    info!("--- 40 ms latency on every link");
    faults::slow_links(
        &mut s.cluster,
        &mut s.history,
        Duration::from_millis(40),
        Duration::from_secs(3),
        wait,
    )
    .await
    .expect("the cluster keeps a leader under latency");

    s.finish(traffic).await.expect("every invariant holds");
}
