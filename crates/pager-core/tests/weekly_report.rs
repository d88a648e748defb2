//! A team's weekly page review email: planned on the team's day and time in
//! its zone (DST-correct), one delivery per address of no user, covering the
//! seven whole UTC days before, rendered from the roll-ups when sent; planned
//! again after it goes out and whenever the document changes, and sent once
//! (not once per missed week) by a cluster that was down.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::delivery::Purpose;
use pager_core::oncall::WeeklyReport;
use pager_core::schedule::{Day, Zone};
use pager_core::state::next_weekly;
use pager_core::timer::Timer;
use pager_core::{ContactKind, DeliveryStatus, Event, EventAction, OnCallDoc, SendResult};

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[teams.database]
members = ["alice"]
[teams.database.weekly_report]
to = ["db-leads@example.com", "cto@example.com"]
day = "mon"
at = "09:00"
time_zone = "Europe/Berlin"
[escalation_policies.p]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
team = "database"
"#;

/// 2026-12-01T06:00:00Z, a Tuesday.
const T0: u64 = 1_796_104_800_000;
const H: u64 = 3_600_000;
const DAY: u64 = 24 * H;
/// Monday 2026-12-07 09:00 in Berlin (CET, UTC+1).
const MONDAY: u64 = T0 + 6 * DAY + 2 * H;

fn reports(log: &Log) -> Vec<(u64, String, Purpose)> {
    log.state
        .deliveries
        .values()
        .filter(|d| matches!(d.purpose, Purpose::WeeklyReport { .. }))
        .map(|d| (d.created_at, d.address.clone(), d.purpose.clone()))
        .collect()
}

fn planned(log: &Log) -> Option<u64> {
    log.state.weekly_reports.get("database").map(|k| k.at)
}

fn incident(log: &mut Log, at: u64, key: &str) {
    let mut trigger = Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: "db-key-0001".into(),
            action: EventAction::Trigger,
            dedup_key: key.into(),
            summary: format!("{key} on db1"),
            ..Default::default()
        }),
    };
    trigger.stamp(at);
    log.apply(trigger);
}

/// The provider took every page claimed so far.
fn send_all(log: &mut Log, at: u64) {
    let pending: Vec<(u64, u32)> = log
        .state
        .deliveries
        .values()
        .filter(|d| d.status == DeliveryStatus::Pending && d.purpose.is_page())
        .map(|d| (d.id, d.attempt))
        .collect();
    for (delivery, attempt) in pending {
        log.apply(Command::Outcome {
            at,
            delivery,
            attempt,
            result: SendResult::Sent {
                provider_id: format!("SM{delivery}"),
                reconciled: false,
            },
        });
    }
}

#[test]
fn the_weekly_report_goes_to_each_address_on_the_teams_day_with_last_weeks_figures() {
    let mut log = Log::with_doc(DOC, T0);
    assert_eq!(planned(&log), Some(MONDAY), "Monday 09:00 in Berlin");

    // The week: two incidents, each paged; one acknowledged after 2 minutes
    // and resolved, the other acknowledged after an hour and left open.
    incident(&mut log, T0 + H, "disk");
    log.apply(Command::Tick { at: T0 + H });
    send_all(&mut log, T0 + H + 1_000);
    let (r, _) = log.apply(Command::Acknowledge {
        at: T0 + H + 120_000,
        incident: 1,
        by: "alice".into(),
    });
    assert!(matches!(r, Response::Incident { .. }), "{r:?}");
    incident(&mut log, T0 + 2 * H, "latency");
    log.apply(Command::Tick { at: T0 + 2 * H });
    send_all(&mut log, T0 + 2 * H + 1_000);
    let (r, _) = log.apply(Command::Resolve {
        at: T0 + 3 * H,
        incident: 1,
        by: "alice".into(),
    });
    assert!(matches!(r, Response::Incident { .. }), "{r:?}");
    let (r, _) = log.apply(Command::Acknowledge {
        at: T0 + 3 * H,
        incident: 2,
        by: "alice".into(),
    });
    assert!(matches!(r, Response::Incident { .. }), "{r:?}");

    log.apply(Command::Tick { at: MONDAY - 1 });
    assert!(reports(&log).is_empty(), "not before its time");
    log.apply(Command::Tick { at: MONDAY });
    let sent = reports(&log);
    let week = Purpose::WeeklyReport {
        team: "database".into(),
        from: T0 - 6 * H - DAY, // Monday 2026-11-30 00:00 UTC
        to: T0 - 6 * H + 6 * DAY,
    };
    assert_eq!(
        sent,
        vec![
            (MONDAY, "db-leads@example.com".to_string(), week.clone()),
            (MONDAY, "cto@example.com".to_string(), week.clone()),
        ]
    );
    let d = log
        .state
        .deliveries
        .values()
        .find(|d| d.purpose == week)
        .expect("a report delivery");
    assert_eq!(d.user, "", "it goes to an address, not a user");
    assert_eq!(d.method, ContactKind::Email);
    assert_eq!(d.status, DeliveryStatus::Pending, "claimed, to be sent");

    let words = log
        .state
        .weekly_email(d, MONDAY, "https://pagerd.example.com/")
        .expect("a weekly report renders");
    assert_eq!(
        words.subject,
        "[pagerd] Weekly page review of database, 2026-11-30 to 2026-12-06"
    );
    for line in [
        "Incidents: 2 (1 still open)",
        "Pages: 2,",
        "Time to acknowledge: p50 2m 0s, p90 1h 0m",
        "Time to resolve: p50 2h 0m",
        "  db: 2 incident(s), 2 page(s)",
        "https://pagerd.example.com/reports?from=2026-11-30&to=2026-12-06&team=database",
    ] {
        assert!(words.text.contains(line), "{line:?} in:\n{}", words.text);
    }

    // The next one a week later; none twice.
    assert_eq!(planned(&log), Some(MONDAY + 7 * DAY));
    log.apply(Command::Tick { at: MONDAY + H });
    assert_eq!(reports(&log).len(), 2);
}

