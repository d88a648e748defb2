//! Incoming SMS from the fake to a webhook, signed; and Twilio's opt-out keywords.

use pager_fakes::twilio::{FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM};
use pager_notify::{signature, Method, Notifier, NotifySettings};

use crate::hooks::{Hooks, SMS_REPLY};
use crate::page;

const RESPONDER: &str = "+15551234567";

async fn fake() -> FakeTwilio {
    FakeTwilio::start(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).await
}

#[tokio::test]
async fn an_incoming_sms_is_posted_signed_and_the_twiml_answer_returned() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    let (status, body) = twilio
        .inbound_sms(&hooks.url("/sms?n=1"), RESPONDER, TEST_FROM, "ACK 42")
        .await
        .expect("webhook answers");
    assert_eq!(status, 200);
    assert!(body.contains("<Message>Got it &lt;3</Message>"), "{body}");
    assert!(SMS_REPLY.contains('<'));

    let hits = hooks.hits_to("/sms");
    assert_eq!(hits.len(), 1);
    let hit = &hits[0];
    assert!(hit.signature_ok);
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.url, hooks.url("/sms?n=1"));
    for (name, value) in [
        ("AccountSid", TEST_ACCOUNT_SID),
        ("From", RESPONDER),
        ("To", TEST_FROM),
        ("Body", "ACK 42"),
        ("NumMedia", "0"),
        ("NumSegments", "1"),
        ("SmsStatus", "received"),
        ("ApiVersion", "2010-04-01"),
    ] {
        assert_eq!(hit.param(name), Some(value), "{name}");
    }
    let sid = hit.param("MessageSid").expect("MessageSid");
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert_eq!(hit.param("SmsSid"), Some(sid));
    assert_eq!(hit.param("OptOutType"), None);

    let inbound = twilio.inbound_messages();
    assert_eq!(inbound.len(), 1);
    assert_eq!(
        (inbound[0].sid.as_str(), inbound[0].direction.as_str()),
        (sid, "inbound")
    );
    assert!(
        twilio.messages().is_empty(),
        "inbound messages are not pages"
    );
}

#[tokio::test]
async fn a_forged_signature_is_refused_and_not_recorded() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    let url = hooks.url("/sms");
    // Signed with the wrong token: well-formed, but not Twilio's.
    let params = vec![("Body".to_owned(), "STOP".to_owned())];
    let forged = signature::sign("guessed-token", &url, &params);
    let (status, _) = twilio
        .inbound_sms_signed_with(&url, RESPONDER, TEST_FROM, "STOP", &forged)
        .await
        .expect("webhook answers");
    assert_eq!(status, 403);
    assert!(!hooks.hits_to("/sms")[0].signature_ok);
    assert!(twilio.inbound_messages().is_empty());
    assert!(twilio.opted_out().is_empty(), "Twilio never saw that STOP");
}

#[tokio::test]
async fn stop_blocks_pages_with_21610_until_start() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    let notifier = Notifier::new(NotifySettings {
        twilio: Some(twilio.settings()),
        smtp: None,
        console: false,
    })
    .expect("valid settings");
    let sms = page(1, Method::Sms, RESPONDER);
    notifier.send(&sms).await.expect("subscribed");

    let (status, _) = twilio
        .inbound_sms(&hooks.url("/sms"), RESPONDER, TEST_FROM, " Stop ")
        .await
        .expect("webhook answers");
    assert_eq!(status, 200);
    assert_eq!(hooks.hits_to("/sms")[0].param("OptOutType"), Some("STOP"));
    assert_eq!(twilio.opted_out(), [RESPONDER]);

    let err = notifier.send(&sms).await.expect_err("unsubscribed");
    assert_eq!((err.http_status, err.code), (Some(400), Some(21610)));
    assert!(!err.retryable && !err.in_doubt, "{err}");
    assert_eq!(twilio.messages().len(), 1);
    // Another number is not affected.
    notifier
        .send(&page(2, Method::Sms, "+15557654321"))
        .await
        .expect("other number");

    twilio
        .inbound_sms(&hooks.url("/sms"), RESPONDER, TEST_FROM, "HELP")
        .await
        .expect("webhook answers");
    assert_eq!(hooks.hits_to("/sms")[1].param("OptOutType"), Some("HELP"));
    assert!(
        notifier.send(&sms).await.is_err(),
        "HELP does not resubscribe"
    );

    twilio
        .inbound_sms(&hooks.url("/sms"), RESPONDER, TEST_FROM, "start")
        .await
        .expect("webhook answers");
    assert_eq!(hooks.hits_to("/sms")[2].param("OptOutType"), Some("START"));
    assert!(twilio.opted_out().is_empty());
    notifier.send(&sms).await.expect("subscribed again");
    assert_eq!(twilio.messages().len(), 3);
}
