//! The Raft log, the vote and the commit pointer, durable in one redb file.
//!
//! Writes: every write (append, vote, committed, truncate, purge) is queued, in call order, to one
//! writer thread. The thread drains whatever is queued (appends that arrive together share one
//! transaction), commits it with `Durability::Immediate` (redb fsyncs before `commit` returns),
//! and only then completes the callers: `append`'s `LogFlushed` callback, or the awaited reply.
//! One thread and one queue make the writes serialized, as openraft requires.
//!
//! Reads: `append` returns as soon as its entries are queued, but openraft may read them at once
//! (replication to followers, and applying committed entries). Entries are therefore also kept in
//! memory, in the [`Tail`]: every entry appended since the store was opened and not yet purged (or
//! truncated, or evicted past [`MAX_TAIL_BYTES`]). A read of a range the tail covers is answered
//! from memory at once, without waiting for the writer and without touching redb. Only a read
//! that reaches below the tail (entries written by an earlier process, or evicted) goes to redb:
//! each write takes a sequence number, the writer publishes the last committed one, and such a
//! read first waits until every write queued before it is committed, then reads a redb snapshot on
//! a blocking thread. Either way a read sees exactly the writes queued before it.
//!
//! What the tail saves with openraft 0.9 (whose core awaits each append's flush before going on):
//! every commit queues `save_committed` without waiting, and the core then reads the committed
//! entries to apply them, so a read that waited for every queued write waited for one more
//! fsync, on every node, on the apply path; plus a blocking-pool hop, a redb read and a JSON
//! decode per read (replication included).
//!
//! Reading entries that are queued but not yet fsynced is safe, and is what Raft intends
//! (Ongaro's thesis §10.2.1: the leader may send entries to followers before its own write
//! finishes). Durability is promised only through the acknowledgements: `append`'s `LogFlushed`
//! callback, `save_vote`, `truncate` and `purge` complete only after the fsynced commit. openraft
//! counts the leader's own copy of an entry towards the commit quorum only after that callback,
//! and a follower's copy only after the follower answered, which it does after its own callback.
//! So an entry is committed (and applied, and answered to a client) only once a majority has it
//! on disk. A replica that applies a committed entry before its own copy is flushed only changes
//! memory (and possibly a snapshot, which covers only committed entries); if it crashes, its
//! missing log suffix is refilled from the others, as for any lagging replica. Entries that were
//! read but never flushed because the writer failed are not served after the failure: every read
//! then fails, like every write.
//!
//! If a commit fails, the store refuses every later write and every read that would need it:
//! openraft stops the node on a storage error; nothing is retried blindly.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

use crate::error::OpenError;
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig, Vote};

/// Log entries by index; values are the JSON of `openraft::Entry<TypeConfig>`.
const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("logs");
/// Small records by name; values are JSON.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `Vote`: the last vote saved.
const META_VOTE: &str = "vote";
/// `Option<LogId>`: the last committed log id saved.
const META_COMMITTED: &str = "committed";
/// `LogId`: the last purged log id (entries up to it are gone).
const META_PURGED: &str = "last_purged";

/// Most writes the writer thread puts into one transaction.
const MAX_BATCH: usize = 1024;

/// Bound on the encoded size of the entries kept in the in-memory [`Tail`]; the oldest entries
/// are dropped from memory past it. The tail serves reads of entries just appended (apply, and
/// replication to followers that keep up), so a few seconds of writes are enough: 8 MiB holds
/// about 30,000 events, three seconds at the benchmark's peak rate. A follower further behind
/// reads from redb. Decoded entries take about twice their encoded size, and the tail was the
/// largest memory cost after the incidents themselves: at 32 MiB, 100k open incidents loaded in
/// a burst cost ~2,170 B of RSS each on a follower, ~1,950 B at 8 MiB (BENCHMARKS.md).
pub const MAX_TAIL_BYTES: usize = 8 * 1024 * 1024;