#[test]
fn a_cluster_down_for_weeks_sends_one_report_then_keeps_the_weekly_time() {
    let mut log = Log::with_doc(DOC, T0);
    let late = MONDAY + 20 * DAY + 5 * H;
    log.apply(Command::Tick { at: late });
    let sent = reports(&log);
    assert_eq!(
        sent.len(),
        2,
        "one report per address, not one per week missed"
    );
    // It is the report of the week before the day it was due.
    assert!(matches!(&sent[0].2, Purpose::WeeklyReport { to, .. } if *to == MONDAY - 8 * H));
    // The next is the first Monday 09:00 after now: 2026-12-28 (still CET).
    assert_eq!(planned(&log), Some(MONDAY + 21 * DAY));
}

#[test]
fn a_document_change_replans_or_removes_the_report() {
    let mut log = Log::with_doc(DOC, T0);
    let friday = DOC.replace("day = \"mon\"", "day = \"fri\"");
    let doc = OnCallDoc::from_toml(&friday).expect("parses");
    let (r, _) = log.apply(Command::ApplyConfig {
        at: T0 + H,
        doc: Box::new(doc),
    });
    assert_eq!(r, Response::ConfigApplied { version: 2 });
    // Friday 2026-12-04 09:00 CET.
    assert_eq!(planned(&log), Some(MONDAY - 3 * DAY));
    let timers: Vec<_> = log
        .state
        .timers
        .iter()
        .filter(|(_, t)| matches!(t, Timer::WeeklyReport { .. }))
        .collect();
    assert_eq!(timers.len(), 1, "the Monday timer went: {timers:?}");

    let start = DOC.find("[teams.database.weekly_report]").expect("section");
    let end = DOC.find("[escalation_policies.p]").expect("next section");
    let without = format!("{}{}", &DOC[..start], &DOC[end..]);
    let doc = OnCallDoc::from_toml(&without).expect("parses");
    let (r, _) = log.apply(Command::ApplyConfig {
        at: T0 + 2 * H,
        doc: Box::new(doc),
    });
    assert_eq!(r, Response::ConfigApplied { version: 3 });
    assert_eq!(planned(&log), None);
    log.apply(Command::Tick { at: MONDAY + DAY });
    assert!(reports(&log).is_empty());
}

#[test]
fn the_time_follows_the_zone_across_daylight_saving() {
    let w = WeeklyReport {
        to: vec!["a@example.com".into()],
        day: Day::Mon,
        at: jiff::civil::Time::constant(9, 0, 0, 0),
        time_zone: Zone::new("Europe/Berlin"),
    };
    // Sunday 2026-03-29 is the change to CEST: Monday 09:00 is 07:00 UTC.
    let saturday = 1_774_656_000_000; // 2026-03-28T00:00:00Z
    assert_eq!(next_weekly(&w, saturday), Some(1_774_854_000_000)); // 2026-03-30T07:00Z
                                                                    // The week before, 08:00 UTC.
    assert_eq!(
        next_weekly(&w, saturday - 7 * DAY),
        Some(1_774_854_000_000 - 7 * DAY + H)
    );
    // Exactly at the time: the next week's.
    assert_eq!(
        next_weekly(&w, 1_774_854_000_000),
        Some(1_774_854_000_000 + 7 * DAY)
    );
}

#[test]
fn a_bad_weekly_report_names_the_field() {
    let bad = DOC
        .replace("\"cto@example.com\"", "\"cto at example\"")
        .replace("Europe/Berlin", "Europe/Atlantis");
    let doc = OnCallDoc::from_toml(&bad).expect("parses");
    let problems: Vec<String> = doc.validate().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        vec![
            "teams.database.weekly_report.time_zone: unknown time zone \"Europe/Atlantis\""
                .to_string(),
            "teams.database.weekly_report.to[1]: \"cto at example\" is not an email address"
                .to_string(),
        ]
    );
    let empty = DOC.replace(
        "to = [\"db-leads@example.com\", \"cto@example.com\"]",
        "to = []",
    );
    let doc = OnCallDoc::from_toml(&empty).expect("parses");
    let problems: Vec<String> = doc.validate().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        problems,
        vec!["teams.database.weekly_report.to: at least one address".to_string()]
    );
    let typo = DOC.replace("day = \"mon\"", "day = \"monday\"");
    assert!(
        OnCallDoc::from_toml(&typo).is_err(),
        "an unknown day is refused"
    );
}
