//! The Slack client against the fake Slack over loopback sockets: success, each error class,
//! in-doubt outcomes, and a cross-check of every request against Slack's OpenAPI description.

use std::collections::BTreeSet;
use std::time::Duration;

use pager_fakes::slack::{ChannelState, FakeSlack, Fault, TEST_BOT_TOKEN, TEST_SIGNING_SECRET};
use pager_outbound::slack::{
    incident_blocks, incident_text, marker_block, marker_id, IncidentCard, MAX_TEXT,
};
use pager_outbound::{ErrorKind, OutboundError, SlackClient};
use serde_json::{json, Value};

/// Long enough for a loaded CI machine; only reached when a test fails.
const WAIT: Duration = Duration::from_secs(10);
const CHANNEL: &str = "C0INCIDENTS1";

async fn fake() -> FakeSlack {
    let fake = FakeSlack::start(TEST_BOT_TOKEN, TEST_SIGNING_SECRET).await;
    fake.add_channel(CHANNEL);
    fake
}

fn client(fake: &FakeSlack) -> SlackClient {
    SlackClient::new(&fake.base_url(), TEST_BOT_TOKEN).expect("valid settings")
}

fn card() -> IncidentCard {
    IncidentCard {
        id: "inc-42".into(),
        title: "db1: /var at 99% & rising".into(),
        service: "postgres".into(),
        status: "triggered".into(),
        urgency: "high".into(),
        assignee: Some("alice".into()),
        link: "https://pagerd.example/incidents/inc-42".into(),
        bridge_url: Some("https://meet.example/inc-42".into()),
    }
}

fn assert_kind(err: &OutboundError, kind: ErrorKind, in_doubt: bool, code: Option<&str>) {
    assert_eq!(
        (err.kind, err.in_doubt, err.code.as_deref()),
        (kind, in_doubt, code),
        "{err}"
    );
    assert!(!err.message.contains(TEST_BOT_TOKEN), "{err}");
}

#[tokio::test]
async fn posts_replies_and_updates_an_incident_message() {
    let fake = fake().await;
    let slack = client(&fake);
    let card = card();

    let posted = slack
        .post_message(CHANNEL, &incident_text(&card), incident_blocks(&card), None)
        .await
        .expect("posted");
    assert_eq!(posted.channel, CHANNEL);
    let messages = fake
        .wait_for_messages(CHANNEL, 1, WAIT)
        .await
        .expect("recorded");
    assert_eq!(messages[0].ts, posted.ts);
    assert_eq!(messages[0].blocks, Some(incident_blocks(&card)));
    assert_eq!(
        messages[0].text.as_deref(),
        Some("[triggered] db1: /var at 99% &amp; rising (postgres, high urgency) inc-42")
    );

    let reply = slack
        .post_message(CHANNEL, "alice acknowledged", Value::Null, Some(&posted.ts))
        .await
        .expect("replied");
    assert_ne!(reply.ts, posted.ts);
    let messages = fake
        .wait_for_messages(CHANNEL, 2, WAIT)
        .await
        .expect("recorded");
    assert_eq!(messages[1].thread_ts.as_deref(), Some(posted.ts.as_str()));
    assert_eq!(messages[1].blocks, None);

    let acked = IncidentCard {
        status: "acknowledged".into(),
        ..card
    };
    let updated = slack
        .update(
            CHANNEL,
            &posted.ts,
            &incident_text(&acked),
            incident_blocks(&acked),
        )
        .await
        .expect("updated");
    assert_eq!(updated, posted);
    let message = &fake.messages_in(CHANNEL)[0];
    assert_eq!(message.edits, 1);
    assert_eq!(message.blocks, Some(incident_blocks(&acked)));

    // JSON bodies with the charset Slack asks for: no `missing_charset` warning.
    for request in fake.requests() {
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/json; charset=utf-8")
        );
        assert!(request.warnings.is_empty(), "{request:?}");
    }
}

#[tokio::test]
async fn a_card_at_every_limit_is_accepted() {
    let fake = fake().await;
    let huge = IncidentCard {
        title: "<!channel> 🔥&".repeat(2_000),
        service: "s".repeat(5_000),
        status: ">".repeat(3_000),
        urgency: "high".into(),
        assignee: None,
        link: format!("https://pagerd.example/{}", "x".repeat(900)),
        bridge_url: Some("https://meet.example/a|b".into()),
        id: "inc-1".into(),
    };
    let text = "t".repeat(MAX_TEXT + 100);
    client(&fake)
        .post_message(CHANNEL, &text, incident_blocks(&huge), None)
        .await
        .expect("within Slack's limits");
    let message = &fake.messages_in(CHANNEL)[0];
    assert_eq!(
        message.text.as_deref().map(|t| t.chars().count()),
        Some(MAX_TEXT)
    );
    let blocks = message.blocks.as_ref().expect("blocks");
    assert!(
        !blocks.to_string().contains("<!channel>"),
        "mentions are escaped"
    );
}

