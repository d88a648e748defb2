//! Retention: the leader forgets incidents resolved longer ago than
//! `retention.keep_resolved_secs`, on every replica; open incidents stay.

mod common;

use common::{trigger, Cluster, QUIET_ONCALL};
use pager_proto::pager::v1 as pb;
use pagerd::config::RawConfig;
use std::time::Duration;

fn short_retention(raw: &mut RawConfig) {
    raw.retention.keep_resolved_secs = 1;
    raw.retention.check_every_secs = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resolved_incidents_are_forgotten_after_the_retention() {
    let c = Cluster::start_tuned(3, short_retention).await;
    let leader = c.leader().await;
    c.apply(leader, QUIET_ONCALL).await;
    let mut events = c.events(leader).await;
    let done = events
        .send(trigger("web-key-0001", "done"))
        .await
        .unwrap()
        .into_inner()
        .incident_id;
    let open = events
        .send(trigger("web-key-0001", "open"))
        .await
        .unwrap()
        .into_inner()
        .incident_id;
    c.incidents(leader)
        .await
        .resolve(pb::IncidentActionRequest {
            id: done,
            by: "alice".into(),
        })
        .await
        .expect("resolve");

    for id in 1..=3 {
        let node = c.node(id).node.clone();
        let mut applied = node.applied.clone();
        tokio::time::timeout(
            Duration::from_secs(15),
            applied.wait_for(|_| node.read(|s| !s.incidents.contains_key(&done))),
        )
        .await
        .unwrap_or_else(|_| panic!("node {id} forgets the resolved incident"))
        .expect("applied channel");
        assert!(
            node.read(|s| s.incidents.contains_key(&open)),
            "node {id} keeps the open incident"
        );
    }
    // Gone from the API too.
    let err = c
        .incidents(leader)
        .await
        .get(pb::GetIncidentRequest {
            id: done,
            ..Default::default()
        })
        .await
        .expect_err("forgotten");
    assert_eq!(err.code(), tonic::Code::NotFound);
    c.shutdown().await;
}
