//! Every page the on-call document requires arrived by its deadline plus the failover bound.
//!
//! Expected pages are matched, earliest deadline first, to the earliest received page with the
//! same incident, channel and recipient. A match later than the bound is a miss, and so is an
//! expectation with no match; a received page earlier than its deadline is a violation too
//! (an escalation that fired early). Received pages left unmatched are duplicates: pages
//! beyond what the document asks for (a re-sent delivery, or a page after an acknowledgement);
//! messages of no incident (test pages, invitations, RCA reminders) are not pages here.
//!
//! Two refinements for scenarios with faults: an *optional* page (due within the bound
//! before its incident's acknowledgement, so a failover may let the acknowledgement win) takes
//! a matching page if one arrived and is never missed; and a page due in an [`Outage`] (no
//! quorum, a provider unreachable: windows the scenario caused on purpose) may be later by
//! [`Outage::allowance`].

use super::Violation;
use crate::history::{epoch_ms, from_epoch_ms, ExpectedPage, Outage};
use crate::pages::ObservedPage;
use std::time::{Duration, SystemTime};

pub const NAME: &str = "page-by-deadline";

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub expected: usize,
    pub missed: usize,
    /// Received pages matching no expectation.
    pub duplicates: Vec<ObservedPage>,
    /// How late each matched page was after its deadline (zero when on time).
    pub delays: Vec<(ExpectedPage, Duration)>,
    pub violations: Vec<Violation>,
}

impl Outcome {
    pub fn worst_delay(&self) -> Option<Duration> {
        self.delays.iter().map(|(_, d)| *d).max()
    }
}

pub fn check(
    expected: &[ExpectedPage],
    optional: &[ExpectedPage],
    outages: &[Outage],
    observed: &[ObservedPage],
    bound: Duration,
    now: SystemTime,
) -> Outcome {
    let mut out = Outcome {
        expected: expected.len(),
        ..Outcome::default()
    };
    let mut order: Vec<&ExpectedPage> = expected.iter().collect();
    order.sort_by_key(|e| e.due_ms);
    let mut used = vec![false; observed.len()];
    for e in order {
        let due = from_epoch_ms(e.due_ms);
        let bound = bound
            + outages
                .iter()
                .map(|o| o.allowance(e.channel, due, bound))
                .sum::<Duration>();
        let found = observed.iter().enumerate().position(|(i, p)| {
            !used[i] && p.incident == Some(e.incident) && p.channel == e.channel && p.to == e.to
        });
        let what = format!(
            "{} to {} for incident {} due at {} ms",
            e.channel.as_str(),
            e.to,
            e.incident,
            e.due_ms
        );
        let Some(i) = found else {
            out.missed += 1;
            let note = if now < due + bound {
                " (checked before its deadline plus the bound had passed)"
            } else {
                ""
            };
            out.violations.push(Violation {
                invariant: NAME,
                detail: format!("{what} never arrived{note}"),
            });
            continue;
        };
        used[i] = true;
        let received = observed[i].received_at;
        match received.duration_since(due) {
            Ok(late) => {
                if late > bound {
                    out.missed += 1;
                    out.violations.push(Violation {
                        invariant: NAME,
                        detail: format!(
                            "{what} arrived {} ms late, over the bound of {} ms",
                            late.as_millis(),
                            bound.as_millis()
                        ),
                    });
                }
                out.delays.push((e.clone(), late));
            }
            Err(early) => {
                out.violations.push(Violation {
                    invariant: NAME,
                    detail: format!(
                        "{what} arrived {} ms before its deadline (at {} ms)",
                        early.duration().as_millis(),
                        epoch_ms(received)
                    ),
                });
                out.delays.push((e.clone(), Duration::ZERO));
            }
        }
    }
    for e in optional {
        let found = observed.iter().enumerate().position(|(i, p)| {
            !used[i] && p.incident == Some(e.incident) && p.channel == e.channel && p.to == e.to
        });
        if let Some(i) = found {
            used[i] = true;
        }
    }
    // A message of no incident (a test page, an invitation, an RCA reminder) is not a page
    // the document requires: it is no duplicate of one. `duplicates_in_flight` still counts
    // its copies by delivery.
    out.duplicates = observed
        .iter()
        .zip(&used)
        .filter(|(p, used)| !**used && p.incident.is_some())
        .map(|(p, _)| p.clone())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::PageChannel;

    fn exp(incident: u64, to: &str, due_ms: u64) -> ExpectedPage {
        ExpectedPage {
            incident,
            channel: PageChannel::Sms,
            to: to.into(),
            due_ms,
        }
    }

    fn got(incident: u64, to: &str, at_ms: u64) -> ObservedPage {
        ObservedPage {
            channel: PageChannel::Sms,
            to: to.into(),
            incident: Some(incident),
            received_at: from_epoch_ms(at_ms),
            sent_at: from_epoch_ms(at_ms),
            delivery: None,
            sender: None,
        }
    }

    #[test]
    fn on_time_late_missing_early_and_duplicate_pages() {
        let bound = Duration::from_secs(3);
        let now = from_epoch_ms(100_000);
        let expected = [
            exp(1, "a", 1_000),
            exp(1, "b", 5_000),
            exp(2, "a", 1_000),
            exp(3, "a", 9_000),
        ];
        let observed = [
            got(1, "a", 1_100),
            got(2, "a", 1_200),
            got(1, "a", 1_300), // sent twice
            got(1, "b", 9_000), // 4 s late
            got(3, "a", 8_000), // early
        ];
        let out = check(&expected, &[], &[], &observed, bound, now);
        assert_eq!(out.expected, 4);
        assert_eq!(out.missed, 1, "{:?}", out.violations);
        assert_eq!(out.duplicates, vec![got(1, "a", 1_300)]);
        assert_eq!(
            out.violations.len(),
            2,
            "late and early: {:?}",
            out.violations
        );
        assert_eq!(out.worst_delay(), Some(Duration::from_millis(4_000)));
        let none = check(&expected, &[], &[], &[], bound, now);
        assert_eq!(none.missed, 4);
    }

    #[test]
    fn optional_pages_and_outages() {
        let bound = Duration::from_secs(3);
        let now = from_epoch_ms(100_000);
        let expected = [exp(1, "a", 10_000)];
        // Due at 10 s, arrived at 20 s: late, unless Twilio was down from 9 s to 15 s.
        let observed = [got(1, "a", 20_000), got(2, "a", 30_000)];
        let late = check(&expected, &[], &[], &observed, bound, now);
        assert_eq!(late.missed, 1);
        let outage = Outage {
            what: "twilio-down".into(),
            channels: vec![PageChannel::Sms],
            from: from_epoch_ms(9_000),
            to: from_epoch_ms(15_000),
        };
        let excused = check(
            &expected,
            &[],
            std::slice::from_ref(&outage),
            &observed,
            bound,
            now,
        );
        assert_eq!(excused.missed, 0, "{:?}", excused.violations);
        let mail = Outage {
            channels: vec![PageChannel::Email],
            ..outage
        };
        assert_eq!(
            check(&expected, &[], &[mail], &observed, bound, now).missed,
            1,
            "an SMTP outage excuses no SMS"
        );
        // The page of incident 2 is a duplicate unless it was optional; a missing optional
        // page is no miss.
        assert_eq!(late.duplicates.len(), 1);
        let optional = [exp(2, "a", 29_000), exp(3, "a", 29_000)];
        let with = check(&expected, &optional, &[], &observed, bound, now);
        assert!(with.duplicates.is_empty());
        assert_eq!(with.missed, 1, "only the late page");
    }
}
