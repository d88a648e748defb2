//! An incident's Jira ticket as replicated state: created when a
//! high-urgency incident of a service with `jira` opens, moved to Mitigated
//! on resolve, RCA Completed when its RCA is, Duplicate on merge, one step
//! in flight at a time; steps are deliveries that acknowledging does not
//! cancel, retried with backoff, and a move that fails for good is not
//! tried again.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::delivery::{Delivery, Purpose};
use pager_core::rca::RcaEdit;
use pager_core::ticket::{TicketStage, TicketStep};
use pager_core::{
    ContactKind, DeliveryStatus, Event, EventAction, OnCallDoc, SendResult, Severity,
};

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
notification_rules.low = [ { after = "0", contact = "m" } ]
[escalation_policies.p]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]
[tiers.one]
ack_sla = "5m"
rca = "required"
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
tier = "one"
urgency = "severity"
jira = { project = "DB", mitigated = "Mitigated" }
[services.web]
integration_keys = ["web-key-001"]
escalation_policy = "p"
"#;

const T0: u64 = 1_796_104_800_000;

fn trigger(log: &mut Log, at: u64, key: &str, dedup: &str, severity: Severity) -> u64 {
    log.open(
        at,
        Event {
            routing_key: key.into(),
            action: EventAction::Trigger,
            dedup_key: dedup.into(),
            summary: format!("{dedup} is down"),
            severity,
            ..Default::default()
        },
    )
}

/// The ticket steps of `incident`, in order.
fn steps(log: &Log, incident: u64) -> Vec<(TicketStep, DeliveryStatus)> {
    log.state
        .deliveries
        .values()
        .filter(|d| d.incident == incident)
        .filter_map(|d| match d.purpose {
            Purpose::Ticket { step } => Some((step, d.status)),
            _ => None,
        })
        .collect()
}

fn in_flight(log: &Log, incident: u64) -> Delivery {
    let id = log.state.tickets[&incident].busy.expect("a step in flight");
    (*log.state.deliveries[&id]).clone()
}

fn outcome(log: &mut Log, at: u64, d: &Delivery, result: SendResult) {
    log.outcome(at, d, result);
}

fn sent(key: &str) -> SendResult {
    SendResult::Sent {
        provider_id: key.into(),
        reconciled: false,
    }
}

fn failed(retryable: bool, message: &str) -> SendResult {
    SendResult::Failed {
        retryable,
        in_doubt: false,
        code: None,
        message: message.into(),
    }
}

fn timeline_has(log: &Log, incident: u64, what: &str) -> bool {
    log.state.incidents[&incident]
        .timeline
        .iter()
        .any(|e| e.what == what)
}

#[test]
fn a_ticket_is_created_then_mitigated_on_resolve_then_rca_completed() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk", Severity::Critical);
    assert_eq!(
        steps(&log, id),
        vec![(TicketStep::Create, DeliveryStatus::Pending)]
    );
    let create = in_flight(&log, id);
    assert_eq!(
        (create.method, create.address.as_str()),
        (ContactKind::Jira, "DB")
    );
    assert!(!log.state.incidents[&id].deliveries.contains(&create.id));

    // Acknowledged and resolved while the create is out: nothing more yet,
    // and acknowledging did not cancel the create.
    log.apply(Command::Acknowledge {
        at: T0 + 1_000,
        incident: id,
        by: "alice".into(),
    });
    log.apply(Command::Resolve {
        at: T0 + 2_000,
        incident: id,
        by: "alice".into(),
    });
    assert_eq!(steps(&log, id).len(), 1);
    assert_eq!(
        log.state.deliveries[&create.id].status,
        DeliveryStatus::Pending
    );

    outcome(&mut log, T0 + 3_000, &create, sent("DB-7"));
    assert_eq!(log.state.tickets[&id].key, "DB-7");
    assert!(timeline_has(&log, id, "Jira ticket DB-7 opened"));
    // The create's outcome moves it on at once: the incident is resolved.
    let mitigate = in_flight(&log, id);
    assert_eq!(
        mitigate.purpose,
        Purpose::Ticket {
            step: TicketStep::Move {
                to: TicketStage::Mitigated
            }
        }
    );
    outcome(&mut log, T0 + 4_000, &mitigate, sent("DB-7"));
    let t = &log.state.tickets[&id];
    assert_eq!((t.stage, t.busy, t.sent), (TicketStage::Mitigated, None, 2));
    assert!(timeline_has(
        &log,
        id,
        "Jira ticket DB-7 moved to Mitigated"
    ));

    // The RCA, completed: RCA Completed.
    let edit = RcaEdit {
        summary: Some("disk filled by logs; no customer impact".into()),
        ..Default::default()
    };
    let (r, _) = log.apply(Command::EditRca {
        at: T0 + 5_000,
        incident: id,
        edit: Box::new(edit),
        by: "alice".into(),
    });
    assert_eq!(r, Response::Incident { id });
    assert!(
        log.state.tickets[&id].busy.is_none(),
        "an edit moves nothing"
    );
    let (r, _) = log.apply(Command::CompleteRca {
        at: T0 + 6_000,
        incident: id,
        by: "alice".into(),
    });
    assert_eq!(r, Response::Incident { id });
    let done = in_flight(&log, id);
    assert_eq!(
        done.purpose,
        Purpose::Ticket {
            step: TicketStep::Move {
                to: TicketStage::RcaCompleted
            }
        }
    );
    outcome(&mut log, T0 + 7_000, &done, sent("DB-7"));
    assert_eq!(log.state.tickets[&id].stage, TicketStage::RcaCompleted);
    assert_eq!(steps(&log, id).len(), 3, "nothing after the last stage");
}

