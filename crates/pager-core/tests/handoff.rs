//! Shift handoffs: a reminder an hour before a shift (not for a user who
//! opted out), a summary to whoever takes over (what is open, what paged the
//! outgoing shift, the notes left for them, overrides coming up), and an
//! email to the people whose shifts an override moves. Timers as data,
//! planned again on every document change.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::delivery::Purpose;
use pager_core::schedule::Override;
use pager_core::{Event, EventAction, Rejection};

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[users.bob]
email = "bob@example.com"
shift_reminders = false
contact_methods = [ { name = "m", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[users.carol]
email = "carol@example.com"
contact_methods = [ { name = "m", type = "sms", address = "+15550000003" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[schedules.primary]
time_zone = "UTC"
[[schedules.primary.layers]]
name = "daily"
start = "2026-12-01T09:00:00"
rotation = "daily"
users = ["alice", "bob"]
[escalation_policies.p]
levels = [ { escalate_after = "30m", targets = [ { schedule = "primary" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

/// 2026-12-01T06:00:00Z; alice's first shift starts at 09:00, bob's a day later.
const T0: u64 = 1_796_104_800_000;
const H: u64 = 3_600_000;

/// The shift emails queued so far: (user, purpose).
fn shift_mail(log: &Log) -> Vec<(String, Purpose)> {
    log.state
        .deliveries
        .values()
        .filter(|d| {
            matches!(
                d.purpose,
                Purpose::Handoff { .. }
                    | Purpose::ShiftReminder { .. }
                    | Purpose::ShiftsMoved { .. }
            )
        })
        .map(|d| (d.user.clone(), d.purpose.clone()))
        .collect()
}

#[test]
fn handoffs_go_to_the_incoming_on_call_with_what_they_need() {
    let mut log = Log::with_doc(DOC, T0);
    assert!(
        shift_mail(&log).is_empty(),
        "the first document moves nobody's shifts"
    );
    let plan = &log.state.handoffs["primary"];
    assert_eq!(
        plan.next.map(|n| n.0),
        Some(T0 + 3 * H),
        "alice comes on at 09:00"
    );

    // 08:00: alice's reminder; 09:00: her handoff (from nobody).
    log.apply(Command::Tick { at: T0 + 2 * H });
    log.apply(Command::Tick { at: T0 + 3 * H });
    let mail = shift_mail(&log);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert_eq!(
        mail[0],
        (
            "alice".to_string(),
            Purpose::ShiftReminder {
                schedule: "primary".into(),
                starts: T0 + 3 * H
            }
        )
    );
    assert!(
        matches!(&mail[1], (u, Purpose::Handoff { outgoing, .. }) if u == "alice" && outgoing.is_empty())
    );

    // During alice's shift: an incident pages her; she leaves a note.
    let mut trigger = Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: "db-key-0001".into(),
            action: EventAction::Trigger,
            dedup_key: "disk".into(),
            summary: "disk 85% on db1".into(),
            ..Default::default()
        }),
    };
    trigger.stamp(T0 + 4 * H);
    log.apply(trigger);
    let (r, _) = log.apply(Command::HandoffNote {
        at: T0 + 14 * H,
        schedule: "primary".into(),
        text: "db1's disk is filling: #1 stays open until the cleanup job runs".into(),
        by: "alice".into(),
    });
    assert_eq!(r, Response::Noop);

    // Next day 08:00: no reminder for bob (he opted out); 09:00: his handoff.
    log.apply(Command::Tick { at: T0 + 26 * H });
    assert_eq!(shift_mail(&log).len(), 2, "bob turned reminders off");
    log.apply(Command::Tick { at: T0 + 27 * H });
    let mail = shift_mail(&log);
    assert_eq!(mail.len(), 3);
    let (to, purpose) = &mail[2];
    assert_eq!(to, "bob");
    let Purpose::Handoff {
        outgoing,
        from,
        to: until,
        notes,
        ..
    } = purpose
    else {
        panic!("{purpose:?}");
    };
    assert_eq!(outgoing, "alice");
    assert_eq!(
        (*from, *until),
        (T0 + 3 * H, T0 + 27 * H),
        "alice's whole shift"
    );
    assert_eq!(notes.len(), 1);
    assert!(
        log.state.handoffs["primary"].notes.is_empty(),
        "the notes went with it"
    );
    let d = log
        .state
        .deliveries
        .values()
        .find(|d| d.user == "bob" && matches!(d.purpose, Purpose::Handoff { .. }))
        .expect("bob's handoff");
    let words = log.state.shift_email(d).expect("its words");
    assert!(
        words.subject.contains("on call for primary"),
        "{}",
        words.subject
    );
    for part in [
        "taking over from alice",
        "Still open (1)",
        "#1 triggered db: disk 85% on db1",
        "Pages to alice during the shift (1 incident(s)",
        "db1's disk is filling",
    ] {
        assert!(
            words.text.contains(part),
            "{part:?} missing from:\n{}",
            words.text
        );
    }
}

#[test]
fn an_override_tells_the_people_whose_shifts_move_and_replans_the_handoff() {
    let mut log = Log::with_doc(DOC, T0);
    let (r, _) = log.apply(Command::AddOverride {
        at: T0 + H,
        schedule: "primary".into(),
        over: Override {
            user: "carol".into(),
            replaces: Some("alice".into()),
            start: T0 + 5 * H,
            end: T0 + 8 * H,
        },
        by: "alice".into(),
    });
    assert!(matches!(r, Response::ConfigApplied { .. }), "{r:?}");
    let told: Vec<String> = shift_mail(&log)
        .into_iter()
        .filter(|(_, p)| matches!(p, Purpose::ShiftsMoved { .. }))
        .map(|(u, _)| u)
        .collect();
    assert_eq!(told, ["alice", "carol"], "bob's shifts did not move");
    let d = log
        .state
        .deliveries
        .values()
        .find(|d| d.user == "carol")
        .expect("carol's email");
    let words = log.state.shift_email(d).expect("its words");
    assert!(
        words
            .text
            .contains("primary: 2026-12-01T11:00:00Z to 2026-12-01T14:00:00Z"),
        "{}",
        words.text
    );
    // The handoffs now follow the override: alice at 09:00, carol at 11:00, alice at 14:00.
    log.apply(Command::Tick { at: T0 + 3 * H });
    assert_eq!(
        log.state.handoffs["primary"].next.map(|n| n.0),
        Some(T0 + 5 * H)
    );
    log.apply(Command::Tick { at: T0 + 5 * H });
    assert_eq!(
        log.state.handoffs["primary"].next.map(|n| n.0),
        Some(T0 + 8 * H)
    );
    let handoffs: Vec<String> = shift_mail(&log)
        .into_iter()
        .filter(|(_, p)| matches!(p, Purpose::Handoff { .. }))
        .map(|(u, _)| u)
        .collect();
    assert_eq!(handoffs, ["alice", "carol"]);
}

#[test]
fn bad_notes_are_refused_naming_the_field() {
    let mut log = Log::with_doc(DOC, T0);
    let note = |schedule: &str, text: &str| Command::HandoffNote {
        at: T0,
        schedule: schedule.into(),
        text: text.into(),
        by: "alice".into(),
    };
    match log.apply(note("primary", "  ")).0 {
        Response::Rejected(Rejection::Invalid { field, .. }) => assert_eq!(field, "text"),
        other => panic!("{other:?}"),
    }
    match log.apply(note("nope", "hello")).0 {
        Response::Rejected(Rejection::NotFound { field, .. }) => assert_eq!(field, "schedule"),
        other => panic!("{other:?}"),
    }
    for i in 0..20 {
        assert_eq!(
            log.apply(note("primary", &format!("note {i}"))).0,
            Response::Noop
        );
    }
    match log.apply(note("primary", "one too many")).0 {
        Response::Rejected(Rejection::Invalid { field, reason }) => {
            assert_eq!(field, "text");
            assert!(reason.contains("20 notes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
