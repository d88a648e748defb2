//! HTTP on the http port: `/healthz` (process up), `/readyz` (member of a
//! cluster with a known leader; the leader must have heard from a quorum
//! recently) and `/metrics` (Prometheus text).

use crate::node::Node;
use axum::extract::State as Ax;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use openraft::ServerState;
use pager_core::IncidentStatus;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/heartbeat/:key", axum::routing::post(heartbeat))
        .route("/v1/calendar/:file", get(crate::edge::calendar::feed))
        .merge(crate::edge::webhooks::routes())
        .merge(crate::edge::compat::routes())
        .merge(crate::edge::slack::routes())
        .with_state(node.clone())
        .merge(crate::edge::console::router(node))
}

/// A monitor's ping: `POST /v1/heartbeat/{key}` (any body). A missed ping
/// opens an incident on the monitor's service; the next ping resolves it.
async fn heartbeat(
    Ax(node): Ax<Arc<Node>>,
    axum::extract::Path(key): axum::extract::Path<String>,
) -> impl IntoResponse {
    use crate::error::NodeError;
    use pager_core::{Command, Rejection, Response};
    match node.write(Command::Heartbeat { at: 0, key }).await {
        Ok(w) => match w.response {
            Response::Rejected(Rejection::NotFound { .. }) => (
                StatusCode::NOT_FOUND,
                Json(
                    serde_json::json!({"status": "error", "message": "key: no heartbeat monitor has this key"}),
                ),
            ),
            Response::Rejected(r) => (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"status": "error", "message": r.to_string()})),
            ),
            response => {
                let resolved = match response {
                    Response::Incident { id } => Some(id),
                    _ => None,
                };
                let body = serde_json::json!({"status": "ok", "commit_index": w.index, "resolved_incident": resolved});
                (StatusCode::ACCEPTED, Json(body))
            }
        },
        Err(NodeError::Rejected(Rejection::NotFound { .. })) => (
            StatusCode::NOT_FOUND,
            Json(
                serde_json::json!({"status": "error", "message": "key: no heartbeat monitor has this key"}),
            ),
        ),
        Err(e @ (NodeError::NotLeader { .. } | NodeError::Unavailable(_))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "error", "message": e.to_string()})),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"status": "error", "message": e.to_string()})),
        ),
    }
}

