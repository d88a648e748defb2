//! Slack's Web API, as a bot: post and update an incident's message, find a responder by email,
//! open a direct message to them. And the Block Kit card that such a message carries.
//!
//! Requests follow Slack's OpenAPI description (`slack_web_openapi_v2.json`, kept in
//! `tests/spec/slack/`) where it matches real Slack, and real Slack where it does not: the token
//! goes in `Authorization: Bearer xoxb-…` (the file declares a `token` header), and `blocks` is a
//! JSON array inside a JSON body (`Content-Type: application/json; charset=utf-8`), where the
//! file declares a string.
//!
//! | call | request |
//! |---|---|
//! | [`SlackClient::post_message`] | `POST chat.postMessage` `{channel, text, blocks, thread_ts}` |
//! | [`SlackClient::update`] | `POST chat.update` `{channel, ts, text, blocks}` |
//! | [`SlackClient::lookup_by_email`] | `GET users.lookupByEmail?email=…` |
//! | [`SlackClient::open_dm`] | `POST conversations.open` `{users}` |
//!
//! Slack answers most failures with HTTP 200 and `{"ok": false, "error": "…"}`; [`error_kind`]
//! says what each error means for a retry. Rate limits are HTTP 429 with `Retry-After` in
//! seconds.

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::transport::{self, Effect};
use crate::{ConfigError, ErrorKind, OutboundError, Secret, DEFAULT_TIMEOUT};

/// Slack's public Web API root.
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api";
/// Slack truncates a message's `text` beyond this many characters; we cut it first, so that a
/// long page is shortened, never refused.
pub const MAX_TEXT: usize = 40_000;
/// The most characters in a section block's `text`.
pub const MAX_SECTION_TEXT: usize = 3_000;
/// The most characters in one of a section block's `fields`.
pub const MAX_FIELD_TEXT: usize = 2_000;
/// The most characters in a button's `value`.
pub const MAX_BUTTON_VALUE: usize = 2_000;

/// The content type Slack wants for JSON bodies (without the charset it answers with a
/// `missing_charset` warning).
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Slack errors that mean the token is wrong, revoked or lacks a scope.
pub const AUTH_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "ekm_access_denied",
    "org_login_required",
];

/// Slack errors that mean "later": Slack's own trouble or a rate limit. The spec's enum says
/// `rate_limited`, real Slack says `ratelimited`; both count.
pub const TRANSIENT_ERRORS: &[&str] = &[
    "fatal_error",
    "fatal",
    "internal_error",
    "request_timeout",
    "service_unavailable",
    "team_added_to_org",
];

/// Of [`TRANSIENT_ERRORS`], those that Slack documents as "it's possible some aspect of the
/// operation succeeded before the error was raised": a posted message may exist.
pub const MAYBE_DONE_ERRORS: &[&str] = &["fatal_error", "fatal", "internal_error"];

/// What a Slack `error` code means for the caller. Anything not listed is permanent: the same
/// request will be refused again (`channel_not_found`, `not_in_channel`, `is_archived`,
/// `msg_too_long`, `invalid_blocks`, `no_text`, `message_not_found`, …).
pub fn error_kind(error: &str) -> ErrorKind {
    if AUTH_ERRORS.contains(&error) {
        ErrorKind::Auth
    } else if matches!(error, "ratelimited" | "rate_limited") {
        ErrorKind::RateLimited { retry_after: None }
    } else if TRANSIENT_ERRORS.contains(&error) {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    }
}

/// A message Slack took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The conversation it is in: as given, or the DM's `D…` id when a user id was given.
    pub channel: String,
    /// Its timestamp, `1503435956.000247`: the id to update it or reply in its thread.
    pub ts: String,
}

/// A workspace member, as `users.lookupByEmail` describes them (the parts a pager needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackUser {
    /// `U…` or `W…`: what `conversations.open` and mentions (`<@U…>`) take.
    pub id: String,
    /// The handle.
    pub name: String,
    pub real_name: Option<String>,
    pub display_name: Option<String>,
    /// IANA time zone, `America/Los_Angeles`.
    pub tz: Option<String>,
    /// Deactivated: messages to them will not be read.
    pub deleted: bool,
    pub is_bot: bool,
}

