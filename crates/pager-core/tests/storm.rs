//! Alert storms: over the threshold of new incidents a minute, new triggers
//! fold into one storm incident that pages once, until it is resolved.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::{Event, EventAction, IncidentStatus};

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[escalation_policies.p]
levels = [ { escalate_after = "5m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
storm_threshold_per_minute = 3
"#;

const T0: u64 = 1_700_000_000_000;

fn event(action: EventAction, key: &str) -> Command {
    Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: "db-key-0001".into(),
            action,
            dedup_key: key.into(),
            summary: format!("disk full on {key}"),
            ..Default::default()
        }),
    }
}

fn send(log: &mut Log, at: u64, action: EventAction, key: &str) -> (Option<u64>, bool) {
    let mut cmd = event(action, key);
    cmd.stamp(at);
    match log.apply(cmd).0 {
        Response::Event {
            incident, folded, ..
        } => (incident, folded),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_storm_folds_new_triggers_into_one_incident_that_pages_once() {
    let mut log = Log::with_doc(DOC, T0);
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        let (id, folded) = send(&mut log, T0 + i as u64 * 1_000, EventAction::Trigger, key);
        assert_eq!((id, folded), (Some(i as u64 + 1), false));
    }
    // The fourth new incident within a minute opens the storm incident.
    let (storm, folded) = send(&mut log, T0 + 3_000, EventAction::Trigger, "d");
    assert_eq!((storm, folded), (Some(4), true));
    let inc = &log.state.incidents[&4];
    assert!(
        inc.summary.starts_with("Alert storm on db: 3 incidents"),
        "{}",
        inc.summary
    );
    // Further triggers fold; nobody is paged again.
    let pages_before = log.state.deliveries.len();
    for key in ["e", "f", "g"] {
        assert_eq!(
            send(&mut log, T0 + 4_000, EventAction::Trigger, key),
            (Some(4), true)
        );
    }
    assert_eq!(log.state.deliveries.len(), pages_before);
    assert_eq!(log.state.incidents[&4].folded, 3);
    assert_eq!(
        log.state
            .deliveries
            .values()
            .filter(|d| d.incident == 4)
            .count(),
        1,
        "paged once"
    );
    // A resolve for a folded key acts on the storm incident.
    let (id, _) = send(&mut log, T0 + 5_000, EventAction::Resolve, "e");
    assert_eq!(id, Some(4));
    assert_eq!(log.state.incidents[&4].status, IncidentStatus::Resolved);
    // After the storm, and a quiet minute, triggers open incidents again.
    let (id, folded) = send(&mut log, T0 + 70_000, EventAction::Trigger, "h");
    assert_eq!((id, folded), (Some(5), false));
}

#[test]
fn slow_triggers_never_make_a_storm() {
    let mut log = Log::with_doc(DOC, T0);
    for i in 0..10u64 {
        let (_, folded) = send(
            &mut log,
            T0 + i * 30_000,
            EventAction::Trigger,
            &format!("k{i}"),
        );
        assert!(!folded, "trigger {i}");
    }
    assert_eq!(log.state.incidents.len(), 10);
}
