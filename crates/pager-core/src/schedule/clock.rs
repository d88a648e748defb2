//! [`Clock`]: conversions between instants and wall-clock (local) values in
//! one time zone, the only place the schedule asks the time zone anything.
//!
//! Far from any transition of the zone, an instant `t` reads `t + offset` on
//! the wall clock and a wall-clock value `c` happens once, at `c - offset`.
//! The clock remembers the stretch of instants around the last one it was
//! focused on where that is exact, so most conversions are one subtraction;
//! near a transition it asks jiff, which resolves gaps and folds with the
//! *compatible* disambiguation (gap: the later instant, fold: the earlier).

use super::civil::{local_ms, to_datetime, DAY};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Keep this far from transitions: more than the largest possible difference
/// between two offsets (jiff bounds an offset to under 26 hours each way), so
/// no other instant can share a wall-clock value with one inside the stretch.
const MARGIN: i64 = 3 * DAY;

pub(crate) struct Clock<'a> {
    tz: &'a TimeZone,
    /// Instants in `[lo, hi)` are at least [`MARGIN`] from a transition and
    /// all have this offset (milliseconds to add to an instant to read the
    /// wall clock). Empty (`lo == hi`) until [`Clock::focus`] finds one.
    lo: i64,
    hi: i64,
    offset: i64,
}

impl<'a> Clock<'a> {
    pub(crate) fn new(tz: &'a TimeZone) -> Clock<'a> {
        Clock {
            tz,
            lo: 0,
            hi: 0,
            offset: 0,
        }
    }

    /// Prepare for conversions near `t`: find the transition-free stretch
    /// around it, unless `t` is already in the remembered one.
    pub(crate) fn focus(&mut self, t: i64) {
        if self.lo <= t && t < self.hi {
            return;
        }
        self.lo = 0;
        self.hi = 0;
        let (Some(ts), Some(before), Some(after)) = (stamp(t), stamp(t.saturating_add(1)), stamp(t.saturating_sub(1))) else {
            return;
        };
        // A transition at exactly `t` is found by at least one of the two
        // searches whatever their inclusiveness, and then `t` is not inside.
        let prev = self
            .tz
            .preceding(before)
            .next()
            .map_or(i64::MIN, |tr| tr.timestamp().as_millisecond());
        let next = self
            .tz
            .following(after)
            .next()
            .map_or(i64::MAX, |tr| tr.timestamp().as_millisecond());
        let lo = prev.saturating_add(MARGIN);
        let hi = next.saturating_sub(MARGIN);
        if lo <= t && t < hi {
            self.lo = lo;
            self.hi = hi;
            self.offset = i64::from(self.tz.to_offset(ts).seconds()) * 1000;
        }
    }

    /// The wall-clock value of instant `t`.
    pub(crate) fn local(&self, t: i64) -> Option<i64> {
        if self.lo <= t && t < self.hi {
            return Some(t + self.offset);
        }
        Some(local_ms(self.tz.to_datetime(stamp(t)?)))
    }

    /// The instant a wall-clock value happens: the only one, or in a fold the
    /// earlier, or in a gap the instant as far past the gap's end as the value
    /// is past its start (jiff's compatible disambiguation).
    pub(crate) fn instant(&self, local: i64) -> Option<i64> {
        let fast = local.checked_sub(self.offset)?;
        if self.lo <= fast && fast < self.hi {
            return Some(fast);
        }
        let ts = self
            .tz
            .to_ambiguous_timestamp(to_datetime(local)?)
            .compatible()
            .ok()?;
        Some(ts.as_millisecond())
    }
}

fn stamp(t: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(t).ok()
}
