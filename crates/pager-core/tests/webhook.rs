//! Webhook events as replicated state: an incident's changes become events
//! for the subscriptions that take its service (directly or by team), one in
//! flight per (subscription, incident) so they arrive in order; a failed one
//! is retried with backoff for 24 hours, then dead, and a replay sends it
//! again with the same id.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::delivery::{Delivery, Purpose};
use pager_core::webhook::{HookKind, HookStatus, RETRY_WINDOW};
use pager_core::{ContactKind, DeliveryStatus, Event, EventAction, OnCallDoc, SendResult};

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[teams.db]
members = ["alice"]
[escalation_policies.p]
levels = [
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
team = "db"
[services.web]
integration_keys = ["web-key-001"]
escalation_policy = "p"
[webhooks.bridge]
url = "https://hooks.example.com/pagerd"
teams = ["db"]
[webhooks.status-page]
url = "https://status.example.com/hook"
services = ["db"]
events = ["triggered", "resolved"]
"#;

const T0: u64 = 1_796_104_800_000;
const MIN: u64 = 60_000;

fn trigger(log: &mut Log, at: u64, key: &str) -> u64 {
    log.open(
        at,
        Event {
            routing_key: key.into(),
            action: EventAction::Trigger,
            dedup_key: format!("d-{at}"),
            summary: "disk full".into(),
            ..Default::default()
        },
    )
}

/// (subscription, kind, state) of the incident's events, in order.
fn events(log: &Log, incident: u64) -> Vec<(String, HookKind, HookStatus)> {
    log.state
        .hook_events
        .values()
        .filter(|e| e.incident == incident)
        .map(|e| (e.subscription.clone(), e.kind, e.state))
        .collect()
}

/// The delivery of the event being sent to `sub` for `incident`.
fn sending(log: &Log, incident: u64, sub: &str) -> Delivery {
    let e = log
        .state
        .hook_events
        .values()
        .find(|e| e.incident == incident && e.subscription == sub && e.state == HookStatus::Sending)
        .unwrap_or_else(|| panic!("an event to {sub} being sent: {:?}", events(log, incident)));
    (*log.state.deliveries[&e.delivery.expect("its delivery")]).clone()
}

fn outcome(log: &mut Log, at: u64, d: &Delivery, result: SendResult) {
    log.outcome(at, d, result);
}

fn ok() -> SendResult {
    SendResult::Sent {
        provider_id: "200".into(),
        reconciled: false,
    }
}

fn failed(retryable: bool) -> SendResult {
    SendResult::Failed {
        retryable,
        in_doubt: false,
        code: None,
        message: "webhook: HTTP 503: the subscriber failed".into(),
    }
}

fn kind_of(log: &Log, d: &Delivery) -> HookKind {
    let Purpose::Webhook { event } = d.purpose else {
        panic!("{:?}", d.purpose)
    };
    log.state.hook_events[&event].kind
}

#[test]
fn an_incidents_events_go_out_in_order_one_at_a_time_per_subscription() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001");
    use HookKind::*;
    use HookStatus::*;
    assert_eq!(
        events(&log, id),
        [
            ("bridge".to_string(), Triggered, Sending),
            ("status-page".to_string(), Triggered, Sending),
        ]
    );
    let first = sending(&log, id, "bridge");
    assert_eq!(
        (first.method, first.address.as_str(), first.contact.as_str()),
        (
            ContactKind::Webhook,
            "https://hooks.example.com/pagerd",
            "bridge"
        )
    );
    assert!(
        !log.state.incidents[&id].deliveries.contains(&first.id),
        "not a page"
    );

    // Acknowledged, a note, then escalated by hand, all while the first is out.
    log.apply(Command::Acknowledge {
        at: T0 + 1_000,
        incident: id,
        by: "alice".into(),
    });
    log.apply(Command::AddNote {
        at: T0 + 2_000,
        incident: id,
        text: "looking at the disk".into(),
        by: "alice".into(),
    });
    log.apply(Command::Resolve {
        at: T0 + 3_000,
        incident: id,
        by: "alice".into(),
    });
    let bridge: Vec<(HookKind, HookStatus)> = events(&log, id)
        .into_iter()
        .filter(|(s, _, _)| s == "bridge")
        .map(|(_, k, st)| (k, st))
        .collect();
    assert_eq!(
        bridge,
        [
            (Triggered, Sending),
            (Acknowledged, Queued),
            (NoteAdded, Queued),
            (Resolved, Queued),
            // Resolving mitigated its RCA.
            (RcaChanged, Queued),
        ]
    );
    // status-page takes only triggered and resolved.
    let page: Vec<HookKind> = events(&log, id)
        .into_iter()
        .filter(|(s, _, _)| s == "status-page")
        .map(|(_, k, _)| k)
        .collect();
    assert_eq!(page, [Triggered, Resolved]);
    let note = log
        .state
        .hook_events
        .values()
        .find(|e| e.kind == NoteAdded)
        .expect("the note's event");
    assert_eq!(
        (note.by.as_str(), note.detail.as_str()),
        ("alice", "looking at the disk")
    );

    // Each outcome sends the next, in order.
    let mut order = Vec::new();
    let mut at = T0 + 10_000;
    loop {
        let d = sending(&log, id, "bridge");
        order.push(kind_of(&log, &d));
        at += 1_000;
        outcome(&mut log, at, &d, ok());
        if order.len() == 5 {
            break;
        }
    }
    assert_eq!(
        order,
        [Triggered, Acknowledged, NoteAdded, Resolved, RcaChanged]
    );
    assert!(log
        .state
        .hook_events
        .values()
        .filter(|e| e.subscription == "bridge")
        .all(|e| e.state == Delivered));
    assert_eq!(log.state.stats.webhooks_delivered, 5);
}

