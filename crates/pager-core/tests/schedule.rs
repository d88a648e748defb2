//! On-call schedules: exact answers for hand-built cases, validation, and the
//! document's round trip.

use jiff::civil::{datetime, time};
use jiff::tz::TimeZoneDatabase;
use pager_core::oncall::Problem;
use pager_core::schedule::{
    Day, Layer, OnCall, Override, Restriction, Rotation, Schedule, Shift, Zone,
};
use pager_core::{Millis, Span};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schedules` table of an on-call document.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    schedules: BTreeMap<String, Schedule>,
}

fn parse(text: &str) -> Doc {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The instant a wall-clock time happens in `zone`.
fn at(zone: &str, civil: &str) -> Millis {
    let tz = TimeZoneDatabase::bundled().get(zone).unwrap();
    let dt: jiff::civil::DateTime = civil.parse().unwrap();
    dt.to_zoned(tz).unwrap().timestamp().as_millisecond() as Millis
}

fn ny(civil: &str) -> Millis {
    at("America/New_York", civil)
}

fn shift(user: &str, start: Millis, end: Millis, layer: Option<&str>) -> Shift {
    Shift {
        user: user.into(),
        start,
        end,
        layer: layer.map(String::from),
    }
}

fn on_call(users: &[&str], shadows: &[&str], until: Option<Millis>) -> OnCall {
    OnCall {
        users: users.iter().map(|s| s.to_string()).collect(),
        shadows: shadows.iter().map(|s| s.to_string()).collect(),
        until,
    }
}

const HOUR: Millis = 3_600_000;

/// The seeds' triage rotation: business hours Mon-Fri 08:00-20:00 over a
/// 24/7 volunteer rotation, a trainee shadowing, and cover for a weekend.
const TRIAGE: &str = r#"
[schedules.triage]
description = "Engineering triage"
time_zone = "America/New_York"

[[schedules.triage.layers]]
name = "volunteers"
start = "2026-01-05T08:00:00"
rotation = "daily"
users = ["vic", "wen"]

[[schedules.triage.layers]]
name = "business-hours"
start = "2026-01-05T08:00:00"
rotation = "weekly"
users = ["alice", "bob", "carol"]
shadows = ["dave"]
restrictions = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00" } ]

[[schedules.triage.overrides]]
user = "erin"
replaces = "vic"
start = "2026-01-10T00:00:00-05:00"
end = "2026-01-12T05:00:00Z"
"#;

fn triage() -> Schedule {
    parse(TRIAGE).schedules.remove("triage").unwrap()
}

fn weekly_of_three() -> Schedule {
    Schedule {
        description: String::new(),
        time_zone: Zone::new("America/New_York"),
        layers: vec![Layer {
            name: "primary".into(),
            start: datetime(2026, 1, 5, 8, 0, 0, 0),
            rotation: Rotation::Weekly,
            handoff: None,
            end: None,
            users: vec!["alice".into(), "bob".into(), "carol".into()],
            shadows: vec![],
            restrictions: vec![],
        }],
        overrides: vec![],
        handoffs: None,
    }
}

#[test]
fn weekly_rotation_of_three() {
    let s = weekly_of_three();
    let week = |n: u64| ny("2026-01-05T08:00") + n * 7 * 24 * HOUR;
    assert_eq!(
        s.on_call_at(ny("2026-01-05T07:59")),
        on_call(&[], &[], Some(week(0)))
    );
    assert_eq!(
        s.on_call_at(week(0)),
        on_call(&["alice"], &[], Some(week(1)))
    );
    assert_eq!(
        s.on_call_at(week(1) - 1),
        on_call(&["alice"], &[], Some(week(1)))
    );
    assert_eq!(s.on_call_at(week(1)), on_call(&["bob"], &[], Some(week(2))));
    assert_eq!(
        s.on_call_at(week(2)),
        on_call(&["carol"], &[], Some(week(3)))
    );
    assert_eq!(
        s.on_call_at(week(3)),
        on_call(&["alice"], &[], Some(week(4)))
    );
    // Across the March DST change the handoff stays at Monday 08:00 local.
    assert_eq!(
        s.on_call_at(ny("2026-03-09T07:59")).until,
        Some(ny("2026-03-09T08:00"))
    );
    assert_eq!(
        s.shifts(week(0), week(3)),
        vec![
            shift("alice", week(0), week(1), Some("primary")),
            shift("bob", week(1), week(2), Some("primary")),
            shift("carol", week(2), week(3), Some("primary")),
        ]
    );
    assert_eq!(
        s.gaps(week(0) - HOUR, week(1)),
        vec![(week(0) - HOUR, week(0))]
    );
}

#[test]
fn daily_handoff_at_its_own_time() {
    // Starts at midnight, hands off at 09:00: alice's first turn runs to the
    // next day's 09:00.
    let mut s = weekly_of_three();
    s.layers[0].rotation = Rotation::Daily;
    s.layers[0].start = datetime(2026, 1, 5, 0, 0, 0, 0);
    s.layers[0].handoff = Some(time(9, 0, 0, 0));
    assert_eq!(
        s.shifts(ny("2026-01-04T00:00"), ny("2026-01-08T12:00")),
        vec![
            shift(
                "alice",
                ny("2026-01-05T00:00"),
                ny("2026-01-06T09:00"),
                Some("primary")
            ),
            shift(
                "bob",
                ny("2026-01-06T09:00"),
                ny("2026-01-07T09:00"),
                Some("primary")
            ),
            shift(
                "carol",
                ny("2026-01-07T09:00"),
                ny("2026-01-08T09:00"),
                Some("primary")
            ),
            shift(
                "alice",
                ny("2026-01-08T09:00"),
                ny("2026-01-08T12:00"),
                Some("primary")
            ),
        ]
    );
    // A layer that ends.
    s.layers[0].end = Some(datetime(2026, 1, 7, 12, 0, 0, 0));
    assert_eq!(
        s.on_call_at(ny("2026-01-07T11:00")),
        on_call(&["carol"], &[], Some(ny("2026-01-07T12:00")))
    );
    assert_eq!(
        s.on_call_at(ny("2026-01-07T12:00")),
        on_call(&[], &[], None)
    );
}

#[test]
fn triage_business_hours_over_volunteers_with_weekend_cover() {
    let s = triage();
    assert!(s.validate("schedules.triage", &|_| true).is_empty());
    // Friday: the business-hours rotation (week 0: alice) with dave shadowing.
    assert_eq!(
        s.on_call_at(ny("2026-01-09T10:00")),
        on_call(&["alice"], &["dave"], Some(ny("2026-01-09T20:00")))
    );
    // Friday night: the volunteers show through.
    assert_eq!(
        s.on_call_at(ny("2026-01-09T21:00")),
        on_call(&["vic"], &[], Some(ny("2026-01-10T00:00")))
    );
    // Saturday: erin covers vic, not wen.
    assert_eq!(
        s.on_call_at(ny("2026-01-10T03:00")),
        on_call(&["erin"], &[], Some(ny("2026-01-10T08:00")))
    );
    assert_eq!(
        s.shifts(ny("2026-01-09T00:00"), ny("2026-01-12T12:00")),
        vec![
            shift(
                "wen",
                ny("2026-01-09T00:00"),
                ny("2026-01-09T08:00"),
                Some("volunteers")
            ),
            shift(
                "alice",
                ny("2026-01-09T08:00"),
                ny("2026-01-09T20:00"),
                Some("business-hours")
            ),
            shift(
                "vic",
                ny("2026-01-09T20:00"),
                ny("2026-01-10T00:00"),
                Some("volunteers")
            ),
            shift("erin", ny("2026-01-10T00:00"), ny("2026-01-10T08:00"), None),
            shift(
                "wen",
                ny("2026-01-10T08:00"),
                ny("2026-01-11T08:00"),
                Some("volunteers")
            ),
            shift("erin", ny("2026-01-11T08:00"), ny("2026-01-12T00:00"), None),
            shift(
                "vic",
                ny("2026-01-12T00:00"),
                ny("2026-01-12T08:00"),
                Some("volunteers")
            ),
            shift(
                "bob",
                ny("2026-01-12T08:00"),
                ny("2026-01-12T12:00"),
                Some("business-hours")
            ),
        ]
    );
    assert!(s
        .gaps(ny("2026-01-05T08:00"), ny("2026-03-01T00:00"))
        .is_empty());
    // Before the rotations start there is nobody.
    assert_eq!(
        s.gaps(ny("2026-01-05T00:00"), ny("2026-01-06T00:00")),
        vec![(ny("2026-01-05T00:00"), ny("2026-01-05T08:00"))]
    );
}

#[test]
fn business_hours_alone_leave_nights_and_weekends_uncovered() {
    let mut s = triage();
    s.layers.remove(0);
    s.overrides.clear();
    let gaps = s.gaps(ny("2026-01-09T00:00"), ny("2026-01-13T00:00"));
    assert_eq!(
        gaps,
        vec![
            (ny("2026-01-09T00:00"), ny("2026-01-09T08:00")),
            (ny("2026-01-09T20:00"), ny("2026-01-12T08:00")),
            (ny("2026-01-12T20:00"), ny("2026-01-13T00:00")),
        ]
    );
    assert_eq!(
        s.on_call_at(ny("2026-01-10T12:00")),
        on_call(&[], &[], Some(ny("2026-01-12T08:00")))
    );
}

#[test]
fn overrides_with_and_without_replaces() {
    let mut s = weekly_of_three();
    let o = |user: &str, replaces: Option<&str>, from: &str, to: &str| Override {
        user: user.into(),
        replaces: replaces.map(String::from),
        start: ny(from),
        end: ny(to),
    };
    s.overrides = vec![
        // Replaces bob, who is not on call in week 0: no effect.
        o("erin", Some("bob"), "2026-01-06T00:00", "2026-01-07T00:00"),
        // Replaces whoever is on call.
        o("frank", None, "2026-01-07T00:00", "2026-01-07T06:00"),
        // Replaces frank, put there by the override before it.
        o(
            "gina",
            Some("frank"),
            "2026-01-07T03:00",
            "2026-01-07T04:00",
        ),
        // Before the rotation starts: nobody is on call, frank still is.
        o("frank", None, "2026-01-05T06:00", "2026-01-05T07:00"),
    ];
    assert_eq!(s.on_call_at(ny("2026-01-06T12:00")).users, ["alice"]);
    assert_eq!(
        s.on_call_at(ny("2026-01-07T01:00")),
        on_call(&["frank"], &[], Some(ny("2026-01-07T03:00")))
    );
    assert_eq!(s.on_call_at(ny("2026-01-07T03:30")).users, ["gina"]);
    assert_eq!(
        s.on_call_at(ny("2026-01-05T06:30")),
        on_call(&["frank"], &[], Some(ny("2026-01-05T07:00")))
    );
    assert_eq!(
        s.shifts(ny("2026-01-07T00:00"), ny("2026-01-07T08:00")),
        vec![
            shift(
                "frank",
                ny("2026-01-07T00:00"),
                ny("2026-01-07T03:00"),
                None
            ),
            shift("gina", ny("2026-01-07T03:00"), ny("2026-01-07T04:00"), None),
            shift(
                "frank",
                ny("2026-01-07T04:00"),
                ny("2026-01-07T06:00"),
                None
            ),
            shift(
                "alice",
                ny("2026-01-07T06:00"),
                ny("2026-01-07T08:00"),
                Some("primary")
            ),
        ]
    );
}

#[test]
fn shadows_follow_the_winning_layer() {
    let mut s = triage();
    s.layers[0].shadows = vec!["sam".into()];
    // dave shadows business hours, sam the volunteers.
    assert_eq!(s.on_call_at(ny("2026-01-06T09:00")).shadows, ["dave"]);
    assert_eq!(s.on_call_at(ny("2026-01-06T21:00")).shadows, ["sam"]);
    // An override keeps the layer's shadows, less the one now on call.
    s.overrides = vec![Override {
        user: "dave".into(),
        replaces: None,
        start: ny("2026-01-06T10:00"),
        end: ny("2026-01-06T11:00"),
    }];
    assert_eq!(
        s.on_call_at(ny("2026-01-06T10:30")),
        on_call(&["dave"], &[], Some(ny("2026-01-06T11:00")))
    );
    // A change of shadows alone is a change of answer.
    assert_eq!(
        s.on_call_at(ny("2026-01-06T09:00")).until,
        Some(ny("2026-01-06T10:00"))
    );
}

#[test]
fn restriction_crossing_midnight() {
    let mut s = weekly_of_three();
    s.layers[0].restrictions = vec![Restriction::weekly(
        &[Day::Fri],
        time(20, 0, 0, 0),
        time(8, 0, 0, 0),
    )];
    assert_eq!(
        s.shifts(ny("2026-01-08T00:00"), ny("2026-01-12T00:00")),
        vec![shift(
            "alice",
            ny("2026-01-09T20:00"),
            ny("2026-01-10T08:00"),
            Some("primary")
        )]
    );
    // from == to is a full day.
    s.layers[0].restrictions = vec![Restriction::weekly(
        &[Day::Sat, Day::Sun],
        time(0, 0, 0, 0),
        time(0, 0, 0, 0),
    )];
    assert_eq!(
        s.shifts(ny("2026-01-08T00:00"), ny("2026-01-14T00:00")),
        vec![shift(
            "alice",
            ny("2026-01-10T00:00"),
            ny("2026-01-12T00:00"),
            Some("primary")
        ),]
    );
}

#[test]
fn a_window_days_away_is_found() {
    // Sundays only: from a Monday the next change is six days off.
    let mut s = weekly_of_three();
    s.layers[0].restrictions = vec![Restriction::weekly(
        &[Day::Sun],
        time(10, 0, 0, 0),
        time(12, 0, 0, 0),
    )];
    assert_eq!(
        s.on_call_at(ny("2026-01-12T09:00")),
        on_call(&[], &[], Some(ny("2026-01-18T10:00")))
    );
    assert_eq!(
        s.shifts(ny("2026-01-12T00:00"), ny("2026-01-26T00:00")),
        vec![
            shift(
                "bob",
                ny("2026-01-18T10:00"),
                ny("2026-01-18T12:00"),
                Some("primary")
            ),
            shift(
                "carol",
                ny("2026-01-25T10:00"),
                ny("2026-01-25T12:00"),
                Some("primary")
            ),
        ]
    );
}

#[test]
fn hourly_and_custom_rotations_count_absolute_time() {
    let mut s = weekly_of_three();
    s.layers[0].rotation = Rotation::Custom(Span::parse("36h").unwrap());
    let start = ny("2026-01-05T08:00");
    assert_eq!(
        s.shifts(start, start + 72 * HOUR),
        vec![
            shift("alice", start, start + 36 * HOUR, Some("primary")),
            shift("bob", start + 36 * HOUR, start + 72 * HOUR, Some("primary")),
        ]
    );
    s.layers[0].rotation = Rotation::Hourly;
    assert_eq!(
        s.on_call_at(start + 5 * HOUR + 1),
        on_call(&["carol"], &[], Some(start + 6 * HOUR))
    );
}

#[test]
fn one_user_around_the_clock_never_changes() {
    let mut s = weekly_of_three();
    s.layers[0].users = vec!["alice".into()];
    let t = ny("2026-02-01T00:00");
    assert_eq!(s.on_call_at(t), on_call(&["alice"], &[], None));
    assert_eq!(
        s.shifts(t, t + 40 * 24 * HOUR),
        vec![shift("alice", t, t + 40 * 24 * HOUR, Some("primary"))]
    );
}

#[test]
fn validation_names_each_problem() {
    let text = r#"
[schedules.bad]
time_zone = "Mars/Olympus_Mons"

[[schedules.bad.layers]]
name = "a"
start = "1960-01-05T08:00:00"
end = "1959-01-01T00:00:00"
rotation = { custom = "30m" }
handoff = "08:00"
users = []
shadows = ["ghost", "ghost"]
restrictions = [ { from = "08:00", to = "20:00" }, { days = ["mon", "mon"], from = "08:00", to = "20:00" } ]

[[schedules.bad.layers]]
name = "a"
start = "2026-01-05T08:00:00"
rotation = { days = 0 }
users = ["alice", "nobody"]

[[schedules.bad.overrides]]
user = "alice"
replaces = "alice"
start = "2026-03-07T00:00:00Z"
end = "2026-03-07T00:00:00Z"
"#;
    let s = parse(text).schedules.remove("bad").unwrap();
    let known = |u: &str| ["alice", "bob"].contains(&u);
    let problems: Vec<String> = s
        .validate("schedules.bad", &known)
        .iter()
        .map(Problem::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "schedules.bad.layers[0].end: must be after start",
            "schedules.bad.layers[0].handoff: handoff applies to daily, weekly and { days = N } rotations; hourly and custom turns are counted from start",
            "schedules.bad.layers[0].restrictions[1].days[1]: duplicate day \"mon\"",
            "schedules.bad.layers[0].rotation: days must be 1 to 3660, a custom span 1h to 3660d",
            "schedules.bad.layers[0].shadows[0]: unknown user \"ghost\"",
            "schedules.bad.layers[0].shadows[1]: duplicate shadow \"ghost\"",
            "schedules.bad.layers[0].shadows[1]: unknown user \"ghost\"",
            "schedules.bad.layers[0].start: the year must be from 1970 to 9000",
            "schedules.bad.layers[0].users: a layer needs at least one user",
            "schedules.bad.layers[1].name: duplicate layer name \"a\"",
            "schedules.bad.layers[1].rotation: days must be 1 to 3660, a custom span 1h to 3660d",
            "schedules.bad.layers[1].users[1]: unknown user \"nobody\"",
            "schedules.bad.overrides[0].end: must be after start",
            "schedules.bad.overrides[0].replaces: an override cannot replace its own user",
            "schedules.bad.time_zone: unknown time zone \"Mars/Olympus_Mons\": use an IANA name such as \"America/New_York\" or \"UTC\"",
        ]
    );
    // Answering for it anyway does not panic: nobody, for want of a zone.
    assert_eq!(s.on_call_at(ny("2026-03-07T00:00")), OnCall::default());
    assert!(s.shifts(0, u64::MAX).is_empty());
    assert_eq!(s.gaps(5, 10), vec![(5, 10)]);
}

#[test]
fn unvalidated_schedules_do_not_panic() {
    let mut s = weekly_of_three();
    s.layers.push(Layer {
        name: String::new(),
        start: datetime(-9999, 1, 1, 0, 0, 0, 0),
        rotation: Rotation::Days(0),
        handoff: Some(time(23, 59, 59, 0)),
        end: Some(datetime(9999, 12, 31, 23, 59, 59, 0)),
        users: vec![],
        shadows: vec![],
        restrictions: vec![Restriction::daily(time(0, 0, 0, 0), time(0, 0, 0, 0))],
    });
    s.layers.push(Layer {
        name: "far".into(),
        start: datetime(9999, 12, 30, 0, 0, 0, 0),
        rotation: Rotation::Custom(Span(3_600_000)),
        handoff: None,
        end: None,
        users: vec!["zed".into()],
        shadows: vec![],
        restrictions: vec![Restriction::daily(time(1, 0, 0, 0), time(0, 0, 0, 0))],
    });
    s.overrides.push(Override {
        user: "x".into(),
        replaces: None,
        start: u64::MAX - 5,
        end: u64::MAX,
    });
    for t in [
        0,
        1,
        ny("2026-01-06T00:00"),
        253_402_300_799_000,
        i64::MAX as u64,
        u64::MAX,
    ] {
        let _ = s.on_call_at(t);
    }
    for end in [at("UTC", "9001-01-01T00:00"), 253_402_300_799_999] {
        let _ = s.shifts(end - 3 * 24 * HOUR, u64::MAX);
        let gaps = s.gaps(end - 3 * 24 * HOUR, u64::MAX);
        assert_eq!(gaps.last().map(|g| g.1), Some(u64::MAX));
    }
    assert!(s.shifts(10, 10).is_empty() && s.gaps(10, 5).is_empty());
}

#[test]
fn document_round_trips_through_toml_and_json() {
    let mut doc = parse(TRIAGE);
    // Every shape of every field.
    let s = doc.schedules.get_mut("triage").unwrap();
    s.layers.push(Layer {
        name: "odd".into(),
        start: datetime(2026, 2, 1, 8, 30, 15, 0),
        rotation: Rotation::Custom(Span::parse("1h30m").unwrap()),
        handoff: None,
        end: Some(datetime(2026, 3, 1, 0, 0, 0, 0)),
        users: vec!["bob".into()],
        shadows: vec![],
        restrictions: vec![Restriction::daily(time(20, 0, 0, 0), time(8, 0, 0, 0))],
    });
    s.layers.push(Layer {
        rotation: Rotation::Days(14),
        handoff: Some(time(9, 15, 0, 0)),
        name: "fortnight".into(),
        ..s.layers[0].clone()
    });
    let text = toml::to_string(&doc).unwrap();
    let back: Doc = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, doc, "{text}");
    assert!(text.contains("start = \"2026-01-10T05:00:00Z\""), "{text}");
    assert!(text.contains("rotation = \"weekly\""), "{text}");
    let json = serde_json::to_string(&doc).unwrap();
    assert_eq!(serde_json::from_str::<Doc>(&json).unwrap(), doc);

    // Same answers from the copy: instants over two months, every 7 minutes.
    let (a, b) = (&doc.schedules["triage"], &back.schedules["triage"]);
    let from = ny("2026-01-01T00:00");
    let to = ny("2026-03-01T00:00");
    for t in (from..to).step_by(7 * 60_000) {
        assert_eq!(a.on_call_at(t), b.on_call_at(t));
    }
    assert_eq!(a.shifts(from, to), b.shifts(from, to));
}

#[test]
fn toml_date_time_literals_and_other_spellings() {
    let doc = |start: &str, handoff: &str, rotation: &str, extra: &str| {
        format!(
            r#"
[schedules.s]
time_zone = "Europe/London"
[[schedules.s.layers]]
name = "l"
start = {start}
handoff = {handoff}
rotation = {rotation}
users = ["a"]
{extra}
[[schedules.s.overrides]]
user = "b"
start = 2026-03-07T00:00:00Z
end = "2026-03-07T01:00:00+01:00"
"#
        )
    };
    let text = doc("2026-01-05T08:00:00", "09:30:00", "{ days = 2 }", "");
    let s = parse(&text).schedules.remove("s").unwrap();
    assert_eq!(s.layers[0].start, datetime(2026, 1, 5, 8, 0, 0, 0));
    assert_eq!(s.layers[0].handoff, Some(time(9, 30, 0, 0)));
    assert_eq!(s.layers[0].rotation, Rotation::Days(2));
    assert_eq!(s.overrides[0].start, s.overrides[0].end);
    for (text, why) in [
        (
            doc("\"2026-01-05T08:00:00Z\"", "\"09:30\"", "\"daily\"", ""),
            "without an offset",
        ),
        (
            doc("2026-01-05", "\"09:30\"", "\"daily\"", ""),
            "invalid civil date and time",
        ),
        (
            doc("\"2026-01-05T25:00:00\"", "\"09:30\"", "\"daily\"", ""),
            "invalid civil date and time",
        ),
        (
            doc("\"2026-01-05T08:00\"", "\"8am\"", "\"daily\"", ""),
            "invalid time of day",
        ),
        (
            doc("\"2026-01-05T08:00\"", "\"09:30\"", "\"fortnightly\"", ""),
            "unknown variant",
        ),
        (
            doc(
                "\"2026-01-05T08:00\"",
                "\"09:30\"",
                "{ custom = \"36x\" }",
                "",
            ),
            "invalid duration",
        ),
        (
            doc(
                "\"2026-01-05T08:00\"",
                "\"09:30\"",
                "\"daily\"",
                "color = \"red\"",
            ),
            "unknown field",
        ),
    ] {
        let err = toml::from_str::<Doc>(&text).unwrap_err().to_string();
        assert!(err.contains(why), "{text}: {err}");
        assert!(err.contains("line "), "points at the line: {err}");
    }
}
