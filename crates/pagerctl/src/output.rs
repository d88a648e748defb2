//! What the user sees: aligned text for humans, or the response message as
//! JSON for scripts.
//!
//! JSON keeps the proto field names (`snake_case`), numbers as numbers,
//! timestamps as the raw `*_ms` values, and enums as their short lowercase
//! name (`"triggered"`), so `jq '.incidents[].status'` reads naturally. prost
//! types are not serde, hence one small builder per message.
//!
//! Human output: `key  value` blocks and tables with two-space gutters,
//! numbers right-aligned, timestamps in RFC 3339 UTC, `-` for "none", and
//! control characters from the server escaped so a summary cannot break a
//! table or the terminal.

use std::io::{self, Write};

use anyhow::Context;
use pager_proto::pager::v1::{
    escalation_track, Delivery, EscalationTrack, Incident, IncidentActionResponse, IncidentChange,
    IncidentStatus, ListIncidentsResponse, TimelineEntry,
};
use serde_json::{json, Value};

use crate::cli::OutputFormat;

/// Writes one response to stdout in the chosen format.
pub struct Printer {
    format: OutputFormat,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        Printer { format }
    }

    /// Print `human()` or `json()`; only the chosen one is built. A closed
    /// stdout (`pagerctl incident list | head`) is not an error.
    pub fn emit(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> anyhow::Result<()> {
        self.print(human, json, serde_json::to_string_pretty)
    }

    /// One line per item, for streams: the human line, or compact JSON (JSON lines).
    pub fn line(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
    ) -> anyhow::Result<()> {
        self.print(human, json, serde_json::to_string)
    }

    fn print(
        &self,
        human: impl FnOnce() -> String,
        json: impl FnOnce() -> Value,
        encode: fn(&Value) -> serde_json::Result<String>,
    ) -> anyhow::Result<()> {
        let mut text = match self.format {
            OutputFormat::Human => human(),
            OutputFormat::Json => encode(&json()).context("encode the response as JSON")?,
        };
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut stdout = io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("write to stdout"),
        }
    }
}

// ---------------------------------------------------------------- shared

/// RFC 3339 UTC, or `-` for 0 (not set).
pub fn timestamp(ms: u64) -> String {
    if ms == 0 {
        "-".to_owned()
    } else {
        rfc3339(ms)
    }
}

/// A server string for display: `-` when empty, control characters escaped.
pub fn text(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        clean(s)
    }
}

