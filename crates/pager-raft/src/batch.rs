//! Several concurrent client writes in one Raft log entry.
//!
//! Why: openraft 0.9's leader appends each `client_write` as its own log entry and waits in its
//! core task until that entry is flushed (`RaftCore::append_to_log`, "a temp wrapper to make
//! non-blocking `append_to_log` a blocking") before it handles the next message or starts
//! replicating. With the log fsynced on every commit, the leader therefore does one fsync per
//! client write, one after another: measured 20,270 fsyncs for 20,000 events on the leader of the
//! benchmark (the followers, which receive batches, did ~1,100 each), a ceiling of about 2,000
//! writes/s on this disk whatever the number of clients. Even with fsync off that serial path
//! stopped at ~4,500/s.
//!
//! How: [`Raft::client_write`] queues the command; one task proposes what is queued. While
//! [`MAX_IN_FLIGHT`] proposals are waiting to be committed, commands that arrive are collected and
//! proposed together as one entry (a [`Proposal`] of up to [`MAX_BATCH`] commands and about
//! [`MAX_BATCH_BYTES`] of events). A lone client sees no change: its command is proposed at once,
//! alone. Each command still gets its own [`pager_core::Response`], applied in order, exactly as if
//! it had had its own entry, except that the commands of one entry share its log index (the
//! `LogMeta` that `State::apply` sees, and the index answered to the client).
//!
//! Which commands share an entry: only `Command::Ingest` with a non-empty dedup key. pager-core
//! reads the log index in `apply` to make up a dedup key (`pgd-{index}`) for an event that has
//! none, so two such events in one entry would fold into one incident; those, and every other kind
//! of command, are proposed alone as before. **This depends on pager-core:** a command whose
//! apply starts to depend on the log index being unique must not be made batchable (see
//! [`batch_size`]), or `LogMeta` must gain a position within the entry.
//!
//! Compatibility: a one-command entry is encoded exactly as before (the bare `Command`), on disk
//! and on the wire, so existing logs and snapshots read as before. A multi-command entry is a JSON
//! array of commands, which a node of an earlier version cannot decode: in a rolling upgrade,
//! upgrade the leader last (a follower that cannot decode an entry refuses the `AppendEntries` and
//! lags until it is upgraded; the other nodes keep committing).

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::Fatal;
use openraft::network::RaftNetworkFactory;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use pager_core::{Command, Response};
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::types::{ClientWriteError, LogId, NodeId, RaftError, TypeConfig};

/// Proposals (entries) awaiting commit at once, while commands queue up for the next one. Two
/// let one entry be appended and replicated while the previous one commits.
pub const MAX_IN_FLIGHT: usize = 2;
/// Most commands in one entry.
pub const MAX_BATCH: usize = 256;
/// Most event bytes ([`pager_core::Event::size`]) in one multi-command entry: no larger than one
/// event may be on its own (512 KiB), so batching never makes an entry or an `AppendEntries`
/// message larger than it could already be.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The application data of one log entry: the commands it carries, applied in order.
///
/// Encoded as the bare `Command` when there is one (the format of every entry before batching),
/// as a sequence of commands otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal(pub Vec<Command>);

impl From<Command> for Proposal {
    fn from(cmd: Command) -> Self {
        Proposal(vec![cmd])
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} command(s)", self.0.len())
    }
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A `Command` is an externally tagged enum: a map (`{"Ingest": {..}}`), or a string for a
        // unit variant. A batch is a sequence. No buffering, unlike `#[serde(untagged)]`.
        struct ProposalVisitor;
        impl<'de> Visitor<'de> for ProposalVisitor {
            type Value = Proposal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command or a sequence of commands")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Proposal, A::Error> {
                Command::deserialize(MapAccessDeserializer::new(map)).map(Proposal::from)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Proposal, E> {
                use serde::de::IntoDeserializer;
                Command::deserialize(v.into_deserializer()).map(Proposal::from)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Proposal, A::Error> {
                Vec::<Command>::deserialize(SeqAccessDeserializer::new(seq)).map(Proposal)
            }
        }
        d.deserialize_any(ProposalVisitor)
    }
}

