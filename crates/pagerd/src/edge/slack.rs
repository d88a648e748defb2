//! What Slack sends pagerd, on any node's HTTP port: button presses on an
//! incident's message (`POST /slack/interactions`) and the `/pagerd` slash
//! command (`POST /slack/commands`).
//!
//! Every request is checked first (`X-Slack-Signature`, v0 HMAC-SHA256 of the
//! raw body with the app's signing secret, its timestamp within 5 minutes):
//! anything else is 401 and nothing is applied. The Slack member is then
//! mapped to a user of the on-call document by email (`users.lookupByEmail`
//! on the document's users, remembered), so the timeline names who did it;
//! a member nobody in the document matches is refused politely. The work is
//! one replicated write; Slack is answered within its 3 seconds, and when
//! the write takes longer the result follows at the request's `response_url`.

use crate::node::{now_ms, Node};
use axum::body::Bytes;
use axum::extract::State as Ax;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pager_core::command::Responder;
use pager_core::{Command, IncidentStatus, Response as Applied};
use pager_outbound::slack::IncidentAction;
use pager_outbound::slack_verify::{self, Interaction, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use pager_outbound::SlackClient;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};

/// What Slack is answered within (it gives up at 3 s).
const ANSWER_WITHIN: Duration = Duration::from_millis(2_500);
/// A Slack member no user matched is looked up again after this long.
const FORGET_MISS: Duration = Duration::from_secs(300);
/// Most email lookups one request may make (the rest wait for the next).
const LOOKUPS_PER_REQUEST: usize = 50;

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/slack/interactions", post(interactions))
        .route("/slack/commands", post(commands))
}

/// Slack members known to be users of the document, by member id.
#[derive(Default)]
pub struct Directory {
    client: Mutex<Option<SlackClient>>,
    /// Slack member id → pagerd user.
    members: Mutex<HashMap<String, String>>,
    /// Email → Slack member id, or `None` when Slack has nobody with it (and when asked).
    emails: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

impl Directory {
    fn client(&self, node: &Node) -> Option<SlackClient> {
        let mut c = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none() {
            let s = node.cfg.slack.as_ref()?;
            *c = SlackClient::new(&s.base_url, s.bot_token.clone())
                .and_then(|c| c.with_timeout(Duration::from_secs(2)))
                .ok();
        }
        c.clone()
    }

    /// The document's user who is Slack member `member`, if any.
    async fn user_of(&self, node: &Node, member: &str) -> Result<Option<String>, String> {
        if let Some(u) = self
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(member)
        {
            return Ok(Some(u.clone()));
        }
        // A Slack contact method may name the member id itself; else each
        // user's emails (the account's, a Slack contact's) are looked up.
        let candidates: Vec<(String, String)> = node.read(|s| {
            let mut out = Vec::new();
            for (name, u) in &s.config.users {
                for cm in &u.contact_methods {
                    if cm.kind == pager_core::ContactKind::Slack {
                        out.push((name.clone(), cm.address.clone()));
                    }
                }
                if !u.email.trim().is_empty() {
                    out.push((name.clone(), u.email.trim().to_string()));
                }
            }
            out
        });
        if let Some((user, _)) = candidates.iter().find(|(_, a)| a == member) {
            return Ok(Some(user.clone()));
        }
        let Some(client) = self.client(node) else {
            return Err("Slack is not configured on this node".into());
        };
        let mut lookups = 0;
        for (user, email) in candidates.iter().filter(|(_, a)| a.contains('@')) {
            let known = self
                .emails
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(email)
                .cloned();
            let id = match known {
                Some((id, at)) if id.is_some() || at.elapsed() < FORGET_MISS => id,
                _ => {
                    if lookups == LOOKUPS_PER_REQUEST {
                        break;
                    }
                    lookups += 1;
                    let id = client
                        .lookup_by_email(email)
                        .await
                        .map_err(|e| format!("Slack lookup failed: {}", e.message))?
                        .filter(|u| !u.deleted)
                        .map(|u| u.id);
                    self.emails
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(email.clone(), (id.clone(), Instant::now()));
                    id
                }
            };
            if let Some(id) = id {
                self.members
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), user.clone());
                if id == member {
                    return Ok(Some(user.clone()));
                }
            }
        }
        Ok(None)
    }
}