#[test]
fn a_failing_event_is_retried_for_a_day_then_dead_and_replayed_with_its_id() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001");
    let d = sending(&log, id, "bridge");
    let Purpose::Webhook { event } = d.purpose else {
        panic!()
    };
    let mut at = T0;
    let mut attempts = 0;
    loop {
        let d = sending(&log, id, "bridge");
        at += 1_000;
        outcome(&mut log, at, &d, failed(true));
        attempts += 1;
        let e = &log.state.hook_events[&event];
        if e.state == HookStatus::Dead {
            break;
        }
        assert_eq!(
            log.state.deliveries[&d.id].status,
            DeliveryStatus::RetryWait
        );
        // Fire timers (escalations too) until the retry is due.
        while log.state.deliveries[&d.id].status == DeliveryStatus::RetryWait {
            at = log.state.next_deadline().expect("a retry timer");
            log.apply(Command::Tick { at });
        }
        assert!(attempts < 100, "never dead");
    }
    let e = log.state.hook_events[&event].clone();
    assert!(
        at - T0 <= RETRY_WINDOW && at - T0 > RETRY_WINDOW - 2 * 60 * MIN,
        "dead after a day: {}",
        at - T0
    );
    assert!(attempts > 10, "{attempts} attempts");
    assert_eq!(e.attempts, attempts);
    assert!(e.error.contains("503"), "{}", e.error);
    assert_eq!(log.state.stats.webhooks_dead, 1);

    // Later events (the escalations of that day) are not held behind a dead one.
    let next = sending(&log, id, "bridge");
    assert_eq!(kind_of(&log, &next), HookKind::Escalated);

    // Replay: only a dead event; it goes behind the ones still queued.
    let (r, _) = log.apply(Command::ReplayWebhook {
        at: at + 2,
        event: ack_event(&next),
        by: "alice".into(),
    });
    assert!(matches!(r, Response::Rejected(_)), "{r:?}");
    let (r, _) = log.apply(Command::ReplayWebhook {
        at: at + 3,
        event,
        by: "alice".into(),
    });
    assert_eq!(r, Response::Noop);
    assert_eq!(log.state.hook_events[&event].state, HookStatus::Queued);
    let mut sent = Vec::new();
    let mut at = at + 4;
    while log
        .state
        .hook_events
        .values()
        .any(|e| e.subscription == "bridge" && e.state == HookStatus::Sending)
    {
        let d = sending(&log, id, "bridge");
        sent.push(ack_event(&d));
        at += 1;
        outcome(&mut log, at, &d, ok());
    }
    assert_eq!(
        sent.last(),
        Some(&event),
        "the replay last, with the same id: {sent:?}"
    );
    assert!(sent[..sent.len() - 1].iter().all(|e| *e > event));
    let e = &log.state.hook_events[&event];
    assert_eq!((e.state, e.replays), (HookStatus::Delivered, 1));
}

