//! Outbound webhooks, signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com/>, `spec/standard-webhooks.md`):
//!
//! - the secret is `whsec_` and the base64 of a random key of 24 to 64 bytes ([`WebhookSecret`]);
//! - each delivery carries `webhook-id` (the same on every retry of one event, so the receiver
//!   can drop duplicates), `webhook-timestamp` (unix seconds of this attempt) and
//!   `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`;
//!   several space-separated signatures may be sent (during a key rotation), and one matching
//!   is enough ([`verify`]);
//! - receivers refuse timestamps more than [`TOLERANCE`] away from their clock.
//!
//! [`WebhookClient::post`] makes one delivery attempt: 2xx is delivered; `410 Gone` means the
//! subscription is dead (permanent, stop sending); 429 is a rate limit, 5xx and timeouts are
//! transient; any other answer, redirects included (never followed), is permanent.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::slack_verify::unix_seconds;
use crate::transport::{self, Effect};
use crate::{ConfigError, ErrorKind, OutboundError, DEFAULT_TIMEOUT};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a delivery's timestamp may be from the receiver's clock, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// The key lengths the specification allows, in bytes.
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A signing key. `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// A secret that is not `whsec_` and base64 of 24 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret is not base64 (after the whsec_ prefix)")]
    NotBase64,
    #[error("webhook secret key is {len} bytes; Standard Webhooks wants 24 to 64")]
    Length { len: usize },
}

impl WebhookSecret {
    /// `whsec_` and base64; the prefix may be left out, as the specification's reference
    /// libraries allow.
    pub fn parse(secret: &str) -> Result<WebhookSecret, SecretError> {
        let encoded = secret.trim();
        let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(SecretError::Length { len: key.len() });
        }
        Ok(WebhookSecret { key })
    }

    /// A fresh 32-byte key from the OS's generator.
    pub fn generate() -> WebhookSecret {
        let mut key = vec![0; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        WebhookSecret { key }
    }

    /// The `whsec_…` form, to hand to the subscriber once.
    pub fn expose_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.key))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// `msg_` and 27 random letters and digits: a `webhook-id` for a new event. Keep it for the
/// event's retries.
pub fn new_message_id() -> String {
    use rand::distributions::{Alphanumeric, DistString as _};
    format!(
        "msg_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 27)
    )
}

/// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`: one `webhook-signature`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        BASE64.encode(mac(secret, id, &timestamp.to_string(), body))
    )
}

fn mac(secret: &WebhookSecret, id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&secret.key) else {
        return Vec::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Why a delivery is refused as not from us (or not now).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no {0} header")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not unix seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {skew_secs}s away from now, more than {}s", TOLERANCE.as_secs())]
    Stale { skew_secs: i64 },
    #[error("no webhook-signature matches")]
    BadSignature,
}

