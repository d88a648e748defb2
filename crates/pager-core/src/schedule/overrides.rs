//! [`Override`]: one user taking the pager for a stretch of absolute time.

use super::civil;
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// `user` is on call from `start` to `end` (absolute instants, written in
/// RFC 3339 with an offset) in place of `replaces`, or in place of whoever is
/// on call when `replaces` is absent (and also when nobody is).
///
/// ```toml
/// [[schedules.triage.overrides]]
/// user = "erin"
/// replaces = "alice"
/// start = "2026-03-07T00:00:00Z"
/// end = "2026-03-09T00:00:00-05:00"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// Who takes the pager.
    pub user: String,
    /// Only stand in for this user, when they are on call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// When it starts, in milliseconds since the Unix epoch.
    #[serde(with = "civil::instant")]
    pub start: Millis,
    /// Exclusive.
    #[serde(with = "civil::instant")]
    pub end: Millis,
}

impl Override {
    /// Whether the override is in force at `t`.
    pub fn covers(&self, t: Millis) -> bool {
        self.start <= t && t < self.end
    }

    /// `[start, end)` on the signed scale the computation uses.
    pub(crate) fn span(&self) -> (i64, i64) {
        let at = |ms: Millis| i64::try_from(ms).unwrap_or(i64::MAX);
        (at(self.start), at(self.end))
    }
}
