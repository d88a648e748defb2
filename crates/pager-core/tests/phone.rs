//! Phones answering back, with exact effects: SMS reply codes, keypresses,
//! unanswered calls and voicemail moving on to the next contact method at
//! once, STOP / START, in-doubt deliveries and reconciliation.

mod common;

use common::Log;
use pager_core::command::{Command, Effect, Response, SendResult};
use pager_core::render;
use pager_core::{ContactKind, DeliveryStatus, Event, EventAction, IncidentStatus, PhoneAction};

const DOC: &str = r#"
[users.alice]
name = "Alice"
contact_methods = [
  { name = "phone", type = "voice", address = "+15550000001" },
  { name = "mobile", type = "sms", address = "+15550000001" },
  { name = "work", type = "email", address = "alice@example.com" },
]
notification_rules.high = [
  { after = "0", contact = "phone" },
  { after = "2m", contact = "mobile" },
  { after = "4m", contact = "work" },
]

[users.bob]
contact_methods = [ { name = "mobile", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "mobile" } ]

[escalation_policies.db]
levels = [
  { escalate_after = "10m", targets = [ { user = "alice" } ] },
  { escalate_after = "10m", targets = [ { user = "bob" } ] },
]

[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
runbook_url = "https://runbooks.example.com/db"
"#;

const T0: u64 = 1_700_000_000_000;
const ALICE: &str = "+15550000001";
const BOB: &str = "+15550000002";

impl Log {
    fn new() -> Log {
        Log::with_doc(DOC, T0)
    }

    fn trigger(&mut self, at: u64, key: &str) {
        self.apply(Command::Ingest {
            at,
            event: Box::new(Event {
                routing_key: "db-key-0001".into(),
                action: EventAction::Trigger,
                dedup_key: key.into(),
                summary: "disk full on db1".into(),
                source: "db1".into(),
                ..Default::default()
            }),
        });
    }

    fn reply(&mut self, at: u64, from: &str, code: Option<u64>, action: PhoneAction) -> Response {
        self.apply(Command::PhoneReply {
            at,
            from: from.into(),
            via: ContactKind::Sms,
            delivery: code,
            action,
        })
        .0
    }

    /// (delivery id, method, address) of the deliveries of `incident`.
    fn deliveries(&self, incident: u64) -> Vec<(u64, ContactKind, String)> {
        self.state
            .deliveries
            .values()
            .filter(|d| d.incident == incident)
            .map(|d| (d.id, d.method, d.address.clone()))
            .collect()
    }

    fn last_note(&self, incident: u64) -> String {
        let inc = &self.state.incidents[&incident];
        inc.timeline
            .last()
            .map(|e| e.what.clone())
            .unwrap_or_default()
    }
}

fn reply_text(r: Response) -> String {
    match r {
        Response::Reply { message, .. } => message,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn sms_reply_code_acknowledges_as_the_user_and_says_who_was_first() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    log.trigger(T0, "b");
    // Both incidents called alice: deliveries 1 (incident 1) and 2 (incident 2).
    assert_eq!(log.deliveries(1)[0].0, 1);
    assert_eq!(log.deliveries(2)[0].0, 2);

    let r = log.reply(T0 + 1_000, ALICE, Some(1), PhoneAction::Acknowledge);
    assert_eq!(reply_text(r), "Acknowledged incident 1.");
    let inc = &log.state.incidents[&1];
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledged_by, "alice (sms)");
    assert_eq!(log.state.incidents[&2].status, IncidentStatus::Triggered);

    let again = log.reply(T0 + 2_000, ALICE, Some(1), PhoneAction::Acknowledge);
    assert_eq!(
        reply_text(again),
        "Incident 1 was already acknowledged by alice (sms)."
    );

    // A bare code acts on the latest page to that phone: incident 2.
    let bare = log.reply(T0 + 3_000, ALICE, None, PhoneAction::Resolve);
    assert_eq!(reply_text(bare), "Resolved incident 2.");
    assert_eq!(log.state.incidents[&2].status, IncidentStatus::Resolved);
    assert_eq!(log.state.stats.phone_replies, 3);
}

#[test]
fn a_code_sent_to_another_phone_changes_nothing() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    let r = log.reply(T0 + 1_000, BOB, Some(1), PhoneAction::Acknowledge);
    assert_eq!(
        r,
        Response::Reply {
            incident: None,
            message: "pagerd: no page 1 was sent to this phone.".into()
        }
    );
    assert_eq!(log.state.incidents[&1].status, IncidentStatus::Triggered);
    let r = log.reply(T0 + 1_000, BOB, None, PhoneAction::Acknowledge);
    assert_eq!(reply_text(r), "pagerd: no page was sent to this phone.");
}

