//! API tokens: who may act through the public API. Only a token's SHA-256
//! digest is replicated (the daemon hashes the secret it hands out once), so
//! the log, snapshots and backups never hold a usable credential.

use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// What a token may do. Alert sources need none: an integration key is the
/// credential for sending events to its own service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Read incidents and on-call, acknowledge, resolve, act on incidents, notes.
    Responder,
    /// Everything, including configuration, cluster membership and tokens.
    Admin,
}

impl TokenRole {
    /// The lowercase name, as serialized (`responder`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Responder => "responder",
            TokenRole::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: TokenRole) -> bool {
        self >= needed
    }
}

/// An API token as replicated: its name, its role and the digest of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Stable name, unique among tokens (at most [`MAX_TOKEN_NAME`] bytes); revoked by it.
    pub name: String,
    /// What the token may do.
    pub role: TokenRole,
    /// Lowercase hex SHA-256 of the secret.
    pub sha256: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at: Millis,
    /// Who created it (the `by` of its `CreateToken`).
    pub created_by: String,
}

/// Longest token name, in bytes.
pub const MAX_TOKEN_NAME: usize = 64;
