//! An incident's Jira ticket: created when a high-urgency incident of a
//! service with `jira` opens, then moved through its workflow as the
//! incident and its RCA move.
//!
//! ```text
//!   open ──► Create ──sent (key)──► Move Mitigated ──► Move RCA Completed
//!                                 └──────────► Move Duplicate (from anywhere)
//!             one step in flight at a time; the next is chosen when one
//!             ends, from where the incident and its RCA are then
//! ```
//!
//! Each step is a delivery like a page (claimed by term, retried, reclaimed
//! after a failover). A create left in doubt is looked up at Jira by its
//! label (`pagerd-delivery-ID`) before it is sent again; a move is
//! idempotent (an issue already in the status asked for is left alone).

use crate::delivery::DeliveryId;
use serde::{Deserialize, Serialize};

/// Where a service's incidents open tickets, and what its workflow calls the
/// moves (a transition's name, or the name of the status it leads to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraTarget {
    /// The project key, `OPS`.
    pub project: String,
    /// The issue type's name.
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// Where a resolved incident's ticket goes.
    #[serde(default = "default_mitigated")]
    pub mitigated: String,
    /// Where a merged or duplicate incident's ticket goes.
    #[serde(default = "default_duplicate")]
    pub duplicate: String,
    /// Where the ticket goes when the incident's RCA is completed.
    #[serde(default = "default_rca_completed")]
    pub rca_completed: String,
}

fn default_issue_type() -> String {
    "Incident".into()
}
fn default_mitigated() -> String {
    "Mitigated".into()
}
fn default_duplicate() -> String {
    "Duplicate".into()
}
fn default_rca_completed() -> String {
    "RCA Completed".into()
}

impl JiraTarget {
    /// The name configured for moving to `stage`.
    pub fn name_of(&self, stage: TicketStage) -> &str {
        match stage {
            TicketStage::Open => "",
            TicketStage::Mitigated => &self.mitigated,
            TicketStage::RcaCompleted => &self.rca_completed,
            TicketStage::Duplicate => &self.duplicate,
        }
    }
}

/// Where a ticket is in its workflow, as pagerd moved it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStage {
    /// Created (or being created).
    #[default]
    Open,
    /// The incident is resolved.
    Mitigated,
    /// Its RCA is complete.
    RcaCompleted,
    /// Merged into another incident or marked a duplicate: final.
    Duplicate,
}

impl TicketStage {
    /// The word used on the wire and on the incident's page.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStage::Open => "open",
            TicketStage::Mitigated => "mitigated",
            TicketStage::RcaCompleted => "rca_completed",
            TicketStage::Duplicate => "duplicate",
        }
    }

    /// The next move from `self` towards `want`: Mitigated comes before RCA
    /// Completed (workflows usually demand it); Duplicate is reached from
    /// anywhere and left for nothing.
    pub fn next_towards(self, want: TicketStage) -> Option<TicketStage> {
        match (self, want) {
            (TicketStage::Duplicate, _) => None,
            (_, TicketStage::Duplicate) => Some(TicketStage::Duplicate),
            (at, want) if want <= at => None,
            (TicketStage::Open, _) => Some(TicketStage::Mitigated),
            (_, want) => Some(want),
        }
    }
}

/// One request to Jira about an incident's ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStep {
    /// `POST /rest/api/3/issue`, assigned to the responder.
    Create,
    /// A transition to `to`.
    Move {
        /// The stage it reaches.
        to: TicketStage,
    },
}

impl TicketStep {
    /// The word used in logs and on the incident's page.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStep::Create => "create",
            TicketStep::Move { .. } => "move",
        }
    }
}

/// An incident's ticket: where it is, and what is in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The service's `jira` as it was when the incident opened.
    pub target: JiraTarget,
    /// The issue key, `OPS-12`; empty until the create is out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The stage the last move reached.
    #[serde(default)]
    pub stage: TicketStage,
    /// The step in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<DeliveryId>,
    /// A move that failed for good: not tried again (the workflow needs a
    /// person), though a later stage may still be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<TicketStage>,
    /// Steps sent.
    #[serde(default)]
    pub sent: u32,
    /// Steps that failed for good.
    #[serde(default)]
    pub failed: u32,
    /// The last step's error, when it failed for good.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::TicketStage::*;

    #[test]
    fn moves_go_through_mitigated_and_stop_at_duplicate() {
        assert_eq!(Open.next_towards(Open), None);
        assert_eq!(Open.next_towards(Mitigated), Some(Mitigated));
        assert_eq!(Open.next_towards(RcaCompleted), Some(Mitigated));
        assert_eq!(Mitigated.next_towards(RcaCompleted), Some(RcaCompleted));
        assert_eq!(RcaCompleted.next_towards(Mitigated), None);
        assert_eq!(Open.next_towards(Duplicate), Some(Duplicate));
        assert_eq!(Mitigated.next_towards(Duplicate), Some(Duplicate));
        assert_eq!(Duplicate.next_towards(RcaCompleted), None);
    }
}
