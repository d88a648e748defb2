//! Users, for admins: who can sign in (role, when and by whom the password
//! was set), and per user: send an invitation by email, sign out on every
//! device, remove the password. Each is one replicated write naming the
//! signed-in admin.

use super::{html, when, Console, Fields, Nav, Problem, Session};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pager_core::{Command, TokenRole};
use std::collections::HashMap;

pub struct UserRow {
    pub name: String,
    pub email: String,
    /// "admin", "responder", or empty without a password.
    pub role: &'static str,
    pub set: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserRow>,
    done: String,
    error: String,
}

fn render(
    console: &Console,
    session: &Session,
    done: String,
    error: Option<(StatusCode, String)>,
) -> Response {
    let users = console.node.read(|s| {
        s.config
            .users
            .iter()
            .map(|(name, u)| {
                let cred = s.credentials.get(name);
                UserRow {
                    name: name.clone(),
                    email: pager_notify::mask::email(&u.email),
                    role: cred.map(|c| c.role.as_str()).unwrap_or(""),
                    set: cred
                        .map(|c| format!("{} by {}", when(c.set_at), c.set_by))
                        .unwrap_or_default(),
                }
            })
            .collect()
    });
    let status = error.as_ref().map(|(s, _)| *s).unwrap_or(StatusCode::OK);
    let page = UsersPage {
        nav: Nav::new(session, "users"),
        users,
        done,
        error: error.map(|(_, e)| e).unwrap_or_default(),
    };
    (status, html(&page)).into_response()
}

pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = session.require_admin() {
        return p.into_response();
    }
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let user = q.get("user").cloned().unwrap_or_default();
    let done = match q.get("done").map(String::as_str) {
        Some("invite") => format!("Invitation on its way to {user}."),
        Some("sign-out") => format!("{user} is signed out everywhere."),
        Some("clear") => format!("{user} can no longer sign in."),
        _ => String::new(),
    };
    render(&console, &session, done, None)
}

/// `POST /users/NAME/ACTION` (`invite`, `sign-out`, `clear`).
pub async fn act(
    State(console): State<Console>,
    session: Session,
    Path((user, action)): Path<(String, String)>,
    fields: Fields,
) -> Response {
    if let Err(p) = session.require_admin() {
        return p.into_response();
    }
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let by = session.user.clone();
    let (cmd, repeatable) = match action.as_str() {
        "invite" => {
            let role = match fields.get("role") {
                "admin" => TokenRole::Admin,
                "" | "responder" => TokenRole::Responder,
                other => {
                    let p = Problem::bad_request(format!("{other:?} is not responder or admin."));
                    return render(
                        &console,
                        &session,
                        String::new(),
                        Some((p.status, p.detail)),
                    );
                }
            };
            // Sent once: a second is a second email.
            (
                Command::Invite {
                    at: 0,
                    user: user.clone(),
                    role,
                    by,
                },
                false,
            )
        }
        "sign-out" => (
            Command::RevokeSessions {
                at: 0,
                user: user.clone(),
                by,
            },
            true,
        ),
        "clear" => (
            Command::ClearPassword {
                at: 0,
                user: user.clone(),
                by,
            },
            false,
        ),
        other => {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "No such action",
                format!("{other:?} is not a user action."),
            )
            .into_response()
        }
    };
    let to = format!(
        "/users?done={action}&user={}",
        url::form_urlencoded::byte_serialize(user.as_bytes()).collect::<String>()
    );
    match super::commit(&console.node, cmd, repeatable).await {
        Ok(index) => session.redirect_after(index, &to),
        Err(e) => render(&console, &session, String::new(), Some(e)),
    }
}