#[test]
fn escalate_by_phone_pages_the_next_level_now() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    let r = log.reply(T0 + 1_000, ALICE, Some(1), PhoneAction::Escalate);
    assert_eq!(reply_text(r), "Escalated incident 1 to level 2.");
    let to: Vec<_> = log.deliveries(1).into_iter().map(|d| d.2).collect();
    assert_eq!(to, vec![ALICE.to_string(), BOB.to_string()]);
    // At the last level there is nowhere to go.
    let r = log.reply(T0 + 2_000, ALICE, Some(1), PhoneAction::Escalate);
    assert!(reply_text(r).contains("cannot be escalated"));
}

#[test]
fn unanswered_call_fires_the_next_rule_at_once() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    assert_eq!(log.deliveries(1).len(), 1, "only the call so far");
    for status in ["initiated", "ringing"] {
        let (_, effects) = log.apply(Command::CallStatus {
            at: T0 + 1_000,
            delivery: 1,
            attempt: 1,
            status: status.into(),
            answered_by: String::new(),
        });
        assert!(effects.is_empty(), "{status}: {effects:?}");
    }
    let (_, effects) = log.apply(Command::CallStatus {
        at: T0 + 30_000,
        delivery: 1,
        attempt: 1,
        status: "no-answer".into(),
        answered_by: String::new(),
    });
    // The SMS rule (due at 2 min) fires now; the email rule keeps its time.
    assert_eq!(
        effects,
        vec![
            Effect::Deliver {
                delivery: 2,
                term: 1
            },
            Effect::WakeAt(T0 + 4 * 60_000),
        ],
    );
    assert_eq!(log.deliveries(1)[1].1, ContactKind::Sms);
    assert!(log.state.incidents[&1].timeline.iter().any(|e| e.what
        == "voice call to alice not answered (no-answer, attempt 1); next contact method now"));
    assert_eq!(log.state.deliveries[&1].call_status, "no-answer");
    assert_eq!(log.state.stats.calls_unanswered, 1);

    // A late duplicate callback does not move on twice.
    let (_, effects) = log.apply(Command::CallStatus {
        at: T0 + 31_000,
        delivery: 1,
        attempt: 1,
        status: "completed".into(),
        answered_by: String::new(),
    });
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(log.deliveries(1).len(), 2);
}

#[test]
fn voicemail_is_not_reached() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    log.apply(Command::CallStatus {
        at: T0 + 20_000,
        delivery: 1,
        attempt: 1,
        status: "completed".into(),
        answered_by: "machine_end_beep".into(),
    });
    assert_eq!(log.deliveries(1).len(), 2, "the SMS went out at once");
    assert!(
        log.last_note(1).contains("voicemail"),
        "{}",
        log.last_note(1)
    );
}

#[test]
fn a_keypress_makes_the_call_reached() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    let r = log.apply(Command::PhoneReply {
        at: T0 + 10_000,
        from: ALICE.into(),
        via: ContactKind::Voice,
        delivery: Some(1),
        action: PhoneAction::Acknowledge,
    });
    assert_eq!(reply_text(r.0), "Acknowledged incident 1.");
    assert!(log.state.deliveries[&1].reached);
    assert_eq!(log.state.incidents[&1].acknowledged_by, "alice (voice)");
    let (_, effects) = log.apply(Command::CallStatus {
        at: T0 + 20_000,
        delivery: 1,
        attempt: 1,
        status: "completed".into(),
        answered_by: "human".into(),
    });
    assert!(effects.is_empty());
    assert_eq!(log.state.stats.calls_unanswered, 0);
}

