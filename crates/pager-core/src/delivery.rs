//! Deliveries: one page to one contact method of one user. Created by `apply`,
//! sent only by the leader of the term that claimed them (`claim_term`), and
//! closed by a committed `Outcome`.

use crate::incident::IncidentId;
use crate::oncall::ContactKind;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

pub type DeliveryId = u64;

/// Attempts per delivery before it fails for good.
pub const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Claimed by `claim_term`; the leader of that term must send it.
    Pending,
    /// Failed with a retryable error; a retry timer re-claims it.
    RetryWait,
    Sent,
    Failed,
    /// The incident was acknowledged or resolved before it was sent.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::RetryWait => "retry_wait",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub incident: IncidentId,
    pub user: String,
    pub contact: String,
    pub method: ContactKind,
    pub address: String,
    /// A copy for a shadow (in training), not a responder.
    #[serde(default)]
    pub shadow: bool,
    /// 1 for the first send; raised by each retry.
    pub attempt: u32,
    /// Raft term of the log entry that created or last re-claimed it.
    pub claim_term: u64,
    /// How many times a new leader re-claimed it with no outcome recorded:
    /// each may have duplicated a page that was in flight.
    pub reclaims: u32,
    pub status: DeliveryStatus,
    pub provider_id: String,
    pub error: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}