async fn readyz(Ax(node): Ax<Arc<Node>>) -> impl IntoResponse {
    let m = node.metrics();
    let ready = crate::leader::monitor::in_quorum(&node);
    let body = serde_json::json!({
        "ready": ready,
        "node": m.id,
        "leader": m.current_leader,
        "term": m.current_term,
        "quorum": ready,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(Ax(node): Ax<Arc<Node>>) -> impl IntoResponse {
    let m = node.metrics();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge("pagerd_raft_term", "Current Raft term.", m.current_term);
    gauge(
        "pagerd_raft_is_leader",
        "1 when this node is the leader.",
        u64::from(m.state == ServerState::Leader),
    );
    gauge(
        "pagerd_raft_last_log_index",
        "Last log index on this node.",
        m.last_log_index.unwrap_or(0),
    );
    gauge(
        "pagerd_raft_applied_index",
        "Last applied log index.",
        m.last_applied.map(|l| l.index).unwrap_or(0),
    );
    gauge(
        "pagerd_raft_has_leader",
        "1 when a leader is known.",
        u64::from(m.current_leader.is_some()),
    );
    let health = &node.health;
    gauge(
        "pagerd_quorum",
        "1 while this node is part of a working quorum (as /readyz).",
        u64::from(health.quorum.load(Ordering::Relaxed)),
    );
    gauge(
        "pagerd_no_quorum_seconds",
        "How long this node has been without a quorum (0 with one).",
        health.isolated_ms.load(Ordering::Relaxed) / 1000,
    );
    let _ = writeln!(
        out,
        "# HELP pagerd_deadman_pings_total Dead man's switch requests by outcome.\n\
         # TYPE pagerd_deadman_pings_total counter\n\
         pagerd_deadman_pings_total{{outcome=\"ok\"}} {}\n\
         pagerd_deadman_pings_total{{outcome=\"failed\"}} {}",
        health.pings_ok.load(Ordering::Relaxed),
        health.pings_failed.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP pagerd_isolation_notices_total Times this node told the admins it had no quorum.\n\
         # TYPE pagerd_isolation_notices_total counter\n\
         pagerd_isolation_notices_total {}",
        health.isolation_notices.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP pagerd_elections_started_total Elections this node started early, as the voter \
         holding the most up-to-date log once the leader went silent (see `pager_raft::elections`).\n\
         # TYPE pagerd_elections_started_total counter\n\
         pagerd_elections_started_total {}",
        health.elections_started.load(Ordering::Relaxed)
    );
    let (counts, stats, pending, unreachable, by_method) = node.read(|s| {
        let mut by_method: std::collections::BTreeMap<(&'static str, &'static str), u64> =
            Default::default();
        for d in s.deliveries.values() {
            *by_method
                .entry((d.method.as_str(), d.status.as_str()))
                .or_default() += 1;
        }
        let mut c = [0u64; 3];
        for i in s.incidents.values() {
            c[match i.status {
                IncidentStatus::Triggered => 0,
                IncidentStatus::Acknowledged => 1,
                IncidentStatus::Resolved => 2,
            }] += 1;
        }
        (
            c,
            s.stats.clone(),
            s.pending_deliveries().count() as u64,
            s.unreachable.len(),
            by_method,
        )
    });
    let _ = writeln!(
        out,
        "# HELP pagerd_incidents Incidents by status.\n# TYPE pagerd_incidents gauge"
    );
    for (i, st) in ["triggered", "acknowledged", "resolved"].iter().enumerate() {
        let _ = writeln!(out, "pagerd_incidents{{status=\"{st}\"}} {}", counts[i]);
    }
    let _ = writeln!(out, "# HELP pagerd_deliveries_total Deliveries by outcome.\n# TYPE pagerd_deliveries_total counter");
    for (k, v) in [
        ("created", stats.deliveries_created),
        ("sent", stats.deliveries_sent),
        ("failed", stats.deliveries_failed),
        ("reclaimed", stats.deliveries_reclaimed),
        ("in_doubt", stats.deliveries_in_doubt),
        ("reconciled", stats.deliveries_reconciled),
    ] {
        let _ = writeln!(out, "pagerd_deliveries_total{{outcome=\"{k}\"}} {v}");
    }
    let _ = writeln!(out, "# HELP pagerd_deliveries_pending Deliveries waiting to be sent.\n# TYPE pagerd_deliveries_pending gauge\npagerd_deliveries_pending {pending}");
    out.push_str(&node.leader.page_latency.render(
        "pagerd_page_latency_seconds",
        "From a delivery's claim (its deadline) to the provider accepting the page, on this node as leader.",
    ));
    let _ = writeln!(out, "# HELP pagerd_raft_leader_changes_total Leader changes this node saw.\n# TYPE pagerd_raft_leader_changes_total counter\npagerd_raft_leader_changes_total {}", node.leader_changes.load(std::sync::atomic::Ordering::Relaxed));
    let last_log = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
    let _ = writeln!(out, "# HELP pagerd_raft_apply_lag Log entries this node holds but has not applied.\n# TYPE pagerd_raft_apply_lag gauge\npagerd_raft_apply_lag {}", last_log.saturating_sub(applied));
    if let Some(replication) = &m.replication {
        let _ = writeln!(out, "# HELP pagerd_raft_follower_lag Entries each follower is behind the leader's log (leader only).\n# TYPE pagerd_raft_follower_lag gauge");
        for (id, matched) in replication.iter() {
            if *id == m.id {
                continue;
            }
            let behind = last_log.saturating_sub(matched.map_or(0, |l| l.index));
            let _ = writeln!(out, "pagerd_raft_follower_lag{{node=\"{id}\"}} {behind}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP pagerd_deliveries Deliveries by method and status.\n# TYPE pagerd_deliveries gauge"
    );
    for ((method, status), n) in by_method {
        let _ = writeln!(
            out,
            "pagerd_deliveries{{method=\"{method}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP pagerd_integration_failures_total Slack and Jira requests that failed on this node as leader, by provider and class (auth, rate_limited, permanent, transient).\n# TYPE pagerd_integration_failures_total counter");
    for ((provider, class), n) in node.leader.integration_failures() {
        let _ = writeln!(
            out,
            "pagerd_integration_failures_total{{provider=\"{provider}\",class=\"{class}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP pagerd_dispatch_queued Pages the leader holds for their send slot (account rate, per-recipient throttle).\n# TYPE pagerd_dispatch_queued gauge");
    for (method, n) in node.leader.pacer.queued() {
        let _ = writeln!(out, "pagerd_dispatch_queued{{method=\"{method}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP pagerd_phone_total Answers from phones.\n# TYPE pagerd_phone_total counter"
    );
    for (k, v) in [
        ("replies", stats.phone_replies),
        ("calls_unanswered", stats.calls_unanswered),
        ("contacts_skipped", stats.contacts_skipped),
    ] {
        let _ = writeln!(out, "pagerd_phone_total{{kind=\"{k}\"}} {v}");
    }
    let _ = writeln!(out, "# HELP pagerd_contacts_unreachable Contact methods marked unreachable (STOP, invalid number).\n# TYPE pagerd_contacts_unreachable gauge\npagerd_contacts_unreachable {unreachable}");
    let _ = writeln!(out, "# HELP pagerd_sla_breaches_total Incidents acknowledged (or resolved unacknowledged) after their tier's SLA.\n# TYPE pagerd_sla_breaches_total counter\npagerd_sla_breaches_total {}", stats.sla_breaches);
    let _ = writeln!(out, "# HELP pagerd_events_total Events accepted.\n# TYPE pagerd_events_total counter\npagerd_events_total {}", stats.events);
    ([("content-type", "text/plain; version=0.0.4")], out)
}
