//! A fake Slack workspace for one bot, on `127.0.0.1` and a port the OS picks, answering the Web
//! API methods a pager uses as real Slack does (and as `slack_web_openapi_v2.json` describes,
//! where the two agree):
//!
//! | method | checks, in order | answer |
//! |---|---|---|
//! | any | `Authorization: Bearer` (or, in a form or query, `token`) missing / wrong | `not_authed` / `invalid_auth` |
//! | any | a JSON body that does not parse / is not an object | `invalid_json` / `json_not_object` |
//! | `chat.postMessage` | no `channel`, or one not registered | `channel_not_found` |
//! | | channel archived / bot not in it | `is_archived` / `not_in_channel` |
//! | | `blocks` not an array (or a string holding one) | `invalid_blocks_format` |
//! | | a block without `type`, over a Block Kit limit, an unknown type, … | `invalid_blocks` (+ `response_metadata.messages`) |
//! | | neither `text` nor `blocks` | `no_text` |
//! | | `text` over 40,000 characters | `msg_too_long` |
//! | `chat.update` | as above, and a `ts` not in the channel | `message_not_found` |
//! | `users.lookupByEmail` | no `email` / none registered | `invalid_arguments` / `users_not_found` |
//! | `conversations.open` | no `users` / an unknown user | `users_list_not_supplied` / `user_not_found` |
//! | other | | HTTP 404, `unknown_method` |
//!
//! All these are HTTP 200 with `{"ok": false, "error": …}`, as at Slack. A JSON body whose
//! `Content-Type` lacks `charset=utf-8` is served with `"warning": "missing_charset"`.
//! Channels (`C…`) are registered by the test; `conversations.open` opens a `D…` conversation
//! per user, and posting to a user id posts to it. Every request is recorded ([`SlackRequest`]),
//! and every message posted or updated ([`SlackMessage`], `ts` unique and increasing).
//!
//! [`FakeSlack::fail_next`] queues [`Fault`]s for the next requests. The other direction, Slack
//! calling the app: [`FakeSlack::send_interaction`] and [`FakeSlack::send_slash_command`] POST
//! signed requests (or deliberately badly signed ones, [`Signature`]) to a URL, and the
//! `response_url` they carry points back at this fake, which records what is posted there.
//!
//! The loopback server plumbing at the end of this file (connections that a handler can close
//! without an answer) is shared with the fake Jira and the webhook receiver.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Extension, Json, Router};
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::error::Elapsed;

use super::Board;

/// A bot token for tests.
pub const TEST_BOT_TOKEN: &str = "xoxb-0000000001-0000000002-fakeslackbottoken";
/// An app signing secret for tests.
pub const TEST_SIGNING_SECRET: &str = "8f742231b10e8888abcd99fakefake85a5";
/// The workspace every fake user and request belongs to.
pub const TEAM_ID: &str = "T0000000001";
/// The bot's id in message answers.
pub const BOT_ID: &str = "B0000000001";
/// Slack's limit on `text`, in characters.
pub const MAX_TEXT: usize = 40_000;

/// What the next request gets instead of a normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: secs` and `{"ok": false, "error": "ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// This HTTP status with a text body (what Slack's edge sends on a 500 or 503).
    Status(u16),
    /// HTTP 200 with `{"ok": false, "error": …}`, e.g. `internal_error`; nothing is done.
    Error(String),
    /// Handle the request (record a valid message), then never answer: the client's timeout
    /// decides, and the message is out.
    Hang,
    /// Handle the request (record a valid message), then close the connection without an
    /// answer.
    DropAfterAccept,
}

/// Whether the bot can post in a registered channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Member,
    /// `not_in_channel`.
    NotMember,
    /// `is_archived`.
    Archived,
}

/// A message as it stands now (after its updates).
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    /// `C…`, or the `D…` conversation of a user it was posted to.
    pub channel: String,
    /// `1700000000.000001`, unique in the fake.
    pub ts: String,
    pub text: Option<String>,
    /// The Block Kit array, if it has blocks.
    pub blocks: Option<Value>,
    pub thread_ts: Option<String>,
    /// How many `chat.update`s it had.
    pub edits: u32,
}

/// One request to the Web API, as received, and how it was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackRequest {
    /// The method, `chat.postMessage`.
    pub method: String,
    /// `GET` or `POST`.
    pub http_method: String,
    pub content_type: Option<String>,
    /// The parameters: a JSON body's members, or a form's or query string's fields (as
    /// strings).
    pub params: Map<String, Value>,
    /// The names of the query string's fields (also in `params` for a GET).
    pub query: Vec<String>,
    /// The HTTP status answered; `None` for a hang or a dropped connection.
    pub status: Option<u16>,
    /// Slack's `error`, when it answered `ok: false`.
    pub error: Option<String>,
    /// Slack's `warning`s (`missing_charset`).
    pub warnings: Vec<String>,
}