/// One bot token's Web API, with one pooled HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    /// The API root, e.g. `https://slack.com/api`; methods are path segments under it.
    base: Url,
    token: Secret,
    timeout: Duration,
}

impl fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The part of `users.lookupByEmail`'s `user` that we keep.
#[derive(Debug, Deserialize)]
struct UserObject {
    id: String,
    #[serde(default)]
    name: String,
    real_name: Option<String>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    is_bot: bool,
    tz: Option<String>,
    #[serde(default)]
    profile: Profile,
}

#[derive(Debug, Default, Deserialize)]
struct Profile {
    real_name: Option<String>,
    display_name: Option<String>,
}

/// How a method takes its parameters.
enum Params<'a> {
    /// `POST` with a JSON object.
    Json(Value),
    /// `GET` with a query string.
    Query(&'a [(&'a str, &'a str)]),
}

impl SlackClient {
    /// A client for `base_url` ([`DEFAULT_BASE_URL`] in production) with a bot token
    /// (`xoxb-…`). Opens no connection.
    pub fn new(base_url: &str, bot_token: impl Into<Secret>) -> Result<SlackClient, ConfigError> {
        let token = bot_token.into();
        if token.expose().trim().is_empty() {
            return Err(ConfigError::Empty {
                what: "slack bot token",
            });
        }
        Ok(SlackClient {
            http: transport::http_client("slack")?,
            base: transport::check_base_url("slack", base_url)?,
            token,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Bound each request to `timeout` (default [`DEFAULT_TIMEOUT`]), from connect to the last
    /// byte of the answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<SlackClient, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout { what: "slack" });
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// Post a message to `channel` (a `C…`/`G…`/`D…` id, or a user id for the bot's DM with
    /// them), in the thread of `thread_ts` if given. `blocks` is a Block Kit array (e.g.
    /// [`incident_blocks`]) or `Value::Null`; `text` is the notification and fallback text, cut
    /// to [`MAX_TEXT`]. Not idempotent: a retry after an in-doubt error may post twice.
    #[tracing::instrument(name = "slack_post", skip_all, fields(channel, thread = thread_ts))]
    pub async fn post_message(
        &self,
        channel: &str,
        text: &str,
        blocks: Value,
        thread_ts: Option<&str>,
    ) -> Result<Posted, OutboundError> {
        let mut body = message_body(channel, text, blocks)?;
        if let Some(ts) = thread_ts {
            body.insert("thread_ts".to_owned(), Value::from(ts));
        }
        let answer = self
            .call(
                "chat.postMessage",
                Params::Json(Value::Object(body)),
                Effect::Mutating,
            )
            .await?;
        let posted = posted(&answer, channel)?;
        tracing::debug!(channel = %posted.channel, ts = %posted.ts, "slack message posted");
        Ok(posted)
    }

    /// Replace the text and blocks of the message `ts` in `channel`. Idempotent: updating twice
    /// to the same content leaves one message with that content.
    #[tracing::instrument(name = "slack_update", skip_all, fields(channel, ts))]
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Value,
    ) -> Result<Posted, OutboundError> {
        let mut body = message_body(channel, text, blocks)?;
        body.insert("ts".to_owned(), Value::from(ts));
        let answer = self
            .call(
                "chat.update",
                Params::Json(Value::Object(body)),
                Effect::Idempotent,
            )
            .await?;
        posted(&answer, channel)
    }

    /// The workspace member with this email address, or `None` when Slack knows none
    /// (`users_not_found`). Read-only.
    #[tracing::instrument(
        name = "slack_lookup",
        skip_all,
        fields(email = %pager_notify::mask::email(email))
    )]
    pub async fn lookup_by_email(&self, email: &str) -> Result<Option<SlackUser>, OutboundError> {
        let answer = self
            .call(
                "users.lookupByEmail",
                Params::Query(&[("email", email)]),
                Effect::Idempotent,
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(err) if err.code.as_deref() == Some("users_not_found") => return Ok(None),
            Err(err) => return Err(mask_email(err, email)),
        };
        let user: UserObject = serde_json::from_value(answer["user"].clone()).map_err(|err| {
            OutboundError::transient(format!(
                "slack users.lookupByEmail answered ok without a readable user: {err}"
            ))
        })?;
        Ok(Some(SlackUser {
            id: user.id,
            name: user.name,
            real_name: user.real_name.or(user.profile.real_name),
            display_name: user.profile.display_name.filter(|n| !n.is_empty()),
            tz: user.tz,
            deleted: user.deleted,
            is_bot: user.is_bot,
        }))
    }

