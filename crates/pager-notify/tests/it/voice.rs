//! Voice calls whose TwiML comes from our URL, and the fake's scripted call lives against a
//! webhook server.

use std::time::Duration;

use pager_fakes::twilio::{
    CallEvent, CallScript, FakeTwilio, TwimlSource, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM,
};
use pager_notify::{Method, Notifier, NotifySettings, Page, VoiceCall};

use crate::hooks::{Hit, Hooks, ACKNOWLEDGED, FALLBACK, NO_KEY, PROMPT};
use crate::{page, WAIT};

const TO: &str = "+15551234567";

async fn fake() -> FakeTwilio {
    FakeTwilio::start(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).await
}

fn notifier(twilio: &FakeTwilio) -> Notifier {
    Notifier::new(NotifySettings {
        twilio: Some(twilio.settings()),
        smtp: None,
        console: false,
    })
    .expect("valid settings")
}

fn voice_page(hooks: &Hooks, answer_path: &str) -> Page {
    Page {
        voice: Some(VoiceCall {
            url: hooks.url(answer_path),
            fallback_url: Some(hooks.url("/voice/fallback")),
            status_callback: Some(hooks.url("/status?d=7")),
            timeout_secs: 25,
            machine_detection: true,
        }),
        ..page(20, Method::Voice, TO)
    }
}

/// Place a call to `TO` and wait for its life to end; returns (sid, log).
async fn call_through(twilio: &FakeTwilio, page: &Page) -> (String, Vec<CallEvent>) {
    let sent = notifier(twilio).send(page).await.expect("call created");
    let log = twilio
        .wait_for_call_done(&sent.provider_id, WAIT)
        .await
        .expect("the call's life ends");
    (sent.provider_id, log)
}

fn statuses(hooks: &Hooks) -> Vec<String> {
    hooks
        .hits_to("/status")
        .iter()
        .map(|hit| hit.param("CallStatus").unwrap_or_default().to_owned())
        .collect()
}

fn assert_all_signed(hits: &[Hit]) {
    assert!(!hits.is_empty());
    for hit in hits {
        assert!(hit.signature_ok, "bad signature on {}", hit.url);
    }
}

#[tokio::test]
async fn call_by_url_sends_the_specs_parameters() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    let page = voice_page(&hooks, "/voice/answer?d=7");
    let sent = notifier(&twilio).send(&page).await.expect("created");

    let call = &twilio.calls()[0];
    assert_eq!(call.sid, sent.provider_id);
    assert_eq!(call.twiml, None);
    assert_eq!(
        call.url.as_deref(),
        Some(hooks.url("/voice/answer?d=7").as_str())
    );
    assert_eq!(call.method.as_deref(), Some("POST"));
    assert_eq!(
        call.fallback_url.as_deref(),
        Some(hooks.url("/voice/fallback").as_str())
    );
    assert_eq!(call.fallback_method.as_deref(), Some("POST"));
    assert_eq!(
        call.status_callback.as_deref(),
        Some(hooks.url("/status?d=7").as_str())
    );
    assert_eq!(call.status_callback_method.as_deref(), Some("POST"));
    assert_eq!(
        call.status_callback_events,
        ["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(call.timeout, Some(25));
    assert_eq!(call.machine_detection.as_deref(), Some("Enable"));
    let names: Vec<&str> = call.params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "To",
            "From",
            "Url",
            "Method",
            "FallbackUrl",
            "FallbackMethod",
            "StatusCallback",
            "StatusCallbackMethod",
            "StatusCallbackEvent",
            "StatusCallbackEvent",
            "StatusCallbackEvent",
            "StatusCallbackEvent",
            "Timeout",
            "MachineDetection",
        ]
    );
    // No script for the number: nothing happens after the 201, as before scripts existed.
    assert!(twilio
        .wait_for_call_done(&sent.provider_id, Duration::from_millis(100))
        .await
        .is_err());
    assert!(hooks.hits().is_empty());
    assert_eq!(twilio.calls()[0].status, "queued");
}

