//! `POST /v1/alertmanager/{integration_key}`: Prometheus Alertmanager's
//! webhook (payload version 4). Point a receiver's `webhook_configs[].url`
//! at `http://<any node>:<http port>/v1/alertmanager/<integration key>`.
//!
//! Each firing alert of the notification is a trigger and each resolved
//! alert a resolve, on the service owning the key:
//!
//! - **dedup key**: `<groupKey>:<fingerprint>`, so a resolved notification
//!   finds the incident its firing one opened. When that is longer than 255
//!   bytes (pagerd's and PagerDuty's limit) it is `am-sha256:` and the hex
//!   SHA-256 of `groupKey`, a newline and `fingerprint` instead; see
//!   [`dedup_key`].
//! - **summary**: `annotations.summary`, else `annotations.description`, else
//!   `labels.alertname`, else `alert <fingerprint>`; cut to 1024 bytes.
//! - **source**: `labels.instance`, else `labels.job`, else `alertmanager`;
//!   **class**: `labels.alertname`.
//! - **severity**: `labels.severity` when it names one of critical, error,
//!   warning, info (any case); missing or anything else is `error`, the
//!   default of Alertmanager's own PagerDuty receiver. Switching from that
//!   receiver keeps the severity, and an unknown value (`page`, `sev1`)
//!   still pages at high urgency where urgency follows severity (warning
//!   would be low) without claiming critical. See [`severity`].
//! - **custom details**: `labels.<name>`, `annotations.<name>`, `startsAt`,
//!   `endsAt` (once set), `generatorURL`, `fingerprint`, `groupKey`,
//!   `receiver`, `externalURL`; routing rules see them as
//!   `details.labels.team` and so on.
//!
//! The notification is checked whole before anything is applied: one bad
//! alert refuses the request (400, each error naming `alerts[i].<field>`).
//! pagerd has no multi-event command, so the alerts are then committed one by
//! one, in order, stopping at the first failure; the answer lists what each
//! alert came to (`applied`, `incident_id`, `dedup_key`, `folded`). A failure
//! part-way is a 503 (no leader or no quorum): Alertmanager retries the whole
//! notification, and re-applying the alerts already committed is harmless (a
//! trigger folds into its open incident, a resolve of a resolved incident
//! changes nothing). An unknown key is a 404 naming `integration_key`;
//! nothing is applied. At most 1,000 alerts per notification (set
//! `max_alerts` on the webhook config) and 8 MiB of body.

use super::fields::{self, Problems};
use super::ApiError;
use crate::edge::convert;
use crate::edge::grpc::{self, MAX_BATCH};
use crate::error::NodeError;
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State as Ax};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use pager_core::event::{MAX_EVENT_BYTES, MAX_KEY_BYTES, MAX_SUMMARY_BYTES};
use pager_core::Severity;
use pager_proto::pager::v1 as pb;
use prost::Message;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::{debug, warn};

/// Alertmanager sends one notification per group; 1,000 alerts of
/// ordinary size fit easily.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Alertmanager's `startsAt`/`endsAt` while unset.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// One alert of a notification, checked, with the event it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub fingerprint: String,
    pub firing: bool,
    pub event: pb::SendEventRequest,
}

