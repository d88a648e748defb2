//! Retention: `Compact` forgets incidents resolved before a cutoff, with
//! their deliveries; open and later-resolved incidents stay; ids are never
//! reused; applying it again changes nothing.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::{Event, EventAction};

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[escalation_policies.p]
levels = [ { escalate_after = "5m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

const T0: u64 = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

fn trigger(log: &mut Log, at: u64, key: &str) -> u64 {
    let mut cmd = Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: "db-key-0001".into(),
            action: EventAction::Trigger,
            dedup_key: key.into(),
            summary: format!("disk full on {key}"),
            ..Default::default()
        }),
    };
    cmd.stamp(at);
    match log.apply(cmd).0 {
        Response::Event {
            incident: Some(id), ..
        } => id,
        other => panic!("{other:?}"),
    }
}

fn resolve(log: &mut Log, at: u64, incident: u64) {
    let r = log.apply(Command::Resolve {
        at,
        incident,
        by: "alice".into(),
    });
    assert_eq!(r.0, Response::Incident { id: incident });
}

fn compact(log: &mut Log, at: u64, resolved_before: u64) -> Response {
    log.apply(Command::Compact {
        at,
        resolved_before,
    })
    .0
}

#[test]
fn compact_forgets_only_incidents_resolved_before_the_cutoff() {
    let mut log = Log::with_doc(DOC, T0);
    let old = trigger(&mut log, T0, "a");
    let recent = trigger(&mut log, T0 + 1, "b");
    let open = trigger(&mut log, T0 + 2, "c");
    resolve(&mut log, T0 + HOUR, old);
    resolve(&mut log, T0 + 5 * HOUR, recent);
    let old_deliveries = log.state.incidents[&old].deliveries.clone();
    assert!(!old_deliveries.is_empty(), "the old incident paged");

    assert!(log.state.has_resolved_before(T0 + 2 * HOUR));
    let r = compact(&mut log, T0 + 6 * HOUR, T0 + 2 * HOUR);
    assert_eq!(
        r,
        Response::Compacted {
            incidents: 1,
            deliveries: old_deliveries.len() as u64
        }
    );
    assert!(!log.state.incidents.contains_key(&old));
    assert!(old_deliveries
        .iter()
        .all(|d| !log.state.deliveries.contains_key(d)));
    assert!(log.state.incidents.contains_key(&recent));
    assert!(log.state.incidents.contains_key(&open));
    assert!(!log.state.has_resolved_before(T0 + 2 * HOUR));

    // Again: nothing left to do.
    let r = compact(&mut log, T0 + 6 * HOUR, T0 + 2 * HOUR);
    assert_eq!(
        r,
        Response::Compacted {
            incidents: 0,
            deliveries: 0
        }
    );

    // The forgotten incident's key opens a new incident with a new id.
    let again = trigger(&mut log, T0 + 7 * HOUR, "a");
    assert!(again > open, "ids are never reused: {again}");

    // A later cutoff takes the other resolved one; the open ones stay.
    compact(&mut log, T0 + 8 * HOUR, T0 + 8 * HOUR);
    let left: Vec<u64> = log.state.incidents.keys().copied().collect();
    assert_eq!(left, vec![open, again]);
}
