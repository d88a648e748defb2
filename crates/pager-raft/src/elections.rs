//! Who stands first when the leader goes silent.
//!
//! openraft 0.9 lets each follower stand once the old leader's lease (`election_timeout_max`)
//! and then its own random election timeout, drawn once per process, have passed without a
//! heartbeat. Under writes the survivors' logs differ by the entries in flight at the crash, and
//! if the one behind stands first the other refuses it (its log is shorter); the refused
//! candidate then waits a further 2 × `election_timeout_max` and the one ahead, having asked in
//! a term the other already voted in, needs one more timeout: the storm benchmark saw a fifth of
//! its elections take 2.5–4.7 s instead of ~1.4 s, and every page due meanwhile waited.
//!
//! So a voter that has heard no leader for the lease plus two heartbeats asks the other voters
//! (over the peer port, by the daemon's `ask`) for the id of their last log entry,
//! whether they lead, and how long they have not heard from a leader. It starts an election at
//! once only if a majority answered, none of them leads or heard a leader within the lease (so
//! each will grant its vote, and a node cut off on its own, or from a leader the others still
//! hear, never disrupts them: the pre-vote openraft 0.9 lacks), its log is the most up to date
//! among them by Raft's own vote rule (the last entry's term first, then its index: a longer
//! log of an older term loses), and no voter with an equally up-to-date log has a lower id. Everyone else leaves it to openraft's timers,
//! which stay on: when the chosen node is gone too, or the asking fails, elections run as before.
//! An election is safe whenever it is started; this only chooses who starts first.

use crate::log_store::LogPeek;
use crate::types::Raft;
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info};

/// A voter's answer to `ElectionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionState {
    /// Index of the last entry in its log.
    pub last_log_index: Option<u64>,
    /// Term of that entry; 0 when the log is empty or the entry could not be read (which makes
    /// this voter look behind, so it never stands on a guess). A node of an older version does
    /// not send it and counts as 0.
    #[serde(default)]
    pub last_log_term: u64,
    /// Milliseconds since it last accepted a leader's `AppendEntries`.
    pub silent_ms: u64,
    /// It is the leader.
    pub leader: bool,
}

impl ElectionState {
    /// This node's answer, from its Raft metrics and a look at its log.
    pub async fn of(raft: &Raft, log: &LogPeek) -> Self {
        let m = raft.metrics().borrow().clone();
        let last_log_term = match (m.last_log_index, m.purged) {
            (None, _) => 0,
            // Everything up to the last entry is in the snapshot; the log keeps its id.
            (Some(last), Some(purged)) if purged.index == last => purged.leader_id.get_term(),
            (Some(last), _) => match log.log_id_at(last).await {
                Ok(Some(id)) => id.leader_id.get_term(),
                _ => 0,
            },
        };
        Self {
            last_log_index: m.last_log_index,
            last_log_term,
            silent_ms: raft.leader_contact().silence().as_millis() as u64,
            leader: m.state == ServerState::Leader,
        }
    }

    /// How up to date the log is, ordered as Raft's vote rule orders last log ids.
    fn last_log(&self) -> (u64, Option<u64>) {
        (self.last_log_term, self.last_log_index)
    }
}

/// How long one `ElectionState` question may take: half the shortest election timeout.
pub fn ask_timeout(config: &openraft::Config) -> Duration {
    Duration::from_millis((config.election_timeout_min / 2).max(1))
}

/// Silence after which a voter asks: the old leader's lease, after which the others grant
/// votes, plus two heartbeats. openraft's own timer fires no earlier than the lease plus
/// `election_timeout_min`, so the chosen node is normally first.
fn ask_after(config: &openraft::Config) -> Duration {
    Duration::from_millis(config.election_timeout_max + 2 * config.heartbeat_interval)
}

/// Whether voter `me` should stand now, given its own state, the answers of the other voters
/// that answered (`(id, state)`), the number of voters and the leader lease.
pub(crate) fn should_stand(
    me: u64,
    mine: &ElectionState,
    others: &[(u64, ElectionState)],
    voters: usize,
    lease_ms: u64,
) -> bool {
    // A leader may have been elected while the others were asked: its heartbeat resets ours.
    if mine.leader || mine.silent_ms <= lease_ms || 1 + others.len() < voters / 2 + 1 {
        return false;
    }
    if others
        .iter()
        .any(|(_, s)| s.leader || s.silent_ms <= lease_ms)
    {
        return false;
    }
    let best = others
        .iter()
        .map(|(_, s)| s.last_log())
        .fold(mine.last_log(), Ord::max);
    mine.last_log() == best
        && !others
            .iter()
            .any(|(id, s)| s.last_log() == best && *id < me)
}