pub async fn notify(
    Ax(node): Ax<Arc<Node>>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> HttpResponse {
    let alerts = match super::json_object(body, MAX_BODY_BYTES).and_then(|o| parse(&key, &o)) {
        Ok(alerts) => alerts,
        Err(refused) => return refused.into_response(),
    };
    let mut results = Vec::with_capacity(alerts.len());
    for (i, alert) in alerts.iter().enumerate() {
        match grpc::send_event(&node, alert.event.clone()).await {
            Ok(sent) => results.push(json!({
                "fingerprint": alert.fingerprint,
                "status": if alert.firing { "firing" } else { "resolved" },
                "dedup_key": sent.dedup_key,
                "incident_id": (sent.incident_id != 0).then_some(sent.incident_id),
                "folded": sent.folded,
                "commit_index": sent.commit_index,
                "applied": true,
            })),
            Err(e) => {
                let mut refused =
                    ApiError::from_node(e, &|f| api_field(i, f), StatusCode::NOT_FOUND);
                if refused.code.is_server_error() {
                    warn!(
                        applied = i,
                        alerts = alerts.len(),
                        cause = ?refused.errors,
                        "alertmanager notification not fully committed"
                    );
                }
                results.extend(alerts[i..].iter().map(|a| {
                    json!({
                        "fingerprint": a.fingerprint,
                        "status": if a.firing { "firing" } else { "resolved" },
                        "dedup_key": a.event.dedup_key,
                        "applied": false,
                    })
                }));
                refused.alerts = Some(results);
                return refused.into_response();
            }
        }
    }
    debug!(alerts = alerts.len(), "alertmanager notification committed");
    (
        StatusCode::OK,
        Json(json!({
            "status": "success",
            "message": format!("{} alert(s) processed", alerts.len()),
            "alerts": results,
        })),
    )
        .into_response()
}

/// A field as core names it, for alert `i` (the key is the path's).
fn api_field(i: usize, core: &str) -> String {
    match core {
        "routing_key" => "integration_key".into(),
        other => format!("alerts[{i}].{other}"),
    }
}

/// The dedup key of an alert: `groupKey:fingerprint`, hashed when too long.
pub fn dedup_key(group_key: &str, fingerprint: &str) -> String {
    let plain = format!("{group_key}:{fingerprint}");
    if plain.len() <= MAX_KEY_BYTES {
        return plain;
    }
    let digest = Sha256::new()
        .chain_update(group_key.as_bytes())
        .chain_update(b"\n")
        .chain_update(fingerprint.as_bytes())
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("am-sha256:{hex}")
}

/// `labels.severity` as a pagerd severity; see the module docs.
pub fn severity(label: Option<&str>) -> Severity {
    label
        .and_then(|s| Severity::parse(&s.trim().to_ascii_lowercase()))
        .unwrap_or(Severity::Error)
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Check a notification and turn each alert into its event. Every problem
/// of every alert is reported at once, including those core would find.
pub fn parse(key: &str, obj: &Map<String, Value>) -> Result<Vec<Alert>, ApiError> {
    let mut p = Problems::default();
    if let Some(v) = p.string(obj, "", "version") {
        if v != "4" {
            warn!(version = %v, "alertmanager payload version is not 4; reading it as 4");
        }
    }
    let group_key = p.required(obj, "", "groupKey", "").unwrap_or_default();
    if let Some(s) = p.string(obj, "", "status") {
        if s != "firing" && s != "resolved" {
            p.push("status", format!("{s:?} is not firing or resolved"));
        }
    }
    let receiver = p.string(obj, "", "receiver");
    let external_url = p.string(obj, "", "externalURL");
    if let Some(n) = p.count(obj, "", "truncatedAlerts").filter(|n| *n > 0) {
        warn!(
            truncated = n,
            "alertmanager left alerts out of this notification (max_alerts)"
        );
    }
    let items: &[Value] = match obj.get("alerts") {
        None | Some(Value::Null) => {
            p.push("alerts", "required");
            &[]
        }
        Some(Value::Array(a)) if a.is_empty() => {
            p.push("alerts", "at least one alert");
            &[]
        }
        _ => p.array(obj, "", "alerts").map_or(&[], Vec::as_slice),
    };
    if items.len() > MAX_BATCH {
        p.push(
            "alerts",
            format!(
                "{} alerts, at most {MAX_BATCH} (set max_alerts on the webhook config)",
                items.len()
            ),
        );
        return Err(ApiError::invalid(p.0));
    }

    let mut alerts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("alerts[{i}]");
        let Some(a) = p.element(item, &path) else {
            continue;
        };
        let firing = match p.required(a, &path, "status", "").as_deref() {
            Some("firing") => Some(true),
            Some("resolved") => Some(false),
            Some(other) => {
                p.push(
                    &fields::join(&path, "status"),
                    format!("{other:?} is not firing or resolved"),
                );
                None
            }
            None => None,
        };
        if matches!(a.get("labels"), None | Some(Value::Null)) {
            p.push(&fields::join(&path, "labels"), "required");
        }
        let labels = p.string_map(a, &path, "labels");
        let annotations = p.string_map(a, &path, "annotations");
        let fingerprint = p.required(a, &path, "fingerprint", "");
        let starts_at = p.string(a, &path, "startsAt");
        let ends_at = p.string(a, &path, "endsAt");
        let generator_url = p.string(a, &path, "generatorURL");
        let (Some(firing), Some(fingerprint)) = (firing, fingerprint) else {
            continue;
        };

        let label = |name: &str| labels.get(name).filter(|v| !v.trim().is_empty());
        let annotation = |name: &str| annotations.get(name).filter(|v| !v.trim().is_empty());
        let summary = annotation("summary")
            .or_else(|| annotation("description"))
            .or_else(|| label("alertname"))
            .cloned()
            .unwrap_or_else(|| format!("alert {fingerprint}"));
        let source = label("instance")
            .or_else(|| label("job"))
            .cloned()
            .unwrap_or_else(|| "alertmanager".to_string());
        let mut details: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (format!("labels.{k}"), v.clone()))
            .chain(
                annotations
                    .iter()
                    .map(|(k, v)| (format!("annotations.{k}"), v.clone())),
            )
            .collect();
        let extras = [
            ("startsAt", starts_at.filter(|t| t != ZERO_TIME)),
            ("endsAt", ends_at.filter(|t| t != ZERO_TIME)),
            ("generatorURL", generator_url),
            ("fingerprint", Some(fingerprint.clone())),
            ("groupKey", Some(group_key.clone())),
            ("receiver", receiver.clone()),
            ("externalURL", external_url.clone()),
        ];
        for (k, v) in extras {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                details.insert(k.to_string(), v);
            }
        }
        let event = pb::SendEventRequest {
            routing_key: key.to_string(),
            action: if firing {
                pb::EventAction::Trigger
            } else {
                pb::EventAction::Resolve
            } as i32,
            dedup_key: dedup_key(&group_key, &fingerprint),
            summary: cut(&summary, MAX_SUMMARY_BYTES),
            source,
            severity: severity(labels.get("severity").map(String::as_str))
                .as_str()
                .to_string(),
            component: String::new(),
            group: String::new(),
            class: labels.get("alertname").cloned().unwrap_or_default(),
            custom_details: details.into_iter().collect(),
        };
        // What `Events/Send` would refuse, found before anything is applied.
        let core = if event.encoded_len() > MAX_EVENT_BYTES {
            Err(NodeError::invalid("payload", "event larger than 512 KiB"))
        } else {
            convert::event_from_pb(event.clone())
                .and_then(|e| e.validate().map_err(NodeError::Rejected))
        };
        if let Err(e) = core {
            p.extend(ApiError::from_node(e, &|f| api_field(i, f), StatusCode::BAD_REQUEST).errors);
        }
        alerts.push(Alert {
            fingerprint,
            firing,
            event,
        });
    }
    if p.is_empty() {
        Ok(alerts)
    } else {
        Err(ApiError::invalid(p.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_are_bounded() {
        assert_eq!(dedup_key("{}:{a=\"b\"}", "c0ffee"), "{}:{a=\"b\"}:c0ffee");
        let long = "g".repeat(300);
        let k = dedup_key(&long, "c0ffee");
        assert!(k.starts_with("am-sha256:") && k.len() == 10 + 64, "{k}");
        assert_eq!(k, dedup_key(&long, "c0ffee"), "deterministic");
        assert_ne!(k, dedup_key(&long, "c0ffef"));
    }

    #[test]
    fn severity_labels_map_and_unknown_is_error() {
        assert_eq!(severity(Some("critical")), Severity::Critical);
        assert_eq!(severity(Some("Warning")), Severity::Warning);
        assert_eq!(severity(Some("info")), Severity::Info);
        assert_eq!(severity(Some("page")), Severity::Error);
        assert_eq!(severity(None), Severity::Error);
    }

    #[test]
    fn summaries_are_cut_on_a_character_boundary() {
        let s = "é".repeat(600);
        let c = cut(&s, MAX_SUMMARY_BYTES);
        assert_eq!(c.len(), 1024);
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("aé", 2), "a");
    }
}
