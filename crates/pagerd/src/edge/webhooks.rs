//! What phones and inboxes send back, on every node's HTTP port:
//!
//! | route | from | does |
//! |---|---|---|
//! | `POST /twilio/sms` | Twilio, an SMS to our number | `4 123` / `6 123` / `5 123` (or a bare `4`): acknowledge / resolve / escalate; STOP / START: the number's SMS off / on; answers with TwiML `<Message>` |
//! | `POST /twilio/voice/{delivery}?a=N` | Twilio, a call connected | TwiML: the page spoken, then a keypad menu |
//! | `POST /twilio/voice/{delivery}/keys?a=N` | Twilio, a key pressed | 4 / 6 / 5 act, `*` repeats; speaks the result |
//! | `POST /twilio/status?d=&a=` | Twilio, call progress | `CallStatus`: an unanswered call moves on to the next contact method |
//! | `GET`/`POST /v1/links/{token}` | a browser, from an email | the incident and one button; the POST acts |
//!
//! Twilio's requests are checked with `X-Twilio-Signature` against this
//! node's public URL (`advertise.http`) and the current or previous auth
//! token; a bad signature gets 403 and changes nothing. Every action is a
//! command written through [`Node::write`], so any node takes it and forwards
//! it to the leader: acknowledging by phone works while the leader's region is
//! down.

use crate::edge::links::{self, LinkAction};
use crate::error::NodeError;
use crate::leader::pages;
use crate::node::{now_ms, Node};
use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Path, Query, Request, State as Ax};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use pager_core::render;
use pager_core::reply::{self, Keypress, SmsCommand, SMS_HELP, VOICE_MENU};
use pager_core::{Command, ContactKind, IncidentStatus, Response};
use pager_notify::twiml::Twiml;
use pager_notify::{mask, signature};
use serde::Deserialize;
use std::sync::Arc;
use tracing::{info, warn};

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/twilio/sms", post(sms))
        .route("/twilio/voice/:delivery", post(voice))
        .route("/twilio/voice/:delivery/keys", post(keys))
        .route("/twilio/status", post(status))
        .route("/v1/links/:token", get(link_page).post(link_act))
}

/// Seconds the keypad menu waits for a key.
const GATHER_SECS: u32 = 8;

fn json_error(code: StatusCode, message: impl Into<String>) -> HttpResponse {
    (
        code,
        Json(serde_json::json!({"status": "error", "message": message.into()})),
    )
        .into_response()
}

fn twiml(body: String) -> HttpResponse {
    ([("content-type", "application/xml")], body).into_response()
}

/// The POST parameters of a request Twilio signed; any other request is
/// refused (403, or 404 without Twilio configured) before a handler runs.
struct Signed(Vec<(String, String)>);

#[axum::async_trait]
impl FromRequest<Arc<Node>> for Signed {
    type Rejection = HttpResponse;

    async fn from_request(req: Request, node: &Arc<Node>) -> Result<Signed, HttpResponse> {
        let uri = req
            .extensions()
            .get::<OriginalUri>()
            .map_or_else(|| req.uri().clone(), |o| o.0.clone());
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, node)
            .await
            .map_err(IntoResponse::into_response)?;
        verified(node, &uri, &headers, &body).map(Signed)
    }
}

