//! The replicated state in memory, and its snapshots on disk.
//!
//! The state (`pager_core::State`) is applied in memory and never written per entry; it becomes
//! durable through snapshots. A snapshot is the JSON `{meta, state}` in `DIR/snapshot.json`,
//! replaced atomically: written to `DIR/snapshot.tmp`, fsynced, renamed over, directory fsynced.
//! openraft purges log entries only after a snapshot covering them was built (and so, here,
//! persisted), so on restart `snapshot.json` plus the log after it rebuild the state.

use std::fs::{self, File};
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    StorageIOError,
};
use pager_core::{Effect, LogMeta, Response, State};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::OpenError;
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "snapshot.json";
const SNAPSHOT_TMP: &str = "snapshot.tmp";

/// The state machine openraft drives (it owns it; the daemon keeps a [`StateHandle`]).
pub struct StateMachineStore {
    inner: Arc<Inner>,
    snapshots: Arc<SnapshotFiles>,
}

/// Read access to the replicated state for the daemon (API reads, scheduler, dispatcher).
/// Cheap to clone.
#[derive(Clone)]
pub struct StateHandle {
    inner: Arc<Inner>,
}

struct Inner {
    /// Written only by `apply` and `install_snapshot` (openraft's state machine task); read by
    /// the daemon through [`StateHandle`] and by snapshot building. A std lock: no one holds it
    /// across an `.await`, and `State::apply` is pure and quick.
    machine: RwLock<Machine>,
    /// Last applied log id, sent after each applied batch and each installed snapshot. The
    /// daemon's dispatcher and scheduler hold receivers.
    applied_tx: watch::Sender<Option<LogId>>,
    /// Where each applied batch's [`Effect`]s go (the daemon's dispatcher and scheduler);
    /// unset: they are dropped.
    effects: OnceLock<EffectSink>,
}

/// Receives the effects of each applied batch, in log order, after the state changed and
/// before the applied index is published. Called on openraft's state machine task: it must
/// not block (hand the effects to a channel).
pub type EffectSink = Box<dyn Fn(Vec<Effect>) + Send + Sync>;

#[derive(Default)]
struct Machine {
    state: State,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The snapshot directory. The mutex serializes file writes (builds run in their own tasks,
/// concurrently with installs) and guards the meta of the snapshot in `snapshot.json`.
struct SnapshotFiles {
    dir: PathBuf,
    current: Mutex<Option<SnapshotMeta>>,
}

/// The snapshot format, for writing without cloning.
#[derive(Serialize)]
pub(crate) struct SnapshotRef<'a> {
    pub(crate) meta: &'a SnapshotMeta,
    pub(crate) state: &'a State,
}

/// The snapshot format, for reading.
#[derive(Deserialize)]
pub(crate) struct SnapshotOwned {
    pub(crate) meta: SnapshotMeta,
    pub(crate) state: State,
}

impl StateHandle {
    /// Run `f` on the state under the read lock. Keep `f` short: applying waits for it. A lock
    /// poisoned by a panic in `State::apply` is read anyway: that panic has already stopped the
    /// Raft node (openraft reports it as fatal).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let machine = self
            .inner
            .machine
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&machine.state)
    }

    /// Like [`read`](Self::read), also passing the log id of the last entry reflected in this
    /// state (for reads that must include a given write).
    pub fn read_with_applied<R>(&self, f: impl FnOnce(&State, Option<LogId>) -> R) -> R {
        let machine = self
            .inner
            .machine
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&machine.state, machine.last_applied)
    }

    /// Run `f` on the state, its last applied log id and membership, under the read lock.
    pub(crate) fn with_machine<R>(
        &self,
        f: impl FnOnce(&State, Option<LogId>, &StoredMembership) -> R,
    ) -> R {
        let machine = self
            .inner
            .machine
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        f(&machine.state, machine.last_applied, &machine.membership)
    }

    /// The log id of the last applied entry.
    pub fn last_applied(&self) -> Option<LogId> {
        *self.inner.applied_tx.borrow()
    }

    /// A receiver that changes after every applied batch and installed snapshot.
    pub fn subscribe_applied(&self) -> watch::Receiver<Option<LogId>> {
        self.inner.applied_tx.subscribe()
    }
}

