//! Deliveries after they are created: reclaimed by a new leader, their
//! outcomes (sent, failed, in doubt), retries with backoff, cancellation.

use super::{Cx, State, TEST_PAGES_PER_HOUR};
use crate::auth::TokenRole;
use crate::command::{Effect, Rejection, Response, SendResult};
use crate::delivery::{DeliveryId, DeliveryStatus, Purpose, MAX_ATTEMPTS, UNREACHABLE_CODES};
use crate::incident::IncidentId;
use crate::oncall::ContactMethod;
use crate::time::Millis;
use crate::timer::Timer;
use std::sync::Arc;

impl State {
    /// Re-claim for this term every delivery that is claimed and unsettled.
    pub(super) fn reclaim_unsettled(&mut self, cx: &mut Cx) {
        let unsettled: Vec<DeliveryId> = self.pending.iter().copied().collect();
        for id in unsettled {
            if let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) {
                d.claim_term = cx.meta.term;
                d.reclaims += 1;
                d.in_doubt = true;
                d.updated_at = cx.at;
                self.stats.deliveries_reclaimed += 1;
                cx.effects.push(Effect::Reclaimed {
                    delivery: id,
                    term: cx.meta.term,
                });
                cx.effects.push(Effect::Deliver {
                    delivery: id,
                    term: cx.meta.term,
                });
            }
        }
    }

    pub(super) fn outcome(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        attempt: u32,
        result: &SendResult,
    ) -> Response {
        let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) else {
            return Response::Rejected(Rejection::NotFound {
                field: "delivery".into(),
                what: format!("delivery {id}"),
            });
        };
        if d.attempt != attempt {
            return Response::Noop; // an outcome of an earlier attempt: already settled
        }
        match d.purpose {
            Purpose::Chat { step } => return self.chat_outcome(cx, id, attempt, step, result),
            Purpose::Ticket { step } => return self.ticket_outcome(cx, id, attempt, step, result),
            Purpose::Webhook { event } => return self.hook_outcome(cx, id, event, result),
            _ => {}
        }
        let incident = d.incident;
        match (d.status, result) {
            (
                DeliveryStatus::Pending,
                SendResult::Sent {
                    provider_id,
                    reconciled,
                },
            ) => {
                d.status = DeliveryStatus::Sent;
                d.provider_id = provider_id.clone();
                d.updated_at = cx.at;
                d.in_doubt = false;
                let what = if *reconciled {
                    format!(
                        "{} to {} found sent by an earlier leader (attempt {attempt}): not sent again",
                        d.method.as_str(),
                        d.user
                    )
                } else {
                    format!(
                        "{} to {} sent (attempt {attempt})",
                        d.method.as_str(),
                        d.user
                    )
                };
                self.pending.remove(&id);
                self.stats.deliveries_sent += 1;
                if *reconciled {
                    self.stats.deliveries_reconciled += 1;
                }
                cx.effects.push(Effect::DeliverySent { delivery: id });
                self.note(incident, cx.stamp(), "pagerd", what);
            }
            (
                DeliveryStatus::Pending,
                SendResult::Failed {
                    retryable,
                    in_doubt,
                    code,
                    message,
                },
            ) => {
                let (method, address, user, shadow) =
                    (d.method, d.address.clone(), d.user.clone(), d.shadow);
                if *in_doubt {
                    self.stats.deliveries_in_doubt += 1;
                }
                // Still in doubt if an earlier claim was and this attempt
                // proved nothing (it never reached the provider).
                d.in_doubt = *in_doubt || (d.in_doubt && *retryable);
                d.error = match code {
                    Some(c) => format!("{c}: {message}"),
                    None => message.clone(),
                };
                d.updated_at = cx.at;
                self.pending.remove(&id);
                let what;
                let retry_at = if *retryable && attempt < MAX_ATTEMPTS {
                    d.status = DeliveryStatus::RetryWait;
                    let when = cx.at + backoff(id, attempt);
                    what = format!(
                        "{} to {} failed, retrying: {}",
                        d.method.as_str(),
                        d.user,
                        d.error
                    );
                    self.set_timer(
                        incident,
                        when,
                        Timer::Retry {
                            incident,
                            delivery: id,
                        },
                    );
                    Some(when)
                } else {
                    d.status = DeliveryStatus::Failed;
                    what = format!("{} to {} failed: {}", d.method.as_str(), d.user, d.error);
                    self.stats.deliveries_failed += 1;
                    None
                };
                cx.effects.push(Effect::DeliveryFailed {
                    delivery: id,
                    retry_at,
                });
                self.note(incident, cx.stamp(), "pagerd", what);
                if retry_at.is_none() {
                    if let Some(c) = code.filter(|c| UNREACHABLE_CODES.contains(c)) {
                        self.mark_unreachable(cx, method, &address, message, Some(c));
                    }
                    // Failed for good: the user's next contact method now,
                    // not after its delay.
                    self.advance_user(cx, incident, &user, shadow);
                }
            }
            (DeliveryStatus::Cancelled, SendResult::Sent { provider_id, .. }) => {
                // It was in flight when the incident was acknowledged.
                d.provider_id = provider_id.clone();
                d.updated_at = cx.at;
            }
            _ => {} // already settled (a duplicate outcome after a re-claim)
        }
        Response::Noop
    }

    /// A test page to one contact method of `user`; see [`Command::TestPage`].
    pub(super) fn test_page(&mut self, cx: &mut Cx, user: &str, contact: &str) -> Response {
        let Some(u) = self.config.users.get(user) else {
            return unknown_user(user);
        };
        let Some(cm) = u.contact_methods.iter().find(|c| c.name == contact) else {
            return Response::Rejected(Rejection::NotFound {
                field: "contact".into(),
                what: format!("contact method {contact:?} of {user}"),
            });
        };
        let cm = cm.clone();
        self.standalone(cx, user, Purpose::Test, &cm, "contact")
    }

    /// An invitation to the console by email; see [`Command::Invite`].
    pub(super) fn invite(&mut self, cx: &mut Cx, user: &str, role: TokenRole) -> Response {
        if !self.config.users.contains_key(user) {
            return unknown_user(user);
        }
        let email = self.email_of(user);
        let Some(cm) = email else {
            return Response::Rejected(Rejection::Invalid {
                field: "user".into(),
                reason: format!("{user} has no email address to send the invitation to"),
            });
        };
        let version = self
            .credentials
            .get(user)
            .map(|c| c.sessions_version)
            .unwrap_or(0);
        let purpose = Purpose::Invite { role, version };
        self.standalone(cx, user, purpose, &cm, "user")
    }

    /// A delivery of no incident (a test page, an invitation), at most
    /// [`TEST_PAGES_PER_HOUR`] per user an hour; `field` is the one a refusal names.
    fn standalone(
        &mut self,
        cx: &mut Cx,
        user: &str,
        purpose: Purpose,
        cm: &ContactMethod,
        field: &str,
    ) -> Response {
        let hour_ago = cx.at.saturating_sub(3_600_000);
        let recent = self
            .deliveries
            .values()
            .rev()
            .take_while(|d| d.created_at >= hour_ago)
            .filter(|d| {
                matches!(d.purpose, Purpose::Test | Purpose::Invite { .. }) && d.user == user
            })
            .count();
        if recent >= TEST_PAGES_PER_HOUR {
            return Response::Rejected(Rejection::Invalid {
                field: field.into(),
                reason: format!(
                    "at most {TEST_PAGES_PER_HOUR} test pages and invitations an hour per user; try later"
                ),
            });
        }
        let id = self.queue_standalone(cx, user, purpose, cm);
        Response::Queued { delivery: id }
    }

    pub(super) fn retry(&mut self, cx: &mut Cx, id: DeliveryId) {
        let Some(d) = self.deliveries.get_mut(&id).map(Arc::make_mut) else {
            return;
        };
        if d.status != DeliveryStatus::RetryWait {
            return;
        }
        d.status = DeliveryStatus::Pending;
        d.attempt += 1;
        d.claim_term = cx.meta.term;
        d.claimed_at = cx.at;
        d.updated_at = cx.at;
        self.pending.insert(id);
        cx.effects.push(Effect::Deliver {
            delivery: id,
            term: cx.meta.term,
        });
    }

    pub(super) fn cancel_deliveries(&mut self, cx: &mut Cx, id: IncidentId) {
        let Some(inc) = self.incidents.get(&id) else {
            return;
        };
        for did in &inc.deliveries {
            if let Some(d) = self.deliveries.get_mut(did).map(Arc::make_mut) {
                if matches!(
                    d.status,
                    DeliveryStatus::Pending | DeliveryStatus::RetryWait
                ) {
                    d.status = DeliveryStatus::Cancelled;
                    d.updated_at = cx.at;
                    self.pending.remove(did);
                    cx.effects
                        .push(Effect::DeliveryCancelled { delivery: *did });
                }
            }
        }
    }
}