    /// The id (`D…`) of the bot's direct-message conversation with `user_id`, opened if need
    /// be. Idempotent: Slack returns the same conversation every time.
    #[tracing::instrument(name = "slack_open_dm", skip_all, fields(user = user_id))]
    pub async fn open_dm(&self, user_id: &str) -> Result<String, OutboundError> {
        let answer = self
            .call(
                "conversations.open",
                Params::Json(json!({ "users": user_id })),
                Effect::Idempotent,
            )
            .await?;
        match answer["channel"]["id"].as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_owned()),
            _ => Err(OutboundError::transient(
                "slack conversations.open answered ok without a channel id",
            )),
        }
    }

    /// The message in `channel` (or, with `thread_ts`, in that message's thread) posted after
    /// `oldest` (a Slack `ts`, or Unix seconds) whose blocks include one with `block_id`: how
    /// a post whose answer was lost is found instead of posted twice (see [`marker_block`]).
    /// Reads `conversations.history` (`conversations.replies` for a thread), at most
    /// [`FIND_PAGES`] pages of 200. Read-only.
    #[tracing::instrument(name = "slack_find", skip_all, fields(channel, thread = thread_ts))]
    pub async fn find_marked(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest: &str,
        block_id: &str,
    ) -> Result<Option<Posted>, OutboundError> {
        let method = if thread_ts.is_some() {
            "conversations.replies"
        } else {
            "conversations.history"
        };
        let mut cursor = String::new();
        for _ in 0..FIND_PAGES {
            let mut query = vec![("channel", channel), ("oldest", oldest), ("limit", "200")];
            if let Some(ts) = thread_ts {
                query.push(("ts", ts));
            }
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let answer = self
                .call(method, Params::Query(&query), Effect::Idempotent)
                .await?;
            let messages = answer["messages"].as_array().cloned().unwrap_or_default();
            let found = messages.iter().find(|m| {
                m["blocks"]
                    .as_array()
                    .is_some_and(|b| b.iter().any(|b| b["block_id"] == block_id))
            });
            if let Some(ts) = found.and_then(|m| m["ts"].as_str()) {
                return Ok(Some(Posted {
                    channel: channel.to_owned(),
                    ts: ts.to_owned(),
                }));
            }
            cursor = answer["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            if cursor.is_empty() || answer["has_more"] != Value::Bool(true) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// One request to `method`; Slack's answer if it says `ok`.
    async fn call(
        &self,
        method: &'static str,
        params: Params<'_>,
        effect: Effect,
    ) -> Result<Value, OutboundError> {
        let what = format!("slack {method}");
        let url = transport::join(&self.base, &[method]);
        let request = match params {
            Params::Json(body) => {
                // Serialized here, so that the content type carries the charset Slack asks for.
                let bytes = serde_json::to_vec(&body).map_err(|err| {
                    OutboundError::permanent(format!("encode the {what} body: {err}"))
                })?;
                self.http
                    .post(url)
                    .header(CONTENT_TYPE, JSON_UTF8)
                    .body(bytes)
            }
            Params::Query(query) => self.http.get(url).query(query),
        };
        let request = request
            .header(AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .timeout(self.timeout);
        let response = request
            .send()
            .await
            .map_err(|err| transport::transport_error(err, &what, effect, self.timeout))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = transport::read_body(response, &what, effect, self.timeout).await?;
        let answer = serde_json::from_slice::<Value>(&body).ok();

        if status == 429 {
            let retry_after = transport::retry_after(&headers, std::time::SystemTime::now());
            return Err(OutboundError::new(
                ErrorKind::RateLimited { retry_after },
                format!("{what}: rate limited"),
            )
            .with_code("ratelimited")
            .with_status(status));
        }
        let error = answer.as_ref().and_then(|a| {
            (a["ok"] == Value::Bool(false)).then(|| a["error"].as_str().unwrap_or("").to_owned())
        });
        if let Some(error) = error {
            return Err(self.slack_error(&what, &error, answer.as_ref(), status, &headers, effect));
        }
        if !(200..300).contains(&status) {
            let kind = transport::status_kind(status, &headers);
            return Err(OutboundError::new(kind, format!("{what}: HTTP {status}"))
                .with_status(status)
                .in_doubt(transport::status_in_doubt(status, effect)));
        }
        match answer {
            Some(answer) if answer["ok"] == Value::Bool(true) => {
                if let Some(warning) = answer["warning"].as_str() {
                    tracing::debug!(method, warning, "slack warning");
                }
                Ok(answer)
            }
            // A 200 we cannot read: the message may well be posted.
            _ => Err(OutboundError::transient(format!(
                "{what}: HTTP {status} without a readable Slack answer"
            ))
            .with_status(status)
            .in_doubt(effect == Effect::Mutating)),
        }
    }

    fn slack_error(
        &self,
        what: &str,
        error: &str,
        answer: Option<&Value>,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        effect: Effect,
    ) -> OutboundError {
        let mut kind = error_kind(error);
        if let ErrorKind::RateLimited { .. } = kind {
            kind = ErrorKind::RateLimited {
                retry_after: transport::retry_after(headers, std::time::SystemTime::now()),
            };
        }
        // `invalid_blocks` says where: "[ERROR] must be less than 3001 characters
        // [json-pointer:/blocks/0/text/text]".
        let details: Vec<&str> = answer
            .and_then(|a| a["response_metadata"]["messages"].as_array())
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut message = format!("{what}: {}", if error.is_empty() { "error" } else { error });
        if !details.is_empty() {
            message = format!("{message}: {}", details.join("; "));
        }
        let message = transport::redact(&message, self.token.expose());
        let in_doubt = effect == Effect::Mutating && MAYBE_DONE_ERRORS.contains(&error);
        OutboundError::new(kind, message)
            .with_code(error)
            .with_status(status)
            .in_doubt(in_doubt)
    }
}

/// `{channel, text, blocks}` for chat.postMessage and chat.update.
fn message_body(
    channel: &str,
    text: &str,
    blocks: Value,
) -> Result<Map<String, Value>, OutboundError> {
    let mut body = Map::new();
    body.insert("channel".to_owned(), Value::from(channel));
    if !text.is_empty() {
        body.insert(
            "text".to_owned(),
            Value::from(transport::cut_chars(text, MAX_TEXT).into_owned()),
        );
    }
    match blocks {
        Value::Null => {}
        Value::Array(blocks) if blocks.is_empty() => {}
        Value::Array(blocks) => {
            body.insert("blocks".to_owned(), Value::Array(blocks));
        }
        _ => {
            return Err(
                OutboundError::permanent("slack blocks must be a JSON array of blocks")
                    .with_code("invalid_blocks"),
            )
        }
    }
    Ok(body)
}

fn posted(answer: &Value, channel: &str) -> Result<Posted, OutboundError> {
    match answer["ts"].as_str() {
        Some(ts) if !ts.is_empty() => Ok(Posted {
            channel: answer["channel"].as_str().unwrap_or(channel).to_owned(),
            ts: ts.to_owned(),
        }),
        // Slack took the message; only its id is unknown, so it cannot be updated later.
        _ => Err(OutboundError::transient("slack answered ok without a message ts").in_doubt(true)),
    }
}

fn mask_email(mut err: OutboundError, email: &str) -> OutboundError {
    if !email.is_empty() {
        err.message = err
            .message
            .replace(email, &pager_notify::mask::email(email));
    }
    err
}

/// The buttons of an incident message. Each sends a `block_actions` interaction with its
/// [`IncidentAction::action_id`] and the incident id as `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentAction {
    Acknowledge,
    Resolve,
    Escalate,
    /// Page another team into the incident.
    PageTeam,
}

impl IncidentAction {
    pub const ALL: [IncidentAction; 4] = [
        IncidentAction::Acknowledge,
        IncidentAction::Resolve,
        IncidentAction::Escalate,
        IncidentAction::PageTeam,
    ];

    pub fn action_id(self) -> &'static str {
        match self {
            IncidentAction::Acknowledge => "pagerd_ack",
            IncidentAction::Resolve => "pagerd_resolve",
            IncidentAction::Escalate => "pagerd_escalate",
            IncidentAction::PageTeam => "pagerd_page_team",
        }
    }

    pub fn from_action_id(action_id: &str) -> Option<IncidentAction> {
        IncidentAction::ALL
            .into_iter()
            .find(|a| a.action_id() == action_id)
    }

    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            IncidentAction::Acknowledge => "Acknowledge",
            IncidentAction::Resolve => "Resolve",
            IncidentAction::Escalate => "Escalate",
            IncidentAction::PageTeam => "Page another team",
        }
    }
}