impl StateMachineStore {
    /// Open the snapshot directory `dir` (created if missing) and load the latest snapshot, if
    /// any. The log after the snapshot is replayed by openraft when the node starts.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let tmp = dir.join(SNAPSHOT_TMP);
        match fs::remove_file(&tmp) {
            Ok(()) => tracing::info!(path = %tmp.display(), "removed unfinished snapshot"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(OpenError::ReadSnapshot { path: tmp, source }),
        }

        let path = dir.join(SNAPSHOT_FILE);
        let (machine, current) = match fs::read(&path) {
            Ok(bytes) => {
                let snapshot: SnapshotOwned = serde_json::from_slice(&bytes).map_err(|source| {
                    OpenError::CorruptSnapshot {
                        path: path.clone(),
                        source,
                    }
                })?;
                tracing::info!(path = %path.display(), meta = %snapshot.meta, "snapshot loaded");
                let machine = Machine {
                    state: snapshot.state,
                    last_applied: snapshot.meta.last_log_id,
                    membership: snapshot.meta.last_membership.clone(),
                };
                (machine, Some(snapshot.meta))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Machine::default(), None),
            Err(source) => return Err(OpenError::ReadSnapshot { path, source }),
        };

        let applied_tx = watch::channel(machine.last_applied).0;
        Ok(Self {
            inner: Arc::new(Inner {
                machine: RwLock::new(machine),
                applied_tx,
                effects: OnceLock::new(),
            }),
            snapshots: Arc::new(SnapshotFiles {
                dir,
                current: Mutex::new(current),
            }),
        })
    }

    /// A read handle on the state, for the daemon.
    pub fn state(&self) -> StateHandle {
        StateHandle {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A receiver that changes after every applied batch and installed snapshot.
    pub fn subscribe_applied(&self) -> watch::Receiver<Option<LogId>> {
        self.inner.applied_tx.subscribe()
    }

    /// Send every applied batch's effects to `sink` from now on. Set it before Raft starts
    /// (Raft may apply entries as soon as it is built); only the first sink counts, and
    /// false says one was already set.
    pub fn on_effects(&self, sink: EffectSink) -> bool {
        self.inner.effects.set(sink).is_ok()
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.snapshots.dir
    }

    /// Write `bytes` (the snapshot format) as the current snapshot file, durably; for
    /// seeding a node from a backup before it starts.
    pub(crate) fn install_file(&self, meta: &SnapshotMeta, bytes: &[u8]) -> io::Result<()> {
        self.snapshots.write_file(bytes)?;
        *self
            .snapshots
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(meta.clone());
        Ok(())
    }
}

fn poisoned() -> StorageError {
    StorageIOError::new(
        ErrorSubject::StateMachine,
        ErrorVerb::Write,
        AnyError::error("state lock poisoned: State::apply panicked"),
    )
    .into()
}

fn join_error(subject: ErrorSubject<u64>, e: tokio::task::JoinError) -> StorageError {
    StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(&e)).into()
}

impl SnapshotFiles {
    /// Make `bytes` the current snapshot, durably. With `only_if_newer`, a snapshot older than
    /// the current one is not written (a slow build finishing after an install); returns
    /// whether it was written.
    fn persist(
        &self,
        meta: &SnapshotMeta,
        bytes: &[u8],
        only_if_newer: bool,
    ) -> Result<bool, StorageError> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if only_if_newer {
            if let Some(cur) = current.as_ref() {
                if cur.last_log_id > meta.last_log_id {
                    tracing::info!(current = %cur, built = %meta, "not replacing a newer snapshot");
                    return Ok(false);
                }
            }
        }
        self.write_file(bytes).map_err(|e| {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        *current = Some(meta.clone());
        Ok(true)
    }

    /// tmp file, fsync, rename over the snapshot, fsync the directory (so the rename is durable).
    fn write_file(&self, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.dir.join(SNAPSHOT_FILE))?;
        File::open(&self.dir)?.sync_all()
    }

    fn read_current(&self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(meta) = current.clone() else {
            return Ok(None);
        };
        let bytes = fs::read(self.dir.join(SNAPSHOT_FILE)).map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))
        })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// A snapshot id unique enough to tell two builds at the same log id apart.
fn snapshot_id(last: Option<LogId>) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    match last {
        Some(id) => format!("{}-{}-{}", id.leader_id.get_term(), id.index, millis),
        None => format!("0-0-{millis}"),
    }
}

