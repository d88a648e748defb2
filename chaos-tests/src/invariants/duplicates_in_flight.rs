//! Duplicates are counted and never exceed the pages in flight at a fault.
//!
//! A duplicate is a second (third, ...) page of one delivery: each page says which delivery it
//! carries out ([`ObservedPage::delivery`]). pagerd may send a delivery again only when the
//! first send may have gone out but its outcome was not recorded, i.e. when the delivery was
//! *in flight at a fault*:
//! - a leader change while it was claimed and unsettled: the new leader (or the same node,
//!   restarted into its term) re-claims it, which the replicated delivery counts
//!   (`Delivery.reclaims`);
//! - a provider whose answer was lost (a timeout, a connection cut mid-request): the attempt
//!   fails *in doubt* and a later attempt may repeat it (`Delivery.attempt` counts attempts).
//!
//! So for every delivery, copies − 1 ≤ reclaims + (attempts − 1), read from the final
//! replicated state. A duplicate outside a fault (a dispatcher race, a re-send nobody
//! counted, as in the same-term restart bug of `t90_issue_same_term_resend`) breaks it.
//! An SMS in doubt is looked up at Twilio before a re-send, so for SMS the allowance is
//! rarely used; calls and mail are re-sent.

use super::Violation;
use crate::client;
use crate::cluster::Cluster;
use crate::pages::{ObservedPage, PageChannel};
use anyhow::Context as _;
use pager_proto::pager::v1 as pb;
use std::collections::BTreeMap;

pub const NAME: &str = "duplicates-within-in-flight";

/// What the replicated state says of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settled {
    pub reclaims: u32,
    pub attempt: u32,
}

impl Settled {
    /// Sends of it that may have repeated an earlier one.
    pub fn allowance(self) -> u32 {
        self.reclaims + self.attempt.saturating_sub(1)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Pages beyond the first of their delivery.
    pub duplicates: usize,
    /// Their allowance summed over the deliveries that were paged.
    pub in_flight_at_faults: usize,
    /// Pages that name no delivery (not checked).
    pub unnamed: usize,
    /// Each duplicated delivery: `email#12x2 (reclaims 1, attempts 1)`.
    pub duplicated: Vec<String>,
    pub violations: Vec<Violation>,
}

/// Every delivery of every incident on node `node`.
pub async fn settled(cluster: &Cluster, node: u64) -> anyhow::Result<BTreeMap<u64, Settled>> {
    let mut incidents = client::incidents(&cluster.channel(node)?);
    let mut out = BTreeMap::new();
    for inc in crate::scenario::all_incidents(cluster, node).await? {
        let full = incidents
            .get(pb::GetIncidentRequest {
                id: inc.id,
                ..Default::default()
            })
            .await
            .with_context(|| format!("Incidents.Get({}) on node {node}", inc.id))?
            .into_inner();
        for d in full.deliveries {
            out.insert(
                d.id,
                Settled {
                    reclaims: d.reclaims,
                    attempt: d.attempt,
                },
            );
        }
    }
    Ok(out)
}

pub fn check(observed: &[ObservedPage], settled: &BTreeMap<u64, Settled>) -> Outcome {
    let mut out = Outcome::default();
    let mut copies: BTreeMap<(u64, PageChannel, &str), usize> = BTreeMap::new();
    for p in observed {
        match p.delivery {
            Some(d) => *copies.entry((d, p.channel, p.to.as_str())).or_default() += 1,
            None => out.unnamed += 1,
        }
    }
    for ((delivery, channel, to), n) in copies {
        let s = settled.get(&delivery).copied();
        let allowed = s.map_or(0, Settled::allowance) as usize;
        out.in_flight_at_faults += allowed;
        let extra = n - 1;
        out.duplicates += extra;
        if extra > 0 {
            out.duplicated.push(format!(
                "{}#{delivery}x{n} (reclaims {}, attempts {})",
                channel.as_str(),
                s.map_or(0, |s| s.reclaims),
                s.map_or(0, |s| s.attempt)
            ));
        }
        if extra > allowed {
            out.violations.push(Violation {
                invariant: NAME,
                detail: format!(
                    "delivery {delivery} ({} to {to}) arrived {n} times; it was in flight at \
                     a fault {allowed} times (reclaims {}, attempts {})",
                    channel.as_str(),
                    s.map_or(0, |s| s.reclaims),
                    s.map_or(0, |s| s.attempt),
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::from_epoch_ms;

    fn page(delivery: u64, at: u64) -> ObservedPage {
        ObservedPage {
            channel: PageChannel::Email,
            to: "alice@example.com".into(),
            incident: Some(1),
            received_at: from_epoch_ms(at),
            sent_at: from_epoch_ms(at),
            delivery: Some(delivery),
            sender: Some(1),
        }
    }

    #[test]
    fn a_duplicate_needs_a_fault_it_was_in_flight_at() {
        let settled: BTreeMap<u64, Settled> = [
            (
                1,
                Settled {
                    reclaims: 1,
                    attempt: 1,
                },
            ),
            (
                2,
                Settled {
                    reclaims: 0,
                    attempt: 1,
                },
            ),
            (
                3,
                Settled {
                    reclaims: 0,
                    attempt: 2,
                },
            ),
        ]
        .into_iter()
        .collect();
        let fine = [page(1, 1), page(1, 2), page(2, 3), page(3, 4), page(3, 5)];
        let out = check(&fine, &settled);
        assert!(out.violations.is_empty(), "{:?}", out.violations);
        assert_eq!(out.duplicates, 2);
        let bad = [page(2, 1), page(2, 2), page(1, 3), page(1, 4), page(1, 5)];
        let out = check(&bad, &settled);
        assert_eq!(out.violations.len(), 2, "{:?}", out.violations);
        assert_eq!(out.duplicates, 3);
    }
}