/// The size `cmd` counts against [`MAX_BATCH_BYTES`] if it may share an entry with others, or
/// `None` if it must be proposed alone (see the module doc).
pub fn batch_size(cmd: &Command) -> Option<usize> {
    match cmd {
        Command::Ingest { event, .. } if !event.dedup_key.is_empty() => {
            Some(event.size()).filter(|size| *size <= MAX_BATCH_BYTES)
        }
        _ => None,
    }
}

/// The answer to a committed and applied client write.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientWriteResponse {
    /// The entry that carried the command (shared by the commands proposed with it).
    pub log_id: LogId,
    /// What applying this command answered.
    pub data: Response,
}

type Reply = Result<ClientWriteResponse, RaftError<ClientWriteError>>;

struct Pending {
    cmd: Command,
    tx: oneshot::Sender<Reply>,
}

/// A running Raft node: openraft's `Raft` (every method of which it offers through `Deref`), with
/// [`client_write`](Self::client_write) batching concurrent commands. Cheap to clone.
#[derive(Clone)]
pub struct Raft {
    inner: openraft::Raft<TypeConfig>,
    proposals: mpsc::UnboundedSender<Pending>,
    contact: Arc<LeaderContact>,
}

/// When this node last accepted an `AppendEntries` (a heartbeat or entries) from a leader it
/// recognises. openraft 0.9 keeps this to itself; pagerd's election nudge needs it
/// (`crate::elections`). Until the first one, it counts from the node's start.
#[derive(Debug)]
pub struct LeaderContact {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: AtomicU64,
}

impl LeaderContact {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// A leader's `AppendEntries` was accepted now.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since the last accepted `AppendEntries` (or the start).
    pub fn silence(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(last))
    }
}

impl Deref for Raft {
    type Target = openraft::Raft<TypeConfig>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Raft {
    /// Start a Raft node (`openraft::Raft::new`) and its proposer task. Must be called inside a
    /// tokio runtime.
    pub async fn new<N, LS, SM>(
        id: NodeId,
        config: Arc<openraft::Config>,
        network: N,
        log_store: LS,
        state_machine: SM,
    ) -> Result<Self, Fatal<NodeId>>
    where
        N: RaftNetworkFactory<TypeConfig>,
        LS: RaftLogStorage<TypeConfig>,
        SM: RaftStateMachine<TypeConfig>,
    {
        let inner = openraft::Raft::new(id, config, network, log_store, state_machine).await?;
        let (proposals, queued) = mpsc::unbounded_channel();
        tokio::spawn(propose(inner.clone(), queued));
        Ok(Self {
            inner,
            proposals,
            contact: Arc::new(LeaderContact::new()),
        })
    }

    /// When this node last heard from a leader (see [`LeaderContact`]).
    pub fn leader_contact(&self) -> &LeaderContact {
        &self.contact
    }

    /// Resolves once this node no longer leads `term` (see [`term_lost`]).
    pub async fn term_lost(&self, term: u64) {
        term_lost(&self.inner, term).await
    }

    /// Propose `cmd` and wait until it is committed and applied; answers what applying it
    /// answered. Errors as `openraft::Raft::client_write` (`ForwardToLeader` on a follower).
    pub async fn client_write(&self, cmd: Command) -> Reply {
        let (tx, rx) = oneshot::channel();
        if self.proposals.send(Pending { cmd, tx }).is_err() {
            return Err(RaftError::Fatal(Fatal::Stopped));
        }
        rx.await.unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
    }
}

/// The proposer task: proposes queued commands in order, batching while entries are in flight.
async fn propose(raft: openraft::Raft<TypeConfig>, mut queued: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A command taken off the queue that could not join the batch before it.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match queued.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let Some(mut bytes) = batch_size(&first.cmd) else {
            // Alone, at once, as before batching: nothing to wait for.
            submit(&raft, vec![first], None).await;
            continue;
        };
        // Wait for a free slot; what arrives meanwhile joins this entry.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(next) = queued.try_recv() else {
                break;
            };
            match batch_size(&next.cmd) {
                Some(size) if bytes + size <= MAX_BATCH_BYTES => {
                    bytes += size;
                    batch.push(next);
                }
                _ => {
                    carried = Some(next);
                    break;
                }
            }
        }
        submit(&raft, batch, Some(permit)).await;
    }
}

