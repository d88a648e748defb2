//! A fake Twilio for one account, on `127.0.0.1` and a port the OS picks, answering as Twilio's
//! OpenAPI description and error dictionary say:
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and `.../Calls.json` create
//!   (module `create`);
//! - `GET .../Messages.json` lists, filtered and paged (module `list`);
//! - a call to a number with a [`CallScript`] lives on after its `201`: status callbacks, TwiML
//!   fetched from its `Url` and played, digits pressed, all signed (module [`call`]);
//! - [`FakeTwilio::inbound_sms`] delivers a text to a webhook, with Twilio's opt-out keywords
//!   (module [`inbound`]).
//!
//! Checks, in order: basic auth (401, 20003), the account in the path (404, 20404), then the
//! parameters of a form-encoded body (a body of another content type carries none, as at
//! Twilio) or of the query string:
//!
//! | resource | check | answer |
//! |---|---|---|
//! | Messages | no `To` | 400, 21604 |
//! | Messages | neither `From` nor `MessagingServiceSid` | 400, 21603 |
//! | Messages | none of `Body`, `MediaUrl`, `ContentSid` | 400, 21602 (21619 with a messaging service) |
//! | Messages | `To` not E.164 (nor `channel:+E.164`) | 400, 21211 |
//! | Messages | `Body` over 1,600 characters | 400, 21617 |
//! | Messages | `To` texted STOP (and not START since) | 400, 21610 |
//! | Messages list | a `DateSent…`, `PageSize`, `Page` or `PageToken` that cannot be read | 400, 20001 |
//! | Calls | no `To` | 400, 21201 |
//! | Calls | no `From` | 400, 21213 |
//! | Calls | none of `Url`, `Twiml`, `ApplicationSid` | 400, 21205 |
//! | Calls | `To` not E.164 (nor `sip:` / `client:`) | 400, 21211 |
//! | Calls | `Twiml` over 4,000 characters | 400, 32018 |
//!
//! Success is `201` with a resource shaped like the spec's `api.v2010.account.message` /
//! `api.v2010.account.call` (`SM…`/`CA…` SIDs, status `queued`, or `accepted` for a message
//! through a messaging service without `From`), or `200` with a `ListMessageResponse`.
//!
//! A created message is `sent` (with `date_sent`) from the moment after its `201`, as if the
//! carrier took it at once; [`FakeTwilio::hold_messages_queued`] keeps new messages `queued`
//! (no `date_sent`, so no `DateSent` filter matches them) until
//! [`FakeTwilio::release_queued_messages`].
//!
//! Each accepted request is recorded, and so is each rejected one, with the TCP address it came
//! from (`remote`: a test that gives each client its own source address can tell who sent what). [`FakeTwilio::fail_next`]
//! queues [`Fault`]s that take the next requests, whatever they are (the list too). The server
//! and every call life run until the `FakeTwilio` is dropped; dropping it also closes every open
//! connection.

pub mod call;
mod create;
mod form;
pub mod inbound;
mod list;
mod twiml_scan;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};

pub use self::call::{CallEvent, CallScript, TwimlSource};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::error::Elapsed;

use self::call::CallLife;
use super::Board;
use pager_notify::settings::{Secret, TwilioSettings};

/// An account SID that passes Twilio's pattern, for tests.
pub const TEST_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
/// An auth token for tests.
pub const TEST_AUTH_TOKEN: &str = "fake-twilio-auth-token";
/// The sender [`FakeTwilio::settings`] configures (Twilio's magic test number).
pub const TEST_FROM: &str = "+15005550006";

/// What the next request gets instead of (or on top of) a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `http` with Twilio's error body for `code`; nothing is created.
    Status {
        http: u16,
        code: i64,
        message: String,
    },
    /// Handle the request normally (record it if valid) at once, and hold the answer back this
    /// long: the request reached Twilio, the client may time out without knowing.
    Delay(Duration),
    /// Close the connection without an answer and without creating anything.
    Drop,
    /// Create the message or call, then close the connection without an answer: the page is
    /// out, the client cannot know.
    DropAfterAccept,
}

impl Fault {
    pub fn status(http: u16, code: i64, message: impl Into<String>) -> Fault {
        Fault::Status {
            http,
            code,
            message: message.into(),
        }
    }

