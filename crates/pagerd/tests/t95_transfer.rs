//! Leadership transfer: `Cluster/TransferLeader` moves leadership to the voter
//! asked for (three and five voters), writes in flight during the transfer are
//! neither lost nor refused, and a leader that is told to stop hands over
//! first.

mod common;

use common::{trigger, Cluster, QUIET_ONCALL};
use pager_proto::pager::v1 as pb;
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Code;

async fn cluster_client(
    c: &Cluster,
    id: usize,
) -> pb::cluster_client::ClusterClient<tonic::transport::Channel> {
    pb::cluster_client::ClusterClient::new(c.channel(id).await)
}

/// `Cluster/TransferLeader` asked on node `via`; it must succeed.
async fn transfer(c: &Cluster, via: usize, to: u64) -> pb::TransferLeaderResponse {
    cluster_client(c, via)
        .await
        .transfer_leader(pb::TransferLeaderRequest { node_id: to })
        .await
        .expect("transfer succeeds")
        .into_inner()
}

/// Wait until every running node sees `leader` lead.
async fn all_follow(c: &Cluster, leader: u64) {
    for r in c.nodes.iter().flatten() {
        let mut m = r.node.raft.metrics();
        tokio::time::timeout(
            Duration::from_secs(10),
            m.wait_for(|m| m.current_leader == Some(leader)),
        )
        .await
        .expect("every node follows the new leader")
        .expect("metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_moves_leadership_and_loses_no_write() {
    let c = Cluster::start(3).await;
    let old = c.leader().await;
    c.apply(old, QUIET_ONCALL).await;
    let old_term = c.node(old).node.metrics().current_term;
    let target = c.follower(old);
    let third = (1..=3).find(|&i| i != old && i != target).unwrap();

    // Writers on every node keep sending through the transfer.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut writers = tokio::task::JoinSet::new();
    for id in 1..=3 {
        let mut events = c.events(id).await;
        let stopped = stopped.clone();
        writers.spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            let mut i = 0;
            while !*stopped.borrow() {
                let key = format!("n{id}-{i}");
                i += 1;
                match events.send(trigger("web-key-0001", &key)).await {
                    Ok(r) => accepted.push((key, r.into_inner().commit_index)),
                    Err(_) => refused += 1,
                }
            }
            (accepted, refused)
        });
    }
    // Let every writer get some writes in before the transfer.
    c.applied(
        old,
        c.node(old).node.metrics().last_applied.unwrap().index + 30,
    )
    .await;

    // Asked on the node that is neither leader nor target: it forwards.
    let r = transfer(&c, third, target as u64).await;
    assert_eq!(r.leader_id, target as u64);
    assert!(r.term > old_term, "a new term: {} > {old_term}", r.term);
    println!(
        "transfer took {} ms (term {} -> {})",
        r.took_ms, old_term, r.term
    );
    all_follow(&c, target as u64).await;

    // Writes after the transfer still go through, from the old leader too.
    c.applied(
        target,
        c.node(target).node.metrics().last_applied.unwrap().index + 30,
    )
    .await;
    stop.send(true).unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    while let Some(done) = writers.join_next().await {
        let (a, r) = done.unwrap();
        accepted.extend(a);
        refused += r;
    }
    assert_eq!(refused, 0, "no write was refused during the transfer");
    let last = accepted.iter().map(|(_, i)| *i).max().unwrap();
    for id in 1..=3 {
        c.applied(id, last).await;
        let keys: BTreeSet<String> = c.node(id).node.read(|s| {
            s.incidents
                .values()
                .map(|inc| inc.dedup_key.clone())
                .collect()
        });
        for (key, _) in &accepted {
            assert!(keys.contains(key), "node {id} lost accepted event {key}");
        }
    }
    println!("{} writes accepted across the transfer", accepted.len());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_voters_transfer_to_the_voter_asked_for() {
    let c = Cluster::start(5).await;
    let old = c.leader().await;
    c.apply(old, QUIET_ONCALL).await;
    for target in (1..=5).filter(|&i| i != old).take(2) {
        let r = transfer(&c, old, target as u64).await;
        assert_eq!(r.leader_id, target as u64);
        println!("five voters: transfer to {target} took {} ms", r.took_ms);
        all_follow(&c, target as u64).await;
        let sent = c
            .events(old)
            .await
            .send(trigger("web-key-0001", &format!("after-{target}")))
            .await
            .expect("writes go on after the transfer");
        assert!(sent.into_inner().incident_id > 0);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfer_checks_its_target() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let mut cluster = cluster_client(&c, c.follower(leader)).await;
    let err = cluster
        .transfer_leader(pb::TransferLeaderRequest { node_id: 42 })
        .await
        .expect_err("not a voter");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("node_id"), "{}", err.message());

    // To the leader itself: nothing to do.
    let r = cluster
        .transfer_leader(pb::TransferLeaderRequest {
            node_id: leader as u64,
        })
        .await
        .expect("already leads")
        .into_inner();
    assert_eq!(r.leader_id, leader as u64);

    // 0: the leader picks a successor.
    let r = cluster
        .transfer_leader(pb::TransferLeaderRequest { node_id: 0 })
        .await
        .expect("picked transfer succeeds")
        .into_inner();
    assert_ne!(r.leader_id, leader as u64);
    all_follow(&c, r.leader_id).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_leader_hands_over_first() {
    let mut c = Cluster::start(3).await;
    let old = c.leader().await;
    c.apply(old, QUIET_ONCALL).await;
    let new = c
        .node(old)
        .step_down()
        .await
        .expect("the leader hands over") as usize;
    assert_ne!(new, old);
    // The new leader leads before the old one stops: no election timeout
    // stands between the stop and the next page.
    assert_eq!(
        c.node(new).node.metrics().state,
        openraft::ServerState::Leader
    );
    c.kill(old).await;
    let r = c
        .events(new)
        .await
        .send(trigger("web-key-0001", "after-stop"))
        .await
        .expect("the new leader takes writes")
        .into_inner();
    assert!(r.incident_id > 0);
    // A follower that is not leading has nothing to hand over.
    let follower = (1..=3).find(|&i| i != old && i != new).unwrap();
    assert_eq!(c.node(follower).step_down().await, None);
    c.shutdown().await;
}

fn prefer_ap_south(raw: &mut pagerd::config::RawConfig) {
    raw.cluster.preferred_regions = vec!["ap-south".into()];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_to_a_preferred_region() {
    // Node 3 is the one in ap-south.
    let c = Cluster::start_tuned(3, prefer_ap_south).await;
    c.leader().await;
    // A leader elsewhere hands over once it has led for a check interval
    // (5 s), checked every interval: within three intervals.
    let mut m = c.node(3).node.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(30),
        m.wait_for(|m| m.state == openraft::ServerState::Leader),
    )
    .await
    .expect("node 3 (ap-south) leads within 30 s")
    .expect("metrics");
    all_follow(&c, 3).await;
    c.shutdown().await;
}
