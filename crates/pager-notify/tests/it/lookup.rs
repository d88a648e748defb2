//! `Notifier::find_sms` against the fake's message list, and the list itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pager_fakes::twilio::{FakeTwilio, Fault, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM};
use pager_notify::{Method, Notifier, NotifySettings, Page, Secret, TwilioSettings};
use serde_json::Value;

use crate::page;

const TO: &str = "+15551234567";

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

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(since.as_millis()).expect("fits")
}

fn sms(id: u64, text: &str) -> Page {
    Page {
        text: text.to_owned(),
        ..page(id, Method::Sms, TO)
    }
}

#[tokio::test]
async fn finds_the_page_that_went_out() {
    let twilio = fake().await;
    let notifier = notifier(twilio.settings());
    let since = now_ms();
    let sent = notifier
        .send(&sms(41, "db1 disk full [d41]"))
        .await
        .expect("sent");
    notifier
        .send(&sms(42, "db2 disk full [d42]"))
        .await
        .expect("sent");

    let found = notifier
        .find_sms(TO, since, "[d41]")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.sid, sent.provider_id);
    assert_eq!(found.status, "sent");
    let created = found.date_created_unix_ms.expect("date");
    // RFC 2822 has whole seconds.
    assert!(
        created + 1_000 >= since && created <= now_ms(),
        "{created} vs {since}"
    );
}

#[tokio::test]
async fn the_newest_match_wins() {
    let twilio = fake().await;
    let notifier = notifier(twilio.settings());
    let since = now_ms();
    notifier.send(&sms(1, "retry [d7]")).await.expect("sent");
    let newer = notifier.send(&sms(2, "retry [d7]")).await.expect("sent");
    let found = notifier.find_sms(TO, since, "[d7]").await.expect("lookup");
    // Both carry the same date_created second; the list is newest first either way.
    assert_eq!(found.map(|f| f.sid), Some(newer.provider_id));
}

#[tokio::test]
async fn finds_nothing_when_there_is_nothing() {
    let twilio = fake().await;
    let notifier = notifier(twilio.settings());
    let since = now_ms();
    assert_eq!(
        notifier.find_sms(TO, since, "[d1]").await.expect("lookup"),
        None
    );
    notifier.send(&sms(1, "page [d1]")).await.expect("sent");
    // Another needle, another number, a later start.
    assert_eq!(
        notifier.find_sms(TO, since, "[d2]").await.expect("lookup"),
        None
    );
    assert_eq!(
        notifier
            .find_sms("+15550000000", since, "[d1]")
            .await
            .expect("lookup"),
        None
    );
    let later = now_ms() + 10 * 60 * 1_000;
    assert_eq!(
        notifier.find_sms(TO, later, "[d1]").await.expect("lookup"),
        None
    );
    // Within the minute of clock skew it still counts.
    let skewed = now_ms() + 30_000;
    assert!(notifier
        .find_sms(TO, skewed, "[d1]")
        .await
        .expect("lookup")
        .is_some());
    let err = notifier
        .find_sms(TO, since, "")
        .await
        .expect_err("empty needle");
    assert!(!err.retryable);
}

#[tokio::test]
async fn finds_a_message_that_is_still_queued() {
    let twilio = fake().await;
    twilio.hold_messages_queued(true);
    let notifier = notifier(twilio.settings());
    let since = now_ms();
    let sent = notifier.send(&sms(5, "page [d5]")).await.expect("sent");

    // Twilio's DateSent filter cannot see it: it has no date_sent yet.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let (status, list) = get_list(&twilio, &[("To", TO), ("DateSent>", &today)]).await;
    assert_eq!(status, 200);
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(0));

    let found = notifier
        .find_sms(TO, since, "[d5]")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(
        (found.sid.as_str(), found.status.as_str()),
        (sent.provider_id.as_str(), "queued")
    );

    twilio.release_queued_messages();
    let (_, list) = get_list(&twilio, &[("To", TO), ("DateSent>", &today)]).await;
    assert_eq!(list["messages"][0]["status"], "sent");
    assert!(list["messages"][0]["date_sent"].is_string());
}

