//! Incidents in the console: the list (newest first, filtered, paginated),
//! its live stream, an incident's page, and the actions on it.
//!
//! The live list: while any list is open, one task per node follows the
//! incidents that change after each applied batch (the same [`follow`] as
//! the gRPC watch) and renders each changed row once into a broadcast; every
//! open list subscribes,
//! filters and forwards rows as server-sent events whose id is the
//! incident's revision. A browser that reconnects (to this node or another)
//! sends the last id it saw and gets every change after it, so a dropped
//! connection loses nothing. A subscriber that falls behind the broadcast
//! catches up from its own revision the same way.

use super::{age, html, when, Console, Fields, Nav, Problem, Session};
use crate::edge::grpc::{follow, WATCH_BUFFER};
use crate::node::now_ms;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use pager_core::command::Responder;
use pager_core::incident::{Assignee, Role};
use pager_core::{Command, Incident, IncidentStatus, OnCallDoc, Urgency};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Incidents per page of the list.
pub const PAGE: usize = 50;

/// More new or changed rows than this in one pass of the live feed is a
/// storm: lists are told how many, not sent the rows.
pub const STORM_ROWS: usize = 20;

/// The list's filters, from its query string (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub team: String,
    pub service: String,
    /// "open" (the default), "triggered", "acknowledged", "resolved" or "all".
    pub status: String,
    /// "", "high" or "low".
    pub urgency: String,
}

impl Filter {
    pub fn from_query(q: &HashMap<String, String>) -> Result<Filter, Problem> {
        let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let f = Filter {
            team: get("team"),
            service: get("service"),
            status: match get("status").as_str() {
                "" => "open".into(),
                s => s.into(),
            },
            urgency: get("urgency"),
        };
        if !["open", "triggered", "acknowledged", "resolved", "all"].contains(&f.status.as_str()) {
            return Err(Problem::bad_request(format!(
                "status {:?} is not open, triggered, acknowledged, resolved or all.",
                f.status
            )));
        }
        if !["", "high", "low"].contains(&f.urgency.as_str()) {
            return Err(Problem::bad_request(format!(
                "urgency {:?} is not high or low.",
                f.urgency
            )));
        }
        Ok(f)
    }

    fn status_matches(&self, s: IncidentStatus) -> bool {
        match self.status.as_str() {
            "open" => s != IncidentStatus::Resolved,
            "all" => true,
            other => s.as_str() == other,
        }
    }

    pub fn matches(&self, doc: &OnCallDoc, i: &Incident) -> bool {
        self.status_matches(i.status)
            && (self.service.is_empty() || i.service == self.service)
            && (self.urgency.is_empty() || urgency(i.urgency) == self.urgency)
            && (self.team.is_empty()
                || doc.services.get(&i.service).and_then(|s| s.team.as_deref())
                    == Some(self.team.as_str()))
    }

    /// The filters as a query string (for the next page and the stream).
    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("team", &self.team)
            .append_pair("service", &self.service)
            .append_pair("status", &self.status)
            .append_pair("urgency", &self.urgency)
            .finish()
    }
}

fn urgency(u: Urgency) -> &'static str {
    match u {
        Urgency::High => "high",
        Urgency::Low => "low",
    }
}

/// One incident as a row of the list.
pub struct Row {
    pub id: u64,
    pub summary: String,
    pub service: String,
    pub urgency: &'static str,
    pub status: &'static str,
    pub created_ms: u64,
    pub age: String,
    pub created: String,
    /// The users paged so far (not shadows), in paging order.
    pub paged: String,
    /// "level 2" (and the repeat, when past the first pass).
    pub level: String,
    pub revision: u64,
}

fn paged_users(s: &pager_core::State, i: &Incident) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    for d in i.deliveries.iter().filter_map(|d| s.deliveries.get(d)) {
        if !d.shadow && !users.contains(&d.user) {
            users.push(d.user.clone());
        }
    }
    users
}

fn level_text(i: &Incident) -> String {
    if i.tracks.is_empty() {
        return String::new();
    }
    match i.escalation() {
        (level, 0) => format!("level {}", level + 1),
        (level, repeat) => format!("level {} (repeat {repeat})", level + 1),
    }
}

pub fn row(s: &pager_core::State, i: &Incident, now: u64) -> Row {
    row_of(i, &paged_users(s, i), now)
}