/// Exponential backoff from 1 s, capped at 60 s, with a jitter of up to
/// 250 ms derived from the delivery id (deterministic: no RNG in apply).
pub(super) fn backoff(id: DeliveryId, attempt: u32) -> Millis {
    let base = 1_000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(6))
        .min(60_000);
    base + (id.wrapping_mul(7_919) % 250)
}

fn unknown_user(user: &str) -> Response {
    Response::Rejected(Rejection::NotFound {
        field: "user".into(),
        what: format!("user {user:?} in the on-call document"),
    })
}

/// When a failed delivery that is not a page is tried again.
#[derive(Debug, Clone, Copy)]
pub(super) enum RetryRule {
    /// Up to [`MAX_ATTEMPTS`], with [`backoff`] (Slack and Jira steps).
    Attempts,
    /// While the next attempt would start before `until`, waiting
    /// `backoff(attempt)` (webhook events: 24 hours).
    Until {
        until: Millis,
        backoff: fn(u64, u32) -> Millis,
        key: u64,
    },
}

/// A delivery that is not a page, settled: its incident, and the provider's
/// id (sent) or the error (failed for good).
pub(super) type Settled = (IncidentId, Result<String, String>);

impl State {
    /// Record the outcome of a delivery that is not among its incident's
    /// pages: sent, retried as `rule` says (its timer owned by no incident,
    /// so compacting the incident cannot drop it), or failed for good.
    /// `None` while it waits for a retry, or when it was settled already (a
    /// duplicate outcome after a re-claim).
    pub(super) fn settle_detached(
        &mut self,
        cx: &mut Cx,
        id: DeliveryId,
        attempt: u32,
        result: &SendResult,
        rule: RetryRule,
    ) -> Option<Settled> {
        let d = self.deliveries.get_mut(&id).map(Arc::make_mut)?;
        if d.status != DeliveryStatus::Pending {
            return None;
        }
        let incident = d.incident;
        d.updated_at = cx.at;
        self.pending.remove(&id);
        match result {
            SendResult::Sent {
                provider_id,
                reconciled,
            } => {
                d.status = DeliveryStatus::Sent;
                d.provider_id = provider_id.clone();
                d.in_doubt = false;
                self.stats.deliveries_sent += 1;
                if *reconciled {
                    self.stats.deliveries_reconciled += 1;
                }
                cx.effects.push(Effect::DeliverySent { delivery: id });
                Some((incident, Ok(provider_id.clone())))
            }
            SendResult::Failed {
                retryable,
                in_doubt,
                code,
                message,
            } => {
                if *in_doubt {
                    self.stats.deliveries_in_doubt += 1;
                }
                d.in_doubt = *in_doubt || (d.in_doubt && *retryable);
                d.error = match code {
                    Some(c) => format!("{c}: {message}"),
                    None => message.clone(),
                };
                let retry_at = match rule {
                    RetryRule::Attempts => {
                        (*retryable && attempt < MAX_ATTEMPTS).then(|| cx.at + backoff(id, attempt))
                    }
                    RetryRule::Until {
                        until,
                        backoff,
                        key,
                    } => Some(cx.at + backoff(key, attempt))
                        .filter(|when| *retryable && *when < until),
                };
                if let Some(when) = retry_at {
                    d.status = DeliveryStatus::RetryWait;
                    self.set_timer(
                        0,
                        when,
                        Timer::Retry {
                            incident: 0,
                            delivery: id,
                        },
                    );
                    cx.effects.push(Effect::DeliveryFailed {
                        delivery: id,
                        retry_at: Some(when),
                    });
                    None
                } else {
                    d.status = DeliveryStatus::Failed;
                    self.stats.deliveries_failed += 1;
                    let error = d.error.clone();
                    cx.effects.push(Effect::DeliveryFailed {
                        delivery: id,
                        retry_at: None,
                    });
                    Some((incident, Err(error)))
                }
            }
        }
    }
}
