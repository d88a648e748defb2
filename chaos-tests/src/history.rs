//! What the clients of a scenario saw and what it expects: the events the cluster accepted,
//! the acknowledgements it committed, the faults injected, and the pages the on-call document
//! says must go out and when. The invariants check this against the cluster's state and the
//! pages the providers received.

use crate::pages::PageChannel;
use std::time::{Duration, SystemTime};

/// An event `Events.Send` accepted (returned OK: committed on a majority).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub incident: u64,
    pub dedup_key: String,
    pub folded: bool,
    pub commit_index: u64,
    /// The node the client sent it to.
    pub via: u64,
}

/// An acknowledgement the cluster committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub incident: u64,
    pub commit_index: u64,
    /// When the client got the answer: the acknowledgement committed no later than this.
    pub returned_at: SystemTime,
}

/// A page the on-call document requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPage {
    pub incident: u64,
    pub channel: PageChannel,
    pub to: String,
    /// When it is due, in ms since the Unix epoch on the leaders' clock (the incident's
    /// `created_at_ms` plus the escalation delays).
    pub due_ms: u64,
}

/// A fault the scenario injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    /// e.g. `kill-leader`.
    pub kind: String,
    pub node: u64,
    pub at: SystemTime,
    /// From the fault to a new leader seen in `Cluster.Status`, when the fault deposed one.
    pub failover: Option<Duration>,
}

/// A window in which pages could not go out through no fault of pagerd's: no quorum
/// (every node down) or a provider unreachable. A page due in it may arrive late by the rest
/// of the window (twice that for a provider, whose retries back off exponentially) on top of
/// the failover bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// e.g. `twilio-down`, `cluster-down`.
    pub what: String,
    /// The channels it stopped; empty: every channel (the cluster itself was down).
    pub channels: Vec<PageChannel>,
    pub from: SystemTime,
    pub to: SystemTime,
}

impl Outage {
    /// Whether it stops pages of `channel`.
    pub fn covers(&self, channel: PageChannel) -> bool {
        self.channels.is_empty() || self.channels.contains(&channel)
    }

    /// Extra lateness allowed for a page of `channel` due at `due`: the rest of the window
    /// after `due` (doubled for a provider outage: retries back off 1 s, 2 s, 4 s, ...), when
    /// the window is open at `due` or opens within `bound` after it.
    pub fn allowance(&self, channel: PageChannel, due: SystemTime, bound: Duration) -> Duration {
        if !self.covers(channel) || self.to <= due || self.from > due + bound {
            return Duration::ZERO;
        }
        let rest = self.to.duration_since(due).unwrap_or_default();
        if self.channels.is_empty() {
            rest
        } else {
            rest * 2
        }
    }
}

/// Pages in flight (claimed, no outcome: `pagerd_deliveries_pending` of the leader) just
/// before a fault, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub fault: String,
    pub pending: u64,
}

#[derive(Debug, Clone, Default)]
pub struct History {
    pub accepted: Vec<Accepted>,
    pub acks: Vec<Acked>,
    pub expected: Vec<ExpectedPage>,
    pub faults: Vec<FaultRecord>,
    /// Pages that may or may not arrive: due so close before the incident's acknowledgement
    /// (within the failover bound) that a failover may let the acknowledgement win.
    pub optional: Vec<ExpectedPage>,
    pub outages: Vec<Outage>,
    pub in_flight: Vec<InFlight>,
}

impl History {
    /// The highest commit index a client was told about.
    pub fn max_commit_index(&self) -> u64 {
        self.accepted
            .iter()
            .map(|a| a.commit_index)
            .chain(self.acks.iter().map(|a| a.commit_index))
            .max()
            .unwrap_or(0)
    }

    /// Distinct incident ids of accepted events, ascending.
    pub fn incidents(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .accepted
            .iter()
            .map(|a| a.incident)
            .filter(|&i| i != 0)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn expect(&mut self, incident: u64, channel: PageChannel, to: &str, due_ms: u64) {
        self.expected.push(ExpectedPage {
            incident,
            channel,
            to: to.to_string(),
            due_ms,
        });
    }
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The instant `ms` after the Unix epoch.
pub fn from_epoch_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}
