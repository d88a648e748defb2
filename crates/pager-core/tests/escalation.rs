//! Exact-effect tests of escalation, dedup, acknowledgement, retries and
//! term fencing, with simulated time (instants are plain numbers).

mod common;

use common::Log;
use pager_core::command::{Command, Effect, Rejection, Response, SendResult};
use pager_core::{DeliveryStatus, Event, EventAction, IncidentStatus, OnCallDoc};

const DOC: &str = r#"
[users.alice]
name = "Alice"
contact_methods = [
  { name = "mobile", type = "sms", address = "+15550000001" },
  { name = "work", type = "email", address = "alice@example.com" },
]
notification_rules.high = [ { after = "0", contact = "mobile" }, { after = "30s", contact = "work" } ]
notification_rules.low = [ { after = "0", contact = "work" } ]

[users.bob]
contact_methods = [ { name = "mobile", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "mobile" } ]
notification_rules.low = [ { after = "0", contact = "mobile" } ]

[escalation_policies.db]
repeat = 1
levels = [
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
  { escalate_after = "10m", targets = [ { user = "bob" } ] },
]

[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
runbook_url = "https://runbooks.example.com/db"
"#;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;

impl Log {
    fn new() -> Log {
        Log::with_doc(DOC, T0)
    }

    fn trigger(&mut self, at: u64, key: &str) -> (Response, Vec<Effect>) {
        self.apply(Command::Ingest {
            at,
            event: Box::new(event(EventAction::Trigger, key)),
        })
    }
}

fn event(action: EventAction, key: &str) -> Event {
    Event {
        routing_key: "db-key-0001".into(),
        action,
        dedup_key: key.into(),
        summary: "disk full on db1".into(),
        source: "db1".into(),
        ..Default::default()
    }
}

#[test]
fn trigger_pages_level_one_and_arms_timers() {
    let mut log = Log::new();
    let (resp, effects) = log.trigger(T0, "disk-full-db1");
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(1),
            dedup_key: "disk-full-db1".into(),
            folded: false
        }
    );
    assert_eq!(
        effects,
        vec![
            Effect::IncidentOpened { incident: 1 },
            Effect::Escalated {
                incident: 1,
                level: 0,
                repeat: 0
            },
            Effect::Deliver {
                delivery: 1,
                term: 1
            },
            Effect::WakeAt(T0 + 30_000),
        ]
    );
    let d = &log.state.deliveries[&1];
    assert_eq!(
        (d.user.as_str(), d.address.as_str(), d.status),
        ("alice", "+15550000001", DeliveryStatus::Pending)
    );
    assert_eq!(log.state.next_deadline(), Some(T0 + 30_000));
    assert_eq!(
        log.state.timers.len(),
        2,
        "email rule at 30s and escalation at 5m"
    );
}

#[test]
fn same_dedup_key_folds_and_pages_nobody() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    let deliveries = log.state.deliveries.len();
    let (resp, effects) = log.trigger(T0 + 1_000, "k");
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(1),
            dedup_key: "k".into(),
            folded: true
        }
    );
    assert_eq!(effects, vec![Effect::IncidentFolded { incident: 1 }]);
    assert_eq!(log.state.deliveries.len(), deliveries);
    assert_eq!(log.state.incidents[&1].folded, 1);
}