#[tokio::test]
async fn finds_users_by_email_and_opens_a_dm() {
    let fake = fake().await;
    fake.add_user("alice@example.com", "U0ALICE0001", "alice");
    let slack = client(&fake);

    let user = slack
        .lookup_by_email("Alice@Example.com")
        .await
        .expect("looked up")
        .expect("found");
    assert_eq!(user.id, "U0ALICE0001");
    assert_eq!(user.name, "alice");
    assert_eq!(user.tz.as_deref(), Some("Europe/London"));
    assert!(!user.deleted && !user.is_bot);
    assert_eq!(slack.lookup_by_email("bob@example.com").await, Ok(None));

    let dm = slack.open_dm(&user.id).await.expect("opened");
    assert!(dm.starts_with('D'), "{dm}");
    assert_eq!(slack.open_dm(&user.id).await.as_deref(), Ok(dm.as_str()));
    slack
        .post_message(&dm, "you are on call", Value::Null, None)
        .await
        .expect("posted to the DM");
    // Posting to the user id lands in the same DM.
    let posted = slack
        .post_message(&user.id, "still on call", Value::Null, None)
        .await
        .expect("posted to the user");
    assert_eq!(posted.channel, dm);
    assert_eq!(
        fake.wait_for_messages(&dm, 2, WAIT).await.map(|m| m.len()),
        Ok(2)
    );

    let err = slack.open_dm("U0NOBODY001").await.unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some("user_not_found"));
}

#[tokio::test]
async fn credentials_refused() {
    let fake = fake().await;
    let wrong = SlackClient::new(&fake.base_url(), "xoxb-wrong").expect("valid settings");
    let err = wrong
        .post_message(CHANNEL, "x", Value::Null, None)
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Auth, false, Some("invalid_auth"));
    assert!(!err.retryable());
    assert_eq!(err.http_status, Some(200), "Slack says it with HTTP 200");

    // Without any token (the client always sends one): the fake answers as Slack does.
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/chat.postMessage", fake.base_url()))
        .json(&json!({"channel": CHANNEL, "text": "x"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    // reqwest's `json` says `application/json` without the charset: Slack warns about it.
    assert_eq!(
        answer,
        json!({"ok": false, "error": "not_authed", "warning": "missing_charset"})
    );

    for error in ["account_inactive", "token_revoked", "not_authed"] {
        fake.fail_next(1, Fault::Error(error.into()));
        let err = client(&fake)
            .lookup_by_email("a@example.com")
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::Auth, false, Some(error));
    }
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn requests_slack_refuses_are_permanent() {
    let fake = fake().await;
    fake.set_channel_state("C0NOTMEMBER1", ChannelState::NotMember);
    fake.set_channel_state("C0ARCHIVED01", ChannelState::Archived);
    let slack = client(&fake);
    let post = |channel: &'static str, text: &'static str, blocks: Value| {
        let slack = slack.clone();
        async move { slack.post_message(channel, text, blocks, None).await }
    };

    let cases = [
        (
            post("C0UNKNOWN001", "x", Value::Null).await,
            "channel_not_found",
        ),
        (post("", "x", Value::Null).await, "channel_not_found"),
        (
            post("C0NOTMEMBER1", "x", Value::Null).await,
            "not_in_channel",
        ),
        (post("C0ARCHIVED01", "x", Value::Null).await, "is_archived"),
        (post(CHANNEL, "", Value::Null).await, "no_text"),
        (post(CHANNEL, "", json!([])).await, "no_text"),
        (
            post(CHANNEL, "x", json!([{"text": "no type"}])).await,
            "invalid_blocks",
        ),
        (
            post(
                CHANNEL,
                "x",
                json!([{"type": "section", "text": {"type": "mrkdwn", "text": "y".repeat(3001)}}]),
            )
            .await,
            "invalid_blocks",
        ),
        (
            post(CHANNEL, "x", json!({"type": "section"})).await,
            "invalid_blocks",
        ),
    ];
    for (result, code) in cases {
        let err = result.unwrap_err();
        assert_kind(&err, ErrorKind::Permanent, false, Some(code));
        assert!(!err.retryable());
    }
    // Slack's details travel in the message.
    let err = post(CHANNEL, "x", json!([{"type": "carousel"}]))
        .await
        .unwrap_err();
    assert!(
        err.message
            .contains("unsupported type: carousel [json-pointer:/blocks/0/type]"),
        "{err}"
    );

    let err = slack
        .update(CHANNEL, "1700000000.000001", "x", Value::Null)
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some("message_not_found"));
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let fake = fake().await;
    let slack = client(&fake);

    fake.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 30,
        },
    );
    let err = slack
        .post_message(CHANNEL, "x", Value::Null, None)
        .await
        .unwrap_err();
    assert_kind(
        &err,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(30)),
        },
        false,
        Some("ratelimited"),
    );
    assert!(err.retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(err.http_status, Some(429));

    // `ok: false` with `ratelimited` (or the spec's `rate_limited`) and no header.
    for code in ["ratelimited", "rate_limited"] {
        fake.fail_next(1, Fault::Error(code.into()));
        let err = slack.lookup_by_email("a@example.com").await.unwrap_err();
        assert_kind(
            &err,
            ErrorKind::RateLimited { retry_after: None },
            false,
            Some(code),
        );
    }
    assert!(fake.messages().is_empty());
    slack
        .post_message(CHANNEL, "x", Value::Null, None)
        .await
        .expect("the fault is used up");
}

