//! Errors of opening the stores. Errors while running go to openraft as [`StorageError`]s.
//!
//! [`StorageError`]: crate::types::StorageError

use std::path::PathBuf;

/// Why a store could not be opened. Any of these means the node must not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("open raft log {path}: {source}")]
    Database {
        path: PathBuf,
        source: Box<redb::Error>,
    },
    #[error("read snapshot {path}: {source}")]
    ReadSnapshot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {path} is not valid: {source}")]
    CorruptSnapshot {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("start the raft log writer thread: {0}")]
    SpawnWriter(std::io::Error),
    #[error("opening task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}
