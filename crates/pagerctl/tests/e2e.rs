//! pagerctl end to end against a real three-node cluster (in this process:
//! real Raft over real sockets, real redb files): the README's walk-through —
//! status, apply, trigger, fold, list, acknowledge, resolve — then leadership
//! transfer and a backup, with `--output json` parsed and exit codes checked.
//! The endpoint list starts with a dead address, so every call also fails over.

mod common;

use pagerd::config::{RawConfig, RawMember};
use pagerd::{Listeners, Running};
use serde_json::Value;
use std::process::Output;
use tokio::net::TcpListener;

const KEY: &str = "db-prod-2f9c41d7e8";

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Three nodes on loopback, node 1 bootstrapping; pages go to the console.
async fn cluster(dir: &std::path::Path) -> (Vec<Running>, String) {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(Listeners {
            client: bind().await,
            peer: bind().await,
            http: bind().await,
        });
    }
    let regions = ["us-east", "eu-west", "ap-south"];
    let members: Vec<RawMember> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| RawMember {
            id: i as u64 + 1,
            peer: l.peer.local_addr().unwrap().to_string(),
            client: l.client.local_addr().unwrap().to_string(),
            region: regions[i].into(),
            http: Some(format!("http://{}", l.http.local_addr().unwrap())),
        })
        .collect();
    let endpoints = members
        .iter()
        .map(|m| format!("http://{}", m.client))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let mut raw = RawConfig {
            node_id: i as u64 + 1,
            region: regions[i].into(),
            data_dir: dir.join(format!("node{}", i + 1)),
            ..RawConfig::default()
        };
        raw.listen.client = members[i].client.clone();
        raw.listen.peer = members[i].peer.clone();
        raw.listen.http = l.http.local_addr().unwrap().to_string();
        raw.cluster.bootstrap = i == 0;
        raw.cluster.members = members.clone();
        raw.raft.heartbeat_interval_ms = 50;
        raw.raft.election_timeout_min_ms = 300;
        raw.raft.election_timeout_max_ms = 600;
        raw.raft.rpc_timeout_ms = 300;
        let cfg = raw.validate().expect("valid config");
        nodes.push(pagerd::start(cfg, l).await.expect("node starts"));
    }
    let mut m = nodes[0].node.raft.metrics();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        m.wait_for(|m| m.current_leader.is_some()),
    )
    .await
    .expect("a leader")
    .expect("metrics");
    // A dead endpoint first: pagerctl must move on to a live node.
    let dead = bind().await.local_addr().unwrap();
    (nodes, format!("http://{dead},{endpoints}"))
}

async fn pagerctl(endpoints: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_pagerctl"))
        .arg("--endpoint")
        .arg(endpoints)
        .args(args)
        .env_remove("PAGERCTL_ENDPOINT")
        .env_remove("PAGERCTL_TOKEN")
        .output()
        .await
        .expect("run pagerctl")
}

