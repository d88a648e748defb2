//! Random schedules against a brute-force reference.
//!
//! The reference below knows nothing of the module's fast path, day
//! arithmetic or change-to-change walking: it lists every handoff from the
//! layer's start and every restriction window around the range with jiff's
//! own calendar arithmetic, turns each wall-clock time into an instant with
//! jiff's compatible disambiguation, and then answers minute by minute
//! (every change in these schedules falls on a whole minute). The module's
//! `shifts`, `gaps` and `on_call_at` (with its `until`) must agree with it
//! at every minute, in zones with and without DST, with 30- and 45-minute
//! offsets, with changes at midnight, and around Samoa skipping a day.
//!
//! A failure prints the generated case; proptest shrinks it first.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::Timestamp;
use pager_core::schedule::{Day, Layer, Override, Restriction, Rotation, Schedule, Zone};
use pager_core::{Millis, Span};
use proptest::prelude::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const USERS: [&str; 5] = ["ann", "ben", "cat", "dan", "eve"];

/// Zones, each with the first day of a year of interesting transitions.
const ZONES: [(&str, (i16, i8, i8)); 12] = [
    ("UTC", (2026, 1, 1)),
    ("America/New_York", (2026, 1, 1)),
    ("Europe/London", (2026, 1, 1)),
    ("Australia/Sydney", (2026, 1, 1)),
    // 30-minute DST.
    ("Australia/Lord_Howe", (2026, 1, 1)),
    // Changes at midnight.
    ("America/Santiago", (2026, 1, 1)),
    ("America/Havana", (2026, 1, 1)),
    // Negative DST in the tzdb, half-hour and 45-minute offsets.
    ("Europe/Dublin", (2026, 1, 1)),
    ("Asia/Kolkata", (2026, 1, 1)),
    ("America/St_Johns", (2026, 1, 1)),
    ("Pacific/Chatham", (2026, 1, 1)),
    // Skipped 2011-12-30 entirely, and had DST that year.
    ("Pacific/Apia", (2011, 6, 1)),
];

fn tz(name: &str) -> TimeZone {
    TimeZoneDatabase::bundled().get(name).unwrap()
}

fn compat(tz: &TimeZone, dt: DateTime) -> i64 {
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .unwrap()
        .as_millisecond()
}

fn civil(tz: &TimeZone, t: i64) -> DateTime {
    tz.to_datetime(Timestamp::from_millisecond(t).unwrap())
}

fn minute_of_day(m: u32) -> Time {
    Time::new((m / 60) as i8, (m % 60) as i8, 0, 0).unwrap()
}

// ---- generated input -------------------------------------------------------

#[derive(Debug, Clone)]
struct LayerSpec {
    /// Days before the range's anchor the layer starts (negative: after).
    start_days_before: i64,
    start_minute: u32,
    rotation: Rotation,
    handoff: Option<u32>,
    /// Days after the anchor the layer ends.
    end_days_after: Option<i64>,
    users: Vec<usize>,
    shadows: Vec<usize>,
    /// (days as a bit mask, 0 for every day; from; to) in minutes of the day.
    restrictions: Vec<(u8, u32, u32)>,
}

#[derive(Debug, Clone)]
struct OverrideSpec {
    user: usize,
    replaces: Option<usize>,
    /// Minutes from the range's start.
    start: i64,
    minutes: i64,
}

#[derive(Debug, Clone)]
struct Case {
    zone: usize,
    /// Picks the range: near a transition of the zone, or anywhere.
    near_transition: bool,
    anchor_minutes: i64,
    /// The range is `[anchor - before, anchor - before + length)`, in minutes.
    before: i64,
    length: i64,
    layers: Vec<LayerSpec>,
    overrides: Vec<OverrideSpec>,
    probes: Vec<i64>,
}

/// A minute of the day, often in the small hours where clocks change.
fn minute() -> impl Strategy<Value = u32> {
    prop_oneof![(0u32..96).prop_map(|q| q * 15), 0u32..240, 1380u32..1440]
}

fn rotation() -> impl Strategy<Value = Rotation> {
    prop_oneof![
        Just(Rotation::Hourly),
        Just(Rotation::Daily),
        Just(Rotation::Weekly),
        (2u32..=14).prop_map(Rotation::Days),
        (2u64..=144).prop_map(|half_hours| Rotation::Custom(Span(half_hours * 30 * 60_000))),
    ]
}