#[tokio::test]
async fn a_bare_voice_call_sends_only_what_it_has() {
    let twilio = fake().await;
    let page = Page {
        voice: Some(VoiceCall {
            url: "https://pagerd.example/voice/answer".into(),
            fallback_url: None,
            status_callback: None,
            timeout_secs: 0,
            machine_detection: false,
        }),
        ..page(21, Method::Voice, TO)
    };
    notifier(&twilio).send(&page).await.expect("created");
    let call = &twilio.calls()[0];
    let names: Vec<&str> = call.params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["To", "From", "Url", "Method", "Timeout"]);
    assert_eq!(call.timeout, Some(60), "0 means Twilio's default");

    let long = Page {
        voice: Some(VoiceCall {
            timeout_secs: 3600,
            ..page.voice.clone().expect("voice")
        }),
        ..page.clone()
    };
    notifier(&twilio).send(&long).await.expect("created");
    assert_eq!(
        twilio.calls()[1].timeout,
        Some(600),
        "cut to Twilio's maximum"
    );
}

#[tokio::test]
async fn a_relative_voice_url_is_refused_locally() {
    let twilio = fake().await;
    for (url, fallback) in [
        ("/voice/answer", None),
        ("https://ok.example/a", Some("ftp://x/y")),
    ] {
        let page = Page {
            voice: Some(VoiceCall {
                url: url.into(),
                fallback_url: fallback.map(str::to_owned),
                status_callback: None,
                timeout_secs: 30,
                machine_detection: false,
            }),
            ..page(22, Method::Voice, TO)
        };
        let err = notifier(&twilio).send(&page).await.expect_err("refused");
        assert!(!err.retryable, "{err}");
    }
    assert!(twilio.calls().is_empty() && twilio.rejected().is_empty());
}

#[tokio::test]
async fn an_answered_call_presses_the_digits_at_the_gather() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    twilio.script_calls(TO, CallScript::Answer { digits: "1".into() });
    let (sid, log) = call_through(&twilio, &voice_page(&hooks, "/voice/answer?d=7")).await;

    assert_eq!(
        statuses(&hooks),
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let callbacks = hooks.hits_to("/status");
    for (i, hit) in callbacks.iter().enumerate() {
        assert_eq!(hit.param("SequenceNumber"), Some(i.to_string().as_str()));
        assert_eq!(hit.param("CallSid"), Some(sid.as_str()));
        assert_eq!(hit.param("AccountSid"), Some(TEST_ACCOUNT_SID));
        assert_eq!(hit.param("From"), Some(TEST_FROM));
        assert_eq!(hit.param("To"), Some(TO));
        assert_eq!(hit.param("Direction"), Some("outbound-api"));
        assert_eq!(hit.param("ApiVersion"), Some("2010-04-01"));
        assert!(hit.param("Timestamp").is_some_and(|t| t.ends_with("+0000")));
        assert_eq!(hit.url, hooks.url("/status?d=7"), "query string kept");
    }
    let completed = &callbacks[3];
    assert!(completed
        .param("CallDuration")
        .is_some_and(|d| d.parse::<u64>().is_ok()));
    assert_eq!(completed.param("AnsweredBy"), Some("human"));

    let answer = hooks.hits_to("/voice/answer");
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].param("CallStatus"), Some("in-progress"));
    assert_eq!(answer[0].param("AnsweredBy"), Some("human"));
    assert_eq!(answer[0].param("Digits"), None);
    // The relative action `ack?d=7` resolved against `/voice/answer?d=7`.
    let ack = hooks.hits_to("/voice/ack");
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].url, hooks.url("/voice/ack?d=7"));
    assert_eq!(ack[0].param("Digits"), Some("1"));
    assert_eq!(ack[0].param("CallSid"), Some(sid.as_str()));
    assert!(hooks.hits_to("/voice/fallback").is_empty());
    assert_all_signed(&hooks.hits());

    assert_eq!(twilio.said(&sid), [PROMPT, ACKNOWLEDGED]);
    let sources: Vec<TwimlSource> = log
        .iter()
        .filter_map(|e| match e {
            CallEvent::TwimlRequested {
                source,
                twiml: Some(_),
                ..
            } => Some(*source),
            _ => None,
        })
        .collect();
    assert_eq!(sources, [TwimlSource::Url, TwimlSource::GatherAction]);
    assert_eq!(
        log.last(),
        Some(&CallEvent::Ended {
            call_status: "completed".into()
        })
    );
    let call = &twilio.calls()[0];
    assert_eq!(call.status, "completed");
    assert_eq!(call.answered_by.as_deref(), Some("human"));
    assert_eq!(call.script, Some(CallScript::Answer { digits: "1".into() }));
}

