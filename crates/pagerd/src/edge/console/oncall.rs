//! Who is on call, in the console: now and next per schedule and per team's
//! services, my upcoming shifts, and "take the page" (an override).
//!
//! A responder may add an override that puts themselves on call, or that
//! hands their own shift to someone else (a swap); anything else is an
//! admin's. The override is one `AddOverride` write: a new document version
//! with it, validated like any document.

use super::{html, when, Console, Fields, Nav, Problem, Session};
use crate::node::now_ms;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pager_core::{Command, Millis};
use std::collections::HashMap;

/// How far "my upcoming shifts" looks.
const UPCOMING: Millis = 14 * 86_400_000;
/// Longest override the form takes.
const MAX_HOURS: u64 = 14 * 24;

pub struct ScheduleNow {
    pub name: String,
    pub time_zone: String,
    pub now: String,
    pub shadows: String,
    pub until: String,
    pub next: String,
}

pub struct ServiceNow {
    pub service: String,
    pub team: String,
    /// (level, who) of each level of the service's policy.
    pub levels: Vec<(u32, String)>,
}

pub struct MyShift {
    pub schedule: String,
    pub from: String,
    pub to: String,
    pub layer: String,
}

#[derive(Template)]
#[template(path = "console/oncall.html")]
struct OnCallPage {
    nav: Nav,
    schedules: Vec<ScheduleNow>,
    services: Vec<ServiceNow>,
    mine: Vec<MyShift>,
    users: Vec<String>,
    me: String,
    admin: bool,
    done: bool,
    error: String,
}

fn names(users: &[String]) -> String {
    if users.is_empty() {
        "nobody".into()
    } else {
        users.join(", ")
    }
}

fn render(
    console: &Console,
    session: &Session,
    done: bool,
    error: Option<(StatusCode, String)>,
) -> Response {
    let now = now_ms();
    let page = console.node.read(|s| {
        let doc = &s.config;
        let schedules = doc
            .schedules
            .iter()
            .map(|(name, sch)| {
                let on = sch.on_call_at(now);
                let next = on
                    .until
                    .map(|u| sch.on_call_at(u).users)
                    .unwrap_or_default();
                ScheduleNow {
                    name: name.clone(),
                    time_zone: sch.time_zone.name().to_string(),
                    now: names(&on.users),
                    shadows: on.shadows.join(", "),
                    until: on.until.map(when).unwrap_or_default(),
                    next: names(&next),
                }
            })
            .collect();
        let services = doc
            .services
            .iter()
            .map(|(name, svc)| ServiceNow {
                service: name.clone(),
                team: svc.team.clone().unwrap_or_default(),
                levels: doc
                    .service_on_call(name, now)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| (l.level, names(&l.users)))
                    .collect(),
            })
            .collect();
        let mut mine: Vec<MyShift> = doc
            .schedules
            .iter()
            .flat_map(|(name, sch)| {
                sch.shifts(now, now + UPCOMING)
                    .into_iter()
                    .filter(|sh| sh.user == session.user)
                    .map(move |sh| (name.clone(), sh))
            })
            .map(|(schedule, sh)| MyShift {
                schedule,
                from: when(sh.start),
                to: when(sh.end),
                layer: sh.layer.unwrap_or_else(|| "override".into()),
            })
            .collect();
        mine.sort_by(|a, b| a.from.cmp(&b.from));
        OnCallPage {
            nav: Nav::new(session, "oncall"),
            schedules,
            services,
            mine,
            users: doc.users.keys().cloned().collect(),
            me: session.user.clone(),
            admin: session.is_admin(),
            done,
            error: error.as_ref().map(|(_, e)| e.clone()).unwrap_or_default(),
        }
    });
    let status = error.map(|(s, _)| s).unwrap_or(StatusCode::OK);
    (status, html(&page)).into_response()
}

pub async fn page(
    State(console): State<Console>,
    session: Session,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    render(&console, &session, q.contains_key("done"), None)
}

/// `YYYY-MM-DDTHH:MM` (a datetime-local field) in UTC, or now when empty.
fn start_of(v: &str, now: Millis) -> Result<Millis, Problem> {
    if v.trim().is_empty() {
        return Ok(now);
    }
    let civil: jiff::civil::DateTime = v.trim().parse().map_err(|_| {
        Problem::bad_request(format!(
            "The start {v:?} is not a date and time (YYYY-MM-DDTHH:MM, UTC)."
        ))
    })?;
    let ts = civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| Problem::bad_request(format!("The start: {e}")))?
        .timestamp();
    u64::try_from(ts.as_millisecond())
        .map_err(|_| Problem::bad_request("The start is before 1970."))
}

/// The override a form asks for, checked against what the user may do.
fn override_of(
    f: &Fields,
    session: &Session,
    now: Millis,
) -> Result<(String, pager_core::schedule::Override), Problem> {
    let schedule = f.required("schedule", "The schedule")?.to_string();
    let user = match f.get("user").trim() {
        "" => session.user.clone(),
        u => u.to_string(),
    };
    let replaces = Some(f.get("replaces").trim().to_string()).filter(|r| !r.is_empty());
    let mine = user == session.user || replaces.as_deref() == Some(session.user.as_str());
    if !mine && !session.is_admin() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Admins only",
            "A responder can take the page themselves or hand over their own shift; \
             moving someone else's shift needs an admin.",
        ));
    }
    // A swap from the week view names the shift's own instants.
    let exact = (
        f.get("start_ms").parse::<u64>(),
        f.get("end_ms").parse::<u64>(),
    );
    let (start, end) = match exact {
        (Ok(start), Ok(end)) if start < end && end - start <= MAX_HOURS * 3_600_000 => (start, end),
        (Ok(_), Ok(_)) => {
            return Err(Problem::bad_request(format!(
                "The shift must end after it starts, within {MAX_HOURS} hours."
            )))
        }
        _ => {
            let hours: u64 = f
                .required("hours", "How many hours")?
                .parse()
                .ok()
                .filter(|h| (1..=MAX_HOURS).contains(h))
                .ok_or_else(|| Problem::bad_request(format!("Hours: 1 to {MAX_HOURS}.")))?;
            let start = start_of(f.get("start"), now)?;
            (start, start + hours * 3_600_000)
        }
    };
    if user == replaces.clone().unwrap_or_default() {
        return Err(Problem::bad_request("Hand the shift to someone else."));
    }
    Ok((
        schedule,
        pager_core::schedule::Override {
            user,
            replaces,
            start,
            end,
        },
    ))
}

pub async fn add_override(
    State(console): State<Console>,
    session: Session,
    fields: Fields,
) -> Response {
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let (schedule, over) = match override_of(&fields, &session, now_ms()) {
        Ok(o) => o,
        Err(p) => return render(&console, &session, false, Some((p.status, p.detail))),
    };
    // Not sent again on its own: the document moves a version per override.
    let cmd = Command::AddOverride {
        at: 0,
        schedule,
        over,
        by: session.user.clone(),
    };
    match super::commit(&console.node, cmd, false).await {
        Ok(index) => session.redirect_after(index, "/oncall?done=override"),
        Err(e) => render(&console, &session, false, Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_a_utc_minute_or_now() {
        assert_eq!(start_of("", 42).unwrap(), 42);
        assert_eq!(start_of("2026-12-07T09:15", 0).unwrap(), 1_796_634_900_000);
        assert!(start_of("tomorrow", 0).is_err());
    }
}
