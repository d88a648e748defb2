//! After the page, in the console: the RCAs (mine first, overdue marked),
//! one RCA's page with its whole template as one form, and the page board
//! per team with counts per stage and week-old cards marked.
//!
//! Every write is one command (`EditRca`, `CompleteRca`, `MarkDuplicate`,
//! `MoveCard`) naming the signed-in user. The form carries the record's
//! revision: a save over someone else's newer one is refused, not merged.

use super::{caught_up, commit, html, Console, Fields, Nav, Problem, Session};
use crate::node::now_ms;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pager_core::rca::{Rca, RcaEdit, RcaLine, RepairItem, Stage, STALE_CARD};
use pager_core::Command;
use std::collections::HashMap;

pub struct RcaRow {
    pub id: u64,
    pub title: String,
    pub service: String,
    pub team: String,
    pub status: &'static str,
    pub assignee: String,
    pub due: String,
    pub overdue: bool,
    pub mine: bool,
    pub stage: &'static str,
}

fn row(r: &Rca, me: &str, now: u64) -> RcaRow {
    RcaRow {
        id: r.incident,
        title: r.title.clone(),
        service: r.service.clone(),
        team: r.team.clone(),
        status: r.status.as_str(),
        assignee: r.assignee.clone(),
        due: r.due.map(super::when).unwrap_or_default(),
        overdue: r.overdue(now),
        mine: r.assignee == me,
        stage: r.stage.title(),
    }
}

#[derive(Template)]
#[template(path = "console/rcas.html")]
struct RcasPage {
    nav: Nav,
    rows: Vec<RcaRow>,
    teams: Vec<String>,
    team: String,
    show: String,
}

/// `GET /rcas?team=&show=todo|all`: RCAs still to write (the default) or
/// all, the signed-in user's first, then overdue, then newest.
pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = caught_up(&console, &session).await {
        return p.into_response();
    }
    let team = q
        .get("team")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let show = match q.get("show").map(String::as_str) {
        None | Some("" | "todo") => "todo",
        Some("all") => "all",
        Some(other) => {
            return Problem::bad_request(format!("show={other:?}: choose todo or all."))
                .into_response()
        }
    };
    let now = now_ms();
    let me = session.user.clone();
    let (mut rows, teams) = console.node.read(|s| {
        let rows: Vec<RcaRow> = s
            .rcas()
            .filter(|r| team.is_empty() || r.team == team)
            .filter(|r| show == "all" || !r.status.is_done())
            .map(|r| row(r, &me, now))
            .collect();
        (rows, s.config.teams.keys().cloned().collect::<Vec<_>>())
    });
    rows.sort_by_key(|r| (!r.mine, !r.overdue, std::cmp::Reverse(r.id)));
    html(&RcasPage {
        nav: Nav::new(&session, "rcas"),
        rows,
        teams,
        team,
        show: show.into(),
    })
}

#[derive(Template)]
#[template(path = "console/rca.html")]
struct RcaPage {
    nav: Nav,
    id: u64,
    r: Rca,
    status: &'static str,
    overdue: bool,
    opened: String,
    mitigated: String,
    due: String,
    completed: String,
    /// The timeline as the form edits it: `2026-12-07T09:15:00Z what`, a line each.
    timeline: String,
    /// Repair items as the form edits them: `[x] title | link`, a line each.
    repairs: String,
    users: Vec<String>,
    stages: Vec<(&'static str, &'static str)>,
    stage: &'static str,
    done: String,
    error: String,
}

fn timeline_text(lines: &[RcaLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {}", pager_core::time::rfc3339(l.at), l.what))
        .collect::<Vec<_>>()
        .join("\n")
}

fn repairs_text(items: &[RepairItem]) -> String {
    items
        .iter()
        .map(|i| {
            let mark = if i.done { "[x]" } else { "[ ]" };
            match i.link.is_empty() {
                true => format!("{mark} {}", i.title),
                false => format!("{mark} {} | {}", i.title, i.link),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The timeline field back into lines; a line that does not start with an
/// instant is refused by number.
fn parse_timeline(text: &str) -> Result<Vec<RcaLine>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (at, what) = line.split_once(' ').unwrap_or((line, ""));
        let at: jiff::Timestamp = at.parse().map_err(|_| {
            format!(
                "timeline line {}: start it with an instant like 2026-12-07T09:15:00Z, then what happened",
                n + 1
            )
        })?;
        out.push(RcaLine {
            at: u64::try_from(at.as_millisecond()).unwrap_or(0),
            what: what.trim().to_string(),
        });
    }
    Ok(out)
}

/// The repair items field back into items: `[x] title | link`, `[ ]` or no
/// mark for an open one.
fn parse_repairs(text: &str) -> Vec<RepairItem> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (done, rest) = if let Some(r) = l.strip_prefix("[x]").or(l.strip_prefix("[X]")) {
                (true, r)
            } else {
                (false, l.strip_prefix("[ ]").unwrap_or(l))
            };
            let (title, link) = rest.split_once(" | ").unwrap_or((rest, ""));
            RepairItem {
                title: title.trim().to_string(),
                link: link.trim().to_string(),
                done,
            }
        })
        .collect()
}

