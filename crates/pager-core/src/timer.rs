//! Timers are data: every deadline is a row here, indexed by time. The leader
//! sleeps until [`Timers::next_deadline`] and proposes `Tick{at}`; `apply`
//! fires everything due, idempotently.

use crate::delivery::DeliveryId;
use crate::incident::IncidentId;
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Unique, time-ordered key: (due instant, sequence number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimerKey {
    /// When it is due, in milliseconds since the Unix epoch.
    pub at: Millis,
    /// Insertion order, unique across all timers: timers due at the same instant
    /// fire in the order they were set.
    pub seq: u64,
}

/// The keys of one incident's pending timers, ascending: usually one to three, so a sorted
/// `Vec` (16 bytes a key, one small allocation) rather than a `BTreeSet`, whose first node
/// alone takes 192 bytes. With 100k open incidents that was ~10% of a node's memory.
/// Serialized as the same ascending list a `BTreeSet` gives, so snapshots are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TimerSet(Vec<TimerKey>);

impl TimerSet {
    /// Add a key (nothing if it is there already).
    pub fn insert(&mut self, key: TimerKey) {
        if let Err(at) = self.0.binary_search(&key) {
            self.0.insert(at, key);
        }
    }

    /// Remove a key (nothing if it is absent).
    pub fn remove(&mut self, key: &TimerKey) {
        if let Ok(at) = self.0.binary_search(key) {
            self.0.remove(at);
        }
    }

    /// Whether the key is in the set.
    pub fn contains(&self, key: &TimerKey) -> bool {
        self.0.binary_search(key).is_ok()
    }

    /// The keys, ascending.
    pub fn iter(&self) -> std::slice::Iter<'_, TimerKey> {
        self.0.iter()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for TimerSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut keys = Vec::<TimerKey>::deserialize(d)?;
        keys.sort_unstable();
        keys.dedup();
        Ok(TimerSet(keys))
    }
}

impl IntoIterator for TimerSet {
    type Item = TimerKey;
    type IntoIter = std::vec::IntoIter<TimerKey>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a TimerSet {
    type Item = &'a TimerKey;
    type IntoIter = std::slice::Iter<'a, TimerKey>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What a timer does when it comes due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer {
    /// Page the next level of track `track` (or repeat its policy, or page the fallback).
    Escalate {
        /// The incident escalating.
        incident: IncidentId,
        /// Index of the track in the incident's `tracks` (0: the primary).
        track: u32,
    },
    /// Fire notification rule `rule` of `user`.
    Notify {
        /// The incident paging the user.
        incident: IncidentId,
        /// The user to notify.
        user: String,
        /// Index of the rule among the user's rules for the incident's urgency.
        rule: u32,
        /// Whether the user is paged as a shadow.
        #[serde(default)]
        shadow: bool,
    },
    /// Retry a delivery that failed with a retryable error.
    Retry {
        /// The incident of the delivery.
        incident: IncidentId,
        /// The delivery to claim and send again.
        delivery: DeliveryId,
    },
    /// Snooze or acknowledgement timeout over: trigger the incident again.
    Retrigger {
        /// The incident to trigger again.
        incident: IncidentId,
    },
    /// The service's auto-resolve delay passed.
    AutoResolve {
        /// The incident to resolve.
        incident: IncidentId,
    },
    /// A heartbeat monitor missed its ping.
    HeartbeatMissed {
        /// The monitor's name in the document's `heartbeats`.
        name: String,
    },
    /// An RCA is due (or still overdue): remind its assignee. Indexed on the
    /// RCA, not the incident, which compaction may forget first.
    RcaReminder {
        /// The incident whose RCA it is.
        incident: IncidentId,
    },
    /// A schedule's on-call changes hands: the handoff summary goes out.
    ShiftChange {
        /// The schedule.
        schedule: String,
    },
    /// A schedule's next shift starts in an hour: remind its person.
    ShiftReminder {
        /// The schedule.
        schedule: String,
    },
    /// A team's weekly page review email is due.
    WeeklyReport {
        /// The team.
        team: String,
    },
}

impl Timer {
    /// The incident whose timer index holds this timer, if any.
    pub fn incident(&self) -> Option<IncidentId> {
        match self {
            Timer::Escalate { incident, .. }
            | Timer::Notify { incident, .. }
            | Timer::Retry { incident, .. }
            | Timer::Retrigger { incident }
            | Timer::AutoResolve { incident } => Some(*incident),
            Timer::HeartbeatMissed { .. }
            | Timer::RcaReminder { .. }
            | Timer::ShiftChange { .. }
            | Timer::ShiftReminder { .. }
            | Timer::WeeklyReport { .. } => None,
        }
    }

    /// Timers that page; acknowledging an incident cancels them, and a
    /// maintenance window defers them.
    pub fn pages(&self) -> bool {
        matches!(
            self,
            Timer::Escalate { .. } | Timer::Notify { .. } | Timer::Retry { .. }
        )
    }
}

/// Every pending timer of the state, in due order (instant, then insertion).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timers {
    #[serde(with = "timer_rows")]
    rows: BTreeMap<TimerKey, Timer>,
    next_seq: u64,
}

impl Timers {
    /// Set a timer due at `at`; returns its key.
    pub fn insert(&mut self, at: Millis, timer: Timer) -> TimerKey {
        self.next_seq += 1;
        let key = TimerKey {
            at,
            seq: self.next_seq,
        };
        self.rows.insert(key, timer);
        key
    }

    /// The timer under `key`, while it is pending.
    pub fn get(&self, key: &TimerKey) -> Option<&Timer> {
        self.rows.get(key)
    }

    /// Whether the timer under `key` is still pending.
    pub fn contains(&self, key: &TimerKey) -> bool {
        self.rows.contains_key(key)
    }

    /// Remove the timer under `key` and return it.
    pub fn remove(&mut self, key: &TimerKey) -> Option<Timer> {
        self.rows.remove(key)
    }

    /// The earliest due instant, in milliseconds since the Unix epoch; None when
    /// no timer is pending.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.rows.keys().next().map(|k| k.at)
    }

    /// Remove and return the earliest timer due at or before `at`.
    pub fn pop_due(&mut self, at: Millis) -> Option<(TimerKey, Timer)> {
        let first = *self.rows.keys().next()?;
        if first.at > at {
            return None;
        }
        self.rows.remove(&first).map(|t| (first, t))
    }

    /// How many timers are pending.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every pending timer with its key, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (&TimerKey, &Timer)> {
        self.rows.iter()
    }
}

/// JSON maps need string keys; timers serialize as a list of rows instead.
mod timer_rows {
    use super::{Timer, TimerKey};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        rows: &BTreeMap<TimerKey, Timer>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(rows.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<TimerKey, Timer>, D::Error> {
        let rows: Vec<(TimerKey, Timer)> = Vec::deserialize(d)?;
        Ok(rows.into_iter().collect())
    }
}
