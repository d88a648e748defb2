//! A webhook subscriber on `127.0.0.1` and a port the OS picks, checking every delivery as the
//! Standard Webhooks specification asks a receiver to (<https://www.standardwebhooks.com/>):
//!
//! - `webhook-id`, `webhook-timestamp` and `webhook-signature` present, else 400;
//! - the timestamp within 5 minutes of now, and one of the space-separated `v1,` signatures
//!   equal (in constant time) to base64(HMAC-SHA256(key, `{id}.{timestamp}.{body}`)), with the
//!   key from its `whsec_` secret; else 401.
//!
//! A delivery that passes is recorded ([`ReceivedEvent`], with `redelivery` set when its id
//! came before) and answered `200`, unless a [`Fault`] queued by [`FakeWebhookReceiver::fail_next`]
//! or [`FakeWebhookReceiver::respond_next`] says otherwise. Every attempt, refused or not, is
//! recorded too ([`Attempt`]). The fake computes signatures itself rather than trust the code
//! under test.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::error::Elapsed;

use super::slack::{accept_loop, hmac_sha256};
use super::Board;

/// The specification's example secret.
pub const TEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// How far a timestamp may be from now, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// What the next verified delivery gets instead of `200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status (500, 410, …); the event is not recorded as received.
    Status(u16),
    /// 429 with `Retry-After: secs`; not recorded as received.
    RateLimited { retry_after_secs: u64 },
    /// Record the event, then never answer.
    Hang,
    /// `307` to this URL; not recorded as received (a client must not follow it).
    Redirect(String),
}

/// A delivery that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub id: String,
    pub timestamp: i64,
    /// `webhook-signature` as received.
    pub signature: String,
    pub content_type: Option<String>,
    pub path: String,
    pub body: Vec<u8>,
    /// The body as JSON, if it is JSON.
    pub json: Option<Value>,
    /// An event with this id was received before: a retry.
    pub redelivery: bool,
}

/// Any request, and what it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: Option<String>,
    pub path: String,
    /// `None` for a hang.
    pub status: Option<u16>,
    /// Why it was refused, if it was.
    pub refused: Option<String>,
}

/// The fake subscriber; see the module documentation.
#[derive(Debug)]
pub struct FakeWebhookReceiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    key: Vec<u8>,
    board: Board<Records>,
}

#[derive(Debug, Default)]
struct Records {
    events: Vec<ReceivedEvent>,
    attempts: Vec<Attempt>,
    faults: VecDeque<Fault>,
    seen: HashSet<String>,
}

impl FakeWebhookReceiver {
    /// Start receiving, verifying with `secret` (`whsec_` and base64).
    ///
    /// # Panics
    /// If the secret is not base64 or no loopback port can be bound. Use
    /// [`FakeWebhookReceiver::try_start`] to handle that.
    pub async fn start(secret: &str) -> FakeWebhookReceiver {
        match FakeWebhookReceiver::try_start(secret).await {
            Ok(fake) => fake,
            Err(err) => panic!("fake webhook receiver: {err}"),
        }
    }