/// Something the app posted to a `response_url` this fake handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsePost {
    /// The URL's last segment.
    pub token: String,
    pub body: Value,
}

/// How [`FakeSlack::send_interaction`] and [`FakeSlack::send_slash_command`] sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// As Slack does, now.
    Correct,
    /// With another signing secret: a forger.
    WrongSecret,
    /// Correctly, but as of this long ago: a replayed request.
    OldTimestamp(Duration),
    /// The body is changed after signing.
    TamperedBody,
    /// No `X-Slack-Signature` at all.
    Missing,
}

/// A user that `users.lookupByEmail` and `conversations.open` know.
#[derive(Debug, Clone)]
struct User {
    id: String,
    name: String,
    email: String,
}

/// The fake server; see the module documentation.
#[derive(Debug)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// The accept loop; it owns every connection task, so aborting it closes them all.
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    bot_token: String,
    signing_secret: String,
    /// `http://127.0.0.1:<port>`, for the `response_url`s handed out.
    origin: String,
    board: Board<Records>,
    /// Sends interactions and slash commands to the app.
    client: reqwest::Client,
}

#[derive(Debug, Default)]
struct Records {
    channels: HashMap<String, ChannelState>,
    users: Vec<User>,
    /// User id → their DM conversation.
    dms: HashMap<String, String>,
    messages: Vec<SlackMessage>,
    requests: Vec<SlackRequest>,
    responses: Vec<ResponsePost>,
    faults: VecDeque<Fault>,
    /// The last `ts` handed out, in microseconds: the next is later.
    last_ts_micros: u64,
    /// Conversations created (DMs, group DMs), for their ids.
    opened: u64,
}

/// A method's outcome: Slack's answer object, or its error with details.
type Answer = Result<Map<String, Value>, (String, Vec<String>)>;

impl FakeSlack {
    /// Start serving `bot_token`, signing what it sends with `signing_secret`.
    ///
    /// # Panics
    /// If no loopback port can be bound. Use [`FakeSlack::try_start`] to handle that.
    pub async fn start(bot_token: &str, signing_secret: &str) -> FakeSlack {
        match FakeSlack::try_start(bot_token, signing_secret).await {
            Ok(fake) => fake,
            Err(err) => panic!("fake slack: cannot listen on 127.0.0.1: {err}"),
        }
    }

