//! My profile: contact methods (masked, with whether pages reach them),
//! notification rules per urgency, "send me a test page" per contact method
//! (a real SMS, call or email marked as a test: one `TestPage` write,
//! delivered like any page, never an incident) with the recent tests'
//! outcomes, and signing out everywhere.

use super::{html, when, Console, Fields, Nav, Problem, Session};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use pager_core::Command;
use std::collections::HashMap;

pub struct Contact {
    pub name: String,
    pub kind: &'static str,
    pub address: String,
    /// Why pages do not reach it; empty when they do.
    pub unreachable: String,
}

pub struct TestRow {
    pub when: String,
    pub contact: String,
    pub status: &'static str,
    pub provider_id: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    nav: Nav,
    user: String,
    email: String,
    time_zone: String,
    contacts: Vec<Contact>,
    high: Vec<String>,
    low: Vec<String>,
    tests: Vec<TestRow>,
    done: &'static str,
    error: String,
}

/// Recent test pages shown.
const RECENT_TESTS: usize = 10;

fn render(
    console: &Console,
    session: &Session,
    done: &'static str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let page = console.node.read(|s| {
        let u = s.config.users.get(&session.user)?;
        let rules = |rules: &[pager_core::oncall::NotificationRule]| -> Vec<String> {
            rules
                .iter()
                .map(|r| format!("after {}: {}", r.after, r.contact))
                .collect()
        };
        Some(ProfilePage {
            nav: Nav::new(session, "profile"),
            user: session.user.clone(),
            email: u.email.clone(),
            time_zone: u
                .time_zone
                .as_ref()
                .map(|z| z.name().to_string())
                .unwrap_or_default(),
            contacts: u
                .contact_methods
                .iter()
                .map(|c| Contact {
                    name: c.name.clone(),
                    kind: c.kind.as_str(),
                    address: pager_notify::mask::address(&c.address),
                    unreachable: s
                        .unreachable
                        .get(&pager_core::delivery::contact_key(c.kind, &c.address))
                        .map(|u| u.reason.clone())
                        .unwrap_or_default(),
                })
                .collect(),
            high: rules(&u.notification_rules.high),
            low: rules(&u.notification_rules.low),
            tests: s
                .deliveries
                .values()
                .rev()
                .filter(|d| {
                    d.purpose == pager_core::delivery::Purpose::Test && d.user == session.user
                })
                .take(RECENT_TESTS)
                .map(|d| TestRow {
                    when: when(d.created_at),
                    contact: d.contact.clone(),
                    status: d.status.as_str(),
                    provider_id: d.provider_id.clone(),
                    error: d.error.clone(),
                })
                .collect(),
            done,
            error: error.as_ref().map(|(_, e)| e.clone()).unwrap_or_default(),
        })
    });
    match page {
        Some(page) => {
            let status = error.map(|(s, _)| s).unwrap_or(StatusCode::OK);
            (status, html(&page)).into_response()
        }
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "No profile",
            "Your user is no longer in the on-call document.",
        )
        .into_response(),
    }
}

pub async fn page(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let done = match q.get("done").map(String::as_str) {
        Some("test") => "Test page on its way. Its status shows below.",
        _ => "",
    };
    render(&console, &session, done, None)
}

/// `POST /profile/test`: a test page to one of my contact methods.
pub async fn test_page(
    State(console): State<Console>,
    session: Session,
    fields: Fields,
) -> Response {
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let contact = match fields.required("contact", "The contact method") {
        Ok(c) => c.to_string(),
        Err(p) => return render(&console, &session, "", Some((p.status, p.detail))),
    };
    // Sent once: a second would be a second real page.
    let cmd = Command::TestPage {
        at: 0,
        user: session.user.clone(),
        contact,
        by: session.user.clone(),
    };
    match super::commit(&console.node, cmd, false).await {
        Ok(index) => session.redirect_after(index, "/profile?done=test"),
        Err(e) => render(&console, &session, "", Some(e)),
    }
}

/// `POST /profile/sign-out-everywhere`: end every session of mine (a lost
/// phone), this one included.
pub async fn sign_out_everywhere(
    State(console): State<Console>,
    session: Session,
    fields: Fields,
) -> Response {
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let cmd = Command::RevokeSessions {
        at: 0,
        user: session.user.clone(),
        by: session.user.clone(),
    };
    match super::commit(&console.node, cmd, true).await {
        Ok(_) => {
            // This browser's cookie goes now, before this node applies the write.
            let mut res = Redirect::to("/login?why=revoked").into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, session.cleared());
            res
        }
        Err(e) => render(&console, &session, "", Some(e)),
    }
}
