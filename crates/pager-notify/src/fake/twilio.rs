//! A fake Twilio: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` and `.../Calls.json` for
//! one account, answering as Twilio's OpenAPI description and error dictionary say, on
//! `127.0.0.1` and a port the OS picks.
//!
//! Checks, in order: basic auth (401, 20003), the account in the path (404, 20404), then the
//! parameters of a form-encoded body (a body of another content type carries none, as at
//! Twilio):
//!
//! | resource | check | answer |
//! |---|---|---|
//! | Messages | no `To` | 400, 21604 |
//! | Messages | neither `From` nor `MessagingServiceSid` | 400, 21603 |
//! | Messages | none of `Body`, `MediaUrl`, `ContentSid` | 400, 21602 (21619 with a messaging service) |
//! | Messages | `To` not E.164 (nor `channel:+E.164`) | 400, 21211 |
//! | Messages | `Body` over 1,600 characters | 400, 21617 |
//! | Calls | no `To` | 400, 21201 |
//! | Calls | no `From` | 400, 21213 |
//! | Calls | none of `Url`, `Twiml`, `ApplicationSid` | 400, 21205 |
//! | Calls | `To` not E.164 (nor `sip:` / `client:`) | 400, 21211 |
//! | Calls | `Twiml` over 4,000 characters | 400, 32018 |
//!
//! Success is `201` with a resource shaped like the spec's `api.v2010.account.message` /
//! `api.v2010.account.call` (`SM…`/`CA…` SIDs, status `queued`, or `accepted` for a message
//! through a messaging service without `From`).
//!
//! Each accepted request is recorded, and so is each rejected one. [`FakeTwilio::fail_next`]
//! queues [`Fault`]s that take the next requests, whatever they are. The server runs until the
//! `FakeTwilio` is dropped; dropping it also closes every open connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::error::Elapsed;

use super::{rfc2822, Board};
use crate::settings::{Secret, TwilioSettings};
use crate::twilio::{is_e164, MAX_SMS_BODY, MAX_TWIML};

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
    /// Every form parameter as received, in order.
    pub params: Vec<(String, String)>,
    pub received_at: SystemTime,
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
    auth_token: String,
    board: Board<Records>,
}

#[derive(Debug, Default)]
struct Records {
    messages: Vec<RecordedMessage>,
    calls: Vec<RecordedCall>,
    rejected: Vec<RejectedRequest>,
    faults: VecDeque<Fault>,
}

/// Per connection: the handler notifies it to have the connection closed without an answer.
#[derive(Debug, Clone)]
struct Hangup(Arc<Notify>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Messages,
    Calls,
}

/// A request on its way through the checks.
struct Submission {
    resource: Resource,
    account: String,
    path: String,
    headers: HeaderMap,
    params: Vec<(String, String)>,
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
        let shared = Arc::new(Shared {
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            board: Board::new(Records::default()),
        });
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/:account/Messages.json",
                post(create_message).fallback(method_not_allowed),
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