/// Check one delivery as a receiver does: headers as received (empty when absent), the raw
/// body, the receiver's clock. Any one of the space-separated `v1,` signatures may match;
/// other versions are ignored. Comparisons take constant time.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: SystemTime,
) -> Result<(), VerifyError> {
    let id = id.trim();
    if id.is_empty() {
        return Err(VerifyError::MissingHeader(ID_HEADER));
    }
    let timestamp = timestamp_header.trim();
    if timestamp.is_empty() {
        return Err(VerifyError::MissingHeader(TIMESTAMP_HEADER));
    }
    let at: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    let skew = unix_seconds(now).saturating_sub(at);
    if skew.unsigned_abs() > TOLERANCE.as_secs() {
        return Err(VerifyError::Stale { skew_secs: skew });
    }
    if signature_header.trim().is_empty() {
        return Err(VerifyError::MissingHeader(SIGNATURE_HEADER));
    }
    let expected = mac(secret, id, timestamp, body);
    let mut matched = subtle::Choice::from(0);
    for candidate in signature_header.split_whitespace() {
        let Some(("v1", encoded)) = candidate.split_once(',') else {
            continue;
        };
        let Ok(given) = BASE64.decode(encoded) else {
            continue;
        };
        if given.len() == expected.len() {
            matched |= given.ct_eq(&expected);
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// Delivers webhooks to any subscriber URL, with one pooled HTTP client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl WebhookClient {
    /// A client with [`DEFAULT_TIMEOUT`] per delivery. Opens no connection.
    pub fn new() -> Result<WebhookClient, ConfigError> {
        Ok(WebhookClient {
            http: transport::http_client("webhooks")?,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Bound each delivery to `timeout`, from connect to the answer's status line.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<WebhookClient, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout { what: "webhook" });
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// One delivery attempt of `body` (JSON) to `url`, signed with `secret`, as event `id` at
    /// `timestamp` (unix seconds, now: receivers refuse old ones). The answer's status when
    /// it is 2xx. Retrying with the same `id` is what the specification expects; the
    /// receiver drops duplicates by id.
    #[tracing::instrument(
        name = "webhook",
        skip_all,
        fields(url = %transport::without_query(url), id)
    )]
    pub async fn post(
        &self,
        url: &str,
        id: &str,
        timestamp: i64,
        body: &[u8],
        secret: &WebhookSecret,
    ) -> Result<u16, OutboundError> {
        let shown = transport::without_query(url).to_owned();
        let target = match Url::parse(url) {
            Ok(target) if matches!(target.scheme(), "http" | "https") && target.has_host() => {
                target
            }
            _ => {
                return Err(OutboundError::permanent(format!(
                    "webhook URL {shown:?} is not an absolute http(s) URL"
                )))
            }
        };
        let what = format!("webhook to {shown}");
        let response = self
            .http
            .post(target)
            .header(CONTENT_TYPE, "application/json")
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign(secret, id, timestamp, body))
            .timeout(self.timeout)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|err| {
                transport::transport_error(err, &what, Effect::Mutating, self.timeout)
            })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if (200..300).contains(&status) {
            tracing::debug!(status, "webhook delivered");
            return Ok(status);
        }
        // The answer's start, for the human reading the error; its failure changes nothing.
        let answer = transport::read_body(response, &what, Effect::Idempotent, self.timeout)
            .await
            .unwrap_or_default();
        let snippet = String::from_utf8_lossy(&answer);
        let snippet = transport::cut_chars(snippet.trim(), 200);
        let (kind, reason) = match status {
            410 => (
                ErrorKind::Permanent,
                "the subscription is gone: stop sending to it",
            ),
            429 => (
                transport::status_kind(status, &headers),
                "the subscriber is rate limiting us",
            ),
            408 | 500..=599 => (ErrorKind::Transient, "the subscriber failed"),
            300..=399 => (ErrorKind::Permanent, "redirects are not followed"),
            _ => (ErrorKind::Permanent, "the subscriber refused the delivery"),
        };
        let mut message = format!("{what}: HTTP {status}: {reason}");
        if !snippet.is_empty() {
            message = format!("{message}: {snippet}");
        }
        Err(OutboundError::new(kind, message)
            .with_code(status.to_string())
            .with_status(status)
            .in_doubt(transport::status_in_doubt(status, Effect::Mutating)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    // The specification's example.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn at(secs: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
    }

    #[test]
    fn secrets() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.expose_whsec(), SECRET);
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Ok(secret.clone())
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ="),
            Err(SecretError::Length { len: 5 })
        );
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
        let fresh = WebhookSecret::generate();
        assert_ne!(fresh, WebhookSecret::generate());
        assert_eq!(WebhookSecret::parse(&fresh.expose_whsec()), Ok(fresh));
        let id = new_message_id();
        assert!(id.starts_with("msg_") && id.len() == 31, "{id}");
    }

    #[test]
    fn verification_rules() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        let check = |sig: &str, now: i64| verify(&secret, ID, &ts, sig, BODY, at(now));
        assert_eq!(check(SIGNATURE, TS), Ok(()));
        assert_eq!(check(&format!("v1a,abc v1,AAAA {SIGNATURE}"), TS), Ok(()));
        assert_eq!(check("v1,AAAA v2,x", TS), Err(VerifyError::BadSignature));
        assert_eq!(
            check(&SIGNATURE.replace("v1,", "v2,"), TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(check(SIGNATURE, TS + 300), Ok(()));
        assert_eq!(
            check(SIGNATURE, TS + 301),
            Err(VerifyError::Stale { skew_secs: 301 })
        );
        assert_eq!(
            check(SIGNATURE, TS - 301),
            Err(VerifyError::Stale { skew_secs: -301 })
        );
        assert_eq!(
            check("", TS),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        assert_eq!(
            verify(&secret, "", &ts, SIGNATURE, BODY, at(TS)),
            Err(VerifyError::MissingHeader(ID_HEADER))
        );
        assert_eq!(
            verify(&secret, ID, "x", SIGNATURE, BODY, at(TS)),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(&secret, "msg_other", &ts, SIGNATURE, BODY, at(TS)),
            Err(VerifyError::BadSignature)
        );
    }
}
