//! The openraft type configuration of pagerd and short names for the openraft types built on it.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub use crate::batch::{ClientWriteResponse, Proposal, Raft};

openraft::declare_raft_types!(
    /// Binds openraft to pagerd: a log entry carries a [`Proposal`] of one or more
    /// `pager_core::Command`s (see [`crate::batch`]), applying it answers one
    /// `pager_core::Response` per command, nodes are `u64` ids addressed by [`PeerNode`], and
    /// snapshots are in-memory JSON buffers.
    pub TypeConfig:
        D = Proposal,
        R = Vec<pager_core::Response>,
        NodeId = u64,
        Node = PeerNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node's id in the cluster: stable for the node's life, persisted by the daemon's config.
pub type NodeId = u64;

/// What the cluster membership records about a node (replicated in membership log entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerNode {
    /// `host:port` of the node's peer (Raft + forwarding) gRPC service.
    pub peer_addr: String,
    /// `host:port` of the node's public client API, handed to clients redirected to the leader.
    pub client_addr: String,
    /// The region the node runs in, for operators and placement decisions.
    pub region: String,
    /// The node's public HTTP base URL (Twilio webhooks, email links); empty
    /// when unknown. A call's `FallbackUrl` points at another member's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub http_url: String,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{peer: {}, client: {}, region: {}}}",
            self.peer_addr, self.client_addr, self.region
        )
    }
}

/// A log position: the leader that wrote it (term, node) and its index.
pub type LogId = openraft::LogId<NodeId>;
/// A vote: term, candidate, and whether it was committed by a quorum.
pub type Vote = openraft::Vote<NodeId>;
/// One Raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A membership config with the log id that introduced it.
pub type StoredMembership = openraft::StoredMembership<NodeId, PeerNode>;
/// A cluster membership config (voters and learners).
pub type Membership = openraft::Membership<NodeId, PeerNode>;
/// What a snapshot covers: last log id, membership, id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, PeerNode>;
/// A snapshot: its meta and its bytes.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// Raft metrics published by a node (leader, term, applied index, …).
pub type RaftMetrics = openraft::RaftMetrics<NodeId, PeerNode>;

/// Errors from the storage layer, as openraft wants them.
pub type StorageError = openraft::StorageError<NodeId>;
/// A Raft API error: `APIError(E)` for a rejected request, `Fatal` for a broken node.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
/// Why a client write was refused (e.g. `ForwardToLeader`).
pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, PeerNode>;
/// Why a linearizable read could not be confirmed.
pub type CheckIsLeaderError = openraft::error::CheckIsLeaderError<NodeId, PeerNode>;
/// Not the leader: who is, if known.
pub type ForwardToLeader = openraft::error::ForwardToLeader<NodeId, PeerNode>;
/// Why `Raft::initialize` failed.
pub type InitializeError = openraft::error::InitializeError<NodeId, PeerNode>;
/// An RPC to a peer failed, locally or remotely.
pub type RPCError<E = openraft::error::Infallible> =
    openraft::error::RPCError<NodeId, PeerNode, RaftError<E>>;