    /// Stop serving and close every connection; when this returns, connecting is refused.
    pub async fn shutdown(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for FakeTwilio {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _peer)) = accepted {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
            }
            Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// HTTP/1.1 on one connection until the client closes it or a handler hangs up.
async fn serve_connection(stream: TcpStream, router: Router) {
    let hangup = Hangup(Arc::new(Notify::new()));
    let notified = hangup.0.clone();
    let router = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(hangup.clone());
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
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Submission::new(Resource::Messages, account, &uri, headers, &body);
    shared.handle(request, hangup).await
}

async fn create_call(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    Extension(hangup): Extension<Hangup>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Submission::new(Resource::Calls, account, &uri, headers, &body);
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
                parse_form(body)
            } else {
                Vec::new()
            },
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

/// The outcome of the checks: an error answer, or the resource to create.
type Checked = Result<Value, (u16, i64, String)>;

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
                    });
                });
                return hang_up(hangup).await;
            }
            _ => {}
        }
        let answer = match self.check_and_create(&request) {
            Ok(resource) => (StatusCode::CREATED, Json(resource)).into_response(),
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
            });
        });
        answer
    }

    fn check_and_create(&self, request: &Submission) -> Checked {
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

    fn create_message(&self, request: &Submission) -> Checked {
        let bad = |code: i64, message: String| Err((400, code, message));
        let Some(to) = request.param("To") else {
            return bad(21604, "A 'To' phone number is required.".to_owned());
        };
        let from = request.param("From");
        let service = request.param("MessagingServiceSid");
        if from.is_none() && service.is_none() {
            return bad(21603, "A 'From' phone number is required.".to_owned());
        }
        let body = request.param("Body").unwrap_or_default();
        let has_content = !body.is_empty()
            || request.param("MediaUrl").is_some()
            || request.param("ContentSid").is_some();
        if !has_content {
            return match service {
                Some(_) => bad(
                    21619,
                    "A text message body, media URL or content SID is required.".to_owned(),
                ),
                None => bad(21602, "Message body is required.".to_owned()),
            };
        }
        if !is_message_address(to) {
            return bad(
                21211,
                format!("The 'To' number {to} is not a valid phone number."),
            );
        }
        if utf16_len(body) > MAX_SMS_BODY {
            return bad(
                21617,
                "The concatenated message body exceeds the 1600 character limit.".to_owned(),
            );
        }
        let sid = format!("SM{}", crate::random_hex(32));
        let now = SystemTime::now();
        let date = rfc2822(now);
        let account = &self.account_sid;
        let resource = json!({
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": date,
            "date_sent": null,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": from,
            "messaging_service_sid": service,
            "num_media": request.params.iter().filter(|(k, _)| k == "MediaUrl").count().to_string(),
            "num_segments": segments(body).to_string(),
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": if from.is_none() { "accepted" } else { "queued" },
            "subresource_uris": {
                "media": format!("/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"),
            },
            "to": to,
            "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
        });
        let record = RecordedMessage {
            sid,
            to: to.to_owned(),
            from: from.map(str::to_owned),
            messaging_service_sid: service.map(str::to_owned),
            body: body.to_owned(),
            params: request.params.clone(),
            received_at: now,
        };
        self.board.update(|r| r.messages.push(record));
        Ok(resource)
    }

    fn create_call(&self, request: &Submission) -> Checked {
        let bad = |code: i64, message: String| Err((400, code, message));
        let Some(to) = request.param("To") else {
            return bad(21201, "No 'To' number is specified".to_owned());
        };
        let Some(from) = request.param("From") else {
            return bad(21213, "No 'From' number is specified".to_owned());
        };
        let twiml = request.param("Twiml");
        let url = request.param("Url");
        if twiml.is_none() && url.is_none() && request.param("ApplicationSid").is_none() {
            return bad(
                21205,
                "Url parameter is required. For more information, see http://www.twilio.com/docs/api/twiml"
                    .to_owned(),
            );
        }
        if !is_call_address(to) {
            return bad(
                21211,
                format!("The phone number you are attempting to call, {to}, is not valid."),
            );
        }
        if twiml.is_some_and(|t| utf16_len(t) > MAX_TWIML) {
            return bad(
                32018,
                "Twiml size exceeded maximum allowed value of 4000 characters".to_owned(),
            );
        }
        let sid = format!("CA{}", crate::random_hex(32));
        let now = SystemTime::now();
        let date = rfc2822(now);
        let account = &self.account_sid;
        let base = format!("/2010-04-01/Accounts/{account}/Calls/{sid}");
        let resource = json!({
            "account_sid": account,
            "answered_by": null,
            "api_version": "2010-04-01",
            "caller_name": null,
            "date_created": date,
            "date_updated": date,
            "direction": "outbound-api",
            "duration": null,
            "end_time": null,
            "forwarded_from": null,
            "from": from,
            "from_formatted": from,
            "group_sid": null,
            "parent_call_sid": null,
            "phone_number_sid": null,
            "price": null,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": null,
            "status": "queued",
            "subresource_uris": {
                "notifications": format!("{base}/Notifications.json"),
                "recordings": format!("{base}/Recordings.json"),
                "payments": format!("{base}/Payments.json"),
                "events": format!("{base}/Events.json"),
                "siprec": format!("{base}/Siprec.json"),
                "streams": format!("{base}/Streams.json"),
                "transcriptions": format!("{base}/Transcriptions.json"),
                "user_defined_message_subscriptions": format!("{base}/UserDefinedMessageSubscriptions.json"),
                "user_defined_messages": format!("{base}/UserDefinedMessages.json"),
            },
            "to": to,
            "to_formatted": to,
            "trunk_sid": null,
            "uri": format!("{base}.json"),
        });
        let record = RecordedCall {
            sid,
            to: to.to_owned(),
            from: from.to_owned(),
            twiml: twiml.map(str::to_owned),
            url: url.map(str::to_owned),
            timeout: request.param("Timeout").and_then(|t| t.parse().ok()),
            params: request.params.clone(),
            received_at: now,
        };
        self.board.update(|r| r.calls.push(record));
        Ok(resource)
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

/// E.164, or a channel address such as `whatsapp:+15551234567`.
fn is_message_address(to: &str) -> bool {
    match to.split_once(':') {
        Some((channel, number)) => !channel.is_empty() && is_e164(number),
        None => is_e164(to),
    }
}

/// E.164, a SIP URI or a Twilio Client identity.
fn is_call_address(to: &str) -> bool {
    to.starts_with("sip:") || to.starts_with("client:") || is_e164(to)
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// SMS segments: 160 GSM-7 characters in one, 153 per part when concatenated; 70 and 67 in
/// UCS-2. GSM-7 is approximated by printable ASCII and line breaks.
fn segments(body: &str) -> usize {
    let gsm = body
        .chars()
        .all(|c| c == '\n' || c == '\r' || (' '..='~').contains(&c));
    let (len, single, part) = if gsm {
        (body.chars().count(), 160, 153)
    } else {
        (utf16_len(body), 70, 67)
    };
    if len <= single {
        1
    } else {
        len.div_ceil(part)
    }
}

/// `application/x-www-form-urlencoded` into ordered pairs: `+` is a space, `%XX` a byte, and a
/// malformed escape is kept as it is.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(input.get(i + 1)), hex(input.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: Option<&u8>) -> Option<u8> {
    let d = *digit?;
    (d as char).to_digit(16).and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form(b"To=%2B15551234567&Body=a+b%26c%3D%E2%9C%93&Empty=&Bare&Bad=%zz%4"),
            vec![
                ("To".into(), "+15551234567".into()),
                ("Body".into(), "a b&c=✓".into()),
                ("Empty".into(), String::new()),
                ("Bare".into(), String::new()),
                ("Bad".into(), "%zz%4".into()),
            ]
        );
    }

    #[test]
    fn segment_counts() {
        assert_eq!(segments("hello"), 1);
        assert_eq!(segments(&"x".repeat(160)), 1);
        assert_eq!(segments(&"x".repeat(161)), 2);
        assert_eq!(segments(&"é".repeat(70)), 1);
        assert_eq!(segments(&"é".repeat(71)), 2);
    }

    #[test]
    fn addresses() {
        assert!(is_message_address("+15551234567"));
        assert!(is_message_address("whatsapp:+15551234567"));
        assert!(!is_message_address("5551234567"));
        assert!(is_call_address("client:alice"));
        assert!(!is_call_address("alice"));
    }
}
