//! The web console, served by every node on its HTTP port: sign-in, the
//! incident list (live over server-sent events), an incident's page with
//! every action, who is on call with overrides, and the cluster for admins.
//!
//! Same arrows as the gRPC edge: a page reads this node's replica (after
//! waiting for the session's last write, so a user always sees what they
//! did), and an action is one command through [`Node::write`], forwarded to
//! the leader, naming the signed-in user.
//!
//! Every page works without JavaScript (forms, POST-redirect-GET); the one
//! script only keeps the incident list live. Templates are askama's,
//! compiled into the binary with the stylesheet and the script.
//!
//! - [`session`]: sign-in, the signed session cookie, CSRF tokens
//! - [`oidc`]: sign-in through an OpenID Connect provider (PKCE)
//! - [`incidents`]: the list, its live stream, an incident's page and actions
//! - [`oncall`]: who is on call now and next, overrides
//! - [`directory`]: services, teams, policies, a service's page plan, a
//!   schedule's week
//! - [`profile`]: my contact methods and rules, test pages, sign out everywhere
//! - [`rca`]: root cause analyses (mine first), the page board per team, and
//!   the page review report
//! - [`users`] and [`invite`]: who can sign in, invitations by email (admins)
//! - [`cluster`]: members, leader, lag (admins)

mod cluster;
mod directory;
mod incidents;
pub mod invite;
mod oidc;
mod oncall;
mod profile;
mod rca;
pub mod session;
mod users;

use crate::edge::ratelimit::KeyLimiter;
use crate::error::NodeError;
use crate::node::Node;
use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::sync::Arc;

pub use session::Session;

/// What every console handler gets: the node and the sign-in limits.
#[derive(Clone)]
pub struct Console {
    pub node: Arc<Node>,
    /// Sign-in attempts per user name (5 a minute, bursts of 5).
    pub by_user: Arc<KeyLimiter>,
    /// Sign-in attempts per client address (30 a minute, bursts of 30).
    pub by_address: Arc<KeyLimiter>,
    /// Changed rows for the live incident lists.
    pub live: incidents::Live,
    /// The identity provider's discovery document and keys, once read.
    pub oidc: Arc<tokio::sync::Mutex<Option<oidc::Provider>>>,
}

pub fn router(node: Arc<Node>) -> Router {
    let console = Console {
        live: incidents::Live::new(node.clone()),
        oidc: Arc::new(tokio::sync::Mutex::new(None)),
        node,
        by_user: Arc::new(KeyLimiter::new(5.0 / 60.0, 5)),
        by_address: Arc::new(KeyLimiter::new(30.0 / 60.0, 30)),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/incidents") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/login/oidc", get(oidc::start))
        .route("/login/oidc/callback", get(oidc::callback))
        .route("/incidents", get(incidents::list))
        .route("/incidents/stream", get(incidents::stream))
        .route("/incidents/:id", get(incidents::show))
        .route("/incidents/:id/:action", post(incidents::act))
        .route("/oncall", get(oncall::page))
        .route("/oncall/override", post(oncall::add_override))
        .route("/services", get(directory::services))
        .route("/services/:name", get(directory::service))
        .route("/schedules/:name", get(directory::schedule))
        .route("/schedules/:name/note", post(rca::handoff_note))
        .route("/profile", get(profile::page))
        .route("/profile/test", post(profile::test_page))
        .route(
            "/profile/sign-out-everywhere",
            post(profile::sign_out_everywhere),
        )
        .route("/rcas", get(rca::list))
        .route("/rcas/:id", get(rca::show))
        .route("/rcas/:id/:action", post(rca::act))
        .route("/board", get(rca::board))
        .route("/reports", get(rca::report))
        .route("/users", get(users::page))
        .route("/users/:name/:action", post(users::act))
        .route("/invite/:token", get(invite::page).post(invite::accept))
        .route("/cluster", get(cluster::page))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Content-Security-Policy of every console response: nothing inline,
/// nothing from elsewhere, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn stylesheet() -> impl IntoResponse {
    asset(
        "text/css",
        include_str!("../../../assets/console/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    asset(
        "text/javascript",
        include_str!("../../../assets/console/console.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no console page at this address.",
    )
}

/// The navigation bar of a signed-in page.
pub struct Nav {
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    /// Which section is open: "incidents", "oncall" or "cluster".
    pub here: &'static str,
}

impl Nav {
    pub fn new(session: &Session, here: &'static str) -> Nav {
        Nav {
            user: session.user.clone(),
            admin: session.is_admin(),
            csrf: session.csrf(),
            here,
        }
    }
}

/// A page that explains why a request was not carried out, with its HTTP
/// status. Nothing was applied when one is shown.
#[derive(Debug, Template)]
#[template(path = "console/problem.html")]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "That did not work", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        (status, html(&self)).into_response()
    }
}

