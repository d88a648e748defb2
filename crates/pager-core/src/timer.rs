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
    pub at: Millis,
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
    pub fn insert(&mut self, key: TimerKey) {
        if let Err(at) = self.0.binary_search(&key) {
            self.0.insert(at, key);
        }
    }

    pub fn remove(&mut self, key: &TimerKey) {
        if let Ok(at) = self.0.binary_search(key) {
            self.0.remove(at);
        }
    }

    pub fn contains(&self, key: &TimerKey) -> bool {
        self.0.binary_search(key).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, TimerKey> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Timer {
    /// Page the next level of track `track` (or repeat its policy, or page the fallback).
    Escalate { incident: IncidentId, track: u32 },
    /// Fire notification rule `rule` of `user`.
    Notify {
        incident: IncidentId,
        user: String,
        rule: u32,
        #[serde(default)]
        shadow: bool,
    },
    /// Retry a delivery that failed with a retryable error.
    Retry {
        incident: IncidentId,
        delivery: DeliveryId,
    },
    /// Snooze or acknowledgement timeout over: trigger the incident again.
    Retrigger { incident: IncidentId },
    /// The service's auto-resolve delay passed.
    AutoResolve { incident: IncidentId },
    /// A heartbeat monitor missed its ping.
    HeartbeatMissed { name: String },
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
            Timer::HeartbeatMissed { .. } => None,
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timers {
    #[serde(with = "timer_rows")]
    rows: BTreeMap<TimerKey, Timer>,
    next_seq: u64,
}

impl Timers {
    pub fn insert(&mut self, at: Millis, timer: Timer) -> TimerKey {
        self.next_seq += 1;
        let key = TimerKey {
            at,
            seq: self.next_seq,
        };
        self.rows.insert(key, timer);
        key
    }

    pub fn get(&self, key: &TimerKey) -> Option<&Timer> {
        self.rows.get(key)
    }

    pub fn contains(&self, key: &TimerKey) -> bool {
        self.rows.contains_key(key)
    }

    pub fn remove(&mut self, key: &TimerKey) -> Option<Timer> {
        self.rows.remove(key)
    }

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

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

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
