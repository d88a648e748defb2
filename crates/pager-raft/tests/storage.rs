//! Storage: openraft's suite, durability across reopen, snapshots, and a SIGKILLed writer.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{blank_ent, log_id, membership_ent, StoreBuilder, Suite};
use openraft::{EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use pager_core::{Command, Response};
use pager_raft::{Entry, LogStore, StateMachineStore, StorageError, TypeConfig, Vote};
use tempfile::TempDir;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::write(openraft::AnyError::new(&e)).into()
}

/// A fresh directory and a fresh pair of stores per suite case.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(io_err)?;
        let (log, sm) = pager_raft::open(dir.path()).await.map_err(io_err)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    init_tracing();
    Suite::test_all(Builder).unwrap();
}

fn tick(term: u64, index: u64, at: u64) -> Entry {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Command::Tick { at }.into()),
    }
}

/// Drop the stores (as a crash would: no flush or close call) and wait until the file is free.
async fn drop_stores(log: LogStore, sm: StateMachineStore) {
    let closed = log.closed();
    drop(log);
    drop(sm);
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("raft log closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_log_writes_survive_reopen() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (mut log, sm) = pager_raft::open(dir.path()).await.unwrap();

    log.blocking_append((1..=10).map(|i| tick(1, i, i * 100)))
        .await
        .unwrap();
    log.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
    log.save_committed(Some(log_id(1, 1, 8))).await.unwrap();
    log.purge(log_id(1, 1, 3)).await.unwrap();
    log.truncate(log_id(1, 1, 9)).await.unwrap();
    // Visible at once, before any reopen.
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 8)));
    drop_stores(log, sm).await;

    let (mut log, _sm) = pager_raft::open(dir.path()).await.unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(3, 2))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 8)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 3)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 8)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, vec![4, 5, 6, 7, 8]);
    assert_eq!(
        entries[0].payload,
        EntryPayload::Normal(Command::Tick { at: 400 }.into())
    );

    // Appending after a reopen continues the log; a reader sees it.
    log.blocking_append([tick(2, 9, 900)]).await.unwrap();
    let mut reader = log.get_log_reader().await;
    let entries = reader.try_get_log_entries(9..=9).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].log_id, log_id(2, 1, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_of_everything_keeps_last_log_id() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, sm) = pager_raft::open(dir.path()).await.unwrap();
    log.blocking_append((1..=3).map(|i| tick(1, i, i)))
        .await
        .unwrap();
    log.purge(log_id(1, 1, 5)).await.unwrap();
    drop_stores(log, sm).await;

    let (mut log, _sm) = pager_raft::open(dir.path()).await.unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 5)));
    assert!(log.try_get_log_entries(..).await.unwrap().is_empty());
}

fn state_json(sm: &StateMachineStore) -> serde_json::Value {
    sm.state().read(|s| serde_json::to_value(s).unwrap())
}