    /// [`FakeSlack::start`], returning the bind error.
    pub async fn try_start(bot_token: &str, signing_secret: &str) -> std::io::Result<FakeSlack> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("Slackbot 1.0 (+https://api.slack.com/robots)")
            .build()
            .map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            bot_token: bot_token.to_owned(),
            signing_secret: signing_secret.to_owned(),
            origin: format!("http://{addr}"),
            board: Board::new(Records::default()),
            client,
        });
        let router = Router::new()
            .route("/api/:method", any(web_api))
            .route("/response/:token", post(response_url))
            .fallback(unknown_method)
            .with_state(shared.clone());
        let server = tokio::spawn(accept_loop(listener, router));
        Ok(FakeSlack {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:<port>/api`, the Web API root (Slack's is `https://slack.com/api`).
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A conversation the bot is a member of. Ids look like Slack's: `C` and 8+ capitals or
    /// digits.
    pub fn add_channel(&self, id: &str) {
        self.set_channel_state(id, ChannelState::Member);
    }

    pub fn set_channel_state(&self, id: &str, state: ChannelState) {
        self.shared
            .board
            .update(|r| r.channels.insert(id.to_owned(), state));
    }

    /// A workspace member with this email (matched without case) and id (`U…`).
    pub fn add_user(&self, email: &str, user_id: &str, name: &str) {
        self.shared.board.update(|r| {
            r.users.retain(|u| u.id != user_id);
            r.users.push(User {
                id: user_id.to_owned(),
                name: name.to_owned(),
                email: email.to_owned(),
            });
        });
    }

    /// Every message, oldest first, as it stands after its updates.
    pub fn messages(&self) -> Vec<SlackMessage> {
        self.shared.board.lock().messages.clone()
    }

    /// The messages in `channel`, oldest first.
    pub fn messages_in(&self, channel: &str) -> Vec<SlackMessage> {
        let records = self.shared.board.lock();
        records
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// Every Web API request so far, oldest first.
    pub fn requests(&self) -> Vec<SlackRequest> {
        self.shared.board.lock().requests.clone()
    }

    /// Everything posted to this fake's `response_url`s, oldest first.
    pub fn responses(&self) -> Vec<ResponsePost> {
        self.shared.board.lock().responses.clone()
    }

    /// The DM conversation of `user_id`, if `conversations.open` (or a post to the user)
    /// opened one.
    pub fn dm_of(&self, user_id: &str) -> Option<String> {
        self.shared.board.lock().dms.get(user_id).cloned()
    }

    /// The next `n` Web API requests get `fault` (after any already queued).
    pub fn fail_next(&self, n: usize, fault: Fault) {
        self.shared.board.update(|r| {
            r.faults.extend(std::iter::repeat(fault).take(n));
        });
    }

    pub fn clear_faults(&self) {
        self.shared.board.update(|r| r.faults.clear());
    }

    /// Wait until `channel` holds at least `n` messages; returns them.
    pub async fn wait_for_messages(
        &self,
        channel: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SlackMessage>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                let found: Vec<SlackMessage> = r
                    .messages
                    .iter()
                    .filter(|m| m.channel == channel)
                    .cloned()
                    .collect();
                (found.len() >= n).then_some(found)
            })
            .await
    }

    /// Wait until the messages (as they stand now, every channel) satisfy `check`; returns
    /// them all.
    pub async fn wait_for_messages_where(
        &self,
        timeout: Duration,
        check: impl Fn(&[SlackMessage]) -> bool,
    ) -> Result<Vec<SlackMessage>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| check(&r.messages).then(|| r.messages.clone()))
            .await
    }

    /// Wait until at least `n` Web API requests were received; returns them all.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SlackRequest>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                (r.requests.len() >= n).then(|| r.requests.clone())
            })
            .await
    }

    /// Wait until at least `n` posts reached the `response_url`s; returns them all.
    pub async fn wait_for_responses(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ResponsePost>, Elapsed> {
        self.shared
            .board
            .wait(timeout, |r| {
                (r.responses.len() >= n).then(|| r.responses.clone())
            })
            .await
    }

    /// A fresh `response_url` on this fake.
    pub fn response_url(&self) -> String {
        format!(
            "{}/response/{}",
            self.shared.origin,
            pager_notify::random_hex(24)
        )
    }

    /// A `block_actions` payload as Slack sends it when `user_id` presses the button
    /// `action_id` (carrying `value`) on message `message_ts` in `channel`.
    pub fn block_action_payload(
        &self,
        user_id: &str,
        channel: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
    ) -> Value {
        let user_name = self
            .shared
            .board
            .lock()
            .users
            .iter()
            .find(|u| u.id == user_id)
            .map_or_else(|| "someone".to_owned(), |u| u.name.clone());
        let action_ts = format!("{}.{:06}", unix_now(), 1);
        json!({
            "type": "block_actions",
            "user": { "id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID },
            "api_app_id": "A0000000001",
            "token": "fake-verification-token",
            "container": { "type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false },
            "trigger_id": format!("{}.{}.{}", unix_now(), 1, pager_notify::random_hex(32)),
            "team": { "id": TEAM_ID, "domain": "fake" },
            "channel": { "id": channel, "name": "incidents" },
            "message": { "type": "message", "ts": message_ts, "bot_id": BOT_ID },
            "response_url": self.response_url(),
            "actions": [{
                "type": "button",
                "action_id": action_id,
                "block_id": "pagerd_actions",
                "value": value,
                "action_ts": action_ts,
                "text": { "type": "plain_text", "text": action_id },
            }],
        })
    }

    /// POST `payload` to the app's interactivity `url` as Slack does: the form field
    /// `payload`, signed as `signature` says. The app's answer status and body.
    pub async fn send_interaction(
        &self,
        url: &str,
        payload: &Value,
        signature: Signature,
    ) -> reqwest::Result<(u16, String)> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        self.shared.send_signed(url, body, signature).await
    }

    /// POST the slash command `command` (`/pagerd`) with `text` from `user_id` in `channel_id`
    /// to the app's `url`, with every field Slack sends, signed as `signature` says.
    pub async fn send_slash_command(
        &self,
        url: &str,
        command: &str,
        text: &str,
        user_id: &str,
        channel_id: &str,
        signature: Signature,
    ) -> reqwest::Result<(u16, String)> {
        let response_url = self.response_url();
        let trigger_id = format!("{}.1.{}", unix_now(), pager_notify::random_hex(32));
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "fake-verification-token")
            .append_pair("team_id", TEAM_ID)
            .append_pair("team_domain", "fake")
            .append_pair("channel_id", channel_id)
            .append_pair("channel_name", "incidents")
            .append_pair("user_id", user_id)
            .append_pair("user_name", "someone")
            .append_pair("command", command)
            .append_pair("text", text)
            .append_pair("api_app_id", "A0000000001")
            .append_pair("is_enterprise_install", "false")
            .append_pair("response_url", &response_url)
            .append_pair("trigger_id", &trigger_id)
            .finish();
        self.shared.send_signed(url, body, signature).await
    }

    /// Stop serving and close every connection; when this returns, connecting is refused.
    pub async fn shutdown(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    async fn send_signed(
        &self,
        url: &str,
        body: String,
        signature: Signature,
    ) -> reqwest::Result<(u16, String)> {
        let now = unix_now();
        let (timestamp, secret) = match signature {
            Signature::OldTimestamp(age) => (
                now.saturating_sub(age.as_secs()),
                self.signing_secret.clone(),
            ),
            Signature::WrongSecret => (now, format!("not-{}", self.signing_secret)),
            _ => (now, self.signing_secret.clone()),
        };
        let timestamp = timestamp.to_string();
        let signed = format!(
            "v0={}",
            hex(&hmac_sha256(
                secret.as_bytes(),
                &[b"v0:", timestamp.as_bytes(), b":", body.as_bytes()],
            ))
        );
        let sent = match signature {
            Signature::TamperedBody => format!("{body}&tampered=1"),
            _ => body,
        };
        let mut request = self
            .client
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header("X-Slack-Request-Timestamp", timestamp);
        if signature != Signature::Missing {
            request = request.header("X-Slack-Signature", signed);
        }
        let response = request.body(sent).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }
}

/// Every `/api/<method>` request.
async fn web_api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    Extension(hangup): Extension<Hangup>,
    http_method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query_fields = form_fields(query.as_deref().unwrap_or("").as_bytes());
    let mut request = SlackRequest {
        method: method.clone(),
        http_method: http_method.to_string(),
        content_type: content_type.clone(),
        params: Map::new(),
        query: query_fields.keys().cloned().collect(),
        status: None,
        error: None,
        warnings: Vec::new(),
    };
    let fault = shared.board.update(|r| r.faults.pop_front());
    match &fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            request.status = Some(429);
            request.error = Some("ratelimited".to_owned());
            shared.record(request);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Some(Fault::Status(status)) => {
            request.status = Some(*status);
            shared.record(request);
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, format!("{status}")).into_response();
        }
        Some(Fault::Error(error)) => {
            request.status = Some(200);
            request.error = Some(error.clone());
            shared.record(request);
            return Json(json!({ "ok": false, "error": error })).into_response();
        }
        _ => {}
    }

    let media = content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let is_json = media.as_deref() == Some("application/json");
    let parsed: Result<Map<String, Value>, &str> = if http_method == Method::GET || body.is_empty()
    {
        Ok(query_fields.clone())
    } else if is_json {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err("json_not_object"),
            Err(_) => Err("invalid_json"),
        }
    } else {
        // A form (Slack's legacy way); query fields count too.
        let mut fields = query_fields.clone();
        fields.extend(form_fields(&body));
        Ok(fields)
    };
    if is_json
        && !content_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
            .replace(' ', "")
            .contains("charset=utf-8")
    {
        request.warnings.push("missing_charset".to_owned());
    }
    let answer = match parsed {
        Err(error) => Err((error.to_owned(), Vec::new())),
        Ok(params) => {
            request.params = params.clone();
            shared.authorize(&headers, &params, is_json).and_then(|()| {
                shared.board.update(|r| match method.as_str() {
                    "chat.postMessage" => r.post_message(&params),
                    "chat.update" => r.update(&params),
                    "users.lookupByEmail" => r.lookup_by_email(&params),
                    "conversations.open" => r.open(&params),
                    "conversations.history" => r.history(&params, None),
                    "conversations.replies" => match str_param(&params, "ts") {
                        Some(ts) => r.history(&params, Some(ts)),
                        None => Err(error("thread_not_found")),
                    },
                    _ => Err(("unknown_method".to_owned(), Vec::new())),
                })
            })
        }
    };
    let status = match &answer {
        Err((error, _)) if error == "unknown_method" => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    let mut body = match answer {
        Ok(mut answer) => {
            answer.insert("ok".to_owned(), Value::Bool(true));
            answer
        }
        Err((error, messages)) => {
            request.error = Some(error.clone());
            let mut answer = Map::new();
            answer.insert("ok".to_owned(), Value::Bool(false));
            answer.insert("error".to_owned(), Value::from(error));
            if !messages.is_empty() {
                answer.insert(
                    "response_metadata".to_owned(),
                    json!({ "messages": messages }),
                );
            }
            answer
        }
    };
    if !request.warnings.is_empty() {
        body.insert(
            "warning".to_owned(),
            Value::from(request.warnings.join(",")),
        );
    }
    match fault {
        Some(Fault::Hang) => {
            shared.record(request);
            std::future::pending::<Response>().await
        }
        Some(Fault::DropAfterAccept) => {
            shared.record(request);
            hangup.now().await
        }
        _ => {
            request.status = Some(status.as_u16());
            shared.record(request);
            (status, Json(Value::Object(body))).into_response()
        }
    }
}