/// Most encoded bytes of entries replication puts into one `AppendEntries` (see
/// [`LogReader`]'s `limited_get_log_entries`). 1 MiB is ~100 entries of a busy minute and
/// crosses loopback, or a 100 Mbit/s link, well within a heartbeat interval.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// The write side of the Raft log. openraft owns it; it is not `Clone` because openraft must be
/// its only writer.
pub struct LogStore {
    shared: Arc<Shared>,
    /// To the writer thread, which holds the receiver. When the store is dropped, the thread
    /// finishes what is queued and exits.
    tx: mpsc::Sender<WriteReq>,
}

/// A read-only view of the log, used by openraft's replication tasks (one per follower).
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

/// See [`LogStore::peek`].
#[derive(Clone)]
pub struct LogPeek {
    shared: Weak<Shared>,
}

/// State shared by the store, its readers and the writer thread.
struct Shared {
    /// Dropped (closing the file and releasing its lock) before `closed` below.
    db: Database,
    path: PathBuf,
    /// Sequence number of the last write handed to the writer thread.
    enqueued: AtomicU64,
    /// Written by the writer thread after each commit; readers wait on it.
    progress: watch::Sender<Progress>,
    /// The log's recent entries in memory, as of every queued write.
    tail: Mutex<Tail>,
    /// Never sent on; dropped last, so receivers learn that the database file is closed.
    closed: watch::Sender<()>,
}

/// The end of the log in memory, kept in step with the queued (not necessarily durable) writes.
///
/// Invariant: for every index `i >= from`, the log as of all queued writes has an entry at `i` if
/// and only if `entries` has one, and it is the same entry. Below `from` nothing is known; reads
/// of those indexes go to redb. `append` inserts, `truncate` removes from its index on (and may
/// lower `from` to it: nothing exists beyond), `purge` removes up to its index, and eviction
/// drops the oldest entries and raises `from` past them.
#[derive(Default)]
struct Tail {
    from: u64,
    /// Entry and its encoded size (the unit of [`MAX_TAIL_BYTES`]).
    entries: BTreeMap<u64, (Entry, usize)>,
    bytes: usize,
}

impl Tail {
    /// A tail that starts after the last entry on disk: nothing from `from` on exists yet.
    fn starting_at(from: u64) -> Self {
        Self {
            from,
            entries: BTreeMap::new(),
            bytes: 0,
        }
    }