fn verified(
    node: &Node,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<(String, String)>, HttpResponse> {
    let tokens: Vec<&str> = node
        .cfg
        .twilio_webhook_tokens
        .iter()
        .map(|t| t.expose())
        .collect();
    if tokens.is_empty() {
        return Err(json_error(
            StatusCode::NOT_FOUND,
            "twilio is not configured on this node",
        ));
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", node.cfg.public_url);
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given.is_empty() || !signature::verify(&tokens, &url, &params, given) {
        warn!(
            path = uri.path(),
            "twilio webhook refused: bad or missing X-Twilio-Signature"
        );
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "X-Twilio-Signature: does not match this request",
        ));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn sms(Ax(node): Ax<Arc<Node>>, Signed(params): Signed) -> HttpResponse {
    let from = param(&params, "From").to_string();
    let text = param(&params, "Body");
    let cmd = match reply::parse_sms(text) {
        SmsCommand::Help => return twiml(Twiml::new().message(SMS_HELP).build()),
        SmsCommand::OptOut | SmsCommand::OptIn => Command::ContactHealth {
            at: 0,
            method: ContactKind::Sms,
            reachable: reply::parse_sms(text) == SmsCommand::OptIn,
            reason: format!("replied {}", text.trim().to_ascii_uppercase()),
            address: from.clone(),
        },
        SmsCommand::Act(action, code) => Command::PhoneReply {
            at: 0,
            from: from.clone(),
            via: ContactKind::Sms,
            delivery: code,
            action,
        },
    };
    let opt_out = matches!(
        cmd,
        Command::ContactHealth {
            reachable: false,
            ..
        }
    );
    let message = match node.write(cmd).await {
        Ok(w) => {
            let message = reply_message(w.response);
            info!(from = %mask::phone(&from), reply = %message, "sms reply handled");
            message
        }
        Err(e) => {
            warn!(from = %mask::phone(&from), cause = %e, "sms reply not recorded");
            "pagerd could not record that just now; please try again in a minute.".to_string()
        }
    };
    if opt_out {
        // Twilio answers STOP itself and blocks anything we would send.
        return twiml(Twiml::empty());
    }
    twiml(Twiml::new().message(&message).build())
}

fn reply_message(response: Response) -> String {
    match response {
        Response::Reply { message, .. } => message,
        Response::Rejected(r) => format!("pagerd: {r}"),
        _ => "pagerd: done.".to_string(),
    }
}

#[derive(Debug, Deserialize)]
struct AttemptQuery {
    a: u32,
}

async fn voice(
    Ax(node): Ax<Arc<Node>>,
    Path(delivery): Path<u64>,
    Query(q): Query<AttemptQuery>,
    Signed(params): Signed,
) -> HttpResponse {
    let answered_by = param(&params, "AnsweredBy");
    let test = node.read(|s| {
        s.deliveries
            .get(&delivery)
            .filter(|d| d.purpose == pager_core::delivery::Purpose::Test)
            .map(|d| pager_core::render::test_page(d).text)
    });
    if let Some(words) = test {
        // A test call: say so and hang up; there is nothing to acknowledge.
        return twiml(Twiml::new().say(&words).hangup().build());
    }
    let page = node.read(|s| {
        let d = s.deliveries.get(&delivery)?;
        let inc = s.incidents.get(&d.incident)?;
        let already = match inc.status {
            IncidentStatus::Triggered => None,
            IncidentStatus::Acknowledged => Some(format!(
                "It was already acknowledged by {}.",
                inc.acknowledged_by
            )),
            IncidentStatus::Resolved => {
                Some(format!("It was already resolved by {}.", inc.resolved_by))
            }
        };
        Some((render::voice(inc, d), already))
    });
    let Some((script, already)) = page else {
        return twiml(
            Twiml::new()
                .say("This is pager d. This page is no longer available. Goodbye.")
                .hangup()
                .build(),
        );
    };
    if answered_by.starts_with("machine") || answered_by == "fax" {
        // Voicemail: leave the facts, never count it as reached.
        return twiml(Twiml::new().say(&script).hangup().build());
    }
    if let Some(already) = already {
        return twiml(
            Twiml::new()
                .say(&script)
                .say(&already)
                .say("Goodbye.")
                .hangup()
                .build(),
        );
    }
    let action = format!(
        "{}/twilio/voice/{delivery}/keys?a={}",
        node.cfg.public_url, q.a
    );
    twiml(
        Twiml::new()
            .gather(1, &action, GATHER_SECS, &[&script, VOICE_MENU])
            .gather(1, &action, GATHER_SECS, &[VOICE_MENU])
            .say("No key pressed. Goodbye.")
            .hangup()
            .build(),
    )
}

async fn keys(
    Ax(node): Ax<Arc<Node>>,
    Path(delivery): Path<u64>,
    Query(q): Query<AttemptQuery>,
    Signed(params): Signed,
) -> HttpResponse {
    let repeat = format!(
        "{}{}",
        node.cfg.public_url,
        pages::voice_path(delivery, q.a)
    );
    let action = match reply::parse_keys(param(&params, "Digits")) {
        Keypress::Act(action) => action,
        Keypress::Repeat => return twiml(Twiml::new().redirect(&repeat).build()),
        Keypress::Unknown => {
            return twiml(
                Twiml::new()
                    .say("Sorry, that key does nothing.")
                    .redirect(&repeat)
                    .build(),
            )
        }
    };
    // An outbound call's `To` is the phone the page went to.
    let to = param(&params, "To").to_string();
    let cmd = Command::PhoneReply {
        at: 0,
        from: to.clone(),
        via: ContactKind::Voice,
        delivery: Some(delivery),
        action,
    };
    match node.write(cmd).await {
        Ok(w) => {
            let message = reply_message(w.response);
            info!(delivery, to = %mask::phone(&to), reply = %message, "keypress handled");
            twiml(Twiml::new().say(&message).say("Goodbye.").hangup().build())
        }
        Err(e) => {
            warn!(delivery, cause = %e, "keypress not recorded");
            twiml(
                Twiml::new()
                    .say("Sorry, pager d could not record that. Please try again.")
                    .redirect(&repeat)
                    .build(),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    d: u64,
    a: u32,
}

async fn status(
    Ax(node): Ax<Arc<Node>>,
    Query(q): Query<StatusQuery>,
    Signed(params): Signed,
) -> HttpResponse {
    let call_status = param(&params, "CallStatus").to_string();
    if call_status.is_empty() || call_status == "initiated" || call_status == "queued" {
        return StatusCode::NO_CONTENT.into_response();
    }
    let cmd = Command::CallStatus {
        at: 0,
        delivery: q.d,
        attempt: q.a,
        status: call_status,
        answered_by: param(&params, "AnsweredBy").to_string(),
    };
    match node.write(cmd).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        // Twilio does not retry status callbacks; the call's rule delay
        // still moves the user on, only later.
        Err(e) => error_response(e),
    }
}

fn error_response(e: NodeError) -> HttpResponse {
    let code = match &e {
        NodeError::NotLeader { .. } | NodeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        NodeError::Rejected(_) | NodeError::Invalid { .. } | NodeError::Precondition(_) => {
            StatusCode::BAD_REQUEST
        }
        NodeError::Fatal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        NodeError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
    };
    json_error(code, e.to_string())
}

fn link_claims(node: &Node, token: &str) -> Result<links::Claims, HttpResponse> {
    let key = node.read(|s| s.link_key.expose().to_string());
    links::verify(&key, token, now_ms()).map_err(|e| {
        let code = match e {
            links::LinkError::Expired => StatusCode::GONE,
            links::LinkError::NoKey => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        json_error(code, e.to_string())
    })
}

fn page_html(title: &str, body: &str) -> HttpResponse {
    Html(format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title></head><body style=\"font-family:sans-serif;max-width:36em;margin:2em auto\">\
         <h2>{t}</h2>{body}</body></html>",
        t = render::html(title)
    ))
    .into_response()
}

async fn link_page(Ax(node): Ax<Arc<Node>>, Path(token): Path<String>) -> HttpResponse {
    let claims = match link_claims(&node, &token) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let facts = node.read(|s| {
        s.incidents
            .get(&claims.incident)
            .map(|i| (render::subject(i), i.status.as_str().to_string()))
    });
    let Some((subject, status)) = facts else {
        return json_error(StatusCode::NOT_FOUND, "incident: not found");
    };
    let verb = claims.action.verb();
    page_html(
        &format!("{verb} incident {}", claims.incident),
        &format!(
            "<p>{}</p><p>Status: <strong>{}</strong></p>\
             <form method=\"post\"><button type=\"submit\" style=\"font-size:1.2em;padding:8px 24px\">{verb} as {}</button></form>",
            render::html(&subject),
            render::html(&status),
            render::html(&claims.user)
        ),
    )
}

async fn link_act(Ax(node): Ax<Arc<Node>>, Path(token): Path<String>) -> HttpResponse {
    let claims = match link_claims(&node, &token) {
        Ok(c) => c,
        Err(refused) => return refused,
    };
    let by = format!("{} (email)", claims.user);
    let incident = claims.incident;
    let cmd = match claims.action {
        LinkAction::Ack => Command::Acknowledge {
            at: 0,
            incident,
            by,
        },
        LinkAction::Resolve => Command::Resolve {
            at: 0,
            incident,
            by,
        },
    };
    match node.write(cmd).await {
        Ok(w) => {
            if let Response::Rejected(r) = w.response {
                return json_error(StatusCode::NOT_FOUND, r.to_string());
            }
            let Some((status, ack_by, res_by)) = node.read(|s| {
                s.incidents
                    .get(&incident)
                    .map(|i| (i.status, i.acknowledged_by.clone(), i.resolved_by.clone()))
            }) else {
                return json_error(StatusCode::NOT_FOUND, "incident: not found");
            };
            let said = match status {
                IncidentStatus::Resolved => {
                    format!("Incident {incident} is resolved (by {res_by}).")
                }
                IncidentStatus::Acknowledged => {
                    format!("Incident {incident} is acknowledged (by {ack_by}).")
                }
                IncidentStatus::Triggered => format!("Incident {incident} is still triggered."),
            };
            page_html("Done", &format!("<p>{}</p>", render::html(&said)))
        }
        Err(e) => error_response(e),
    }
}
