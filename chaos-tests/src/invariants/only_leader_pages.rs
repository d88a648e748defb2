//! No node sends a page for a term in which it was not leader, nor after its lease ran out.
//!
//! **Who sent a page.** Nothing in a request tells which node made it (the SMS body, the call
//! parameters and the mail are the same whichever node sends them), so the scenario gives each
//! node its own gate to each provider ([`crate::proxy::Gates`]): node `i`'s requests reach the
//! fake Twilio and the SMTP server from `127.0.0.(10+i)`, which they record.
//! [`ObservedPage::sender`] is that node.
//!
//! **Which term it sent in, and who led when.** From the nodes' logs ([`crate::elections`]):
//! each node logs `became leader ... term=T` before its `Takeover`, and sends nothing of a term
//! before that commits. The page's term is the latest term its sender had become leader of when
//! the provider received it.
//!
//! **When it was sent**: when the sender began the request ([`ObservedPage::sent_at`]): for
//! email the `EHLO` of its SMTP session (one per mail). A sender paused in the middle of that
//! session (SIGSTOP lands between `EHLO` and the final `.`) completes it when resumed,
//! long after its lease; no fence on the sender's side can take back a transaction already
//! begun, so such a mail counts as in flight at the fault (see `duplicates_in_flight`), not as
//! a page sent by a deposed leader.
//!
//! **The checks**, for every page node `N` began sending at `t`:
//! 1. `N` had become leader of some term `T` before `t`; otherwise it paged as a follower.
//! 2. No node had become leader of a later term more than `slack` before `t`: by then `N`'s
//!    lease had run out (a later leader is elected only after a majority stopped hearing from
//!    `N` for an election timeout). `slack` covers a send the leader's fence let through just
//!    before the new election: pagerd re-confirms its quorum before a page whose batch check
//!    is older than 500 ms (`FENCE_FRESH` in the dispatcher), plus the request's way to the
//!    provider. A zombie leader resumed after SIGSTOP must re-confirm and fail, so any page of
//!    its after the pause is caught here.
//!
//! And for the elections themselves: no two nodes became leader of the same term (Raft's
//! election safety, as far as the logs show it).
//!
//! Limits: a page that reached no provider is not seen; the log line trails the election by
//! the scheduler's reaction (milliseconds), which makes check 2 lenient by that much and
//! check 1 strict (a page is never sent before that line).

use super::Violation;
use crate::elections::Election;
use crate::history::epoch_ms;
use crate::pages::ObservedPage;
use std::collections::BTreeMap;
use std::time::Duration;

pub const NAME: &str = "only-the-leader-pages";

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Pages whose sender is known.
    pub attributed: usize,
    /// Pages whose sender is not (not through a gate): not checked.
    pub unattributed: usize,
    /// Distinct terms some node led.
    pub terms: usize,
    pub violations: Vec<Violation>,
}

/// Check `observed` against `elections` (see [`crate::elections::from_cluster`]). With
/// `require_sender`, a page of unknown origin is a violation (the scenario routed every node
/// through a gate, so it cannot happen).
pub fn check(
    elections: &[Election],
    observed: &[ObservedPage],
    slack: Duration,
    require_sender: bool,
) -> Outcome {
    let mut out = Outcome::default();
    let mut by_term: BTreeMap<u64, Vec<&Election>> = BTreeMap::new();
    for e in elections {
        by_term.entry(e.term).or_default().push(e);
    }
    out.terms = by_term.len();
    for (term, es) in &by_term {
        let mut nodes: Vec<u64> = es.iter().map(|e| e.node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.len() > 1 {
            out.violations.push(Violation {
                invariant: NAME,
                detail: format!("nodes {nodes:?} each became leader of term {term}"),
            });
        }
    }
    for p in observed {
        let what = || {
            format!(
                "{} to {} (incident {:?}, delivery {:?}) received at {} ms",
                p.channel.as_str(),
                p.to,
                p.incident,
                p.delivery,
                epoch_ms(p.received_at)
            )
        };
        let Some(node) = p.sender else {
            out.unattributed += 1;
            if require_sender {
                out.violations.push(Violation {
                    invariant: NAME,
                    detail: format!("{}: came from no node's gate", what()),
                });
            }
            continue;
        };
        out.attributed += 1;
        let led = elections
            .iter()
            .filter(|e| e.node == node && e.at <= p.sent_at)
            .max_by_key(|e| e.term);
        let Some(led) = led else {
            out.violations.push(Violation {
                invariant: NAME,
                detail: format!(
                    "{} was sent by node {node}, which had not become leader of any term",
                    what()
                ),
            });
            continue;
        };
        let successor = elections
            .iter()
            .filter(|e| e.term > led.term)
            .min_by_key(|e| e.at);
        if let Some(next) = successor {
            if next.at + slack < p.sent_at {
                let after = p.sent_at.duration_since(next.at).unwrap_or_default();
                out.violations.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "{} was sent by node {node} as leader of term {}, {} ms after node {} \
                         became leader of term {} (slack {} ms): its lease had run out",
                        what(),
                        led.term,
                        after.as_millis(),
                        next.node,
                        next.term,
                        slack.as_millis()
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::from_epoch_ms;
    use crate::pages::PageChannel;

    fn elected(term: u64, node: u64, at_ms: u64) -> Election {
        Election {
            term,
            node,
            at: from_epoch_ms(at_ms),
        }
    }

    fn page(sender: Option<u64>, at_ms: u64) -> ObservedPage {
        ObservedPage {
            channel: PageChannel::Sms,
            to: "+15550100001".into(),
            incident: Some(1),
            received_at: from_epoch_ms(at_ms),
            sent_at: from_epoch_ms(at_ms),
            delivery: Some(1),
            sender,
        }
    }

    #[test]
    fn pages_from_followers_zombies_and_nobody() {
        let slack = Duration::from_millis(600);
        // Node 1 leads term 2 from 1 s; node 2 takes term 3 at 10 s; node 1 term 5 at 20 s.
        let elections = [
            elected(2, 1, 1_000),
            elected(3, 2, 10_000),
            elected(5, 1, 20_000),
        ];
        let fine = [
            page(Some(1), 5_000),
            page(Some(1), 10_400), // in flight at the election
            page(Some(2), 12_000),
            page(Some(1), 21_000),
        ];
        let out = check(&elections, &fine, slack, true);
        assert!(out.violations.is_empty(), "{:?}", out.violations);
        assert_eq!((out.attributed, out.terms), (4, 3));

        let bad = [
            page(Some(2), 5_000),  // node 2 not leader yet
            page(Some(1), 12_000), // zombie of term 2
            page(Some(2), 20_900), // node 2 past node 1's term 5
            page(None, 6_000),     // nobody's
        ];
        let out = check(&elections, &bad, slack, true);
        assert_eq!(out.violations.len(), 4, "{:?}", out.violations);
        assert_eq!(
            check(&elections, &bad[3..], slack, false).violations.len(),
            0
        );
    }

    #[test]
    fn two_leaders_in_one_term_is_a_violation() {
        let out = check(
            &[elected(4, 1, 1_000), elected(4, 2, 1_100)],
            &[],
            Duration::ZERO,
            true,
        );
        assert_eq!(out.violations.len(), 1);
    }
}