    fn append(&mut self, index: u64, entry: Entry, size: usize) {
        if index < self.from {
            // Not tracked (an overwrite below the tail); the log on and after `from` is unchanged.
            return;
        }
        if let Some((_, old)) = self.entries.insert(index, (entry, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > MAX_TAIL_BYTES {
            let Some((index, (_, size))) = self.entries.pop_first() else {
                break;
            };
            self.bytes -= size;
            self.from = index + 1;
        }
    }

    /// The log loses every entry from `since` on.
    fn truncate(&mut self, since: u64) {
        let removed = self.entries.split_off(&since);
        self.bytes -= removed.values().map(|(_, size)| size).sum::<usize>();
        self.from = self.from.min(since);
    }

    /// The log loses every entry up to `upto`.
    fn purge(&mut self, upto: u64) {
        let Some(after) = upto.checked_add(1) else {
            self.entries.clear();
            self.bytes = 0;
            return;
        };
        let kept = self.entries.split_off(&after);
        let removed = std::mem::replace(&mut self.entries, kept);
        self.bytes -= removed.values().map(|(_, size)| size).sum::<usize>();
    }

    /// The entries in `range`, if the tail covers it (its start is at or after `from`).
    fn get(&self, range: &(Bound<u64>, Bound<u64>), mut budget: Budget) -> Option<Vec<Entry>> {
        let start = match range.0 {
            Bound::Included(s) => s,
            Bound::Excluded(s) => s.checked_add(1)?,
            Bound::Unbounded => 0,
        };
        if start < self.from {
            return None;
        }
        Some(
            self.entries
                .range((Bound::Included(start), range.1))
                .take_while(|(_, (_, size))| budget.take(*size))
                .map(|(_, (entry, _))| entry.clone())
                .collect(),
        )
    }
}

/// How many encoded bytes of entries one read may still return; the first entry always fits.
#[derive(Debug, Clone, Copy)]
struct Budget {
    left: usize,
    first: bool,
}

impl Budget {
    /// Every entry in the range.
    const UNLIMITED: Budget = Budget::bytes(usize::MAX);

    /// Entries while their encoded sizes add up to at most `max`, and always the first.
    const fn bytes(max: usize) -> Self {
        Budget {
            left: max,
            first: true,
        }
    }

    /// Whether an entry of `size` encoded bytes still fits; counts it if so.
    fn take(&mut self, size: usize) -> bool {
        let fits = self.first || size <= self.left;
        if fits {
            self.left = self.left.saturating_sub(size);
            self.first = false;
        }
        fits
    }
}

#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every write with a sequence number up to this one is committed and durable.
    done: u64,
    /// Set on the first failed commit; no write after that is performed.
    failed: Option<AnyError>,
}

struct WriteReq {
    seq: u64,
    op: WriteOp,
    done: Done,
}

enum WriteOp {
    Append(Vec<(u64, Vec<u8>)>),
    PutMeta { key: &'static str, value: Vec<u8> },
    Truncate { since: u64 },
    Purge { upto: u64, log_id: Vec<u8> },
}

/// Who is told when a write is durable.
enum Done {
    Flushed(LogFlushed<TypeConfig>),
    Reply(oneshot::Sender<Result<(), AnyError>>),
    Nobody,
}

impl Done {
    fn complete(self, result: Result<(), AnyError>) {
        match self {
            Done::Flushed(callback) => callback.log_io_completed(result.map_err(io::Error::other)),
            Done::Reply(tx) => {
                // The caller may have been cancelled; the write is durable regardless.
                let _ = tx.send(result);
            }
            Done::Nobody => {}
        }
    }
}

impl LogStore {
    /// Open (or create) the log at `path` and start its writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let db_err = |e: redb::Error| OpenError::Database {
            path: path.clone(),
            source: Box::new(e),
        };
        let db = Database::create(&path).map_err(|e| db_err(e.into()))?;
        create_tables(&db).map_err(db_err)?;
        let tail_from = match last_index(&db).map_err(db_err)? {
            Some(last) => last.saturating_add(1),
            None => 0,
        };

        let shared = Arc::new(Shared {
            db,
            path: path.clone(),
            enqueued: AtomicU64::new(0),
            progress: watch::channel(Progress::default()).0,
            tail: Mutex::new(Tail::starting_at(tail_from)),
            closed: watch::channel(()).0,
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("raft-log-writer".to_string())
            .spawn(move || writer_loop(writer_shared, rx))
            .map_err(OpenError::SpawnWriter)?;
        tracing::info!(path = %path.display(), "raft log opened");
        Ok(Self { shared, tx })
    }

    /// The file this log lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Resolves once the database file is closed: the store, its readers (held by openraft's
    /// replication tasks) and the writer thread are all gone. Await it after `Raft::shutdown`
    /// before opening the same file again in this process.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shared.closed.subscribe();
        async move { while rx.changed().await.is_ok() {} }
    }

    /// A look at the log for the node's own use that does not keep it open: once openraft
    /// drops the store and its readers, the database closes as before (a restart in the same
    /// process waits for that) and the look finds nothing.
    pub fn peek(&self) -> LogPeek {
        LogPeek {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Queue a write; its sequence number orders it after every write queued before.
    fn submit(&mut self, op: WriteOp, done: Done) -> Result<(), AnyError> {
        let seq = self.shared.enqueued.fetch_add(1, Ordering::AcqRel) + 1;
        if self.tx.send(WriteReq { seq, op, done }).is_err() {
            let err = AnyError::error("the raft log writer thread is gone");
            self.shared.progress.send_modify(|p| {
                p.failed.get_or_insert_with(|| err.clone());
            });
            return Err(err);
        }
        Ok(())
    }

    /// Queue a write and wait until it is durable.
    async fn write(
        &mut self,
        op: WriteOp,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
    ) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        let io_err = |e: AnyError| StorageIOError::new(subject.clone(), verb, e);
        self.submit(op, Done::Reply(tx)).map_err(io_err)?;
        match rx.await {
            Ok(result) => result.map_err(|e| io_err(e).into()),
            Err(_) => Err(io_err(AnyError::error("the raft log writer dropped the write")).into()),
        }
    }
}

impl Shared {
    /// Wait until every write queued so far is durable, then run `read` on a blocking thread.
    async fn read<T, F>(
        self: &Arc<Self>,
        subject: ErrorSubject<NodeId>,
        read: F,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    {
        let io_err = |e: AnyError| {
            StorageError::from(StorageIOError::new(subject.clone(), ErrorVerb::Read, e))
        };
        self.wait_durable().await.map_err(io_err)?;
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || read(&shared.db))
            .await
            .map_err(|e| io_err(AnyError::new(&e)))?
    }