#[tokio::test]
async fn slack_trouble_is_transient_and_sometimes_in_doubt() {
    let fake = fake().await;
    let slack = client(&fake);
    let post = || slack.post_message(CHANNEL, "x", Value::Null, None);

    fake.fail_next(1, Fault::Status(500));
    let err = post().await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, None);
    assert_eq!(err.http_status, Some(500));
    fake.fail_next(1, Fault::Status(503));
    assert_kind(
        &post().await.unwrap_err(),
        ErrorKind::Transient,
        false,
        None,
    );
    // A read is never in doubt.
    fake.fail_next(1, Fault::Status(500));
    let err = slack.lookup_by_email("a@example.com").await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, None);

    // "It's possible some aspect of the operation succeeded": in doubt.
    for code in ["internal_error", "fatal_error"] {
        fake.fail_next(1, Fault::Error(code.into()));
        assert_kind(
            &post().await.unwrap_err(),
            ErrorKind::Transient,
            true,
            Some(code),
        );
    }
    fake.fail_next(1, Fault::Error("request_timeout".into()));
    let err = post().await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, Some("request_timeout"));
    assert!(err.retryable());
}

#[tokio::test]
async fn no_answer_after_the_request_was_sent_is_in_doubt() {
    let fake = fake().await;
    let slack = client(&fake)
        .with_timeout(Duration::from_millis(300))
        .expect("valid timeout");

    fake.fail_next(1, Fault::Hang);
    let err = slack
        .post_message(CHANNEL, "hung", Value::Null, None)
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, None);
    assert!(err.message.contains("no answer"), "{err}");
    // The message is out: a retry would post it twice.
    assert_eq!(fake.messages_in(CHANNEL).len(), 1);

    fake.fail_next(1, Fault::DropAfterAccept);
    let err = client(&fake)
        .post_message(CHANNEL, "dropped", Value::Null, None)
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, None);
    assert_eq!(fake.messages_in(CHANNEL).len(), 2);

    fake.fail_next(1, Fault::Hang);
    let err = slack.lookup_by_email("a@example.com").await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, None);
}

/// A post whose answer was lost is found by its marker, in the channel and in a thread, and
/// only after the instant given; a post that never got out is not found.
#[tokio::test]
async fn a_post_in_doubt_is_found_by_its_marker() {
    let fake = fake().await;
    let slack = client(&fake)
        .with_timeout(Duration::from_millis(300))
        .expect("valid timeout");
    let card = card();
    for i in 0..250 {
        // Older messages than the page size, so the search has to turn pages.
        slack
            .post_message(CHANNEL, &format!("noise {i}"), Value::Null, None)
            .await
            .expect("posted");
    }
    fake.fail_next(1, Fault::Hang);
    let err = slack
        .post_message(
            CHANNEL,
            "lost answer",
            marker_block(incident_blocks(&card), 7, "pagerd · inc-42"),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.in_doubt, "{err}");
    for i in 0..250 {
        slack
            .post_message(CHANNEL, &format!("later {i}"), Value::Null, None)
            .await
            .expect("posted");
    }
    let found = slack
        .find_marked(CHANNEL, None, "0", &marker_id(7))
        .await
        .expect("history read")
        .expect("the post is found");
    let lost = fake
        .messages_in(CHANNEL)
        .into_iter()
        .find(|m| m.text.as_deref() == Some("lost answer"))
        .expect("the fake has it");
    assert_eq!(found.ts, lost.ts);
    assert_eq!(
        slack
            .find_marked(CHANNEL, None, "0", &marker_id(8))
            .await
            .expect("history read"),
        None
    );
    // Not before `oldest`.
    assert_eq!(
        slack
            .find_marked(CHANNEL, None, &found.ts, &marker_id(7))
            .await
            .expect("history read"),
        None
    );

    // In a thread: replies are not in the channel's history, only in the thread's.
    fake.fail_next(1, Fault::DropAfterAccept);
    let err = slack
        .post_message(
            CHANNEL,
            "reply",
            marker_block(Value::Null, 9, "pagerd"),
            Some(&found.ts),
        )
        .await
        .unwrap_err();
    assert!(err.in_doubt, "{err}");
    assert_eq!(
        slack
            .find_marked(CHANNEL, None, "0", &marker_id(9))
            .await
            .expect("history read"),
        None
    );
    let reply = slack
        .find_marked(CHANNEL, Some(&found.ts), "0", &marker_id(9))
        .await
        .expect("replies read")
        .expect("the reply is found");
    assert_ne!(reply.ts, found.ts);
    let err = slack
        .find_marked("C0NOSUCH0001", None, "0", &marker_id(7))
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some("channel_not_found"));
}

