//! Backups: a consistent copy of the replicated state in a checksummed file,
//! and seeding the first node of a new cluster from one when a majority of
//! the old cluster is lost for good.
//!
//! A backup file is one header line and a body:
//!
//! ```text
//! pagerd-backup/1 term=7 index=48213 bytes=1843302 sha256=9f86d0…\n
//! {"meta":{…},"state":{…}}          <- the snapshot format of `snapshots/snapshot.json`
//! ```
//!
//! The body is the state as of one applied log index (a prefix of the log,
//! never a torn read: it is serialized under the state's read lock). Restoring
//! writes it as the node's snapshot with a membership of that node alone, a
//! vote of the backup's term and the log purged up to the backup's index; the
//! node then elects itself at the next term and the other nodes join it as new
//! members and catch up by snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use openraft::storage::RaftLogStorage;
use sha2::{Digest, Sha256};

use crate::state_machine::{SnapshotOwned, SnapshotRef, StateHandle};
use crate::types::{LogId, Membership, PeerNode, SnapshotMeta, StoredMembership, Vote};
use crate::{LOG_FILE, SNAPSHOT_DIR};

/// The first word of a backup file.
pub const FORMAT: &str = "pagerd-backup/1";

/// What a backup holds, as its header line states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Term of the last log entry the state reflects.
    pub term: u64,
    /// Index of that entry.
    pub index: u64,
    /// Length of the body in bytes.
    pub bytes: u64,
    /// SHA-256 of the body, lowercase hex.
    pub sha256: String,
}

impl BackupInfo {
    /// The header line, newline included.
    pub fn header(&self) -> String {
        format!(
            "{FORMAT} term={} index={} bytes={} sha256={}\n",
            self.term, self.index, self.bytes, self.sha256
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a pagerd backup: {0}")]
    Format(String),
    #[error("backup is damaged: {0}")]
    Checksum(String),
    #[error("encode state: {0}")]
    Encode(serde_json::Error),
    #[error("data dir {0} already holds a raft log or snapshot; restore only into an empty one")]
    NotEmpty(String),
    #[error("restore: {0}")]
    Io(String),
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl StateHandle {
    /// The state as of the last applied entry, in the backup body format,
    /// with its header. Only the copy is taken under the read lock (cheap:
    /// incidents and deliveries are shared, copy on write); encoding, the slow
    /// part, runs after apply can go on.
    pub fn export(&self) -> Result<(BackupInfo, Vec<u8>), BackupError> {
        let (state, last, membership) = self.with_machine(|state, last_applied, membership| {
            (state.clone(), last_applied, membership.clone())
        });
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id: format!("backup-{}", last.map_or(0, |l| l.index)),
        };
        let body = serde_json::to_vec(&SnapshotRef {
            meta: &meta,
            state: &state,
        })
        .map_err(BackupError::Encode)?;
        let info = BackupInfo {
            term: last.map_or(0, |l| l.leader_id.get_term()),
            index: last.map_or(0, |l| l.index),
            bytes: body.len() as u64,
            sha256: sha256_hex(&body),
        };
        Ok((info, body))
    }
}

/// Split a backup file into its header and body, checking the format, the
/// length and the checksum.
pub fn parse(file: &[u8]) -> Result<(BackupInfo, &[u8]), BackupError> {
    let newline = file
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| BackupError::Format("no header line".into()))?;
    let header = std::str::from_utf8(&file[..newline])
        .map_err(|_| BackupError::Format("header is not text".into()))?;
    let mut words = header.split(' ');
    if words.next() != Some(FORMAT) {
        return Err(BackupError::Format(format!(
            "header does not start with {FORMAT}"
        )));
    }
    let mut fields = BTreeMap::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| BackupError::Format(format!("header field {w:?}")))?;
        fields.insert(k, v);
    }
    let number = |k: &str| -> Result<u64, BackupError> {
        fields
            .get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| BackupError::Format(format!("header field {k} missing or not a number")))
    };
    let info = BackupInfo {
        term: number("term")?,
        index: number("index")?,
        bytes: number("bytes")?,
        sha256: fields
            .get("sha256")
            .map(|s| s.to_string())
            .ok_or_else(|| BackupError::Format("header field sha256 missing".into()))?,
    };
    let body = &file[newline + 1..];
    if body.len() as u64 != info.bytes {
        return Err(BackupError::Checksum(format!(
            "body is {} bytes, header says {} (truncated?)",
            body.len(),
            info.bytes
        )));
    }
    let actual = sha256_hex(body);
    if actual != info.sha256 {
        return Err(BackupError::Checksum(format!(
            "sha256 {actual} differs from the header's {}",
            info.sha256
        )));
    }
    Ok((info, body))
}

/// Seed the empty Raft directory `dir` of node `id` (reached at `node`)
/// from backup `file`: the snapshot, a membership of this node alone, the
/// backup's term as vote, the log purged up to the backup's index. Start the
/// node afterwards (it need not bootstrap: it is initialised) and add the
/// others with `AddNode`.
pub async fn restore(
    dir: &Path,
    file: &[u8],
    id: u64,
    node: PeerNode,
) -> Result<BackupInfo, BackupError> {
    let (info, body) = parse(file)?;
    let io = |what: &str, e: &dyn std::fmt::Display| BackupError::Io(format!("{what}: {e}"));
    if dir.join(LOG_FILE).exists() || dir.join(SNAPSHOT_DIR).join("snapshot.json").exists() {
        return Err(BackupError::NotEmpty(dir.display().to_string()));
    }
    let SnapshotOwned { meta, state } =
        serde_json::from_slice(body).map_err(|e| BackupError::Format(format!("body: {e}")))?;
    let last: LogId = meta
        .last_log_id
        .ok_or_else(|| BackupError::Format("backup of an empty cluster".into()))?;
    let membership = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, node)]));
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!("restored-{}-{}", last.leader_id.get_term(), last.index),
    };
    let snapshot = serde_json::to_vec(&SnapshotRef {
        meta: &meta,
        state: &state,
    })
    .map_err(BackupError::Encode)?;

    let (mut log, sm) = crate::open(dir).await.map_err(|e| io("open stores", &e))?;
    sm.install_file(&meta, &snapshot)
        .map_err(|e| io("write snapshot", &e))?;
    log.save_vote(&Vote::new(last.leader_id.get_term(), id))
        .await
        .map_err(|e| io("save vote", &e))?;
    log.purge(last).await.map_err(|e| io("purge log", &e))?;
    log.save_committed(Some(last))
        .await
        .map_err(|e| io("save committed", &e))?;
    let closed = log.closed();
    drop(log);
    drop(sm);
    closed.await;
    Ok(info)
}
