//! On-call schedules: who is on call at instant `t`, as a pure function of
//! the schedule and `t`.
//!
//! A [`Schedule`] is part of the replicated on-call document. Every replica
//! answers [`Schedule::on_call_at`] from the same bytes and the same `t`
//! (stamped by the Raft leader), so the answer must not depend on the host:
//! no clock, no I/O, and time zone rules from the IANA database **compiled
//! into the binary** (jiff's `tzdb-bundle-always`, looked up through
//! `TimeZoneDatabase::bundled()`), never the host's `/usr/share/zoneinfo`,
//! which differs between machines and changes under a running node with an
//! OS update. Replicas on the same build agree exactly; a new database
//! version arrives with a new build (during a rolling upgrade, nodes on
//! different builds may disagree about a zone whose rules just changed).
//!
//! ```toml
//! [schedules.triage]
//! time_zone = "America/New_York"
//!
//! # 24/7 volunteers, under the business-hours rotation
//! [[schedules.triage.layers]]
//! name = "volunteers"
//! start = "2026-01-05T08:00:00"      # wall-clock time in time_zone
//! rotation = "daily"                  # "hourly" | "daily" | "weekly"
//!                                     # | { days = 14 } | { custom = "36h" }
//! users = ["vic", "wen"]
//!
//! # later layers override earlier ones where they have someone on call
//! [[schedules.triage.layers]]
//! name = "business-hours"
//! start = "2026-01-05T08:00:00"
//! rotation = "weekly"
//! handoff = "08:00"                   # optional (default: start's time of day)
//! end = "2027-01-04T08:00:00"         # optional
//! users = ["alice", "bob", "carol"]   # in turn order
//! shadows = ["dave"]                  # copied, not responders
//! restrictions = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00" } ]
//!
//! [[schedules.triage.overrides]]
//! user = "erin"
//! replaces = "alice"                  # optional: absent = whoever is on call
//! start = "2026-03-07T00:00:00Z"      # absolute instants, RFC 3339
//! end = "2026-03-09T00:00:00Z"
//! ```
//!
//! # Semantics
//!
//! - **Wall-clock times** (`start`, `end`, `handoff`, restriction `from`/`to`)
//!   are read in `time_zone`. Each becomes an instant with jiff's
//!   *compatible* disambiguation: a time that does not exist (in the gap of a
//!   spring-forward) is moved later by the length of the gap (`02:30` on a
//!   New York spring-forward day is 03:30 EDT), and a time that happens twice
//!   (in the fold of a fall-back) is the first of the two (`01:30` is
//!   01:30 EDT).
//! - **Turns.** `users[0]` takes the first turn at `start`. `daily`, `weekly`
//!   and `{ days = N }` rotations count calendar days: the handoffs after the
//!   first are at `handoff` every N days from `start`'s date, so a daily
//!   08:00 handoff stays at 08:00 local and a turn across a DST change lasts
//!   23 or 25 hours (167 or 169 for a week). `hourly` and `{ custom = span }`
//!   count absolute time from `start`: every turn is exactly that long and the
//!   wall-clock handoff moves when the clocks change. Turns are contiguous:
//!   nobody is on call twice and no instant falls between two turns.
//! - **Restrictions.** When a layer has restrictions, its user is on call only
//!   inside one of their windows; outside, the layer has nobody and the layers
//!   under it show through. A window starts on each listed day (every day when
//!   `days` is empty) at `from` and ends at the next `to`, the following day
//!   when `to` is not after `from` (`20:00`–`08:00`); `from == to` is 24
//!   hours. See [`Restriction`].
//! - **Layers.** At each instant the topmost (last written) layer with someone
//!   on call wins: one user.
//! - **Overrides** then apply in the order written, each on the result of the
//!   ones before: while in force, an override with `replaces` puts its user in
//!   place of that user if they are on call; one without replaces whoever is
//!   on call, and puts its user on call even when nobody else is.
//! - **Shadows** of the winning layer (before overrides) are returned beside
//!   the users, less anyone already on call.
//!
//! A schedule is checked by [`Schedule::validate`]; malformed text (a time
//! written `"8am"`) is already refused while deserializing, with the key in
//! the message. The queries never panic: on a schedule that did not validate
//! they answer as best they can, and with an unknown zone, nobody. Instants
//! from the year 9001 on have nobody on call.
//!
//! # Cost
//!
//! The zone is resolved once, when the [`Zone`] is made (while
//! deserializing). The bundled database is asked by name through
//! `TimeZoneDatabase::bundled()` rather than jiff's global `tz::db()`, so a
//! crate elsewhere in the build enabling jiff's system-zoneinfo features
//! cannot change the rules used here. A lookup per query would cost about
//! 50 ns and a global lock; conversions themselves mostly avoid jiff (see
//! `clock.rs`). One [`Schedule::on_call_at`] with its `until` on 5 layers
//! and 50 overrides takes about 2 µs on average (`examples/schedule_bench.rs`).
//!
//! Layout:
//! - [`Schedule`] (this file): the document type and the queries
//! - [`Layer`], [`Rotation`], [`Restriction`], [`Override`], [`Zone`]: its parts
//! - `validate.rs`: [`Schedule::validate`]
//! - `timeline.rs`: evaluation at an instant and walking from change to change
//! - `clock.rs`: instant ↔ wall-clock conversions (a fast path away from DST
//!   transitions, jiff near them); `civil.rs`: date arithmetic and text forms