#[test]
fn only_high_urgency_incidents_of_services_with_jira_get_a_ticket() {
    let mut log = Log::with_doc(DOC, T0);
    let low = trigger(&mut log, T0, "db-key-0001", "slow", Severity::Warning);
    assert_eq!(log.state.incidents[&low].urgency.as_str(), "low");
    assert!(!log.state.tickets.contains_key(&low));
    let web = trigger(&mut log, T0, "web-key-001", "5xx", Severity::Critical);
    assert!(!log.state.tickets.contains_key(&web));
    assert!(steps(&log, web).is_empty());
}

#[test]
fn a_merged_incident_goes_to_duplicate_and_a_failed_move_is_not_retried_forever() {
    let mut log = Log::with_doc(DOC, T0);
    let a = trigger(&mut log, T0, "db-key-0001", "disk", Severity::Critical);
    let b = trigger(
        &mut log,
        T0 + 10,
        "db-key-0001",
        "disk-again",
        Severity::Critical,
    );
    for (id, key) in [(a, "DB-1"), (b, "DB-2")] {
        let create = in_flight(&log, id);
        outcome(&mut log, T0 + 100, &create, sent(key));
    }
    let (r, _) = log.apply(Command::Merge {
        at: T0 + 1_000,
        incident: b,
        into: a,
        by: "alice".into(),
    });
    assert!(matches!(r, Response::Incident { .. }), "{r:?}");
    let dup = in_flight(&log, b);
    assert_eq!(
        dup.purpose,
        Purpose::Ticket {
            step: TicketStep::Move {
                to: TicketStage::Duplicate
            }
        }
    );
    assert!(log.state.tickets[&a].busy.is_none(), "the survivor is open");

    // Jira is down: retried with backoff, then (a permanent answer) given up.
    outcome(
        &mut log,
        T0 + 2_000,
        &dup,
        failed(true, "jira (transient): 503"),
    );
    assert_eq!(
        log.state.deliveries[&dup.id].status,
        DeliveryStatus::RetryWait
    );
    log.apply(Command::Tick { at: T0 + 120_000 });
    let retried = (*log.state.deliveries[&dup.id]).clone();
    assert_eq!(
        (retried.status, retried.attempt),
        (DeliveryStatus::Pending, 2)
    );
    outcome(
        &mut log,
        T0 + 121_000,
        &retried,
        failed(false, "jira (permanent): no transition \"Duplicate\""),
    );
    let t = &log.state.tickets[&b];
    assert_eq!(
        (t.stage, t.busy, t.stuck, t.failed),
        (TicketStage::Open, None, Some(TicketStage::Duplicate), 1)
    );
    assert!(t.error.contains("no transition"), "{}", t.error);
    assert!(log.state.incidents[&b].timeline.iter().any(|e| e
        .what
        .starts_with("Jira ticket DB-2 not moved to Duplicate")));
    // A later change does not try it again.
    log.apply(Command::AddNote {
        at: T0 + 122_000,
        incident: b,
        text: "see #1".into(),
        by: "alice".into(),
    });
    assert_eq!(steps(&log, b).len(), 2);
}

#[test]
fn a_failed_create_is_shown_and_moves_nothing() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk", Severity::Critical);
    let create = in_flight(&log, id);
    outcome(
        &mut log,
        T0 + 100,
        &create,
        failed(false, "jira (permanent): project: project is required"),
    );
    log.apply(Command::Resolve {
        at: T0 + 200,
        incident: id,
        by: "alice".into(),
    });
    let t = &log.state.tickets[&id];
    assert!(t.key.is_empty() && t.busy.is_none());
    assert_eq!(
        steps(&log, id).len(),
        1,
        "no move of a ticket never created"
    );
    assert!(log.state.incidents[&id].timeline.iter().any(|e| e
        .what
        .starts_with("Jira ticket not opened: jira (permanent)")));
}

#[test]
fn jira_settings_are_checked() {
    let bad = DOC.replace(
        "project = \"DB\"",
        "project = \"db team\", issue_type = \"\"",
    );
    let problems = OnCallDoc::from_toml(&bad).expect("parses").validate();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"services.db.jira.project"), "{problems:?}");
    assert!(
        paths.contains(&"services.db.jira.issue_type"),
        "{problems:?}"
    );
    let bad = DOC.replace("type = \"sms\"", "type = \"jira\"");
    let problems = OnCallDoc::from_toml(&bad).expect("parses").validate();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "users.alice.contact_methods[0].type"),
        "{problems:?}"
    );
}
