//! The current on-call document, read in the console: services, teams and
//! escalation policies; a service's page plan if nobody answers (the same
//! `simulate` as `pagerctl simulate`); and a schedule's week with its layers,
//! restrictions and overrides, where a user can hand over a shift of theirs.

use super::{html, Console, Nav, Problem, Session};
use crate::node::now_ms;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pager_core::oncall::{OnCallDoc, Target, UrgencyRule};
use pager_core::schedule::{Rotation, Schedule};
use pager_core::Millis;
use std::collections::HashMap;

pub struct ServiceRow {
    pub name: String,
    pub description: String,
    pub team: String,
    pub tier: String,
    pub policy: String,
    pub urgency: &'static str,
    pub runbook: String,
    /// Integration keys are credentials: only their last four characters.
    pub keys: Vec<String>,
}

pub struct TeamRow {
    pub name: String,
    pub description: String,
    pub members: String,
    pub policy: String,
}

pub struct PolicyRow {
    pub name: String,
    pub description: String,
    /// "after 5m: schedule primary, user bob" per level.
    pub levels: Vec<String>,
    pub repeat: u32,
    pub fallback: String,
}

#[derive(Template)]
#[template(path = "console/services.html")]
struct ServicesPage {
    nav: Nav,
    services: Vec<ServiceRow>,
    teams: Vec<TeamRow>,
    policies: Vec<PolicyRow>,
    version: u64,
}

fn target(t: &Target) -> String {
    match t {
        Target::User(u) => format!("user {u}"),
        Target::Schedule(s) => format!("schedule {s}"),
        Target::Team(t) => format!("team {t}"),
    }
}

fn urgency(u: &UrgencyRule) -> &'static str {
    match u {
        UrgencyRule::High => "high",
        UrgencyRule::Low => "low",
        UrgencyRule::Severity => "by severity",
        UrgencyRule::SupportHours => "by support hours",
    }
}

fn masked_key(k: &str) -> String {
    let tail: String = k
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

fn services_of(doc: &OnCallDoc) -> Vec<ServiceRow> {
    doc.services
        .iter()
        .map(|(name, s)| ServiceRow {
            name: name.clone(),
            description: s.description.clone(),
            team: s.team.clone().unwrap_or_default(),
            tier: s.tier.clone().unwrap_or_default(),
            policy: s.escalation_policy.clone(),
            urgency: urgency(&s.urgency),
            runbook: s.runbook_url.clone(),
            keys: s.integration_keys.iter().map(|k| masked_key(k)).collect(),
        })
        .collect()
}

fn policies_of(doc: &OnCallDoc) -> Vec<PolicyRow> {
    doc.escalation_policies
        .iter()
        .map(|(name, p)| PolicyRow {
            name: name.clone(),
            description: p.description.clone(),
            levels: p
                .levels
                .iter()
                .map(|l| {
                    let who: Vec<String> = l.targets.iter().map(target).collect();
                    format!("{}; then after {}", who.join(", "), l.escalate_after)
                })
                .collect(),
            repeat: p.repeat,
            fallback: p.fallback.as_ref().map(target).unwrap_or_default(),
        })
        .collect()
}

pub async fn services(State(console): State<Console>, session: Session) -> Response {
    // Read-your-writes (a swap just made shows on its week).
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let page = console.node.read(|s| {
        let doc = &s.config;
        ServicesPage {
            nav: Nav::new(&session, "services"),
            services: services_of(doc),
            teams: doc
                .teams
                .iter()
                .map(|(name, t)| TeamRow {
                    name: name.clone(),
                    description: t.description.clone(),
                    members: t.members.join(", "),
                    policy: t.escalation_policy.clone().unwrap_or_default(),
                })
                .collect(),
            policies: policies_of(doc),
            version: s.config_version,
        }
    });
    html(&page)
}

pub struct Planned {
    pub after: String,
    pub level: u32,
    pub repeat: u32,
    pub user: String,
    pub method: String,
    pub shadow: bool,
}

#[derive(Template)]
#[template(path = "console/service.html")]
struct ServicePage {
    nav: Nav,
    s: ServiceRow,
    plan: Vec<Planned>,
    /// The simulation stopped at its page or time limit.
    truncated: bool,
}

fn after(ms: Millis) -> String {
    let m = ms / 60_000;
    match (m / 60, m % 60) {
        (0, 0) => format!("{}s", ms / 1000),
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// `/services/NAME`: the service and what a trigger now would page if
/// nobody answered (the real state machine on a copy, off the async workers).
pub async fn service(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
) -> Response {
    // Read-your-writes (a swap just made shows on its week).
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let found = console.node.read(|s| {
        s.config.services.contains_key(&name).then(|| {
            let row = services_of(&s.config).into_iter().find(|r| r.name == name);
            (row, s.clone())
        })
    });
    let Some((Some(row), state)) = found else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "No such service",
            format!("The on-call document has no service {name:?}."),
        )
        .into_response();
    };
    let at = now_ms().max(state.clock);
    let service = name.clone();
    let simulated = tokio::task::spawn_blocking(move || {
        state.simulate(&service, at, pager_core::event::Severity::Critical)
    })
    .await;
    let pages = match simulated {
        Ok(Ok(pages)) => pages,
        Ok(Err(r)) => return Problem::bad_request(r.to_string()).into_response(),
        Err(e) => {
            return Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Simulation failed",
                e.to_string(),
            )
            .into_response()
        }
    };
    let truncated = pages.len() >= pager_core::query::SIMULATION_MAX_PAGES;
    html(&ServicePage {
        nav: Nav::new(&session, "services"),
        s: row,
        plan: pages
            .into_iter()
            .map(|p| Planned {
                after: after(p.at.saturating_sub(at)),
                level: p.level,
                repeat: p.repeat,
                user: p.user,
                method: p.method,
                shadow: p.shadow,
            })
            .collect(),
        truncated,
    })
}