/// Apply a membership entry and some commands; returns the applied responses (one per command,
/// and one for each blank or membership entry).
async fn feed(sm: &mut StateMachineStore) -> Vec<Response> {
    let mut entries = vec![membership_ent::<TypeConfig>(
        1,
        1,
        1,
        vec![BTreeSet::from([1, 2, 3])],
    )];
    entries.extend((2..=6).map(|i| tick(1, i, i * 1000)));
    entries.push(blank_ent::<TypeConfig>(2, 1, 7));
    sm.apply(entries).await.unwrap().concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restores_state_on_reopen() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (log, mut sm) = pager_raft::open(dir.path()).await.unwrap();
    let mut applied = sm.subscribe_applied();

    let responses = feed(&mut sm).await;
    assert_eq!(responses.len(), 7);
    assert!(responses.iter().all(|r| *r == Response::Noop));
    assert_eq!(*applied.borrow_and_update(), Some(log_id(2, 1, 7)));

    let built = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(2, 1, 7)));
    let before_state = state_json(&sm);
    let before_applied = sm.applied_state().await.unwrap();
    drop_stores(log, sm).await;

    let (_log, mut sm) = pager_raft::open(dir.path()).await.unwrap();
    assert_eq!(state_json(&sm), before_state);
    assert_eq!(sm.applied_state().await.unwrap(), before_applied);
    assert_eq!(sm.state().last_applied(), Some(log_id(2, 1, 7)));
    let current = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    assert!(!dir.path().join("snapshots/snapshot.tmp").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_snapshot_replaces_state_durably() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (_leader_log, mut leader) = pager_raft::open(leader_dir.path()).await.unwrap();
    feed(&mut leader).await;
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (log, mut sm) = pager_raft::open(dir.path()).await.unwrap();
    let mut applied = sm.subscribe_applied();
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    *received = *snapshot.snapshot;
    sm.install_snapshot(&snapshot.meta, received).await.unwrap();

    assert_eq!(state_json(&sm), state_json(&leader));
    assert_eq!(
        sm.applied_state().await.unwrap(),
        leader.applied_state().await.unwrap()
    );
    applied.changed().await.unwrap();
    assert_eq!(*applied.borrow(), snapshot.meta.last_log_id);
    drop_stores(log, sm).await;

    let (_log, mut sm) = pager_raft::open(dir.path()).await.unwrap();
    assert_eq!(state_json(&sm), state_json(&leader));
    let current = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_build_does_not_replace_installed_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (log, mut sm) = pager_raft::open(dir.path()).await.unwrap();
    sm.apply([tick(1, 1, 1)]).await.unwrap();
    // openraft takes the builder, then builds in another task: an install may come between.
    let mut stale = sm.get_snapshot_builder().await;

    let other_dir = tempfile::tempdir().unwrap();
    let (_other_log, mut other) = pager_raft::open(other_dir.path()).await.unwrap();
    feed(&mut other).await;
    let newer = other
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    *received = *newer.snapshot;
    sm.install_snapshot(&newer.meta, received).await.unwrap();

    let built = stale.build_snapshot().await.unwrap();
    assert_eq!(built.meta.last_log_id, Some(log_id(1, 1, 1)));
    let current = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(current.meta, newer.meta);
    drop_stores(log, sm).await;

    let (_log, sm) = pager_raft::open(dir.path()).await.unwrap();
    assert_eq!(state_json(&sm), state_json(&other));
}

/// Set to a directory when this binary runs as the child of the SIGKILL test.
const CRASH_DIR_ENV: &str = "PAGER_RAFT_CRASH_CHILD_DIR";

/// Child side of `sigkill_loses_no_acknowledged_write`: append forever, printing each index once
/// openraft would have been told it is durable. Does nothing in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let (mut log, _sm) = pager_raft::open(Path::new(&dir)).await.unwrap();
    log.save_vote(&Vote::new(7, 1)).await.unwrap();
    println!("vote saved");
    let mut index = 0;
    loop {
        // Two entries per append, and an unawaited commit pointer riding along.
        let entries = [tick(1, index + 1, index + 1), tick(1, index + 2, index + 2)];
        log.blocking_append(entries).await.unwrap();
        index += 2;
        log.save_committed(Some(log_id(1, 1, index))).await.unwrap();
        println!("acked {index}");
    }
}

/// A process killed with SIGKILL mid-append loses nothing it acknowledged. (This checks that
/// acknowledgements follow commits; surviving power loss also relies on redb's fsync.)
#[test]
fn sigkill_loses_no_acknowledged_write() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut vote_saved = false;
    let mut acked = 0u64;
    for line in BufReader::new(stdout).lines() {
        // The test harness may print "test crash_child ... " in front of the first line.
        let line = line.unwrap();
        if line.ends_with("vote saved") {
            vote_saved = true;
        } else if let Some((_, n)) = line.split_once("acked ") {
            acked = n.parse().unwrap();
            if acked >= 100 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        vote_saved && acked >= 100,
        "child stopped early: acked {acked}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut log, _sm) = pager_raft::open(dir.path()).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(7, 1)));
        let entries = log.try_get_log_entries(1..=acked).await.unwrap();
        assert_eq!(entries.len() as u64, acked, "acknowledged entries lost");
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(entry.log_id.index, i as u64 + 1);
        }
        let committed = log
            .read_committed()
            .await
            .unwrap()
            .expect("committed saved");
        assert!(committed.index >= acked - 2, "committed {committed}");
        let state = log.get_log_state().await.unwrap();
        assert!(state.last_log_id.unwrap().index >= acked);
    });
}
