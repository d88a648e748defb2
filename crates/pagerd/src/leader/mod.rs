//! The leader's work, and the watch every node keeps on itself. Each loop
//! runs on every node and acts only while this node leads (or, for
//! [`monitor`], whatever it is). A loop with state of its own is a task
//! struct that owns it ([`dispatcher::Dispatcher`], [`scheduler::Scheduler`]);
//! what several loops and the metrics share is [`LeaderState`]. Which voter stands first when the leader goes
//! silent is consensus mechanics: `pager_raft::elections`, started beside
//! these in `crate::start`.
//!
//! - [`effects`]: the core's effects of each apply, routed to the loops below
//! - [`scheduler`]: the clock (`Takeover` on election, `Tick` at the next
//!   deadline)
//! - [`dispatcher`] with [`pages`], [`pacer`] and [`latency`]: sending the
//!   deliveries claimed by this term, at the pace providers allow, and the
//!   page-latency histogram
//! - [`slack`]: the Slack sends (an incident's channel message, DM pages)
//!   and the lookup of one left in doubt
//! - [`retention`]: proposing `Compact` for incidents resolved long ago
//! - [`transfer`]: handing leadership to a preferred region, or away before a
//!   planned stop
//! - [`monitor`]: quorum health, the dead man's switch, the isolation notice

pub mod dispatcher;
pub mod effects;
pub mod jira;
pub mod latency;
pub mod monitor;
pub mod outbound;
pub mod pacer;
pub mod pages;
pub mod retention;
pub mod scheduler;
pub mod slack;
pub mod transfer;
pub mod webhook;

use crate::config::DispatchSettings;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::{watch, RwLock};

/// What the leader's loops share with each other, the write path and the
/// metrics: one per process, empty at start (a new leader starts with empty
/// pacing buckets and no sends under way).
pub struct LeaderState {
    /// The term in which *this process* committed its `Takeover`. The
    /// dispatcher sends only in that term: until then, deliveries claimed by
    /// the term may have been sent by an earlier process (written by the
    /// scheduler, read by the dispatcher).
    pub takeover_term: watch::Sender<u64>,
    /// When the leader may send each page (account rate, per-recipient throttle).
    pub pacer: pacer::Pacer,
    /// Claim → provider accepted, per page this node sent as leader.
    pub page_latency: latency::Histogram,
    /// Sends under way and whether new ones may start (a hand-over drains them
    /// first, so their outcomes commit here instead of being re-sent).
    pub sends: transfer::Sends,
    /// Writes take it shared; a leadership transfer takes it exclusively to
    /// hold new writes while the target catches up and campaigns.
    pub transfer_gate: RwLock<()>,
    /// Failed integration requests this process sent as leader, by
    /// (provider, error class).
    integration_failures: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl LeaderState {
    pub fn new(dispatch: &DispatchSettings) -> LeaderState {
        LeaderState {
            takeover_term: watch::Sender::new(0),
            pacer: pacer::Pacer::new(dispatch),
            page_latency: latency::Histogram::default(),
            sends: transfer::Sends::default(),
            transfer_gate: RwLock::new(()),
            integration_failures: Mutex::default(),
        }
    }

    /// Count a failed integration request (`pagerd_integration_failures_total`).
    pub fn integration_failed(&self, provider: &'static str, class: &'static str) {
        let mut failures = self
            .integration_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *failures.entry((provider, class)).or_default() += 1;
    }

    /// The counts of [`Self::integration_failed`], in order.
    pub fn integration_failures(&self) -> Vec<((&'static str, &'static str), u64)> {
        let failures = self
            .integration_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        failures.iter().map(|(k, v)| (*k, *v)).collect()
    }
}
