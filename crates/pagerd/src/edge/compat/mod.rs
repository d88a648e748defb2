//! Drop-in endpoints for existing monitoring, on every node's HTTP port: a
//! tool that pages through PagerDuty or an Alertmanager webhook switches to
//! pagerd by changing a URL.
//!
//! | route | speaks | does |
//! |---|---|---|
//! | `POST /v2/enqueue` | PagerDuty Events API v2 | one trigger / acknowledge / resolve; `202 {"status":"success","message":"Event processed","dedup_key":..}` |
//! | `POST /v1/alertmanager/{integration_key}` | Alertmanager webhook, payload version 4 | each firing alert triggers, each resolved alert resolves; `200` with a result per alert |
//!
//! Both turn what they receive into the `SendEventRequest` of gRPC
//! `Events/Send` and commit it through [`grpc::send_event`]: the same
//! validation, severity and urgency mapping, routing rules and dedup
//! semantics, and any node takes the request and forwards it to the leader.
//!
//! Every failure answers in PagerDuty's error shape
//! (`{"status":..,"message":..,"errors":["field: reason",..]}`, [`ApiError`]),
//! each error naming the field at fault; nothing is applied when a request is
//! refused for its content. [`NodeError`]s map in one place,
//! [`ApiError::from_node`]: no leader or no quorum is a 503 with
//! `Retry-After` (retrying is safe), an unknown key a 400 (PagerDuty) or 404
//! (Alertmanager, whose key is in the path), anything else about the event a
//! 400.
//!
//! Layout: [`pagerduty`], [`alertmanager`], [`fields`] (reading untyped JSON
//! while collecting every problem with its path).
//!
//! [`grpc::send_event`]: crate::edge::grpc::send_event

pub mod alertmanager;
pub mod fields;
pub mod pagerduty;

use crate::error::NodeError;
use crate::node::Node;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::post;
use axum::{Json, Router};
use pager_core::Rejection;
use serde_json::{Map, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route(
            "/v2/enqueue",
            post(pagerduty::enqueue).layer(DefaultBodyLimit::max(pagerduty::MAX_BODY_BYTES)),
        )
        .route(
            "/v1/alertmanager/:integration_key",
            post(alertmanager::notify).layer(DefaultBodyLimit::max(alertmanager::MAX_BODY_BYTES)),
        )
}

/// A refused request, in PagerDuty's error shape. `alerts`, when set, is
/// added as a member of its own (Alertmanager: what each alert came to).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: StatusCode,
    pub status: &'static str,
    pub message: String,
    /// One entry per problem, `"field: reason"`.
    pub errors: Vec<String>,
    pub alerts: Option<Vec<Value>>,
}

impl ApiError {
    fn new(code: StatusCode, status: &'static str, message: &str, errors: Vec<String>) -> Self {
        ApiError {
            code,
            status,
            message: message.to_string(),
            errors,
            alerts: None,
        }
    }

    /// The request's content is wrong: PagerDuty's 400.
    pub fn invalid(errors: Vec<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid event",
            "Event object is invalid",
            errors,
        )
    }

    /// The body is not JSON at all: PagerDuty's documented answer to that.
    pub fn unparseable(detail: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "Unrecognized object",
            "Event object format is unrecognized",
            vec![format!("body: JSON parse error: {detail}")],
        )
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid event",
            "Event object is too large",
            vec![format!("body: larger than {limit} bytes")],
        )
    }

    /// The single mapping of node errors. `field` renames a field as core
    /// or the gRPC conversion name it (`summary`) to the request's
    /// (`payload.summary`); `not_found` is the status of an unknown key.
    pub fn from_node(e: NodeError, field: &dyn Fn(&str) -> String, not_found: StatusCode) -> Self {
        let invalid =
            |f: &str, reason: &str| ApiError::invalid(vec![format!("{}: {reason}", field(f))]);
        match e {
            NodeError::NotLeader { .. } | NodeError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "pagerd could not commit this now (no leader or no quorum); retrying is safe: \
                 an event with a dedup key folds into the incident it may already have opened",
                vec![e.to_string()],
            ),
            NodeError::Invalid { field: f, reason } => invalid(&f, &reason),
            NodeError::Rejected(Rejection::Invalid { field: f, reason }) => invalid(&f, &reason),
            NodeError::Rejected(Rejection::NotFound { field: f, what }) => {
                let errors = vec![format!("{}: no service has this {what}", field(&f))];
                if not_found == StatusCode::NOT_FOUND {
                    ApiError::new(not_found, "not found", "Unknown integration key", errors)
                } else {
                    ApiError::new(
                        not_found,
                        "invalid event",
                        "Event object is invalid",
                        errors,
                    )
                }
            }
            NodeError::Rejected(r @ Rejection::ConfigInvalid { .. }) => {
                ApiError::invalid(vec![r.to_string()])
            }
            NodeError::Precondition(m) => ApiError::invalid(vec![m]),
            e @ NodeError::RateLimited { .. } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too many events for this integration key; retry after the Retry-After seconds",
                vec![e.to_string()],
            ),
            NodeError::Fatal(m) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "error",
                "pagerd failed internally; this node stops serving, another takes over",
                vec![m],
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> HttpResponse {
        let mut body = serde_json::json!({
            "status": self.status,
            "message": self.message,
            "errors": self.errors,
        });
        if let Some(alerts) = self.alerts {
            body["alerts"] = Value::Array(alerts);
        }
        if self.code == StatusCode::SERVICE_UNAVAILABLE
            || self.code == StatusCode::TOO_MANY_REQUESTS
        {
            (self.code, [(header::RETRY_AFTER, "1")], Json(body)).into_response()
        } else {
            (self.code, Json(body)).into_response()
        }
    }
}

/// The request body as a JSON object: 413 over `limit`, PagerDuty's answer
/// to a body that is not JSON, 400 for JSON that is not an object.
pub fn json_object(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::too_large(limit))
        }
        Err(rejection) => return Err(ApiError::unparseable(rejection.body_text())),
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::invalid(vec![format!(
            "body: expected a JSON object, got {}",
            fields::kind(&other)
        )])),
        Err(e) => Err(ApiError::unparseable(e)),
    }
}
