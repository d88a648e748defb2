//! `POST /v2/enqueue`: PagerDuty's Events API v2, so a tool configured with
//! `https://events.pagerduty.com/v2/enqueue` pages through pagerd when given
//! `http://<any node>:<http port>/v2/enqueue` and a pagerd integration key.
//!
//! The request is PagerDuty's: `routing_key`, `event_action`
//! (`trigger` | `acknowledge` | `resolve`), `dedup_key` (required to
//! acknowledge or resolve), `payload` {`summary`, `source`, `severity`
//! (all three required on trigger), `timestamp`, `component`, `group`,
//! `class`, `custom_details`}, `client`, `client_url`, `links`, `images`.
//! Where pagerd differs from PagerDuty, and what the docs leave open:
//!
//! - `routing_key` may be any pagerd integration key (1 to 255 bytes), not
//!   only PagerDuty's 32 characters. An unknown key is a 400 naming
//!   `routing_key` (PagerDuty validates keys before accepting an event, and
//!   answers 400 "Invalid routing key"); nothing is applied.
//! - `custom_details`: an object becomes one custom detail per member
//!   (strings as they are, other values as compact JSON); any other value is
//!   kept whole under `custom_details`. `client`, `client_url`,
//!   `payload.timestamp`, `links` and `images` (as JSON arrays) are kept as
//!   custom details under their own names; one a `custom_details` member
//!   already uses goes under `event.<name>`. Routing rules see them all as
//!   `details.<key>`.
//! - `payload.timestamp` is kept as sent, not checked: a pager must not drop
//!   a page over a cosmetic field. Incidents carry the leader's commit time.
//! - The payload of an acknowledge or resolve is optional; its fields are
//!   type-checked when present and otherwise ignored (but `source` still
//!   names who acted in the timeline).
//! - A body over 512 KiB (PagerDuty's event limit) is a 413 in the same shape.

use super::fields::{self, Problems};
use super::ApiError;
use crate::edge::grpc;
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State as Ax;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use pager_core::event::{MAX_KEY_BYTES, MAX_SUMMARY_BYTES};
use pager_core::Severity;
use pager_proto::pager::v1 as pb;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::warn;

/// PagerDuty's limit on one event, applied to the request body.
pub const MAX_BODY_BYTES: usize = pager_core::event::MAX_EVENT_BYTES;

pub async fn enqueue(Ax(node): Ax<Arc<Node>>, body: Result<Bytes, BytesRejection>) -> HttpResponse {
    let req = match super::json_object(body, MAX_BODY_BYTES).and_then(|o| parse(&o)) {
        Ok(req) => req,
        Err(refused) => return refused.into_response(),
    };
    match grpc::send_event(&node, req).await {
        Ok(sent) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "status": "success",
                "message": "Event processed",
                "dedup_key": sent.dedup_key,
            })),
        )
            .into_response(),
        Err(e) => {
            let refused = ApiError::from_node(e, &api_field, StatusCode::BAD_REQUEST);
            if refused.code.is_server_error() {
                warn!(cause = ?refused.errors, "pagerduty event not committed");
            }
            refused.into_response()
        }
    }
}

/// A field as core and `Events/Send` name it, as this API names it.
pub fn api_field(core: &str) -> String {
    match core {
        "action" => "event_action".into(),
        "summary" | "source" | "severity" | "component" | "group" | "class" | "custom_details" => {
            format!("payload.{core}")
        }
        other => other.into(),
    }
}

fn action(name: &str) -> Option<pb::EventAction> {
    match name {
        "trigger" => Some(pb::EventAction::Trigger),
        "acknowledge" => Some(pb::EventAction::Acknowledge),
        "resolve" => Some(pb::EventAction::Resolve),
        _ => None,
    }
}