fn parse_id(id: &str) -> Result<u64, Problem> {
    id.parse::<u64>().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "No such RCA",
            format!("{id:?} is not an incident number."),
        )
    })
}

/// The RCA's page, with a banner: `done` after a write that landed, or the
/// failure (and its status) of one that did not.
fn page(
    console: &Console,
    session: &Session,
    id: u64,
    done: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let now = now_ms();
    let found = console.node.read(|s| {
        let users: Vec<String> = s.config.users.keys().cloned().collect();
        s.rcas.get(&id).map(|r| ((**r).clone(), users))
    });
    let Some((r, users)) = found else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "No such RCA",
            format!("Incident {id} has no RCA record (low urgency, an RCA policy of off, or compacted when done)."),
        )
        .into_response();
    };
    let (status, error) = match error {
        Some((status, e)) => (status, e),
        None => (StatusCode::OK, String::new()),
    };
    let when = |t: Option<u64>| t.map(super::when).unwrap_or_default();
    let body = html(&RcaPage {
        nav: Nav::new(session, "rcas"),
        id,
        status: r.status.as_str(),
        overdue: r.overdue(now),
        opened: super::when(r.opened_at),
        mitigated: when(r.mitigated_at),
        due: when(r.due),
        completed: when(r.completed_at),
        timeline: timeline_text(&r.text().timeline),
        repairs: repairs_text(&r.text().repairs),
        users,
        stages: Stage::ALL.iter().map(|s| (s.as_str(), s.title())).collect(),
        stage: r.stage.as_str(),
        done: done.into(),
        error,
        r,
    });
    (status, body).into_response()
}

/// `GET /rcas/:id`
pub async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = caught_up(&console, &session).await {
        return p.into_response();
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    let done = match q.get("done").map(String::as_str) {
        Some("save") => "Saved.",
        Some("complete") => "RCA completed.",
        Some("duplicate") => "Marked a duplicate: no RCA needed.",
        Some("move") => "Card moved.",
        _ => "",
    };
    page(&console, &session, id, done, None)
}

/// The command an RCA form asks for.
fn command(id: u64, action: &str, f: &Fields, by: &str) -> Result<Command, Problem> {
    let by = by.to_string();
    match action {
        "save" => {
            let timeline = parse_timeline(f.get("timeline"))
                .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Not saved", e))?;
            let if_revision = f
                .required("revision", "The form's revision")?
                .parse::<u64>()
                .map_err(|_| {
                    Problem::bad_request("The form's revision is not a number: reload the page.")
                })?;
            let assignee = f.get("assignee").trim();
            let edit = RcaEdit {
                customer_impact: Some(f.get("customer_impact") == "on"),
                significant: Some(f.get("significant") == "on"),
                summary: Some(f.get("summary").to_string()),
                timeline: Some(timeline),
                impact: Some(f.get("impact").to_string()),
                findings: Some(f.get("findings").to_string()),
                mitigation: Some(f.get("mitigation").to_string()),
                repairs: Some(parse_repairs(f.get("repairs"))),
                assignee: (!assignee.is_empty()).then(|| assignee.to_string()),
                if_revision: Some(if_revision),
            };
            Ok(Command::EditRca {
                at: 0,
                incident: id,
                edit: Box::new(edit),
                by,
            })
        }
        "complete" => Ok(Command::CompleteRca {
            at: 0,
            incident: id,
            by,
        }),
        "duplicate" => {
            let of = match f.get("of").trim().trim_start_matches('#') {
                "" => None,
                n => Some(n.parse::<u64>().map_err(|_| {
                    Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Not marked",
                        format!("{n:?} is not an incident number."),
                    )
                })?),
            };
            Ok(Command::MarkDuplicate {
                at: 0,
                incident: id,
                of,
                by,
            })
        }
        "move" => {
            let word = f.required("stage", "The stage")?;
            let stage = Stage::parse(word).ok_or_else(|| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Not moved",
                    format!("{word:?} is not a stage of the board."),
                )
            })?;
            Ok(Command::MoveCard {
                at: 0,
                incident: id,
                stage,
                by,
            })
        }
        other => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "No such action",
            format!("{other:?} is not something an RCA can do."),
        )),
    }
}