/// Commit `cmd` through the leader: its commit index, or why it did not
/// land (a rejection included) in words for the page. An action that is safe to apply twice
/// (`repeatable`: acknowledge, resolve, a note, a role) is sent again while the cluster elects, until the write timeout:
/// a forward to a leader that just died fails at once, and the person who
/// pressed the button should not have to press it again. Anything else is
/// sent once, and a failure says to check before retrying.
pub async fn commit(
    node: &Node,
    cmd: pager_core::Command,
    repeatable: bool,
) -> Result<u64, (StatusCode, String)> {
    let deadline = tokio::time::Instant::now() + node.cfg.write_timeout;
    let mut metrics = node.raft.metrics();
    let written = loop {
        let asked = metrics.borrow_and_update().current_leader;
        match node.write(cmd.clone()).await {
            Err(NodeError::Unavailable(_) | NodeError::NotLeader { .. })
                if repeatable && tokio::time::Instant::now() < deadline =>
            {
                // Wait for the cluster to move on from the leader that failed.
                let moved =
                    metrics.wait_for(|m| m.current_leader.is_some() && m.current_leader != asked);
                if tokio::time::timeout_at(deadline, moved).await.is_err() {
                    break node.write(cmd).await;
                }
            }
            other => break other,
        }
    };
    match written {
        Ok(w) => match w.response {
            pager_core::Response::Rejected(r) => Err(write_failed(&NodeError::Rejected(r))),
            _ => Ok(w.index),
        },
        Err(e) => Err(write_failed(&e)),
    }
}

/// Wait until this node has applied the session's last write, so a user sees
/// what they did even on a follower that is a little behind.
pub async fn caught_up(console: &Console, session: &Session) -> Result<(), Problem> {
    console
        .node
        .wait_applied(session.seen())
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "This node is behind",
                format!("{e}. Reload in a moment, or use another node."),
            )
        })
}

/// Why a write did not land, as a status and words a half-awake reader can
/// act on.
pub fn write_failed(e: &NodeError) -> (StatusCode, String) {
    match e {
        NodeError::Rejected(r) => match r {
            pager_core::Rejection::NotFound { .. } => (StatusCode::NOT_FOUND, r.to_string()),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, r.to_string()),
        },
        NodeError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        NodeError::NotLeader { .. } | NodeError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The cluster did not confirm this in time (a leader election may be under way). \
             It may or may not have been applied: check the timeline below, then try again."
                .to_string(),
        ),
        other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

/// A rendered template as an HTML response body (a template that fails to
/// render is a bug: say so rather than send half a page).
pub fn html(t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(cause = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "console page failed").into_response()
        }
    }
}

/// A submitted form's fields. Any form body parses (a missing field is the
/// handler's to name), so bad input gets a console page, not axum's text.
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// A field that must not be empty; its absence names it.
    pub fn required(&self, name: &str, label: &str) -> Result<&str, Problem> {
        match self.get(name).trim() {
            "" => Err(Problem::bad_request(format!("{label} is required."))),
            v => Ok(v),
        }
    }
}

#[axum::async_trait]
impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<HashMap<String, String>>::from_request(req, state).await {
            Ok(axum::Form(map)) => Ok(Fields(map)),
            Err(e) => Err(Problem::bad_request(format!(
                "The form did not arrive whole: {e}"
            ))),
        }
    }
}

/// "3m", "2h 5m", "4d": how long ago, short enough for a phone's row.
pub fn age(from: pager_core::Millis, now: pager_core::Millis) -> String {
    let s = now.saturating_sub(from) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d", s / 86_400),
    }
}

/// An instant as the console shows it: `2026-12-07 09:15 UTC`.
pub fn when(ms: pager_core::Millis) -> String {
    let full = pager_core::time::rfc3339(ms);
    // 2026-12-07T09:15:30.000Z → 2026-12-07 09:15 UTC
    match (full.get(..10), full.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(age(0, 42_000), "42s");
        assert_eq!(age(0, 3 * 60_000 + 5), "3m");
        assert_eq!(age(0, 2 * 3_600_000 + 5 * 60_000), "2h 5m");
        assert_eq!(age(0, 4 * 86_400_000), "4d");
        assert_eq!(age(10, 0), "0s");
    }

    #[test]
    fn instants_read_at_a_glance() {
        assert_eq!(when(1_796_634_930_000), "2026-12-07 09:15 UTC");
    }
}