    async fn wait_durable(&self) -> Result<(), AnyError> {
        let target = self.enqueued.load(Ordering::Acquire);
        let mut rx = self.progress.subscribe();
        let progress = match rx
            .wait_for(|p| p.done >= target || p.failed.is_some())
            .await
        {
            Ok(progress) => progress.clone(),
            // Unreachable while `self` holds the sender; kept total anyway.
            Err(_) => return Err(AnyError::error("the raft log is closed")),
        };
        if progress.done >= target {
            return Ok(());
        }
        Err(progress
            .failed
            .unwrap_or_else(|| AnyError::error("the raft log writer stopped")))
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        // Every update of the tail is a few map operations that cannot panic halfway.
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn entries(
        self: &Arc<Self>,
        range: (Bound<u64>, Bound<u64>),
        budget: Budget,
    ) -> Result<Vec<Entry>, StorageError> {
        if range_is_empty(&range) {
            return Ok(Vec::new());
        }
        if let Some(entries) = self.tail().get(&range, budget) {
            // After a failed commit the tail may hold entries that will never be durable.
            if let Some(err) = self.progress.borrow().failed.clone() {
                return Err(StorageIOError::read_logs(err).into());
            }
            return Ok(entries);
        }
        self.read(ErrorSubject::Logs, move |db| {
            let read_err = |e: redb::Error| StorageIOError::read_logs(AnyError::new(&e));
            let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
            let table = txn.open_table(LOGS).map_err(|e| read_err(e.into()))?;
            let mut entries = Vec::new();
            let mut budget = budget;
            for row in table.range::<u64>(range).map_err(|e| read_err(e.into()))? {
                let (index, value) = row.map_err(|e| read_err(e.into()))?;
                if !budget.take(value.value().len()) {
                    break;
                }
                let entry: Entry = serde_json::from_slice(value.value()).map_err(|e| {
                    StorageIOError::read_log_at_index(index.value(), AnyError::new(&e))
                })?;
                entries.push(entry);
            }
            Ok(entries)
        })
        .await
    }

    async fn meta<T>(
        self: &Arc<Self>,
        key: &'static str,
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let err_subject = subject.clone();
        self.read(subject, move |db| {
            let read_err =
                |e: AnyError| StorageIOError::new(err_subject.clone(), ErrorVerb::Read, e);
            get_meta(db, key)
                .map_err(|e| read_err(AnyError::new(&e)))?
                .map(|bytes| serde_json::from_slice(&bytes))
                .transpose()
                .map_err(|e| read_err(AnyError::new(&e)).into())
        })
        .await
    }
}

fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    txn.open_table(LOGS)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(())
}

/// The index of the last entry on disk.
fn last_index(db: &Database) -> Result<Option<u64>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOGS)?;
    let last = table.last()?.map(|(index, _)| index.value());
    Ok(last)
}

fn get_meta(db: &Database, key: &str) -> Result<Option<Vec<u8>>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(META)?;
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// True if no index lies in `range` (redb, like `BTreeMap`, must not get a reversed range).
fn range_is_empty(range: &(Bound<u64>, Bound<u64>)) -> bool {
    let start = match range.0 {
        Bound::Included(s) => s,
        Bound::Excluded(s) => match s.checked_add(1) {
            Some(s) => s,
            None => return true,
        },
        Bound::Unbounded => 0,
    };
    match range.1 {
        Bound::Included(end) => start > end,
        Bound::Excluded(end) => start >= end,
        Bound::Unbounded => false,
    }
}