async fn response_url(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    shared
        .board
        .update(|r| r.responses.push(ResponsePost { token, body }));
    Json(json!({ "ok": true })).into_response()
}

async fn unknown_method() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "ok": false, "error": "unknown_method" })),
    )
        .into_response()
}

impl Shared {
    fn record(&self, request: SlackRequest) {
        self.board.update(|r| r.requests.push(request));
    }

    /// The bearer token; a form or query may carry `token` instead, a JSON body may not.
    fn authorize(
        &self,
        headers: &HeaderMap,
        params: &Map<String, Value>,
        is_json: bool,
    ) -> Result<(), (String, Vec<String>)> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let token = bearer.or_else(|| {
            (!is_json)
                .then(|| {
                    params
                        .get("token")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .flatten()
        });
        match token {
            None => Err(("not_authed".to_owned(), Vec::new())),
            Some(token) if token == self.bot_token => Ok(()),
            Some(_) => Err(("invalid_auth".to_owned(), Vec::new())),
        }
    }
}

impl Records {
    fn post_message(&mut self, params: &Map<String, Value>) -> Answer {
        let channel = self.writable_channel(params)?;
        let text = text_param(params)?;
        let blocks = blocks_param(params)?;
        if text.is_none() && blocks.is_none() && !has_attachments(params) {
            return Err(error("no_text"));
        }
        let thread_ts = str_param(params, "thread_ts");
        let ts = self.next_ts();
        let message = SlackMessage {
            channel: channel.clone(),
            ts: ts.clone(),
            text: text.clone(),
            blocks: blocks.clone(),
            thread_ts: thread_ts.clone(),
            edits: 0,
        };
        self.messages.push(message);
        let mut shown = json!({
            "type": "message",
            "subtype": "bot_message",
            "text": text.unwrap_or_default(),
            "ts": ts,
            "bot_id": BOT_ID,
        });
        if let Some(object) = shown.as_object_mut() {
            if let Some(blocks) = blocks {
                object.insert("blocks".to_owned(), blocks);
            }
            if let Some(thread_ts) = thread_ts {
                object.insert("thread_ts".to_owned(), Value::from(thread_ts));
            }
        }
        Ok(object(
            json!({ "channel": channel, "ts": ts, "message": shown }),
        ))
    }

