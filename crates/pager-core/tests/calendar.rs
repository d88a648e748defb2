//! Calendar feeds (RFC 5545) read back by an independent parser (the `ical`
//! crate): a daily 08:00 New York rotation across the March DST change keeps
//! its wall-clock handoff (13:00Z before, 12:00Z after, a 23-hour shift
//! between), an override shows as its own shift, a user's feed holds only
//! their shifts, and rotating a feed moves its version.

mod common;

use common::Log;
use pager_core::command::{CalendarSubject, Command, Response};
use pager_core::ical::{feed, FeedShift};
use std::io::BufReader;

const DOC: &str = r#"
[users.alice]
[users.bob]
[users.carol]
[schedules.primary]
time_zone = "America/New_York"
[[schedules.primary.layers]]
name = "daily"
start = "2027-03-10T08:00:00"
rotation = "daily"
users = ["alice", "bob"]
[[schedules.primary.overrides]]
user = "carol"
replaces = "bob"
start = "2027-03-15T12:00:00Z"
end = "2027-03-15T18:00:00Z"
"#;

/// 2027-03-12T00:00:00Z and 2027-03-17T00:00:00Z.
const FROM: u64 = 1_804_809_600_000;
const TO: u64 = FROM + 5 * 86_400_000;

/// (DTSTART, DTEND, SUMMARY) of every event, as the parser reads them.
fn events(text: &str) -> Vec<(String, String, String)> {
    let mut parser = ical::IcalParser::new(BufReader::new(text.as_bytes()));
    let cal = parser
        .next()
        .expect("one calendar")
        .expect("the feed parses");
    assert!(parser.next().is_none(), "exactly one calendar");
    let prop = |e: &ical::parser::ical::component::IcalEvent, name: &str| {
        e.properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| panic!("event without {name}"))
    };
    for e in &cal.events {
        for name in ["UID", "DTSTAMP"] {
            prop(e, name);
        }
    }
    cal.events
        .iter()
        .map(|e| (prop(e, "DTSTART"), prop(e, "DTEND"), prop(e, "SUMMARY")))
        .collect()
}

fn feed_of(log: &Log, subject: &CalendarSubject) -> String {
    let shifts = log
        .state
        .calendar_shifts(subject, FROM, TO)
        .expect("a known subject");
    let feed_shifts: Vec<FeedShift<'_>> = shifts
        .iter()
        .map(|(schedule, shift)| FeedShift { schedule, shift })
        .collect();
    feed("test", &feed_shifts, FROM)
}

#[test]
fn a_schedule_feed_keeps_wall_clock_handoffs_across_dst_and_shows_overrides() {
    let log = Log::with_doc(DOC, FROM);
    let text = feed_of(&log, &CalendarSubject::Schedule("primary".into()));
    assert!(text.contains("\r\n"), "lines end in CRLF");
    let got = events(&text);
    let want: Vec<(&str, &str, &str)> = vec![
        // Cut at the window's start; EST: 08:00 is 13:00Z.
        (
            "20270312T000000Z",
            "20270312T130000Z",
            "On call: primary (bob)",
        ),
        (
            "20270312T130000Z",
            "20270313T130000Z",
            "On call: primary (alice)",
        ),
        // Across the change (2027-03-14 02:00 EST -> 03:00 EDT): 23 hours.
        (
            "20270313T130000Z",
            "20270314T120000Z",
            "On call: primary (bob)",
        ),
        (
            "20270314T120000Z",
            "20270315T120000Z",
            "On call: primary (alice)",
        ),
        // Bob's next day, with carol's override in its first six hours.
        (
            "20270315T120000Z",
            "20270315T180000Z",
            "On call: primary (carol)",
        ),
        (
            "20270315T180000Z",
            "20270316T120000Z",
            "On call: primary (bob)",
        ),
        (
            "20270316T120000Z",
            "20270317T000000Z",
            "On call: primary (alice)",
        ),
    ];
    let got: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_users_feed_holds_only_their_shifts() {
    let log = Log::with_doc(DOC, FROM);
    let got = events(&feed_of(&log, &CalendarSubject::User("carol".into())));
    assert_eq!(
        got,
        vec![(
            "20270315T120000Z".to_string(),
            "20270315T180000Z".to_string(),
            "On call: primary (carol)".to_string()
        )]
    );
    assert!(log
        .state
        .calendar_shifts(&CalendarSubject::User("nobody".into()), FROM, TO)
        .is_none());
}

#[test]
fn rotating_a_feed_moves_its_version_and_unknown_subjects_are_refused() {
    let mut log = Log::with_doc(DOC, FROM);
    let alice = CalendarSubject::User("alice".into());
    assert_eq!(log.state.calendar_version(&alice), 0);
    let (r, _) = log.apply(Command::RotateCalendar {
        at: FROM,
        subject: alice.clone(),
        by: "alice".into(),
    });
    assert_eq!(r, Response::Noop);
    assert_eq!(log.state.calendar_version(&alice), log.index);
    let (r, _) = log.apply(Command::RotateCalendar {
        at: FROM,
        subject: CalendarSubject::Schedule("nope".into()),
        by: "alice".into(),
    });
    match r {
        Response::Rejected(pager_core::Rejection::NotFound { field, .. }) => {
            assert_eq!(field, "schedule")
        }
        other => panic!("{other:?}"),
    }
}
