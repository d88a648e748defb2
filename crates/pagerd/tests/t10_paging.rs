//! The foundation slice in process: three nodes, a trigger pages by SMS and
//! email, level 2 fires after its delay even when the leader dies, acknowledge
//! on a follower stops paging, and a restarted node catches up.

mod common;

use common::{trigger, Cluster};
use pager_proto::pager::v1 as pb;
use std::time::{Duration, UNIX_EPOCH};
use tracing::info;

const ONCALL: &str = r#"
[users.alice]
contact_methods = [
  { name = "sms", type = "sms", address = "+15550100001" },
  { name = "email", type = "email", address = "alice@example.com" },
]
notification_rules.high = [ { after = "0", contact = "sms" }, { after = "0", contact = "email" } ]
[users.bob]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100002" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[escalation_policies.db]
repeat = 1
levels = [
  { escalate_after = "3s", targets = [ { user = "alice" } ] },
  { escalate_after = "3s", targets = [ { user = "bob" } ] },
]
[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
runbook_url = "https://runbooks.example.com/db"
"#;

fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_escalates_across_failover_and_stops_on_ack() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = c.follower(leader);
    c.apply(follower, ONCALL).await;

    info!("--- trigger through a follower");
    let sent = c
        .events(follower)
        .await
        .send(trigger("db-key-0001", "disk-full-db1"))
        .await
        .unwrap()
        .into_inner();
    assert!(sent.incident_id > 0 && !sent.folded && sent.commit_index > 0);
    let sms = c
        .twilio
        .wait_for_messages(1, Duration::from_secs(5))
        .await
        .expect("level-1 SMS");
    assert_eq!(sms[0].to, "+15550100001");
    assert!(
        sms[0].body.contains("disk full on db1") && sms[0].body.contains("runbooks.example.com/db")
    );
    let mail = c
        .smtp
        .wait_for_mails(1, Duration::from_secs(5))
        .await
        .expect("level-1 email");
    assert_eq!(mail[0].to, vec!["alice@example.com".to_string()]);

    info!("--- the same dedup key folds in and pages nobody new");
    let again = c
        .events(leader)
        .await
        .send(trigger("db-key-0001", "disk-full-db1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.incident_id, again.folded), (sent.incident_id, true));
    let inc = c
        .incidents(leader)
        .await
        .get(pb::GetIncidentRequest {
            id: sent.incident_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((inc.deliveries.len(), inc.folded_events), (2, 1));

    info!("--- kill the leader before the level-2 deadline");
    let created = inc.created_at_ms;
    let leader_before = c.leader().await;
    c.kill(leader_before).await;
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader_before);
    let sms = c
        .twilio
        .wait_for_messages(2, Duration::from_secs(10))
        .await
        .expect("level-2 SMS from the new leader");
    assert_eq!(sms[1].to, "+15550100002");
    let late = ms(sms[1].received_at).saturating_sub(created + 3_000);
    info!(late_ms = late, "level 2 paged after failover");
    assert!(
        late < 3_000,
        "level 2 late by {late} ms, more than an election"
    );

    info!("--- acknowledge on a follower stops paging");
    let f = c.follower(new_leader);
    let acked = c
        .incidents(f)
        .await
        .acknowledge(pb::IncidentActionRequest {
            id: sent.incident_id,
            by: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let inc = acked.incident.unwrap();
    assert_eq!(inc.status, pb::IncidentStatus::Acknowledged as i32);
    assert_eq!(inc.acknowledged_by, "bob");
    c.applied(new_leader, acked.commit_index).await;
    let leader_node = &c.node(new_leader).node;
    assert_eq!(
        leader_node.read(|s| s.next_deadline()),
        None,
        "no timer left to page anyone"
    );
    assert_eq!(leader_node.read(|s| s.pending_deliveries().count()), 0);

    info!("--- resolve event with the same dedup key");
    let mut ev = trigger("db-key-0001", "disk-full-db1");
    ev.action = pb::EventAction::Resolve as i32;
    let r = c.events(f).await.send(ev).await.unwrap().into_inner();
    assert_eq!(r.incident_id, sent.incident_id);

    info!("--- restart the killed node: it catches up and serves the same state");
    c.restart(leader_before).await;
    c.applied(leader_before, r.commit_index).await;
    c.applied(new_leader, r.commit_index).await;
    let (a, b) = (&c.node(leader_before).node, &c.node(new_leader).node);
    let inc_a = a.read(|s| s.incidents.get(&sent.incident_id).cloned());
    let inc_b = b.read(|s| s.incidents.get(&sent.incident_id).cloned());
    assert_eq!(inc_a, inc_b);
    assert_eq!(inc_a.unwrap().status, pager_core::IncidentStatus::Resolved);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_events_get_field_errors_and_apply_nothing() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let mut ev = c.events(c.follower(leader)).await;
    let cases: Vec<(pb::SendEventRequest, tonic::Code, &str)> = vec![
        (
            pb::SendEventRequest {
                routing_key: "".into(),
                ..trigger("x", "a")
            },
            tonic::Code::InvalidArgument,
            "routing_key",
        ),
        (
            trigger("no-such-key-1", "a"),
            tonic::Code::NotFound,
            "routing_key",
        ),
        (
            pb::SendEventRequest {
                summary: "".into(),
                ..trigger("db-key-0001", "a")
            },
            tonic::Code::InvalidArgument,
            "summary",
        ),
        (
            pb::SendEventRequest {
                severity: "sev1".into(),
                ..trigger("db-key-0001", "a")
            },
            tonic::Code::InvalidArgument,
            "severity",
        ),
        (
            pb::SendEventRequest {
                custom_details: [("blob".to_string(), "x".repeat(600 * 1024))]
                    .into_iter()
                    .collect(),
                ..trigger("db-key-0001", "a")
            },
            tonic::Code::InvalidArgument,
            "payload",
        ),
    ];
    for (req, code, field) in cases {
        let err = ev.send(req).await.expect_err("rejected");
        assert_eq!(err.code(), code, "{field}: {}", err.message());
        assert!(
            err.message().starts_with(field),
            "message names {field}: {}",
            err.message()
        );
    }
    let list = c
        .incidents(leader)
        .await
        .list(pb::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.incidents.is_empty(), "nothing was applied");
    assert!(c.twilio.messages().is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_quorum_writes_fail_fast_and_retry_is_safe() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let survivor = c.follower(leader);
    let other = (1..=3).find(|&i| i != leader && i != survivor).unwrap();
    c.kill(leader).await;
    c.kill(other).await;

    info!("--- a write with no quorum fails with Unavailable within the bound");
    let started = std::time::Instant::now();
    let err = c
        .events(survivor)
        .await
        .send(trigger("db-key-0001", "k1"))
        .await
        .expect_err("no quorum");
    let took = started.elapsed();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{}", err.message());
    assert!(
        took < Duration::from_millis(c.write_timeout_ms + 2_000),
        "took {took:?}"
    );

    info!("--- quorum back: retrying the same dedup key opens exactly one incident");
    c.restart(other).await;
    c.leader().await;
    let mut events = c.events(survivor).await;
    let first = events
        .send(trigger("db-key-0001", "k1"))
        .await
        .expect("commits")
        .into_inner();
    let again = events
        .send(trigger("db-key-0001", "k1"))
        .await
        .expect("commits")
        .into_inner();
    assert_eq!(first.incident_id, again.incident_id);
    let list = c
        .incidents(survivor)
        .await
        .list(pb::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        list.incidents
            .iter()
            .filter(|i| i.dedup_key == "k1")
            .count(),
        1
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_from_a_follower_show_the_write_just_made() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    c.apply(f, ONCALL).await;
    let mut incidents = c.incidents(f).await;
    for i in 0..20 {
        let sent = c
            .events(f)
            .await
            .send(trigger("db-key-0001", &format!("k{i}")))
            .await
            .unwrap()
            .into_inner();
        let ack = incidents
            .acknowledge(pb::IncidentActionRequest {
                id: sent.incident_id,
                by: "alice".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            ack.incident.unwrap().status,
            pb::IncidentStatus::Acknowledged as i32
        );
        let res = incidents
            .resolve(pb::IncidentActionRequest {
                id: sent.incident_id,
                by: "alice".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            res.incident.unwrap().status,
            pb::IncidentStatus::Resolved as i32
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn send_batch_gives_a_result_per_event() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let f = c.follower(leader);
    let mut bad = trigger("db-key-0001", "b2");
    bad.severity = "loud".into();
    let events = vec![
        trigger("db-key-0001", "b1"),
        bad,
        trigger("no-such-key-00", "b3"),
        trigger("db-key-0001", "b1"),
    ];
    let r = c
        .events(f)
        .await
        .send_batch(pb::SendBatchRequest { events })
        .await
        .expect("batch accepted")
        .into_inner();
    use pb::send_batch_result::Outcome;
    let outcomes: Vec<_> = r
        .results
        .into_iter()
        .map(|r| r.outcome.expect("an outcome"))
        .collect();
    assert_eq!(outcomes.len(), 4);
    let Outcome::Ok(first) = &outcomes[0] else {
        panic!("first event commits: {:?}", outcomes[0]);
    };
    match &outcomes[1] {
        Outcome::Error(e) => {
            assert_eq!(e.code, tonic::Code::InvalidArgument as i32);
            assert!(e.message.starts_with("severity"), "{}", e.message);
        }
        other => panic!("bad severity refused: {other:?}"),
    }
    match &outcomes[2] {
        Outcome::Error(e) => {
            assert_eq!(e.code, tonic::Code::NotFound as i32);
            assert!(e.message.starts_with("routing_key"), "{}", e.message);
        }
        other => panic!("unknown key refused: {other:?}"),
    }
    let Outcome::Ok(again) = &outcomes[3] else {
        panic!("repeat commits: {:?}", outcomes[3]);
    };
    assert_eq!(
        first.incident_id, again.incident_id,
        "same dedup key: one incident"
    );

    let err = c
        .events(f)
        .await
        .send_batch(pb::SendBatchRequest { events: vec![] })
        .await
        .expect_err("empty batch");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().starts_with("events"), "{}", err.message());
    c.shutdown().await;
}

/// Read from `stream` until `done` holds for a change; every revision must
/// be higher than the one before. Returns the changes read.
async fn watch_until(
    stream: &mut tonic::Streaming<pb::IncidentChange>,
    done: impl Fn(&pb::IncidentChange) -> bool,
) -> Vec<pb::IncidentChange> {
    let mut seen: Vec<pb::IncidentChange> = Vec::new();
    loop {
        let change = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a change within 10 s")
            .expect("stream open")
            .expect("a message");
        if let Some(last) = seen.last() {
            assert!(
                change.revision > last.revision,
                "revisions increase: {} after {}",
                change.revision,
                last.revision
            );
        }
        let incident = change.incident.as_ref().expect("incident body");
        assert_eq!(change.revision, incident.revision);
        let stop = done(&change);
        seen.push(change);
        if stop {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_streams_changes_in_order_and_resumes() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let f = c.follower(leader);
    let mut first = c
        .incidents(f)
        .await
        .watch(pb::WatchRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut events = c.events(leader).await;
    let mut incidents = c.incidents(leader).await;
    let a = events
        .send(trigger("db-key-0001", "wa"))
        .await
        .unwrap()
        .into_inner()
        .incident_id;
    incidents
        .acknowledge(pb::IncidentActionRequest {
            id: a,
            by: "alice".into(),
        })
        .await
        .unwrap();
    let status = |change: &pb::IncidentChange| change.incident.as_ref().map_or(0, |i| i.status);
    let acked = watch_until(&mut first, |ch| {
        ch.incident.as_ref().is_some_and(|i| i.id == a)
            && status(ch) == pb::IncidentStatus::Acknowledged as i32
    })
    .await;
    let resume_from = acked.last().unwrap().revision;

    let b = events
        .send(trigger("db-key-0001", "wb"))
        .await
        .unwrap()
        .into_inner()
        .incident_id;
    incidents
        .resolve(pb::IncidentActionRequest {
            id: a,
            by: "alice".into(),
        })
        .await
        .unwrap();
    let resolved = |ch: &pb::IncidentChange| {
        ch.incident.as_ref().is_some_and(|i| i.id == a)
            && status(ch) == pb::IncidentStatus::Resolved as i32
    };
    let is_b = |ch: &pb::IncidentChange| ch.incident.as_ref().is_some_and(|i| i.id == b);
    // B's later changes (its page's outcome) may order it after A's resolve.
    let later = watch_until(&mut first, resolved).await;
    if !later.iter().any(is_b) {
        watch_until(&mut first, is_b).await;
    }
    let a_final = later.last().unwrap().incident.clone().unwrap();
    assert!(
        a_final.timeline.iter().any(|e| e.what == "acknowledged"),
        "every step is in the timeline"
    );

    // Resuming from the revision of the acknowledgement: only what changed
    // after it, again in order, ending with a resolved.
    let mut resumed = c
        .incidents(f)
        .await
        .watch(pb::WatchRequest {
            from_revision: resume_from,
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut again = watch_until(&mut resumed, resolved).await;
    if !again.iter().any(is_b) {
        again.extend(watch_until(&mut resumed, is_b).await);
    }
    assert!(
        again.iter().all(|ch| ch.revision > resume_from),
        "nothing at or before the resume point"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_filters_pages_and_reads_linearizably_from_a_follower() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let mut events = c.events(leader).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = events
            .send(trigger("db-key-0001", &format!("l{i}")))
            .await
            .unwrap()
            .into_inner();
        ids.push(r.incident_id);
    }
    let f = c.follower(leader);
    let mut list = c.incidents(f).await;
    let linearizable = Some(pb::ReadConsistency {
        min_index: 0,
        linearizable: true,
    });
    // Asked right after the writes, a follower still answers with all of them.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list
            .list(pb::ListIncidentsRequest {
                limit: 2,
                page_token: token.clone(),
                consistency: linearizable,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.incidents.len() <= 2);
        seen.extend(page.incidents.iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(
        seen, newest_first,
        "pages cover every incident once, newest first"
    );

    let third = c
        .incidents(leader)
        .await
        .get(pb::GetIncidentRequest {
            id: ids[2],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let older = list
        .list(pb::ListIncidentsRequest {
            created_before_ms: third.created_at_ms + 1,
            urgency: "high".into(),
            consistency: linearizable,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(older
        .incidents
        .iter()
        .all(|i| i.created_at_ms <= third.created_at_ms));
    assert!(older.incidents.iter().any(|i| i.id == ids[0]));
    let low = list
        .list(pb::ListIncidentsRequest {
            urgency: "low".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(low.incidents.is_empty(), "critical pages are high urgency");

    for (req, field) in [
        (
            pb::ListIncidentsRequest {
                urgency: "medium".into(),
                ..Default::default()
            },
            "urgency",
        ),
        (
            pb::ListIncidentsRequest {
                page_token: "x".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let err = list.list(req).await.expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_is_promoted_and_a_snapshot_taken_on_demand() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let x = c.follower(leader);
    let mut cluster = pb::cluster_client::ClusterClient::new(c.channel(leader).await);
    let removed = cluster
        .remove_node(pb::RemoveNodeRequest { id: x as u64 })
        .await
        .expect("remove")
        .into_inner();
    assert!(!removed.voters.contains(&(x as u64)));
    let added = cluster
        .add_node(pb::AddNodeRequest {
            node: Some(pb::NodeInfo {
                id: x as u64,
                peer_addr: c.addrs[x - 1].peer.to_string(),
                client_addr: c.addrs[x - 1].client.to_string(),
                region: "eu-west".into(),
                http_url: format!("http://{}", c.addrs[x - 1].http),
            }),
            learner_only: true,
        })
        .await
        .expect("add as learner")
        .into_inner();
    assert_eq!(added.learners, vec![x as u64]);
    let promoted = cluster
        .promote_learner(pb::PromoteLearnerRequest { id: x as u64 })
        .await
        .expect("promote")
        .into_inner();
    assert!(promoted.voters.contains(&(x as u64)));
    assert!(promoted.learners.is_empty());
    let again = cluster
        .promote_learner(pb::PromoteLearnerRequest { id: x as u64 })
        .await
        .expect_err("already a voter");
    assert_eq!(again.code(), tonic::Code::InvalidArgument);
    assert!(again.message().starts_with("id"), "{}", again.message());

    let snap = pb::cluster_client::ClusterClient::new(c.channel(x).await)
        .snapshot(pb::SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    assert_eq!(snap.node_id, x as u64);
    let mut m = c.node(x).node.raft.metrics();
    tokio::time::timeout(
        Duration::from_secs(10),
        m.wait_for(|m| m.snapshot.is_some_and(|s| s.index >= snap.applied_index)),
    )
    .await
    .expect("snapshot taken in time")
    .expect("metrics");
    c.shutdown().await;
}