#[tokio::test]
async fn follows_next_page_uri_to_an_older_match() {
    let twilio = fake().await;
    let notifier = notifier(twilio.settings());
    let since = now_ms();
    let wanted = notifier.send(&sms(1, "page [d1]")).await.expect("sent");
    // 60 newer messages: the match is on the second page of 50.
    for id in 2..62 {
        notifier
            .send(&sms(id, &format!("page [d{id}]")))
            .await
            .expect("sent");
    }
    let found = notifier.find_sms(TO, since, "[d1]").await.expect("lookup");
    assert_eq!(found.map(|f| f.sid), Some(wanted.provider_id));
}

#[tokio::test]
async fn stops_at_the_first_page_that_reaches_before_the_window() {
    let twilio = fake().await;
    let notifier = notifier(twilio.settings());
    for id in 1..62 {
        notifier
            .send(&sms(id, &format!("page [d{id}]")))
            .await
            .expect("sent");
    }
    // Every message is older than the window (since is 2 minutes ahead, the
    // skew allowance 1 minute): one page read tells, no second request.
    twilio.fail_next(1, Fault::Delay(std::time::Duration::ZERO));
    twilio.fail_next(1, Fault::internal_error());
    let found = notifier
        .find_sms(TO, now_ms() + 120_000, "[d999]")
        .await
        .expect("one request, answered");
    assert_eq!(found, None);
    assert!(twilio.rejected().is_empty(), "no second page was asked for");
    twilio.clear_faults();
}

#[tokio::test]
async fn lookup_errors_are_classified_and_never_in_doubt() {
    let twilio = fake().await;
    let notifier_ = notifier(twilio.settings());
    let since = now_ms();

    twilio.fail_next(1, Fault::too_many_requests());
    let err = notifier_.find_sms(TO, since, "x").await.expect_err("429");
    assert_eq!((err.http_status, err.code), (Some(429), Some(20429)));
    assert!(err.retryable && !err.in_doubt, "{err}");

    twilio.fail_next(1, Fault::status(502, 20500, "Bad Gateway"));
    let err = notifier_.find_sms(TO, since, "x").await.expect_err("502");
    assert!(err.retryable && !err.in_doubt, "{err}");

    twilio.fail_next(1, Fault::Drop);
    let err = notifier_
        .find_sms(TO, since, "x")
        .await
        .expect_err("dropped");
    assert!(err.retryable && !err.in_doubt, "{err}");
    assert_no_number(&err.message);
    assert_eq!(twilio.rejected().len(), 3);
    assert!(twilio.rejected()[0].path.ends_with("/Messages.json"));
    assert!(twilio.rejected()[0]
        .params
        .contains(&("To".into(), TO.into())));

    let wrong = notifier(TwilioSettings {
        auth_token: Secret::new("not-the-token"),
        ..twilio.settings()
    });
    let err = wrong.find_sms(TO, since, "x").await.expect_err("401");
    assert_eq!((err.http_status, err.code), (Some(401), Some(20003)));
    assert!(!err.retryable);

    // Faults used up: the lookup works again.
    assert_eq!(
        notifier_.find_sms(TO, since, "x").await.expect("lookup"),
        None
    );
}

#[tokio::test]
async fn lookup_without_twilio_is_an_error() {
    let notifier = Notifier::new(NotifySettings {
        twilio: None,
        smtp: None,
        console: true,
    })
    .expect("console only");
    let err = notifier.find_sms(TO, 0, "x").await.expect_err("no twilio");
    assert!(!err.retryable);
    assert!(err.message.contains("twilio"), "{err}");
}