fn ack_event(d: &Delivery) -> u64 {
    match d.purpose {
        Purpose::Webhook { event } => event,
        _ => panic!(),
    }
}

#[test]
fn a_permanent_refusal_is_dead_at_once_and_services_nobody_takes_have_no_events() {
    let mut log = Log::with_doc(DOC, T0);
    let web = trigger(&mut log, T0, "web-key-001");
    assert!(events(&log, web).is_empty());
    assert!(!log.state.hook_cursors.contains_key(&web));
    let id = trigger(&mut log, T0, "db-key-0001");
    let d = sending(&log, id, "status-page");
    outcome(&mut log, T0 + 1, &d, failed(false));
    let e = log
        .state
        .hook_events
        .values()
        .find(|e| e.subscription == "status-page")
        .expect("event");
    assert_eq!(e.state, HookStatus::Dead);
}

#[test]
fn subscriptions_are_checked() {
    let bad = DOC
        .replace("https://hooks.example.com/pagerd", "hooks.example.com")
        .replace("services = [\"db\"]", "services = [\"nope\"]");
    let problems = OnCallDoc::from_toml(&bad).expect("parses").validate();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"webhooks.bridge.url"), "{problems:?}");
    assert!(
        paths.contains(&"webhooks.status-page.services[0]"),
        "{problems:?}"
    );
    let none = DOC.replace("teams = [\"db\"]", "");
    let problems = OnCallDoc::from_toml(&none).expect("parses").validate();
    assert!(
        problems.iter().any(|p| p.path == "webhooks.bridge"),
        "{problems:?}"
    );
    let kind = DOC.replace(
        "events = [\"triggered\", \"resolved\"]",
        "events = [\"exploded\"]",
    );
    assert!(OnCallDoc::from_toml(&kind).is_err());
}

#[test]
fn a_conference_bridge_is_checked_noted_and_carried_by_pages_and_events() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001");
    for bad in [
        "meet.example.com/x",
        "ftp://meet.example.com",
        "https:///x",
        "https://a b",
    ] {
        let (r, _) = log.apply(Command::SetBridge {
            at: T0 + 1,
            incident: id,
            url: bad.into(),
            by: "alice".into(),
        });
        assert!(
            matches!(&r, Response::Rejected(pager_core::command::Rejection::Invalid { field, .. }) if field == "url"),
            "{bad}: {r:?}"
        );
    }
    let (r, _) = log.apply(Command::SetBridge {
        at: T0 + 2,
        incident: id,
        url: "https://meet.example.com/db-incident".into(),
        by: "alice".into(),
    });
    assert_eq!(r, Response::Incident { id });
    let inc = log.state.incidents[&id].clone();
    assert_eq!(inc.bridge_url, "https://meet.example.com/db-incident");
    assert!(inc
        .timeline
        .iter()
        .any(|e| e.by == "alice"
            && e.what == "conference bridge: https://meet.example.com/db-incident"));
    let page = log
        .state
        .deliveries
        .values()
        .find(|d| d.purpose == Purpose::Page)
        .expect("a page")
        .clone();
    let sms = pager_core::render::sms(&inc, &page);
    assert!(
        sms.contains("Bridge: https://meet.example.com/db-incident"),
        "{sms}"
    );
    log.apply(Command::Acknowledge {
        at: T0 + 3,
        incident: id,
        by: "alice".into(),
    });
    let ack = log
        .state
        .hook_events
        .values()
        .find(|e| e.kind == HookKind::Acknowledged)
        .expect("the acknowledgement's event");
    assert_eq!(ack.bridge_url, "https://meet.example.com/db-incident");
}
