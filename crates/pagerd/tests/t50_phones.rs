//! Phones end to end, through real sockets: calls whose TwiML pagerd serves
//! and whose keypresses the fake Twilio posts back, SMS replies, STOP and
//! 21610, forged signatures, email links, reconciliation of an SMS left in
//! doubt, and an SMTP outage.

mod common;

use common::{trigger, Cluster};
use pager_fakes::twilio::{CallEvent, CallScript, Fault, TwimlSource};
use pager_proto::pager::v1 as pb;
use std::time::Duration;

const ALICE: &str = "+15550000001";
const BOB: &str = "+15550000002";
const FROM: &str = "+15550009999";

const ONCALL: &str = r#"
[users.alice]
name = "Alice"
contact_methods = [
  { name = "phone", type = "voice", address = "+15550000001" },
  { name = "mobile", type = "sms", address = "+15550000001" },
  { name = "work", type = "email", address = "alice@example.com" },
]
notification_rules.high = [
  { after = "0", contact = "phone" },
  { after = "10m", contact = "mobile" },
  { after = "20m", contact = "work" },
]

[users.bob]
name = "Bob"
contact_methods = [
  { name = "mobile", type = "sms", address = "+15550000002" },
  { name = "work", type = "email", address = "bob@example.com" },
]
notification_rules.high = [
  { after = "0", contact = "mobile" },
  { after = "10m", contact = "work" },
]

[escalation_policies.calls]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]

[escalation_policies.texts]
levels = [ { escalate_after = "30m", targets = [ { user = "bob" } ] } ]

[escalation_policies.mail]
levels = [ { escalate_after = "30m", targets = [ { user = "carol" } ] } ]

[users.carol]
contact_methods = [ { name = "work", type = "email", address = "carol@example.com" } ]
notification_rules.high = [ { after = "0", contact = "work" } ]

[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "calls"

[services.queue]
integration_keys = ["queue-key-0001"]
escalation_policy = "texts"
runbook_url = "https://runbooks.example.com/queue"

[services.reports]
integration_keys = ["reports-key-0001"]
escalation_policy = "mail"
"#;

const TRIGGERED: i32 = pb::IncidentStatus::Triggered as i32;
const ACKNOWLEDGED: i32 = pb::IncidentStatus::Acknowledged as i32;

const WAIT: Duration = Duration::from_secs(15);

async fn open(c: &Cluster, node: usize, key: &str, dedup: &str) -> u64 {
    c.events(node)
        .await
        .send(trigger(key, dedup))
        .await
        .expect("event accepted")
        .into_inner()
        .incident_id
}

async fn incident(c: &Cluster, node: usize, id: u64) -> pb::Incident {
    c.incidents(node)
        .await
        .get(pb::GetIncidentRequest {
            id,
            ..Default::default()
        })
        .await
        .expect("incident exists")
        .into_inner()
}

/// Poll `node`'s copy of the incident until `done` holds (no event to await
/// across the API: each read is a fresh query).
async fn until(
    c: &Cluster,
    node: usize,
    id: u64,
    done: impl Fn(&pb::Incident) -> bool,
) -> pb::Incident {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let i = incident(c, node, id).await;
        if done(&i) {
            return i;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "incident {id} never reached the expected state: {:?}",
            i.timeline.iter().map(|e| &e.what).collect::<Vec<_>>()
        );
        let mut applied = c.node(node).node.applied.clone();
        let _ = tokio::time::timeout(Duration::from_millis(200), applied.changed()).await;
    }
}

fn http_url(c: &Cluster, node: usize) -> String {
    format!("http://{}", c.addrs[node - 1].http)
}