#[test]
fn stop_skips_sms_and_tells_the_user_until_start() {
    let mut log = Log::new();
    let r = log.apply(Command::ContactHealth {
        at: T0,
        method: ContactKind::Sms,
        address: ALICE.into(),
        reachable: false,
        reason: "replied STOP".into(),
    });
    assert!(reply_text(r.0).contains("off"));
    log.trigger(T0 + 1_000, "a");
    // The call rings; when nobody answers, the SMS rule is skipped and the
    // email goes out at once, telling alice why she got no text.
    log.apply(Command::CallStatus {
        at: T0 + 30_000,
        delivery: 1,
        attempt: 1,
        status: "busy".into(),
        answered_by: String::new(),
    });
    let sent = log.deliveries(1);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].1, ContactKind::Email);
    let email = &log.state.deliveries[&sent[1].0];
    assert_eq!(
        email.notice,
        "Your sms +1*******0001 is unreachable (replied STOP). Text START to re-enable it."
    );
    let text = render::page(&log.state.incidents[&1], email).text;
    assert!(text.contains(&email.notice), "{text}");
    assert_eq!(log.state.stats.contacts_skipped, 1);

    log.apply(Command::ContactHealth {
        at: T0 + 60_000,
        method: ContactKind::Sms,
        address: ALICE.into(),
        reachable: true,
        reason: "replied START".into(),
    });
    assert!(log.state.unreachable.is_empty());
    log.trigger(T0 + 61_000, "b");
    log.apply(Command::CallStatus {
        at: T0 + 62_000,
        delivery: 3,
        attempt: 1,
        status: "no-answer".into(),
        answered_by: String::new(),
    });
    assert_eq!(log.deliveries(2)[1].1, ContactKind::Sms);
}

#[test]
fn a_reclaimed_delivery_is_in_doubt_until_reconciled() {
    let mut log = Log::new();
    log.trigger(T0, "a");
    log.apply(Command::CallStatus {
        at: T0 + 1_000,
        delivery: 1,
        attempt: 1,
        status: "no-answer".into(),
        answered_by: String::new(),
    });
    let sms = log.state.deliveries[&2].clone();
    assert_eq!((sms.claimed_at, sms.in_doubt), (T0 + 1_000, false));
    log.term = 2;
    log.apply(Command::Takeover {
        at: T0 + 5_000,
        key_seed: "k".repeat(64),
    });
    let sms = &log.state.deliveries[&2];
    assert!(sms.in_doubt);
    assert_eq!(sms.claim_term, 2);
    assert_eq!(sms.claimed_at, T0 + 1_000, "the old claim's time is kept");
    assert_eq!(log.state.link_key.expose(), "k".repeat(64));
    assert_eq!(format!("{:?}", log.state.link_key), "LinkKey(<redacted>)");

    log.apply(Command::Outcome {
        at: T0 + 6_000,
        delivery: 2,
        attempt: 1,
        result: SendResult::Sent {
            provider_id: "SM0123".into(),
            reconciled: true,
        },
    });
    let sms = &log.state.deliveries[&2];
    assert_eq!(sms.status, DeliveryStatus::Sent);
    assert!(!sms.in_doubt);
    assert_eq!(log.state.stats.deliveries_reconciled, 1);
    assert!(log.last_note(1).contains("found sent by an earlier leader"));

    // A second takeover never replaces the link key.
    log.term = 3;
    log.apply(Command::Takeover {
        at: T0 + 7_000,
        key_seed: "z".repeat(64),
    });
    assert_eq!(log.state.link_key.expose(), "k".repeat(64));
}

#[test]
fn sms_fits_one_segment_with_its_reply_codes() {
    let mut log = Log::new();
    log.apply(Command::Ingest {
        at: T0,
        event: Box::new(Event {
            routing_key: "db-key-0001".into(),
            action: EventAction::Trigger,
            dedup_key: "long".into(),
            summary: "Replication lag on “db-prod-7” is 93 s — writes are piling up in the queue and the primary’s disk is at 97% {sda}".into(),
            ..Default::default()
        }),
    });
    log.apply(Command::CallStatus {
        at: T0 + 1_000,
        delivery: 1,
        attempt: 1,
        status: "no-answer".into(),
        answered_by: String::new(),
    });
    let d = &log.state.deliveries[&2];
    let text = render::sms(&log.state.incidents[&1], d);
    let (first, runbook) = text
        .split_once(" Runbook: ")
        .expect("runbook after the facts");
    assert!(
        first.chars().count() <= 160,
        "{} chars: {first}",
        first.chars().count()
    );
    assert!(
        first
            .starts_with("#1 CRITICAL database: Replication lag on \"db-prod-7\" is 93 s - writes"),
        "{first}"
    );
    assert!(
        first.ends_with(" Reply 4 2 ack, 6 2 resolve, 5 2 escalate."),
        "{first}"
    );
    assert_eq!(runbook, "https://runbooks.example.com/db");
    assert_eq!(render::gsm7(&text), text, "GSM-7 only");
}
