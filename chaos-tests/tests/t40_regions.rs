//! Whole regions and the whole cluster, on five nodes across three regions (2/2/1, as
//! `deploy/` lays them out): under traffic, a two-node region is SIGKILLed (with the leader
//! when it is there) and the remaining three carry on; the region comes back and catches up;
//! then every node is SIGKILLed at once and restarted after two seconds. Pages due while the
//! cluster was down go out once it is back (an outage, excused up to its end). Every
//! invariant is checked at the end and the report line printed.
//!
//! Run: `cargo test -p chaos-tests --test t40_regions -- --nocapture`

use chaos_tests::faults;
use chaos_tests::scenario::{Scenario, ScenarioOptions};
use std::time::Duration;
use tracing::info;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_and_then_every_node_die_and_nothing_is_lost() {
    let regions = ["us-east", "us-east", "eu-west", "eu-west", "ap-south"];
    let mut s = Scenario::start(
        "t40_regions",
        ScenarioOptions {
            nodes: 5,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            ..ScenarioOptions::default()
        },
    )
    .await
    .expect("five nodes in three regions");
    let wait = s.opts.wait;
    let traffic = s.traffic(40).expect("traffic");
    s.run_for(Duration::from_secs(2)).await;

    let leader = s.cluster.wait_for_leader(wait).await.expect("a leader");
    let home = s.cluster.region_of(leader.id);
    // A two-node region: the leader's, unless it is alone in its region.
    let region = if s.cluster.nodes_in(&home).len() == 2 {
        home
    } else {
        "us-east".to_string()
    };
    info!(leader = leader.id, region, "--- SIGKILL a whole region");
    let dead = faults::kill_region(&mut s.cluster, &mut s.history, &region, wait)
        .await
        .expect("the other three elect a leader");
    assert_eq!(dead.len(), 2);
    let survivors = s.cluster.live();
    assert_eq!(survivors.len(), 3, "a quorum of five is left");
    s.run_for(Duration::from_secs(3)).await;

    info!(?dead, "--- the region comes back");
    for id in dead {
        faults::restart(&mut s.cluster, &mut s.history, id, wait)
            .await
            .expect("the killed node restarts and catches up");
    }
    s.run_for(Duration::from_secs(1)).await;

    info!("--- SIGKILL every node, restart them all after 2 s");
    let back =
        faults::kill_all_and_restart(&mut s.cluster, &mut s.history, Duration::from_secs(2), wait)
            .await
            .expect("the cluster comes back");
    info!(leader = back.id, "--- back");
    s.run_for(Duration::from_secs(2)).await;

    s.finish(traffic).await.expect("every invariant holds");
}
