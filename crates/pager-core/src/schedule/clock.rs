//! [`Clock`]: conversions between instants and wall-clock (local) values in
//! one time zone, the only place the schedule asks the time zone anything.
//!
//! A zone's offset changes only at its transitions, a few a year. The clock
//! remembers a stretch of instants around the last one it was focused on that
//! contains at most one transition and stays [`MARGIN`] clear of any other;
//! inside it an instant reads `t + offset` on the wall clock and a wall-clock
//! value `c` can only happen at `c - before` or `c - after`, so conversions
//! are a subtraction and a comparison. Elsewhere (transitions days apart, the
//! ends of time) it asks jiff. Either way ambiguity is resolved with jiff's
//! *compatible* disambiguation: in a gap the later instant (the value read
//! with the offset from before the gap), in a fold the earlier.

use super::civil::{local_ms, to_datetime, DAY};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Keep this far from the transitions outside the stretch: more than the
/// largest possible difference between two offsets (jiff bounds an offset to
/// under 26 hours each way), so no instant outside the stretch can read the
/// same wall-clock value as one inside it.
const MARGIN: i64 = 3 * DAY;

pub(crate) struct Clock<'a> {
    tz: &'a TimeZone,
    /// The stretch: empty (`lo == hi`) until [`Clock::focus`] finds one.
    lo: i64,
    hi: i64,
    /// The transition inside the stretch (`i64::MAX` if none), and the offsets
    /// before it and from it on, in milliseconds to add to an instant to read
    /// the wall clock.
    at: i64,
    before: i64,
    after: i64,
}

impl<'a> Clock<'a> {
    pub(crate) fn new(tz: &'a TimeZone) -> Clock<'a> {
        Clock {
            tz,
            lo: 0,
            hi: 0,
            at: i64::MAX,
            before: 0,
            after: 0,
        }
    }

    /// Prepare for conversions near `t`, unless `t` is already inside the
    /// remembered stretch.
    pub(crate) fn focus(&mut self, t: i64) {
        if self.lo <= t && t < self.hi {
            return;
        }
        self.lo = 0;
        self.hi = 0;
        if let Some((lo, hi, at, before, after)) = self.stretch(t) {
            if lo <= t && t < hi {
                (self.lo, self.hi, self.at, self.before, self.after) = (lo, hi, at, before, after);
            }
        }
    }

    /// A stretch around `t`: (lo, hi, transition, before, after).
    fn stretch(&self, t: i64) -> Option<(i64, i64, i64, i64, i64)> {
        // Searching from t + 1 back and from t - 1 on finds a transition at
        // exactly `t` whichever way jiff treats the bounds; the check below
        // then keeps the one that is really before (at or before `t`).
        let prev = self.previous(t.checked_add(1)?)?;
        let next = self.following(t.checked_sub(1)?)?;
        let (p, n) = (
            prev.map_or(i64::MIN, |x| x.0),
            next.map_or(i64::MAX, |x| x.0),
        );
        if !(p <= t && t < n) {
            return None;
        }
        let offset = offset_ms(self.tz.to_offset(stamp(t)?));
        let (lo, hi) = (p.saturating_add(MARGIN), n.saturating_sub(MARGIN));
        if lo <= t && t < hi {
            return Some((lo, hi, i64::MAX, offset, offset));
        }
        if lo <= t {
            // The next transition is near: take it in, up to the one after.
            let (n, after) = next?;
            let n2 = self.following(n.checked_add(1)?)?.map_or(i64::MAX, |x| x.0);
            return Some((lo, n2.saturating_sub(MARGIN), n, offset, after));
        }
        if t < hi {
            // The previous transition is near: take it in, from the one before.
            let (p, _) = prev?;
            let p0 = self.previous(p.checked_sub(1)?)?.map_or(i64::MIN, |x| x.0);
            let before = offset_ms(self.tz.to_offset(stamp(p.checked_sub(1)?)?));
            return Some((p0.saturating_add(MARGIN), hi, p, before, offset));
        }
        None
    }

    /// The last transition at or before `t` (or just before; see `stretch`),
    /// as (instant, offset from then on). `None` if `t` is out of range.
    #[allow(clippy::option_option)]
    fn previous(&self, t: i64) -> Option<Option<(i64, i64)>> {
        let tr = self.tz.preceding(stamp(t)?).next();
        Some(tr.map(|tr| (tr.timestamp().as_millisecond(), offset_ms(tr.offset()))))
    }

    /// The first transition after `t` (or at it), like [`Clock::previous`].
    #[allow(clippy::option_option)]
    fn following(&self, t: i64) -> Option<Option<(i64, i64)>> {
        let tr = self.tz.following(stamp(t)?).next();
        Some(tr.map(|tr| (tr.timestamp().as_millisecond(), offset_ms(tr.offset()))))
    }

    /// The wall-clock value of instant `t`.
    pub(crate) fn local(&self, t: i64) -> Option<i64> {
        if self.lo <= t && t < self.hi {
            return Some(t + if t < self.at { self.before } else { self.after });
        }
        Some(local_ms(self.tz.to_datetime(stamp(t)?)))
    }

    /// The instant a wall-clock value happens: the only one, or in a fold the
    /// earlier, or in a gap the instant as far past the gap's end as the value
    /// is past its start (jiff's compatible disambiguation).
    pub(crate) fn instant(&self, local: i64) -> Option<i64> {
        let early = local.checked_sub(self.before)?;
        let late = local.checked_sub(self.after)?;
        let inside = |u: i64| self.lo <= u && u < self.hi;
        if inside(early) && inside(late) {
            // Inside the stretch only these two instants can read `local`;
            // each does if it is on its side of the transition.
            return Some(match (early < self.at, late >= self.at) {
                (true, true) => early.min(late),
                (true, false) => early,
                (false, true) => late,
                // Neither: a gap (the clocks went forward), read with the
                // offset from before it.
                (false, false) => early,
            });
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

fn offset_ms(offset: jiff::tz::Offset) -> i64 {
    i64::from(offset.seconds()) * 1000
}
