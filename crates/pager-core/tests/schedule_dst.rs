//! Schedules across daylight-saving changes, in both hemispheres: handoffs
//! stay at their wall-clock time, turns across a change are 23 or 25 hours,
//! restriction windows stay at local times, and nobody is on call twice or
//! not at all because of a change.

use jiff::civil::{date, time, Date, DateTime, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use pager_core::schedule::{Layer, Restriction, Rotation, Schedule, Shift, Zone};
use pager_core::{Millis, Span};

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

/// A zone with one spring-forward and one fall-back day in 2026, and the
/// wall-clock hour each skips or repeats.
struct Case {
    zone: &'static str,
    spring: Date,
    fall: Date,
    /// A time inside the skipped hour and inside the repeated hour.
    gap: Time,
    fold: Time,
}

const CASES: [Case; 3] = [
    Case {
        zone: "America/New_York",
        spring: date(2026, 3, 8),
        fall: date(2026, 11, 1),
        gap: time(2, 30, 0, 0),
        fold: time(1, 30, 0, 0),
    },
    Case {
        zone: "Europe/London",
        spring: date(2026, 3, 29),
        fall: date(2026, 10, 25),
        gap: time(1, 30, 0, 0),
        fold: time(1, 30, 0, 0),
    },
    // Southern hemisphere: clocks go back in April and forward in October.
    Case {
        zone: "Australia/Sydney",
        spring: date(2026, 10, 4),
        fall: date(2026, 4, 5),
        gap: time(2, 30, 0, 0),
        fold: time(2, 30, 0, 0),
    },
];

fn tz(zone: &str) -> TimeZone {
    TimeZoneDatabase::bundled().get(zone).unwrap()
}

/// The instant of a wall-clock time, compatible disambiguation.
fn at(zone: &str, dt: DateTime) -> Millis {
    dt.to_zoned(tz(zone)).unwrap().timestamp().as_millisecond() as Millis
}

fn local(zone: &str, t: Millis) -> DateTime {
    tz(zone).to_datetime(jiff::Timestamp::from_millisecond(t as i64).unwrap())
}

fn layer(rotation: Rotation, users: &[&str], restrictions: Vec<Restriction>) -> Layer {
    Layer {
        name: "l".into(),
        start: date(2026, 1, 5).at(8, 0, 0, 0),
        rotation,
        handoff: None,
        end: None,
        users: users.iter().map(|u| u.to_string()).collect(),
        shadows: vec![],
        restrictions,
    }
}

fn schedule(zone: &str, layers: Vec<Layer>) -> Schedule {
    Schedule {
        description: String::new(),
        time_zone: Zone::new(zone),
        layers,
        overrides: vec![],
        handoffs: None,
    }
}

/// Three days either side of 00:00 on `day`.
fn around(zone: &str, day: Date) -> (Millis, Millis) {
    let midnight = day.at(0, 0, 0, 0);
    (at(zone, midnight) - 3 * DAY, at(zone, midnight) + 3 * DAY)
}

/// Shifts and gaps tile `[from, to)`: in order, contiguous, no overlap.
fn assert_tiles(s: &Schedule, from: Millis, to: Millis) -> Vec<Shift> {
    let shifts = s.shifts(from, to);
    let mut pieces: Vec<(Millis, Millis)> = shifts.iter().map(|x| (x.start, x.end)).collect();
    pieces.extend(s.gaps(from, to));
    pieces.sort();
    let mut t = from;
    for (start, end) in pieces {
        assert_eq!(start, t, "pieces are contiguous and do not overlap");
        assert!(end > start);
        t = end;
    }
    assert_eq!(t, to);
    for x in &shifts {
        for probe in [x.start, x.start + (x.end - x.start) / 2, x.end - 1] {
            assert_eq!(s.on_call_at(probe).users, vec![x.user.clone()], "{x:?}");
        }
    }
    shifts
}

/// The shift containing `t`.
fn containing(shifts: &[Shift], t: Millis) -> &Shift {
    shifts.iter().find(|x| x.start <= t && t < x.end).unwrap()
}

#[test]
fn daily_handoff_stays_at_08_00_and_the_day_is_23_or_25_hours() {
    for case in &CASES {
        let s = schedule(
            case.zone,
            vec![layer(Rotation::Daily, &["a", "b", "c"], vec![])],
        );
        for (day, hours) in [(case.spring, 23), (case.fall, 25)] {
            let (from, to) = around(case.zone, day);
            let shifts = assert_tiles(&s, from, to);
            assert!(s.gaps(from, to).is_empty(), "{}", case.zone);
            for x in &shifts[1..] {
                assert_eq!(
                    local(case.zone, x.start).time(),
                    time(8, 0, 0, 0),
                    "{}",
                    case.zone
                );
            }
            let change = containing(&shifts, at(case.zone, day.at(12, 0, 0, 0)) - DAY / 2);
            assert_eq!(
                change.end - change.start,
                hours * HOUR,
                "{} {day}",
                case.zone
            );
            let lengths: Vec<Millis> = shifts[1..shifts.len() - 1]
                .iter()
                .map(|x| (x.end - x.start) / HOUR)
                .collect();
            assert_eq!(
                lengths.iter().filter(|&&h| h == hours).count(),
                1,
                "{lengths:?}"
            );
            assert!(
                lengths.iter().all(|&h| h == 24 || h == hours),
                "{lengths:?}"
            );
        }
    }
}

#[test]
fn weekly_turn_across_a_change_is_167_or_169_hours() {
    for case in &CASES {
        let s = schedule(
            case.zone,
            vec![layer(Rotation::Weekly, &["a", "b"], vec![])],
        );
        for (day, hours) in [(case.spring, 167), (case.fall, 169)] {
            let t = at(case.zone, day.at(12, 0, 0, 0));
            let shifts = assert_tiles(&s, t - 10 * DAY, t + 10 * DAY);
            let x = containing(&shifts, t);
            assert_eq!(x.end - x.start, hours * HOUR, "{} {day}", case.zone);
            assert_eq!(local(case.zone, x.start).time(), time(8, 0, 0, 0));
            assert_eq!(local(case.zone, x.end).time(), time(8, 0, 0, 0));
        }
    }
}

#[test]
fn restriction_windows_stay_at_local_times() {
    for case in &CASES {
        let day = Restriction::daily(time(8, 0, 0, 0), time(20, 0, 0, 0));
        let night = Restriction::daily(time(20, 0, 0, 0), time(8, 0, 0, 0));
        for (day_of_change, night_hours) in [(case.spring, 11), (case.fall, 13)] {
            let s = schedule(
                case.zone,
                vec![layer(Rotation::Daily, &["d"], vec![day.clone()])],
            );
            let (from, to) = around(case.zone, day_of_change);
            for x in assert_tiles(&s, from, to) {
                assert_eq!(local(case.zone, x.start).time(), time(8, 0, 0, 0));
                assert_eq!(local(case.zone, x.end).time(), time(20, 0, 0, 0));
                assert_eq!(x.end - x.start, 12 * HOUR);
            }
            // The night the clocks change is an hour shorter or longer.
            let s = schedule(
                case.zone,
                vec![layer(Rotation::Daily, &["n"], vec![night.clone()])],
            );
            let shifts = assert_tiles(&s, from, to);
            let x = containing(&shifts, at(case.zone, day_of_change.at(4, 0, 0, 0)));
            assert_eq!(
                x.end - x.start,
                night_hours * HOUR,
                "{} {day_of_change}",
                case.zone
            );
            assert_eq!(local(case.zone, x.start).time(), time(20, 0, 0, 0));
            assert_eq!(local(case.zone, x.end).time(), time(8, 0, 0, 0));
        }
    }
}

#[test]
fn restricted_layer_over_a_24_7_layer_leaves_no_gap_and_no_double() {
    for case in &CASES {
        let s = schedule(
            case.zone,
            vec![
                layer(Rotation::Daily, &["v1", "v2"], vec![]),
                layer(
                    Rotation::Weekly,
                    &["a", "b", "c"],
                    vec![Restriction::daily(time(8, 0, 0, 0), time(20, 0, 0, 0))],
                ),
            ],
        );
        for day in [case.spring, case.fall] {
            let (from, to) = around(case.zone, day);
            assert!(s.gaps(from, to).is_empty(), "{} {day}", case.zone);
            let shifts = assert_tiles(&s, from, to);
            let total: Millis = shifts.iter().map(|x| x.end - x.start).sum();
            assert_eq!(total, to - from);
            for x in &shifts {
                let t = local(case.zone, x.start).time();
                assert!(t == time(8, 0, 0, 0) || t == time(20, 0, 0, 0) || x.start == from);
            }
        }
    }
}

#[test]
fn handoff_in_the_gap_is_later_and_in_the_fold_is_the_first_pass() {
    for case in &CASES {
        for (day, handoff) in [(case.spring, case.gap), (case.fall, case.fold)] {
            let mut l = layer(Rotation::Daily, &["a", "b"], vec![]);
            l.handoff = Some(handoff);
            let s = schedule(case.zone, vec![l]);
            let (from, to) = around(case.zone, day);
            let shifts = assert_tiles(&s, from, to);
            let expected = at(case.zone, day.to_datetime(handoff));
            assert!(
                shifts.iter().any(|x| x.start == expected),
                "{} {day}: {shifts:?}",
                case.zone
            );
            let tz = tz(case.zone);
            let ambiguous = tz.to_ambiguous_timestamp(day.to_datetime(handoff));
            let (earlier, later) = match ambiguous.offset() {
                jiff::tz::AmbiguousOffset::Gap { before, after }
                | jiff::tz::AmbiguousOffset::Fold { before, after } => (before, after),
                jiff::tz::AmbiguousOffset::Unambiguous { .. } => panic!("{day} {handoff}"),
            };
            let naive = day.to_datetime(handoff).to_zoned(TimeZone::UTC).unwrap();
            let in_offset = |o: jiff::tz::Offset| {
                (naive.timestamp().as_millisecond() - i64::from(o.seconds()) * 1000) as Millis
            };
            if day == case.spring {
                // Gap: the handoff is as far past the gap's end as the
                // time is past its start, on the offset before the change.
                assert_eq!(expected, in_offset(earlier), "{}", case.zone);
                assert_eq!(
                    local(case.zone, expected).time(),
                    time(handoff.hour() + 1, handoff.minute(), 0, 0)
                );
            } else {
                // Fold: the first of the two instants.
                assert_eq!(expected, in_offset(earlier).min(in_offset(later)));
                assert_eq!(local(case.zone, expected).time(), handoff);
            }
        }
    }
}

#[test]
fn hourly_and_custom_turns_are_absolute() {
    for case in &CASES {
        let s = schedule(
            case.zone,
            vec![layer(Rotation::Hourly, &["a", "b", "c"], vec![])],
        );
        for day in [case.spring, case.fall] {
            let (from, to) = around(case.zone, day);
            let shifts = assert_tiles(&s, from, to);
            assert_eq!(shifts.len() as Millis, (to - from) / HOUR);
            assert!(shifts.iter().all(|x| x.end - x.start == HOUR));
        }
        // A 24h custom turn keeps 24 hours, so its wall-clock handoff moves.
        let s = schedule(
            case.zone,
            vec![layer(
                Rotation::Custom(Span::parse("24h").unwrap()),
                &["a", "b"],
                vec![],
            )],
        );
        let (from, to) = around(case.zone, case.spring);
        let shifts = assert_tiles(&s, from, to);
        assert!(shifts[1..]
            .iter()
            .all(|x| x.end - x.start == DAY || x.end == to));
        let before = local(case.zone, shifts[1].start).time();
        let after = local(case.zone, shifts[shifts.len() - 1].start).time();
        // (Sydney started in summer time, so it reads 07:00 by October.)
        assert_eq!(after.hour(), before.hour() + 1, "{}", case.zone);
    }
}

#[test]
fn on_call_at_every_quarter_hour_matches_the_shifts() {
    for case in &CASES {
        let s = schedule(
            case.zone,
            vec![
                layer(Rotation::Daily, &["v1", "v2"], vec![]),
                layer(
                    Rotation::Weekly,
                    &["a", "b", "c"],
                    vec![Restriction::daily(time(20, 0, 0, 0), time(8, 0, 0, 0))],
                ),
            ],
        );
        for day in [case.spring, case.fall] {
            let (from, to) = around(case.zone, day);
            let shifts = s.shifts(from, to);
            for t in (from..to).step_by(15 * 60_000) {
                let now = s.on_call_at(t);
                let x = containing(&shifts, t);
                assert_eq!(now.users, vec![x.user.clone()]);
                if x.end < to {
                    assert_eq!(now.until, Some(x.end), "{t}: {now:?} {x:?}");
                }
            }
        }
    }
}