/// GET the fake's message list with the right credentials; (status, body).
pub async fn get_list(twilio: &FakeTwilio, query: &[(&str, &str)]) -> (u16, Value) {
    let url = format!(
        "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json",
        twilio.base_url()
    );
    let response = reqwest::Client::new()
        .get(url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .query(query)
        .send()
        .await
        .expect("fake answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn the_list_filters_and_pages_like_twilio() {
    let twilio = fake().await;
    let notifier = notifier(twilio.settings());
    for id in 0..5 {
        notifier
            .send(&sms(id, &format!("m{id}")))
            .await
            .expect("sent");
    }
    notifier
        .send(&page(9, Method::Sms, "+15550000009"))
        .await
        .expect("sent");

    // Page by page, newest first, with the envelope's URIs.
    let (status, first) = get_list(&twilio, &[("To", TO), ("PageSize", "2")]).await;
    assert_eq!(status, 200);
    let bodies = |list: &Value| -> Vec<String> {
        list["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(bodies(&first), ["m4", "m3"]);
    assert_eq!(
        (&first["page"], &first["page_size"]),
        (&Value::from(0), &Value::from(2))
    );
    assert_eq!(
        (&first["start"], &first["end"]),
        (&Value::from(0), &Value::from(1))
    );
    assert_eq!(first["previous_page_uri"], Value::Null);
    let path = format!("/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json");
    assert_eq!(
        first["first_page_uri"],
        format!("{path}?To=%2B15551234567&PageSize=2&Page=0")
    );
    let next = first["next_page_uri"].as_str().expect("next page");
    assert!(next.starts_with(&format!(
        "{path}?To=%2B15551234567&PageSize=2&Page=1&PageToken=PA"
    )));

    let mut pages = vec![bodies(&first)];
    let mut next = Some(next.to_owned());
    let client = reqwest::Client::new();
    while let Some(uri) = next {
        let page: Value = client
            .get(format!("{}{uri}", twilio.base_url()))
            .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
            .send()
            .await
            .expect("fake answers")
            .json()
            .await
            .expect("json");
        assert!(page["previous_page_uri"].is_string());
        pages.push(bodies(&page));
        next = page["next_page_uri"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, [vec!["m4", "m3"], vec!["m2", "m1"], vec!["m0"]]);

    // Filters on date_sent's UTC day.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let tomorrow = today.tomorrow().expect("date").to_string();
    let yesterday = today.yesterday().expect("date").to_string();
    let today = today.to_string();
    let count = |list: &Value| list["messages"].as_array().map_or(0, Vec::len);
    let cases: [(&[(&str, &str)], usize); 7] = [
        (&[("DateSent", &today)], 6),
        (&[("DateSent>", &today)], 6),
        (&[("DateSent>", &tomorrow)], 0),
        (&[("DateSent<", &yesterday)], 0),
        (&[("DateSent<", &today), ("To", TO)], 5),
        (&[("From", TEST_FROM), ("To", "+15550000009")], 1),
        (&[("From", "+15009999999")], 0),
    ];
    for (query, expected) in cases {
        let (status, list) = get_list(&twilio, query).await;
        assert_eq!((status, count(&list)), (200, expected), "{query:?}");
    }
    let (status, answer) = get_list(&twilio, &[("DateSent>", "soon")]).await;
    assert_eq!((status, &answer["code"]), (400, &Value::from(20001)));

    // Credentials are checked as for a POST.
    let response = reqwest::Client::new()
        .get(format!(
            "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages.json",
            twilio.base_url()
        ))
        .send()
        .await
        .expect("fake answers");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_slow_list_times_out_as_retryable() {
    let twilio = fake().await;
    twilio.fail_next(1, Fault::Delay(Duration::from_secs(30)));
    let notifier = notifier(TwilioSettings {
        timeout: Duration::from_millis(300),
        ..twilio.settings()
    });
    let err = notifier
        .find_sms(TO, now_ms(), "x")
        .await
        .expect_err("timeout");
    assert!(err.retryable && !err.in_doubt, "{err}");
    assert!(!err.message.contains("may have been"), "{err}");
    assert_no_number(&err.message);
}

/// The lookup's URL has the number in its query; no error message may carry it.
fn assert_no_number(message: &str) {
    assert!(
        !message.contains("5551234567") && !message.contains("Messages.json"),
        "{message}"
    );
}