#[test]
fn ticks_fire_rules_then_escalate_then_repeat() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    // 30 s: alice's email rule.
    let (_, effects) = log.apply(Command::Tick { at: T0 + 30_000 });
    assert_eq!(
        effects,
        vec![
            Effect::Deliver {
                delivery: 2,
                term: 1
            },
            Effect::WakeAt(T0 + 5 * MIN)
        ]
    );
    assert_eq!(log.state.deliveries[&2].method.as_str(), "email");
    // Nothing due in between: a tick changes nothing.
    let (_, effects) = log.apply(Command::Tick { at: T0 + 4 * MIN });
    assert_eq!(effects, vec![]);
    // 5 min: level 2 (bob).
    let (_, effects) = log.apply(Command::Tick { at: T0 + 5 * MIN });
    assert_eq!(
        effects,
        vec![
            Effect::Escalated {
                incident: 1,
                level: 1,
                repeat: 0
            },
            Effect::Deliver {
                delivery: 3,
                term: 1
            },
            Effect::WakeAt(T0 + 15 * MIN),
        ]
    );
    assert_eq!(log.state.deliveries[&3].user, "bob");
    // 15 min: the policy repeats from level 1 (repeat = 1).
    let (_, effects) = log.apply(Command::Tick { at: T0 + 15 * MIN });
    assert_eq!(
        effects,
        vec![
            Effect::Escalated {
                incident: 1,
                level: 0,
                repeat: 1
            },
            Effect::Deliver {
                delivery: 4,
                term: 1
            },
            Effect::WakeAt(T0 + 15 * MIN + 30_000),
        ]
    );
    log.apply(Command::Tick {
        at: T0 + 15 * MIN + 30_000,
    });
    // Last level of the last repeat: nothing further is armed.
    let (_, effects) = log.apply(Command::Tick { at: T0 + 20 * MIN });
    assert_eq!(
        effects[0],
        Effect::Escalated {
            incident: 1,
            level: 1,
            repeat: 1
        }
    );
    assert_eq!(log.state.next_deadline(), None);
    let (_, effects) = log.apply(Command::Tick { at: T0 + 60 * MIN });
    assert_eq!(effects, vec![]);
}

#[test]
fn late_tick_fires_everything_overdue_in_order() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    // A leader that was down for 6 minutes: email rule and level 2 both fire.
    let (_, effects) = log.apply(Command::Tick { at: T0 + 6 * MIN });
    assert_eq!(
        effects,
        vec![
            Effect::Deliver {
                delivery: 2,
                term: 1
            },
            Effect::Escalated {
                incident: 1,
                level: 1,
                repeat: 0
            },
            Effect::Deliver {
                delivery: 3,
                term: 1
            },
            Effect::WakeAt(T0 + 15 * MIN),
        ]
    );
}

#[test]
fn acknowledge_stops_paging_and_racing_tick_does_nothing() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    let (resp, effects) = log.apply(Command::Acknowledge {
        at: T0 + 10_000,
        incident: 1,
        by: "alice".into(),
    });
    assert_eq!(resp, Response::Incident { id: 1 });
    assert_eq!(
        effects,
        vec![
            Effect::IncidentAcknowledged { incident: 1 },
            Effect::DeliveryCancelled { delivery: 1 }
        ]
    );
    assert_eq!(log.state.next_deadline(), None);
    // The tick the leader had scheduled before the ack committed.
    let (_, effects) = log.apply(Command::Tick { at: T0 + 5 * MIN });
    assert_eq!(effects, vec![]);
    assert_eq!(log.state.deliveries.len(), 1);
    // Acknowledging again is idempotent.
    let (resp, effects) = log.apply(Command::Acknowledge {
        at: T0 + 6 * MIN,
        incident: 1,
        by: "bob".into(),
    });
    assert_eq!((resp, effects), (Response::Incident { id: 1 }, vec![]));
    assert_eq!(log.state.incidents[&1].acknowledged_by, "alice");
}

#[test]
fn resolve_event_closes_incident_and_frees_the_key() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    let (resp, effects) = log.apply(Command::Ingest {
        at: T0 + 1,
        event: Box::new(event(EventAction::Resolve, "k")),
    });
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(1),
            dedup_key: "k".into(),
            folded: false
        }
    );
    assert_eq!(
        effects,
        vec![
            Effect::IncidentResolved { incident: 1 },
            Effect::DeliveryCancelled { delivery: 1 }
        ]
    );
    assert_eq!(log.state.incidents[&1].status, IncidentStatus::Resolved);
    // The key is free: a new trigger opens a new incident.
    let (resp, _) = log.trigger(T0 + 2, "k");
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(2),
            dedup_key: "k".into(),
            folded: false
        }
    );
    // Acknowledge of an unknown key matches nothing and changes nothing.
    let before = log.state.incidents.clone();
    let (resp, effects) = log.apply(Command::Ingest {
        at: T0 + 3,
        event: Box::new(event(EventAction::Acknowledge, "nope")),
    });
    assert_eq!(
        (resp, effects),
        (
            Response::Event {
                incident: None,
                dedup_key: "nope".into(),
                folded: false
            },
            vec![]
        )
    );
    assert_eq!(log.state.incidents, before);
}

