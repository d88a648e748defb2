//! Requests Slack sends to us, over loopback sockets: the fake Slack signs (or mis-signs)
//! interactions and slash commands and posts them to a small receiver built on
//! `slack_verify`, as pagerd's HTTP service will be.

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pager_fakes::slack::{FakeSlack, Signature, TEST_BOT_TOKEN, TEST_SIGNING_SECRET};
use pager_outbound::slack::IncidentAction;
use pager_outbound::slack_verify::{
    self, parse_interaction, parse_slash_command, Interaction, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

/// A receiver for `/slack/actions` and `/slack/commands`; answers 401 with the refusal, or 200
/// with what it read. Button presses are acknowledged through their `response_url`.
async fn receiver(signing_secret: &'static str) -> String {
    let router = Router::new()
        .route("/slack/actions", post(actions))
        .route("/slack/commands", post(commands))
        .with_state(signing_secret);
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// The refusal, as the 401 body.
fn check(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    slack_verify::verify(
        secret,
        &header(TIMESTAMP_HEADER),
        &header(SIGNATURE_HEADER),
        body,
        SystemTime::now(),
    )
    .map_err(|err| err.to_string())
}

async fn actions(State(secret): State<&'static str>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = check(secret, &headers, &body) {
        return (StatusCode::UNAUTHORIZED, refused).into_response();
    }
    match parse_interaction(&body) {
        Ok(Interaction::BlockActions(action)) => {
            let Some((what, incident)) = action.incident_action() else {
                return (StatusCode::BAD_REQUEST, "not an incident button").into_response();
            };
            if let Some(url) = &action.response_url {
                let reply =
                    json!({ "replace_original": false, "text": format!("{what:?} {incident}") });
                let sent = reqwest::Client::new().post(url).json(&reply).send().await;
                if sent.is_err() {
                    return StatusCode::BAD_GATEWAY.into_response();
                }
            }
            Json(json!({
                "action": format!("{what:?}"),
                "incident": incident,
                "user": action.user_id,
                "channel": action.channel_id,
                "message_ts": action.message_ts,
            }))
            .into_response()
        }
        Ok(Interaction::Other { kind }) => Json(json!({ "other": kind })).into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

async fn commands(State(secret): State<&'static str>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = check(secret, &headers, &body) {
        return (StatusCode::UNAUTHORIZED, refused).into_response();
    }
    match parse_slash_command(&body) {
        Ok(command) => Json(json!({
            "command": command.command,
            "text": command.text,
            "user": command.user_id,
            "channel": command.channel_id,
            "has_response_url": command.response_url.starts_with("http"),
        }))
        .into_response(),
        Err(err) => (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    }
}

async fn setup() -> (FakeSlack, String) {
    let fake = FakeSlack::start(TEST_BOT_TOKEN, TEST_SIGNING_SECRET).await;
    let base = receiver(TEST_SIGNING_SECRET).await;
    (fake, base)
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"))
}

#[tokio::test]
async fn a_signed_button_press_is_read_and_answered() {
    let (fake, base) = setup().await;
    let payload = fake.block_action_payload(
        "U0ALICE0001",
        "C0INCIDENTS1",
        "1700000000.000100",
        IncidentAction::Acknowledge.action_id(),
        "inc-42",
    );
    let (status, body) = fake
        .send_interaction(
            &format!("{base}/slack/actions"),
            &payload,
            Signature::Correct,
        )
        .await
        .expect("answered");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_of(&body),
        json!({
            "action": "Acknowledge",
            "incident": "inc-42",
            "user": "U0ALICE0001",
            "channel": "C0INCIDENTS1",
            "message_ts": "1700000000.000100",
        })
    );
    let responses = fake.wait_for_responses(1, WAIT).await.expect("replied");
    assert_eq!(responses[0].body["text"], "Acknowledge inc-42");
}

#[tokio::test]
async fn every_incident_button_maps_back_to_its_action() {
    let (fake, base) = setup().await;
    for action in IncidentAction::ALL {
        let payload =
            fake.block_action_payload("U1", "C0INCIDENTS1", "1.2", action.action_id(), "inc-7");
        let (status, body) = fake
            .send_interaction(
                &format!("{base}/slack/actions"),
                &payload,
                Signature::Correct,
            )
            .await
            .expect("answered");
        assert_eq!(status, 200, "{body}");
        assert_eq!(json_of(&body)["action"], format!("{action:?}"));
    }
}

#[tokio::test]
async fn forged_replayed_and_tampered_requests_are_refused() {
    let (fake, base) = setup().await;
    let url = format!("{base}/slack/actions");
    let payload = fake.block_action_payload("U1", "C1", "1.2", "pagerd_resolve", "inc-42");
    let cases = [
        (Signature::WrongSecret, "does not match"),
        // A request captured six minutes ago and sent again.
        (
            Signature::OldTimestamp(Duration::from_secs(6 * 60)),
            "more than 300s",
        ),
        (Signature::TamperedBody, "does not match"),
        (Signature::Missing, "no X-Slack-Signature"),
    ];
    for (signature, refusal) in cases {
        let (status, body) = fake
            .send_interaction(&url, &payload, signature)
            .await
            .expect("answered");
        assert_eq!(status, 401, "{signature:?}: {body}");
        assert!(body.contains(refusal), "{signature:?}: {body}");
    }
    // Four minutes old is within the window.
    let (status, body) = fake
        .send_interaction(
            &url,
            &payload,
            Signature::OldTimestamp(Duration::from_secs(4 * 60)),
        )
        .await
        .expect("answered");
    assert_eq!(status, 200, "{body}");
    // Only the accepted press was acted on.
    assert_eq!(
        fake.wait_for_responses(1, WAIT).await.map(|r| r.len()),
        Ok(1)
    );
}

#[tokio::test]
async fn a_wrong_signing_secret_on_our_side_refuses_slack_itself() {
    let fake = FakeSlack::start(TEST_BOT_TOKEN, TEST_SIGNING_SECRET).await;
    let base = receiver("another-apps-signing-secret").await;
    let payload = fake.block_action_payload("U1", "C1", "1.2", "pagerd_ack", "inc-1");
    let (status, _) = fake
        .send_interaction(
            &format!("{base}/slack/actions"),
            &payload,
            Signature::Correct,
        )
        .await
        .expect("answered");
    assert_eq!(status, 401);
}

#[tokio::test]
async fn slash_commands() {
    let (fake, base) = setup().await;
    let url = format!("{base}/slack/commands");
    let (status, body) = fake
        .send_slash_command(
            &url,
            "/pagerd",
            "ack inc-42",
            "U0ALICE0001",
            "C0INCIDENTS1",
            Signature::Correct,
        )
        .await
        .expect("answered");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_of(&body),
        json!({
            "command": "/pagerd",
            "text": "ack inc-42",
            "user": "U0ALICE0001",
            "channel": "C0INCIDENTS1",
            "has_response_url": true,
        })
    );
    let (status, _) = fake
        .send_slash_command(&url, "/pagerd", "", "U1", "C1", Signature::Correct)
        .await
        .expect("answered");
    assert_eq!(status, 200, "an empty text is a command too");
    for signature in [
        Signature::OldTimestamp(Duration::from_secs(3600)),
        Signature::TamperedBody,
        Signature::WrongSecret,
    ] {
        let (status, body) = fake
            .send_slash_command(&url, "/pagerd", "resolve inc-42", "U1", "C1", signature)
            .await
            .expect("answered");
        assert_eq!(status, 401, "{signature:?}: {body}");
    }
}

#[tokio::test]
async fn other_interactions_are_named_not_acted_on() {
    let (fake, base) = setup().await;
    let payload = json!({ "type": "view_submission", "user": { "id": "U1" } });
    let (status, body) = fake
        .send_interaction(
            &format!("{base}/slack/actions"),
            &payload,
            Signature::Correct,
        )
        .await
        .expect("answered");
    assert_eq!(
        (status, json_of(&body)),
        (200, json!({ "other": "view_submission" }))
    );
}
