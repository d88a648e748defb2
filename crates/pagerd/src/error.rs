//! Errors of the node runtime, and the one place that maps them (and domain
//! rejections) to gRPC status codes.

use pager_core::Rejection;
use serde::{Deserialize, Serialize};

/// Why a request was not carried out. Travels between nodes as JSON when a
/// follower forwards a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NodeError {
    /// This node is not the leader and could not reach one.
    #[error("not the leader{}", leader_hint(.leader_id, .leader_addr))]
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// No quorum, or the leader did not answer in time. Safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The state machine refused the command; nothing was applied.
    #[error("{0}")]
    Rejected(Rejection),
    #[error("invalid argument: {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("failed precondition: {0}")]
    Precondition(String),
    /// The node is broken (storage failure); it stops serving.
    #[error("fatal: {0}")]
    Fatal(String),
    /// Too many events for one integration key; retry after the delay.
    #[error("routing_key: more than {per_second} events a second for this integration key; retry in {} ms", .retry_after.as_millis())]
    RateLimited {
        per_second: u64,
        retry_after: std::time::Duration,
    },
}

fn leader_hint(id: &Option<u64>, addr: &Option<String>) -> String {
    match (id, addr) {
        (Some(id), Some(addr)) => format!("; leader is node {id} at {addr}"),
        (Some(id), None) => format!("; leader is node {id}"),
        _ => "; no leader known".to_string(),
    }
}

impl NodeError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> NodeError {
        NodeError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> tonic::Status {
        use tonic::Status;
        match e {
            NodeError::NotLeader { .. } | NodeError::Unavailable(_) => {
                Status::unavailable(e.to_string())
            }
            NodeError::Invalid { field, reason } => {
                Status::invalid_argument(format!("{field}: {reason}"))
            }
            NodeError::Precondition(m) => Status::failed_precondition(m),
            NodeError::Fatal(m) => Status::internal(m),
            NodeError::RateLimited { retry_after, .. } => {
                let mut status = Status::resource_exhausted(e.to_string());
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(v) = secs.to_string().parse() {
                    status.metadata_mut().insert("retry-after", v);
                }
                status
            }
            NodeError::Rejected(r) => match r {
                Rejection::Invalid { .. } | Rejection::ConfigInvalid { .. } => {
                    Status::invalid_argument(r.to_string())
                }
                Rejection::NotFound { .. } => Status::not_found(r.to_string()),
            },
        }
    }
}
