//! Who the members are, read from Raft's membership config: voters,
//! learners, their addresses, and the first initialisation of a cluster.

use super::{MembershipView, Node};
use crate::error::NodeError;
use openraft::error::RaftError;
use pager_raft::PeerNode;
use std::collections::{BTreeMap, BTreeSet};

impl Node {
    pub fn peer_addr_of(&self, id: u64) -> Option<String> {
        self.metrics()
            .membership_config
            .nodes()
            .find(|(nid, _)| **nid == id)
            .map(|(_, n)| n.peer_addr.clone())
    }

    pub fn member(&self, id: u64) -> Option<PeerNode> {
        self.metrics()
            .membership_config
            .nodes()
            .find(|(nid, _)| **nid == id)
            .map(|(_, n)| n.clone())
    }

    pub fn voters(&self) -> BTreeSet<u64> {
        self.metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Another member's public HTTP base URL (a voter's first), for a
    /// call's `FallbackUrl`: if this node dies mid-call, Twilio fetches the
    /// call's TwiML there.
    pub fn fallback_http_url(&self) -> Option<String> {
        let m = self.metrics();
        let membership = m.membership_config.membership();
        let me = self.id();
        let mut others: Vec<(bool, u64, String)> = membership
            .nodes()
            .filter(|(id, n)| **id != me && !n.http_url.is_empty())
            .map(|(id, n)| {
                (
                    !membership.voter_ids().any(|v| v == *id),
                    *id,
                    n.http_url.clone(),
                )
            })
            .collect();
        others.sort();
        others.into_iter().next().map(|(_, _, url)| url)
    }

    pub fn learners(&self) -> BTreeSet<u64> {
        self.metrics()
            .membership_config
            .membership()
            .learner_ids()
            .collect()
    }

    pub fn membership_view(&self) -> MembershipView {
        let m = self.metrics();
        MembershipView {
            voters: self.voters().into_iter().collect(),
            learners: self.learners().into_iter().collect(),
            index: m.last_applied.map(|l| l.index).unwrap_or(0),
        }
    }

    /// Initialise a new cluster. `members` empty: this node alone.
    pub async fn init(&self, members: BTreeMap<u64, PeerNode>) -> Result<(), NodeError> {
        let members = if members.is_empty() {
            BTreeMap::from([(self.id(), self.self_node())])
        } else {
            members
        };
        self.raft.initialize(members).await.map_err(|e| match e {
            RaftError::APIError(e) => NodeError::Precondition(e.to_string()),
            RaftError::Fatal(f) => NodeError::Fatal(f.to_string()),
        })
    }

    pub fn self_node(&self) -> PeerNode {
        self.cfg.peer_node()
    }
}