/// What an incident's Slack message shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentCard {
    /// pagerd's incident id; every button carries it as its `value` (Slack allows
    /// [`MAX_BUTTON_VALUE`] characters).
    pub id: String,
    pub title: String,
    pub service: String,
    /// `triggered`, `acknowledged`, `resolved`, … as pagerd names it.
    pub status: String,
    pub urgency: String,
    /// Who holds it; `None` shows "unassigned".
    pub assignee: Option<String>,
    /// The incident's page in the console; the title links to it when it is an http(s) URL.
    pub link: String,
    /// A conference bridge to join, if there is one.
    pub bridge_url: Option<String>,
}

/// The Block Kit blocks of an incident message: a section with the linked title and the
/// incident id, fields for status, urgency, service and assignee, a line with the bridge if
/// there is one, and an actions block with the four [`IncidentAction`] buttons. Text from the
/// card is escaped (`&`, `<`, `>`, so an alert title cannot mention `<!channel>`) and cut on
/// character boundaries to Slack's limits.
pub fn incident_blocks(card: &IncidentCard) -> Value {
    let id = escape_within(&card.id, 200);
    let head_budget = MAX_SECTION_TEXT - id.chars().count() - 32;
    let head = match link_target(&card.link).filter(|url| url.chars().count() <= 1_000) {
        Some(url) => {
            let title = escape_within(&card.title, head_budget - url.chars().count());
            format!("*<{url}|{title}>*\nIncident `{id}`")
        }
        None => format!(
            "*{}*\nIncident `{id}`",
            escape_within(&card.title, head_budget)
        ),
    };
    let field = |label: &str, value: &str| {
        let budget = MAX_FIELD_TEXT - label.chars().count() - 4;
        json!({ "type": "mrkdwn", "text": format!("*{label}*\n{}", escape_within(value, budget)) })
    };
    let assignee = card.assignee.as_deref().filter(|a| !a.trim().is_empty());
    let mut blocks = vec![json!({
        "type": "section",
        "block_id": "pagerd_incident",
        "text": { "type": "mrkdwn", "text": head },
        "fields": [
            field("Status", &card.status),
            field("Urgency", &card.urgency),
            field("Service", &card.service),
            match assignee {
                Some(who) => field("Assignee", who),
                None => json!({ "type": "mrkdwn", "text": "*Assignee*\n_unassigned_" }),
            },
        ],
    })];
    if let Some(url) = card
        .bridge_url
        .as_deref()
        .and_then(link_target)
        .filter(|url| url.chars().count() <= MAX_SECTION_TEXT - 64)
    {
        blocks.push(json!({
            "type": "section",
            "block_id": "pagerd_bridge",
            "text": { "type": "mrkdwn", "text": format!(":telephone_receiver: <{url}|Join the bridge>") },
        }));
    }
    let buttons: Vec<Value> = IncidentAction::ALL
        .into_iter()
        .map(|action| {
            let mut button = json!({
                "type": "button",
                "action_id": action.action_id(),
                "text": { "type": "plain_text", "text": action.label() },
                "value": card.id,
            });
            let style = match action {
                IncidentAction::Acknowledge => Some("primary"),
                IncidentAction::Escalate => Some("danger"),
                _ => None,
            };
            if let (Some(style), Some(button)) = (style, button.as_object_mut()) {
                button.insert("style".to_owned(), Value::from(style));
            }
            button
        })
        .collect();
    blocks.push(json!({
        "type": "actions",
        "block_id": "pagerd_actions",
        "elements": buttons,
    }));
    Value::Array(blocks)
}

