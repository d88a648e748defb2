//! pager-core: the paging domain as a pure, deterministic state machine.
//!
//! It owns incidents, escalation, deliveries and timers, and the on-call
//! document they are planned from. No I/O, no async, no clock, no RNG: every
//! instant arrives inside a committed [`Command`], stamped by the Raft leader,
//! so the same log applied anywhere yields the same [`State`], byte for byte.
//!
//! ```text
//!  source event ─► Command::Ingest ─┐
//!  leader clock ─► Command::Tick ───┤            ┌─► Response (to the proposer)
//!  send result  ─► Command::Outcome ┼─► apply ───┤
//!  operator     ─► Command::Ack ... ┘            └─► Effects: Deliver{delivery, term},
//!                                                    WakeAt(t), IncidentOpened, ...
//! ```
//!
//! Layout:
//! - [`state`]: [`State`] and [`State::apply`], escalation and delivery rules
//! - [`command`]: [`Command`], [`Response`], [`Effect`]; [`rejection`]: [`Rejection`]
//! - [`oncall`]: the on-call document and its validation; [`diff`]: what a new one changes
//! - [`schedule`]: who is on call at an instant (rotations, restrictions, overrides, DST)
//! - [`routing`]: rules that route, re-rate or suppress incoming events
//! - [`query`]: who is on call for a service or user; simulated page plans
//! - [`event`], [`incident`], [`delivery`], [`timer`]: the rows of the state
//! - [`render`]: the text of a page; [`reply`]: the reply codes it advertises and how
//!   phones' answers are read back
//! - [`time`]: instants and spans (`"5m"`)

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod auth;
pub mod chat;
pub mod command;
pub mod delivery;
pub mod diff;
pub mod event;
pub mod ical;
pub mod incident;
pub mod oncall;
pub mod query;
pub mod rca;
pub mod rejection;
pub mod render;
pub mod reply;
pub mod report;
pub mod routing;
pub mod schedule;
pub mod state;
pub mod ticket;
pub mod time;
pub mod timer;
pub mod webhook;

pub use auth::{ApiToken, Credential, TokenRole};
pub use command::{Command, Effect, Response, SendResult};
pub use delivery::{Delivery, DeliveryId, DeliveryStatus, PhoneAction, Unreachable};
pub use event::{Event, EventAction, Severity};
pub use incident::{Incident, IncidentId, IncidentStatus};
pub use oncall::{ContactKind, OnCallDoc, Urgency};
pub use rca::{Rca, RcaStatus, Stage};
pub use rejection::Rejection;
pub use state::{Applied, State, Stats};
pub use time::{Millis, Span};

use serde::{Deserialize, Serialize};

/// Position of a committed command in the Raft log.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogMeta {
    /// Index of the entry in the Raft log; incident revisions are these indexes.
    pub index: u64,
    /// Raft term of the leader that appended the entry; deliveries are claimed for it.
    pub term: u64,
}