#[tokio::test]
async fn without_a_key_the_gather_falls_through() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    twilio.script_calls(TO, CallScript::AnswerNoKey);
    let (sid, _) = call_through(&twilio, &voice_page(&hooks, "/voice/answer")).await;
    assert_eq!(twilio.said(&sid), [PROMPT, NO_KEY]);
    assert!(hooks.hits_to("/voice/ack").is_empty());
    assert_eq!(
        statuses(&hooks).last().map(String::as_str),
        Some("completed")
    );
    assert_all_signed(&hooks.hits());
}

#[tokio::test]
async fn voicemail_is_answered_by_a_machine_that_presses_nothing() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    twilio.script_calls(TO, CallScript::Voicemail);
    let (sid, _) = call_through(&twilio, &voice_page(&hooks, "/voice/answer")).await;
    let answer = hooks.hits_to("/voice/answer");
    assert_eq!(answer[0].param("AnsweredBy"), Some("machine_start"));
    assert!(hooks.hits_to("/voice/ack").is_empty());
    assert_eq!(twilio.said(&sid), [PROMPT, NO_KEY]);
    assert_eq!(
        twilio.calls()[0].answered_by.as_deref(),
        Some("machine_start")
    );
}

#[tokio::test]
async fn calls_that_are_not_answered() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    let cases = [
        (
            CallScript::NoAnswer,
            vec!["initiated", "ringing", "no-answer"],
        ),
        (CallScript::Busy, vec!["initiated", "busy"]),
        (CallScript::Failed, vec!["initiated", "failed"]),
    ];
    for (i, (script, expected)) in cases.into_iter().enumerate() {
        twilio.script_calls(TO, script.clone());
        let (sid, log) = call_through(&twilio, &voice_page(&hooks, "/voice/answer")).await;
        let seen: Vec<String> = hooks
            .hits_to("/status")
            .iter()
            .filter(|hit| hit.param("CallSid") == Some(sid.as_str()))
            .map(|hit| hit.param("CallStatus").unwrap_or_default().to_owned())
            .collect();
        assert_eq!(seen, expected, "{script:?}");
        assert!(hooks.hits_to("/voice/answer").is_empty(), "{script:?}");
        assert!(twilio.said(&sid).is_empty());
        let last = expected.last().copied().unwrap_or_default();
        assert_eq!(
            log.last(),
            Some(&CallEvent::Ended {
                call_status: last.to_owned()
            })
        );
        assert_eq!(twilio.calls()[i].status, last);
        assert_eq!(twilio.calls()[i].answered_by, None);
    }
    assert_all_signed(&hooks.hits());
}

