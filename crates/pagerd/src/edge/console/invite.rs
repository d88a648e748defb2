//! Invitations: an admin asks (console `/users`, `pagerctl user invite`) and
//! the leader emails the user a link, as a replicated delivery like any page.
//! The link carries a token signed with a key derived from the cluster's link
//! key (so any node checks it) that names the user, the role, an expiry and
//! the user's `sessions_version` when invited: setting the password moves the
//! version, so the link works once. Opening it shows a form for the new
//! password; sending it sets the password and signs the user in.

use super::session;
use super::{html, Console, Fields, Problem};
use crate::node::now_ms;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use pager_core::{Command, Millis, TokenRole};
use serde::{Deserialize, Serialize};

/// How long an invitation link works.
pub const TTL_MS: Millis = 72 * 3_600_000;

const LABEL: &str = "pagerd console invite v1";

/// What an invitation link says, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "u")]
    pub user: String,
    #[serde(rename = "r")]
    pub role: TokenRole,
    /// The user's `sessions_version` when invited (0: no password yet).
    #[serde(rename = "v")]
    pub version: u64,
    /// Expiry, Unix ms.
    #[serde(rename = "x")]
    pub expires: Millis,
}

/// The link to put in the invitation email (`None` before a leader has
/// taken over: there is no key to sign with yet).
pub fn link(link_key: &str, public_url: &str, claims: &Claims) -> Option<String> {
    let key = session::derived(link_key, LABEL)?;
    let token = crate::edge::links::seal(&key, claims).ok()?;
    Some(format!("{public_url}/invite/{token}"))
}

/// Why an invitation link does not work.
fn refused(detail: &str) -> Problem {
    Problem::new(StatusCode::GONE, "This invitation does not work", detail)
}

/// The claims of a link that still works, checked against the state now.
fn check(console: &Console, token: &str) -> Result<Claims, Problem> {
    let link_key = console.node.read(|s| s.link_key.expose().to_string());
    let key = session::derived(&link_key, LABEL)
        .ok_or_else(|| refused("This cluster has not elected its first leader yet."))?;
    let claims: Claims = crate::edge::links::open(&key, token).map_err(|_| {
        refused("The link is not one this cluster sent (mistyped, or from another cluster).")
    })?;
    if claims.expires <= now_ms() {
        return Err(refused(
            "The link expired. Ask an admin for a new invitation.",
        ));
    }
    let current = console.node.read(|s| {
        s.config.users.contains_key(&claims.user).then(|| {
            s.credentials
                .get(&claims.user)
                .map(|c| c.sessions_version)
                .unwrap_or(0)
        })
    });
    match current {
        None => Err(refused("This user is no longer in the on-call document.")),
        Some(v) if v != claims.version => Err(refused(
            "The link was used already (or the password changed since). Sign in, or ask an admin for a new invitation.",
        )),
        Some(_) => Ok(claims),
    }
}

#[derive(Template)]
#[template(path = "console/invite.html")]
struct InvitePage {
    user: String,
    role: &'static str,
    csrf: String,
    error: String,
}

fn form(
    console: &Console,
    token: &str,
    claims: &Claims,
    status: StatusCode,
    error: &str,
) -> Response {
    let link_key = console.node.read(|s| s.link_key.expose().to_string());
    let csrf = session::derived(&link_key, LABEL)
        .map(|k| session::tag(&k, "invite", token))
        .unwrap_or_default();
    let page = InvitePage {
        user: claims.user.clone(),
        role: claims.role.as_str(),
        csrf,
        error: error.to_string(),
    };
    (status, html(&page)).into_response()
}

pub async fn page(State(console): State<Console>, Path(token): Path<String>) -> Response {
    match check(&console, &token) {
        Ok(claims) => form(&console, &token, &claims, StatusCode::OK, ""),
        Err(p) => p.into_response(),
    }
}

/// `POST /invite/TOKEN`: set the password (one `SetPassword`, hashed here)
/// and sign in.
pub async fn accept(
    State(console): State<Console>,
    Path(token): Path<String>,
    fields: Fields,
) -> Response {
    let claims = match check(&console, &token) {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let link_key = console.node.read(|s| s.link_key.expose().to_string());
    let expected = session::derived(&link_key, LABEL)
        .map(|k| session::tag(&k, "invite", &token))
        .unwrap_or_default();
    if !session::same(fields.get("csrf"), &expected) {
        return form(
            &console,
            &token,
            &claims,
            StatusCode::FORBIDDEN,
            "The form did not come from this page. Please try again.",
        );
    }
    let password = fields.get("password").to_string();
    if password != fields.get("confirm") {
        return form(
            &console,
            &token,
            &claims,
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ.",
        );
    }
    if let Err(why) = crate::edge::password::check(&password) {
        return form(
            &console,
            &token,
            &claims,
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("The password must be {why}."),
        );
    }
    let hashed = tokio::task::spawn_blocking(move || crate::edge::password::hash(&password)).await;
    let Ok(Ok(phc)) = hashed else {
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed",
            "The password could not be hashed.",
        )
        .into_response();
    };
    let cmd = Command::SetPassword {
        at: 0,
        user: claims.user.clone(),
        role: claims.role,
        phc,
        by: format!("{} (invitation)", claims.user),
    };
    // Sent once: a second would be refused as a used link anyway.
    let index = match super::commit(&console.node, cmd, false).await {
        Ok(index) => index,
        Err((status, why)) => return form(&console, &token, &claims, status, &why),
    };
    // Signed in: the session names the version this write set.
    if let Err(e) = console.node.wait_applied(index).await {
        tracing::warn!(cause = %e, "invitation accepted; sign-in waits for this node");
        return Redirect::to("/login").into_response();
    }
    let Some(cookie) = session::start(&console, &claims.user) else {
        return Redirect::to("/login").into_response();
    };
    tracing::info!(user = %claims.user, "console invitation accepted");
    session::signed_in(&console, &cookie, "/incidents")
}
