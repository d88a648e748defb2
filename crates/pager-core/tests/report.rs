//! Page review reports against a hand-computed fixture: MTTA and MTTR p50 and
//! p90 (nearest rank), pages by team and service, off-hours pages and night
//! wake-ups by the paged person's zone, escalations, SLA breaches, the
//! noisiest alerts with how they ended; the figures survive compaction; bad
//! ranges are refused naming the field.

mod common;

use common::Log;
use pager_core::command::{Command, Response, SendResult};
use pager_core::report::{AlertCount, Count};
use pager_core::{Event, EventAction, IncidentId};

const DOC: &str = r#"
[users.alice]
time_zone = "UTC"
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[users.bob]
time_zone = "America/New_York"
contact_methods = [ { name = "m", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[teams.db]
members = ["alice", "bob"]
[escalation_policies.p]
levels = [
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
  { escalate_after = "5m", targets = [ { user = "bob" } ] },
]
[tiers.one]
ack_sla = "5m"
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
team = "db"
tier = "one"
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
"#;

/// Monday 2026-11-30 10:00 UTC: working hours for alice (UTC), 05:00 for bob.
const T0: u64 = 1_796_032_800_000;
const S: u64 = 1_000;
const DAY: u64 = 86_400_000;
/// The day T0 is in, from its midnight (UTC).
const D0: u64 = T0 - 10 * 3_600_000;

fn event(
    log: &mut Log,
    at: u64,
    key: &str,
    dedup: &str,
    summary: &str,
    action: EventAction,
) -> Option<IncidentId> {
    let mut cmd = Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: key.into(),
            action,
            dedup_key: dedup.into(),
            summary: summary.into(),
            source: "monitor".into(),
            ..Default::default()
        }),
    };
    cmd.stamp(at);
    match log.apply(cmd).0 {
        Response::Event { incident, .. } => incident,
        other => panic!("{other:?}"),
    }
}

fn trigger(log: &mut Log, at: u64, key: &str, dedup: &str, summary: &str) -> IncidentId {
    let id = event(log, at, key, dedup, summary, EventAction::Trigger).expect("an incident");
    sent(log, at);
    id
}

/// Every pending page goes out (the provider accepts it).
fn sent(log: &mut Log, at: u64) {
    let pending: Vec<u64> = log.state.pending_deliveries().map(|d| d.id).collect();
    for d in pending {
        log.apply(Command::Outcome {
            at,
            delivery: d,
            attempt: 1,
            result: SendResult::Sent {
                provider_id: format!("SM{d}"),
                reconciled: false,
            },
        });
    }
}

fn act(log: &mut Log, cmd: Command) {
    let r = log.apply(cmd).0;
    assert!(matches!(r, Response::Incident { .. }), "{r:?}");
}

fn ack(log: &mut Log, at: u64, id: IncidentId, by: &str) {
    act(
        log,
        Command::Acknowledge {
            at,
            incident: id,
            by: by.into(),
        },
    );
}

fn resolve(log: &mut Log, at: u64, id: IncidentId) {
    act(
        log,
        Command::Resolve {
            at,
            incident: id,
            by: "alice".into(),
        },
    );
}

/// The fixture: five incidents resolved, one open (instants only move forward:
/// the state's clock never runs backwards).
fn fixture() -> Log {
    let mut log = Log::with_doc(DOC, T0);
    // tta 60 s, ttr 600 s
    let i1 = trigger(&mut log, T0, "db-key-0001", "a", "disk full");
    ack(&mut log, T0 + 60 * S, i1, "alice");
    resolve(&mut log, T0 + 600 * S, i1);
    // tta 180, ttr 900 (the same alert again)
    let i2 = trigger(&mut log, T0 + 1000 * S, "db-key-0001", "b", "disk full");
    ack(&mut log, T0 + 1180 * S, i2, "alice");
    resolve(&mut log, T0 + 1900 * S, i2);
    // Escalates to bob at +300 s (05:38 in New York: off hours, a night
    // wake-up); bob acknowledges at +400 s: tta 400, over the 5m SLA; ttr 3000.
    let i3 = trigger(&mut log, T0 + 2000 * S, "db-key-0001", "c", "cpu high");
    log.apply(Command::Tick { at: T0 + 2300 * S });
    sent(&mut log, T0 + 2300 * S);
    ack(&mut log, T0 + 2400 * S, i3, "bob (sms)");
    resolve(&mut log, T0 + 5000 * S, i3);
    // Resolved by its monitor 30 s later, nobody acknowledged: ttr 30.
    trigger(&mut log, T0 + 5100 * S, "web-key-0001", "f1", "flap");
    event(
        &mut log,
        T0 + 5130 * S,
        "web-key-0001",
        "f1",
        "flap",
        EventAction::Resolve,
    );
    // Snoozed (which acknowledges) 10 s in: tta 10, ttr 100.
    let i5 = trigger(&mut log, T0 + 6000 * S, "web-key-0001", "f2", "flap");
    act(
        &mut log,
        Command::Snooze {
            at: T0 + 6010 * S,
            incident: i5,
            until: T0 + 9000 * S,
            by: "alice".into(),
        },
    );
    resolve(&mut log, T0 + 6100 * S, i5);
    // Still open.
    trigger(&mut log, T0 + 7000 * S, "db-key-0001", "d", "new one");
    log
}

