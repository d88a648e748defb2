//! [`Restriction`]: the daily or weekly windows a layer is on call in.

use super::civil::{self, weekday, DAY, HOUR};
use super::clock::Clock;
use jiff::civil::Time;
use serde::{Deserialize, Serialize};

/// A day of the week, written `"mon"` ... `"sun"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Day {
    /// Every day of the week, Monday first.
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    /// Monday = 0 ... Sunday = 6.
    pub fn index(self) -> u8 {
        self as u8
    }
}

/// Windows of wall-clock time in the schedule's zone, one starting on each
/// listed day (every day when `days` is empty):
///
/// ```toml
/// restrictions = [
///   { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00" },
///   { from = "20:00", to = "08:00" },   # daily, crossing midnight
/// ]
/// ```
///
/// A window runs from `from` on its day to the next `to`: when `to` is not
/// after `from` it ends the following day (`fri 20:00` to `sat 08:00`), and
/// `from == to` is a full 24 hours. Both ends become instants like every
/// wall-clock time of the schedule (a gap moves an end later, a fold takes the
/// first pass), so `08:00`–`20:00` is 12 hours on any day and `20:00`–`08:00`
/// is 11 or 13 hours across a DST change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    /// Days on which a window starts; empty for every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Day>,
    /// Wall-clock start of each window (`"08:00"`).
    #[serde(with = "civil::time")]
    pub from: Time,
    /// Wall-clock end of each window; at or before `from`, it ends the following day.
    #[serde(with = "civil::time")]
    pub to: Time,
}

impl Restriction {
    /// Every day of the week, `from` to `to`.
    pub fn daily(from: Time, to: Time) -> Restriction {
        Restriction {
            days: Vec::new(),
            from,
            to,
        }
    }

    /// On the given days, `from` to `to`.
    pub fn weekly(days: &[Day], from: Time, to: Time) -> Restriction {
        Restriction {
            days: days.to_vec(),
            from,
            to,
        }
    }

    /// Whether a window starts on the day numbered `day` (days since
    /// 1970-01-01 on the wall clock).
    fn starts_on(&self, day: i64) -> bool {
        self.days.is_empty() || self.days.iter().any(|d| d.index() == weekday(day))
    }

    /// The window starting on `day`, as wall-clock values `[start, end)`.
    fn window(&self, day: i64) -> (i64, i64) {
        let from = civil::time_ms(self.from);
        let mut len = (civil::time_ms(self.to) - from).rem_euclid(DAY);
        if len == 0 {
            len = DAY;
        }
        let start = day * DAY + from;
        (start, start + len)
    }
}

/// Days scanned each side of the wall-clock day of `t`. A window is at most a
/// day long and an offset is under 26 hours each way, so a window starting
/// more than 4 days before cannot reach `t`, and one starting more than 3 days
/// after cannot start within [`HORIZON`] of `t`.
const BEFORE: i64 = 4;
const AFTER: i64 = 3;
/// How far ahead the scan vouches for: `3 days - 2 * 26 hours`.
const HORIZON: i64 = 20 * HOUR;

/// Whether instant `t` (reading `local` on the wall clock) is inside a
/// window of any of `restrictions`, and an instant after `t` up to which that
/// does not change.
pub(crate) fn scan(restrictions: &[Restriction], clock: &Clock, t: i64, local: i64) -> (bool, i64) {
    let today = local.div_euclid(DAY);
    let mut inside = false;
    let mut next = t.saturating_add(HORIZON);
    for day in today - BEFORE..=today + AFTER {
        for r in restrictions.iter().filter(|r| r.starts_on(day)) {
            let (start, end) = r.window(day);
            let (Some(start), Some(end)) = (clock.instant(start), clock.instant(end)) else {
                continue;
            };
            if start >= end {
                // Squeezed out by a gap: no time on the clock falls inside.
                continue;
            }
            if start <= t && t < end {
                inside = true;
            }
            if start > t {
                next = next.min(start);
            }
            if end > t {
                next = next.min(end);
            }
        }
    }
    (inside, next)
}