/// `s` with control characters escaped (a newline as `\n`), so a server
/// string cannot break a table or the terminal.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `key  value` lines, values aligned.
pub fn kv(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// How a [`Table`] column lines up: text left, numbers right.
#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// A table with a header row and two-space gutters, each column as wide as
/// its widest cell (counted in chars); trailing spaces are trimmed.
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.to_string()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|c| {
                lines
                    .iter()
                    .map(|l| l.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (c, cell) in line.iter().enumerate() {
                let w = widths[c];
                if c > 0 {
                    text.push_str("  ");
                }
                match self.columns[c].1 {
                    Align::Left => text.push_str(&format!("{cell:<w$}")),
                    Align::Right => text.push_str(&format!("{cell:>w$}")),
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

// ---------------------------------------------------------------- human

pub mod human {
    use super::*;

    /// `rev 57  #42 acknowledged  payments-api  acknowledged (by alice)`: the
    /// incident's last timeline entry says what changed.
    pub fn incident_change(c: &IncidentChange) -> String {
        let Some(i) = &c.incident else {
            return format!("rev {}", c.revision);
        };
        let last = i.timeline.last().map_or(String::new(), |e| {
            if e.by.is_empty() {
                text(&e.what)
            } else {
                format!("{} (by {})", text(&e.what), text(&e.by))
            }
        });
        format!(
            "rev {}  #{} {}  {}  {}",
            c.revision,
            i.id,
            status_name(i.status),
            text(&i.service),
            last
        )
    }

    pub fn incident_list(r: &ListIncidentsResponse) -> String {
        if r.incidents.is_empty() {
            return "no incidents\n".to_owned();
        }
        let mut table = Table::new(&[
            ("ID", Align::Right),
            ("STATUS", Align::Left),
            ("SEVERITY", Align::Left),
            ("URGENCY", Align::Left),
            ("SERVICE", Align::Left),
            ("CREATED", Align::Left),
            ("SUMMARY", Align::Left),
        ]);
        for i in &r.incidents {
            table.row(vec![
                i.id.to_string(),
                status_name(i.status),
                text(&i.severity),
                text(&i.urgency),
                text(&i.service),
                timestamp(i.created_at_ms),
                text(&i.summary),
            ]);
        }
        let mut out = table.render();
        if !r.next_page_token.is_empty() {
            out.push_str(&format!(
                "more: --page-token {}\n",
                text(&r.next_page_token)
            ));
        }
        out
    }

    pub fn incident(i: &Incident) -> String {
        let mut out = kv(&[
            ("incident", i.id.to_string()),
            ("status", status_name(i.status)),
            ("service", text(&i.service)),
            ("summary", text(&i.summary)),
            ("severity", text(&i.severity)),
            ("urgency", text(&i.urgency)),
            ("dedup key", text(&i.dedup_key)),
            ("source", text(&i.source)),
            ("created", timestamp(i.created_at_ms)),
            (
                "acknowledged",
                done(i.acknowledged_at_ms, &i.acknowledged_by),
            ),
            ("resolved", done(i.resolved_at_ms, &i.resolved_by)),
            // 1-based, as the timeline, `incident escalate --level` and the
            // ESCALATIONS table count levels.
            (
                "escalation",
                format!(
                    "level {}, repeat {}",
                    i.escalation_level + 1,
                    i.escalation_repeat
                ),
            ),
            ("folded events", i.folded_events.to_string()),
            ("runbook", text(&i.runbook_url)),
            ("ack due", timestamp(i.ack_due_ms)),
            ("snoozed until", timestamp(i.snoozed_until_ms)),
            ("merged into", incident_ref(i.merged_into)),
            ("commander", text(&i.commander)),
            ("liaison", text(&i.liaison)),
        ]);

        out.push_str("\nESCALATIONS\n");
        if i.escalations.is_empty() {
            out.push_str("none\n");
        } else {
            out.push_str(&escalations(&i.escalations));
        }

        out.push_str("\nDELIVERIES\n");
        if i.deliveries.is_empty() {
            out.push_str("none\n");
        } else {
            out.push_str(&deliveries(&i.deliveries));
        }

        out.push_str("\nTIMELINE\n");
        if i.timeline.is_empty() {
            out.push_str("none\n");
        }
        for e in &i.timeline {
            if e.by.is_empty() {
                out.push_str(&format!("{}  {}\n", timestamp(e.at_ms), text(&e.what)));
            } else {
                out.push_str(&format!(
                    "{}  {}  ({})\n",
                    timestamp(e.at_ms),
                    text(&e.what),
                    text(&e.by)
                ));
            }
        }
        out
    }

    /// `#42`, or `-` for 0.
    fn incident_ref(id: u64) -> String {
        if id == 0 {
            "-".to_owned()
        } else {
            format!("#{id}")
        }
    }

    /// `policy db`, `user dave`.
    fn assignee(t: &EscalationTrack) -> String {
        match &t.assignee {
            Some(escalation_track::Assignee::User(u)) => format!("user {}", clean(u)),
            Some(escalation_track::Assignee::Policy(p)) => format!("policy {}", clean(p)),
            None => "-".to_owned(),
        }
    }

    /// Levels are shown 1-based, as `incident escalate --level` takes them.
    fn escalations(ts: &[EscalationTrack]) -> String {
        let mut table = Table::new(&[
            ("#", Align::Right),
            ("ASSIGNEE", Align::Left),
            ("LEVEL", Align::Right),
            ("REPEAT", Align::Right),
            ("STATE", Align::Left),
        ]);
        for (n, t) in ts.iter().enumerate() {
            let is_policy = matches!(t.assignee, Some(escalation_track::Assignee::Policy(_)));
            table.row(vec![
                (n + 1).to_string(),
                assignee(t),
                if is_policy {
                    (t.level + 1).to_string()
                } else {
                    "-".to_owned()
                },
                if is_policy {
                    t.repeat.to_string()
                } else {
                    "-".to_owned()
                },
                if t.done { "done" } else { "paging" }.to_owned(),
            ]);
        }
        table.render()
    }

    /// `sent`, `sent, reached`, `sent, call no-answer`, `pending, in doubt`, ...
    fn delivery_status(d: &Delivery) -> String {
        let mut s = text(&d.status);
        if d.reached {
            s.push_str(", reached");
        } else if !d.call_status.is_empty() {
            s.push_str(&format!(", call {}", d.call_status));
        }
        if d.in_doubt {
            s.push_str(", in doubt");
        }
        if d.reclaims > 0 {
            s.push_str(&format!(", reclaimed x{}", d.reclaims));
        }
        s
    }

    fn deliveries(ds: &[Delivery]) -> String {
        let mut table = Table::new(&[
            ("ID", Align::Right),
            ("USER", Align::Left),
            ("METHOD", Align::Left),
            ("ADDRESS", Align::Left),
            ("ATTEMPT", Align::Right),
            ("TERM", Align::Right),
            ("STATUS", Align::Left),
            ("CREATED", Align::Left),
            ("UPDATED", Align::Left),
            ("PROVIDER ID", Align::Left),
            ("ERROR", Align::Left),
        ]);
        for d in ds {
            let user = if d.shadow {
                format!("{} (shadow)", text(&d.user))
            } else {
                text(&d.user)
            };
            table.row(vec![
                d.id.to_string(),
                user,
                text(&d.method),
                text(&d.address),
                d.attempt.to_string(),
                d.term.to_string(),
                delivery_status(d),
                timestamp(d.created_at_ms),
                timestamp(d.updated_at_ms),
                text(&d.provider_id),
                text(&d.error),
            ]);
        }
        table.render()
    }

    /// After an incident action: where the incident stands now. Rows for
    /// what is not set (no snooze, no commander) are left out.
    pub fn incident_action(r: &IncidentActionResponse) -> String {
        let Some(i) = &r.incident else {
            return kv(&[("commit", r.commit_index.to_string())]);
        };
        let mut rows = vec![
            ("incident", i.id.to_string()),
            ("status", status_name(i.status)),
            ("summary", text(&i.summary)),
            (
                "acknowledged",
                done(i.acknowledged_at_ms, &i.acknowledged_by),
            ),
            ("resolved", done(i.resolved_at_ms, &i.resolved_by)),
        ];
        if let Some(primary) = i.escalations.first() {
            let mut what = assignee(primary);
            if matches!(
                primary.assignee,
                Some(escalation_track::Assignee::Policy(_))
            ) {
                what.push_str(&format!(
                    ", level {}, repeat {}",
                    primary.level + 1,
                    primary.repeat
                ));
            }
            let more = i.escalations.len() - 1;
            if more > 0 {
                what.push_str(&format!(" (+{more} responder escalations)"));
            }
            rows.push(("escalation", what));
        }
        if i.snoozed_until_ms != 0 {
            rows.push(("snoozed until", timestamp(i.snoozed_until_ms)));
        }
        if i.merged_into != 0 {
            rows.push(("merged into", incident_ref(i.merged_into)));
        }
        if !i.commander.is_empty() {
            rows.push(("commander", clean(&i.commander)));
        }
        if !i.liaison.is_empty() {
            rows.push(("liaison", clean(&i.liaison)));
        }
        // The action's own entry: the last one not written by pagerd itself
        // (its delivery outcomes may land after it).
        if let Some(e) = i.timeline.iter().rev().find(|e| e.by != "pagerd") {
            let by = if e.by.is_empty() {
                String::new()
            } else {
                format!("  ({})", clean(&e.by))
            };
            rows.push((
                "last change",
                format!("{}  {}{by}", timestamp(e.at_ms), text(&e.what)),
            ));
        }
        rows.push(("commit", r.commit_index.to_string()));
        kv(&rows)
    }

    /// `2023-11-14T22:13:20Z by alice`, or `-` when it has not happened.
    fn done(at_ms: u64, by: &str) -> String {
        match (at_ms, by) {
            (0, "") => "-".to_owned(),
            (at, "") => timestamp(at),
            (at, by) => format!("{} by {}", timestamp(at), clean(by)),
        }
    }
}

// ---------------------------------------------------------------- json

pub mod json {
    use super::*;

    pub fn delivery(d: &Delivery) -> Value {
        json!({
            "id": d.id,
            "user": d.user,
            "method": d.method,
            "address": d.address,
            "attempt": d.attempt,
            "term": d.term,
            "status": d.status,
            "provider_id": d.provider_id,
            "error": d.error,
            "created_at_ms": d.created_at_ms,
            "updated_at_ms": d.updated_at_ms,
            "claimed_at_ms": d.claimed_at_ms,
            "shadow": d.shadow,
            "contact": d.contact,
            "reclaims": d.reclaims,
            "in_doubt": d.in_doubt,
            "call_status": d.call_status,
            "reached": d.reached,
        })
    }

    /// As proto3 JSON writes a oneof: the set member by its name.
    pub fn escalation(t: &EscalationTrack) -> Value {
        let mut v = json!({ "level": t.level, "repeat": t.repeat, "done": t.done });
        match &t.assignee {
            Some(escalation_track::Assignee::User(u)) => v["user"] = json!(u),
            Some(escalation_track::Assignee::Policy(p)) => v["policy"] = json!(p),
            None => {}
        }
        v
    }

    pub fn timeline_entry(e: &TimelineEntry) -> Value {
        json!({ "at_ms": e.at_ms, "what": e.what, "by": e.by })
    }

    pub fn incident(i: &Incident) -> Value {
        json!({
            "id": i.id,
            "revision": i.revision,
            "service": i.service,
            "dedup_key": i.dedup_key,
            "summary": i.summary,
            "severity": i.severity,
            "urgency": i.urgency,
            "status": status_name(i.status),
            "created_at_ms": i.created_at_ms,
            "acknowledged_at_ms": i.acknowledged_at_ms,
            "resolved_at_ms": i.resolved_at_ms,
            "acknowledged_by": i.acknowledged_by,
            "resolved_by": i.resolved_by,
            "escalation_level": i.escalation_level,
            "escalation_repeat": i.escalation_repeat,
            "folded_events": i.folded_events,
            "runbook_url": i.runbook_url,
            "source": i.source,
            "deliveries": i.deliveries.iter().map(delivery).collect::<Vec<_>>(),
            "timeline": i.timeline.iter().map(timeline_entry).collect::<Vec<_>>(),
            "commander": i.commander,
            "liaison": i.liaison,
            "snoozed_until_ms": i.snoozed_until_ms,
            "merged_into": i.merged_into,
            "ack_due_ms": i.ack_due_ms,
            "escalations": i.escalations.iter().map(escalation).collect::<Vec<_>>(),
        })
    }

    pub fn incident_change(c: &IncidentChange) -> Value {
        json!({
            "revision": c.revision,
            "incident": c.incident.as_ref().map_or(Value::Null, incident),
        })
    }

    pub fn incident_list(r: &ListIncidentsResponse) -> Value {
        json!({
            "incidents": r.incidents.iter().map(incident).collect::<Vec<_>>(),
            "next_page_token": r.next_page_token,
            "applied_index": r.applied_index,
        })
    }

    pub fn incident_action(r: &IncidentActionResponse) -> Value {
        json!({
            "incident": r.incident.as_ref().map_or(Value::Null, incident),
            "commit_index": r.commit_index,
        })
    }
}

/// `triggered`, `acknowledged`, `resolved`, `unspecified`; `unknown(7)` for a
/// value newer than this client.
fn status_name(status: i32) -> String {
    match IncidentStatus::try_from(status) {
        Ok(s) => s
            .as_str_name()
            .trim_start_matches("INCIDENT_STATUS_")
            .to_ascii_lowercase(),
        Err(_) => format!("unknown({status})"),
    }
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC to the second:
/// `2023-11-14T22:13:20Z`.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(999), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799_000), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(951_868_800_000), "2000-03-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799_000), "9999-12-31T23:59:59Z");
        // Does not overflow or panic at the far end.
        assert!(rfc3339(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn civil_from_days_round_trips_every_day_for_a_millennium() {
        let mut expected = (1970, 1, 1);
        for day in 0..366_000 {
            assert_eq!(civil_from_days(day), expected, "day {day}");
            let (y, m, d) = expected;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = match (d == len, m == 12) {
                (false, _) => (y, m, d + 1),
                (true, false) => (y, m + 1, 1),
                (true, true) => (y + 1, 1, 1),
            };
        }
    }

    const T0: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn sample_incident() -> Incident {
        Incident {
            revision: 57,
            id: 42,
            service: "payments-api".into(),
            dedup_key: "db-3/disk".into(),
            summary: "Disk full on db-3\n/var/lib at 100%".into(),
            severity: "critical".into(),
            urgency: "high".into(),
            status: IncidentStatus::Acknowledged as i32,
            created_at_ms: T0,
            acknowledged_at_ms: T0 + 185_000,
            resolved_at_ms: 0,
            acknowledged_by: "alice".into(),
            resolved_by: String::new(),
            escalation_level: 1,
            escalation_repeat: 0,
            folded_events: 3,
            runbook_url: "https://runbooks.example/disk".into(),
            source: "db-3".into(),
            deliveries: vec![
                Delivery {
                    id: 100,
                    user: "bob".into(),
                    method: "sms".into(),
                    address: "+1******4567".into(),
                    attempt: 1,
                    term: 7,
                    status: "failed".into(),
                    provider_id: String::new(),
                    error: "twilio 503".into(),
                    created_at_ms: T0 + 1_000,
                    updated_at_ms: T0 + 2_000,
                    shadow: true,
                    ..Default::default()
                },
                Delivery {
                    id: 101,
                    user: "alice".into(),
                    method: "voice".into(),
                    address: "+1******0001".into(),
                    attempt: 2,
                    term: 7,
                    status: "sent".into(),
                    provider_id: "CA123".into(),
                    error: String::new(),
                    created_at_ms: T0 + 60_000,
                    updated_at_ms: T0 + 61_000,
                    shadow: false,
                    call_status: "completed".into(),
                    reached: true,
                    ..Default::default()
                },
            ],
            timeline: vec![
                TimelineEntry {
                    at_ms: T0,
                    what: "triggered by db-3".into(),
                    by: String::new(),
                },
                TimelineEntry {
                    at_ms: T0 + 60_000,
                    what: "escalated to level 1".into(),
                    by: String::new(),
                },
                TimelineEntry {
                    at_ms: T0 + 185_000,
                    what: "acknowledged by alice".into(),
                    by: String::new(),
                },
            ],
            commander: "alice".into(),
            liaison: String::new(),
            snoozed_until_ms: 0,
            merged_into: 0,
            ack_due_ms: T0 + 300_000,
            escalations: vec![
                EscalationTrack {
                    assignee: Some(escalation_track::Assignee::Policy("payments".into())),
                    level: 1,
                    repeat: 0,
                    done: false,
                },
                EscalationTrack {
                    assignee: Some(escalation_track::Assignee::User("carol".into())),
                    level: 0,
                    repeat: 0,
                    done: true,
                },
            ],
        }
    }

    #[test]
    fn incident_change_line_human_and_json() {
        let change = IncidentChange {
            revision: 57,
            incident: Some(sample_incident()),
        };
        assert_eq!(
            human::incident_change(&change),
            "rev 57  #42 acknowledged  payments-api  acknowledged by alice"
        );
        let v = json::incident_change(&change);
        assert_eq!(v["revision"], 57);
        assert_eq!(v["incident"]["id"], 42);
    }

    #[test]
    fn incident_human() {
        assert_eq!(
            human::incident(&sample_incident()),
            "\
incident       42
status         acknowledged
service        payments-api
summary        Disk full on db-3\\n/var/lib at 100%
severity       critical
urgency        high
dedup key      db-3/disk
source         db-3
created        2023-11-14T22:13:20Z
acknowledged   2023-11-14T22:16:25Z by alice
resolved       -
escalation     level 2, repeat 0
folded events  3
runbook        https://runbooks.example/disk
ack due        2023-11-14T22:18:20Z
snoozed until  -
merged into    -
commander      alice
liaison        -

ESCALATIONS
#  ASSIGNEE         LEVEL  REPEAT  STATE
1  policy payments      2       0  paging
2  user carol           -       -  done

DELIVERIES
 ID  USER          METHOD  ADDRESS       ATTEMPT  TERM  STATUS         CREATED               UPDATED               PROVIDER ID  ERROR
100  bob (shadow)  sms     +1******4567        1     7  failed         2023-11-14T22:13:21Z  2023-11-14T22:13:22Z  -            twilio 503
101  alice         voice   +1******0001        2     7  sent, reached  2023-11-14T22:14:20Z  2023-11-14T22:14:21Z  CA123        -

TIMELINE
2023-11-14T22:13:20Z  triggered by db-3
2023-11-14T22:14:20Z  escalated to level 1
2023-11-14T22:16:25Z  acknowledged by alice
"
        );
    }

    #[test]
    fn incident_without_deliveries_or_timeline() {
        let i = Incident {
            id: 1,
            status: IncidentStatus::Triggered as i32,
            ..Default::default()
        };
        let text = human::incident(&i);
        assert!(text.contains("\nstatus         triggered\n"), "{text}");
        assert!(text.contains("\ncreated        -\n"), "{text}");
        assert!(
            text.ends_with("DELIVERIES\nnone\n\nTIMELINE\nnone\n"),
            "{text}"
        );
    }

    #[test]
    fn incident_json() {
        assert_eq!(
            json::incident(&sample_incident()),
            json!({
                "id": 42,
                "revision": 57,
                "service": "payments-api",
                "dedup_key": "db-3/disk",
                "summary": "Disk full on db-3\n/var/lib at 100%",
                "severity": "critical",
                "urgency": "high",
                "status": "acknowledged",
                "created_at_ms": T0,
                "acknowledged_at_ms": T0 + 185_000,
                "resolved_at_ms": 0,
                "acknowledged_by": "alice",
                "resolved_by": "",
                "escalation_level": 1,
                "escalation_repeat": 0,
                "folded_events": 3,
                "runbook_url": "https://runbooks.example/disk",
                "source": "db-3",
                "deliveries": [
                    {"id": 100, "user": "bob", "method": "sms", "address": "+1******4567",
                     "attempt": 1, "term": 7, "status": "failed", "provider_id": "",
                     "error": "twilio 503", "created_at_ms": T0 + 1_000, "updated_at_ms": T0 + 2_000,
                     "shadow": true, "claimed_at_ms": 0, "contact": "", "reclaims": 0,
                     "in_doubt": false, "call_status": "", "reached": false},
                    {"id": 101, "user": "alice", "method": "voice", "address": "+1******0001",
                     "attempt": 2, "term": 7, "status": "sent", "provider_id": "CA123",
                     "error": "", "created_at_ms": T0 + 60_000, "updated_at_ms": T0 + 61_000,
                     "shadow": false, "claimed_at_ms": 0, "contact": "", "reclaims": 0,
                     "in_doubt": false, "call_status": "completed", "reached": true},
                ],
                "timeline": [
                    {"at_ms": T0, "what": "triggered by db-3", "by": ""},
                    {"at_ms": T0 + 60_000, "what": "escalated to level 1", "by": ""},
                    {"at_ms": T0 + 185_000, "what": "acknowledged by alice", "by": ""},
                ],
                "commander": "alice",
                "liaison": "",
                "snoozed_until_ms": 0,
                "merged_into": 0,
                "ack_due_ms": T0 + 300_000,
                "escalations": [
                    {"policy": "payments", "level": 1, "repeat": 0, "done": false},
                    {"user": "carol", "level": 0, "repeat": 0, "done": true},
                ],
            })
        );
    }

    #[test]
    fn incident_list_human_and_json() {
        let mut second = sample_incident();
        second.id = 7;
        second.status = IncidentStatus::Resolved as i32;
        second.summary = "CPU high".into();
        second.service = "web".into();
        second.severity = "warning".into();
        second.urgency = "low".into();
        let list = ListIncidentsResponse {
            incidents: vec![sample_incident(), second],
            ..Default::default()
        };
        assert_eq!(
            human::incident_list(&list),
            "\
ID  STATUS        SEVERITY  URGENCY  SERVICE       CREATED               SUMMARY
42  acknowledged  critical  high     payments-api  2023-11-14T22:13:20Z  Disk full on db-3\\n/var/lib at 100%
 7  resolved      warning   low      web           2023-11-14T22:13:20Z  CPU high
"
        );
        assert_eq!(
            human::incident_list(&ListIncidentsResponse::default()),
            "no incidents\n"
        );
        let v = json::incident_list(&list);
        assert_eq!(v["incidents"][1]["id"], 7);
        assert_eq!(v["incidents"][1]["status"], "resolved");
        assert_eq!(v["incidents"][0], json::incident(&sample_incident()));
    }

    #[test]
    fn unknown_status_value() {
        assert_eq!(status_name(0), "unspecified");
        assert_eq!(status_name(99), "unknown(99)");
    }

    #[test]
    fn incident_action_shows_what_changed() {
        let mut i = sample_incident();
        i.snoozed_until_ms = T0 + 1_800_000;
        i.liaison = "bob".into();
        i.timeline.push(TimelineEntry {
            at_ms: T0 + 200_000,
            what: "note: looking".into(),
            by: "carol".into(),
        });
        i.timeline.push(TimelineEntry {
            at_ms: T0 + 201_000,
            what: "sms to bob sent (attempt 1)".into(),
            by: "pagerd".into(),
        });
        let r = IncidentActionResponse {
            incident: Some(i),
            commit_index: 99,
        };
        assert_eq!(
            human::incident_action(&r),
            "\
incident       42
status         acknowledged
summary        Disk full on db-3\\n/var/lib at 100%
acknowledged   2023-11-14T22:16:25Z by alice
resolved       -
escalation     policy payments, level 2, repeat 0 (+1 responder escalations)
snoozed until  2023-11-14T22:43:20Z
commander      alice
liaison        bob
last change    2023-11-14T22:16:40Z  note: looking  (carol)
commit         99
"
        );
        let v = json::incident_action(&r);
        assert_eq!(v["incident"]["snoozed_until_ms"], T0 + 1_800_000);
        assert_eq!(v["commit_index"], 99);
    }
}