#[tokio::test]
async fn nothing_listening_is_transient_and_certainly_not_sent() {
    let fake = fake().await;
    let base_url = fake.base_url();
    fake.shutdown().await;
    let err = SlackClient::new(&base_url, TEST_BOT_TOKEN)
        .expect("valid settings")
        .post_message(CHANNEL, "x", Value::Null, None)
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, None);
}

#[tokio::test]
async fn settings_are_checked_up_front() {
    assert!(SlackClient::new("http://slack.example/api", TEST_BOT_TOKEN).is_err());
    assert!(SlackClient::new("https://slack.com/api", " ").is_err());
    assert!(SlackClient::new("https://slack.com/api", TEST_BOT_TOKEN)
        .expect("valid")
        .with_timeout(Duration::ZERO)
        .is_err());
}

fn spec() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/spec/slack/slack_web_openapi_v2.json"
    );
    let text = std::fs::read_to_string(path).expect("the Slack spec is in tests/spec");
    serde_json::from_str(&text).expect("the spec is JSON")
}

/// Every request the client sends names a method of the spec, with the HTTP method it
/// declares, and only parameters it declares; the required ones are there. Real Slack differs
/// from the 2020 file in two ways the spec's README lists: the token goes in `Authorization`,
/// not a `token` header, and `blocks` is a JSON array in a JSON body, not a string.
#[tokio::test]
async fn every_request_is_declared_in_slacks_openapi_description() {
    let spec = spec();
    let fake = fake().await;
    fake.add_user("alice@example.com", "U0ALICE0001", "alice");
    let slack = client(&fake);
    let card = card();
    let posted = slack
        .post_message(CHANNEL, "x", incident_blocks(&card), None)
        .await
        .expect("posted");
    slack
        .post_message(CHANNEL, "y", Value::Null, Some(&posted.ts))
        .await
        .expect("replied");
    slack
        .update(CHANNEL, &posted.ts, "z", incident_blocks(&card))
        .await
        .expect("updated");
    slack
        .lookup_by_email("alice@example.com")
        .await
        .expect("found");
    slack
        .lookup_by_email("bob@example.com")
        .await
        .expect("not found");
    slack.open_dm("U0ALICE0001").await.expect("opened");
    slack
        .find_marked(CHANNEL, None, "0", "pagerd_delivery_1")
        .await
        .expect("history read");
    slack
        .find_marked(CHANNEL, Some(&posted.ts), "0", "pagerd_delivery_1")
        .await
        .expect("replies read");

    let requests = fake.requests();
    let methods: BTreeSet<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        BTreeSet::from([
            "chat.postMessage",
            "chat.update",
            "conversations.history",
            "conversations.open",
            "conversations.replies",
            "users.lookupByEmail"
        ])
    );
    for request in &requests {
        let operation =
            &spec["paths"][format!("/{}", request.method)][request.http_method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} is not in the spec",
            request.http_method,
            request.method
        );
        let declared: Vec<&Value> = operation["parameters"]
            .as_array()
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let declared_names: BTreeSet<&str> =
            declared.iter().filter_map(|p| p["name"].as_str()).collect();
        let sent: BTreeSet<&str> = request
            .params
            .keys()
            .map(String::as_str)
            .chain(request.query.iter().map(String::as_str))
            .collect();
        for name in &sent {
            assert!(
                declared_names.contains(name),
                "{} sends {name}, which the spec does not declare ({declared_names:?})",
                request.method
            );
        }
        for parameter in &declared {
            let name = parameter["name"].as_str().unwrap_or("");
            if parameter["required"] == Value::Bool(true) && name != "token" {
                assert!(
                    sent.contains(name),
                    "{} lacks required {name}",
                    request.method
                );
            }
        }
        assert_eq!(
            request.error.as_deref().unwrap_or("users_not_found"),
            "users_not_found"
        );
    }
}
