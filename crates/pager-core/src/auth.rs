//! Who may act: API tokens for the public API and passwords for the console.
//! Only a token's SHA-256 digest and a password's Argon2id hash are
//! replicated (the daemon hashes before it proposes), so the log, snapshots
//! and backups never hold a usable credential.

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

/// A user's console sign-in as replicated: the Argon2id hash of their
/// password (a PHC string, salt and parameters included) and the role it
/// grants. Only users of the current on-call document have one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The user's stable name in the on-call document.
    pub user: String,
    /// What the user may do once signed in (the same roles as API tokens).
    pub role: TokenRole,
    /// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`: never the password itself.
    pub phc: String,
    /// When the password was last set, in milliseconds since the Unix epoch.
    pub set_at: Millis,
    /// Who set it (the `by` of its `SetPassword`).
    pub set_by: String,
    /// The log index of the last `SetPassword` or `RevokeSessions` for the
    /// user: a console session names the version it was signed for, so a new
    /// password or a revocation signs the user out everywhere at once. Unique
    /// across the log, unlike `set_at` (two commands may share an instant).
    #[serde(default)]
    pub sessions_version: u64,
}

/// Longest PHC string accepted, in bytes (Argon2id with default parameters
/// is about 100).
pub const MAX_PHC: usize = 256;
