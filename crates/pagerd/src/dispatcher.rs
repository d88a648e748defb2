//! The leader's sender. After each apply it looks for deliveries claimed by
//! its own term that are not yet in flight, confirms it still holds a quorum,
//! sends them, and proposes each `Outcome`. Retries, backoff and fall-through
//! are decisions of `apply`, not of this loop.
//!
//! Fencing: only deliveries whose `claim_term` equals this node's current
//! leader term are sent, and only after `ensure_linearizable` confirmed the
//! term still leads a quorum. A deposed leader cannot commit, so it can claim
//! nothing new.

use crate::node::{ForwardRequest, Node};
use pager_core::{render, Command, ContactKind, SendResult};
use pager_notify::{mask, Method, Notifier, Page};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

/// How soon pages that could not go out are tried again.
const RETRY_UNSENT: Duration = Duration::from_millis(200);

/// (delivery, attempt, term) being sent by this node.
type InFlight = Arc<Mutex<HashSet<(u64, u32, u64)>>>;

pub async fn run(
    node: Arc<Node>,
    notifier: Notifier,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut metrics = node.raft.metrics();
    let mut applied = node.applied.clone();
    let mut took_over = node.takeover_term.subscribe();
    let in_flight: InFlight = Arc::default();
    let permits = Arc::new(Semaphore::new(node.cfg.dispatch_concurrency));
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mut unsent = false;
        if let Some(term) = node.leader_term() {
            // Nothing goes out before this process's takeover committed.
            if *took_over.borrow_and_update() == term {
                unsent = dispatch(&node, &notifier, &in_flight, &permits, term).await;
            }
        }
        // Pages that could not go out (leadership not confirmed) are retried
        // on an interval too: on an idle cluster no new apply would wake us.
        let retry = async {
            if unsent {
                tokio::time::sleep(RETRY_UNSENT).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = retry => {}
            _ = applied.changed() => {}
            _ = took_over.changed() => {}
            _ = metrics.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn dispatch(
    node: &Arc<Node>,
    notifier: &Notifier,
    in_flight: &InFlight,
    permits: &Arc<Semaphore>,
    term: u64,
) -> bool {
    let batch: Vec<(Page, u32)> = {
        let mut busy = in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // Sends of an earlier term of ours settle or get re-claimed; forget them.
        busy.retain(|k| k.2 == term);
        node.read(|s| {
            s.pending_deliveries()
                .filter(|d| d.claim_term == term && !busy.contains(&(d.id, d.attempt, term)))
                .filter_map(|d| {
                    let inc = s.incidents.get(&d.incident)?;
                    let text = render::page(inc, d);
                    let method = match d.method {
                        ContactKind::Sms => Method::Sms,
                        ContactKind::Voice => Method::Voice,
                        ContactKind::Email => Method::Email,
                    };
                    let page = Page {
                        delivery_id: d.id,
                        method,
                        address: d.address.clone(),
                        subject: text.subject,
                        text: text.text,
                        html: None,
                    };
                    Some((page, d.attempt))
                })
                .collect()
        })
    };
    if batch.is_empty() {
        return false;
    }
    // Fence: this term must still lead a quorum before anything goes out.
    if let Err(e) = node.raft.ensure_linearizable().await {
        warn!(node = node.id(), term, cause = %e, "not sending: leadership not confirmed");
        return true;
    }
    for (page, attempt) in batch {
        let key = (page.delivery_id, attempt, term);
        {
            let mut busy = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if !busy.insert(key) {
                continue;
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return true;
        };
        // Waiting for a permit can take long under load: the incident may
        // have been acknowledged, or this node deposed, in the meantime.
        if !still_sendable(node, page.delivery_id, attempt, term) {
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            continue;
        }
        let (node, notifier, in_flight) = (node.clone(), notifier.clone(), in_flight.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let result = match notifier.send(&page).await {
                Ok(sent) => {
                    info!(node = node.id(), term, delivery = page.delivery_id, attempt, method = ?page.method,
                        to = %mask::address(&page.address), provider_id = %sent.provider_id, "page sent");
                    SendResult::Sent {
                        provider_id: sent.provider_id,
                    }
                }
                Err(e) => {
                    warn!(node = node.id(), term, delivery = page.delivery_id, attempt, method = ?page.method,
                        to = %mask::address(&page.address), code = ?e.code, retryable = e.retryable, cause = %e.message, "page failed");
                    SendResult::Failed {
                        retryable: e.retryable,
                        in_doubt: e.in_doubt,
                        code: e.code,
                        message: e.message,
                    }
                }
            };
            record_outcome(&node, page.delivery_id, attempt, term, result).await;
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
    }
    false
}

/// The delivery is still pending in this attempt, claimed by `term`, and this
/// node still believes it leads `term` (the quorum was confirmed for the batch).
fn still_sendable(node: &Node, delivery: u64, attempt: u32, term: u64) -> bool {
    node.leader_term() == Some(term)
        && node.read(|s| {
            s.deliveries.get(&delivery).is_some_and(|d| {
                d.status == pager_core::DeliveryStatus::Pending
                    && d.attempt == attempt
                    && d.claim_term == term
            })
        })
}

/// Propose the outcome, retrying while this node still leads `term`. If
/// leadership is lost the delivery stays unsettled and the next leader
/// re-claims it (a possible duplicate, counted in the state).
async fn record_outcome(node: &Node, delivery: u64, attempt: u32, term: u64, result: SendResult) {
    let cmd = Command::Outcome {
        at: 0,
        delivery,
        attempt,
        result,
    };
    let mut backoff = Duration::from_millis(20);
    loop {
        match node.serve_local(ForwardRequest::Write(cmd.clone())).await {
            Ok(_) => return,
            Err(e) if node.leader_term() == Some(term) => {
                error!(node = node.id(), delivery, cause = %e, "outcome not committed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => {
                warn!(node = node.id(), delivery, cause = %e, "lost leadership before the outcome committed");
                return;
            }
        }
    }
}
