//! What Slack sends to us: request signatures, button presses and slash commands.
//!
//! Every request Slack sends carries `X-Slack-Request-Timestamp` (unix seconds) and
//! `X-Slack-Signature` = `v0=` + hex(HMAC-SHA256(signing secret, `v0:{timestamp}:{raw body}`)).
//! [`verify`] checks both before anything reads the body: the signature in constant time, the
//! timestamp within [`MAX_SKEW`] of our clock either way (an older request is a replay).
//!
//! Then, from the `application/x-www-form-urlencoded` body:
//! - an interaction (a button of [`crate::slack::incident_blocks`] pressed) is one field
//!   `payload` holding JSON: [`parse_interaction`];
//! - a slash command is plain fields (`command`, `text`, `user_id`, `channel_id`,
//!   `response_url`, `trigger_id`): [`parse_slash_command`]. Slack waits 3 seconds for the
//!   answer; slow work goes to `response_url` later.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::slack::IncidentAction;

pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// How far a request's timestamp may be from our clock, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Why a request is refused as not from Slack (answer it 401, and do not act on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no signing secret is configured")]
    NoSecret,
    #[error("no X-Slack-Request-Timestamp")]
    MissingTimestamp,
    #[error("X-Slack-Request-Timestamp {0:?} is not unix seconds")]
    BadTimestamp(String),
    /// Replayed, or one of the clocks is wrong.
    #[error("request timestamp is {skew_secs}s away from now, more than {}s", MAX_SKEW.as_secs())]
    Stale { skew_secs: i64 },
    #[error("no X-Slack-Signature")]
    MissingSignature,
    #[error("X-Slack-Signature does not match the body")]
    BadSignature,
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`: the `X-Slack-Signature` Slack
/// would send. For tests and test doubles.
pub fn sign(signing_secret: &str, timestamp: i64, raw_body: &[u8]) -> String {
    format!(
        "v0={}",
        hex(&mac(signing_secret, &timestamp.to_string(), raw_body))
    )
}

/// Check that a request comes from Slack, as sent, and recently. `timestamp_header` and
/// `signature_header` are the headers' values as received (empty when absent).
pub fn verify(
    signing_secret: &str,
    timestamp_header: &str,
    signature_header: &str,
    raw_body: &[u8],
    now: SystemTime,
) -> Result<(), VerifyError> {
    if signing_secret.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let timestamp = timestamp_header.trim();
    if timestamp.is_empty() {
        return Err(VerifyError::MissingTimestamp);
    }
    let at: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.chars().take(32).collect()))?;
    let now = unix_seconds(now);
    let skew = now.saturating_sub(at);
    if skew.unsigned_abs() > MAX_SKEW.as_secs() {
        return Err(VerifyError::Stale { skew_secs: skew });
    }
    let signature = signature_header.trim();
    if signature.is_empty() {
        return Err(VerifyError::MissingSignature);
    }
    let given = signature
        .strip_prefix("v0=")
        .and_then(unhex)
        .ok_or(VerifyError::BadSignature)?;
    // Signed over the timestamp as sent, which is what Slack signed.
    let expected = mac(signing_secret, timestamp, raw_body);
    if given.len() == expected.len() && bool::from(given.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

fn mac(signing_secret: &str, timestamp: &str, raw_body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(raw_body);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn unix_seconds(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A payload that is not what Slack sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("no `{0}` in the request")]
    Missing(&'static str),
    #[error("`payload` is not JSON: {0}")]
    NotJson(String),
}

/// An interaction posted to our request URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// A button (or other block element) was used.
    BlockActions(Box<BlockAction>),
    /// `view_submission`, `shortcut`, …: not handled by pagerd, named for the log.
    Other { kind: String },
}

/// A `block_actions` interaction: who pressed which button on which message.
#[derive(Clone, PartialEq, Eq)]
pub struct BlockAction {
    /// `user.id` of who pressed it.
    pub user_id: String,
    pub user_name: Option<String>,
    pub team_id: Option<String>,
    /// The conversation and message the button is on.
    pub channel_id: Option<String>,
    pub message_ts: Option<String>,
    /// `actions[0]`: Slack sends one action per press.
    pub action_id: String,
    pub block_id: Option<String>,
    pub value: Option<String>,
    /// Where to post a reply or a replacement of the message, for 30 minutes. A capability:
    /// whoever holds it can post there, so `Debug` shows its host only.
    pub response_url: Option<String>,
    /// Opens a modal within 3 seconds.
    pub trigger_id: Option<String>,
}

impl BlockAction {
    /// The incident button this is, with the incident id it carries.
    pub fn incident_action(&self) -> Option<(IncidentAction, &str)> {
        let action = IncidentAction::from_action_id(&self.action_id)?;
        let id = self.value.as_deref().filter(|v| !v.is_empty())?;
        Some((action, id))
    }
}

impl fmt::Debug for BlockAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockAction")
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("team_id", &self.team_id)
            .field("channel_id", &self.channel_id)
            .field("message_ts", &self.message_ts)
            .field("action_id", &self.action_id)
            .field("block_id", &self.block_id)
            .field("value", &self.value)
            .field("response_url", &self.response_url.as_deref().map(host_only))
            .field("trigger_id", &self.trigger_id.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A slash command (`/pagerd ack 42`) posted to our request URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SlashCommand {
    /// `/pagerd`.
    pub command: String,
    /// Everything after the command, as typed (may be empty).
    pub text: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub channel_id: String,
    pub team_id: Option<String>,
    /// Where to answer later (a capability, see [`BlockAction::response_url`]).
    pub response_url: String,
    pub trigger_id: Option<String>,
}

impl fmt::Debug for SlashCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlashCommand")
            .field("command", &self.command)
            .field("text", &self.text)
            .field("user_id", &self.user_id)
            .field("user_name", &self.user_name)
            .field("channel_id", &self.channel_id)
            .field("team_id", &self.team_id)
            .field("response_url", &host_only(&self.response_url))
            .field("trigger_id", &self.trigger_id.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Read an interaction from its form body (after [`verify`]).
pub fn parse_interaction(form_body: &[u8]) -> Result<Interaction, PayloadError> {
    let payload = form_field(form_body, "payload").ok_or(PayloadError::Missing("payload"))?;
    let payload: Value =
        serde_json::from_str(&payload).map_err(|err| PayloadError::NotJson(err.to_string()))?;
    let kind = payload["type"]
        .as_str()
        .ok_or(PayloadError::Missing("type"))?;
    if kind != "block_actions" {
        return Ok(Interaction::Other {
            kind: kind.to_owned(),
        });
    }
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let action = &payload["actions"][0];
    Ok(Interaction::BlockActions(Box::new(BlockAction {
        user_id: text(&payload["user"]["id"]).ok_or(PayloadError::Missing("user.id"))?,
        user_name: text(&payload["user"]["username"]).or_else(|| text(&payload["user"]["name"])),
        team_id: text(&payload["team"]["id"]).or_else(|| text(&payload["user"]["team_id"])),
        channel_id: text(&payload["channel"]["id"])
            .or_else(|| text(&payload["container"]["channel_id"])),
        message_ts: text(&payload["message"]["ts"])
            .or_else(|| text(&payload["container"]["message_ts"])),
        action_id: text(&action["action_id"])
            .ok_or(PayloadError::Missing("actions[0].action_id"))?,
        block_id: text(&action["block_id"]),
        value: text(&action["value"]),
        response_url: text(&payload["response_url"]),
        trigger_id: text(&payload["trigger_id"]),
    })))
}

/// Read a slash command from its form body (after [`verify`]).
pub fn parse_slash_command(form_body: &[u8]) -> Result<SlashCommand, PayloadError> {
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(form_body)
        .into_owned()
        .collect();
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let need = |name: &'static str| get(name).ok_or(PayloadError::Missing(name));
    Ok(SlashCommand {
        command: need("command")?,
        text: get("text").unwrap_or_default(),
        user_id: need("user_id")?,
        user_name: get("user_name"),
        channel_id: need("channel_id")?,
        team_id: get("team_id"),
        response_url: need("response_url")?,
        trigger_id: get("trigger_id"),
    })
}

fn form_field(form_body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(form_body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn host_only(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => format!(
            "{}://{}/…",
            parsed.scheme(),
            parsed.host_str().unwrap_or("")
        ),
        Err(_) => "…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const TS: i64 = 1_531_420_618;

    fn at(secs: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
    }

    #[test]
    fn slacks_documented_example() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIGNATURE);
        assert_eq!(
            verify(
                SECRET,
                "1531420618",
                SIGNATURE,
                BODY.as_bytes(),
                at(TS + 10)
            ),
            Ok(())
        );
        let command = parse_slash_command(BODY.as_bytes()).unwrap();
        assert_eq!(command.command, "/webhook-collect");
        assert_eq!(command.text, "");
        assert_eq!(command.user_id, "U2CERLKJA");
        assert_eq!(command.channel_id, "G8PSS9T3V");
        let debug = format!("{command:?}");
        assert!(!debug.contains("96rGlfmib"), "{debug}");
    }

    #[test]
    fn refusals() {
        let body = BODY.as_bytes();
        let check = |ts: &str, sig: &str, now: i64| verify(SECRET, ts, sig, body, at(now));
        assert_eq!(check("1531420618", SIGNATURE, TS + 300), Ok(()));
        assert_eq!(check("1531420618", SIGNATURE, TS - 300), Ok(()));
        assert_eq!(
            check("1531420618", SIGNATURE, TS + 301),
            Err(VerifyError::Stale { skew_secs: 301 })
        );
        assert_eq!(
            check("1531420618", SIGNATURE, TS - 301),
            Err(VerifyError::Stale { skew_secs: -301 })
        );
        assert_eq!(check("", SIGNATURE, TS), Err(VerifyError::MissingTimestamp));
        assert!(matches!(
            check("soon", SIGNATURE, TS),
            Err(VerifyError::BadTimestamp(_))
        ));
        assert_eq!(
            check("1531420618", "", TS),
            Err(VerifyError::MissingSignature)
        );
        assert_eq!(
            check("1531420618", "v1=ab", TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("1531420618", "v0=zz", TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check("1531420618", &SIGNATURE[..20], TS),
            Err(VerifyError::BadSignature)
        );
        // The signature covers the timestamp: moving it breaks the signature.
        assert_eq!(
            check("1531420619", SIGNATURE, TS),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("", "1531420618", SIGNATURE, body, at(TS)),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn block_actions_payload() {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U123", "username": "alice", "team_id": "T1"},
            "team": {"id": "T1"},
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C1"},
            "channel": {"id": "C1", "name": "incidents"},
            "message": {"ts": "1700000000.000100"},
            "response_url": "https://hooks.slack.com/actions/T1/1/secret",
            "trigger_id": "1.2.3",
            "actions": [{"action_id": "pagerd_ack", "block_id": "pagerd_actions", "value": "inc-42", "type": "button"}],
        });
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let Interaction::BlockActions(action) = parse_interaction(body.as_bytes()).unwrap() else {
            panic!("a block action");
        };
        assert_eq!(action.user_id, "U123");
        assert_eq!(action.channel_id.as_deref(), Some("C1"));
        assert_eq!(
            action.incident_action(),
            Some((IncidentAction::Acknowledge, "inc-42"))
        );
        assert!(!format!("{action:?}").contains("secret"));

        let other = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", r#"{"type":"view_submission"}"#)
            .finish();
        assert_eq!(
            parse_interaction(other.as_bytes()),
            Ok(Interaction::Other {
                kind: "view_submission".into()
            })
        );
        assert_eq!(
            parse_interaction(b"x=1"),
            Err(PayloadError::Missing("payload"))
        );
        assert!(matches!(
            parse_interaction(b"payload=%7B"),
            Err(PayloadError::NotJson(_))
        ));
        let no_action = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "payload",
                r#"{"type":"block_actions","user":{"id":"U1"},"actions":[]}"#,
            )
            .finish();
        assert_eq!(
            parse_interaction(no_action.as_bytes()),
            Err(PayloadError::Missing("actions[0].action_id"))
        );
    }
}