    pub async fn try_start(secret: &str) -> std::io::Result<FakeWebhookReceiver> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = BASE64
            .decode(encoded)
            .map_err(|_| std::io::Error::other("the secret is not whsec_ and base64"))?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            key,
            board: Board::new(Records::default()),
        });
        let router = Router::new().fallback(receive).with_state(shared.clone());
        let server = tokio::spawn(accept_loop(listener, router));
        Ok(FakeWebhookReceiver {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:<port>/hooks/pagerd`; any path is received alike.
    pub fn url(&self) -> String {
        self.url_for("/hooks/pagerd")
    }

    /// `http://127.0.0.1:<port>` and `path`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every delivery that passed the checks and was answered 2xx (or hung), oldest first.
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.shared.board.lock().events.clone()
    }

    /// Every request, oldest first.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.shared.board.lock().attempts.clone()
    }

    /// The next `n` verified deliveries are answered `status` (and not recorded as received).
    pub fn respond_next(&self, n: usize, status: u16) {
        self.fail_next(n, Fault::Status(status));
    }

    /// The next `n` verified deliveries get `fault`.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.shared
            .board
            .update(|r| r.faults.extend(std::iter::repeat(fault).take(n)));
    }

    /// Wait until at least `n` events were received; returns them.
    pub async fn wait_for_events(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedEvent>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| (r.events.len() >= n).then(|| r.events.clone()))
            .await
    }

    /// Wait until at least `n` requests came; returns them.
    pub async fn wait_for_attempts(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<Attempt>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                (r.attempts.len() >= n).then(|| r.attempts.clone())
            })
            .await
    }

    pub async fn shutdown(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for FakeWebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let id = text("webhook-id");
    let path = uri.path().to_owned();
    let refuse = |status: u16, reason: String| {
        shared.board.update(|r| {
            r.attempts.push(Attempt {
                id: id.clone(),
                path: path.clone(),
                status: Some(status),
                refused: Some(reason.clone()),
            });
        });
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        (code, Json(json!({ "error": reason }))).into_response()
    };
    let (Some(event_id), Some(timestamp), Some(signature)) = (
        id.clone(),
        text("webhook-timestamp"),
        text("webhook-signature"),
    ) else {
        return refuse(
            400,
            "missing webhook-id, webhook-timestamp or webhook-signature".into(),
        );
    };
    let Ok(at) = timestamp.parse::<i64>() else {
        return refuse(400, "webhook-timestamp is not unix seconds".into());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    if now.saturating_sub(at).unsigned_abs() > TOLERANCE.as_secs() {
        return refuse(401, "webhook-timestamp is too far from now".into());
    }
    let expected = hmac_sha256(
        &shared.key,
        &[event_id.as_bytes(), b".", timestamp.as_bytes(), b".", &body],
    );
    let mut matched = subtle::Choice::from(0);
    for candidate in signature.split_whitespace() {
        if let Some(("v1", encoded)) = candidate.split_once(',') {
            if let Ok(given) = BASE64.decode(encoded) {
                if given.len() == expected.len() {
                    matched |= given.ct_eq(&expected);
                }
            }
        }
    }
    if !bool::from(matched) {
        return refuse(401, "no webhook-signature matches".into());
    }

    let fault = shared.board.update(|r| r.faults.pop_front());
    let attempt = |status: Option<u16>| Attempt {
        id: Some(event_id.clone()),
        path: path.clone(),
        status,
        refused: None,
    };
    let event = || ReceivedEvent {
        id: event_id.clone(),
        timestamp: at,
        signature: signature.clone(),
        content_type: text("content-type"),
        path: path.clone(),
        body: body.to_vec(),
        json: serde_json::from_slice(&body).ok(),
        redelivery: false,
    };
    match fault {
        Some(Fault::Status(status)) => {
            shared
                .board
                .update(|r| r.attempts.push(attempt(Some(status))));
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (code, format!("fake subscriber answers {status}")).into_response()
        }
        Some(Fault::RateLimited { retry_after_secs }) => {
            shared.board.update(|r| r.attempts.push(attempt(Some(429))));
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Some(Fault::Redirect(location)) => {
            shared.board.update(|r| r.attempts.push(attempt(Some(307))));
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Some(Fault::Hang) => {
            shared.record(event(), attempt(None));
            std::future::pending::<Response>().await
        }
        None => {
            shared.record(event(), attempt(Some(200)));
            Json(json!({ "received": true })).into_response()
        }
    }
}

impl Shared {
    fn record(&self, mut event: ReceivedEvent, attempt: Attempt) {
        self.board.update(|r| {
            event.redelivery = !r.seen.insert(event.id.clone());
            r.events.push(event);
            r.attempts.push(attempt);
        });
    }
}