/// Pages of 200 messages [`SlackClient::find_marked`] reads before it gives up.
pub const FIND_PAGES: usize = 10;

/// A context block that marks a message as pagerd's delivery `delivery` (its `block_id` is
/// [`marker_id`]), appended to `blocks` (a Block Kit array): [`SlackClient::find_marked`]
/// finds the message by it after an answer was lost.
pub fn marker_block(blocks: Value, delivery: u64, label: &str) -> Value {
    let mut blocks = match blocks {
        Value::Array(blocks) => blocks,
        _ => Vec::new(),
    };
    blocks.push(json!({
        "type": "context",
        "block_id": marker_id(delivery),
        "elements": [ { "type": "mrkdwn", "text": escape_within(label, 150) } ],
    }));
    Value::Array(blocks)
}

/// The `block_id` of [`marker_block`] for `delivery`.
pub fn marker_id(delivery: u64) -> String {
    format!("pagerd_delivery_{delivery}")
}

/// The notification text that goes with [`incident_blocks`]: what a phone's lock screen shows.
pub fn incident_text(card: &IncidentCard) -> String {
    let text = format!(
        "[{}] {} ({}, {} urgency) {}",
        card.status, card.title, card.service, card.urgency, card.id
    );
    escape_within(&text, MAX_TEXT)
}