/// How often [`term_lost`] looks: a write normally commits within milliseconds, so a poll (one
/// timer per pending write) costs less than waking every pending write on each metrics change,
/// which happens on every applied entry.
const TERM_POLL: Duration = Duration::from_millis(100);

/// Resolves once `raft` no longer leads `term` (or has stopped), looking every [`TERM_POLL`].
/// openraft 0.9 never answers a write whose entry this node neither applies nor truncates (a
/// leader deposed right after proposing, whose log the new leader's snapshot then replaced), so
/// whatever waits on its own leader's write must also give up when the term is gone.
async fn term_lost(raft: &openraft::Raft<TypeConfig>, term: u64) {
    let metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow();
            if m.current_term != term
                || m.state != openraft::ServerState::Leader
                || m.running_state.is_err()
            {
                return;
            }
        }
        tokio::time::sleep(TERM_POLL).await;
    }
}

/// Hand `batch` to Raft as one entry (in order with earlier submissions), then answer each
/// command's caller from a task of its own, releasing `permit` once the entry is applied or
/// this node has lost the term it was proposed in.
async fn submit(
    raft: &openraft::Raft<TypeConfig>,
    batch: Vec<Pending>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let (cmds, callers): (Vec<Command>, Vec<_>) = batch.into_iter().map(|p| (p.cmd, p.tx)).unzip();
    let term = raft.metrics().borrow().current_term;
    let sent = raft.client_write_ff(Proposal(cmds)).await;
    let raft = raft.clone();
    tokio::spawn(async move {
        let mut permit = permit;
        let result = match sent {
            Ok(mut rx) => {
                // The answer may never come once the term is lost (see `term_lost`): free the
                // slot then, or two leaked slots stall all batching; the callers bound their
                // own wait for the answer.
                let answer = tokio::select! {
                    answer = &mut rx => answer,
                    _ = term_lost(&raft, term), if permit.is_some() => {
                        permit = None;
                        rx.await
                    }
                };
                match answer {
                    Ok(Ok(written)) => Ok(written),
                    Ok(Err(e)) => Err(RaftError::APIError(e)),
                    Err(_) => Err(RaftError::Fatal(Fatal::Stopped)),
                }
            }
            Err(fatal) => Err(RaftError::Fatal(fatal)),
        };
        drop(permit);
        match result {
            Ok(written) => {
                let mut responses = written.data.into_iter();
                for tx in callers {
                    // `apply` answers once per command; a missing answer would be a bug there.
                    let reply = match responses.next() {
                        Some(data) => Ok(ClientWriteResponse {
                            log_id: written.log_id,
                            data,
                        }),
                        None => Err(RaftError::Fatal(Fatal::Panicked)),
                    };
                    let _ = tx.send(reply);
                }
            }
            Err(e) => {
                for tx in callers {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use pager_core::event::{Event, EventAction, Severity};

    fn ingest(dedup: &str) -> Command {
        Command::Ingest {
            at: 7,
            event: Box::new(Event {
                routing_key: "k".into(),
                action: EventAction::Trigger,
                dedup_key: dedup.into(),
                summary: "s".into(),
                source: String::new(),
                severity: Severity::Critical,
                component: String::new(),
                group: String::new(),
                class: String::new(),
                custom_details: Default::default(),
            }),
        }
    }

    #[test]
    fn one_command_is_encoded_as_before() {
        let cmd = Command::Tick { at: 5 };
        let old = serde_json::to_vec(&cmd).unwrap();
        assert_eq!(
            serde_json::to_vec(&Proposal::from(cmd.clone())).unwrap(),
            old
        );
        let read: Proposal = serde_json::from_slice(&old).unwrap();
        assert_eq!(read, Proposal(vec![cmd]));
    }

    #[test]
    fn batch_round_trips() {
        let batch = Proposal(vec![ingest("a"), ingest("b"), Command::Tick { at: 9 }]);
        let json = serde_json::to_vec(&batch).unwrap();
        assert_eq!(json.first(), Some(&b'['));
        assert_eq!(serde_json::from_slice::<Proposal>(&json).unwrap(), batch);
    }

    #[test]
    fn only_keyed_ingests_are_batchable() {
        assert!(batch_size(&ingest("a")).is_some());
        assert_eq!(batch_size(&ingest("")), None);
        assert_eq!(batch_size(&Command::Tick { at: 1 }), None);
    }
}