pub(crate) mod civil;
mod clock;
mod layer;
mod overrides;
mod restriction;
mod rotation;
mod timeline;
mod validate;
mod zone;

pub use layer::Layer;
pub use overrides::Override;
pub use restriction::{Day, Restriction};

/// Whether instant `t` falls inside one of `windows` read on the wall clock
/// of `zone` (support hours, for example). An unknown zone is never inside.
pub fn within(zone: &Zone, windows: &[Restriction], t: Millis) -> bool {
    let (Some(tz), Ok(t)) = (zone.time_zone(), i64::try_from(t)) else {
        return false;
    };
    let mut clock = clock::Clock::new(tz);
    clock.focus(t);
    let Some(local) = clock.local(t) else {
        return false;
    };
    restriction::scan(windows, &clock, t, local).0
}
pub use rotation::Rotation;
pub use validate::{MAX_LAYERS, MAX_OVERRIDES, MAX_RESTRICTIONS_PER_LAYER, MAX_USERS_PER_LAYER};
pub use zone::Zone;

use crate::time::{Millis, Span};
use serde::{Deserialize, Serialize};
use timeline::{Answer, Timeline};

/// How far ahead [`Schedule::on_call_at`] looks for the next change.
pub const UNTIL_HORIZON: Span = Span(28 * civil::DAY as u64);

/// How far ahead a schedule's [`Schedule::gaps`] deserve a warning.
pub const GAP_LOOKAHEAD: Span = Span(14 * civil::DAY as u64);

/// One schedule: layers of rotations and overrides in one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Free text for people reading the document.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The zone of every wall-clock time in the schedule.
    pub time_zone: Zone,
    /// Bottom first: a later layer wins where it has someone on call.
    #[serde(default)]
    pub layers: Vec<Layer>,
    /// Applied in order, on top of the layers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    /// Handoff emails, shift reminders and shifts-moved emails for this
    /// schedule (`false` turns them off; on when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoffs: Option<bool>,
}

impl Schedule {
    /// Whether its shifts are handed off by email (see `handoffs`).
    pub fn hands_off(&self) -> bool {
        self.handoffs != Some(false)
    }
}

/// Who is on call at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnCall {
    /// Responders: at most one today (one per layer, the top one wins).
    pub users: Vec<String>,
    /// Copied on pages, not responders.
    pub shadows: Vec<String>,
    /// The next instant `users` or `shadows` change, if within
    /// [`UNTIL_HORIZON`]; `None` means the answer holds at least that long.
    pub until: Option<Millis>,
}

/// A stretch of time one user is on call, from one layer or an override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// The user on call.
    pub user: String,
    /// When the shift starts, in milliseconds since the Unix epoch.
    pub start: Millis,
    /// Exclusive.
    pub end: Millis,
    /// The layer's name; `None` when an override put the user on call.
    pub layer: Option<String>,
}

