//! [`Layer`]: one rotation of users, optionally restricted to windows.

use super::civil::{self, local_ms, time_ms, DAY};
use super::clock::Clock;
use super::restriction::{self, Restriction};
use super::rotation::{Rotation, Step};
use jiff::civil::{DateTime, Time};
use serde::{Deserialize, Serialize};

/// Users taking turns, one at a time, from `start` on.
///
/// ```toml
/// [[schedules.triage.layers]]
/// name = "business-hours"
/// start = "2026-01-05T08:00:00"   # wall-clock time in the schedule's zone
/// rotation = "weekly"
/// handoff = "09:00"               # optional, daily/weekly/days rotations only
/// users = ["alice", "bob", "carol"]
/// shadows = ["dave"]
/// restrictions = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00" } ]
/// ```
///
/// `users[0]` takes the first turn at `start`. For a wall-clock rotation of
/// N days the later handoffs are at `handoff` (default: the time of day of
/// `start`) every N days counted from `start`'s date, so the first turn runs
/// to `start`'s date + N days at `handoff`; for `hourly` and `custom` every
/// turn is the same span of absolute time after `start`. Before `start` and
/// from `end` on, the layer has nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Names the layer in shifts and in validation problems.
    #[serde(default)]
    pub name: String,
    /// Wall-clock time `users[0]`'s first turn starts, in the schedule's zone.
    #[serde(with = "civil::datetime")]
    pub start: DateTime,
    /// How long each turn lasts.
    pub rotation: Rotation,
    /// Wall-clock time of the handoffs after the first.
    #[serde(
        default,
        with = "civil::opt_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub handoff: Option<Time>,
    /// Wall-clock time the layer stops (exclusive); absent: never.
    #[serde(
        default,
        with = "civil::opt_datetime",
        skip_serializing_if = "Option::is_none"
    )]
    pub end: Option<DateTime>,
    /// In turn order; a name may appear more than once.
    #[serde(default)]
    pub users: Vec<String>,
    /// Copied on this layer's pages while it is the one on call; they do not
    /// respond.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadows: Vec<String>,
    /// When non-empty, the layer is on call only inside these windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<Restriction>,
}

/// A layer's own instants, the same for every query: where a timeline
/// computes them once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    start: i64,
    /// `i64::MAX` when the layer does not end.
    end: i64,
}

/// A layer at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerAt {
    /// Index into `users` of who is on call, if anyone.
    pub user: Option<usize>,
    /// An instant after `t` before which this does not change.
    pub next: i64,
}

const NOBODY: LayerAt = LayerAt {
    user: None,
    next: i64::MAX,
};

/// Rotation boundaries are found by estimating on the wall clock and then
/// stepping; offsets differ by less than 52 hours, so a handful of steps
/// always suffices. More means a broken zone: the layer reports nobody.
const MAX_STEPS: usize = 8;

impl Layer {
    /// The instants the layer starts and ends; `None` when it never has
    /// anyone on call (no users, a rotation out of range, times that cannot
    /// be placed).
    pub(crate) fn bounds(&self, clock: &Clock) -> Option<Bounds> {
        if self.users.is_empty() || self.rotation.step().is_none() {
            return None;
        }
        let start = clock.instant(local_ms(self.start))?;
        let end = match self.end {
            Some(end) => clock.instant(local_ms(end))?,
            None => i64::MAX,
        };
        Some(Bounds { start, end })
    }

    /// The layer at instant `t`, which reads `local` on the wall clock.
    pub(crate) fn at(&self, bounds: Bounds, clock: &Clock, t: i64, local: i64) -> LayerAt {
        let Some(step) = self.rotation.step() else {
            return NOBODY;
        };
        let Bounds { start, end } = bounds;
        if t < start {
            return LayerAt {
                user: None,
                next: start,
            };
        }
        if t >= end || self.users.is_empty() {
            return NOBODY;
        }
        let start_local = local_ms(self.start);
        let Some((turn, turn_end)) = self.turn(step, clock, t, local, start, start_local) else {
            return NOBODY;
        };
        let next = end.min(turn_end);
        // `turn` is not negative and `users` is not empty.
        let user = usize::try_from(turn % self.users.len() as i64).ok();
        if self.restrictions.is_empty() {
            return LayerAt { user, next };
        }
        let (inside, until) = restriction::scan(&self.restrictions, clock, t, local);
        LayerAt {
            user: user.filter(|_| inside),
            next: next.min(until),
        }
    }

    /// The number of the turn containing `t >= start` (0 for the first), and
    /// the instant it ends.
    fn turn(
        &self,
        step: Step,
        clock: &Clock,
        t: i64,
        local: i64,
        start: i64,
        start_local: i64,
    ) -> Option<(i64, i64)> {
        match step {
            Step::Absolute { ms } => {
                let turn = (t - start).div_euclid(ms);
                let end = turn.checked_add(1)?.checked_mul(ms)?.checked_add(start)?;
                Some((turn, end))
            }
            Step::Civil { days } => {
                let period = days * DAY;
                let handoff = self.handoff.map_or(start_local.rem_euclid(DAY), time_ms);
                // Handoff j >= 1 is at `anchor + j * period` on the wall clock;
                // turn 0 starts at `start` itself.
                let anchor = start_local.div_euclid(DAY) * DAY + handoff;
                let boundary = |j: i64| -> Option<i64> {
                    if j == 0 {
                        return Some(start);
                    }
                    clock.instant(anchor.checked_add(j.checked_mul(period)?)?)
                };
                let mut j = (local - anchor).div_euclid(period).max(0);
                let mut steps = 0;
                while j > 0 && boundary(j)? > t {
                    j -= 1;
                    steps += 1;
                }
                let mut end = boundary(j + 1)?;
                while end <= t {
                    j += 1;
                    end = boundary(j + 1)?;
                    steps += 1;
                }
                (steps <= MAX_STEPS).then_some((j, end))
            }
        }
    }
}
