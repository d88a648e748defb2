//! Twilio SMS and voice through `Notifier` against `FakeTwilio`, and the fake's own checks.

use std::time::Duration;

use pager_fakes::twilio::{FakeTwilio, Fault, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM};
use pager_notify::{Method, Notifier, NotifySettings, Secret, SendError, Sent, TwilioSettings};
use serde_json::Value;

use crate::{page, WAIT};

const TO: &str = "+15551234567";
const SERVICE_SID: &str = "MG0123456789abcdef0123456789abcdef";

async fn fake() -> FakeTwilio {
    FakeTwilio::start(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).await
}

fn notifier(settings: TwilioSettings) -> Notifier {
    Notifier::new(NotifySettings {
        twilio: Some(settings),
        smtp: None,
        console: false,
    })
    .expect("valid settings")
}

async fn sms(notifier: &Notifier, id: u64) -> Result<Sent, SendError> {
    notifier.send(&page(id, Method::Sms, TO)).await
}

fn is_sid(sid: &str, prefix: &str) -> bool {
    sid.len() == 34 && sid.starts_with(prefix) && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn sms_is_created_with_the_right_fields() {
    let twilio = fake().await;
    let sent = sms(&notifier(twilio.settings()), 1).await.expect("sent");

    let messages = twilio.wait_for_messages(1, WAIT).await.expect("recorded");
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(sent.provider_id, message.sid);
    assert!(is_sid(&message.sid, "SM"), "{}", message.sid);
    assert_eq!(message.to, TO);
    assert_eq!(message.from.as_deref(), Some(TEST_FROM));
    assert_eq!(message.messaging_service_sid, None);
    assert_eq!(message.body, page(1, Method::Sms, TO).text);
    let names: Vec<&str> = message.params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "From", "Body"]);
    assert!(twilio.rejected().is_empty());
}

#[tokio::test]
async fn sms_through_a_messaging_service_has_no_from() {
    let twilio = fake().await;
    let settings = TwilioSettings {
        from: None,
        messaging_service_sid: Some(SERVICE_SID.to_owned()),
        ..twilio.settings()
    };
    sms(&notifier(settings), 2).await.expect("sent");
    let message = &twilio.messages()[0];
    assert_eq!(message.from, None);
    assert_eq!(message.messaging_service_sid.as_deref(), Some(SERVICE_SID));
}

#[tokio::test]
async fn long_sms_is_cut_to_twilio_limit() {
    let twilio = fake().await;
    let mut long = page(3, Method::Sms, TO);
    long.text = "é".repeat(2000);
    notifier(twilio.settings()).send(&long).await.expect("sent");
    let body = &twilio.messages()[0].body;
    assert_eq!(body.chars().count(), 1600);
    assert!(body.ends_with('…'));
}

#[tokio::test]
async fn wrong_token_is_permanent_20003() {
    let twilio = fake().await;
    let settings = TwilioSettings {
        auth_token: Secret::new("not-the-token"),
        ..twilio.settings()
    };
    let err = sms(&notifier(settings), 4).await.expect_err("refused");
    assert_eq!(err.code, Some(20003));
    assert_eq!(err.http_status, Some(401));
    assert!(!err.retryable);
    assert!(!err.in_doubt);
    assert!(twilio.messages().is_empty());
    let rejected = twilio.rejected();
    assert_eq!(rejected[0].code, Some(20003));
}

#[tokio::test]
async fn wrong_account_in_path_is_20404() {
    let twilio = fake().await;
    let other = "AC99999999999999999999999999999999";
    let settings = TwilioSettings {
        account_sid: other.to_owned(),
        ..twilio.settings()
    };
    // Authenticated as another account: 401 first, as at Twilio.
    let err = sms(&notifier(settings), 5).await.expect_err("refused");
    assert_eq!(err.code, Some(20003));
    // Right credentials, wrong account in the path.
    let status = raw_post(&twilio, other, "Messages.json", &[("To", TO)]).await;
    assert_eq!(status.0, 404);
    assert_eq!(status.1["code"], 20404);
}

