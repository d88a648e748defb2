//! Watching the pager itself. One view of "this node is part of a working
//! quorum" serves `/readyz`, the metrics and two outside signals:
//!
//! - the dead man's switch: while it holds a quorum the leader requests
//!   `monitor.deadman_url` every interval, so an outside service notices when
//!   the whole cluster stops (no leader, no quorum, every process dead);
//! - the isolation notice: a node cut off from a quorum longer than
//!   `monitor.isolation_alert_after_secs` tells `monitor.admins` itself,
//!   through its own channels (it cannot page through the replicated state),
//!   at most once per `monitor.isolation_alert_every_secs`.

use crate::node::Node;
use openraft::ServerState;
use pager_notify::{mask, Notifier, Page};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

/// How often the quorum view is refreshed.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// One dead man's switch request may take this long.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    /// As of the last check: part of a working quorum.
    pub quorum: AtomicBool,
    /// Milliseconds this node has been without a quorum (0 with one).
    pub isolated_ms: AtomicU64,
    pub pings_ok: AtomicU64,
    pub pings_failed: AtomicU64,
    pub isolation_notices: AtomicU64,
    /// Elections this node started early (`elections`).
    pub elections_started: AtomicU64,
}

/// A leader is known and, on the leader, a quorum acknowledged it within an
/// election timeout. A node cut off in a minority fails this once its
/// election timer has run (a follower) or its quorum acks are stale (a leader).
pub fn in_quorum(node: &Node) -> bool {
    let m = node.metrics();
    let leader_ok = match m.state {
        ServerState::Leader => m
            .millis_since_quorum_ack
            .is_some_and(|ms| ms <= node.cfg.raft.election_timeout_max),
        _ => true,
    };
    m.current_leader.is_some() && leader_ok
}

pub async fn run(node: Arc<Node>, notifier: Notifier, mut stopped: watch::Receiver<bool>) {
    let settings = node.cfg.monitor.clone();
    let client = match reqwest::Client::builder().timeout(PING_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            warn!(cause = %e, "monitor: no HTTP client; dead man's switch off");
            reqwest::Client::new()
        }
    };
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut isolated_since: Option<Instant> = None;
    let mut last_notice: Option<Instant> = None;
    let mut next_ping = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let now = Instant::now();
        let ok = in_quorum(&node);
        node.health.quorum.store(ok, Ordering::Relaxed);
        if ok {
            if isolated_since.take().is_some() {
                info!("monitor: part of a quorum again");
            }
        } else if isolated_since.is_none() {
            warn!("monitor: no quorum");
            isolated_since = Some(now);
        }
        let isolated = isolated_since.map_or(Duration::ZERO, |t| now - t);
        node.health
            .isolated_ms
            .store(isolated.as_millis() as u64, Ordering::Relaxed);

        if let Some(url) = &settings.deadman_url {
            if ok && node.leader_term().is_some() && now >= next_ping {
                next_ping = now + settings.deadman_interval;
                let (client, url, node) = (client.clone(), url.clone(), node.clone());
                tokio::spawn(async move {
                    let sent = client
                        .get(url.expose())
                        .header(
                            "user-agent",
                            format!("pagerd/{} node={}", env!("CARGO_PKG_VERSION"), node.id()),
                        )
                        .send()
                        .await;
                    match sent.map(|r| r.status()) {
                        Ok(status) if status.is_success() => {
                            node.health.pings_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        // Never the URL: it usually carries a token.
                        Ok(status) => {
                            node.health.pings_failed.fetch_add(1, Ordering::Relaxed);
                            warn!(%status, "dead man's switch ping refused");
                        }
                        Err(e) => {
                            node.health.pings_failed.fetch_add(1, Ordering::Relaxed);
                            warn!(cause = %e.without_url(), "dead man's switch ping failed");
                        }
                    }
                });
            }
        }

        let due = !settings.admins.is_empty()
            && !settings.isolation_alert_after.is_zero()
            && isolated >= settings.isolation_alert_after
            && last_notice.is_none_or(|t| now - t >= settings.isolation_alert_every);
        if due {
            last_notice = Some(now);
            node.health
                .isolation_notices
                .fetch_add(1, Ordering::Relaxed);
            notify_admins(&node, &notifier, isolated).await;
        }
    }
}

/// Tell every admin that this node has been cut off for `isolated`.
async fn notify_admins(node: &Node, notifier: &Notifier, isolated: Duration) {
    let subject = format!(
        "pagerd node {} ({}) has had no quorum for {} s",
        node.id(),
        node.cfg.region,
        isolated.as_secs()
    );
    let text = format!(
        "{subject}: escalations may not fire while the cluster has no quorum. \
         Check the other nodes and the links between regions."
    );
    for (method, address) in &node.cfg.monitor.admins {
        let page = Page {
            delivery_id: 0,
            method: *method,
            address: address.clone(),
            subject: subject.clone(),
            text: text.clone(),
            html: None,
            voice: None,
        };
        match notifier.send(&page).await {
            Ok(_) => {
                info!(to = %mask::address(address), "monitor: told an admin about lost quorum")
            }
            Err(e) => {
                warn!(to = %mask::address(address), cause = %e, "monitor: could not tell an admin")
            }
        }
    }
}