/// Runs on every node until `stopped`; acts only while it is a follower or candidate among
/// two or more voters. `ask(id)` asks voter `id` for its [`ElectionState`] (the daemon carries
/// the question over its peer protocol, bounded by [`ask_timeout`]); `stood` is told each time
/// this node starts an election.
pub async fn run<A, F>(
    raft: Raft,
    log: LogPeek,
    me: u64,
    ask: A,
    stood: impl Fn(),
    mut stopped: watch::Receiver<bool>,
) where
    A: Fn(u64) -> F,
    F: Future<Output = Option<ElectionState>>,
{
    let config = raft.config().clone();
    let mut tick = tokio::time::interval(Duration::from_millis(config.heartbeat_interval.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_stood: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        // One election at a time: openraft retries a failed one on its own timer.
        if last_stood
            .is_some_and(|t| t.elapsed() < Duration::from_millis(config.election_timeout_max))
        {
            continue;
        }
        // A follower that hears its leader, the common case, stops at one atomic load.
        if raft.leader_contact().silence() < ask_after(&config) {
            continue;
        }
        let (leading, voters) = {
            let m = raft.metrics();
            let m = m.borrow();
            let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
            (m.state == ServerState::Leader, voters)
        };
        if leading || !voters.contains(&me) || voters.len() < 2 {
            continue;
        }
        let asks = voters.iter().filter(|id| **id != me).map(|&id| {
            let answer = ask(id);
            async move { answer.await.map(|s| (id, s)) }
        });
        let others: Vec<(u64, ElectionState)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        let mine = ElectionState::of(&raft, &log).await;
        if !should_stand(
            me,
            &mine,
            &others,
            voters.len(),
            config.election_timeout_max,
        ) {
            debug!(
                ?mine,
                ?others,
                "elections: leader silent, another voter stands first"
            );
            continue;
        }
        info!(
            silent_ms = mine.silent_ms,
            last_log_index = ?mine.last_log_index,
            last_log_term = mine.last_log_term,
            answered = others.len(),
            "elections: leader silent; this voter holds the most up-to-date log, standing now"
        );
        last_stood = Some(Instant::now());
        stood();
        if let Err(e) = raft.trigger().elect().await {
            info!(cause = %e, "elections: could not start an election");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(last: Option<u64>, silent_ms: u64) -> ElectionState {
        ElectionState {
            last_log_index: last,
            last_log_term: 1,
            silent_ms,
            leader: false,
        }
    }

    const LEASE: u64 = 800;

    #[test]
    fn the_longest_log_stands_and_the_shorter_waits() {
        let a = st(Some(10), 1000);
        let b = st(Some(12), 1000);
        assert!(should_stand(2, &b, &[(1, a)], 3, LEASE));
        assert!(!should_stand(1, &a, &[(2, b)], 3, LEASE));
    }

    #[test]
    fn equal_logs_the_lowest_id_stands() {
        let s = st(Some(7), 1000);
        assert!(should_stand(1, &s, &[(3, s)], 3, LEASE));
        assert!(!should_stand(3, &s, &[(1, s)], 3, LEASE));
        // Five voters, two gone: 2 and 4 hold the most up-to-date log, 2 stands.
        let short = st(Some(5), 1000);
        assert!(should_stand(2, &s, &[(4, s), (5, short)], 5, LEASE));
        assert!(!should_stand(4, &s, &[(2, s), (5, short)], 5, LEASE));
        assert!(!should_stand(5, &short, &[(2, s), (4, s)], 5, LEASE));
    }

    #[test]
    fn no_majority_of_answers_no_early_election() {
        // Cut off alone: nobody answered.
        assert!(!should_stand(1, &st(Some(9), 5000), &[], 3, LEASE));
        // Five voters, one answer: two of five is not a majority.
        assert!(!should_stand(
            1,
            &st(Some(9), 5000),
            &[(2, st(Some(1), 5000))],
            5,
            LEASE
        ));
    }

    #[test]
    fn a_voter_that_hears_a_leader_vetoes() {
        // The leader is alive for node 2: node 1 alone lost it (an asymmetric partition).
        let mine = st(Some(9), 2000);
        assert!(!should_stand(1, &mine, &[(2, st(Some(9), 100))], 3, LEASE));
        // A voter that answers as the leader.
        let leader = ElectionState {
            leader: true,
            ..st(Some(9), 9000)
        };
        assert!(!should_stand(1, &mine, &[(2, leader)], 3, LEASE));
    }

    #[test]
    fn a_leader_heard_while_asking_cancels() {
        // Nodes 3 and 4 asked while 5 was still a candidate; 5 won and its first heartbeat
        // reached them before they decided (chaos t70, five nodes: both stood and deposed it).
        let candidate = st(Some(2198), 5000);
        let mine = st(Some(2198), 4);
        assert!(!should_stand(3, &mine, &[(5, candidate)], 5, LEASE));
        assert!(!should_stand(
            3,
            &mine,
            &[(5, candidate), (4, st(Some(2198), 3))],
            5,
            LEASE
        ));
    }

    #[test]
    fn a_longer_log_of_an_older_term_loses() {
        // Node 1 kept entries of term 1 that a partition kept from the term-2 leader; node 2
        // holds fewer entries, the last of term 2. Voters grant node 2, never node 1.
        let stale = st(Some(12), 2000);
        let newer = ElectionState {
            last_log_term: 2,
            ..st(Some(10), 2000)
        };
        assert!(should_stand(2, &newer, &[(1, stale)], 3, LEASE));
        assert!(!should_stand(1, &stale, &[(2, newer)], 3, LEASE));
    }

    #[test]
    fn an_empty_log_never_beats_entries() {
        assert!(!should_stand(
            1,
            &st(None, 2000),
            &[(2, st(Some(1), 2000))],
            3,
            LEASE
        ));
        assert!(should_stand(
            2,
            &st(Some(1), 2000),
            &[(1, st(None, 2000))],
            3,
            LEASE
        ));
    }
}
