//! `pagerctl report [--from WHEN] [--to WHEN] [--team T] [--service S]`:
//! the page review report (default: the last 7 days) as tables, JSON, or
//! CSV (`--output csv`: one `section,name,figure,value` row per figure, for
//! a spreadsheet).

use clap::Args;
use pager_proto::pager::v1::{followups_client::FollowupsClient, ReportRequest, ReportResponse};
use serde_json::json;

use crate::client::Client;
use crate::output::{kv, text, timestamp, Align, Printer, Table};
use crate::when::{now_ms, parse_when, When};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Start (RFC 3339 or a span from now, like -7d) [default: 7 days before --to].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true)]
    pub from: Option<When>,
    /// End, exclusive [default: now].
    #[arg(long, value_parser = parse_when, allow_hyphen_values = true)]
    pub to: Option<When>,
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long)]
    pub service: Option<String>,
}

const WEEK_MS: u64 = 7 * 86_400_000;

/// `1h 5m`, `42s`, `-` for none.
fn dur(s: Option<u32>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        Some(s) => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

fn pct(part: u32, all: u32) -> String {
    if all == 0 {
        "-".into()
    } else {
        format!("{:.0}%", 100.0 * f64::from(part) / f64::from(all))
    }
}

fn human(r: &ReportResponse) -> String {
    let mut out = kv(&[
        ("from", timestamp(r.from_ms)),
        ("to", timestamp(r.to_ms)),
        (
            "incidents",
            format!("{} ({} still open)", r.incidents, r.open),
        ),
        ("pages", r.pages.to_string()),
        (
            "off hours",
            format!(
                "{} ({})",
                r.off_hours_pages,
                pct(r.off_hours_pages, r.pages)
            ),
        ),
        (
            "reached level 2+",
            format!("{} ({})", r.escalated, pct(r.escalated, r.incidents)),
        ),
        ("SLA breaches", r.sla_breaches.to_string()),
        (
            "MTTA p50 / p90",
            format!("{} / {}", dur(r.mtta_p50_s), dur(r.mtta_p90_s)),
        ),
        (
            "MTTR p50 / p90",
            format!("{} / {}", dur(r.mttr_p50_s), dur(r.mttr_p90_s)),
        ),
        (
            "open RCAs",
            format!("{} ({} overdue)", r.open_rcas, r.overdue_rcas),
        ),
    ]);
    let counts = |title: &str,
                  head: &'static str,
                  rows: &[pager_proto::pager::v1::CountRow],
                  out: &mut String| {
        if rows.is_empty() {
            return;
        }
        let mut t = Table::new(&[
            (head, Align::Left),
            ("INCIDENTS", Align::Right),
            ("PAGES", Align::Right),
        ]);
        for c in rows {
            t.row(vec![
                text(&c.name),
                c.incidents.to_string(),
                c.pages.to_string(),
            ]);
        }
        out.push_str(&format!("\n{title}\n{}", t.render()));
    };
    counts("By team", "TEAM", &r.by_team, &mut out);
    counts("By service", "SERVICE", &r.by_service, &mut out);
    if !r.noisiest.is_empty() {
        let mut t = Table::new(&[
            ("SERVICE", Align::Left),
            ("INCIDENTS", Align::Right),
            ("AUTO-RESOLVED", Align::Right),
            ("UNACKED", Align::Right),
            ("SNOOZED", Align::Right),
            ("ALERT", Align::Left),
        ]);
        for a in &r.noisiest {
            t.row(vec![
                text(&a.service),
                a.incidents.to_string(),
                a.auto_resolved.to_string(),
                a.unacknowledged.to_string(),
                a.snoozed.to_string(),
                text(&a.alert),
            ]);
        }
        out.push_str(&format!(
            "\nNoisiest alerts (auto-resolved or unacknowledged ones may be low urgency; snoozed ones misconfigured)\n{}",
            t.render()
        ));
    }
    if !r.night_wakeups.is_empty() {
        let mut t = Table::new(&[("USER", Align::Left), ("WOKEN", Align::Right)]);
        for c in &r.night_wakeups {
            t.row(vec![text(&c.name), c.incidents.to_string()]);
        }
        out.push_str(&format!(
            "\nNight wake-ups (22:00-07:00 in their zone)\n{}",
            t.render()
        ));
    }
    out
}

fn json_of(r: &ReportResponse) -> serde_json::Value {
    let rows = |v: &[pager_proto::pager::v1::CountRow]| {
        v.iter()
            .map(|c| json!({"name": c.name, "incidents": c.incidents, "pages": c.pages}))
            .collect::<Vec<_>>()
    };
    json!({
        "from_ms": r.from_ms, "to_ms": r.to_ms,
        "incidents": r.incidents, "open": r.open, "pages": r.pages,
        "off_hours_pages": r.off_hours_pages, "escalated": r.escalated,
        "sla_breaches": r.sla_breaches,
        "mtta_p50_s": r.mtta_p50_s, "mtta_p90_s": r.mtta_p90_s,
        "mttr_p50_s": r.mttr_p50_s, "mttr_p90_s": r.mttr_p90_s,
        "by_team": rows(&r.by_team), "by_service": rows(&r.by_service),
        "noisiest": r.noisiest.iter().map(|a| json!({
            "service": a.service, "alert": a.alert, "incidents": a.incidents,
            "auto_resolved": a.auto_resolved, "unacknowledged": a.unacknowledged, "snoozed": a.snoozed,
        })).collect::<Vec<_>>(),
        "night_wakeups": rows(&r.night_wakeups),
        "open_rcas": r.open_rcas, "overdue_rcas": r.overdue_rcas,
        "applied_index": r.applied_index,
    })
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(r: &ReportResponse) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut put = |section: &str, name: &str, figure: &str, value: String| {
        rows.push([section.into(), name.into(), figure.into(), value]);
    };
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    for (figure, value) in [
        ("from_ms", r.from_ms.to_string()),
        ("to_ms", r.to_ms.to_string()),
        ("incidents", r.incidents.to_string()),
        ("open", r.open.to_string()),
        ("pages", r.pages.to_string()),
        ("off_hours_pages", r.off_hours_pages.to_string()),
        ("escalated", r.escalated.to_string()),
        ("sla_breaches", r.sla_breaches.to_string()),
        ("mtta_p50_s", opt(r.mtta_p50_s)),
        ("mtta_p90_s", opt(r.mtta_p90_s)),
        ("mttr_p50_s", opt(r.mttr_p50_s)),
        ("mttr_p90_s", opt(r.mttr_p90_s)),
        ("open_rcas", r.open_rcas.to_string()),
        ("overdue_rcas", r.overdue_rcas.to_string()),
    ] {
        put("total", "", figure, value);
    }
    for (section, list) in [("team", &r.by_team), ("service", &r.by_service)] {
        for c in list {
            put(section, &c.name, "incidents", c.incidents.to_string());
            put(section, &c.name, "pages", c.pages.to_string());
        }
    }
    for a in &r.noisiest {
        let name = format!("{}: {}", a.service, a.alert);
        put("alert", &name, "incidents", a.incidents.to_string());
        put("alert", &name, "auto_resolved", a.auto_resolved.to_string());
        put(
            "alert",
            &name,
            "unacknowledged",
            a.unacknowledged.to_string(),
        );
        put("alert", &name, "snoozed", a.snoozed.to_string());
    }
    for c in &r.night_wakeups {
        put("night_wakeups", &c.name, "woken", c.incidents.to_string());
    }
    let mut out = String::from("section,name,figure,value\r\n");
    for row in rows {
        let line: Vec<String> = row.iter().map(|f| field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

pub async fn run(client: &Client, out: &Printer, a: ReportArgs) -> anyhow::Result<()> {
    let now = now_ms();
    let to = a.to.map_or(now, |w| w.resolve(now));
    let from = a
        .from
        .map_or(to.saturating_sub(WEEK_MS), |w| w.resolve(now));
    let req = ReportRequest {
        from_ms: from,
        to_ms: to,
        team: a.team.unwrap_or_default(),
        service: a.service.unwrap_or_default(),
        consistency: None,
    };
    let r = client
        .call(&req, |ch, req| async move {
            FollowupsClient::new(ch).report(req).await
        })
        .await?;
    out.emit_with_csv(|| human(&r), || json_of(&r), || csv(&r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pager_proto::pager::v1::{AlertRow, CountRow};

    #[test]
    fn csv_quotes_what_needs_quoting_and_leaves_absent_percentiles_empty() {
        let r = ReportResponse {
            incidents: 2,
            by_team: vec![CountRow {
                name: "db".into(),
                incidents: 2,
                pages: 3,
            }],
            noisiest: vec![AlertRow {
                service: "db".into(),
                alert: "disk \"full\", again".into(),
                incidents: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = csv(&r);
        assert!(text.starts_with("section,name,figure,value\r\n"));
        assert!(text.contains("total,,incidents,2\r\n"));
        assert!(text.contains("total,,mtta_p50_s,\r\n"));
        assert!(text.contains("team,db,pages,3\r\n"));
        assert!(
            text.contains("alert,\"db: disk \"\"full\"\", again\",incidents,2\r\n"),
            "{text}"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(dur(Some(42)), "42s");
        assert_eq!(dur(Some(125)), "2m 5s");
        assert_eq!(dur(Some(3900)), "1h 5m");
        assert_eq!(dur(None), "-");
    }
}