/// Run, expect exit 0, parse stdout as JSON.
async fn json(endpoints: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = pagerctl(endpoints, &all).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "pagerctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "pagerctl {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_readme_walk_through_against_a_real_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, ep) = cluster(dir.path()).await;

    let status = json(&ep, &["cluster", "status"]).await;
    let members = status["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m["voter"] == true));
    let leader = status["leader_id"].as_u64().expect("a leader");

    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/oncall.example.toml"
    );
    let applied = pagerctl(&ep, &["apply", "-f", example]).await;
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let trigger = [
        "event",
        "trigger",
        "--routing-key",
        KEY,
        "--dedup-key",
        "disk-full-db1",
        "--summary",
        "disk full on db1",
        "--severity",
        "critical",
    ];
    let first = json(&ep, &trigger).await;
    let id = first["incident_id"].as_u64().expect("incident id");
    assert_eq!(first["folded"], false);
    let again = json(&ep, &trigger).await;
    assert_eq!(
        (again["incident_id"].as_u64(), &again["folded"]),
        (Some(id), &Value::Bool(true))
    );

    let list = json(&ep, &["incident", "list", "--linearizable"]).await;
    assert!(list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"].as_u64() == Some(id) && i["status"] == "triggered"));

    let ack = pagerctl(&ep, &["incident", "ack", &id.to_string(), "--by", "alice"]).await;
    assert_eq!(
        ack.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ack.stderr)
    );
    let shown = json(&ep, &["incident", "show", &id.to_string()]).await;
    assert_eq!(shown["status"], "acknowledged", "{shown}");

    // A key no service has: exit 1, and the message names the field.
    let bad = pagerctl(
        &ep,
        &[
            "event",
            "trigger",
            "--routing-key",
            "nope-0000",
            "--summary",
            "x",
            "--severity",
            "info",
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("routing_key"));

    // Leadership moves on request.
    let moved = json(&ep, &["cluster", "transfer-leader"]).await;
    let new_leader = moved["leader_id"].as_u64().unwrap();
    assert_ne!(new_leader, leader);

    // A backup that restore would accept.
    let file = dir.path().join("pagerd.backup");
    let backup = json(
        &ep,
        &["cluster", "snapshot", "--out", file.to_str().unwrap()],
    )
    .await;
    let bytes = std::fs::read(&file).expect("backup written");
    let (info, _) = pager_raft::backup::parse(&bytes).expect("a valid backup");
    assert_eq!(backup["sha256"], info.sha256);
    assert!(info.index > 0);

    let resolved = pagerctl(&ep, &["incident", "resolve", &id.to_string()]).await;
    assert_eq!(resolved.status.code(), Some(0));
    let shown = json(&ep, &["incident", "show", &id.to_string()]).await;
    assert_eq!(shown["status"], "resolved");

    for n in nodes {
        n.shutdown().await;
    }
}

/// `pagerctl user set-password USER EXTRA` with the password on standard input.
async fn set_password(endpoints: &str, user: &str, stdin: &str, extra: &[&str]) -> Output {
    let mut args = vec!["--endpoint", endpoints, "user", "set-password", user];
    args.extend(extra);
    common::pagerctl_with_stdin(&args, stdin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_sets_a_console_password_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, ep) = cluster(dir.path()).await;
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/oncall.example.toml"
    );
    let applied = pagerctl(&ep, &["apply", "-f", example]).await;
    assert_eq!(applied.status.code(), Some(0));

    let secret = "tr0ub4dor&3-horse";
    let out = set_password(
        &ep,
        "alice",
        &format!("{secret}\n"),
        &["--role", "admin", "--output", "json"],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (set["user"].as_str(), set["role"].as_str()),
        (Some("alice"), Some("admin"))
    );
    let index = set["commit_index"].as_u64().expect("commit index");

    // Every node holds the same Argon2id hash, which verifies the password
    // and does not contain it.
    for n in &nodes {
        let mut m = n.node.raft.metrics();
        m.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= index))
            .await
            .expect("applied");
        let cred = n
            .node
            .read(|s| s.credentials.get("alice").cloned())
            .expect("credential replicated");
        assert!(cred.phc.starts_with("$argon2id$"), "{}", cred.phc);
        assert!(!cred.phc.contains(secret));
        assert!(pagerd::edge::password::verify(&cred.phc, secret));
        assert!(!pagerd::edge::password::verify(&cred.phc, "tr0ub4dor&3"));
    }
    let list = json(&ep, &["user", "list"]).await;
    assert_eq!(list["users"][0]["user"], "alice");
    assert_eq!(list["users"][0]["role"], "admin");

    // Refused, with the field at fault, and nothing applied: a short
    // password, an empty stdin, a user not in the document.
    for (user, stdin, needle) in [
        ("bob", "short\n", "password"),
        ("bob", "", "no password on standard input"),
        ("mallory", "long enough password\n", "mallory"),
    ] {
        let out = set_password(&ep, user, stdin, &[]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{user}: {err}");
        assert!(err.contains(needle), "{user}: {err}");
    }
    let list = json(&ep, &["user", "list"]).await;
    assert_eq!(list["users"].as_array().map(Vec::len), Some(1));

    let cleared = json(&ep, &["user", "clear-password", "alice"]).await;
    assert_eq!(cleared["cleared"], true);
    let list = json(&ep, &["user", "list"]).await;
    assert_eq!(list["users"].as_array().map(Vec::len), Some(0));
    for n in nodes {
        n.shutdown().await;
    }
}