/// The row of `i`, whose paged users are `paged`: needs no state.
fn row_of(i: &Incident, paged: &[String], now: u64) -> Row {
    Row {
        id: i.id,
        summary: i.summary.clone(),
        service: i.service.clone(),
        urgency: urgency(i.urgency),
        status: i.status.as_str(),
        created_ms: i.created_at,
        age: age(i.created_at, now),
        created: when(i.created_at),
        paged: if paged.is_empty() {
            "nobody yet".into()
        } else {
            paged.join(", ")
        },
        level: level_text(i),
        revision: i.revision,
    }
}

#[derive(Template)]
#[template(path = "console/row.html")]
struct RowHtml<'a> {
    r: &'a Row,
    /// The session's CSRF token for the row's Acknowledge; empty in the live
    /// feed's rows, which every session shares (the script fills it in).
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "console/incidents.html")]
struct ListPage {
    nav: Nav,
    rows: Vec<Row>,
    filter: Filter,
    teams: Vec<String>,
    services: Vec<String>,
    /// The state's revision the list was read at: the stream starts there.
    revision: u64,
    /// The next page's link, when there is one.
    older: String,
    /// True on a later page (those are not live).
    paged: bool,
    /// Rows a page shows (the live list keeps no more).
    page: usize,
    /// For each triggered row's one-tap Acknowledge.
    csrf: String,
    query: String,
}

pub async fn list(
    State(console): State<Console>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = match Filter::from_query(&q) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let below = match q.get("before").map(|b| b.parse::<u64>()) {
        None => u64::MAX,
        Some(Ok(b)) => b,
        Some(Err(_)) => {
            return Problem::bad_request("before is not an incident number.").into_response()
        }
    };
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let now = now_ms();
    let (rows, more, teams, services, revision) = console.node.read(|s| {
        let mut rows: Vec<Row> = s
            .incidents
            .range(..below)
            .rev()
            .map(|(_, i)| &**i)
            .filter(|i| filter.matches(&s.config, i))
            .take(PAGE + 1)
            .map(|i| row(s, i, now))
            .collect();
        let more = rows.len() > PAGE;
        rows.truncate(PAGE);
        (
            rows,
            more,
            s.config.teams.keys().cloned().collect::<Vec<_>>(),
            s.config.services.keys().cloned().collect::<Vec<_>>(),
            s.last_applied.index,
        )
    });
    let older = match (more, rows.last()) {
        (true, Some(last)) => format!("/incidents?{}&before={}", filter.query(), last.id),
        _ => String::new(),
    };
    html(&ListPage {
        nav: Nav::new(&session, "incidents"),
        rows,
        query: filter.query(),
        filter,
        teams,
        services,
        revision,
        older,
        paged: below != u64::MAX,
        page: PAGE,
        csrf: session.csrf(),
    })
}

/// One changed incident, as the feed's pass read it. Its row is rendered
/// outside the state's lock, once, by the first list that sends it (in a
/// storm, none does).
pub struct Change {
    incident: Arc<Incident>,
    team: Option<String>,
    paged: Vec<String>,
    row: std::sync::OnceLock<String>,
}

impl Change {
    fn row(&self) -> &str {
        self.row.get_or_init(|| {
            RowHtml {
                r: &row_of(&self.incident, &self.paged, now_ms()),
                csrf: "",
            }
            .render()
            .unwrap_or_default()
            .replace('\n', " ")
        })
    }
}

/// One pass of the feed: the incidents changed since the previous pass and
/// the applied index the pass read through (the only safe place to resume:
/// one log entry may change many incidents). Made under the state's read
/// lock, so it only takes what it needs: `Arc`s and the paged users.
pub struct Batch {
    through: u64,
    changes: Vec<Change>,
    /// What [`events`] made of this batch, per filter and cursor: lists
    /// that show the same thing (most of them) share one pass over the
    /// changes instead of each making its own.
    made: std::sync::Mutex<HashMap<(Filter, u64), Made>>,
}

/// The events of one filter and cursor, made by the first list that asks.
type Made = Arc<std::sync::OnceLock<Vec<Event>>>;

impl Batch {
    /// The events of this batch for a list with `filter` at `cursor`: made
    /// once for each filter and cursor, outside the memo's lock.
    fn events_for(&self, filter: &Filter, cursor: u64) -> Vec<Event> {
        let cell = self
            .made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((filter.clone(), cursor))
            .or_default()
            .clone();
        cell.get_or_init(|| events(filter, self, cursor)).clone()
    }
}

