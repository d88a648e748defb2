//! `State::changed_since`, which watchers ask after every applied batch,
//! answers from a bounded list of recent changes: it must give exactly what
//! a scan of every incident gives, for every revision, while the list
//! forgets old changes, after compaction, and after a restore (when the list
//! starts empty and the answer comes from the scan until the next entry).

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::{Event, EventAction, State};

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[users.bob]
contact_methods = [ { name = "m", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[escalation_policies.p]
levels = [
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
  { escalate_after = "5m", targets = [ { user = "bob" } ] },
]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;

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

/// Ids changed after `revision`, as the state answers and as a scan does.
fn both(state: &State, revision: u64) -> (Vec<u64>, Vec<u64>) {
    let listed = state.changed_since(revision).iter().map(|i| i.id).collect();
    let mut scanned: Vec<_> = state
        .incidents
        .values()
        .filter(|i| i.revision > revision)
        .map(|i| (i.revision, i.id))
        .collect();
    scanned.sort();
    (listed, scanned.into_iter().map(|(_, id)| id).collect())
}

fn agree_everywhere(log: &Log) {
    for r in 0..=log.index + 1 {
        let (listed, scanned) = both(&log.state, r);
        assert_eq!(listed, scanned, "changed since {r} at index {}", log.index);
    }
}

/// Triggers, folds, acknowledgements, escalations by tick, resolves and a
/// compaction, checking every revision after every step.
fn exercise(log: &mut Log) {
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(trigger(log, T0 + n, &format!("k{n}")));
        agree_everywhere(log);
    }
    // A trigger with a dedup key already open changes that incident.
    trigger(log, T0 + 20, "k3");
    agree_everywhere(log);
    for &id in ids.iter().step_by(3) {
        log.apply(Command::Acknowledge {
            at: T0 + 30,
            incident: id,
            by: "alice".into(),
        });
        agree_everywhere(log);
    }
    // One tick escalates every unacknowledged incident: one entry, many changes.
    log.apply(Command::Tick { at: T0 + 6 * MIN });
    agree_everywhere(log);
    for &id in &ids[..6] {
        log.apply(Command::Resolve {
            at: T0 + 7 * MIN,
            incident: id,
            by: "bob".into(),
        });
        agree_everywhere(log);
    }
    log.apply(Command::Compact {
        at: T0 + 8 * MIN,
        resolved_before: T0 + 8 * MIN,
    });
    agree_everywhere(log);
    assert_eq!(log.state.incidents.len(), 6, "the resolved six compacted");
    trigger(log, T0 + 9 * MIN, "after-compaction");
    agree_everywhere(log);
}

#[test]
fn changed_since_answers_as_a_scan_does_with_the_default_memory() {
    let mut log = Log::with_doc(DOC, T0);
    exercise(&mut log);
}

#[test]
fn changed_since_answers_as_a_scan_does_while_old_changes_are_forgotten() {
    let mut log = Log::with_doc(DOC, T0);
    // Fewer than one tick's changes: the list keeps at least that whole entry.
    log.state.incidents.remember_changes(3);
    exercise(&mut log);
}

#[test]
fn changed_since_answers_as_a_scan_does_after_a_restore() {
    let mut log = Log::with_doc(DOC, T0);
    for n in 0..5 {
        trigger(&mut log, T0 + n, &format!("k{n}"));
    }
    let json = serde_json::to_vec(&log.state).expect("state serializes");
    log.state = serde_json::from_slice(&json).expect("state deserializes");
    // Before any entry is applied the change list is empty: the scan answers.
    agree_everywhere(&log);
    exercise(&mut log);
}
