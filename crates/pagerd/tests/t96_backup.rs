//! Backup and restore: `Cluster/Backup` streams a consistent, checksummed
//! copy of the state; a damaged copy is refused; after the whole cluster is
//! lost, a new cluster rebuilt from the copy holds the same incidents,
//! configuration and tokens, its replicas agree, and an escalation that was
//! pending at the backup still fires.

mod common;

use common::{trigger, Cluster};
use pager_proto::pager::v1 as pb;
use std::time::Duration;

const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "email", type = "email", address = "alice@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]
[users.bob]
contact_methods = [ { name = "email", type = "email", address = "bob@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]
[escalation_policies.p]
levels = [
  { escalate_after = "6s", targets = [ { user = "alice" } ] },
  { escalate_after = "1h", targets = [ { user = "bob" } ] },
]
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
"#;

/// The backup file: header line, then the body.
async fn download(c: &Cluster, id: usize) -> (pb::BackupHeader, Vec<u8>) {
    let mut stream = pb::cluster_client::ClusterClient::new(c.channel(id).await)
        .backup(pb::BackupRequest { allow_stale: false })
        .await
        .expect("backup starts")
        .into_inner();
    let header = stream
        .message()
        .await
        .expect("first message")
        .and_then(|m| m.header)
        .expect("header first");
    let mut file = header.line.clone().into_bytes();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        assert!(chunk.header.is_none(), "one header only");
        file.extend_from_slice(&chunk.data);
    }
    (header, file)
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("serializes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_then_restore_into_a_new_cluster() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let mut events = c.events(leader).await;
    let mut ids = Vec::new();
    for key in ["acked", "resolved", "open"] {
        let r = events
            .send(trigger("web-key-0001", key))
            .await
            .expect("trigger")
            .into_inner();
        ids.push(r.incident_id);
    }
    c.smtp
        .wait_for_mails(3, Duration::from_secs(10))
        .await
        .expect("level 1 pages alice three times");
    let mut incidents = c.incidents(leader).await;
    let action = |id| pb::IncidentActionRequest {
        id,
        by: "alice".into(),
    };
    incidents.acknowledge(action(ids[0])).await.expect("ack");
    incidents.resolve(action(ids[1])).await.expect("resolve");
    // Quiet: every page's outcome committed before the backup.
    let node = c.node(leader).node.clone();
    let mut applied = node.applied.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        applied.wait_for(|_| node.read(|s| s.pending_deliveries().count() == 0)),
    )
    .await
    .expect("pages settle")
    .expect("applied channel");

    // From a follower: a linearizable read makes it hold everything committed.
    let (header, file) = download(&c, c.follower(leader)).await;
    let (info, body) = pager_raft::backup::parse(&file).expect("a valid backup");
    assert_eq!(
        (info.index, info.bytes, info.sha256.as_str()),
        (header.index, header.bytes, header.sha256.as_str())
    );
    assert!(info.index >= node.metrics().last_applied.unwrap().index - 1);
    let backed_up: serde_json::Value = serde_json::from_slice(body).expect("body is JSON");
    let original = node.read(|s| {
        (
            json(&s.incidents[&ids[0]]),
            json(&s.incidents[&ids[1]]),
            json(&*s.config),
            json(&s.tokens),
        )
    });
    assert_eq!(
        backed_up["state"]["incidents"].as_object().unwrap().len(),
        3
    );

    // A damaged copy is refused before anything is written.
    let mut damaged = file.clone();
    let last = damaged.len() - 2;
    damaged[last] ^= 0x20;
    let err = pager_raft::backup::parse(&damaged).expect_err("checksum catches it");
    assert!(err.to_string().contains("sha256"), "{err}");
    let truncated = &file[..file.len() - 10];
    let err = pager_raft::backup::parse(truncated).expect_err("length catches it");
    assert!(err.to_string().contains("truncated"), "{err}");

    // The whole cluster is lost for good.
    c.shutdown().await;

    let r = Cluster::start_restored(3, &file).await;
    let new_leader = r.leader().await;
    for id in 1..=3 {
        r.applied(id, info.index).await;
        let restored = r.node(id).node.read(|s| {
            (
                json(&s.incidents[&ids[0]]),
                json(&s.incidents[&ids[1]]),
                json(&*s.config),
                json(&s.tokens),
            )
        });
        assert_eq!(restored, original, "node {id} holds the backed-up state");
    }
    // The pending escalation fires in the new cluster: bob, for the open
    // incident only; nobody is paged again for the acknowledged or resolved one.
    let mails = r
        .smtp
        .wait_for_mails(1, Duration::from_secs(20))
        .await
        .expect("level 2 pages bob after the restore");
    assert_eq!(mails[0].to, vec!["bob@example.com".to_string()]);

    // Replicas agree once quiet.
    let leader_node = r.node(new_leader).node.clone();
    let mut applied = leader_node.applied.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        applied.wait_for(|_| leader_node.read(|s| s.pending_deliveries().count() == 0)),
    )
    .await
    .expect("pages settle")
    .expect("applied channel");
    // Read every replica at one applied index: wait for the laggards to reach
    // the highest index seen, then compare; a write in between starts over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Vec<(u64, serde_json::Value)> = (1..=3)
            .map(|id| {
                r.node(id).node.state.read_with_applied(|s, applied| {
                    (applied.map_or(0, |l| l.index), json(&s.incidents))
                })
            })
            .collect();
        let top = seen.iter().map(|(i, _)| *i).max().unwrap();
        if seen.iter().all(|(i, _)| *i == top) {
            assert!(
                seen.windows(2).all(|w| w[0].1 == w[1].1),
                "replicas agree at index {top}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "replicas never met");
        for id in 1..=3 {
            r.applied(id, top).await;
        }
    }
    assert!(r
        .smtp
        .mails()
        .iter()
        .all(|m| m.to == vec!["bob@example.com".to_string()]));
    r.shutdown().await;
}