fn batch(s: &pager_core::State, changed: &[&Incident], through: u64) -> Batch {
    let changes = changed
        .iter()
        .filter_map(|i| {
            Some(Change {
                paged: paged_users(s, i),
                incident: s.incidents.get(&i.id)?.clone(),
                team: s
                    .config
                    .services
                    .get(&i.service)
                    .and_then(|s| s.team.clone()),
                row: std::sync::OnceLock::new(),
            })
        })
        .collect();
    Batch {
        through,
        changes,
        made: Default::default(),
    }
}

/// The node's feed of changed rows; see the module's docs. The feed runs
/// only while a list is open: following every change costs a pass over the
/// incidents per applied batch, which nobody should pay for an empty room.
#[derive(Clone)]
pub struct Live {
    node: Arc<crate::node::Node>,
    tx: broadcast::Sender<Arc<Batch>>,
    /// True while the feed runs.
    running: Arc<std::sync::Mutex<bool>>,
}

/// Passes an open list may fall behind by before it catches up on its own.
const LIVE_BUFFER: usize = 256;

/// How long the live lists' feed waits after a pass that found `n` changed
/// incidents: 200 ms (a person sees a change within it, and a storm of
/// applied batches costs five passes a second, not one per batch), and a
/// second in a storm (more than [`STORM_ROWS`] changed incidents a pass).
fn live_pace(n: usize) -> std::time::Duration {
    std::time::Duration::from_millis(if n > STORM_ROWS { 1_000 } else { 200 })
}

/// How often an idle feed checks whether any list is still open.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl Live {
    pub fn new(node: Arc<crate::node::Node>) -> Live {
        let (tx, _) = broadcast::channel(LIVE_BUFFER);
        Live {
            node,
            tx,
            running: Arc::new(std::sync::Mutex::new(false)),
        }
    }

    /// A receiver of changed rows, starting the feed if no list was open. The
    /// feed starts at this node's applied index, so a subscriber that then
    /// reads the state from its own revision misses nothing.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            let from = self.node.read(|s| s.last_applied.index);
            tokio::spawn(feed(
                self.node.clone(),
                from,
                self.tx.clone(),
                self.running.clone(),
            ));
        }
        rx
    }
}