/// Slack's mrkdwn escaping (`&` `<` `>` as entities) of at most `budget` characters of output,
/// cut between characters (never inside an entity), `…` marking a cut.
pub fn escape_within(text: &str, budget: usize) -> String {
    let escaped_len = |c: char| match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    };
    let total: usize = text.chars().map(escaped_len).sum();
    let limit = if total <= budget {
        budget
    } else {
        budget.saturating_sub(1)
    };
    let mut out = String::with_capacity(text.len().min(limit * 4));
    let mut used = 0;
    for c in text.chars() {
        let n = escaped_len(c);
        if used + n > limit {
            break;
        }
        used += n;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    if total > budget && budget > 0 {
        out.push('…');
    }
    out
}

/// `url` fit to sit in `<url|label>`: an absolute http(s) URL with `|`, `<`, `>` and blanks
/// percent-encoded; `None` for anything else.
fn link_target(url: &str) -> Option<String> {
    let parsed = Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return None;
    }
    // `Url` already encodes blanks, `<` and `>`; `|` would end the link's URL early.
    Some(parsed.as_str().replace('|', "%7C"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> IncidentCard {
        IncidentCard {
            id: "inc-42".into(),
            title: "db1 disk <full> & rising".into(),
            service: "postgres".into(),
            status: "triggered".into(),
            urgency: "high".into(),
            assignee: Some("alice".into()),
            link: "https://pagerd.example/incidents/inc-42?a=1|b".into(),
            bridge_url: Some("https://meet.example/inc-42".into()),
        }
    }

    #[test]
    fn error_kinds() {
        assert_eq!(error_kind("invalid_auth"), ErrorKind::Auth);
        assert_eq!(error_kind("token_revoked"), ErrorKind::Auth);
        assert_eq!(
            error_kind("ratelimited"),
            ErrorKind::RateLimited { retry_after: None }
        );
        assert_eq!(
            error_kind("rate_limited"),
            ErrorKind::RateLimited { retry_after: None }
        );
        assert_eq!(error_kind("internal_error"), ErrorKind::Transient);
        assert_eq!(error_kind("fatal_error"), ErrorKind::Transient);
        for permanent in [
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
            "invalid_blocks",
            "no_text",
            "something_new",
        ] {
            assert_eq!(error_kind(permanent), ErrorKind::Permanent, "{permanent}");
        }
    }

    #[test]
    fn the_card_has_the_title_fields_and_four_buttons() {
        let blocks = incident_blocks(&card());
        let head = blocks[0]["text"]["text"].as_str().unwrap();
        assert_eq!(
            head,
            "*<https://pagerd.example/incidents/inc-42?a=1%7Cb|db1 disk &lt;full&gt; &amp; rising>*\nIncident `inc-42`"
        );
        assert_eq!(blocks[0]["fields"][0]["text"], "*Status*\ntriggered");
        assert_eq!(blocks[0]["fields"][3]["text"], "*Assignee*\nalice");
        assert_eq!(
            blocks[1]["text"]["text"],
            ":telephone_receiver: <https://meet.example/inc-42|Join the bridge>"
        );
        let buttons = blocks[2]["elements"].as_array().unwrap();
        let ids: Vec<&str> = buttons
            .iter()
            .map(|b| b["action_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "pagerd_ack",
                "pagerd_resolve",
                "pagerd_escalate",
                "pagerd_page_team"
            ]
        );
        assert!(buttons.iter().all(|b| b["value"] == "inc-42"));
        assert_eq!(buttons[3]["text"]["text"], "Page another team");
        assert_eq!(buttons[0]["style"], "primary");
        for action in IncidentAction::ALL {
            assert_eq!(
                IncidentAction::from_action_id(action.action_id()),
                Some(action)
            );
        }
        assert_eq!(IncidentAction::from_action_id("other"), None);
    }

    #[test]
    fn the_card_stays_within_slack_limits() {
        let long = IncidentCard {
            title: "🔥&".repeat(5_000),
            service: "<".repeat(3_000),
            assignee: None,
            link: "not a url".into(),
            bridge_url: Some("javascript:alert(1)".into()),
            ..card()
        };
        let blocks = incident_blocks(&long);
        let head = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(
            head.chars().count() <= MAX_SECTION_TEXT,
            "{}",
            head.chars().count()
        );
        assert!(head.starts_with("*🔥&amp;🔥"), "no link for a non-URL");
        for field in blocks[0]["fields"].as_array().unwrap() {
            let text = field["text"].as_str().unwrap();
            assert!(text.chars().count() <= MAX_FIELD_TEXT);
            assert!(!text.contains("&l…") && !text.ends_with("&…"));
        }
        assert_eq!(blocks[0]["fields"][3]["text"], "*Assignee*\n_unassigned_");
        assert_eq!(
            blocks.as_array().unwrap().len(),
            2,
            "no bridge line for a non-http URL"
        );
    }

    #[test]
    fn escaping_within_a_budget() {
        assert_eq!(escape_within("a<b", 10), "a&lt;b");
        assert_eq!(escape_within("a<b", 6), "a&lt;b");
        assert_eq!(escape_within("a<bc", 6), "a&lt;…");
        assert_eq!(escape_within("a<bc", 5), "a…");
        assert_eq!(escape_within("&&&", 5), "…");
        assert_eq!(escape_within("", 0), "");
        assert_eq!(escape_within("ab", 0), "");
        assert_eq!(
            escape_within("<!channel> alert", 100),
            "&lt;!channel&gt; alert"
        );
    }

    #[test]
    fn message_bodies() {
        let body = message_body("C1", "hi", Value::Null).unwrap();
        assert_eq!(Value::Object(body), json!({"channel": "C1", "text": "hi"}));
        let body = message_body("C1", "", json!([])).unwrap();
        assert_eq!(Value::Object(body), json!({"channel": "C1"}));
        let err = message_body("C1", "x", json!({"type": "section"})).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permanent);
        let body = message_body("C1", &"x".repeat(MAX_TEXT + 5), Value::Null).unwrap();
        assert_eq!(body["text"].as_str().unwrap().chars().count(), MAX_TEXT);
    }

    #[test]
    fn debug_hides_the_token() {
        let client = SlackClient::new("https://slack.com/api", "xoxb-secret-token").unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("xoxb-secret-token"), "{debug}");
    }
}
