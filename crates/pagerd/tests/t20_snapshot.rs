//! A node that missed more than the log keeps catches up by snapshot and
//! ends with the same state as the leader.

mod common;

use common::{trigger, Cluster};
use pager_proto::pager::v1 as pb;
use tracing::info;

const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "email", type = "email", address = "alice@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]
[escalation_policies.p]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_node_catches_up_by_snapshot() {
    let mut c = Cluster::start_with(3, 20).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let lagging = c.follower(leader);
    info!("--- stop node {lagging}, write well past several snapshots");
    c.kill(lagging).await;
    let mut events = c.events(leader).await;
    let mut last = 0;
    for i in 0..120 {
        let r = events
            .send(trigger("web-key-0001", &format!("k{i}")))
            .await
            .unwrap()
            .into_inner();
        last = r.commit_index;
    }
    let purged = c
        .node(leader)
        .node
        .metrics()
        .purged
        .map(|l| l.index)
        .unwrap_or(0);
    assert!(purged > 0, "the leader purged its log behind a snapshot");

    info!("--- restart it: it cannot catch up from the log alone");
    c.restart(lagging).await;
    c.applied(lagging, last).await;
    // Quiet: every page's outcome committed; then both sit at the same index.
    let leader_node = c.node(leader).node.clone();
    let mut rx = leader_node.applied.clone();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        rx.wait_for(|_| leader_node.read(|s| s.pending_deliveries().count() == 0)),
    )
    .await
    .expect("all pages settle")
    .expect("applied channel");
    let quiet = leader_node.read(|s| s.last_applied.index);
    c.applied(lagging, quiet).await;
    let snap = c
        .node(lagging)
        .node
        .metrics()
        .snapshot
        .map(|l| l.index)
        .unwrap_or(0);
    assert!(snap > 0, "the lagging node installed a snapshot");
    let bytes = |id: usize| {
        c.node(id).node.read(|s| {
            assert_eq!(s.last_applied.index, quiet);
            serde_json::to_vec(s).expect("state serializes")
        })
    };
    assert!(
        bytes(lagging) == bytes(leader),
        "replicas differ once quiet"
    );
    let list = c
        .incidents(lagging)
        .await
        .list(pb::ListIncidentsRequest {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.into_inner().incidents.len(), 120);
    c.shutdown().await;
}