    fn update(&mut self, params: &Map<String, Value>) -> Answer {
        let channel = self.writable_channel(params)?;
        let ts = str_param(params, "ts").ok_or_else(|| error("message_not_found"))?;
        let text = text_param(params)?;
        let blocks = blocks_param(params)?;
        let blocks_given = params.contains_key("blocks");
        if text.is_none() && blocks.is_none() && !has_attachments(params) {
            return Err(error("no_text"));
        }
        let message = self
            .messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
            .ok_or_else(|| error("message_not_found"))?;
        message.text = text.clone();
        // As at Slack: without `blocks`, a message keeps its blocks; `[]` removes them.
        if blocks_given {
            message.blocks = blocks;
        }
        message.edits += 1;
        let text = text.unwrap_or_default();
        Ok(object(json!({
            "channel": channel,
            "ts": ts,
            "text": text,
            "message": { "text": text, "bot_id": BOT_ID },
        })))
    }

    /// `conversations.history` (`thread` `None`: the channel's messages, not thread replies) or
    /// `conversations.replies` (the parent `thread` and its replies), newest first for
    /// history and oldest first for replies as at Slack, after `oldest` (exclusive unless
    /// `inclusive`), `limit` per page (default 100, at most 999; Slack's own cap), paginated
    /// by `cursor`.
    fn history(&mut self, params: &Map<String, Value>, thread: Option<String>) -> Answer {
        let channel = str_param(params, "channel").ok_or_else(|| error("channel_not_found"))?;
        let channel = if self.users.iter().any(|u| u.id == channel) {
            self.dm(&channel)
        } else if self.channels.contains_key(&channel) || self.dms.values().any(|d| *d == channel) {
            channel
        } else {
            return Err(error("channel_not_found"));
        };
        let ts_value = |ts: &str| ts.parse::<f64>().unwrap_or(0.0);
        let oldest = str_param(params, "oldest").map_or(0.0, |t| ts_value(&t));
        let inclusive = matches!(
            str_param(params, "inclusive").as_deref(),
            Some("true" | "1")
        );
        let limit = match str_param(params, "limit") {
            None => 100,
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| error("invalid_limit"))?
                .clamp(1, 999),
        };
        let skip = match str_param(params, "cursor") {
            None => 0,
            Some(c) => c
                .strip_prefix("next_ts:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| error("invalid_cursor"))?,
        };
        if let Some(parent) = &thread {
            if !self
                .messages
                .iter()
                .any(|m| m.channel == channel && m.ts == *parent && m.thread_ts.is_none())
            {
                return Err(error("thread_not_found"));
            }
        }
        let mut found: Vec<&SlackMessage> = self
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .filter(|m| match &thread {
                None => m.thread_ts.is_none(),
                Some(parent) => m.ts == *parent || m.thread_ts.as_deref() == Some(parent.as_str()),
            })
            .filter(|m| {
                let t = ts_value(&m.ts);
                t > oldest || (inclusive && t == oldest)
            })
            .collect();
        if thread.is_none() {
            found.reverse();
        }
        let page: Vec<Value> = found
            .iter()
            .skip(skip)
            .take(limit)
            .map(|m| {
                let mut shown = json!({
                    "type": "message",
                    "subtype": "bot_message",
                    "bot_id": BOT_ID,
                    "text": m.text.clone().unwrap_or_default(),
                    "ts": m.ts,
                });
                if let Some(object) = shown.as_object_mut() {
                    if let Some(blocks) = &m.blocks {
                        object.insert("blocks".to_owned(), blocks.clone());
                    }
                    if let Some(parent) = &m.thread_ts {
                        object.insert("thread_ts".to_owned(), Value::from(parent.clone()));
                    }
                }
                shown
            })
            .collect();
        let more = found.len() > skip + page.len();
        let next = if more {
            format!("next_ts:{}", skip + page.len())
        } else {
            String::new()
        };
        Ok(object(json!({
            "messages": page,
            "has_more": more,
            "pin_count": 0,
            "response_metadata": { "next_cursor": next },
        })))
    }