/// Check a PagerDuty event and turn it into the gRPC request. Every problem
/// is reported at once; core's own checks run again on commit.
pub fn parse(obj: &Map<String, Value>) -> Result<pb::SendEventRequest, ApiError> {
    let mut p = Problems::default();
    let routing_key = p.required(obj, "", "routing_key", "").unwrap_or_default();
    if routing_key.len() > MAX_KEY_BYTES {
        p.push("routing_key", format!("longer than {MAX_KEY_BYTES} bytes"));
    }
    let action = p
        .required(obj, "", "event_action", "")
        .and_then(|a| match action(&a) {
            Some(action) => Some(action),
            None => {
                p.push(
                    "event_action",
                    format!("{a:?} is not one of trigger, acknowledge, resolve"),
                );
                None
            }
        });
    let trigger = action == Some(pb::EventAction::Trigger);
    let dedup_key = if matches!(
        action,
        Some(pb::EventAction::Acknowledge | pb::EventAction::Resolve)
    ) {
        p.required(obj, "", "dedup_key", " on acknowledge and resolve")
    } else {
        p.string(obj, "", "dedup_key")
    }
    .unwrap_or_default();
    if dedup_key.len() > MAX_KEY_BYTES {
        p.push("dedup_key", format!("longer than {MAX_KEY_BYTES} bytes"));
    }

    let empty = Map::new();
    // Without a payload object, its members are not reported one by one.
    let (payload, require) = match (p.object(obj, "", "payload"), obj.get("payload")) {
        (Some(m), _) => (m, trigger),
        (None, None | Some(Value::Null)) if trigger => {
            p.push("payload", "required on trigger");
            (&empty, false)
        }
        (None, _) => (&empty, false),
    };
    let on_trigger = |p: &mut Problems, key: &str| {
        if require {
            p.required(payload, "payload", key, " on trigger")
        } else {
            p.string(payload, "payload", key)
        }
        .unwrap_or_default()
    };
    let summary = on_trigger(&mut p, "summary");
    if summary.len() > MAX_SUMMARY_BYTES {
        p.push(
            "payload.summary",
            format!("longer than {MAX_SUMMARY_BYTES} bytes"),
        );
    }
    let source = on_trigger(&mut p, "source");
    let severity = on_trigger(&mut p, "severity");
    if !severity.is_empty() && Severity::parse(&severity).is_none() {
        p.push(
            "payload.severity",
            format!("{severity:?} is not one of critical, error, warning, info"),
        );
    }
    let timestamp = p.string(payload, "payload", "timestamp");
    let component = p
        .string(payload, "payload", "component")
        .unwrap_or_default();
    let group = p.string(payload, "payload", "group").unwrap_or_default();
    let class = p.string(payload, "payload", "class").unwrap_or_default();

    let mut details = BTreeMap::new();
    match payload.get("custom_details") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            details.extend(m.iter().map(|(k, v)| (k.clone(), fields::text(v))));
        }
        Some(other) => {
            details.insert("custom_details".to_string(), fields::text(other));
        }
    }
    let extras = [
        ("client", p.string(obj, "", "client")),
        ("client_url", p.string(obj, "", "client_url")),
        ("timestamp", timestamp),
        ("links", context(&mut p, obj, "links", "href", &["text"])),
        (
            "images",
            context(&mut p, obj, "images", "src", &["href", "alt"]),
        ),
    ];
    for (name, value) in extras {
        let Some(value) = value else { continue };
        let key = if details.contains_key(name) {
            format!("event.{name}")
        } else {
            name.to_string()
        };
        details.insert(key, value);
    }

    match action {
        Some(action) if p.is_empty() => Ok(pb::SendEventRequest {
            routing_key,
            action: action as i32,
            dedup_key,
            summary,
            source,
            severity,
            component,
            group,
            class,
            custom_details: details.into_iter().collect(),
        }),
        _ => Err(ApiError::invalid(p.0)),
    }
}

