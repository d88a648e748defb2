//! Heartbeat monitors over HTTP: a ping arms the monitor, an unknown key is a
//! 404 with a JSON body, and a missed ping opens an incident on the service.

mod common;

use common::Cluster;
use std::time::Duration;

const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[escalation_policies.p]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[services.backups]
integration_keys = ["backups-key-01"]
escalation_policy = "p"
[heartbeats.nightly]
service = "backups"
interval = "10s"
key = "nightly-hb-0001"
"#;

/// POST with an empty body over a plain TCP socket; returns (status, body).
async fn post(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect http port");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write request");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read response");
    let status = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pings_arm_unknown_keys_404_and_a_missed_ping_opens_an_incident() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    c.apply(f, ONCALL).await;
    let http = c.addrs[f - 1].http;

    let (code, body) = post(http, "/v1/heartbeat/nope-nope-nope").await;
    assert_eq!(code, 404, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
    assert_eq!(v["status"], "error");

    let (code, body) = post(http, "/v1/heartbeat/nightly-hb-0001").await;
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    let index = v["commit_index"].as_u64().expect("commit index");
    c.applied(leader, index).await;
    let node = c.node(leader).node.clone();
    let due = node.read(|s| s.heartbeats["nightly"].last_seen) + 10_000;
    assert_eq!(
        node.read(|s| s.next_deadline()),
        Some(due),
        "the monitor is armed"
    );

    // No further ping: the leader's scheduler opens the incident at the deadline.
    let mut applied = node.applied.clone();
    tokio::time::timeout(
        Duration::from_secs(20),
        applied.wait_for(|_| node.read(|s| s.heartbeats["nightly"].incident.is_some())),
    )
    .await
    .expect("the missed ping opens an incident")
    .expect("applied channel");
    let id = node.read(|s| s.heartbeats["nightly"].incident).unwrap();
    assert_eq!(
        node.read(|s| s.incidents[&id].dedup_key.clone()),
        "heartbeat:nightly"
    );

    // The next ping resolves it.
    let (code, body) = post(http, "/v1/heartbeat/nightly-hb-0001").await;
    assert_eq!(code, 202, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["resolved_incident"].as_u64(), Some(id));
    c.shutdown().await;
}
