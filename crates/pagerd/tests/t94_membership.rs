//! Membership changes under load: a node added as a learner catches up and
//! is promoted, a voter is removed, and a dead voter is replaced by a new
//! node in its region, all while clients keep sending events. No event a
//! client saw accepted is lost, and every member ends with the same incidents.

mod common;

use common::{trigger, Cluster, QUIET_ONCALL};
use pager_proto::pager::v1 as pb;
use pagerd::node::ForwardRequest;
use std::collections::BTreeSet;
use std::time::Duration;

type Accepted = Vec<(String, u64)>;

/// A client sending events to node `id` until told to stop; it keeps what
/// was accepted and counts refusals (a node being removed may refuse).
fn writer(
    mut events: pb::events_client::EventsClient<tonic::transport::Channel>,
    name: &'static str,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(Accepted, u64)> {
    tokio::spawn(async move {
        let (mut accepted, mut refused) = (Vec::new(), 0);
        let mut i = 0;
        while !*stopped.borrow() {
            let key = format!("{name}-{i}");
            i += 1;
            match events.send(trigger("web-key-0001", &key)).await {
                Ok(r) => accepted.push((key, r.into_inner().commit_index)),
                Err(_) => refused += 1,
            }
        }
        (accepted, refused)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_under_load_lose_no_event() {
    // Nodes 1-3 voters; 4 and 5 spares.
    let mut c = Cluster::start_with_spares(3, 2).await;
    let leader = c.leader().await;
    c.apply(leader, QUIET_ONCALL).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    let writers = vec![
        writer(c.events(leader).await, "to-leader", stopped.clone()),
        writer(c.events(followers[0]).await, "to-follower", stopped.clone()),
    ];
    let node = c.node(leader).node.clone();
    let change = |req| {
        let node = node.clone();
        async move {
            node.change_membership(req)
                .await
                .expect("membership change")
        }
    };

    // 1. Add node 4 as a learner; it catches up, then becomes a voter.
    c.start_spare(4, None).await;
    let me4 = c.node(4).node.self_node();
    let v = change(ForwardRequest::AddNode {
        id: 4,
        node: me4,
        learner_only: true,
    })
    .await;
    assert!(v.learners.contains(&4) && !v.voters.contains(&4));
    c.applied(4, node.metrics().last_applied.unwrap().index)
        .await;
    let v = change(ForwardRequest::PromoteLearner { id: 4 }).await;
    assert_eq!(v.voters, vec![1, 2, 3, 4]);

    // 2. Remove a voter (not the one a writer uses), then stop it.
    let removed = followers[1];
    let v = change(ForwardRequest::RemoveNode { id: removed as u64 }).await;
    assert!(!v.voters.contains(&(removed as u64)));
    c.kill(removed).await;

    // 3. A voter dies; a new node in its region replaces it.
    let dead = 4;
    let region = c.node(dead).node.cfg.region.clone();
    c.kill(dead).await;
    let v = change(ForwardRequest::RemoveNode { id: dead as u64 }).await;
    assert!(!v.voters.contains(&(dead as u64)));
    c.start_spare(5, Some(&region)).await;
    let me5 = c.node(5).node.self_node();
    assert_eq!(me5.region, region);
    let v = change(ForwardRequest::AddNode {
        id: 5,
        node: me5,
        learner_only: false,
    })
    .await;
    let voters: BTreeSet<u64> = v.voters.into_iter().collect();
    assert_eq!(
        voters,
        BTreeSet::from([leader as u64, followers[0] as u64, 5])
    );

    // Some writes after the last change, then stop and count.
    c.applied(5, node.metrics().last_applied.unwrap().index + 20)
        .await;
    stop.send(true).unwrap();
    let mut accepted = Vec::new();
    for w in writers {
        let (a, refused) = w.await.unwrap();
        assert_eq!(refused, 0, "no write refused while members changed");
        accepted.extend(a);
    }
    let last = accepted.iter().map(|(_, i)| *i).max().unwrap();
    let members = [leader, followers[0], 5];
    for &id in &members {
        c.applied(id, last).await;
        let keys: BTreeSet<String> = c
            .node(id)
            .node
            .read(|s| s.incidents.values().map(|i| i.dedup_key.clone()).collect());
        for (key, _) in &accepted {
            assert!(keys.contains(key), "node {id} lost accepted event {key}");
        }
    }
    println!(
        "{} events accepted across the membership changes",
        accepted.len()
    );
    tokio::time::timeout(Duration::from_secs(10), c.leader())
        .await
        .expect("a leader");
    c.shutdown().await;
}