fn count(name: &str, incidents: u32, pages: u32) -> Count {
    Count {
        name: name.into(),
        incidents,
        pages,
    }
}

#[test]
fn a_report_matches_the_hand_computed_figures() {
    let log = fixture();
    let r = log
        .state
        .report(D0 + 1, D0 + DAY, "", "", T0 + 8000 * S)
        .expect("a report");
    assert_eq!(
        (r.from, r.to),
        (T0 - 10 * 3600 * S, T0 - 10 * 3600 * S + DAY),
        "whole UTC days"
    );
    assert_eq!((r.incidents, r.open), (6, 1));
    // TTA [60, 180, 400, 10] -> sorted [10, 60, 180, 400]: p50 rank 2, p90 rank 4.
    assert_eq!((r.mtta_p50_s, r.mtta_p90_s), (Some(60), Some(400)));
    // TTR [600, 900, 3000, 30, 100] -> [30, 100, 600, 900, 3000]: ranks 3 and 5.
    assert_eq!((r.mttr_p50_s, r.mttr_p90_s), (Some(600), Some(3000)));
    // Pages: one each, two for the escalated one.
    assert_eq!(r.pages, 7);
    assert_eq!(r.off_hours_pages, 1, "bob's page at 05:38 New York time");
    assert_eq!(r.night_wakeups, vec![count("bob", 1, 1)]);
    assert_eq!((r.escalated, r.sla_breaches), (1, 1));
    assert_eq!(r.by_team, vec![count("db", 4, 5), count("(no team)", 2, 2)]);
    assert_eq!(r.by_service, vec![count("db", 4, 5), count("web", 2, 2)]);
    let noisy: Vec<(&str, &str, AlertCount)> = r
        .noisiest
        .iter()
        .map(|a| (a.service.as_str(), a.alert.as_str(), a.counts))
        .collect();
    let c = |incidents, auto_resolved, unacknowledged, snoozed| AlertCount {
        incidents,
        auto_resolved,
        unacknowledged,
        snoozed,
    };
    assert_eq!(
        noisy,
        vec![
            ("db", "disk full", c(2, 0, 0, 0)),
            ("web", "flap", c(2, 1, 1, 1)),
            ("db", "cpu high", c(1, 0, 0, 0)),
            // Open: not acknowledged, which counts only once it resolves.
            ("db", "new one", c(1, 0, 1, 0)),
        ]
    );
    assert_eq!(
        (r.open_rcas, r.overdue_rcas),
        (6, 0),
        "optional RCAs, none done"
    );

    let db = log.state.report(D0, D0 + DAY, "db", "", T0).unwrap();
    assert_eq!((db.incidents, db.pages, db.open), (4, 5, 1));
    let web = log.state.report(D0, D0 + DAY, "", "web", T0).unwrap();
    assert_eq!((web.incidents, web.mttr_p50_s), (2, Some(30)));
    let next_day = log
        .state
        .report(D0 + DAY, D0 + 2 * DAY, "", "", T0)
        .unwrap();
    assert_eq!(next_day.incidents, 0);
}

#[test]
fn figures_survive_compaction() {
    let mut log = fixture();
    let before = log.state.report(D0, D0 + DAY, "", "", T0).unwrap();
    let r = log
        .apply(Command::Compact {
            at: T0 + 100 * DAY,
            resolved_before: T0 + 90 * DAY,
        })
        .0;
    assert!(
        matches!(r, Response::Compacted { incidents: 5, .. }),
        "{r:?}"
    );
    let after = log.state.report(D0, D0 + DAY, "", "", T0).unwrap();
    assert_eq!(after, before);
}

#[test]
fn bad_ranges_are_refused_naming_the_field() {
    let log = fixture();
    assert_eq!(log.state.report(D0, D0, "", "", T0).unwrap_err().0, "to");
    assert_eq!(
        log.state
            .report(D0, D0 + 500 * DAY, "", "", T0)
            .unwrap_err()
            .0,
        "from"
    );
    assert_eq!(
        log.state
            .report(D0, D0 + DAY, "nope", "", T0)
            .unwrap_err()
            .0,
        "team"
    );
}
