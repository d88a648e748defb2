//! Who stands when the leader dies (`pager_raft::elections`): the surviving voter
//! with the longest log starts the election early, and among equal logs the
//! lowest id; the other waits. The election timeouts here are 1000–1200 ms, so
//! openraft's own timer fires no earlier than 2.2 s after the last heartbeat
//! (lease + minimum timeout), while the early start comes 1.3 s after it
//! (lease + two heartbeats): the node that wins is the one `elections` chose.

mod common;

use common::{trigger, Cluster, QUIET_ONCALL};
use pagerd::config::RawConfig;
use std::sync::atomic::Ordering;

fn wide_timeouts(raw: &mut RawConfig) {
    raw.raft.heartbeat_interval_ms = 50;
    raw.raft.election_timeout_min_ms = 1_000;
    raw.raft.election_timeout_max_ms = 1_200;
}

fn started(c: &Cluster, id: usize) -> u64 {
    c.node(id)
        .node
        .health
        .elections_started
        .load(Ordering::Relaxed)
}

fn last_log(c: &Cluster, id: usize) -> Option<u64> {
    c.node(id).node.metrics().last_log_index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn equal_logs_the_lowest_surviving_id_stands_first() {
    let mut c = Cluster::start_tuned(3, wide_timeouts).await;
    let leader = c.leader().await;
    c.apply(leader, QUIET_ONCALL).await;
    let survivors: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    let last = last_log(&c, leader).expect("the leader has a log");
    let term = c.node(leader).node.metrics().current_term;
    for &s in &survivors {
        c.applied(s, last).await;
        // What a voter tells the others: its last entry, of the leader's term.
        let told = {
            let n = &c.node(s).node;
            pager_raft::elections::ElectionState::of(&n.raft, &n.log).await
        };
        assert_eq!(
            (told.last_log_term, told.last_log_index),
            (term, Some(last))
        );
    }
    c.kill(leader).await;
    // Both survivors hold the same log (read before any election can start,
    // 1.3 s after the last heartbeat).
    assert_eq!(last_log(&c, survivors[0]), last_log(&c, survivors[1]));
    let new = c.leader().await;
    assert_eq!(new, survivors[0], "the lower id of equal logs leads");
    assert_eq!(
        started(&c, survivors[0]),
        1,
        "it started the election early"
    );
    assert_eq!(started(&c, survivors[1]), 0, "the other waited");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_survivor_with_the_longest_log_leads() {
    let mut c = Cluster::start_tuned(3, wide_timeouts).await;
    let leader = c.leader().await;
    c.apply(leader, QUIET_ONCALL).await;
    let survivors: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    // The lower-id survivor misses 20 writes, comes back and the leader dies at
    // once: the leader backs off replicating to a peer that was unreachable
    // (about 500 ms in openraft 0.9), so it is usually still behind, and then
    // the other survivor must lead although its id is higher.
    let (behind, ahead) = (survivors[0], survivors[1]);
    c.kill(behind).await;
    let mut events = c.events(leader).await;
    for i in 0..20 {
        events
            .send(trigger("web-key-0001", &format!("longest-{i}")))
            .await
            .expect("accepted by the leader and the other follower");
    }
    c.restart(behind).await;
    c.kill(leader).await;
    // Before any election can start (1.3 s): the logs the survivors hold.
    let (b, a) = (last_log(&c, behind), last_log(&c, ahead));
    let expected = if b > a {
        behind
    } else if a > b {
        ahead
    } else {
        behind.min(ahead)
    };
    let new = c.leader().await;
    assert_eq!(
        new, expected,
        "logs at the leader's death: node {behind} {b:?}, node {ahead} {a:?}"
    );
    assert_eq!(
        started(&c, new),
        1,
        "the new leader started the election early"
    );
    assert_eq!(
        started(&c, behind) + started(&c, ahead),
        1,
        "the other survivor waited"
    );
    eprintln!(
        "logs at the leader's death: node {behind} {b:?}, node {ahead} {a:?}; node {new} leads"
    );
    c.shutdown().await;
}