    fn lookup_by_email(&mut self, params: &Map<String, Value>) -> Answer {
        let email = str_param(params, "email").ok_or_else(|| error("invalid_arguments"))?;
        let user = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email.trim()))
            .ok_or_else(|| error("users_not_found"))?;
        Ok(object(json!({
            "user": {
                "id": user.id,
                "team_id": TEAM_ID,
                "name": user.name,
                "deleted": false,
                "real_name": user.name,
                "tz": "Europe/London",
                "tz_label": "Greenwich Mean Time",
                "tz_offset": 0,
                "is_admin": false,
                "is_owner": false,
                "is_bot": false,
                "is_app_user": false,
                "updated": 1_502_138_686,
                "profile": {
                    "email": user.email,
                    "real_name": user.name,
                    "display_name": user.name,
                    "team": TEAM_ID,
                },
            }
        })))
    }

    fn open(&mut self, params: &Map<String, Value>) -> Answer {
        if let Some(channel) = str_param(params, "channel") {
            return if self.dms.values().any(|d| *d == channel) {
                Ok(object(
                    json!({ "channel": { "id": channel }, "no_op": true, "already_open": true }),
                ))
            } else {
                Err(error("channel_not_found"))
            };
        }
        let users: Vec<String> = str_param(params, "users")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        if users.is_empty() {
            return Err(error("users_list_not_supplied"));
        }
        if users.len() > 8 {
            return Err(error("too_many_users"));
        }
        if let Some(unknown) = users
            .iter()
            .find(|id| !self.users.iter().any(|u| u.id == **id))
        {
            return Err((
                "user_not_found".to_owned(),
                vec![format!("[ERROR] unknown user {unknown}")],
            ));
        }
        if let [user] = users.as_slice() {
            let already = self.dms.contains_key(user);
            let id = self.dm(user);
            let mut answer = object(json!({ "channel": { "id": id } }));
            if already {
                answer.insert("no_op".to_owned(), Value::Bool(true));
                answer.insert("already_open".to_owned(), Value::Bool(true));
            }
            return Ok(answer);
        }
        self.opened += 1;
        let id = format!("G{:010}", self.opened);
        self.channels.insert(id.clone(), ChannelState::Member);
        Ok(object(json!({ "channel": { "id": id } })))
    }

    /// The conversation a message goes to: a registered channel the bot can post in, or the
    /// DM of a registered user given by id.
    fn writable_channel(
        &mut self,
        params: &Map<String, Value>,
    ) -> Result<String, (String, Vec<String>)> {
        let channel = str_param(params, "channel").ok_or_else(|| error("channel_not_found"))?;
        if self.users.iter().any(|u| u.id == channel) {
            return Ok(self.dm(&channel));
        }
        match self.channels.get(&channel) {
            Some(ChannelState::Member) => Ok(channel),
            Some(ChannelState::NotMember) => Err(error("not_in_channel")),
            Some(ChannelState::Archived) => Err(error("is_archived")),
            None => Err(error("channel_not_found")),
        }
    }

    fn dm(&mut self, user_id: &str) -> String {
        if let Some(id) = self.dms.get(user_id) {
            return id.clone();
        }
        self.opened += 1;
        let id = format!("D{:010}", self.opened);
        self.dms.insert(user_id.to_owned(), id.clone());
        self.channels.insert(id.clone(), ChannelState::Member);
        id
    }

    /// `seconds.micros`, later than every `ts` before it.
    fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let micros = now.max(self.last_ts_micros + 1);
        self.last_ts_micros = micros;
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
    }
}

fn error(code: &str) -> (String, Vec<String>) {
    (code.to_owned(), Vec::new())
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn str_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn has_attachments(params: &Map<String, Value>) -> bool {
    match params.get("attachments") {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::String(s)) => s.trim().starts_with('[') && s.trim() != "[]",
        _ => false,
    }
}

fn text_param(params: &Map<String, Value>) -> Result<Option<String>, (String, Vec<String>)> {
    let text = str_param(params, "text");
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(error("msg_too_long"));
    }
    Ok(text)
}