/// The writer thread: commit what is queued, in order, a batch per transaction.
fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<WriteReq>) {
    /// Whatever way the thread ends, readers must not wait for it any longer.
    struct OnExit<'a>(&'a Shared);
    impl Drop for OnExit<'_> {
        fn drop(&mut self) {
            self.0.progress.send_modify(|p| {
                p.failed
                    .get_or_insert_with(|| AnyError::error("the raft log writer thread stopped"));
            });
        }
    }
    let _on_exit = OnExit(&shared);

    let mut failed: Option<AnyError> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        let last_seq = batch.last().map_or(0, |req| req.seq);

        let result = match &failed {
            Some(err) => Err(err.clone()),
            None => commit_batch(&shared.db, &batch).map_err(|e| AnyError::new(&e)),
        };
        match &result {
            Ok(()) => {
                tracing::trace!(writes = batch.len(), last_seq, "raft log batch committed");
                shared.progress.send_modify(|p| p.done = last_seq);
            }
            Err(err) => {
                if failed.is_none() {
                    tracing::error!(
                        path = %shared.path.display(),
                        cause = %err,
                        "raft log commit failed; refusing all further writes"
                    );
                    failed = Some(err.clone());
                }
                shared.progress.send_modify(|p| {
                    p.failed.get_or_insert_with(|| err.clone());
                });
            }
        }
        for req in batch {
            req.done.complete(result.clone());
        }
    }
}

