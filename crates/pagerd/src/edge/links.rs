//! Signed, expiring links for email pages: `GET /v1/links/{token}` shows the
//! incident and one button; the button's `POST` acknowledges or resolves as
//! the user the email went to.
//!
//! Why a button and not a bare GET: mail security scanners (Outlook Safe
//! Links, Proofpoint, ...) fetch every link in a message; a GET that acted
//! would acknowledge pages nobody read. The token itself is the credential,
//! so the page and the action need no login.
//!
//! Token: `base64url(json claims) "." base64url(HMAC-SHA256(key, claims))`,
//! keyed by the cluster's replicated link key (set by the first takeover), so
//! every node verifies what any leader signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pager_core::{IncidentId, Millis};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkAction {
    Ack,
    Resolve,
}

impl LinkAction {
    pub fn verb(self) -> &'static str {
        match self {
            LinkAction::Ack => "Acknowledge",
            LinkAction::Resolve => "Resolve",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "i")]
    pub incident: IncidentId,
    #[serde(rename = "a")]
    pub action: LinkAction,
    /// The user the email went to; the action is recorded as theirs.
    #[serde(rename = "u")]
    pub user: String,
    /// Expiry, Unix ms.
    #[serde(rename = "e")]
    pub expires: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("token: malformed")]
    Malformed,
    #[error("token: bad signature")]
    BadSignature,
    #[error("token: expired")]
    Expired,
    #[error("token: links are not enabled yet (no leader has taken over)")]
    NoKey,
}

fn mac(key: &[u8]) -> Result<Hmac<Sha256>, LinkError> {
    if key.is_empty() {
        return Err(LinkError::NoKey);
    }
    Hmac::<Sha256>::new_from_slice(key).map_err(|_| LinkError::NoKey)
}

/// `claims` as a signed token: `base64url(json) "." base64url(HMAC-SHA256)`.
/// Email links and console sessions are both made here.
pub fn seal<T: Serialize>(key: &[u8], claims: &T) -> Result<String, LinkError> {
    let body = serde_json::to_vec(claims).map_err(|_| LinkError::Malformed)?;
    let mut m = mac(key)?;
    m.update(&body);
    let sig = m.finalize().into_bytes();
    Ok(format!("{}.{}", B64.encode(&body), B64.encode(sig)))
}

/// The claims of a token [`seal`]ed with `key` (the signature checked in
/// constant time); expiry is the caller's to check.
pub fn open<T: DeserializeOwned>(key: &[u8], token: &str) -> Result<T, LinkError> {
    let (body, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let body = B64.decode(body).map_err(|_| LinkError::Malformed)?;
    let sig = B64.decode(sig).map_err(|_| LinkError::Malformed)?;
    let mut m = mac(key)?;
    m.update(&body);
    m.verify_slice(&sig).map_err(|_| LinkError::BadSignature)?;
    serde_json::from_slice(&body).map_err(|_| LinkError::Malformed)
}

pub fn sign(key: &str, claims: &Claims) -> Result<String, LinkError> {
    seal(key.as_bytes(), claims)
}

/// The claims of a token signed with `key` that has not expired at `now`.
pub fn verify(key: &str, token: &str, now: Millis) -> Result<Claims, LinkError> {
    let claims: Claims = open(key.as_bytes(), token)?;
    if claims.expires <= now {
        return Err(LinkError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            incident: 42,
            action: LinkAction::Ack,
            user: "alice".into(),
            expires: 2_000,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let t = sign("k1", &claims()).unwrap();
        assert_eq!(verify("k1", &t, 1_999), Ok(claims()));
        assert_eq!(verify("k1", &t, 2_000), Err(LinkError::Expired));
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let t = sign("k1", &claims()).unwrap();
        assert_eq!(verify("k2", &t, 0), Err(LinkError::BadSignature));
        let mut other = claims();
        other.action = LinkAction::Resolve;
        let forged_body = sign("k1", &other).unwrap();
        let (body, _) = forged_body.split_once('.').unwrap();
        let (_, sig) = t.split_once('.').unwrap();
        assert_eq!(
            verify("k1", &format!("{body}.{sig}"), 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(verify("k1", "nodot", 0), Err(LinkError::Malformed));
        assert_eq!(verify("", &t, 0), Err(LinkError::NoKey));
    }
}