/// `blocks` as an array: a JSON array, or (in a form) a string holding one. `None` when absent
/// or empty.
fn blocks_param(params: &Map<String, Value>) -> Result<Option<Value>, (String, Vec<String>)> {
    let blocks = match params.get("blocks") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(value @ Value::Array(_)) => value,
            _ => return Err(error("invalid_blocks_format")),
        },
        Some(value @ Value::Array(_)) => value.clone(),
        Some(_) => return Err(error("invalid_blocks_format")),
    };
    let problems = check_blocks(&blocks);
    if !problems.is_empty() {
        return Err(("invalid_blocks".to_owned(), problems));
    }
    let empty = blocks.as_array().is_some_and(Vec::is_empty);
    Ok((!empty).then_some(blocks))
}

/// Block Kit's rules for the block types a pager sends (section, header, actions, context,
/// divider), as Slack reports them: `[ERROR] … [json-pointer:/blocks/0/text/text]`. Other
/// types need only a `type`.
pub fn check_blocks(blocks: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail =
        |what: &str, at: &str| problems.push(format!("[ERROR] {what} [json-pointer:{at}]"));
    let Some(blocks) = blocks.as_array() else {
        fail("must be an array", "/blocks");
        return problems;
    };
    if blocks.len() > 50 {
        fail("no more than 50 items allowed", "/blocks");
    }
    let mut block_ids = HashSet::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("/blocks/{i}");
        let Some(kind) = block.get("type").and_then(Value::as_str) else {
            fail("missing required field: type", &at);
            continue;
        };
        if let Some(id) = block.get("block_id") {
            match id.as_str() {
                Some(id) if !id.is_empty() && id.chars().count() <= 255 => {
                    if !block_ids.insert(id.to_owned()) {
                        fail("duplicate block_id", &format!("{at}/block_id"));
                    }
                }
                _ => fail(
                    "must be a string of 1 to 255 characters",
                    &format!("{at}/block_id"),
                ),
            }
        }
        match kind {
            "section" => {
                let text = block.get("text");
                let fields = block.get("fields");
                if text.is_none() && fields.is_none() {
                    fail("must provide either text or fields", &at);
                }
                if let Some(text) = text {
                    check_text(
                        text,
                        &["plain_text", "mrkdwn"],
                        3_000,
                        &format!("{at}/text"),
                        &mut fail,
                    );
                }
                if let Some(fields) = fields {
                    match fields.as_array() {
                        Some(items) if !items.is_empty() && items.len() <= 10 => {
                            for (j, field) in items.iter().enumerate() {
                                check_text(
                                    field,
                                    &["plain_text", "mrkdwn"],
                                    2_000,
                                    &format!("{at}/fields/{j}"),
                                    &mut fail,
                                );
                            }
                        }
                        _ => fail(
                            "must be an array of 1 to 10 text objects",
                            &format!("{at}/fields"),
                        ),
                    }
                }
            }
            "header" => match block.get("text") {
                Some(text) => {
                    check_text(text, &["plain_text"], 150, &format!("{at}/text"), &mut fail)
                }
                None => fail("missing required field: text", &at),
            },
            "actions" => match block.get("elements").and_then(Value::as_array) {
                Some(elements) if !elements.is_empty() && elements.len() <= 25 => {
                    let mut action_ids = HashSet::new();
                    for (j, element) in elements.iter().enumerate() {
                        let at = format!("{at}/elements/{j}");
                        if let Some(id) = element.get("action_id") {
                            match id.as_str() {
                                Some(id) if !id.is_empty() && id.chars().count() <= 255 => {
                                    if !action_ids.insert(id.to_owned()) {
                                        fail("duplicate action_id", &format!("{at}/action_id"));
                                    }
                                }
                                _ => fail(
                                    "must be a string of 1 to 255 characters",
                                    &format!("{at}/action_id"),
                                ),
                            }
                        }
                        match element.get("type").and_then(Value::as_str) {
                            Some("button") => check_button(element, &at, &mut fail),
                            Some(_) => {}
                            None => fail("missing required field: type", &at),
                        }
                    }
                }
                _ => fail(
                    "must be an array of 1 to 25 elements",
                    &format!("{at}/elements"),
                ),
            },
            "context" => match block.get("elements").and_then(Value::as_array) {
                Some(elements) if !elements.is_empty() && elements.len() <= 10 => {
                    for (j, element) in elements.iter().enumerate() {
                        if element.get("type").and_then(Value::as_str) != Some("image") {
                            check_text(
                                element,
                                &["plain_text", "mrkdwn"],
                                3_000,
                                &format!("{at}/elements/{j}"),
                                &mut fail,
                            );
                        }
                    }
                }
                _ => fail(
                    "must be an array of 1 to 10 elements",
                    &format!("{at}/elements"),
                ),
            },
            "divider" | "image" | "input" | "rich_text" | "file" | "video" => {}
            _ => fail(&format!("unsupported type: {kind}"), &format!("{at}/type")),
        }
    }
    problems
}

