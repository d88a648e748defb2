//! pager-raft: replication of pagerd's state through Raft (openraft 0.9).
//!
//! This crate owns everything between `pager-core`'s pure state machine and the wire: the
//! openraft type config, the durable Raft log, the in-memory state with its snapshots, and the
//! node-to-node gRPC service (Raft RPCs and write forwarding). The daemon wires it up; nothing
//! here knows about alert sources, notifications or the public API.
//!
//! ```text
//!  client write ──▶ Raft::client_write ──▶ batch ──▶ LogStore::append (redb, fsync) ──▶ peers
//!                                                                                 │
//!  StateHandle::read ◀── StateMachineStore::apply ◀── committed by a majority ◀───┘
//!  subscribe_applied ◀─┘        (pager_core::State::apply)
//! ```
//!
//! Main types:
//! - [`Raft`]: openraft's `Raft` whose `client_write` puts concurrent commands into one log
//!   entry (a [`Proposal`]); see [`batch`] for why and which commands.
//! - [`LogStore`] / [`LogReader`]: log entries, vote, committed and purged log ids in one redb
//!   file; every write is fsynced before openraft is told it is durable.
//! - [`StateMachineStore`]: `pager_core::State` in memory; [`StateHandle`] lets the daemon read
//!   it and wake on each applied entry; snapshots are JSON files replaced atomically.
//! - [`Network`] / [`PeerClients`]: outgoing peer RPCs over cached tonic channels; `forward`.
//! - [`RaftService`] / [`serve_peers`]: the incoming peer gRPC service; [`serve_peers_tls`]
//!   serves it over (mutual) TLS, as [`ClientOptions::tls`] dials peers (see `pager-tls`).
//! - [`RaftTimings`]: validated timings → `openraft::Config`.
//!
//! Layout on disk, under the node's Raft directory (see [`open`]):
//! - `raft-log.redb`: the log store.
//! - `snapshots/snapshot.json`: the latest snapshot (`snapshot.tmp` while one is written).
//!
//! Wiring, in the daemon:
//!
//! ```ignore
//! let config = Arc::new(timings.validate()?);                 // RaftTimings → openraft::Config
//! let (log, sm) = pager_raft::open(&raft_dir).await?;
//! let state = sm.state();                                     // StateHandle: read(|s| ..)
//! let applied = sm.subscribe_applied();                       // wakes dispatcher/scheduler
//! let peers = PeerClients::new(rpc_timeout);                  // shared channel pool
//! let raft = Raft::new(id, config, Network::new(peers.clone()), log, sm).await?;
//! tokio::spawn(serve_peers(peer_listener, raft.clone(), forward_fn, shutdown));
//! // follower: peers.forward(&leader.peer_addr, json, timeout).await
//! ```
//!
//! Modules: `types` (type config, aliases), `batch`, `log_store`, `state_machine`, `network`,
//! `service`, `config`, `error`.

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// The error types in our signatures are mostly fixed by openraft's storage traits
// (`StorageError`, 224 bytes), tonic (`Status`) and redb (`redb::Error`); they are returned on
// rare failure paths only, so their size does not matter here.
#![allow(clippy::result_large_err)]

pub mod backup;
pub mod batch;
pub mod config;
pub mod elections;
pub mod error;
pub mod log_store;
pub mod network;
pub mod service;
pub mod state_machine;
pub mod transfer;
pub mod types;

use std::path::Path;

pub use config::{RaftTimings, TimingsError};
pub use error::OpenError;
pub use log_store::{LogPeek, LogReader, LogStore};
pub use network::{ClientOptions, Network, PeerAddrError, PeerClients, PeerConnection};
pub use service::{serve_peers, serve_peers_tls, ForwardFn, RaftService, ServeError};
pub use state_machine::{EffectSink, SnapshotBuilder, StateHandle, StateMachineStore};
pub use types::{
    ClientWriteError, ClientWriteResponse, Entry, ForwardToLeader, LogId, NodeId, PeerNode,
    Proposal, Raft, RaftError, RaftMetrics, SnapshotMeta, StorageError, TypeConfig, Vote,
};

/// File name of the log store inside the Raft directory.
pub const LOG_FILE: &str = "raft-log.redb";
/// Directory name of the snapshots inside the Raft directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// Open both stores of a node under `dir` (created if missing): the log at
/// `dir/raft-log.redb`, snapshots under `dir/snapshots/`. Pass them to `Raft::new`.
pub async fn open(dir: impl AsRef<Path>) -> Result<(LogStore, StateMachineStore), OpenError> {
    let dir = dir.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let log = LogStore::open(dir.join(LOG_FILE))?;
        let state_machine = StateMachineStore::open(dir.join(SNAPSHOT_DIR))?;
        Ok((log, state_machine))
    })
    .await?
}
