//! Invariants checked after a scenario, one per file:
//!
//! - [`no_lost_events`]: every incident a client got back from `Events.Send` exists, with its
//!   dedup key, on every live node.
//! - [`pages_by_deadline`]: every page the on-call document requires arrived at its provider
//!   by its deadline plus the failover bound; pages beyond those are counted as duplicates.
//! - [`no_page_after_ack`]: after an acknowledgement committed, at most the page already in
//!   flight arrives for that incident.

pub mod no_lost_events;
pub mod no_page_after_ack;
pub mod pages_by_deadline;

use crate::cluster::Cluster;
use crate::history::History;
use crate::pages::ObservedPage;
use std::fmt;
use std::time::{Duration, SystemTime};

/// One broken invariant, with what a human needs to look into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

/// Bounds the checks allow.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// How late after its deadline a page may arrive: one failover.
    pub failover: Duration,
    /// Pages of an incident allowed to arrive after its acknowledgement committed.
    pub in_flight_after_ack: usize,
    /// How long a live node may take to apply the last index a client was told about.
    pub catch_up: Duration,
}

/// What every invariant found.
#[derive(Debug, Clone)]
pub struct Findings {
    pub events: no_lost_events::Outcome,
    pub pages: pages_by_deadline::Outcome,
    pub after_ack: Vec<Violation>,
}

impl Findings {
    pub fn violations(&self) -> Vec<Violation> {
        let mut all = self.events.violations.clone();
        all.extend(self.pages.violations.iter().cloned());
        all.extend(self.after_ack.iter().cloned());
        all
    }
}

/// Run every invariant over `history` and the pages the providers received.
pub async fn check_all(
    cluster: &Cluster,
    history: &History,
    observed: &[ObservedPage],
    bounds: Bounds,
) -> anyhow::Result<Findings> {
    let events = no_lost_events::check(cluster, history, bounds.catch_up).await?;
    let pages = pages_by_deadline::check(
        &history.expected,
        observed,
        bounds.failover,
        SystemTime::now(),
    );
    let after_ack = no_page_after_ack::check(&history.acks, observed, bounds.in_flight_after_ack);
    Ok(Findings {
        events,
        pages,
        after_ack,
    })
}