/// 401 unless Slack signed this body recently with our secret.
fn check(node: &Node, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    let Some(settings) = node.cfg.slack.as_ref() else {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "Slack is not configured on this node ([slack])",
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    slack_verify::verify(
        settings.signing_secret.expose(),
        &header(TIMESTAMP_HEADER),
        &header(SIGNATURE_HEADER),
        body,
        SystemTime::now(),
    )
    .map_err(|e| {
        warn!(cause = %e, "slack request refused");
        problem(
            StatusCode::UNAUTHORIZED,
            &format!("not a request from Slack: {e}"),
        )
    })
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Slack's ephemeral answer: shown only to who asked.
fn ephemeral(text: &str) -> serde_json::Value {
    json!({ "response_type": "ephemeral", "replace_original": false, "text": text })
}

async fn interactions(Ax(node): Ax<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = check(&node, &headers, &body) {
        return refused;
    }
    let action = match slack_verify::parse_interaction(&body) {
        Ok(Interaction::BlockActions(a)) => a,
        Ok(Interaction::Other { kind }) => {
            info!(kind, "slack interaction not handled");
            return StatusCode::OK.into_response();
        }
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some((what, id)) = action.incident_action() else {
        return StatusCode::OK.into_response(); // not one of our buttons
    };
    let Ok(incident) = id.parse::<u64>() else {
        return problem(StatusCode::BAD_REQUEST, "value: not an incident id");
    };
    let member = action.user_id.clone();
    let reply_to = action.response_url.clone();
    let work = {
        let node = node.clone();
        async move {
            let user = match node.slack_users.user_of(&node, &member).await {
                Ok(Some(u)) => u,
                Ok(None) => return not_a_user(),
                Err(e) => return format!("Sorry, that did not work: {e}."),
            };
            let cmd = match what {
                IncidentAction::Acknowledge => Command::Acknowledge {
                    at: 0,
                    incident,
                    by: user,
                },
                IncidentAction::Resolve => Command::Resolve {
                    at: 0,
                    incident,
                    by: user,
                },
                IncidentAction::Escalate => match next_level(&node, incident) {
                    Ok(level) => Command::Escalate {
                        at: 0,
                        incident,
                        level,
                        by: user,
                    },
                    Err(why) => return why,
                },
                IncidentAction::PageTeam => {
                    let teams: Vec<String> =
                        node.read(|s| s.config.teams.keys().cloned().collect());
                    return format!(
                        "To page another team into incident {incident}, type \
                         `/pagerd responders {incident} TEAM` (teams: {}).",
                        teams.join(", ")
                    );
                }
            };
            apply(&node, cmd, &format!("Incident {incident}")).await
        }
    };
    // The message itself shows a success (it is updated); a refusal or an
    // error is told to who pressed, at the request's response URL.
    let answer = answer_in_time(work).await;
    let text = match answer {
        Answered::Now(text) => text,
        Answered::Later(rx) => {
            spawn_reply(reply_to, rx);
            return StatusCode::OK.into_response();
        }
    };
    if !text.ends_with(": done.") {
        if let Some(url) = reply_to {
            tokio::spawn(async move { post_reply(&url, &text).await });
        }
    }
    StatusCode::OK.into_response()
}

async fn commands(Ax(node): Ax<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = check(&node, &headers, &body) {
        return refused;
    }
    let cmd = match slack_verify::parse_slash_command(&body) {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let reply_to = Some(cmd.response_url.clone()).filter(|u| !u.is_empty());
    let work = {
        let node = node.clone();
        async move {
            let user = match node.slack_users.user_of(&node, &cmd.user_id).await {
                Ok(Some(u)) => u,
                Ok(None) => return not_a_user(),
                Err(e) => return format!("Sorry, that did not work: {e}."),
            };
            slash(&node, &cmd.text, user).await
        }
    };
    match answer_in_time(work).await {
        Answered::Now(text) => Json(ephemeral(&text)).into_response(),
        Answered::Later(rx) => {
            spawn_reply(reply_to, rx);
            Json(ephemeral("Working on it…")).into_response()
        }
    }
}

fn not_a_user() -> String {
    "Sorry, your Slack account's email address is not a user's in pagerd's on-call document, \
     so nothing was done. Ask an admin to add it."
        .into()
}

const USAGE: &str = "Usage: `/pagerd ack ID`, `/pagerd resolve ID`, `/pagerd escalate ID`, \
    `/pagerd responders ID TEAM`, `/pagerd oncall SERVICE`, `/pagerd page TEAM \"summary\"`";

/// One `/pagerd …` command, as `user`.
async fn slash(node: &Node, text: &str, user: String) -> String {
    let words = split_words(text);
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    let incident = || word(1).trim_start_matches('#').parse::<u64>().ok();
    match word(0).to_ascii_lowercase().as_str() {
        "ack" | "acknowledge" | "resolve" | "escalate" => {
            let Some(id) = incident() else {
                return format!("Which incident? {USAGE}");
            };
            let cmd = match word(0).to_ascii_lowercase().as_str() {
                "resolve" => Command::Resolve {
                    at: 0,
                    incident: id,
                    by: user,
                },
                "escalate" => match next_level(node, id) {
                    Ok(level) => Command::Escalate {
                        at: 0,
                        incident: id,
                        level,
                        by: user,
                    },
                    Err(why) => return why,
                },
                _ => Command::Acknowledge {
                    at: 0,
                    incident: id,
                    by: user,
                },
            };
            apply(node, cmd, &format!("Incident {id}")).await
        }
        "responders" => {
            let (Some(id), team) = (incident(), word(2)) else {
                return format!("Which incident? {USAGE}");
            };
            if team.is_empty() {
                return format!("Which team? {USAGE}");
            }
            let cmd = Command::AddResponders {
                at: 0,
                incident: id,
                targets: vec![Responder::Team(team.to_string())],
                by: user,
            };
            apply(node, cmd, &format!("Team {team} paged into incident {id}")).await
        }
        "oncall" => {
            let service = word(1);
            let now = now_ms();
            let levels = node.read(|s| s.config.service_on_call(service, now));
            match levels {
                None => format!("There is no service {service:?}. {USAGE}"),
                Some(levels) => {
                    let lines: Vec<String> = levels
                        .iter()
                        .map(|l| {
                            let who = if l.users.is_empty() {
                                "nobody".to_string()
                            } else {
                                l.users.join(", ")
                            };
                            format!("level {}: {who}", l.level)
                        })
                        .collect();
                    format!("On call for {service} now: {}", lines.join("; "))
                }
            }
        }
        "page" => {
            let (team, summary) = (word(1), words.get(2..).map(|w| w.join(" ")));
            let summary = summary.unwrap_or_default();
            if team.is_empty() || summary.trim().is_empty() {
                return format!("Page whom, about what? {USAGE}");
            }
            page_team(node, team, &summary, &user).await
        }
        _ => USAGE.to_string(),
    }
}

/// Open an incident on a service of `team` (its first) and page the team on it.
async fn page_team(node: &Node, team: &str, summary: &str, user: &str) -> String {
    let service = node.read(|s| {
        s.config.teams.contains_key(team).then(|| {
            s.config
                .services
                .iter()
                .find(|(_, svc)| svc.team.as_deref() == Some(team))
                .and_then(|(_, svc)| svc.integration_keys.first().cloned())
        })
    });
    let key = match service {
        None => return format!("There is no team {team:?}."),
        Some(None) => return format!("Team {team} has no service to open an incident on."),
        Some(Some(key)) => key,
    };
    let event = pager_core::Event {
        routing_key: key,
        action: pager_core::EventAction::Trigger,
        dedup_key: String::new(),
        summary: summary.chars().take(1024).collect(),
        source: format!("slack (/pagerd page, by {user})"),
        ..Default::default()
    };
    let cmd = Command::Ingest {
        at: 0,
        event: Box::new(event),
    };
    match node.write(cmd).await {
        Ok(w) => match w.response {
            Applied::Event {
                incident: Some(id), ..
            } => format!("Paged {team}: incident {id}."),
            Applied::Rejected(r) => format!("Not paged: {r}."),
            _ => format!("Paged {team}."),
        },
        Err(e) => format!("Not paged: {e}. Try again."),
    }
}

/// The 1-based level after the one the incident's policy is paging.
fn next_level(node: &Node, incident: u64) -> Result<u32, String> {
    node.read(|s| match s.incidents.get(&incident) {
        None => Err(format!("There is no incident {incident}.")),
        Some(i) if i.status != IncidentStatus::Triggered => Err(format!(
            "Incident {incident} is {}: nothing to escalate.",
            i.status.as_str()
        )),
        Some(i) => Ok(i.escalation().0 + 2),
    })
}

/// Apply `cmd`; the words for who asked.
async fn apply(node: &Node, cmd: Command, what: &str) -> String {
    match node.write(cmd).await {
        Ok(w) => match w.response {
            Applied::Rejected(r) => format!("{what}: not done: {r}."),
            _ => format!("{what}: done."),
        },
        Err(e) => format!("{what}: not done: {e}. Try again."),
    }
}

enum Answered {
    Now(String),
    Later(tokio::sync::oneshot::Receiver<String>),
}

/// Run `work`; its answer if it is done within [`ANSWER_WITHIN`], else a
/// receiver for it (the work goes on).
async fn answer_in_time(
    work: impl std::future::Future<Output = String> + Send + 'static,
) -> Answered {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(work.await);
    });
    match tokio::time::timeout(ANSWER_WITHIN, &mut rx).await {
        Ok(Ok(text)) => Answered::Now(text),
        Ok(Err(_)) => Answered::Now("Sorry, that did not work. Try again.".into()),
        Err(_) => Answered::Later(rx),
    }
}

fn spawn_reply(url: Option<String>, rx: tokio::sync::oneshot::Receiver<String>) {
    tokio::spawn(async move {
        if let (Ok(text), Some(url)) = (rx.await, url) {
            post_reply(&url, &text).await;
        }
    });
}

/// Tell who asked, at the request's `response_url` (Slack's, for 30 minutes).
async fn post_reply(url: &str, text: &str) {
    let client = reqwest::Client::new();
    let sent = client
        .post(url)
        .timeout(Duration::from_secs(5))
        .json(&ephemeral(text))
        .send()
        .await;
    if let Err(e) = sent {
        warn!(cause = %e.without_url(), "slack response_url not reached");
    }
}

/// Words of a slash command; `"…"` groups words.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' | '“' | '”' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn quoted_words_stay_together() {
        assert_eq!(
            split_words(r#"page devops "db latency"  now"#),
            ["page", "devops", "db latency", "now"]
        );
        assert_eq!(split_words("  ack 42 "), ["ack", "42"]);
        assert!(split_words("").is_empty());
    }
}