fn layer() -> impl Strategy<Value = LayerSpec> {
    (
        (
            -2i64..120,
            minute(),
            rotation(),
            proptest::option::weighted(0.5, minute()),
        ),
        proptest::option::weighted(0.2, 0i64..4),
        proptest::collection::vec(0usize..USERS.len(), 1..4),
        proptest::collection::vec(0usize..USERS.len(), 0..2),
        proptest::collection::vec(
            (
                prop_oneof![Just(0u8), 1u8..128, (0u8..7).prop_map(|d| 1 << d)],
                minute(),
                minute(),
            ),
            0..3,
        ),
    )
        .prop_map(
            |((start_days_before, start_minute, rotation, handoff), end, users, shadows, r)| {
                let mut shadows = shadows;
                shadows.dedup();
                LayerSpec {
                    start_days_before,
                    start_minute,
                    handoff: handoff.filter(|_| rotation.is_civil()),
                    rotation,
                    end_days_after: end,
                    users,
                    shadows,
                    restrictions: r,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0usize..ZONES.len(), any::<bool>(), 0i64..365 * 24 * 60),
        (0i64..2 * 24 * 60, 60i64..9 * 24 * 60),
        proptest::collection::vec(layer(), 1..4),
        proptest::collection::vec(
            (
                0usize..USERS.len(),
                proptest::option::weighted(0.5, 0usize..USERS.len()),
                -2 * 24 * 60i64..4 * 24 * 60,
                30i64..3 * 24 * 60,
            )
                .prop_map(|(user, replaces, start, minutes)| OverrideSpec {
                    user,
                    replaces: replaces.filter(|&r| r != user),
                    start,
                    minutes,
                }),
            0..4,
        ),
        proptest::collection::vec(0i64..1_000_000_000, 12),
    )
        .prop_map(
            |(
                (zone, near_transition, anchor_minutes),
                (before, length),
                layers,
                overrides,
                probes,
            )| {
                Case {
                    zone,
                    near_transition,
                    anchor_minutes,
                    before,
                    length,
                    layers,
                    overrides,
                    probes,
                }
            },
        )
}

/// The schedule and the range `[from, to)` a case describes.
fn build(case: &Case) -> (Schedule, i64, i64) {
    let (name, (y, m, d)) = ZONES[case.zone];
    let tz = tz(name);
    let base = compat(&tz, Date::new(y, m, d).unwrap().at(0, 0, 0, 0));
    let mut anchor = base + case.anchor_minutes * MINUTE;
    if case.near_transition {
        if let Some(tr) = tz
            .following(Timestamp::from_millisecond(anchor).unwrap())
            .next()
        {
            let t = tr.timestamp().as_millisecond();
            if t < base + 400 * DAY {
                anchor = t;
            }
        }
    }
    let anchor = anchor - anchor.rem_euclid(MINUTE);
    let from = anchor - case.before * MINUTE;
    let to = from + case.length * MINUTE;
    let anchor_day = civil(&tz, anchor).date();
    let layers = case
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let day = anchor_day
                .checked_sub(jiff::Span::new().days(l.start_days_before))
                .unwrap();
            let start = day.to_datetime(minute_of_day(l.start_minute));
            Layer {
                name: format!("layer{i}"),
                start,
                rotation: l.rotation,
                handoff: l.handoff.map(minute_of_day),
                end: l.end_days_after.map(|n| {
                    let end = anchor_day
                        .checked_add(jiff::Span::new().days(n))
                        .unwrap()
                        .to_datetime(minute_of_day(l.start_minute));
                    end.max(start.checked_add(jiff::Span::new().hours(1)).unwrap())
                }),
                users: l.users.iter().map(|&u| USERS[u].to_string()).collect(),
                shadows: l.shadows.iter().map(|&u| USERS[u].to_string()).collect(),
                restrictions: l
                    .restrictions
                    .iter()
                    .map(|&(mask, from, to)| Restriction {
                        days: Day::ALL
                            .into_iter()
                            .filter(|d| mask & (1 << d.index()) != 0)
                            .collect(),
                        from: minute_of_day(from),
                        to: minute_of_day(to),
                    })
                    .collect(),
            }
        })
        .collect();
    let overrides = case
        .overrides
        .iter()
        .map(|o| {
            let start = from + o.start * MINUTE;
            Override {
                user: USERS[o.user].into(),
                replaces: o.replaces.map(|r| USERS[r].into()),
                start: start as Millis,
                end: (start + o.minutes * MINUTE) as Millis,
            }
        })
        .collect();
    let schedule = Schedule {
        description: String::new(),
        time_zone: Zone::new(name),
        layers,
        overrides,
        handoffs: None,
    };
    (schedule, from, to)
}