fn check_button(button: &Value, at: &str, fail: &mut impl FnMut(&str, &str)) {
    match button.get("text") {
        Some(text) => check_text(text, &["plain_text"], 75, &format!("{at}/text"), fail),
        None => fail("missing required field: text", at),
    }
    if let Some(value) = button.get("value") {
        if !value
            .as_str()
            .is_some_and(|v| (1..=2_000).contains(&v.chars().count()))
        {
            fail(
                "must be a string of 1 to 2000 characters",
                &format!("{at}/value"),
            );
        }
    }
    if let Some(url) = button.get("url") {
        if !url
            .as_str()
            .is_some_and(|u| (1..=3_000).contains(&u.chars().count()))
        {
            fail(
                "must be a string of 1 to 3000 characters",
                &format!("{at}/url"),
            );
        }
    }
    if let Some(style) = button.get("style") {
        if !matches!(style.as_str(), Some("primary" | "danger")) {
            fail("must be one of primary, danger", &format!("{at}/style"));
        }
    }
}

fn check_text(
    text: &Value,
    kinds: &[&str],
    max: usize,
    at: &str,
    fail: &mut impl FnMut(&str, &str),
) {
    let kind = text.get("type").and_then(Value::as_str);
    if !kind.is_some_and(|k| kinds.contains(&k)) {
        fail(
            &format!("must be a text object of type {}", kinds.join(" or ")),
            &format!("{at}/type"),
        );
    }
    match text.get("text").and_then(Value::as_str) {
        None | Some("") => fail("must be more than 0 characters", &format!("{at}/text")),
        Some(s) if s.chars().count() > max => {
            fail(
                &format!("must be less than {} characters", max + 1),
                &format!("{at}/text"),
            );
        }
        Some(_) => {}
    }
}

/// A form or query string's fields as JSON strings (the last of a repeated name wins).
fn form_fields(bytes: &[u8]) -> Map<String, Value> {
    url::form_urlencoded::parse(bytes)
        .into_owned()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// HMAC-SHA256 of the concatenated `parts`: Slack's request signatures and Standard Webhooks'.
/// The fakes compute it themselves rather than trust the code under test.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new(); // HMAC takes keys of any length.
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- Loopback server plumbing, shared with the fake Jira and the webhook receiver ----------

/// Per connection: a handler calls [`Hangup::now`] to have the connection closed without an
/// answer.
#[derive(Debug, Clone)]
pub(crate) struct Hangup(Arc<Notify>);

impl Hangup {
    /// Keep the handler from answering, and have its connection's task close the socket.
    pub(crate) async fn now(self) -> Response {
        self.0.notify_one();
        std::future::pending::<Response>().await
    }
}

/// Serve `router` over HTTP/1.1 on `listener` until aborted; aborting closes every connection.
/// Handlers can take an `Extension<Hangup>`.
pub(crate) async fn accept_loop(listener: TcpListener, router: Router) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_kit_checks() {
        assert!(check_blocks(&json!([])).is_empty());
        assert!(check_blocks(&json!([{"type": "divider"}])).is_empty());
        let ok = json!([
            {"type": "section", "block_id": "a", "text": {"type": "mrkdwn", "text": "hi"}},
            {"type": "actions", "elements": [
                {"type": "button", "action_id": "x", "text": {"type": "plain_text", "text": "X"}, "value": "1", "style": "primary"}
            ]},
        ]);
        assert_eq!(check_blocks(&ok), Vec::<String>::new());
        let bad = json!([
            {"text": "no type"},
            {"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(3001)}},
            {"type": "actions", "elements": [
                {"type": "button", "action_id": "x", "text": {"type": "mrkdwn", "text": "X"}},
                {"type": "button", "action_id": "x", "text": {"type": "plain_text", "text": "y".repeat(76)}, "style": "blue"}
            ]},
            {"type": "carousel"},
            {"type": "section"},
        ]);
        let problems = check_blocks(&bad);
        assert_eq!(
            problems,
            vec![
                "[ERROR] missing required field: type [json-pointer:/blocks/0]",
                "[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]",
                "[ERROR] must be a text object of type plain_text [json-pointer:/blocks/2/elements/0/text/type]",
                "[ERROR] duplicate action_id [json-pointer:/blocks/2/elements/1/action_id]",
                "[ERROR] must be less than 76 characters [json-pointer:/blocks/2/elements/1/text/text]",
                "[ERROR] must be one of primary, danger [json-pointer:/blocks/2/elements/1/style]",
                "[ERROR] unsupported type: carousel [json-pointer:/blocks/3/type]",
                "[ERROR] must provide either text or fields [json-pointer:/blocks/4]",
            ]
        );
    }

    #[test]
    fn ts_is_unique_and_increasing() {
        let mut records = Records::default();
        let a = records.next_ts();
        let b = records.next_ts();
        assert!(b > a, "{a} {b}");
        let (secs, micros) = a.split_once('.').unwrap();
        assert_eq!((secs.len(), micros.len()), (10, 6));
    }
}
