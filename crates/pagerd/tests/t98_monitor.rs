//! Watching the pager itself: the leader pings the dead man's switch while it
//! holds a quorum and stops when it loses it; a node cut off from a quorum
//! tells the admins once (rate-limited) through its own channels; `/readyz`
//! and the quorum metric follow; bad monitor settings name their key.

mod common;

use axum::http::HeaderMap;
use common::Cluster;
use pagerd::config::{RawAdmin, RawConfig};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::mpsc;

/// The dead man's switch URL of this test binary's receiver.
static DEADMAN: OnceLock<String> = OnceLock::new();

fn monitored(raw: &mut RawConfig) {
    raw.monitor.deadman_url = DEADMAN.get().cloned();
    raw.monitor.deadman_interval_secs = 1;
    raw.monitor.isolation_alert_after_secs = 1;
    raw.monitor.isolation_alert_every_secs = 3600;
    raw.monitor.admins = vec![RawAdmin {
        kind: "email".into(),
        address: "ops@example.com".into(),
    }];
}

/// An HTTP receiver for the pings: each one sends the pinging node's id.
async fn ping_receiver() -> (String, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/ping/secret-token",
        axum::routing::get(move |headers: HeaderMap| {
            let tx = tx.clone();
            async move {
                let node = headers
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|ua| ua.split("node=").nth(1))
                    .and_then(|id| id.parse::<u64>().ok())
                    .unwrap_or(0);
                let _ = tx.send(node);
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/ping/secret-token"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pager_watches_itself() {
    let (url, mut pings) = ping_receiver().await;
    DEADMAN.set(url).unwrap();
    let mut c = Cluster::start_tuned(3, monitored).await;
    let leader = c.leader().await;

    // Pings come from the leader, one per interval.
    for _ in 0..2 {
        let from = tokio::time::timeout(Duration::from_secs(10), pings.recv())
            .await
            .expect("a ping within 10 s")
            .expect("receiver open");
        assert_eq!(from, leader as u64, "only the leader pings");
    }
    assert_eq!(readyz(&c, leader).await, 200);

    // The leader loses both followers: no quorum.
    let followers: Vec<usize> = (1..=3).filter(|&i| i != leader).collect();
    for &f in &followers {
        c.kill(f).await;
    }
    let mails = c
        .smtp
        .wait_for_mails(1, Duration::from_secs(15))
        .await
        .expect("the isolated node tells the admins");
    assert_eq!(mails[0].to, vec!["ops@example.com".to_string()]);
    let subject = mails[0].header("subject").unwrap_or_default();
    assert!(subject.contains("no quorum"), "{subject}");
    // Anything pinged before the notice is in the channel by now.
    while pings.try_recv().is_ok() {}
    let node = c.node(leader).node.clone();
    assert!(!node.health.quorum.load(Ordering::Relaxed));
    assert_eq!(readyz(&c, leader).await, 503);

    // Three more seconds cut off: more checks, still one notice, no pings.
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut applied = node.applied.clone();
        while node.health.isolated_ms.load(Ordering::Relaxed) < 4_000 {
            // Wakes on the monitor's own cadence; nothing is applied meanwhile.
            let _ = tokio::time::timeout(Duration::from_millis(200), applied.changed()).await;
        }
    })
    .await
    .expect("isolation is measured");
    assert_eq!(c.smtp.mails().len(), 1, "one notice per interval");
    assert!(pings.try_recv().is_err(), "no ping without a quorum");
    assert_eq!(node.health.isolation_notices.load(Ordering::Relaxed), 1);
    let metrics = reqwest::get(format!("http://{}/metrics", c.addrs[leader - 1].http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pagerd_quorum 0"), "{metrics}");
    assert!(metrics.contains("pagerd_isolation_notices_total 1"));

    // A follower comes back: quorum, readiness and pings resume.
    c.restart(followers[0]).await;
    let from = tokio::time::timeout(Duration::from_secs(15), pings.recv())
        .await
        .expect("pings resume with a quorum")
        .expect("receiver open");
    assert!(from == leader as u64 || from == followers[0] as u64);
    let now_leader = c.leader().await;
    assert_eq!(readyz(&c, now_leader).await, 200);
    c.shutdown().await;
}

async fn readyz(c: &Cluster, id: usize) -> u16 {
    reqwest::get(format!("http://{}/readyz", c.addrs[id - 1].http))
        .await
        .expect("readyz answers")
        .status()
        .as_u16()
}

#[test]
fn bad_monitor_settings_name_their_key() {
    let mut raw = RawConfig::default();
    raw.monitor.admins = vec![RawAdmin {
        kind: "sms".into(),
        address: "555-0100".into(),
    }];
    let err = raw.validate().expect_err("not E.164").to_string();
    assert!(err.contains("monitor.admins[0].address"), "{err}");

    let mut raw = RawConfig::default();
    raw.monitor.admins = vec![RawAdmin {
        kind: "pigeon".into(),
        address: "x".into(),
    }];
    let err = raw.validate().expect_err("unknown type").to_string();
    assert!(err.contains("monitor.admins[0].type"), "{err}");

    let mut raw = RawConfig::default();
    raw.monitor.deadman_url = Some("ftp://hc-ping.com/secret-token-123".into());
    let err = raw.validate().expect_err("not http").to_string();
    assert!(err.contains("monitor.deadman_url"), "{err}");
    assert!(
        !err.contains("secret-token-123"),
        "the URL is not echoed: {err}"
    );
}
