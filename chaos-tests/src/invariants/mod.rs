//! Invariants checked after a scenario, one per file:
//!
//! - [`no_lost_events`]: every incident a client got back from `Events.Send` exists, with its
//!   dedup key, on every live node.
//! - [`pages_by_deadline`]: every page the on-call document requires arrived at its provider
//!   by its deadline plus the failover bound; pages beyond those are counted as duplicates.
//! - [`no_page_after_ack`]: after an acknowledgement committed, at most the page already in
//!   flight arrives for that incident.
//! - [`only_leader_pages`]: no node sends a page for a term it did not lead, nor after its
//!   lease ran out.
//! - [`duplicates_in_flight`]: duplicates are counted and never exceed the pages in flight at
//!   a fault.
//! - [`replicas_identical`]: once quiet, every live node holds the same state.
//!
//! [`check_all`] runs the first three (what any run can check); [`check_scenario`] runs all
//! six, for scenarios that route the nodes through the harness's proxies.

pub mod duplicates_in_flight;
pub mod no_lost_events;
pub mod no_page_after_ack;
pub mod only_leader_pages;
pub mod pages_by_deadline;
pub mod replicas_identical;

use crate::cluster::Cluster;
use crate::elections;
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

/// Bounds of the checks only [`check_scenario`] makes, on top of [`Bounds`].
#[derive(Debug, Clone, Copy)]
pub struct ScenarioBounds {
    pub base: Bounds,
    /// How long after a later leader's election a deposed leader's page may still arrive (see
    /// [`only_leader_pages`]).
    pub lease_slack: Duration,
    /// How long to wait for every node to apply the same index (see [`replicas_identical`]).
    pub quiet: Duration,
}

/// What every invariant found; the last three only from [`check_scenario`].
#[derive(Debug, Clone)]
pub struct Findings {
    pub events: no_lost_events::Outcome,
    pub pages: pages_by_deadline::Outcome,
    pub after_ack: Vec<Violation>,
    pub senders: Option<only_leader_pages::Outcome>,
    pub duplicates: Option<duplicates_in_flight::Outcome>,
    pub replicas: Option<replicas_identical::Outcome>,
}

impl Findings {
    pub fn violations(&self) -> Vec<Violation> {
        let mut all = self.events.violations.clone();
        all.extend(self.pages.violations.iter().cloned());
        all.extend(self.after_ack.iter().cloned());
        if let Some(s) = &self.senders {
            all.extend(s.violations.iter().cloned());
        }
        if let Some(d) = &self.duplicates {
            all.extend(d.violations.iter().cloned());
        }
        if let Some(r) = &self.replicas {
            all.extend(r.violations.iter().cloned());
        }
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
        &history.optional,
        &history.outages,
        observed,
        bounds.failover,
        SystemTime::now(),
    );
    let after_ack = no_page_after_ack::check(&history.acks, observed, bounds.in_flight_after_ack);
    Ok(Findings {
        events,
        pages,
        after_ack,
        senders: None,
        duplicates: None,
        replicas: None,
    })
}

/// Every invariant. Call it once the scenario is over and every live node can be reached:
/// replicas are compared first (waiting for them to agree on an index), then the other
/// checks read a quiet cluster.
pub async fn check_scenario(
    cluster: &Cluster,
    history: &History,
    observed: &[ObservedPage],
    bounds: ScenarioBounds,
) -> anyhow::Result<Findings> {
    let replicas = replicas_identical::check(cluster, bounds.quiet).await?;
    let mut findings = check_all(cluster, history, observed, bounds.base).await?;
    let elections = elections::from_cluster(cluster)?;
    let require_sender = cluster.net().is_ok();
    findings.senders = Some(only_leader_pages::check(
        &elections,
        observed,
        bounds.lease_slack,
        require_sender,
    ));
    let node = cluster
        .live()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no live node to read deliveries from"))?;
    let settled = duplicates_in_flight::settled(cluster, node).await?;
    findings.duplicates = Some(duplicates_in_flight::check(observed, &settled));
    findings.replicas = Some(replicas);
    Ok(findings)
}