    /// 429 with code 20429, Twilio's rate limit.
    pub fn too_many_requests() -> Fault {
        Fault::status(429, 20429, "Too Many Requests")
    }

    /// 500 with code 20500.
    pub fn internal_error() -> Fault {
        Fault::status(500, 20500, "Internal Server Error")
    }
}

/// A message Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedMessage {
    /// `SM` and 32 hex digits.
    pub sid: String,
    pub to: String,
    /// `None` when only a `MessagingServiceSid` was given.
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: String,
    /// Every form parameter as received, in order (for an inbound message: as posted to the
    /// webhook).
    pub params: Vec<(String, String)>,
    /// When Twilio created it: its `date_created`.
    pub received_at: SystemTime,
    /// `queued` or `accepted` at creation, `sent` when handed on (see the module docs),
    /// `received` for an inbound message.
    pub status: String,
    /// `date_sent`: `None` while queued.
    pub date_sent: Option<SystemTime>,
    /// `outbound-api`, or `inbound` for [`FakeTwilio::inbound_sms`].
    pub direction: String,
    /// How many `MediaUrl`s it has.
    pub num_media: usize,
    /// The TCP peer that created it (`None` for an inbound message).
    pub remote: Option<SocketAddr>,
}

/// A call Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// `CA` and 32 hex digits.
    pub sid: String,
    pub to: String,
    pub from: String,
    pub twiml: Option<String>,
    pub url: Option<String>,
    /// The `Timeout` parameter (ring time in seconds), when it was a number.
    pub timeout: Option<u32>,
    pub params: Vec<(String, String)>,
    pub received_at: SystemTime,
    /// `Method` for `url` (Twilio's default is POST).
    pub method: Option<String>,
    pub fallback_url: Option<String>,
    pub fallback_method: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: Option<String>,
    /// Every `StatusCallbackEvent` value, in order (the parameter is repeated per event).
    pub status_callback_events: Vec<String>,
    /// `Enable` or `DetectMessageEnd`.
    pub machine_detection: Option<String>,
    /// Twilio's `CallStatus` now: `queued`, then as the call's life goes (`ringing`,
    /// `in-progress`, `completed`, `busy`, `no-answer`, `failed`). Stays `queued` without a
    /// script.
    pub status: String,
    /// `AnsweredBy` once answered, when machine detection was asked.
    pub answered_by: Option<String>,
    /// The script the call follows (the one set for `to` when it was created).
    pub script: Option<CallScript>,
    /// The TCP peer that created it.
    pub remote: Option<SocketAddr>,
}

/// A request that got an error answer, or no answer at all ([`Fault::Drop`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRequest {
    pub path: String,
    /// `None` when the connection was dropped without an answer.
    pub http_status: Option<u16>,
    pub code: Option<i64>,
    pub message: String,
    pub params: Vec<(String, String)>,
    pub received_at: SystemTime,
    /// The TCP peer that sent it.
    pub remote: Option<SocketAddr>,
}

/// The fake server; see the module documentation.
#[derive(Debug)]
pub struct FakeTwilio {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    account_sid: String,
    /// The key of every `X-Twilio-Signature` the fake sends, and the basic auth password.
    auth_token: String,
    board: Board<Records>,
    /// Makes the fake's webhook requests (status callbacks, TwiML, inbound SMS).
    webhooks: reqwest::Client,
    /// The call lives under way. Each holds an `Arc<Shared>`, so `FakeTwilio`'s `Drop` aborts
    /// them; the mutex is only held to spawn or abort.
    lives: Mutex<JoinSet<()>>,
}

#[derive(Debug, Default)]
struct Records {
    /// Created through the API, oldest first.
    messages: Vec<RecordedMessage>,
    /// Received by [`FakeTwilio::inbound_sms`], oldest first; listed with `messages`.
    inbound: Vec<RecordedMessage>,
    calls: Vec<RecordedCall>,
    rejected: Vec<RejectedRequest>,
    faults: VecDeque<Fault>,
    /// By destination number: how calls created to it go.
    scripts: HashMap<String, CallScript>,
    /// By call SID, for calls with a script.
    lives: HashMap<String, CallLife>,
    /// Numbers that texted a STOP keyword and no START keyword since.
    opted_out: HashSet<String>,
    /// New messages stay `queued`.
    hold_queued: bool,
}