/// `POST /rcas/:id/:action` (save, complete, duplicate, move); `back=board`
/// returns to the board instead of the RCA.
pub async fn act(
    State(console): State<Console>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    fields: Fields,
) -> Response {
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    let cmd = match command(id, &action, &fields, &session.user) {
        Ok(c) => c,
        Err(p) => return page(&console, &session, id, "", Some((p.status, p.detail))),
    };
    // A move or a completion applied twice is the same move; a save carries
    // its revision, so a second copy is refused rather than applied twice.
    let repeatable = matches!(action.as_str(), "move" | "complete" | "duplicate");
    let back = fields.get("back") == "board";
    match commit(&console.node, cmd, repeatable).await {
        Ok(index) if back => {
            let team = fields.get("team");
            let to = match team.is_empty() {
                true => "/board?done=move".to_string(),
                false => format!("/board?done=move&team={}", urlencoding(team)),
            };
            session.redirect_after(index, &to)
        }
        Ok(index) => session.redirect_after(index, &format!("/rcas/{id}?done={action}")),
        Err(e) if back => (e.0, Problem::new(e.0, "Card not moved", e.1)).into_response(),
        Err(e) => page(&console, &session, id, "", Some(e)),
    }
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub struct CardView {
    pub id: u64,
    pub title: String,
    pub service: String,
    pub assignee: String,
    pub age: String,
    pub stale: bool,
    pub overdue: bool,
    pub open_repairs: usize,
    pub rca: &'static str,
    /// The stage a tap moves it to, with its title; none from the last.
    pub next: Option<(&'static str, &'static str)>,
}

pub struct ColumnView {
    pub stage: &'static str,
    pub title: &'static str,
    pub count: usize,
    pub cards: Vec<CardView>,
}

#[derive(Template)]
#[template(path = "console/board.html")]
struct BoardPage {
    nav: Nav,
    columns: Vec<ColumnView>,
    teams: Vec<String>,
    team: String,
    done: bool,
}

/// Complete cards shown on the board (the newest); the rest are counted.
const COMPLETE_SHOWN: usize = 20;

/// `GET /board?team=`: a column per stage with its count; week-old cards marked.
pub async fn board(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = caught_up(&console, &session).await {
        return p.into_response();
    }
    let team = q
        .get("team")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let now = now_ms();
    let (columns, teams) = console.node.read(|s| {
        let columns = Stage::ALL
            .iter()
            .enumerate()
            .map(|(i, &stage)| {
                let mut cards: Vec<CardView> = s
                    .rcas()
                    .filter(|r| r.stage == stage)
                    .filter(|r| team.is_empty() || r.team == team)
                    .map(|r| CardView {
                        id: r.incident,
                        title: r.title.clone(),
                        service: r.service.clone(),
                        assignee: r.assignee.clone(),
                        age: super::age(r.stage_since, now),
                        stale: stage != Stage::Complete
                            && now.saturating_sub(r.stage_since) > STALE_CARD,
                        overdue: r.overdue(now),
                        open_repairs: r.text().open_repairs(),
                        rca: r.status.as_str(),
                        next: Stage::ALL.get(i + 1).map(|n| (n.as_str(), n.title())),
                    })
                    .collect();
                let count = cards.len();
                if stage == Stage::Complete {
                    cards.reverse();
                    cards.truncate(COMPLETE_SHOWN);
                }
                ColumnView {
                    stage: stage.as_str(),
                    title: stage.title(),
                    count,
                    cards,
                }
            })
            .collect::<Vec<_>>();
        (columns, s.config.teams.keys().cloned().collect::<Vec<_>>())
    });
    html(&BoardPage {
        nav: Nav::new(&session, "board"),
        columns,
        teams,
        team,
        done: q.get("done").is_some_and(|d| d == "move"),
    })
}

/// `POST /schedules/:name/note`: a note for the schedule's next on-call.
pub async fn handoff_note(
    State(console): State<Console>,
    session: Session,
    Path(name): Path<String>,
    fields: Fields,
) -> Response {
    if let Err(p) = session.check_csrf(&fields) {
        return p.into_response();
    }
    let cmd = Command::HandoffNote {
        at: 0,
        schedule: name.clone(),
        text: fields.get("text").to_string(),
        by: session.user.clone(),
    };
    // Sent once: a second copy would be a second note.
    match commit(&console.node, cmd, false).await {
        Ok(index) => session.redirect_after(
            index,
            &format!("/schedules/{}?done=note", urlencoding(&name)),
        ),
        Err((status, why)) => Problem::new(status, "Note not left", why).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_field_reads_back_what_it_shows() {
        let lines = vec![
            RcaLine {
                at: 1_796_634_900_000,
                what: "triggered (event)".into(),
            },
            RcaLine {
                at: 1_796_635_200_000,
                what: "alice freed space".into(),
            },
        ];
        assert_eq!(parse_timeline(&timeline_text(&lines)).unwrap(), lines);
        let err = parse_timeline("2026-12-07T09:15:00Z ok\nyesterday it broke").unwrap_err();
        assert!(err.starts_with("timeline line 2:"), "{err}");
    }

    #[test]
    fn the_repairs_field_reads_back_what_it_shows() {
        let items = vec![
            RepairItem {
                title: "alert on disk growth".into(),
                link: "https://jira.example.com/browse/OPS-7".into(),
                done: true,
            },
            RepairItem {
                title: "rotate logs hourly".into(),
                link: String::new(),
                done: false,
            },
        ];
        assert_eq!(parse_repairs(&repairs_text(&items)), items);
        assert_eq!(parse_repairs("just a title")[0].title, "just a title");
    }
}

#[derive(Template)]
#[template(path = "console/report.html")]
struct ReportPage {
    nav: Nav,
    from: String,
    to: String,
    team: String,
    service: String,
    teams: Vec<String>,
    services: Vec<String>,
    r: pager_core::report::Report,
    /// The largest count of each chart, for its bars' scale.
    team_max: u32,
    service_max: u32,
    alert_max: u32,
    night_max: u32,
    mtta: (String, String),
    mttr: (String, String),
    off_hours: String,
    escalated: String,
}

/// `YYYY-MM-DD` of the UTC day `ms` is in.
fn day(ms: u64) -> String {
    pager_core::time::rfc3339(ms).chars().take(10).collect()
}

/// A `YYYY-MM-DD` field as the start of that UTC day.
fn parse_day(field: &str, v: &str) -> Result<u64, Problem> {
    let d: jiff::civil::Date = v.trim().parse().map_err(|_| {
        Problem::bad_request(format!("{field}: {v:?} is not a date like 2026-12-07."))
    })?;
    let ts = d
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| Problem::bad_request(format!("{field}: {e}")))?
        .timestamp();
    u64::try_from(ts.as_millisecond())
        .map_err(|_| Problem::bad_request(format!("{field}: before 1970.")))
}

fn dur(s: Option<u32>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        Some(s) => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn share(part: u32, all: u32) -> String {
    match all {
        0 => "—".into(),
        _ => format!("{:.0}%", 100.0 * f64::from(part) / f64::from(all)),
    }
}

/// `GET /reports?from=YYYY-MM-DD&to=YYYY-MM-DD&team=&service=`: the page
/// review report of those days (both included; the last 7 by default).
pub async fn report(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(p) = caught_up(&console, &session).await {
        return p.into_response();
    }
    const DAY: u64 = pager_core::report::DAY;
    let now = now_ms();
    let today = now - now % DAY;
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let from = match get("from").map(|v| parse_day("from", &v)).transpose() {
        Ok(v) => v.unwrap_or(today - 6 * DAY),
        Err(p) => return p.into_response(),
    };
    let last = match get("to").map(|v| parse_day("to", &v)).transpose() {
        Ok(v) => v.unwrap_or(today),
        Err(p) => return p.into_response(),
    };
    let team = get("team").unwrap_or_default();
    let service = get("service").unwrap_or_default();
    let found = console.node.read(|s| {
        let input = s.report_input(from, last + DAY, &team, &service, now);
        let teams: Vec<String> = s.config.teams.keys().cloned().collect();
        let services: Vec<String> = s.config.services.keys().cloned().collect();
        (input, teams, services)
    });
    // The merge runs off the state's lock and off the async runtime.
    let (r, teams, services) = match found {
        (Ok(input), t, s) => match tokio::task::spawn_blocking(move || input.finish()).await {
            Ok(r) => (r, t, s),
            Err(e) => {
                return Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "No report",
                    format!("The report failed: {e}."),
                )
                .into_response()
            }
        },
        (Err((field, why)), ..) => {
            return Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "No report",
                format!("{field}: {why}."),
            )
            .into_response()
        }
    };
    let max = |v: &[pager_core::report::Count]| v.iter().map(|c| c.incidents).max().unwrap_or(0);
    html(&ReportPage {
        nav: Nav::new(&session, "reports"),
        from: day(from),
        to: day(last),
        team,
        service,
        teams,
        services,
        team_max: max(&r.by_team),
        service_max: max(&r.by_service),
        alert_max: r
            .noisiest
            .iter()
            .map(|a| a.counts.incidents)
            .max()
            .unwrap_or(0),
        night_max: max(&r.night_wakeups),
        mtta: (dur(r.mtta_p50_s), dur(r.mtta_p90_s)),
        mttr: (dur(r.mttr_p50_s), dur(r.mttr_p90_s)),
        off_hours: share(r.off_hours_pages, r.pages),
        escalated: share(r.escalated, r.incidents),
        r,
    })
}