/// Perform a batch of writes in one transaction; durable when this returns `Ok`.
fn commit_batch(db: &Database, batch: &[WriteReq]) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    {
        let mut logs = txn.open_table(LOGS)?;
        let mut meta = txn.open_table(META)?;
        for req in batch {
            match &req.op {
                WriteOp::Append(rows) => {
                    for (index, bytes) in rows {
                        logs.insert(*index, bytes.as_slice())?;
                    }
                }
                WriteOp::PutMeta { key, value } => {
                    meta.insert(*key, value.as_slice())?;
                }
                WriteOp::Truncate { since } => {
                    logs.retain_in(*since.., |_, _| false)?;
                }
                WriteOp::Purge { upto, log_id } => {
                    meta.insert(META_PURGED, log_id.as_slice())?;
                    logs.retain_in(..=*upto, |_, _| false)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn to_json<T: serde::Serialize>(
    value: &T,
    subject: ErrorSubject<NodeId>,
) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(value)
        .map_err(|e| StorageIOError::new(subject, ErrorVerb::Write, AnyError::new(&e)).into())
}

fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    /// Entries in `range` whose writes were queued before this call; waits for them to be durable.
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.shared.entries(bounds(&range), Budget::UNLIMITED).await
    }
}

impl LogPeek {
    /// The id (term and index) of the entry at `index`, as of every write queued before this
    /// call; `None` when the log holds no entry there (purged, truncated or not yet written) or
    /// is closed.
    pub async fn log_id_at(&self, index: u64) -> Result<Option<LogId>, StorageError> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(None);
        };
        let entries = shared
            .entries(
                (Bound::Included(index), Bound::Included(index)),
                Budget::UNLIMITED,
            )
            .await?;
        Ok(entries.first().map(|e| e.log_id))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    /// Entries in `range` whose writes were queued before this call; waits for them to be durable.
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.shared.entries(bounds(&range), Budget::UNLIMITED).await
    }

    /// What replication sends in one `AppendEntries`: the entries from `start` while they add up
    /// to [`MAX_APPEND_BYTES`] (at least one). openraft 0.9 otherwise reads up to
    /// `max_payload_entries` (300) entries, each up to 256 commands, and must send, decode and
    /// fsync them all within one heartbeat interval (its timeout for `AppendEntries`): a
    /// follower that fell behind a burst of large events timed out on every try and never
    /// caught up by replication (`crates/pagerd/tests/t92_catch_up.rs`).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.shared
            .entries(
                (Bound::Included(start), Bound::Excluded(end)),
                Budget::bytes(MAX_APPEND_BYTES),
            )
            .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    /// Last purged and last present log id, as durable on disk after all queued writes.
    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.shared
            .read(ErrorSubject::Logs, |db| {
                let read_err = |e: AnyError| StorageIOError::read_logs(e);
                let purged: Option<LogId> = get_meta(db, META_PURGED)
                    .map_err(|e| read_err(AnyError::new(&e)))?
                    .map(|bytes| serde_json::from_slice(&bytes))
                    .transpose()
                    .map_err(|e| read_err(AnyError::new(&e)))?;
                let txn = db
                    .begin_read()
                    .map_err(|e| read_err(AnyError::new(&redb::Error::from(e))))?;
                let table = txn
                    .open_table(LOGS)
                    .map_err(|e| read_err(AnyError::new(&redb::Error::from(e))))?;
                let last = match table
                    .last()
                    .map_err(|e| read_err(AnyError::new(&redb::Error::from(e))))?
                {
                    Some((index, value)) => {
                        let entry: Entry = serde_json::from_slice(value.value()).map_err(|e| {
                            StorageIOError::read_log_at_index(index.value(), AnyError::new(&e))
                        })?;
                        Some(entry.log_id)
                    }
                    None => None,
                };
                Ok(LogState {
                    last_purged_log_id: purged,
                    last_log_id: last.or(purged),
                })
            })
            .await
    }

    /// A cheap reader sharing this store's database; sees every write queued before each read.
    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Durable (fsynced) before it returns; idempotent.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let value = to_json(vote, ErrorSubject::Vote)?;
        self.write(
            WriteOp::PutMeta {
                key: META_VOTE,
                value,
            },
            ErrorSubject::Vote,
            ErrorVerb::Write,
        )
        .await
    }

    /// The last vote saved by `save_vote`, as on disk.
    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.shared.meta(META_VOTE, ErrorSubject::Vote).await
    }

    /// Queued in order with all writes and made durable by the next commit, not awaited: losing
    /// the latest value in a crash only means replaying more of the log on restart. Idempotent.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let value = to_json(&committed, ErrorSubject::Store)?;
        self.submit(
            WriteOp::PutMeta {
                key: META_COMMITTED,
                value,
            },
            Done::Nobody,
        )
        .map_err(|e| StorageIOError::new(ErrorSubject::Store, ErrorVerb::Write, e).into())
    }

    /// The last committed log id saved, as durable on disk after all queued writes.
    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .shared
            .meta::<Option<LogId>>(META_COMMITTED, ErrorSubject::Store)
            .await?
            .flatten())
    }

    /// Returns once queued (entries are then readable); `callback` runs only after the commit
    /// holding them has returned, i.e. they are fsynced. Re-appending an index overwrites it.
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, AnyError::new(&e)))?;
            rows.push((entry.log_id.index, bytes));
            encoded.push(entry);
        }
        {
            // Readable at once, before they are durable: see the module doc for why that is
            // safe. (Only openraft's `&mut self` calls change the tail, one at a time.)
            let mut tail = self.shared.tail();
            for (entry, (_, bytes)) in encoded.into_iter().zip(&rows) {
                tail.append(entry.log_id.index, entry, bytes.len());
            }
        }
        self.submit(WriteOp::Append(rows), Done::Flushed(callback))
            .map_err(|e| StorageIOError::write_logs(e).into())
    }

    /// Deletes entries from `log_id.index` on, in one transaction (no hole); durable before it
    /// returns; idempotent.
    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(since = %log_id, "truncate raft log");
        self.shared.tail().truncate(log_id.index);
        self.write(
            WriteOp::Truncate {
                since: log_id.index,
            },
            ErrorSubject::Log(log_id),
            ErrorVerb::Delete,
        )
        .await
    }

    /// Records `log_id` as last purged and deletes entries up to it, in one transaction (no
    /// hole); durable before it returns; idempotent.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(upto = %log_id, "purge raft log");
        let value = to_json(&log_id, ErrorSubject::Log(log_id))?;
        self.shared.tail().purge(log_id.index);
        self.write(
            WriteOp::Purge {
                upto: log_id.index,
                log_id: value,
            },
            ErrorSubject::Log(log_id),
            ErrorVerb::Delete,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64) -> Entry {
        Entry {
            log_id: openraft::testing::log_id(1, 1, index),
            payload: openraft::EntryPayload::Blank,
        }
    }

    fn indexes(tail: &Tail, range: (Bound<u64>, Bound<u64>)) -> Option<Vec<u64>> {
        limited(tail, range, Budget::UNLIMITED)
    }

    fn limited(tail: &Tail, range: (Bound<u64>, Bound<u64>), budget: Budget) -> Option<Vec<u64>> {
        tail.get(&range, budget)
            .map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn a_limited_read_stops_at_the_byte_budget_but_returns_one_entry() {
        use Bound::*;
        let mut tail = Tail::starting_at(1);
        for i in 1..=5 {
            tail.append(i, ent(i), 10);
        }
        let all = (Included(1), Unbounded);
        assert_eq!(limited(&tail, all, Budget::bytes(25)), Some(vec![1, 2]));
        assert_eq!(limited(&tail, all, Budget::bytes(30)), Some(vec![1, 2, 3]));
        // The first entry always, even when alone it exceeds the budget.
        assert_eq!(limited(&tail, all, Budget::bytes(5)), Some(vec![1]));
        assert_eq!(
            limited(&tail, (Included(4), Unbounded), Budget::bytes(1000)),
            Some(vec![4, 5])
        );
    }

    #[test]
    fn tail_follows_append_truncate_purge() {
        use Bound::*;
        let mut tail = Tail::starting_at(5);
        for i in 5..=10 {
            tail.append(i, ent(i), 10);
        }
        assert_eq!(tail.bytes, 60);
        // Below the tail: not covered, read from disk.
        assert_eq!(indexes(&tail, (Included(4), Excluded(7))), None);
        assert_eq!(indexes(&tail, (Included(5), Excluded(7))), Some(vec![5, 6]));
        assert_eq!(indexes(&tail, (Excluded(8), Unbounded)), Some(vec![9, 10]));
        assert_eq!(indexes(&tail, (Included(11), Unbounded)), Some(vec![]));

        tail.truncate(9);
        assert_eq!(
            indexes(&tail, (Included(5), Unbounded)),
            Some(vec![5, 6, 7, 8])
        );
        assert_eq!(tail.bytes, 40);
        // Truncating below the tail: nothing exists from there on, so the tail covers it.
        tail.truncate(3);
        assert_eq!(tail.from, 3);
        assert_eq!(indexes(&tail, (Included(3), Unbounded)), Some(vec![]));
        for i in 3..=8 {
            tail.append(i, ent(i), 10);
        }
        tail.purge(5);
        assert_eq!(
            indexes(&tail, (Included(6), Unbounded)),
            Some(vec![6, 7, 8])
        );
        assert_eq!(tail.bytes, 30);
        // An append below `from` is not tracked.
        let mut tail = Tail::starting_at(5);
        tail.append(4, ent(4), 10);
        assert_eq!(tail.bytes, 0);
        assert_eq!(indexes(&tail, (Included(4), Unbounded)), None);
    }

    #[test]
    fn tail_evicts_oldest_past_its_bound() {
        use Bound::*;
        let mut tail = Tail::starting_at(1);
        let size = MAX_TAIL_BYTES / 4;
        for i in 1..=6 {
            tail.append(i, ent(i), size);
        }
        assert_eq!(tail.from, 3);
        assert_eq!(tail.bytes, 4 * size);
        assert_eq!(indexes(&tail, (Included(2), Unbounded)), None);
        assert_eq!(
            indexes(&tail, (Included(3), Unbounded)),
            Some(vec![3, 4, 5, 6])
        );
    }

    #[test]
    fn empty_ranges() {
        use Bound::*;
        assert!(range_is_empty(&(Included(5), Excluded(5))));
        assert!(range_is_empty(&(Included(6), Included(5))));
        assert!(range_is_empty(&(Excluded(u64::MAX), Unbounded)));
        assert!(!range_is_empty(&(Included(5), Included(5))));
        assert!(!range_is_empty(&(Unbounded, Unbounded)));
        assert!(!range_is_empty(&(Excluded(4), Excluded(6))));
    }
}