/// Per connection: the handler notifies it to have the connection closed without an answer.
#[derive(Debug, Clone)]
struct Hangup(Arc<Notify>);

/// Per connection: the TCP peer address.
#[derive(Debug, Clone, Copy)]
struct Remote(SocketAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Messages,
    MessageList,
    Calls,
}

/// A request on its way through the checks.
struct Submission {
    resource: Resource,
    account: String,
    path: String,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    remote: Option<SocketAddr>,
}

impl FakeTwilio {
    /// Start serving `account_sid` with `auth_token` on `127.0.0.1:0`.
    ///
    /// # Panics
    /// If no loopback port can be bound: a test fixture cannot go on without it. Use
    /// [`FakeTwilio::try_start`] to handle that.
    pub async fn start(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
    ) -> FakeTwilio {
        match FakeTwilio::try_start(account_sid, auth_token).await {
            Ok(fake) => fake,
            Err(err) => panic!("fake twilio: cannot listen on 127.0.0.1: {err}"),
        }
    }

    /// [`FakeTwilio::start`], returning the bind error.
    pub async fn try_start(
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
    ) -> std::io::Result<FakeTwilio> {
        // Twilio waits 15 s for a webhook answer; a fake on loopback needs less.
        let webhooks = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("TwilioProxy/1.1")
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            board: Board::new(Records::default()),
            webhooks,
            lives: Mutex::new(JoinSet::new()),
        });
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/:account/Messages.json",
                post(create_message)
                    .merge(get(list_messages))
                    .fallback(method_not_allowed),
            )
            .route(
                "/2010-04-01/Accounts/:account/Calls.json",
                post(create_call).fallback(method_not_allowed),
            )
            .fallback(not_found)
            .with_state(shared.clone());
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(accept_loop(listener, router));
        Ok(FakeTwilio {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`, for [`TwilioSettings::base_url`].
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Settings that reach this fake: its account and token, `From` [`TEST_FROM`], 5 s timeout.
    pub fn settings(&self) -> TwilioSettings {
        TwilioSettings {
            base_url: self.base_url(),
            account_sid: self.shared.account_sid.clone(),
            auth_token: Secret::new(self.shared.auth_token.clone()),
            from: Some(TEST_FROM.to_owned()),
            messaging_service_sid: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Every message created so far, oldest first.
    pub fn messages(&self) -> Vec<RecordedMessage> {
        self.shared.board.lock().messages.clone()
    }

    /// Every call created so far, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.board.lock().calls.clone()
    }

    /// Every request answered with an error or dropped, oldest first.
    pub fn rejected(&self) -> Vec<RejectedRequest> {
        self.shared.board.lock().rejected.clone()
    }

    /// The next `n` requests, to either endpoint, get `fault` (after any faults already queued).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.shared.board.update(|r| {
            for _ in 0..n {
                r.faults.push_back(fault.clone());
            }
        });
    }

    /// Forget the faults not yet used.
    pub fn clear_faults(&self) {
        self.shared.board.update(|r| r.faults.clear());
    }

    /// Wait until at least `n` messages exist; returns all of them.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedMessage>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                (r.messages.len() >= n).then(|| r.messages.clone())
            })
            .await
    }

    /// Wait until at least `n` calls exist; returns all of them.
    pub async fn wait_for_calls(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedCall>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| (r.calls.len() >= n).then(|| r.calls.clone()))
            .await
    }

    /// Wait until at least `n` requests were rejected; returns all of them.
    pub async fn wait_for_rejected(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RejectedRequest>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                (r.rejected.len() >= n).then(|| r.rejected.clone())
            })
            .await
    }

    /// Keep new messages `queued` (`true`), as a carrier backlog would, or hand them on at
    /// once again (`false`, the default). Messages already queued stay so until
    /// [`FakeTwilio::release_queued_messages`].
    pub fn hold_messages_queued(&self, hold: bool) {
        self.shared.board.update(|r| r.hold_queued = hold);
    }

    /// Mark every `queued` or `accepted` message `sent`, with `date_sent` now.
    pub fn release_queued_messages(&self) {
        let now = SystemTime::now();
        self.shared.board.update(|r| {
            for message in &mut r.messages {
                if message.date_sent.is_none() {
                    message.status = "sent".to_owned();
                    message.date_sent = Some(now);
                }
            }
        });
    }

    /// Every message received by [`FakeTwilio::inbound_sms`], oldest first.
    pub fn inbound_messages(&self) -> Vec<RecordedMessage> {
        self.shared.board.lock().inbound.clone()
    }

    /// Numbers that texted a STOP keyword and no START keyword since.
    pub fn opted_out(&self) -> Vec<String> {
        let mut numbers: Vec<String> = self.shared.board.lock().opted_out.iter().cloned().collect();
        numbers.sort();
        numbers
    }

    /// Calls created to `to` from now on follow `script` (until the next `script_calls` for
    /// `to`); see [`call`]. Calls to a number without a script do nothing after their `201`.
    pub fn script_calls(&self, to: &str, script: CallScript) {
        self.shared
            .board
            .update(|r| r.scripts.insert(to.to_owned(), script));
    }

    /// Calls created to `to` from now on do nothing after their `201`.
    pub fn unscript_calls(&self, to: &str) {
        self.shared.board.update(|r| r.scripts.remove(to));
    }

    /// What happened in call `sid`'s life so far; empty for a call without a script.
    pub fn call_log(&self, sid: &str) -> Vec<CallEvent> {
        self.shared
            .board
            .lock()
            .lives
            .get(sid)
            .map(|life| life.events.clone())
            .unwrap_or_default()
    }

    /// The texts spoken in call `sid` so far, in order.
    pub fn said(&self, sid: &str) -> Vec<String> {
        self.call_log(sid)
            .into_iter()
            .filter_map(|event| match event {
                CallEvent::Said(text) => Some(text),
                _ => None,
            })
            .collect()
    }

    /// Wait until call `sid`'s life has ended (its last status callback answered); returns its
    /// log, ending in [`CallEvent::Ended`]. A call without a script never ends: this times out.
    pub async fn wait_for_call_done(
        &self,
        sid: &str,
        timeout: Duration,
    ) -> Result<Vec<CallEvent>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                r.lives
                    .get(sid)
                    .filter(|life| life.done)
                    .map(|life| life.events.clone())
            })
            .await
    }

    /// A phone at `from` texts `body` to `to`, and Twilio POSTs it to `webhook_url`, signed with
    /// this fake's auth token: the webhook's answer status and body (TwiML). Opt-out keywords
    /// take effect before the webhook is called, whatever it answers; see [`inbound`].
    pub async fn inbound_sms(
        &self,
        webhook_url: &str,
        from: &str,
        to: &str,
        body: &str,
    ) -> reqwest::Result<(u16, String)> {
        self.shared
            .inbound_sms(webhook_url, from, to, body, None)
            .await
    }

    /// [`FakeTwilio::inbound_sms`] as a forger would send it: `X-Twilio-Signature` is
    /// `signature`, and since Twilio never saw the text, nothing is recorded and no opt-out
    /// changes.
    pub async fn inbound_sms_signed_with(
        &self,
        webhook_url: &str,
        from: &str,
        to: &str,
        body: &str,
        signature: &str,
    ) -> reqwest::Result<(u16, String)> {
        self.shared
            .inbound_sms(webhook_url, from, to, body, Some(signature))
            .await
    }

    /// Stop serving and close every connection; when this returns, connecting is refused.
    pub async fn shutdown(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        self.stop_lives();
    }

    fn stop_lives(&self) {
        let lives = std::mem::take(
            &mut *self
                .shared
                .lives
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        drop(lives); // Dropping a JoinSet aborts its tasks.
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
        self.stop_lives();
    }
}

async fn accept_loop(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, peer)) = accepted {
                    connections.spawn(serve_connection(stream, peer, router.clone()));
                }
            }
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// HTTP/1.1 on one connection until the client closes it or a handler hangs up.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router) {
    let hangup = Hangup(Arc::new(Notify::new()));
    let notified = hangup.0.clone();
    let router = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(hangup.clone());
        request.extensions_mut().insert(Remote(peer));
        router.call(request)
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        // Dropping the connection closes the socket with no answer written.
        () = notified.notified() => {}
    }
}

async fn create_message(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Extension(hangup): Extension<Hangup>,
    Extension(Remote(remote)): Extension<Remote>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = Submission::new(Resource::Messages, account, &uri, headers, &body);
    request.remote = Some(remote);
    shared.handle(request, hangup).await
}

async fn list_messages(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Extension(hangup): Extension<Hangup>,
    Extension(Remote(remote)): Extension<Remote>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let request = Submission {
        resource: Resource::MessageList,
        account,
        path: uri.path().to_owned(),
        headers,
        params: form::parse(query.unwrap_or_default().as_bytes()),
        remote: Some(remote),
    };
    shared.handle(request, hangup).await
}

async fn create_call(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Extension(hangup): Extension<Hangup>,
    Extension(Remote(remote)): Extension<Remote>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = Submission::new(Resource::Calls, account, &uri, headers, &body);
    request.remote = Some(remote);
    shared.handle(request, hangup).await
}

async fn not_found(uri: Uri) -> Response {
    error_response(
        404,
        20404,
        &format!("The requested resource {} was not found", uri.path()),
    )
}

async fn method_not_allowed() -> Response {
    error_response(405, 20004, "Method not allowed")
}

impl Submission {
    fn new(
        resource: Resource,
        account: String,
        uri: &Uri,
        headers: HeaderMap,
        body: &[u8],
    ) -> Submission {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        Submission {
            resource,
            account,
            path: uri.path().to_owned(),
            headers,
            params: if is_form {
                form::parse(body)
            } else {
                Vec::new()
            },
            remote: None,
        }
    }

    /// The first non-empty value of `name`.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// The outcome of the checks: an error answer, or the success status and resource.
type Checked = Result<(StatusCode, Value), (u16, i64, String)>;

impl Shared {
    async fn handle(self: Arc<Self>, request: Submission, hangup: Hangup) -> Response {
        let fault = self.board.update(|r| r.faults.pop_front());
        match &fault {
            Some(Fault::Status {
                http,
                code,
                message,
            }) => return self.reject(&request, *http, *code, message.clone()),
            Some(Fault::Drop) => {
                self.board.update(|r| {
                    r.rejected.push(RejectedRequest {
                        path: request.path.clone(),
                        http_status: None,
                        code: None,
                        message: "connection dropped without an answer".to_owned(),
                        params: request.params.clone(),
                        received_at: SystemTime::now(),
                        remote: request.remote,
                    });
                });
                return hang_up(hangup).await;
            }
            _ => {}
        }
        let answer = match self.check_and_create(&request) {
            Ok((status, resource)) => (status, Json(resource)).into_response(),
            Err((http, code, message)) => self.reject(&request, http, code, message),
        };
        match fault {
            Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Fault::DropAfterAccept) => return hang_up(hangup).await,
            _ => {}
        }
        answer
    }

    fn reject(&self, request: &Submission, http: u16, code: i64, message: String) -> Response {
        let answer = error_response(http, code, &message);
        self.board.update(|r| {
            r.rejected.push(RejectedRequest {
                path: request.path.clone(),
                http_status: Some(http),
                code: Some(code),
                message,
                params: request.params.clone(),
                received_at: SystemTime::now(),
                remote: request.remote,
            });
        });
        answer
    }

    fn check_and_create(self: &Arc<Self>, request: &Submission) -> Checked {
        if !self.authorized(&request.headers) {
            return Err((401, 20003, "Authenticate".to_owned()));
        }
        if request.account != self.account_sid {
            return Err((
                404,
                20404,
                format!("The requested resource {} was not found", request.path),
            ));
        }
        match request.resource {
            Resource::Messages => self.create_message(request),
            Resource::MessageList => self.list_messages(request),
            Resource::Calls => self.create_call(request),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, encoded)) = value.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        decoded.split_once(':') == Some((self.account_sid.as_str(), self.auth_token.as_str()))
    }
}

/// Keep the connection's task from answering, and have it close the socket.
async fn hang_up(hangup: Hangup) -> Response {
    hangup.0.notify_one();
    std::future::pending::<Response>().await
}

/// Twilio's error body: `{"code", "message", "more_info", "status"}`.
fn error_response(http: u16, code: i64, message: &str) -> Response {
    let status = StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": http,
    });
    let mut response = (status, Json(body)).into_response();
    if http == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
    }
    response
}