#[tokio::test]
async fn rate_limit_is_retryable_20429() {
    let twilio = fake().await;
    twilio.fail_next(1, Fault::too_many_requests());
    let notifier = notifier(twilio.settings());
    let err = sms(&notifier, 6).await.expect_err("rate limited");
    assert_eq!(err.http_status, Some(429));
    assert_eq!(err.code, Some(20429));
    assert!(err.retryable);
    assert!(!err.in_doubt);
    // The fault is used up: the retry goes through.
    sms(&notifier, 6).await.expect("retry sent");
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn server_error_is_retryable() {
    let twilio = fake().await;
    twilio.fail_next(1, Fault::internal_error());
    let err = sms(&notifier(twilio.settings()), 7).await.expect_err("500");
    assert_eq!(err.http_status, Some(500));
    assert!(err.retryable);
    assert!(!err.in_doubt);
}

#[tokio::test]
async fn invalid_to_is_permanent_21211() {
    let twilio = fake().await;
    twilio.fail_next(
        1,
        Fault::status(
            400,
            21211,
            format!("The 'To' number {TO} is not a valid phone number."),
        ),
    );
    let err = sms(&notifier(twilio.settings()), 8)
        .await
        .expect_err("21211");
    assert_eq!(err.code, Some(21211));
    assert_eq!(err.http_status, Some(400));
    assert!(!err.retryable);
    // Twilio's message names the number; ours masks it.
    assert_eq!(
        err.message,
        "The 'To' number +1*******4567 is not a valid phone number."
    );
}

#[tokio::test]
async fn answer_later_than_the_timeout_is_in_doubt() {
    let twilio = fake().await;
    twilio.fail_next(1, Fault::Delay(Duration::from_secs(30)));
    let settings = TwilioSettings {
        timeout: Duration::from_millis(500),
        ..twilio.settings()
    };
    let err = sms(&notifier(settings), 9).await.expect_err("timed out");
    assert!(err.retryable);
    assert!(err.in_doubt);
    assert_eq!(err.http_status, None);
    // And indeed the message was created: a retry would duplicate it.
    assert_eq!(twilio.messages().len(), 1);
}

#[tokio::test]
async fn dropped_connection_is_in_doubt() {
    let twilio = fake().await;
    twilio.fail_next(1, Fault::Drop);
    twilio.fail_next(1, Fault::DropAfterAccept);
    let notifier = notifier(twilio.settings());

    let err = sms(&notifier, 10).await.expect_err("dropped");
    assert!(err.retryable && err.in_doubt, "{err}");
    assert!(twilio.messages().is_empty());
    assert_eq!(twilio.rejected()[0].http_status, None);

    let err = sms(&notifier, 11).await.expect_err("dropped after accept");
    assert!(err.retryable && err.in_doubt, "{err}");
    assert_eq!(twilio.messages().len(), 1);

    sms(&notifier, 12).await.expect("faults used up");
}

#[tokio::test]
async fn refused_connection_is_retryable_and_certainly_not_sent() {
    let twilio = fake().await;
    let settings = twilio.settings();
    twilio.shutdown().await;
    let err = sms(&notifier(settings), 13).await.expect_err("refused");
    assert!(err.retryable);
    assert!(!err.in_doubt, "{err}");
}

#[tokio::test]
async fn voice_call_carries_twiml() {
    let twilio = fake().await;
    let sent = notifier(twilio.settings())
        .send(&page(14, Method::Voice, TO))
        .await
        .expect("call created");
    let calls = twilio.wait_for_calls(1, WAIT).await.expect("recorded");
    let call = &calls[0];
    assert_eq!(sent.provider_id, call.sid);
    assert!(is_sid(&call.sid, "CA"), "{}", call.sid);
    assert_eq!(call.to, TO);
    assert_eq!(call.from, TEST_FROM);
    assert_eq!(call.url, None);
    assert_eq!(call.timeout, Some(60));
    let said = "db1: /var at 99% &amp; rising. Runbook: https://wiki.example/disk";
    assert_eq!(
        call.twiml.as_deref(),
        Some(
            format!("<Response><Say>{said}</Say><Pause length=\"1\"/><Say>{said}</Say></Response>")
                .as_str()
        )
    );
    let names: Vec<&str> = call.params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "From", "Twiml", "Timeout"]);
}

#[tokio::test]
async fn voice_needs_a_from_number() {
    let twilio = fake().await;
    let settings = TwilioSettings {
        from: None,
        messaging_service_sid: Some(SERVICE_SID.to_owned()),
        ..twilio.settings()
    };
    let err = notifier(settings)
        .send(&page(15, Method::Voice, TO))
        .await
        .expect_err("no caller id");
    assert!(!err.retryable);
    assert!(twilio.calls().is_empty());
}

#[tokio::test]
async fn non_e164_address_is_refused_locally() {
    let twilio = fake().await;
    let err = notifier(twilio.settings())
        .send(&page(16, Method::Sms, "555-1234"))
        .await
        .expect_err("not E.164");
    assert!(!err.retryable);
    assert!(twilio.rejected().is_empty(), "no request was made");
}

#[tokio::test]
async fn wait_for_messages_times_out_without_messages() {
    let twilio = fake().await;
    assert!(twilio
        .wait_for_messages(1, Duration::from_millis(50))
        .await
        .is_err());
}