pub struct ShiftCell {
    pub from: String,
    pub to: String,
    pub user: String,
    pub layer: String,
    pub start_ms: Millis,
    pub end_ms: Millis,
    pub mine: bool,
}

pub struct DayColumn {
    pub day: String,
    pub shifts: Vec<ShiftCell>,
}

pub struct LayerRow {
    pub name: String,
    pub rotation: String,
    pub users: String,
    pub shadows: String,
    pub restrictions: Vec<String>,
}

pub struct OverrideRow {
    pub user: String,
    pub replaces: String,
    pub from: String,
    pub to: String,
}

#[derive(Template)]
#[template(path = "console/schedule.html")]
struct SchedulePage {
    nav: Nav,
    name: String,
    time_zone: String,
    week: String,
    prev: String,
    next: String,
    days: Vec<DayColumn>,
    layers: Vec<LayerRow>,
    overrides: Vec<OverrideRow>,
    users: Vec<String>,
    me: String,
    /// The next handoff (its instant in the schedule's zone) and the notes waiting for it.
    next_handoff: String,
    notes: Vec<(String, String)>,
    noted: bool,
}

fn rotation(r: &Rotation) -> String {
    match r {
        Rotation::Hourly => "hourly".into(),
        Rotation::Daily => "daily".into(),
        Rotation::Weekly => "weekly".into(),
        Rotation::Days(n) => format!("every {n} days"),
        Rotation::Custom(span) => format!("every {span}"),
    }
}

/// An instant in `tz`, formatted with `fmt` (strftime).
fn local(ms: Millis, tz: &jiff::tz::TimeZone, fmt: &str) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_zoned(tz.clone()).strftime(fmt).to_string())
        .unwrap_or_default()
}

/// Midnight of `day` in `tz`, in Unix ms.
fn midnight(day: jiff::civil::Date, tz: &jiff::tz::TimeZone) -> Option<Millis> {
    let z = day.to_zoned(tz.clone()).ok()?;
    u64::try_from(z.timestamp().as_millisecond()).ok()
}

fn week_of(
    sch: &Schedule,
    monday: jiff::civil::Date,
    tz: &jiff::tz::TimeZone,
    me: &str,
) -> Vec<DayColumn> {
    (0..7)
        .filter_map(|d| {
            let day = monday.checked_add(jiff::Span::new().days(d)).ok()?;
            let next = day.checked_add(jiff::Span::new().days(1)).ok()?;
            let (from, to) = (midnight(day, tz)?, midnight(next, tz)?);
            let shifts = sch
                .shifts(from, to)
                .into_iter()
                .map(|sh| ShiftCell {
                    from: local(sh.start, tz, "%H:%M"),
                    to: if sh.end == to {
                        "24:00".into()
                    } else {
                        local(sh.end, tz, "%H:%M")
                    },
                    mine: sh.user == me,
                    user: sh.user,
                    layer: sh.layer.unwrap_or_else(|| "override".into()),
                    start_ms: sh.start,
                    end_ms: sh.end,
                })
                .collect();
            Some(DayColumn {
                day: day.strftime("%a %d %b").to_string(),
                shifts,
            })
        })
        .collect()
}

