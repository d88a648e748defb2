//! Batching of concurrent client writes: each caller gets its own command's answer, keyed events
//! share entries, events without a dedup key never do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pager_core::event::{Event, EventAction, Severity};
use pager_core::{Command, OnCallDoc, Response};
use pager_raft::{Network, PeerClients, PeerNode, Raft, RaftTimings};

const KEY: &str = "db-prod-2f9c41d7e8";

fn trigger(dedup: &str) -> Command {
    Command::Ingest {
        at: 1_000,
        event: Box::new(Event {
            routing_key: KEY.into(),
            action: EventAction::Trigger,
            dedup_key: dedup.into(),
            summary: "batch test".into(),
            source: String::new(),
            severity: Severity::Critical,
            component: String::new(),
            group: String::new(),
            class: String::new(),
            custom_details: Default::default(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_get_their_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (log, sm) = pager_raft::open(dir.path()).await.unwrap();
    let state = sm.state();
    let config = Arc::new(RaftTimings::default().validate().unwrap());
    let raft = Raft::new(1, config, Network::new(PeerClients::default()), log, sm)
        .await
        .unwrap();
    let node = PeerNode {
        peer_addr: "127.0.0.1:1".into(),
        client_addr: String::new(),
        region: "test".into(),
        http_url: String::new(),
    };
    raft.initialize(BTreeMap::from([(1, node)])).await.unwrap();
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/oncall.example.toml"),
    )
    .unwrap();
    let mut doc = OnCallDoc::from_toml(&doc).unwrap();
    // 68 new incidents inside a minute would be an alert storm on the example service; this test
    // is about batching, so every trigger must open its own incident.
    for service in doc.services.values_mut() {
        service.storm_threshold_per_minute = None;
    }
    let applied = raft
        .client_write(Command::ApplyConfig {
            at: 1_000,
            doc: Box::new(doc),
        })
        .await
        .unwrap();
    assert!(matches!(applied.data, Response::ConfigApplied { .. }));

    // 64 keyed triggers and 4 without a dedup key, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..68 {
        let raft = raft.clone();
        let dedup = if i % 17 == 16 {
            String::new()
        } else {
            format!("e-{i}")
        };
        tasks.spawn(async move {
            let written = raft.client_write(trigger(&dedup)).await.unwrap();
            (dedup, written)
        });
    }
    let mut keyed_indexes = BTreeSet::new();
    let mut unkeyed_indexes = BTreeSet::new();
    let mut incidents = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let (dedup, written) = done.unwrap();
        let Response::Event {
            incident,
            dedup_key,
            folded,
        } = written.data
        else {
            panic!("unexpected answer {:?}", written.data);
        };
        assert!(!folded, "{dedup:?} folded into an open incident");
        incidents.insert(incident.expect("a new incident"));
        if dedup.is_empty() {
            // Made up from the log index: only unique if the entry carried nothing else.
            assert_eq!(dedup_key, format!("pgd-{}", written.log_id.index));
            unkeyed_indexes.insert(written.log_id.index);
        } else {
            assert_eq!(dedup_key, dedup);
            keyed_indexes.insert(written.log_id.index);
        }
    }
    assert_eq!(incidents.len(), 68, "one incident per trigger");
    assert_eq!(
        unkeyed_indexes.len(),
        4,
        "events without a key are never batched"
    );
    assert!(unkeyed_indexes.is_disjoint(&keyed_indexes));
    assert!(
        keyed_indexes.len() < 64,
        "64 concurrent keyed triggers took {} entries: no batching",
        keyed_indexes.len()
    );
    state.read(|s| assert_eq!(s.incidents.len(), 68));
    raft.shutdown().await.unwrap();
}
