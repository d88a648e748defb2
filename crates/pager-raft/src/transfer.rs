//! Leadership transfer. openraft 0.9 has no transfer call, so the leader
//! builds one from the knobs it does have (the daemon adds what is its own:
//! draining sends and holding new writes, before step 2):
//!
//! 2. wait until the target's log matches the leader's last entry, so the
//!    target's vote request carries a log no voter can refuse;
//! 3. stop sending heartbeats (voters' leader leases then run out instead of
//!    being renewed) and stop this node from campaigning;
//! 4. ask the target to [`campaign`] until it leads (the daemon carries the
//!    request over its peer protocol).
//!
//! The old leader's own lease dates from when it was elected, so it grants
//! the target's vote at once: in a three-voter cluster the target wins its
//! first election. With five voters it also needs a follower whose lease has
//! run out, about one `election_timeout_max` after the last heartbeat.
//!
//! Every step is bounded by the transfer [`budget`]; on failure heartbeats and
//! elections resume, and this node (or a normal election) leads on.

use crate::types::Raft;
use openraft::ServerState;
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How long a transfer may take in all: a little over two election timeouts
/// (one for voters' leases to run out, one for the vote).
pub fn budget(config: &openraft::Config) -> Duration {
    Duration::from_millis(2 * config.election_timeout_max + 4 * config.heartbeat_interval)
}

/// The voter other than `me` best placed to lead next: the one holding the
/// most of the log, then one in a `preferred` region, then the lowest id.
pub fn successor(raft: &Raft, me: u64, preferred: &[String]) -> Option<u64> {
    let m = raft.metrics().borrow().clone();
    let replication = m.replication.as_ref();
    let membership = m.membership_config.membership();
    membership
        .voter_ids()
        .filter(|id| *id != me)
        .max_by_key(|id| {
            let matched = replication
                .and_then(|r| r.get(id).copied().flatten())
                .map_or(0, |l| l.index);
            let region = membership
                .get_node(id)
                .map(|n| n.region.clone())
                .unwrap_or_default();
            (matched, preferred.contains(&region), std::cmp::Reverse(*id))
        })
}

/// A voter other than `me` in the most preferred region that has one, holding
/// the leader's whole log.
pub fn preferred_successor(raft: &Raft, me: u64, preferred: &[String]) -> Option<u64> {
    let m = raft.metrics().borrow().clone();
    let last = m.last_log_index.unwrap_or(0);
    let replication = m.replication.as_ref()?;
    let membership = m.membership_config.membership();
    preferred.iter().find_map(|region| {
        membership.voter_ids().find(|id| {
            *id != me
                && membership.get_node(id).is_some_and(|n| n.region == *region)
                && replication
                    .get(id)
                    .copied()
                    .flatten()
                    .is_some_and(|l| l.index >= last)
        })
    })
}

/// Why a hand-over did not happen (this node leads on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOverError {
    /// The target did not hold the leader's last entry in time.
    Behind { last: u64 },
    /// The target's campaign failed, in the daemon's words.
    Campaign(String),
    /// The target did not win an election within the budget.
    Timeout,
}

impl fmt::Display for HandOverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandOverError::Behind { last } => {
                write!(f, "it did not catch up to index {last} in time")
            }
            HandOverError::Campaign(why) => f.write_str(why),
            HandOverError::Timeout => f.write_str("it did not win an election in time"),
        }
    }
}

impl std::error::Error for HandOverError {}

/// Re-enables heartbeats and elections on the old leader however the
/// transfer ends.
struct Resume<'a>(&'a Raft);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let rc = self.0.runtime_config();
        rc.heartbeat(true);
        rc.elect(true);
    }
}

/// Steps 2 to 4 on the leader, by `deadline`: wait for voter `to` to hold the
/// whole log, go quiet, and have `ask_campaign(within)` make `to` campaign; it
/// answers the new leader's term. Returns once this node knows `to` leads
/// (or the deadline passed), with that term.
pub async fn hand_over<C, F>(
    raft: &Raft,
    to: u64,
    deadline: Instant,
    ask_campaign: C,
) -> Result<u64, HandOverError>
where
    C: FnOnce(Duration) -> F,
    F: Future<Output = Result<u64, String>>,
{
    // 2. The target must hold every entry, or voters refuse its vote request.
    let last = raft.metrics().borrow().last_log_index.unwrap_or(0);
    raft.wait(Some(deadline.saturating_duration_since(Instant::now())))
        .metrics(
            |m| {
                m.replication
                    .as_ref()
                    .and_then(|r| r.get(&to).copied().flatten())
                    .is_some_and(|l| l.index >= last)
            },
            "transfer target caught up",
        )
        .await
        .map_err(|_| HandOverError::Behind { last })?;

    // 3. Let the voters' leases run out; do not compete with the target.
    let rc = raft.runtime_config();
    rc.heartbeat(false);
    rc.elect(false);
    let _resume = Resume(raft);

    // 4. The target campaigns until it leads.
    let within = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout_at(deadline, ask_campaign(within)).await {
        Ok(Ok(term)) => {
            // Let this node see the new leader before held writes retry.
            let _ = raft
                .wait(Some(deadline.saturating_duration_since(Instant::now())))
                .metrics(|m| m.current_leader == Some(to), "new leader known")
                .await;
            Ok(term)
        }
        Ok(Err(why)) => Err(HandOverError::Campaign(why)),
        Err(_) => Err(HandOverError::Timeout),
    }
}

/// Why a [`campaign`] did not make this node the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignError {
    /// This node is not a voter.
    NotVoter,
    /// No election won in time.
    Lost { within: Duration },
    /// openraft refused to start an election.
    Fatal(String),
}

/// On the transfer target: start elections until this node (`me`) leads or
/// `within` passes (at most the [`budget`]). Each retry waits two heartbeat
/// intervals, enough for the vote requests' round trip. Returns the term led.
pub async fn campaign(raft: &Raft, me: u64, within: Duration) -> Result<u64, CampaignError> {
    let config = raft.config().clone();
    let deadline = Instant::now() + within.min(budget(&config));
    let is_voter = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .any(|id| id == me);
    if !is_voter {
        return Err(CampaignError::NotVoter);
    }
    let retry = Duration::from_millis(2 * config.heartbeat_interval.max(1));
    loop {
        {
            let m = raft.metrics();
            let m = m.borrow();
            if m.state == ServerState::Leader {
                return Ok(m.current_term);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CampaignError::Lost { within });
        }
        raft.trigger()
            .elect()
            .await
            .map_err(|e| CampaignError::Fatal(e.to_string()))?;
        let _ = raft
            .wait(Some(retry.min(left)))
            .state(ServerState::Leader, "campaign")
            .await;
    }
}