// ---- the reference ---------------------------------------------------------

/// One layer, precomputed naively for instants in `[from, to)`.
struct RefLayer {
    start: i64,
    end: Option<i64>,
    /// Every handoff after the first turn began, from `start` to past `to`.
    handoffs: Vec<i64>,
    /// Every restriction window that could touch `[from, to)`.
    windows: Vec<(i64, i64)>,
    restricted: bool,
}

impl RefLayer {
    fn new(tz: &TimeZone, layer: &Layer, from: i64, to: i64) -> RefLayer {
        let start = compat(tz, layer.start);
        let mut handoffs = Vec::new();
        for j in 1.. {
            let b = match layer.rotation {
                Rotation::Hourly => start + j * HOUR,
                Rotation::Custom(span) => start + j * span.millis() as i64,
                Rotation::Daily | Rotation::Weekly | Rotation::Days(_) => {
                    let n = match layer.rotation {
                        Rotation::Daily => 1,
                        Rotation::Weekly => 7,
                        Rotation::Days(n) => i64::from(n),
                        _ => unreachable!(),
                    };
                    let day = layer
                        .start
                        .date()
                        .checked_add(jiff::Span::new().days(j * n))
                        .unwrap();
                    let at = layer.handoff.unwrap_or(layer.start.time());
                    compat(tz, day.to_datetime(at))
                }
            };
            handoffs.push(b);
            if b > to {
                break;
            }
        }
        assert!(
            handoffs.windows(2).all(|w| w[0] <= w[1]),
            "handoffs in order"
        );
        let mut windows = Vec::new();
        let first = civil(tz, from)
            .date()
            .checked_sub(jiff::Span::new().days(9))
            .unwrap();
        let last = civil(tz, to)
            .date()
            .checked_add(jiff::Span::new().days(2))
            .unwrap();
        let mut day = first;
        while day <= last {
            for r in &layer.restrictions {
                let weekday = day.weekday().to_monday_zero_offset() as u8;
                if !r.days.is_empty() && !r.days.iter().any(|d| d.index() == weekday) {
                    continue;
                }
                let start = day.to_datetime(r.from);
                let minutes = |t: Time| i64::from(t.hour()) * 60 + i64::from(t.minute());
                let mut len = (minutes(r.to) - minutes(r.from)).rem_euclid(24 * 60);
                if len == 0 {
                    len = 24 * 60;
                }
                let end = start.checked_add(jiff::Span::new().minutes(len)).unwrap();
                windows.push((compat(tz, start), compat(tz, end)));
            }
            day = day.tomorrow().unwrap();
        }
        RefLayer {
            start,
            end: layer.end.map(|e| compat(tz, e)),
            handoffs,
            windows,
            restricted: !layer.restrictions.is_empty(),
        }
    }

    /// The index into `users` of who is on call at `t`.
    fn user(&self, layer: &Layer, t: i64) -> Option<usize> {
        if t < self.start || self.end.is_some_and(|e| t >= e) {
            return None;
        }
        if self.restricted && !self.windows.iter().any(|&(s, e)| s <= t && t < e) {
            return None;
        }
        let turn = self.handoffs.iter().filter(|&&b| b <= t).count();
        Some(turn % layer.users.len())
    }
}

/// The reference answer: (user, layer credited (None for an override),
/// shadows).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RefAnswer {
    user: Option<String>,
    layer: Option<String>,
    shadows: Vec<String>,
}