/// A point-in-time copy of the state, taken when openraft asks for a builder, persisted by
/// `build_snapshot` (which openraft runs in its own task, concurrently with applying).
pub struct SnapshotBuilder {
    /// The copied state and its meta, or why they could not be copied.
    view: Result<Arc<(State, SnapshotMeta)>, StorageError>,
    snapshots: Arc<SnapshotFiles>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Serializes and persists (fsync + rename) the copied state before returning; a snapshot
    /// older than the current file (an install happened meanwhile) is returned but not written.
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let view = self.view.clone()?;
        let meta = view.1.clone();
        let snapshots = Arc::clone(&self.snapshots);
        let bytes = tokio::task::spawn_blocking(move || {
            let (state, meta) = &*view;
            let bytes = serde_json::to_vec(&SnapshotRef { meta, state }).map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e))
            })?;
            snapshots.persist(meta, &bytes, true)?;
            Ok::<_, StorageError>(bytes)
        })
        .await
        .map_err(|e| join_error(ErrorSubject::Snapshot(Some(meta.signature())), e))??;
        tracing::info!(meta = %meta, bytes = bytes.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    /// In-memory; durable only as of the last snapshot (openraft replays the log after it).
    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let machine = self.inner.machine.read().map_err(|_| poisoned())?;
        Ok((machine.last_applied, machine.membership.clone()))
    }

    /// Applies in memory (not persisted; see `applied_state`), then publishes the last applied
    /// log id. Deterministic: the same entries give the same state and responses anywhere. Each
    /// entry answers one response per command it carries, in order (its commands share its
    /// `LogMeta`); a blank or membership entry answers `[Noop]`.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut effects = Vec::new();
        let last_applied = {
            let mut machine = self.inner.machine.write().map_err(|_| poisoned())?;
            for entry in entries {
                let log_id = entry.log_id;
                machine.last_applied = Some(log_id);
                let response = match entry.payload {
                    EntryPayload::Blank => vec![Response::Noop],
                    EntryPayload::Normal(proposal) => {
                        let meta = LogMeta {
                            index: log_id.index,
                            term: log_id.leader_id.get_term(),
                        };
                        let state = &mut machine.state;
                        proposal
                            .0
                            .iter()
                            .map(|cmd| {
                                let applied = state.apply(meta, cmd);
                                effects.extend(applied.effects);
                                applied.response
                            })
                            .collect()
                    }
                    EntryPayload::Membership(membership) => {
                        machine.membership = StoredMembership::new(Some(log_id), membership);
                        vec![Response::Noop]
                    }
                };
                responses.push(response);
            }
            machine.last_applied
        };
        if !effects.is_empty() {
            if let Some(sink) = self.inner.effects.get() {
                sink(effects);
            }
        }
        if !responses.is_empty() {
            self.inner.applied_tx.send_replace(last_applied);
        }
        Ok(responses)
    }

    /// Copies the state, its last applied log id and membership under the read lock.
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let view = match self.inner.machine.read() {
            Ok(machine) => {
                let meta = SnapshotMeta {
                    last_log_id: machine.last_applied,
                    last_membership: machine.membership.clone(),
                    snapshot_id: snapshot_id(machine.last_applied),
                };
                Ok(Arc::new((machine.state.clone(), meta)))
            }
            Err(_) => Err(poisoned()),
        };
        SnapshotBuilder {
            view,
            snapshots: Arc::clone(&self.snapshots),
        }
    }

    /// An empty in-memory buffer for openraft to fill with received snapshot chunks.
    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Persists the snapshot (fsync + rename) before replacing the state; replaces the previous
    /// snapshot file. Idempotent.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let meta = meta.clone();
        let snapshots = Arc::clone(&self.snapshots);
        let file_meta = meta.clone();
        let state = tokio::task::spawn_blocking(move || {
            let signature = Some(file_meta.signature());
            let received: SnapshotOwned = serde_json::from_slice(&bytes)
                .map_err(|e| StorageIOError::read_snapshot(signature.clone(), AnyError::new(&e)))?;
            let bytes = if received.meta == file_meta {
                bytes
            } else {
                tracing::warn!(
                    received = %received.meta,
                    installing = %file_meta,
                    "snapshot data carries a different meta; rewriting it"
                );
                serde_json::to_vec(&SnapshotRef {
                    meta: &file_meta,
                    state: &received.state,
                })
                .map_err(|e| StorageIOError::write_snapshot(signature, AnyError::new(&e)))?
            };
            snapshots.persist(&file_meta, &bytes, false)?;
            Ok::<_, StorageError>(received.state)
        })
        .await
        .map_err(|e| join_error(ErrorSubject::Snapshot(Some(meta.signature())), e))??;

        {
            let mut machine = self.inner.machine.write().map_err(|_| poisoned())?;
            machine.state = state;
            machine.last_applied = meta.last_log_id;
            machine.membership = meta.last_membership.clone();
        }
        self.inner.applied_tx.send_replace(meta.last_log_id);
        tracing::info!(meta = %meta, "snapshot installed");
        Ok(())
    }

    /// The snapshot in `snapshot.json`, read from disk, or `None` if none was built or installed.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let snapshots = Arc::clone(&self.snapshots);
        tokio::task::spawn_blocking(move || snapshots.read_current())
            .await
            .map_err(|e| join_error(ErrorSubject::Snapshot(None), e))?
    }
}
