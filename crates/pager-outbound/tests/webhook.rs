//! Standard Webhooks: the specification's test vector, and the webhook client against the fake
//! subscriber over loopback sockets.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pager_fakes::webhooks::{FakeWebhookReceiver, Fault, TEST_SECRET};
use pager_outbound::webhook::{self, new_message_id, VerifyError, WebhookSecret};
use pager_outbound::{ErrorKind, OutboundError, WebhookClient};

const WAIT: Duration = Duration::from_secs(10);

fn secret() -> WebhookSecret {
    WebhookSecret::parse(TEST_SECRET).expect("the spec's secret")
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

fn client() -> WebhookClient {
    WebhookClient::new().expect("builds")
}

fn body() -> Vec<u8> {
    br#"{"type":"incident.triggered","incident":{"id":"inc-42","title":"db1 disk full"}}"#.to_vec()
}

fn assert_kind(err: &OutboundError, kind: ErrorKind, in_doubt: bool, status: Option<u16>) {
    assert_eq!(
        (err.kind, err.in_doubt, err.http_status),
        (kind, in_doubt, status),
        "{err}"
    );
}

#[test]
fn the_specifications_test_vector() {
    let secret = secret();
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let body = br#"{"test": 2432232314}"#;
    let signature = webhook::sign(&secret, id, 1_614_265_330, body);
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let at = UNIX_EPOCH + Duration::from_secs(1_614_265_330);
    assert_eq!(
        webhook::verify(&secret, id, "1614265330", &signature, body, at),
        Ok(())
    );
    // Tampered body, another id, and the same request a day later.
    assert_eq!(
        webhook::verify(
            &secret,
            id,
            "1614265330",
            &signature,
            br#"{"test": 2432232315}"#,
            at
        ),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        webhook::verify(&secret, "msg_other", "1614265330", &signature, body, at),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        webhook::verify(
            &secret,
            id,
            "1614265330",
            &signature,
            body,
            at + Duration::from_secs(86_400)
        ),
        Err(VerifyError::Stale { skew_secs: 86_400 })
    );
    // A rotated key: either signature is enough.
    let old = WebhookSecret::generate();
    let both = format!(
        "{} {signature}",
        webhook::sign(&old, id, 1_614_265_330, body)
    );
    assert_eq!(
        webhook::verify(&secret, id, "1614265330", &both, body, at),
        Ok(())
    );
    assert_eq!(
        webhook::verify(&old, id, "1614265330", &both, body, at),
        Ok(())
    );
}

#[tokio::test]
async fn a_delivery_is_signed_received_and_verifiable() {
    let receiver = FakeWebhookReceiver::start(TEST_SECRET).await;
    let id = new_message_id();
    let ts = now();
    let status = client()
        .post(&receiver.url(), &id, ts, &body(), &secret())
        .await
        .expect("delivered");
    assert_eq!(status, 200);
    let event = &receiver.wait_for_events(1, WAIT).await.expect("received")[0];
    assert_eq!((event.id.as_str(), event.timestamp), (id.as_str(), ts));
    assert_eq!(event.body, body());
    assert_eq!(
        event.json.as_ref().map(|j| &j["incident"]["id"]),
        Some(&"inc-42".into())
    );
    assert_eq!(event.content_type.as_deref(), Some("application/json"));
    assert!(!event.redelivery);
    assert_eq!(
        webhook::verify(
            &secret(),
            &event.id,
            &ts.to_string(),
            &event.signature,
            &event.body,
            SystemTime::now()
        ),
        Ok(())
    );

    // A retry keeps the id, with a fresh timestamp: the receiver sees a redelivery.
    client()
        .post(&receiver.url(), &id, now(), &body(), &secret())
        .await
        .expect("delivered again");
    let events = receiver.wait_for_events(2, WAIT).await.expect("received");
    assert!(events[1].redelivery);
}

#[tokio::test]
async fn refusals_of_the_signature_are_permanent() {
    let receiver = FakeWebhookReceiver::start(TEST_SECRET).await;
    let url = receiver.url();
    let other = WebhookSecret::generate();
    let err = client()
        .post(&url, "msg_1", now(), &body(), &other)
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(401));
    assert!(
        err.message.contains("no webhook-signature matches"),
        "{err}"
    );
    assert!(!err.message.contains(&other.expose_whsec()[6..]), "{err}");

    let stale = now() - 10 * 60;
    let err = client()
        .post(&url, "msg_2", stale, &body(), &secret())
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(401));
    assert!(receiver.events().is_empty());
    assert_eq!(
        receiver.wait_for_attempts(2, WAIT).await.map(|a| a.len()),
        Ok(2)
    );
}

#[tokio::test]
async fn what_each_answer_means() {
    let receiver = FakeWebhookReceiver::start(TEST_SECRET).await;
    let url = receiver.url();
    let send = || async {
        client()
            .post(&url, &new_message_id(), now(), &body(), &secret())
            .await
    };

    receiver.respond_next(1, 410);
    let err = send().await.unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(410));
    assert_eq!(err.code.as_deref(), Some("410"));
    assert!(err.message.contains("subscription is gone"), "{err}");

    receiver.respond_next(1, 500);
    let err = send().await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, Some(500));
    assert!(err.message.contains("fake subscriber answers 500"), "{err}");
    receiver.respond_next(1, 503);
    assert_kind(
        &send().await.unwrap_err(),
        ErrorKind::Transient,
        false,
        Some(503),
    );
    receiver.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    let err = send().await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        },
        false,
        Some(429),
    );
    assert!(err.retryable());
    for status in [400, 404, 422] {
        receiver.respond_next(1, status);
        assert_kind(
            &send().await.unwrap_err(),
            ErrorKind::Permanent,
            false,
            Some(status),
        );
    }
    assert!(receiver.events().is_empty());
    assert_eq!(send().await, Ok(200));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = FakeWebhookReceiver::start(TEST_SECRET).await;
    receiver.fail_next(1, Fault::Redirect(receiver.url_for("/elsewhere")));
    let err = client()
        .post(&receiver.url(), "msg_r", now(), &body(), &secret())
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(307));
    let attempts = receiver.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].path, "/hooks/pagerd");
}

#[tokio::test]
async fn timeouts_after_sending_are_in_doubt() {
    let receiver = FakeWebhookReceiver::start(TEST_SECRET).await;
    receiver.fail_next(1, Fault::Hang);
    let err = client()
        .with_timeout(Duration::from_millis(300))
        .expect("valid")
        .post(&receiver.url(), "msg_h", now(), &body(), &secret())
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, None);
    assert_eq!(receiver.events().len(), 1, "the subscriber has it");
}

#[tokio::test]
async fn unreachable_and_malformed_urls() {
    let receiver = FakeWebhookReceiver::start(TEST_SECRET).await;
    let url = format!("{}?token=subscriber-secret", receiver.url());
    receiver.shutdown().await;
    let err = client()
        .post(&url, "msg_u", now(), &body(), &secret())
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, None);
    assert!(!err.message.contains("subscriber-secret"), "{err}");

    for bad in ["ftp://example.com/hook", "not a url", "/relative"] {
        let err = client()
            .post(bad, "msg_b", now(), &body(), &secret())
            .await
            .unwrap_err();
        assert_kind(&err, ErrorKind::Permanent, false, None);
    }
    assert!(WebhookClient::new()
        .expect("builds")
        .with_timeout(Duration::ZERO)
        .is_err());
}
