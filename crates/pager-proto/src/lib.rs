//! Generated protobuf and gRPC code for `proto/`. No logic lives here:
//! conversions to domain types sit at the edge, in `pagerd`.
//!
//! - [`pager::v1`]: the public API (events, incidents, config, cluster).
//! - [`raft::v1`]: the internal node-to-node service (peers only).

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod pager {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("pager.v1");
    }
}

pub mod raft {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic, missing_docs)]
        tonic::include_proto!("raft.v1");
    }
}

/// Encoded `FileDescriptorSet` of every proto file, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pager_descriptor");
