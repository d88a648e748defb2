//! The traffic of a scenario, as alert sources and responders make it: triggers through
//! `Events.Send` to any node, and acknowledgements through `Incidents.Acknowledge` of some of
//! the incidents they open, recorded as the clients saw them (etcd robustness's `traffic`).
//!
//! A client picks a node at random and, when that node does not answer in time (killed,
//! paused, cut off) or refuses, tries the others, as an alert source with several endpoints
//! does. A trigger is retried with its dedup key, so a retry of an event that did commit folds
//! into its incident instead of opening another. Only answers that came back are recorded:
//! an event whose answer was lost may exist in the cluster without being in the history,
//! which the checks allow (the pages expected are derived from the cluster's final state).

use crate::client;
use crate::history::{Accepted, Acked};
use crate::rng::Rng;
use pager_proto::pager::v1 as pb;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

#[derive(Debug, Clone)]
pub struct TrafficOptions {
    /// Integration key of the service the triggers go to.
    pub routing_key: String,
    /// One trigger per this interval.
    pub every: Duration,
    /// Every `fold_every`-th trigger repeats a recent dedup key (it folds); 0: never.
    pub fold_every: u32,
    /// Every `ack_every`-th new incident is acknowledged; 0: none.
    pub ack_every: u32,
    /// How long after its trigger was accepted an incident is acknowledged.
    pub ack_after: Duration,
    /// Bound on one call to one node before the client tries another.
    pub call_timeout: Duration,
    pub seed: u64,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        TrafficOptions {
            routing_key: String::new(),
            every: Duration::from_millis(400),
            fold_every: 5,
            ack_every: 3,
            ack_after: Duration::from_millis(1_500),
            call_timeout: Duration::from_millis(1_500),
            seed: 1,
        }
    }
}

/// What the clients saw.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub accepted: Vec<Accepted>,
    pub acks: Vec<Acked>,
    /// Triggers no node accepted.
    pub refused: u64,
    /// Acknowledgements no node accepted.
    pub acks_refused: u64,
}

/// The running traffic; [`Traffic::stop`] ends it and returns what it saw.
pub struct Traffic {
    stop: watch::Sender<bool>,
    task: JoinHandle<Recorded>,
}

impl Traffic {
    /// Start sending to the nodes at `nodes` (id, client address).
    pub fn start(nodes: Vec<(u64, SocketAddr)>, opts: TrafficOptions) -> anyhow::Result<Traffic> {
        let channels = nodes
            .iter()
            .map(|&(id, addr)| Ok((id, client::channel(addr, opts.call_timeout)?)))
            .collect::<anyhow::Result<Vec<(u64, Channel)>>>()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(channels, opts, stopped));
        Ok(Traffic { stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<Recorded> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| anyhow::anyhow!("traffic task: {e}"))
    }
}

async fn run(
    nodes: Vec<(u64, Channel)>,
    opts: TrafficOptions,
    mut stopped: watch::Receiver<bool>,
) -> Recorded {
    let mut rng = Rng::new(opts.seed);
    let mut out = Recorded::default();
    // (due, incident) of acknowledgements to make.
    let mut acks: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut keys: Vec<String> = Vec::new();
    let (mut sent, mut opened) = (0u32, 0u32);
    let mut next = Instant::now();
    loop {
        let wake = match acks.front() {
            Some(&(due, _)) => due.min(next),
            None => next,
        };
        tokio::select! {
            _ = stopped.changed() => return out,
            () = tokio::time::sleep_until(wake) => {}
        }
        if *stopped.borrow() {
            return out;
        }
        while let Some(&(due, incident)) = acks.front() {
            if due > Instant::now() {
                break;
            }
            acks.pop_front();
            match acknowledge(&nodes, &mut rng, incident, &opts).await {
                Some(ack) => out.acks.push(ack),
                None => out.acks_refused += 1,
            }
        }
        if Instant::now() < next {
            continue;
        }
        // After a slow round (every node timing out), go on from now rather than burst.
        next = (next + opts.every).max(Instant::now());
        sent += 1;
        let fold = opts.fold_every > 0 && sent % opts.fold_every == 0 && !keys.is_empty();
        let key = if fold {
            let recent = &keys[keys.len().saturating_sub(3)..];
            rng.pick(recent).cloned().unwrap_or_default()
        } else {
            format!("chaos-{}-{sent}", opts.seed)
        };
        match trigger(&nodes, &mut rng, &key, &opts).await {
            Some(a) => {
                if !a.folded {
                    keys.push(key);
                    opened += 1;
                    if opts.ack_every > 0 && opened % opts.ack_every == 0 {
                        acks.push_back((Instant::now() + opts.ack_after, a.incident));
                    }
                }
                out.accepted.push(a);
            }
            None => out.refused += 1,
        }
    }
}

/// The nodes in a random order, for one request.
fn order<'a>(nodes: &'a [(u64, Channel)], rng: &mut Rng) -> Vec<&'a (u64, Channel)> {
    let mut all: Vec<&(u64, Channel)> = nodes.iter().collect();
    rng.shuffle(&mut all);
    all
}

async fn trigger(
    nodes: &[(u64, Channel)],
    rng: &mut Rng,
    key: &str,
    opts: &TrafficOptions,
) -> Option<Accepted> {
    for (id, ch) in order(nodes, rng) {
        let mut events = client::events(ch);
        let call = events.send(client::trigger(
            &opts.routing_key,
            key,
            &format!("chaos event {key}"),
        ));
        if let Ok(Ok(r)) = tokio::time::timeout(opts.call_timeout, call).await {
            let r = r.into_inner();
            return Some(Accepted {
                incident: r.incident_id,
                dedup_key: r.dedup_key,
                folded: r.folded,
                commit_index: r.commit_index,
                via: *id,
            });
        }
    }
    None
}

async fn acknowledge(
    nodes: &[(u64, Channel)],
    rng: &mut Rng,
    incident: u64,
    opts: &TrafficOptions,
) -> Option<Acked> {
    for (_, ch) in order(nodes, rng) {
        let mut incidents = client::incidents(ch);
        let call = incidents.acknowledge(pb::IncidentActionRequest {
            id: incident,
            by: "chaos".into(),
        });
        if let Ok(Ok(r)) = tokio::time::timeout(opts.call_timeout, call).await {
            return Some(Acked {
                incident,
                commit_index: r.into_inner().commit_index,
                returned_at: SystemTime::now(),
            });
        }
    }
    None
}