#[tokio::test]
async fn a_failing_url_falls_back() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;

    // Scripted: the Url is taken as failed without being asked.
    twilio.script_calls(
        TO,
        CallScript::UrlFails {
            digits: String::new(),
        },
    );
    let (sid, log) = call_through(&twilio, &voice_page(&hooks, "/voice/answer")).await;
    assert!(hooks.hits_to("/voice/answer").is_empty());
    assert_eq!(hooks.hits_to("/voice/fallback").len(), 1);
    assert_eq!(twilio.said(&sid), [FALLBACK]);
    assert!(
        matches!(
            &log[..],
            [
                ..,
                CallEvent::TwimlRequested {
                    source: TwimlSource::Url,
                    twiml: None,
                    error: Some(_),
                    ..
                },
                CallEvent::TwimlRequested {
                    source: TwimlSource::FallbackUrl,
                    twiml: Some(_),
                    ..
                },
                CallEvent::Said(_),
                _,
                _
            ]
        ),
        "{log:#?}"
    );

    // For real: the Url answers 500.
    twilio.script_calls(TO, CallScript::Answer { digits: "1".into() });
    let (sid, log) = call_through(&twilio, &voice_page(&hooks, "/voice/broken")).await;
    assert_eq!(hooks.hits_to("/voice/broken").len(), 1);
    assert_eq!(hooks.hits_to("/voice/fallback").len(), 2);
    assert_eq!(twilio.said(&sid), [FALLBACK]);
    let fetched: Vec<(TwimlSource, Option<u16>, bool)> = log
        .iter()
        .filter_map(|e| match e {
            CallEvent::TwimlRequested {
                source,
                http_status,
                twiml,
                ..
            } => Some((*source, *http_status, twiml.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(
        fetched,
        [
            (TwimlSource::Url, Some(500), false),
            (TwimlSource::FallbackUrl, Some(200), true)
        ]
    );
    assert_all_signed(&hooks.hits());
}

#[tokio::test]
async fn a_redirect_loop_is_bounded() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    twilio.script_calls(TO, CallScript::AnswerNoKey);
    let (sid, _) = call_through(&twilio, &voice_page(&hooks, "/voice/loop")).await;
    assert_eq!(
        hooks.hits_to("/voice/loop").len(),
        pager_fakes::twilio::call::MAX_DOCUMENTS
    );
    assert_eq!(
        twilio.said(&sid).len(),
        pager_fakes::twilio::call::MAX_DOCUMENTS
    );
}

#[tokio::test]
async fn only_subscribed_events_are_called_back_and_completed_always() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    twilio.script_calls(TO, CallScript::AnswerNoKey);
    let url = format!(
        "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json",
        twilio.base_url()
    );
    let status = hooks.url("/status");
    let answer = hooks.url("/voice/answer");
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .form(&[
            ("To", TO),
            ("From", TEST_FROM),
            ("Url", answer.as_str()),
            ("StatusCallback", status.as_str()),
            ("StatusCallbackEvent", "answered"),
        ])
        .send()
        .await
        .expect("fake answers");
    assert_eq!(response.status(), 201);
    let sid = twilio.calls()[0].sid.clone();
    twilio.wait_for_call_done(&sid, WAIT).await.expect("done");
    assert_eq!(statuses(&hooks), ["in-progress", "completed"]);
    // Without MachineDetection there is no AnsweredBy.
    assert!(hooks
        .hits()
        .iter()
        .all(|hit| hit.param("AnsweredBy").is_none()));
    let callbacks = hooks.hits_to("/status");
    let sequence: Vec<&str> = callbacks
        .iter()
        .map(|hit| hit.param("SequenceNumber").unwrap_or_default())
        .collect();
    assert_eq!(sequence, ["0", "1"]);
}

#[tokio::test]
async fn scripts_apply_per_number_to_calls_created_after() {
    let twilio = fake().await;
    let hooks = Hooks::start().await;
    let other = "+15557654321";
    twilio.script_calls(other, CallScript::Busy);
    let notifier = notifier(&twilio);
    let first = notifier
        .send(&voice_page(&hooks, "/voice/answer"))
        .await
        .expect("created");
    twilio.script_calls(TO, CallScript::NoAnswer);
    let second = notifier
        .send(&voice_page(&hooks, "/voice/answer"))
        .await
        .expect("created");
    twilio
        .wait_for_call_done(&second.provider_id, WAIT)
        .await
        .expect("done");
    assert!(twilio.call_log(&first.provider_id).is_empty());
    assert!(twilio
        .wait_for_call_done(&first.provider_id, Duration::from_millis(50))
        .await
        .is_err());
    twilio.unscript_calls(TO);
    let third = notifier
        .send(&voice_page(&hooks, "/voice/answer"))
        .await
        .expect("created");
    assert!(twilio.call_log(&third.provider_id).is_empty());
    assert_eq!(twilio.calls()[2].script, None);
}

#[tokio::test]
async fn an_inline_twiml_call_is_played_too() {
    let twilio = fake().await;
    twilio.script_calls(TO, CallScript::AnswerNoKey);
    let sent = notifier(&twilio)
        .send(&page(23, Method::Voice, TO))
        .await
        .expect("created");
    let log = twilio
        .wait_for_call_done(&sent.provider_id, WAIT)
        .await
        .expect("done");
    let text = "db1: /var at 99% & rising. Runbook: https://wiki.example/disk";
    assert_eq!(twilio.said(&sent.provider_id), [text, text]);
    // No status callback and no URL: nothing was requested.
    assert!(log
        .iter()
        .all(|e| matches!(e, CallEvent::Said(_) | CallEvent::Ended { .. })));
}