fn reference(s: &Schedule, layers: &[RefLayer], t: i64) -> RefAnswer {
    let mut user = None;
    let mut winner = None;
    for (i, (layer, r)) in s.layers.iter().zip(layers).enumerate().rev() {
        if let Some(u) = r.user(layer, t) {
            user = Some(layer.users[u].clone());
            winner = Some(i);
            break;
        }
    }
    let mut by_override = false;
    for o in &s.overrides {
        if o.covers(t as Millis)
            && (o.replaces.is_none() || o.replaces.as_deref() == user.as_deref())
        {
            user = Some(o.user.clone());
            by_override = true;
        }
    }
    let shadows = winner
        .map(|i| {
            s.layers[i]
                .shadows
                .iter()
                .filter(|x| Some(*x) != user.as_ref())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    RefAnswer {
        layer: winner
            .filter(|_| !by_override && user.is_some())
            .map(|i| s.layers[i].name.clone()),
        user,
        shadows,
    }
}

// ---- the properties ---------------------------------------------------------

/// A stretch of `shifts()` or `gaps()`: start, end, and (user, layer) for a
/// shift.
type Piece = (i64, i64, Option<(String, Option<String>)>);

fn check(case: &Case) -> Result<(), TestCaseError> {
    let (s, from, to) = build(case);
    let problems = s.validate("s", &|u| USERS.contains(&u));
    prop_assert!(problems.is_empty(), "{problems:?}");
    let tz = tz(s.time_zone.name());
    let layers: Vec<RefLayer> = s
        .layers
        .iter()
        .map(|l| RefLayer::new(&tz, l, from, to))
        .collect();
    let minutes: Vec<i64> = (from..to).step_by(MINUTE as usize).collect();
    let expected: Vec<RefAnswer> = minutes.iter().map(|&t| reference(&s, &layers, t)).collect();

    // shifts() and gaps() tile [from, to) and agree at every minute.
    let shifts = s.shifts(from as Millis, to as Millis);
    let gaps = s.gaps(from as Millis, to as Millis);
    let mut pieces: Vec<Piece> = shifts
        .iter()
        .map(|x| {
            (
                x.start as i64,
                x.end as i64,
                Some((x.user.clone(), x.layer.clone())),
            )
        })
        .chain(gaps.iter().map(|&(a, b)| (a as i64, b as i64, None)))
        .collect();
    pieces.sort_by_key(|p| p.0);
    let mut t = from;
    for (i, (start, end, who)) in pieces.iter().enumerate() {
        prop_assert_eq!(*start, t, "contiguous, no overlap: {:?}", pieces);
        prop_assert!(end > start);
        prop_assert_eq!(start.rem_euclid(MINUTE), 0, "changes fall on whole minutes");
        if let Some((_, _, next)) = pieces.get(i + 1) {
            prop_assert!(who != next, "merged: {:?}", pieces);
        }
        t = *end;
    }
    prop_assert_eq!(t, to);
    let mut piece = 0;
    for (&m, want) in minutes.iter().zip(&expected) {
        while pieces[piece].1 <= m {
            piece += 1;
        }
        let got = pieces[piece].2.clone();
        let want_piece = want.user.clone().map(|u| (u, want.layer.clone()));
        prop_assert_eq!(got, want_piece, "at {} ({})", m, civil(&tz, m));
    }

    // on_call_at() at arbitrary instants, and its `until`.
    for &p in &case.probes {
        let t = from + p % (to - from);
        let now = s.on_call_at(t as Millis);
        let i = ((t - from) / MINUTE) as usize;
        let want = &expected[i];
        prop_assert_eq!(
            &now.users,
            &want.user.iter().cloned().collect::<Vec<_>>(),
            "at {}",
            t
        );
        prop_assert_eq!(&now.shadows, &want.shadows, "at {}", t);
        let same = |a: &RefAnswer| a.user == want.user && a.shadows == want.shadows;
        let change = expected[i + 1..]
            .iter()
            .position(|a| !same(a))
            .map(|k| minutes[i + 1 + k]);
        match (now.until, change) {
            (Some(u), Some(c)) => prop_assert_eq!(u as i64, c, "until at {}", t),
            (Some(u), None) => prop_assert!(u as i64 >= to, "until {} at {}", u, t),
            (None, None) => {}
            (None, Some(c)) => prop_assert!(false, "until None at {}, changes at {}", t, c),
        }
        // The shift containing t has its user.
        if let Some(x) = shifts
            .iter()
            .find(|x| x.start as i64 <= t && t < x.end as i64)
        {
            prop_assert_eq!(&now.users, &vec![x.user.clone()]);
        } else {
            prop_assert!(now.users.is_empty());
        }
    }

    // The same schedule through TOML answers the same.
    let text = toml::to_string(&s).unwrap();
    let back: Schedule = toml::from_str(&text).unwrap();
    prop_assert_eq!(&back, &s);
    prop_assert_eq!(back.shifts(from as Millis, to as Millis), shifts);
    for &p in &case.probes {
        let t = (from + p % (to - from)) as Millis;
        prop_assert_eq!(back.on_call_at(t), s.on_call_at(t));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn agrees_with_the_brute_force_reference(case in case()) {
        check(&case)?;
    }
}

/// Samoa's skipped day, on every kind of rotation, with a deterministic case.
#[test]
fn samoa_skips_a_day() {
    for rotation in [
        Rotation::Daily,
        Rotation::Weekly,
        Rotation::Days(2),
        Rotation::Hourly,
    ] {
        for restrictions in [
            vec![],
            vec![(0, 8 * 60, 20 * 60)],
            vec![(0, 20 * 60, 8 * 60)],
        ] {
            let case = Case {
                zone: 11,
                near_transition: false,
                // 2011-12-28T00:00 local, 210 days after 2011-06-01.
                anchor_minutes: 210 * 24 * 60,
                before: 0,
                length: 4 * 24 * 60,
                layers: vec![LayerSpec {
                    start_days_before: 10,
                    start_minute: 8 * 60,
                    rotation,
                    handoff: None,
                    end_days_after: None,
                    users: vec![0, 1, 2],
                    shadows: vec![],
                    restrictions,
                }],
                overrides: vec![],
                probes: (0..12).map(|i| i * 29 * 60 * 1000 * 17).collect(),
            };
            check(&case).unwrap();
        }
    }
}

/// Any schedule, valid or not, at any instant: answers without panicking.
fn wild_layer() -> impl Strategy<Value = Layer> {
    (
        (-9999i16..=9999, 1i8..=12, 1i8..=28, 0u32..1440),
        prop_oneof![
            Just(Rotation::Hourly),
            Just(Rotation::Daily),
            Just(Rotation::Weekly),
            any::<u32>().prop_map(Rotation::Days),
            any::<u64>().prop_map(|ms| Rotation::Custom(Span(ms))),
        ],
        proptest::option::of(0u32..1440),
        proptest::option::of((-9999i16..=9999, 0u32..1440)),
        proptest::collection::vec(0usize..USERS.len(), 0..3),
        proptest::collection::vec((any::<u8>(), 0u32..1440, 0u32..1440), 0..3),
    )
        .prop_map(|((y, m, d, min), rotation, handoff, end, users, r)| Layer {
            name: String::new(),
            start: Date::new(y, m, d).unwrap().to_datetime(minute_of_day(min)),
            rotation,
            handoff: handoff.map(minute_of_day),
            end: end.map(|(y, min)| Date::new(y, 6, 1).unwrap().to_datetime(minute_of_day(min))),
            users: users.iter().map(|&u| USERS[u].to_string()).collect(),
            shadows: vec![],
            restrictions: r
                .iter()
                .map(|&(mask, from, to)| Restriction {
                    days: Day::ALL
                        .into_iter()
                        .filter(|d| mask & (1 << d.index()) != 0)
                        .collect(),
                    from: minute_of_day(from),
                    to: minute_of_day(to),
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn never_panics(
        zone in 0usize..ZONES.len(),
        layers in proptest::collection::vec(wild_layer(), 0..3),
        overrides in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3),
        instants in proptest::collection::vec(
            prop_oneof![any::<u64>(), 0u64..300_000_000_000_000],
            4,
        ),
    ) {
        let s = Schedule {
            description: String::new(),
            time_zone: Zone::new(ZONES[zone].0),
            layers,
            overrides: overrides
                .into_iter()
                .map(|(start, end)| Override {
                    user: "ann".into(),
                    replaces: None,
                    start,
                    end,
                })
                .collect(),
            handoffs: None,
        };
        let _ = s.validate("s", &|_| true);
        for t in instants {
            let now = s.on_call_at(t);
            prop_assert!(now.until.is_none_or(|u| u > t));
            let to = t.saturating_add(3 * DAY as u64);
            let _ = (s.shifts(t, to), s.gaps(t, to));
        }
    }
}
