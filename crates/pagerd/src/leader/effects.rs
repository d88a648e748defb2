//! The one contract between the core and the leader's loops: the [`Effect`]s of
//! each applied batch (see `pager_core::command::Effect`), routed from the state
//! machine to the loop that acts on them.
//!
//! - `Deliver { delivery, term }` puts a delivery on the dispatcher's work list;
//!   `DeliverySent`, `DeliveryFailed` and `DeliveryCancelled` take it off. The
//!   list is complete for a leader from its own `Takeover` on, because that
//!   command re-claims every unsettled delivery (a `Deliver` for each), and
//!   every later claim in the term emits its own.
//! - `WakeAt(t)` wakes the scheduler when the earliest deadline changed.
//!
//! Effects say *what changed*; the state says *what it is now*: the dispatcher
//! builds each page from the delivery's current row (it may have been
//! acknowledged since), and the scheduler reads the earliest deadline when it
//! wakes (a deadline that disappears emits nothing).

use pager_core::{DeliveryId, Effect};
use pager_raft::EffectSink;
use tokio::sync::{mpsc, watch};

/// A change to the dispatcher's work list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The leader of `term` must send `delivery`'s current attempt.
    Deliver { delivery: DeliveryId, term: u64 },
    /// The delivery is no longer pending (sent, failed, cancelled).
    Settled { delivery: DeliveryId },
}

/// The receiving ends, one per loop.
pub struct Routed {
    /// For the dispatcher, in log order. Unbounded: it only ever holds what the
    /// dispatcher has not read yet, and the state machine must never wait.
    pub claims: mpsc::UnboundedReceiver<Claim>,
    /// For the scheduler: changes whenever an apply moved the earliest deadline.
    pub wake: watch::Receiver<u64>,
}

/// A sink for the state machine and the receivers it feeds.
pub fn route() -> (EffectSink, Routed) {
    let (claims_tx, claims) = mpsc::unbounded_channel();
    let (wake_tx, wake) = watch::channel(0u64);
    let sink: EffectSink = Box::new(move |effects: Vec<Effect>| {
        let mut woke = false;
        for effect in effects {
            let claim = match effect {
                Effect::Deliver { delivery, term } => Claim::Deliver { delivery, term },
                Effect::DeliverySent { delivery }
                | Effect::DeliveryFailed { delivery, .. }
                | Effect::DeliveryCancelled { delivery } => Claim::Settled { delivery },
                Effect::WakeAt(_) => {
                    woke = true;
                    continue;
                }
                _ => continue,
            };
            // Fails only once the dispatcher has stopped (shutdown): nothing to tell then.
            let _ = claims_tx.send(claim);
        }
        if woke {
            wake_tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    });
    (sink, Routed { claims, wake })
}