#[test]
fn outcomes_settle_retry_with_backoff_and_ignore_stale_attempts() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    let failed = SendResult::Failed {
        in_doubt: false,
        retryable: true,
        code: Some(20429),
        message: "Too Many Requests".into(),
    };
    let (_, effects) = log.apply(Command::Outcome {
        at: T0 + 100,
        delivery: 1,
        attempt: 1,
        result: failed.clone(),
    });
    let retry_at = T0 + 100 + 1_000 + (7_919 % 250);
    assert_eq!(
        effects,
        vec![
            Effect::DeliveryFailed {
                delivery: 1,
                retry_at: Some(retry_at)
            },
            Effect::WakeAt(retry_at)
        ]
    );
    assert_eq!(log.state.deliveries[&1].status, DeliveryStatus::RetryWait);
    assert_eq!(log.state.pending_deliveries().count(), 0);
    let (_, effects) = log.apply(Command::Tick { at: retry_at });
    assert_eq!(
        effects,
        vec![
            Effect::Deliver {
                delivery: 1,
                term: 1
            },
            Effect::WakeAt(T0 + 30_000)
        ]
    );
    assert_eq!(log.state.deliveries[&1].attempt, 2);
    // A late outcome of attempt 1 changes nothing.
    let (_, effects) = log.apply(Command::Outcome {
        at: retry_at + 1,
        delivery: 1,
        attempt: 1,
        result: failed,
    });
    assert_eq!(effects, vec![]);
    let sent = SendResult::Sent {
        provider_id: "SM123".into(),
        reconciled: false,
    };
    let (_, effects) = log.apply(Command::Outcome {
        at: retry_at + 2,
        delivery: 1,
        attempt: 2,
        result: sent,
    });
    assert_eq!(effects, vec![Effect::DeliverySent { delivery: 1 }]);
    assert_eq!(log.state.deliveries[&1].provider_id, "SM123");
}

#[test]
fn permanent_failure_is_final() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    let failed = SendResult::Failed {
        in_doubt: false,
        retryable: false,
        code: Some(21211),
        message: "invalid To".into(),
    };
    let (_, effects) = log.apply(Command::Outcome {
        at: T0 + 100,
        delivery: 1,
        attempt: 1,
        result: failed,
    });
    // No retry; alice's next contact method (email, due in 30 s) fires now,
    // and her SMS number is marked unreachable.
    assert_eq!(
        effects,
        vec![
            Effect::DeliveryFailed {
                delivery: 1,
                retry_at: None
            },
            Effect::Deliver {
                delivery: 2,
                term: 1
            },
            Effect::WakeAt(T0 + 5 * MIN),
        ]
    );
    assert_eq!(log.state.deliveries[&1].status, DeliveryStatus::Failed);
    assert_eq!(log.state.deliveries[&1].error, "21211: invalid To");
    let email = &log.state.deliveries[&2];
    assert_eq!(email.address, "alice@example.com");
    assert!(
        email
            .notice
            .contains("Your sms +1*******0001 is unreachable (invalid To)"),
        "{}",
        email.notice
    );
    assert!(log.state.unreachable.contains_key("sms:+15550000001"));

    // The next page to alice skips the unreachable SMS and emails at once.
    log.apply(Command::Resolve {
        at: T0 + 200,
        incident: 1,
        by: "x".into(),
    });
    log.trigger(T0 + 300, "k2");
    let to_alice: Vec<_> = log
        .state
        .deliveries
        .values()
        .filter(|d| d.incident == 2)
        .map(|d| d.address.as_str())
        .collect();
    assert_eq!(to_alice, vec!["alice@example.com"]);
    assert_eq!(log.state.stats.contacts_skipped, 1);
}

#[test]
fn takeover_reclaims_unsettled_deliveries_in_a_new_term() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    assert_eq!(log.state.deliveries[&1].claim_term, 1);
    // A plain tick in a later term re-claims nothing.
    log.term = 2;
    let (_, effects) = log.apply(Command::Tick { at: T0 + 500 });
    assert_eq!(effects, vec![]);
    let (_, effects) = log.apply(Command::Takeover {
        at: T0 + 1_000,
        key_seed: String::new(),
    });
    assert_eq!(
        effects,
        vec![
            Effect::Reclaimed {
                delivery: 1,
                term: 2
            },
            Effect::Deliver {
                delivery: 1,
                term: 2
            }
        ]
    );
    assert_eq!(log.state.deliveries[&1].claim_term, 2);
    assert_eq!(log.state.stats.deliveries_reclaimed, 1);
}