/// Follow the node's changes into the broadcast until no list is open (or
/// the node stops).
async fn feed(
    node: Arc<crate::node::Node>,
    from: u64,
    tx: broadcast::Sender<Arc<Batch>>,
    running: Arc<std::sync::Mutex<bool>>,
) {
    let (changes, mut rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
    let follower = tokio::spawn(follow(
        node,
        from,
        Some(live_pace),
        |s, changed, through| vec![Arc::new(batch(s, changed, through))],
        changes,
    ));
    let mut idle = tokio::time::interval(IDLE_CHECK);
    loop {
        tokio::select! {
            c = rx.recv() => match c {
                Some(c) => { let _ = tx.send(c); }
                None => break, // the node stops
            },
            _ = idle.tick() => {}
        }
        if tx.receiver_count() == 0 {
            let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
            // Checked again under the lock a new subscriber takes.
            if tx.receiver_count() == 0 {
                *r = false;
                follower.abort();
                return;
            }
        }
    }
    *running.lock().unwrap_or_else(|p| p.into_inner()) = false;
}

fn matches(filter: &Filter, c: &Change) -> bool {
    let i = &c.incident;
    filter.status_matches(i.status)
        && (filter.service.is_empty() || i.service == filter.service)
        && (filter.urgency.is_empty() || urgency(i.urgency) == filter.urgency)
        && (filter.team.is_empty() || c.team.as_deref() == Some(filter.team.as_str()))
}

/// What one list sends for a pass: the changes after its cursor, as rows to
/// upsert and ids to remove. A list shows the newest [`PAGE`] rows, so of a
/// storm's new rows only the newest page can be on it, and only removals
/// newer than the oldest of those can matter. The last event carries the
/// pass's `through` as its id, where a reconnect resumes.
fn events(filter: &Filter, batch: &Batch, cursor: u64) -> Vec<Event> {
    let fresh = batch
        .changes
        .iter()
        .filter(|c| c.incident.revision > cursor);
    let (mut upserts, removes): (Vec<&Change>, Vec<&Change>) =
        fresh.partition(|c| matches(filter, c));
    if upserts.len() > STORM_ROWS {
        // A storm: more rows than anyone reads at once. One event says how
        // many; the list offers to show them (a reload), instead of every
        // open list being sent a page of rows each pass.
        let many = Event::default()
            .event("many")
            .data(upserts.len().to_string())
            .id(batch.through.to_string());
        return vec![many];
    }
    upserts.sort_by_key(|c| std::cmp::Reverse(c.incident.id));
    upserts.truncate(PAGE);
    let floor = match upserts.len() {
        PAGE => upserts.last().map(|c| c.incident.id).unwrap_or(0),
        _ => 0,
    };
    let mut out: Vec<Event> = removes
        .iter()
        .filter(|c| c.incident.id > floor)
        .map(|c| {
            Event::default()
                .event("remove")
                .data(c.incident.id.to_string())
        })
        .chain(
            upserts
                .iter()
                .rev()
                .map(|c| Event::default().event("upsert").data(c.row())),
        )
        .collect();
    if let Some(last) = out.pop() {
        out.push(last.id(batch.through.to_string()));
    }
    out
}

/// `GET /incidents/stream?from=REV&<filters>`: the list's server-sent events.
/// `Last-Event-ID` (sent by the browser on a reconnect) wins over `from`.
pub async fn stream(
    State(console): State<Console>,
    _session: Session,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let filter = match Filter::from_query(&q) {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.get("from").map(String::as_str))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut sub = console.live.subscribe();
    let node = console.node.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        let mut stopping = node.stopping.clone();
        let mut cursor = from;
        'catch_up: loop {
            // Everything after the cursor from the state itself, then the feed.
            let (caught, seen) = node.read(|s| {
                let seen = s.last_applied.index;
                (batch(s, &s.changed_since(cursor), seen), seen)
            });
            let catch_up = events(&filter, &caught, cursor);
            for e in catch_up {
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            cursor = cursor.max(seen);
            loop {
                let next = tokio::select! {
                    b = sub.recv() => b,
                    _ = tx.closed() => return,
                    _ = stopping.changed() => return,
                };
                match next {
                    Ok(b) if b.through <= cursor => {}
                    Ok(b) => {
                        for e in b.events_for(&filter, cursor) {
                            if tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                        cursor = b.through;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue 'catch_up,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    let body = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut res = Sse::new(body)
        .keep_alive(KeepAlive::default())
        .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        "no-store".parse().expect("static header"),
    );
    res
}

/// One delivery as its table row shows it (the address masked).
pub struct DeliveryRow {
    pub id: u64,
    pub user: String,
    pub method: String,
    pub address: String,
    pub attempt: u32,
    pub status: &'static str,
    pub provider_id: String,
    pub error: String,
    pub shadow: bool,
    pub updated: String,
}

/// An integration of the incident, as its page shows it.
pub struct IntegrationRow {
    pub provider: &'static str,
    pub reference: String,
    /// The Jira issue's page, when the node knows the site.
    pub link: String,
    pub state: String,
    pub sent: u32,
    pub failed: u32,
    pub error: String,
    pub busy: bool,
}

pub struct TimelineRow {
    pub when: String,
    pub by: String,
    pub what: String,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage {
    nav: Nav,
    i: Arc<Incident>,
    status: &'static str,
    urgency: &'static str,
    severity: String,
    created: String,
    age: String,
    acknowledged: String,
    resolved: String,
    snoozed_until: String,
    /// Only an http(s) link is shown as one.
    runbook: String,
    /// The conference bridge (validated http(s) when set).
    bridge: String,
    details: Vec<(String, String)>,
    tracks: Vec<String>,
    paged: String,
    deliveries: Vec<DeliveryRow>,
    /// Its Slack message and Jira ticket.
    integrations: Vec<IntegrationRow>,
    timeline: Vec<TimelineRow>,
    /// Levels of the primary policy (for Escalate).
    levels: Vec<u32>,
    users: Vec<String>,
    policies: Vec<String>,
    teams: Vec<String>,
    /// The incident has an RCA record (its page links to it).
    has_rca: bool,
    done: &'static str,
    error: String,
}

fn done_text(action: &str) -> &'static str {
    match action {
        "acknowledge" => "Acknowledged.",
        "resolve" => "Resolved.",
        "escalate" => "Escalated.",
        "snooze" => "Snoozed.",
        "reassign" => "Reassigned.",
        "responders" => "More responders paged.",
        "merge" => "Merged.",
        "role" => "Role set.",
        "bridge" => "Bridge set.",
        "note" => "Note added.",
        _ => "",
    }
}

fn parse_id(id: &str) -> Result<u64, Problem> {
    id.parse::<u64>().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "No such incident",
            format!("{id:?} is not an incident number."),
        )
    })
}

/// The incident page, with a result banner: `done` after a write that
/// landed, `error` (and its status) after one that did not.
fn incident_page(
    console: &Console,
    session: &Session,
    id: u64,
    done: &'static str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let now = now_ms();
    let page = console.node.read(|s| {
        let i = s.incidents.get(&id)?.clone();
        let doc = &s.config;
        let levels = match i.tracks.first().map(|t| &t.assignee) {
            Some(Assignee::Policy(p)) => doc
                .escalation_policies
                .get(p)
                .map(|p| (1..=p.levels.len() as u32).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let runbook =
            if i.runbook_url.starts_with("https://") || i.runbook_url.starts_with("http://") {
                i.runbook_url.clone()
            } else {
                String::new()
            };
        let paged = paged_users(s, &i).join(", ");
        Some(IncidentPage {
            has_rca: s.rcas.contains_key(&id),
            nav: Nav::new(session, "incidents"),
            status: i.status.as_str(),
            urgency: urgency(i.urgency),
            severity: format!("{:?}", i.severity).to_lowercase(),
            created: when(i.created_at),
            age: age(i.created_at, now),
            acknowledged: i
                .acknowledged_at
                .map(|t| format!("{} by {}", when(t), i.acknowledged_by))
                .unwrap_or_default(),
            resolved: i
                .resolved_at
                .map(|t| format!("{} by {}", when(t), i.resolved_by))
                .unwrap_or_default(),
            snoozed_until: i.snoozed_until.map(when).unwrap_or_default(),
            runbook,
            bridge: i.bridge_url.clone(),
            details: i
                .custom_details
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            tracks: i
                .tracks
                .iter()
                .map(|t| {
                    let who = match &t.assignee {
                        Assignee::Policy(p) => format!("policy {p}"),
                        Assignee::User(u) => format!("user {u}"),
                    };
                    let state = if t.done { ", done" } else { "" };
                    format!("{who}: level {}, pass {}{state}", t.level + 1, t.repeat + 1)
                })
                .collect(),
            paged: if paged.is_empty() {
                "nobody yet".into()
            } else {
                paged
            },
            deliveries: i
                .deliveries
                .iter()
                .filter_map(|d| s.deliveries.get(d))
                .map(|d| DeliveryRow {
                    id: d.id,
                    user: d.user.clone(),
                    method: d.method.as_str().to_string(),
                    address: pager_notify::mask::address(&d.address),
                    attempt: d.attempt,
                    status: d.status.as_str(),
                    provider_id: d.provider_id.clone(),
                    error: d.error.clone(),
                    shadow: d.shadow,
                    updated: when(d.updated_at),
                })
                .collect(),
            integrations: crate::edge::convert::integrations_to_pb(s, id)
                .into_iter()
                .map(|g| {
                    let jira = g.provider == "jira";
                    IntegrationRow {
                        provider: if jira { "Jira" } else { "Slack" },
                        link: match &console.node.cfg.jira {
                            Some(site) if jira && !g.reference.is_empty() => {
                                format!("{}/browse/{}", site.base_url, g.reference)
                            }
                            _ => String::new(),
                        },
                        reference: g.reference,
                        state: g.state.replace('_', " "),
                        sent: g.sent,
                        failed: g.failed,
                        error: g.error,
                        busy: g.busy,
                    }
                })
                .collect(),
            timeline: i
                .timeline
                .iter()
                .rev()
                .map(|t| TimelineRow {
                    when: when(t.at),
                    by: t.by.clone(),
                    what: t.what.clone(),
                })
                .collect(),
            levels,
            users: doc.users.keys().cloned().collect(),
            policies: doc.escalation_policies.keys().cloned().collect(),
            teams: doc.teams.keys().cloned().collect(),
            done,
            error: error.as_ref().map(|(_, e)| e.clone()).unwrap_or_default(),
            i,
        })
    });
    match page {
        Some(page) => {
            let status = error.map(|(s, _)| s).unwrap_or(StatusCode::OK);
            (status, html(&page)).into_response()
        }
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "No such incident",
            format!("There is no incident {id} (it may have been compacted long after it was resolved)."),
        )
        .into_response(),
    }
}

pub async fn show(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    if let Err(p) = super::caught_up(&console, &session).await {
        return p.into_response();
    }
    let done = q.get("done").map(|d| done_text(d)).unwrap_or("");
    incident_page(&console, &session, id, done, None)
}

/// `user:NAME`, `policy:NAME` or `team:NAME` from a select.
fn target(v: &str) -> Option<(&str, &str)> {
    let (kind, name) = v.split_once(':')?;
    (!name.is_empty()).then_some((kind, name))
}

/// The command a form asks for, by the signed-in user.
fn command(id: u64, action: &str, f: &Fields, by: &str) -> Result<Command, Problem> {
    let by = by.to_string();
    Ok(match action {
        "acknowledge" => Command::Acknowledge {
            at: 0,
            incident: id,
            by,
        },
        "resolve" => Command::Resolve {
            at: 0,
            incident: id,
            by,
        },
        "escalate" => Command::Escalate {
            at: 0,
            incident: id,
            level: f
                .required("level", "The level")?
                .parse()
                .map_err(|_| Problem::bad_request("The level is not a number."))?,
            by,
        },
        "snooze" => {
            let minutes: u64 = f
                .required("minutes", "How long to snooze")?
                .parse()
                .ok()
                .filter(|m| (1..=24 * 60).contains(m))
                .ok_or_else(|| Problem::bad_request("Snooze for 1 minute to 24 hours."))?;
            Command::Snooze {
                at: 0,
                incident: id,
                until: now_ms() + minutes * 60_000,
                by,
            }
        }
        "reassign" => {
            let to = match target(f.required("to", "Who to reassign to")?) {
                Some(("user", u)) => Assignee::User(u.into()),
                Some(("policy", p)) => Assignee::Policy(p.into()),
                _ => return Err(Problem::bad_request("Reassign to a user or a policy.")),
            };
            Command::Reassign {
                at: 0,
                incident: id,
                to,
                by,
            }
        }
        "responders" => {
            let who = match target(f.required("target", "Who to page")?) {
                Some(("user", u)) => Responder::User(u.into()),
                Some(("team", t)) => Responder::Team(t.into()),
                Some(("policy", p)) => Responder::Policy(p.into()),
                _ => return Err(Problem::bad_request("Page a user, a team or a policy.")),
            };
            Command::AddResponders {
                at: 0,
                incident: id,
                targets: vec![who],
                by,
            }
        }
        "merge" => Command::Merge {
            at: 0,
            incident: id,
            into: f
                .required("into", "The incident to merge into")?
                .trim_start_matches('#')
                .parse()
                .map_err(|_| Problem::bad_request("Merge into an incident number."))?,
            by,
        },
        "role" => Command::SetRole {
            at: 0,
            incident: id,
            role: match f.get("role") {
                "commander" => Role::Commander,
                "liaison" => Role::Liaison,
                _ => return Err(Problem::bad_request("The role is commander or liaison.")),
            },
            user: f.get("user").trim().to_string(),
            by,
        },
        "note" => Command::AddNote {
            at: 0,
            incident: id,
            text: f.required("text", "The note")?.to_string(),
            by,
        },
        "bridge" => Command::SetBridge {
            at: 0,
            incident: id,
            url: f.get("url").trim().to_string(),
            by,
        },
        other => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "No such action",
                format!("{other:?} is not an incident action."),
            ))
        }
    })
}

/// `POST /incidents/ID/ACTION`: one replicated write as the signed-in user,
/// then back to the incident's page (303) with what happened.
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
        Err(p) => return incident_page(&console, &session, id, "", Some((p.status, p.detail))),
    };
    // Safe to send twice: the second acknowledge or resolve changes nothing,
    // a repeated note is the same note, a role set again is the same role.
    let repeatable = matches!(action.as_str(), "acknowledge" | "resolve" | "note" | "role");
    match super::commit(&console.node, cmd, repeatable).await {
        Ok(index) => session.redirect_after(index, &format!("/incidents/{id}?done={action}")),
        Err(e) => incident_page(&console, &session, id, "", Some(e)),
    }
}