/// `links` or `images`: an array of objects, each with the string `required`
/// and optional string `optional` members. Kept as compact JSON; None when
/// absent or empty.
fn context(
    p: &mut Problems,
    obj: &Map<String, Value>,
    key: &str,
    required: &str,
    optional: &[&str],
) -> Option<String> {
    let items = p.array(obj, "", key)?;
    for (i, item) in items.iter().enumerate() {
        let path = format!("{key}[{i}]");
        if let Some(m) = p.element(item, &path) {
            p.required(m, &path, required, "");
            for o in optional {
                p.string(m, &path, o);
            }
        }
    }
    (!items.is_empty()).then(|| Value::Array(items.clone()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(v: Value) -> Result<pb::SendEventRequest, ApiError> {
        match v {
            Value::Object(m) => parse(&m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_documented_trigger_keeps_every_field() {
        let req = parse_json(json!({
            "routing_key": "k", "event_action": "trigger", "dedup_key": "srv01/mysql",
            "payload": {"summary": "DISK at 99%", "timestamp": "2015-07-17T08:42:58.315+0000",
                "severity": "critical", "source": "db1", "component": "mysql",
                "group": "prod", "class": "disk",
                "custom_details": {"free space": "1%", "load avg": 0.75, "client": "mine"}},
            "client": "Sample Monitoring Service", "client_url": "https://monitoring.example.com",
            "links": [{"href": "http://x.example.com", "text": "a link"}],
            "images": [{"src": "https://img.example.com/a.png"}]
        }))
        .expect("valid");
        assert_eq!(req.action, pb::EventAction::Trigger as i32);
        assert_eq!(
            (req.component.as_str(), req.class.as_str()),
            ("mysql", "disk")
        );
        let d = &req.custom_details;
        assert_eq!(d["free space"], "1%");
        assert_eq!(d["load avg"], "0.75");
        assert_eq!(d["client"], "mine", "custom_details keep their keys");
        assert_eq!(d["event.client"], "Sample Monitoring Service");
        assert_eq!(d["client_url"], "https://monitoring.example.com");
        assert_eq!(d["timestamp"], "2015-07-17T08:42:58.315+0000");
        assert_eq!(
            d["links"],
            r#"[{"href":"http://x.example.com","text":"a link"}]"#
        );
        assert_eq!(d["images"], r#"[{"src":"https://img.example.com/a.png"}]"#);
    }

    #[test]
    fn all_problems_are_listed_with_their_fields() {
        let err = parse_json(json!({
            "routing_key": 7, "event_action": "trigger", "dedup_key": "x".repeat(256),
            "payload": {"summary": "s", "severity": "loud", "custom_details": "plain"},
            "links": [{"text": "no href"}], "images": {}
        }))
        .unwrap_err();
        assert_eq!(err.code, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.errors,
            [
                "routing_key: expected a string, got number",
                "dedup_key: longer than 255 bytes",
                "payload.source: required on trigger",
                "payload.severity: \"loud\" is not one of critical, error, warning, info",
                "links[0].href: required",
                "images: expected an array, got object",
            ]
        );
        let err = parse_json(json!({"routing_key": "k", "event_action": "resolve"})).unwrap_err();
        assert_eq!(
            err.errors,
            ["dedup_key: required on acknowledge and resolve"]
        );
        let err = parse_json(json!({"routing_key": "k", "event_action": "page"})).unwrap_err();
        assert_eq!(
            err.errors,
            ["event_action: \"page\" is not one of trigger, acknowledge, resolve"]
        );
        let err = parse_json(json!({"routing_key": "k", "event_action": "trigger"})).unwrap_err();
        assert_eq!(err.errors, ["payload: required on trigger"]);
    }

    #[test]
    fn a_resolve_needs_no_payload() {
        let req =
            parse_json(json!({"routing_key": "k", "event_action": "resolve", "dedup_key": "d"}))
                .expect("valid");
        assert_eq!(req.action, pb::EventAction::Resolve as i32);
        assert!(req.summary.is_empty() && req.severity.is_empty());
    }

    #[test]
    fn core_field_names_become_the_api_s() {
        assert_eq!(api_field("severity"), "payload.severity");
        assert_eq!(api_field("action"), "event_action");
        assert_eq!(api_field("routing_key"), "routing_key");
    }
}