/// `/schedules/NAME?week=YYYY-MM-DD`: the week (Monday to Sunday, in the
/// schedule's zone) that holds the date; this week by default.
pub async fn schedule(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // Read-your-writes (a swap just made shows on its week).
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let Some(sch) = console
        .node
        .read(|s| s.config.schedules.get(&name).cloned())
    else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "No such schedule",
            format!("The on-call document has no schedule {name:?}."),
        )
        .into_response();
    };
    let tz = sch
        .time_zone
        .time_zone()
        .cloned()
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let day = match q.get("week").map(|w| w.parse::<jiff::civil::Date>()) {
        None => jiff::Timestamp::now().to_zoned(tz.clone()).date(),
        Some(Ok(d)) => d,
        Some(Err(_)) => return Problem::bad_request("week is a date, YYYY-MM-DD.").into_response(),
    };
    let back = i64::from(day.weekday().to_monday_zero_offset());
    let Ok(monday) = day.checked_sub(jiff::Span::new().days(back)) else {
        return Problem::bad_request("That week is out of range.").into_response();
    };
    let shift = |days: i64| {
        monday
            .checked_add(jiff::Span::new().days(days))
            .map(|d| d.to_string())
            .unwrap_or_default()
    };
    let week_start = midnight(monday, &tz).unwrap_or(0);
    let week_end = week_start + 7 * 86_400_000 + 3_600_000;
    let users = console
        .node
        .read(|s| s.config.users.keys().cloned().collect());
    let (next_handoff, notes) = console.node.read(|s| {
        let h = s.handoffs.get(&name);
        (
            h.and_then(|h| h.next)
                .map(|(at, _)| local(at, &tz, "%a %Y-%m-%d %H:%M %Z"))
                .unwrap_or_default(),
            h.map(|h| {
                h.notes
                    .iter()
                    .map(|n| (n.by.clone(), n.text.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        )
    });
    html(&SchedulePage {
        next_handoff,
        notes,
        noted: q.get("done").is_some_and(|d| d == "note"),
        nav: Nav::new(&session, "oncall"),
        time_zone: sch.time_zone.name().to_string(),
        week: monday.to_string(),
        prev: shift(-7),
        next: shift(7),
        days: week_of(&sch, monday, &tz, &session.user),
        layers: sch
            .layers
            .iter()
            .map(|l| LayerRow {
                name: l.name.clone(),
                rotation: rotation(&l.rotation),
                users: l.users.join(", "),
                shadows: l.shadows.join(", "),
                restrictions: l
                    .restrictions
                    .iter()
                    .map(|r| {
                        let days: Vec<String> = r.days.iter().map(|d| format!("{d:?}")).collect();
                        let days = if days.is_empty() {
                            "every day".to_string()
                        } else {
                            days.join(" ")
                        };
                        format!("{days} {}–{}", r.from, r.to)
                    })
                    .collect(),
            })
            .collect(),
        overrides: sch
            .overrides
            .iter()
            .filter(|o| o.end > week_start && o.start < week_end)
            .map(|o| OverrideRow {
                user: o.user.clone(),
                replaces: o.replaces.clone().unwrap_or_default(),
                from: local(o.start, &tz, "%a %d %b %H:%M"),
                to: local(o.end, &tz, "%a %d %b %H:%M"),
            })
            .collect(),
        name,
        users,
        me: session.user.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_show_their_tail_only() {
        assert_eq!(masked_key("web-key-0001"), "…0001");
        assert_eq!(masked_key("ab"), "…ab");
    }

    #[test]
    fn plan_offsets_read_short() {
        assert_eq!(after(0), "0s");
        assert_eq!(after(5 * 60_000), "5m");
        assert_eq!(after(2 * 3_600_000), "2h");
        assert_eq!(after(90 * 60_000), "1h 30m");
    }
}
