//! An incident's message in its Slack channel: posted once when it opens,
//! updated in place as it changes, its timeline in the message's thread.
//!
//! ```text
//!   open ──► Post ──sent (ts)──► Update ──► Reply [from, to) ──► …
//!             one step in flight at a time; changes while one is in
//!             flight fold into the next (an update shows the latest state)
//! ```
//!
//! Each step is a delivery like a page (claimed by term, retried, reclaimed
//! after a failover): a post or reply left in doubt is looked up at Slack by
//! its marker before it is sent again; an update is idempotent.

use crate::delivery::DeliveryId;
use serde::{Deserialize, Serialize};

/// One request to Slack about an incident's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatStep {
    /// `chat.postMessage`: the message, with its buttons.
    Post,
    /// `chat.update`: the message as the incident is now.
    Update,
    /// `chat.postMessage` in the thread: timeline entries `from..to`.
    Reply {
        /// First timeline entry (index) in the reply.
        from: u32,
        /// One past the last.
        to: u32,
    },
}

impl ChatStep {
    /// The word used in logs and on the incident's page.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatStep::Post => "post",
            ChatStep::Update => "update",
            ChatStep::Reply { .. } => "reply",
        }
    }
}

/// Where an incident's Slack message is, and what it still lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatThread {
    /// The channel id, as configured when the incident opened.
    pub channel: String,
    /// The message's `ts` (its id); empty until the post is out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ts: String,
    /// Timeline entries already in the thread (or, for the first ones, shown by the post).
    pub replied: u32,
    /// The step in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<DeliveryId>,
    /// The log index at which `busy` was queued: a change after it needs another update.
    #[serde(default)]
    pub busy_since: u64,
    /// The incident changed since the message was last rendered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Steps sent.
    #[serde(default)]
    pub sent: u32,
    /// Steps that failed for good.
    #[serde(default)]
    pub failed: u32,
    /// The last step's error, when it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}