/// Bounds the search for `until` on pathological schedules; ordinary ones
/// need a few steps, a month of hourly turns under an override ~700.
const MAX_UNTIL_STEPS: usize = 20_000;

impl Schedule {
    /// Who is on call at `t`.
    pub fn on_call_at(&self, t: Millis) -> OnCall {
        let (Some(mut timeline), Ok(t)) = (Timeline::new(self), i64::try_from(t)) else {
            return OnCall::default();
        };
        let (answer, mut next) = timeline.at(t);
        let horizon = t.saturating_add(span_ms(UNTIL_HORIZON));
        let shadows = self.shadows(answer);
        let mut until = None;
        for _ in 0..MAX_UNTIL_STEPS {
            if next > horizon || next == i64::MAX {
                break;
            }
            let (later, after) = timeline.at(next);
            if later.user != answer.user || self.shadows(later) != shadows {
                until = Some(next);
                break;
            }
            next = after;
        }
        if until.is_none() && next <= horizon && next < i64::MAX {
            // Gave up before the horizon: the answer holds at least until
            // here, so ask again then.
            until = Some(next);
        }
        OnCall {
            users: answer.user.map(String::from).into_iter().collect(),
            shadows,
            until: until.and_then(|u| u64::try_from(u).ok()),
        }
    }

    /// The shifts in `[from, to)`: who is on call, with the gaps left out,
    /// consecutive stretches of one user from the same layer (or from
    /// overrides) merged, cut at `from` and `to`.
    pub fn shifts(&self, from: Millis, to: Millis) -> Vec<Shift> {
        self.pieces(from, to)
            .into_iter()
            .filter_map(|(start, end, answer)| {
                Some(Shift {
                    user: answer.user?.to_string(),
                    start,
                    end,
                    layer: answer
                        .source()
                        .and_then(|i| self.layers.get(i))
                        .map(|l| l.name.clone()),
                })
            })
            .collect()
    }

    /// The stretches of `[from, to)` with nobody on call. With
    /// [`Schedule::shifts`] they tile `[from, to)` exactly.
    pub fn gaps(&self, from: Millis, to: Millis) -> Vec<(Millis, Millis)> {
        let mut out: Vec<(Millis, Millis)> = Vec::new();
        for (start, end, answer) in self.pieces(from, to) {
            if answer.user.is_some() {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => out.push((start, end)),
            }
        }
        out
    }

    /// `[from, to)` in stretches of one answer. With an unknown zone, one
    /// stretch of nobody.
    fn pieces(&self, from: Millis, to: Millis) -> Vec<(Millis, Millis, Answer<'_>)> {
        let clamp = |ms: Millis| i64::try_from(ms).unwrap_or(i64::MAX);
        let (from_i, to_i) = (clamp(from), clamp(to));
        if from_i >= to_i {
            return Vec::new();
        }
        let Some(mut timeline) = Timeline::new(self) else {
            let nobody = Answer {
                user: None,
                layer: None,
                by_override: false,
            };
            return vec![(from, to, nobody)];
        };
        timeline
            .pieces(from_i, to_i)
            .into_iter()
            // Pieces lie within [from, to), so they are not negative; the
            // last one ends at `to` even past i64::MAX.
            .map(|p| {
                let end = if p.end == to_i {
                    to
                } else {
                    p.end.unsigned_abs()
                };
                (p.start.unsigned_abs(), end, p.answer)
            })
            .collect()
    }

    /// The shadows to copy for an answer.
    fn shadows(&self, answer: Answer<'_>) -> Vec<String> {
        let Some(layer) = answer.layer.and_then(|i| self.layers.get(i)) else {
            return Vec::new();
        };
        layer
            .shadows
            .iter()
            .filter(|s| answer.user != Some(s.as_str()))
            .cloned()
            .collect()
    }
}

fn span_ms(span: Span) -> i64 {
    i64::try_from(span.millis()).unwrap_or(i64::MAX)
}