#[test]
fn takeover_in_the_same_term_counts_a_possible_duplicate() {
    // A leader killed while a page was in flight and restarted before anyone
    // else stood comes back leading the same term: its new process cannot
    // know whether the old one sent the page.
    let mut log = Log::new();
    log.trigger(T0, "k");
    let (_, effects) = log.apply(Command::Takeover {
        at: T0 + 1_000,
        key_seed: String::new(),
    });
    assert_eq!(
        effects,
        vec![
            Effect::Reclaimed {
                delivery: 1,
                term: 1
            },
            Effect::Deliver {
                delivery: 1,
                term: 1
            }
        ]
    );
    assert_eq!(log.state.deliveries[&1].reclaims, 1);
    assert_eq!(log.state.stats.deliveries_reclaimed, 1);
    // Settled deliveries are never re-claimed.
    let sent = SendResult::Sent {
        provider_id: "SM1".into(),
        reconciled: false,
    };
    log.apply(Command::Outcome {
        at: T0 + 1_100,
        delivery: 1,
        attempt: 1,
        result: sent,
    });
    let (_, effects) = log.apply(Command::Takeover {
        at: T0 + 2_000,
        key_seed: String::new(),
    });
    assert_eq!(effects, vec![]);
}

#[test]
fn bad_events_are_rejected_and_change_nothing() {
    let mut log = Log::new();
    log.trigger(T0, "k");
    let before = log.state.clone();
    let cases = [
        (
            Event {
                routing_key: "".into(),
                ..event(EventAction::Trigger, "x")
            },
            "routing_key",
        ),
        (
            Event {
                summary: " ".into(),
                ..event(EventAction::Trigger, "x")
            },
            "summary",
        ),
        (
            Event {
                dedup_key: "".into(),
                ..event(EventAction::Resolve, "")
            },
            "dedup_key",
        ),
        (
            Event {
                summary: "x".repeat(2_000),
                ..event(EventAction::Trigger, "x")
            },
            "summary",
        ),
    ];
    for (ev, field) in cases {
        let (resp, effects) = log.apply(Command::Ingest {
            at: T0 + 5,
            event: Box::new(ev),
        });
        match resp {
            Response::Rejected(Rejection::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected Invalid({field}), got {other:?}"),
        }
        assert_eq!(effects, vec![]);
    }
    let (resp, _) = log.apply(Command::Ingest {
        at: T0 + 5,
        event: Box::new(Event {
            routing_key: "unknown-key".into(),
            ..event(EventAction::Trigger, "x")
        }),
    });
    assert!(
        matches!(resp, Response::Rejected(Rejection::NotFound { ref field, .. }) if field == "routing_key")
    );
    let mut after = log.state.clone();
    after.clock = before.clock;
    after.last_applied = before.last_applied;
    assert_eq!(after, before, "a rejected command applies nothing");
}

#[test]
fn invalid_config_is_rejected_whole_with_paths() {
    let mut log = Log::new();
    let mut doc = OnCallDoc::from_toml(DOC).unwrap();
    doc.services.get_mut("database").unwrap().escalation_policy = "payments-oncall".into();
    doc.users.get_mut("bob").unwrap().contact_methods[0].address = "555".into();
    let (resp, _) = log.apply(Command::ApplyConfig {
        at: T0 + 1,
        doc: Box::new(doc),
    });
    let Response::Rejected(Rejection::ConfigInvalid { problems }) = resp else {
        panic!("{resp:?}")
    };
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        vec![
            "services.database.escalation_policy: unknown policy \"payments-oncall\"".to_string(),
            "users.bob.contact_methods[0].address: must be an E.164 phone number such as +15551234567".to_string(),
        ]
    );
    assert_eq!(log.state.config_version, 1);
}

#[test]
fn clock_never_runs_backwards() {
    let mut log = Log::new();
    log.apply(Command::Tick { at: T0 + 10_000 });
    let (resp, _) = log.trigger(T0, "k"); // stamped earlier by a previous leader
    assert!(matches!(resp, Response::Event { .. }));
    assert_eq!(log.state.incidents[&1].created_at, T0 + 10_000);
}

#[test]
fn config_round_trips_through_toml() {
    let doc = OnCallDoc::from_toml(DOC).unwrap();
    let again = OnCallDoc::from_toml(&doc.to_toml()).unwrap();
    assert_eq!(doc, again);
}
