//! [`Timeline`]: the schedule evaluated at instants, and walked from one
//! change to the next. The public queries in [`super`] are built on it.

use super::civil::DAY;
use super::clock::Clock;
use super::layer::Bounds;
use super::Schedule;

/// Instants from 9001-01-01T00:00:00Z on have nobody on call: wall-clock
/// times are validated up to the year 9000, and past the year 9999 jiff's
/// conversions saturate rather than fail.
pub(crate) const END_OF_TIME: i64 = 2_568_020 * DAY; // 9001-01-01T00:00, local

/// Who is on call at an instant, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer<'s> {
    pub user: Option<&'s str>,
    /// The topmost layer with someone on call, before overrides; its shadows
    /// are copied.
    pub layer: Option<usize>,
    /// Whether an override put `user` on call.
    pub by_override: bool,
}

impl<'s> Answer<'s> {
    const NOBODY: Answer<'static> = Answer {
        user: None,
        layer: None,
        by_override: false,
    };

    /// The layer a shift is credited to: `None` for an override.
    pub fn source(&self) -> Option<usize> {
        if self.by_override {
            None
        } else {
            self.layer
        }
    }
}

/// A stretch `[start, end)` with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece<'s> {
    pub start: i64,
    pub end: i64,
    pub answer: Answer<'s>,
}

pub(crate) struct Timeline<'s> {
    schedule: &'s Schedule,
    clock: Clock<'s>,
    /// Per layer, its start and end instants (`None`: never on call).
    bounds: Vec<Option<Bounds>>,
}

impl<'s> Timeline<'s> {
    /// `None` when the schedule's zone did not resolve.
    pub fn new(schedule: &'s Schedule) -> Option<Timeline<'s>> {
        let tz = schedule.time_zone.time_zone()?;
        let clock = Clock::new(tz);
        let bounds = schedule.layers.iter().map(|l| l.bounds(&clock)).collect();
        Some(Timeline {
            schedule,
            clock,
            bounds,
        })
    }

    /// The answer at `t`, and an instant after `t` before which it does not
    /// change.
    pub fn at(&mut self, t: i64) -> (Answer<'s>, i64) {
        if t >= END_OF_TIME {
            return (Answer::NOBODY, i64::MAX);
        }
        self.clock.focus(t);
        let Some(local) = self.clock.local(t) else {
            return (Answer::NOBODY, i64::MAX);
        };
        let mut answer = Answer::NOBODY;
        let mut next = i64::MAX;
        // Top down: the first layer with someone wins, and the layers under it
        // cannot change the answer until it (or one above it) changes.
        for (i, (layer, bounds)) in self
            .schedule
            .layers
            .iter()
            .zip(&self.bounds)
            .enumerate()
            .rev()
        {
            let Some(bounds) = *bounds else {
                continue;
            };
            let at = layer.at(bounds, &self.clock, t, local);
            next = next.min(at.next);
            if let Some(user) = at.user.and_then(|u| layer.users.get(u)) {
                answer.user = Some(user.as_str());
                answer.layer = Some(i);
                break;
            }
        }
        for o in &self.schedule.overrides {
            let (start, end) = o.span();
            if t < start {
                next = next.min(start);
                continue;
            }
            if t >= end {
                continue;
            }
            next = next.min(end);
            let applies = match &o.replaces {
                None => true,
                Some(r) => answer.user == Some(r.as_str()),
            };
            if applies {
                answer.user = Some(o.user.as_str());
                answer.by_override = true;
            }
        }
        (answer, next.max(t.saturating_add(1)))
    }

    /// The stretches of `[from, to)`, consecutive ones with the same user and
    /// source merged.
    pub fn pieces(&mut self, from: i64, to: i64) -> Vec<Piece<'s>> {
        let mut out: Vec<Piece<'s>> = Vec::new();
        let mut t = from;
        while t < to {
            let (answer, next) = self.at(t);
            let end = next.min(to);
            match out.last_mut() {
                Some(last)
                    if last.answer.user == answer.user
                        && last.answer.source() == answer.source() =>
                {
                    last.end = end;
                }
                _ => out.push(Piece {
                    start: t,
                    end,
                    answer,
                }),
            }
            t = end;
        }
        out
    }
}