/// The raw message with quoted-printable undone (soft line breaks, `=XX`).
fn mail_text(m: &pager_fakes::smtp::ReceivedMail) -> String {
    let raw = m.text().replace("=\r\n", "");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reply code (delivery id) an SMS carries: "Reply 4 <code> ack".
fn reply_code(body: &str) -> u64 {
    let rest = body
        .split("Reply 4 ")
        .nth(1)
        .expect("reply codes in the SMS");
    rest.split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("numeric code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keypress_on_a_follower_acknowledges() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    // The leader's own TwiML URL fails: Twilio turns to the FallbackUrl,
    // another member, and the key pressed there is forwarded to the leader.
    c.twilio
        .script_calls(ALICE, CallScript::UrlFails { digits: "4".into() });
    let id = open(&c, leader, "db-key-0001", "disk").await;
    let call = c.twilio.wait_for_calls(1, WAIT).await.expect("a call")[0].clone();
    assert_eq!(call.to, ALICE);
    let leader_url = http_url(&c, leader);
    assert_eq!(
        call.url.as_deref(),
        Some(format!("{leader_url}/twilio/voice/1?a=1").as_str())
    );
    let fallback = call.fallback_url.clone().expect("a fallback URL");
    assert!(
        !fallback.starts_with(&leader_url),
        "fallback on another node: {fallback}"
    );
    assert_eq!(
        call.status_callback.as_deref(),
        Some(format!("{leader_url}/twilio/status?d=1&a=1").as_str())
    );
    assert_eq!(
        call.status_callback_events,
        vec!["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(call.machine_detection.as_deref(), Some("Enable"));
    assert_eq!(call.timeout, Some(30));

    let log = c
        .twilio
        .wait_for_call_done(&call.sid, WAIT)
        .await
        .expect("the call ends");
    let served: Vec<(TwimlSource, String, Option<u16>)> = log
        .iter()
        .filter_map(|e| match e {
            CallEvent::TwimlRequested {
                source,
                url,
                http_status,
                ..
            } => Some((*source, url.clone(), *http_status)),
            _ => None,
        })
        .collect();
    let follower_urls: Vec<String> = (1..=3)
        .filter(|&n| n != leader)
        .map(|n| http_url(&c, n))
        .collect();
    let from_fallback = served
        .iter()
        .find(|s| s.0 == TwimlSource::FallbackUrl)
        .expect("fallback TwiML fetched");
    assert_eq!(from_fallback.2, Some(200));
    let keys = served
        .iter()
        .find(|s| s.0 == TwimlSource::GatherAction)
        .expect("the key was posted");
    assert!(
        follower_urls.iter().any(|u| keys.1.starts_with(u)),
        "keypress went to a follower: {}",
        keys.1
    );
    let said = c.twilio.said(&call.sid);
    assert!(
        said.iter()
            .any(|s| s.contains("Incident 1, severity critical, on service database")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|s| s == "Acknowledged incident 1."),
        "{said:?}"
    );

    let i = until(&c, leader, id, |i| i.status == ACKNOWLEDGED).await;
    assert_eq!(i.acknowledged_by, "alice (voice)");
    let d = &i.deliveries[0];
    assert!(d.reached, "a keypress makes the call reached");
    assert_eq!(d.provider_id, call.sid);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sms_reply_acknowledges_through_any_node() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let id = open(&c, leader, "queue-key-0001", "lag").await;
    let msg = c.twilio.wait_for_messages(1, WAIT).await.expect("an SMS")[0].clone();
    assert_eq!(msg.to, BOB);
    assert!(
        msg.body.contains("runbooks.example.com/queue"),
        "{}",
        msg.body
    );
    let code = reply_code(&msg.body);
    let first_segment = msg.body.split(" Runbook: ").next().unwrap();
    assert!(first_segment.chars().count() <= 160, "{first_segment}");

    let follower = c.follower(leader);
    let webhook = format!("{}/twilio/sms", http_url(&c, follower));
    let (status, twiml) = c
        .twilio
        .inbound_sms(&webhook, BOB, FROM, &format!("4 {code}"))
        .await
        .expect("webhook answers");
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Message>Acknowledged incident 1.</Message>"),
        "{twiml}"
    );
    let i = until(&c, leader, id, |i| i.status == ACKNOWLEDGED).await;
    assert_eq!(i.acknowledged_by, "bob (sms)");

    // A bare code acts on the latest page to the phone.
    let (_, twiml) = c
        .twilio
        .inbound_sms(&webhook, BOB, FROM, "4")
        .await
        .expect("webhook answers");
    assert!(
        twiml.contains("already acknowledged by bob (sms)"),
        "{twiml}"
    );
    // A code from a phone it was not sent to changes nothing.
    let (_, twiml) = c
        .twilio
        .inbound_sms(&webhook, ALICE, FROM, &format!("6 {code}"))
        .await
        .expect("webhook answers");
    assert!(twiml.contains("no page"), "{twiml}");
    assert_eq!(incident(&c, leader, id).await.status, ACKNOWLEDGED);

    // The leader's metrics saw the page and its latency.
    let metrics = reqwest::get(format!("{}/metrics", http_url(&c, leader)))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("pagerd_page_latency_seconds_count 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pagerd_deliveries{method=\"sms\",status=\"sent\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pagerd_phone_total{kind=\"replies\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pagerd_raft_follower_lag{node="),
        "{metrics}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_signatures_get_403_and_change_nothing() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    let id = open(&c, 1, "queue-key-0001", "lag").await;
    let msg = c.twilio.wait_for_messages(1, WAIT).await.expect("an SMS")[0].clone();
    let code = reply_code(&msg.body);
    let webhook = format!("{}/twilio/sms", http_url(&c, 1));
    let (status, body) = c
        .twilio
        .inbound_sms_signed_with(
            &webhook,
            BOB,
            FROM,
            &format!("4 {code}"),
            "bm90IGEgc2lnbmF0dXJl",
        )
        .await
        .expect("webhook answers");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("X-Twilio-Signature"), "{body}");
    // No signature at all, on the status callback.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/twilio/status?d=1&a=1", http_url(&c, 1)))
        .form(&[("CallStatus", "no-answer")])
        .send()
        .await
        .expect("status callback answers");
    assert_eq!(r.status().as_u16(), 403);
    let i = incident(&c, 1, id).await;
    assert_eq!(i.status, TRIGGERED);
    assert_eq!(i.deliveries.len(), 1, "nothing moved on");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn voicemail_moves_on_to_the_next_method_at_once() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    c.twilio.script_calls(ALICE, CallScript::Voicemail);
    let id = open(&c, 1, "db-key-0001", "disk").await;
    // The SMS rule is 10 minutes out; the voicemail brings it forward.
    let msgs = c
        .twilio
        .wait_for_messages(1, WAIT)
        .await
        .expect("the SMS at once");
    assert_eq!(msgs[0].to, ALICE);
    let i = until(&c, 1, id, |i| i.deliveries.len() == 2).await;
    assert!(
        i.timeline.iter().any(|e| e
            .what
            .contains("voice call to alice not answered (voicemail")),
        "{:?}",
        i.timeline
    );
    assert!(!i.deliveries[0].reached);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsubscribed_number_pages_other_methods_and_tells_the_user() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    c.twilio.fail_next(
        1,
        Fault::status(400, 21610, "Attempt to send to unsubscribed recipient"),
    );
    let id = open(&c, 1, "queue-key-0001", "lag").await;
    // The SMS fails for good; bob's email (10 minutes out) goes now and says why.
    let mails = c.smtp.wait_for_mails(1, WAIT).await.expect("email at once");
    let text = mail_text(&mails[0]);
    assert!(
        text.contains("Your sms +1*******0002 is unreachable (Attempt to send to unsubscribed recipient). Text START to re-enable it."),
        "{text}"
    );
    let i = until(&c, 1, id, |i| i.deliveries.len() == 2).await;
    assert_eq!(i.deliveries[0].status, "failed");

    // START from the phone turns SMS back on; the next page texts again.
    let webhook = format!("{}/twilio/sms", http_url(&c, 1));
    let (_, twiml) = c
        .twilio
        .inbound_sms(&webhook, BOB, FROM, "START")
        .await
        .expect("webhook answers");
    assert!(twiml.contains("on again"), "{twiml}");
    open(&c, 1, "queue-key-0001", "lag-2").await;
    let msgs = c
        .twilio
        .wait_for_messages(1, WAIT)
        .await
        .expect("SMS again");
    assert_eq!(msgs.last().unwrap().to, BOB);

    // STOP turns it off: the next page skips SMS and emails at once.
    let (_, twiml) = c
        .twilio
        .inbound_sms(&webhook, BOB, FROM, "STOP")
        .await
        .expect("webhook answers");
    assert!(
        !twiml.contains("<Message>"),
        "Twilio answers STOP itself: {twiml}"
    );
    let third = open(&c, 1, "queue-key-0001", "lag-3").await;
    let i = until(&c, 1, third, |i| !i.deliveries.is_empty()).await;
    assert_eq!(i.deliveries.len(), 1);
    assert_eq!(i.deliveries[0].method, "email");
    assert!(i
        .timeline
        .iter()
        .any(|e| e.what.contains("sms to bob skipped")));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn email_links_acknowledge_after_a_button_press() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let id = open(&c, leader, "reports-key-0001", "nightly").await;
    let mail = c.smtp.wait_for_mails(1, WAIT).await.expect("an email")[0].clone();
    let text = mail_text(&mail);
    assert!(text.contains("<a href="), "HTML part present");
    let ack = text
        .lines()
        .find_map(|l| l.strip_prefix("Acknowledge: "))
        .expect("an acknowledge link")
        .trim()
        .to_string();
    assert!(ack.starts_with(&http_url(&c, leader)), "{ack}");
    // Any node serves the link; GET only shows the button.
    let follower = c.follower(leader);
    let on_follower = ack.replace(&http_url(&c, leader), &http_url(&c, follower));
    let http = reqwest::Client::new();
    let page = http.get(&on_follower).send().await.expect("GET");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\">"), "{html}");
    assert_eq!(
        incident(&c, leader, id).await.status,
        TRIGGERED,
        "GET changes nothing"
    );

    let done = http.post(&on_follower).send().await.expect("POST");
    assert_eq!(done.status().as_u16(), 200);
    let i = until(&c, leader, id, |i| i.status == ACKNOWLEDGED).await;
    assert_eq!(i.acknowledged_by, "carol (email)");

    // A tampered token is refused with a JSON error.
    let bad = format!("{}x", on_follower.trim_end_matches(char::is_alphanumeric));
    let r = http.post(&bad).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    let body: serde_json::Value = r.json().await.expect("JSON error body");
    assert_eq!(body["status"], "error");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_sms_whose_answer_was_lost_is_reconciled_not_resent() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    // Twilio creates the message, the answer never arrives: in doubt.
    c.twilio.fail_next(1, Fault::DropAfterAccept);
    let id = open(&c, 1, "queue-key-0001", "lag").await;
    let i = until(&c, 1, id, |i| {
        i.deliveries.first().is_some_and(|d| d.status == "sent")
    })
    .await;
    assert_eq!(c.twilio.messages().len(), 1, "sent once");
    let d = &i.deliveries[0];
    assert_eq!(d.provider_id, c.twilio.messages()[0].sid);
    assert!(
        i.timeline
            .iter()
            .any(|e| e.what.contains("found sent by an earlier leader")),
        "{:?}",
        i.timeline
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_between_send_and_outcome_pages_once() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    // The message is created at once, the answer held back: the leader dies
    // with the page out and no outcome recorded.
    c.twilio.fail_next(1, Fault::Delay(Duration::from_secs(30)));
    let id = open(&c, leader, "queue-key-0001", "lag").await;
    c.twilio
        .wait_for_messages(1, WAIT)
        .await
        .expect("the SMS is out");
    c.kill(leader).await;
    let new_leader = c.leader().await;
    let i = until(&c, new_leader, id, |i| {
        i.deliveries.first().is_some_and(|d| d.status == "sent")
    })
    .await;
    let d = &i.deliveries[0];
    assert_eq!(d.reclaims, 1, "re-claimed by the new leader");
    assert_eq!(
        c.twilio.messages().len(),
        1,
        "found at Twilio, not sent again"
    );
    assert_eq!(d.provider_id, c.twilio.messages()[0].sid);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn email_arrives_after_a_30_second_smtp_outage() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    c.smtp.stop().await;
    let id = open(&c, 1, "reports-key-0001", "nightly").await;
    // The first attempts fail while the server is down.
    until(&c, 1, id, |i| {
        i.timeline
            .iter()
            .any(|e| e.what.contains("failed, retrying"))
    })
    .await;
    // The outage itself is the fault under test, not a stand-in for an event.
    tokio::time::sleep(Duration::from_secs(30)).await;
    c.smtp.restart().await.expect("smtp back");
    let mails = c
        .smtp
        .wait_for_mails(1, Duration::from_secs(45))
        .await
        .expect("the email arrives after the outage");
    assert!(mail_text(&mails[0]).contains("Incident #1"));
    let i = until(&c, 1, id, |i| i.deliveries[0].status == "sent").await;
    assert!(i.deliveries[0].attempt > 1);
    c.shutdown().await;
}
