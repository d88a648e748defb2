//! [`Rotation`]: how long each user's turn in a layer lasts.

use super::civil::{DAY, HOUR};
use crate::time::Span;
use serde::{Deserialize, Serialize};

/// The length of one turn.
///
/// ```toml
/// rotation = "weekly"              # or "hourly", "daily"
/// rotation = { days = 14 }         # every 14 calendar days
/// rotation = { custom = "36h" }    # a fixed span of absolute time
/// ```
///
/// `daily`, `weekly` and `days` count calendar days in the schedule's zone:
/// the handoff stays at the same wall-clock time and a turn spanning a DST
/// change is an hour shorter or longer. `hourly` and `custom` count absolute
/// time: a `custom = "24h"` handoff moves by an hour on the wall clock when
/// the clocks change (use `{ days = 1 }`, i.e. `daily`, to avoid that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    /// Turns of one hour of absolute time.
    Hourly,
    /// Turns of one calendar day, handing off at the same wall-clock time.
    Daily,
    /// Turns of seven calendar days, handing off at the same wall-clock time.
    Weekly,
    /// Every this many calendar days (1 to [`Rotation::MAX_DAYS`]).
    Days(u32),
    /// A fixed span of absolute time, at least [`Rotation::MIN_CUSTOM`].
    Custom(Span),
}

/// A rotation reduced to what the computation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Turns of this many calendar days, handing off at a wall-clock time.
    Civil { days: i64 },
    /// Turns of this many milliseconds of absolute time.
    Absolute { ms: i64 },
}

impl Rotation {
    /// Longest `days` rotation, about ten years.
    pub const MAX_DAYS: u32 = 3660;
    /// Shortest custom span: one hour.
    pub const MIN_CUSTOM: Span = Span(HOUR as u64);
    /// Longest custom span, as long as the longest day rotation.
    pub const MAX_CUSTOM: Span = Span(Self::MAX_DAYS as u64 * DAY as u64);

    /// Whether turns are counted on the wall clock (and `handoff` applies).
    pub fn is_civil(self) -> bool {
        matches!(self, Rotation::Daily | Rotation::Weekly | Rotation::Days(_))
    }

    /// `None` for a length out of range (reported by validation).
    pub(crate) fn step(self) -> Option<Step> {
        match self {
            Rotation::Hourly => Some(Step::Absolute { ms: HOUR }),
            Rotation::Daily => Some(Step::Civil { days: 1 }),
            Rotation::Weekly => Some(Step::Civil { days: 7 }),
            Rotation::Days(n) if (1..=Self::MAX_DAYS).contains(&n) => {
                Some(Step::Civil { days: i64::from(n) })
            }
            Rotation::Custom(span) if (Self::MIN_CUSTOM..=Self::MAX_CUSTOM).contains(&span) => {
                i64::try_from(span.millis())
                    .ok()
                    .map(|ms| Step::Absolute { ms })
            }
            Rotation::Days(_) | Rotation::Custom(_) => None,
        }
    }
}