/// POST a form to the fake with the right credentials; returns (status, body).
async fn raw_post(
    twilio: &FakeTwilio,
    account: &str,
    resource: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let url = format!(
        "{}/2010-04-01/Accounts/{account}/{resource}",
        twilio.base_url()
    );
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .form(form)
        .send()
        .await
        .expect("fake answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("json body");
    (status, body)
}

#[tokio::test]
async fn fake_checks_message_parameters_like_twilio() {
    let twilio = fake().await;
    let body = "x".repeat(1601);
    let cases: &[(&[(&str, &str)], i64)] = &[
        (&[("From", TEST_FROM), ("Body", "hi")], 21604),
        (&[("To", TO), ("Body", "hi")], 21603),
        (&[("To", TO), ("From", TEST_FROM)], 21602),
        (&[("To", TO), ("From", TEST_FROM), ("Body", "")], 21602),
        (&[("To", TO), ("MessagingServiceSid", SERVICE_SID)], 21619),
        (
            &[("To", "5551234567"), ("From", TEST_FROM), ("Body", "hi")],
            21211,
        ),
        (
            &[("To", TO), ("From", TEST_FROM), ("Body", body.as_str())],
            21617,
        ),
    ];
    for (form, code) in cases {
        let (status, answer) = raw_post(&twilio, TEST_ACCOUNT_SID, "Messages.json", form).await;
        assert_eq!(
            (status, &answer["code"]),
            (400, &Value::from(*code)),
            "{form:?}"
        );
        assert_eq!(answer["status"], 400);
        assert_eq!(
            answer["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(answer["message"].is_string());
    }
    let (status, answer) = raw_post(
        &twilio,
        TEST_ACCOUNT_SID,
        "Messages.json",
        &[
            ("To", "whatsapp:+15551234567"),
            ("From", TEST_FROM),
            ("MediaUrl", "https://x/y.png"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["num_media"], "1");
    assert_eq!(twilio.rejected().len(), cases.len());
}

#[tokio::test]
async fn fake_checks_call_parameters_like_twilio() {
    let twilio = fake().await;
    let twiml = format!("<Response><Say>{}</Say></Response>", "x".repeat(4000));
    let cases: &[(&[(&str, &str)], i64)] = &[
        (&[("From", TEST_FROM), ("Twiml", "<Response/>")], 21201),
        (&[("To", TO), ("Twiml", "<Response/>")], 21213),
        (&[("To", TO), ("From", TEST_FROM)], 21205),
        (
            &[
                ("To", "alice"),
                ("From", TEST_FROM),
                ("Twiml", "<Response/>"),
            ],
            21211,
        ),
        (
            &[("To", TO), ("From", TEST_FROM), ("Twiml", twiml.as_str())],
            32018,
        ),
    ];
    for (form, code) in cases {
        let (status, answer) = raw_post(&twilio, TEST_ACCOUNT_SID, "Calls.json", form).await;
        assert_eq!(
            (status, &answer["code"]),
            (400, &Value::from(*code)),
            "{form:?}"
        );
    }
    let (status, _) = raw_post(
        &twilio,
        TEST_ACCOUNT_SID,
        "Calls.json",
        &[
            ("To", "client:alice"),
            ("From", TEST_FROM),
            ("Url", "https://x/twiml"),
        ],
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(twilio.calls()[0].url.as_deref(), Some("https://x/twiml"));
}

#[tokio::test]
async fn fake_ignores_a_body_that_is_not_a_form() {
    let twilio = fake().await;
    let url = format!(
        "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json",
        twilio.base_url()
    );
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .json(&serde_json::json!({"To": TO, "From": TEST_FROM, "Body": "hi"}))
        .send()
        .await
        .expect("fake answers");
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["code"], 21604);
}

#[tokio::test]
async fn fake_requires_basic_auth() {
    let twilio = fake().await;
    let url = format!(
        "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json",
        twilio.base_url()
    );
    let response = reqwest::Client::new()
        .post(url)
        .form(&[("To", TO), ("From", TEST_FROM), ("Body", "hi")])
        .send()
        .await
        .expect("fake answers");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["code"], 20003);
}

#[tokio::test]
async fn fake_records_the_address_each_request_came_from() {
    let twilio = fake().await;
    let url = format!(
        "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json",
        twilio.base_url()
    );
    // All of 127.0.0.0/8 is local on Linux: a client can pick its source.
    let source: std::net::IpAddr = "127.0.0.7".parse().expect("ip");
    let client = reqwest::Client::builder()
        .local_address(source)
        .build()
        .expect("client");
    for to in [TO, "not a number"] {
        client
            .post(&url)
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .form(&[("To", to), ("From", TEST_FROM), ("Body", "hi")])
            .send()
            .await
            .expect("fake answers");
    }
    let message = &twilio.messages()[0];
    assert_eq!(message.remote.map(|a| a.ip()), Some(source));
    let rejected = &twilio.rejected()[0];
    assert_eq!(rejected.remote.map(|a| a.ip()), Some(source));
    sms(&notifier(twilio.settings()), 2).await.expect("sent");
    let from_notifier = twilio.messages()[1].remote.map(|a| a.ip());
    assert_eq!(from_notifier, Some("127.0.0.1".parse().expect("ip")));
}
