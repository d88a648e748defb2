//! `pagerctl rca list|show|edit|complete|duplicate` and `pagerctl board
//! [move ID STAGE]`: the RCA record every high-urgency incident gets, and
//! its card on the page board.
//!
//! `rca edit` changes the fields given; `--file` takes the JSON that
//! `rca show --output json` prints (edit it, send it back), so the full
//! template (timeline, repair items) can be written in an editor.

use anyhow::Context;
use clap::{Args, Subcommand};
use pager_proto::pager::v1::{
    followups_client::FollowupsClient, BoardRequest, CompleteRcaRequest, EditRcaRequest,
    GetRcaRequest, ListRcasRequest, MarkDuplicateRequest, MoveCardRequest, Rca, RcaLine,
    RepairItem,
};
use serde_json::{json, Value};

use crate::client::Client;
use crate::cmd::incident::ActorArgs;
use crate::output::{kv, text, timestamp, Align, Printer, Table};

#[derive(Debug, Subcommand)]
pub enum RcaCommand {
    /// RCA records, newest incident first.
    List {
        #[arg(long)]
        team: Option<String>,
        #[arg(long, value_parser = ["open", "mitigated", "completed", "duplicate"])]
        status: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        /// Only those past their due date and not done.
        #[arg(long)]
        overdue: bool,
    },
    /// One incident's RCA record.
    Show { incident: u64 },
    /// Write or change an RCA (only the fields given change).
    Edit(EditArgs),
    /// Complete an RCA: refused, naming the field, while one it needs is empty.
    Complete {
        incident: u64,
        #[command(flatten)]
        actor: ActorArgs,
    },
    /// The incident is a duplicate: no RCA needed.
    Duplicate {
        incident: u64,
        /// The incident it duplicates.
        #[arg(long)]
        of: Option<u64>,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

#[derive(Debug, Args)]
pub struct EditArgs {
    pub incident: u64,
    /// The short form: what happened, when customers were not affected.
    #[arg(long)]
    pub summary: Option<String>,
    /// Were customers affected (then the full template is needed)?
    #[arg(long, value_name = "BOOL")]
    pub customer_impact: Option<bool>,
    /// Lasting customer impact: a post-mortem meeting is needed.
    #[arg(long, value_name = "BOOL")]
    pub significant: Option<bool>,
    #[arg(long)]
    pub impact: Option<String>,
    /// Findings and root cause.
    #[arg(long)]
    pub findings: Option<String>,
    /// Mitigation and resolution: what, by whom, when.
    #[arg(long)]
    pub mitigation: Option<String>,
    /// Add a repair item: `TITLE` or `TITLE|LINK` (repeatable).
    #[arg(long = "add-repair", value_name = "TITLE[|LINK]")]
    pub add_repair: Vec<String>,
    /// Mark repair item N (from 1, as `rca show` numbers them) done (repeatable).
    #[arg(long = "done", value_name = "N")]
    pub done: Vec<usize>,
    /// Mark repair item N open again (repeatable).
    #[arg(long = "reopen", value_name = "N")]
    pub reopen: Vec<usize>,
    /// Give the RCA to another user.
    #[arg(long)]
    pub assignee: Option<String>,
    /// The JSON `rca show --output json` prints: its written fields replace
    /// the record's (timeline and repair items whole).
    #[arg(long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BoardArgs {
    #[command(subcommand)]
    pub command: Option<BoardCommand>,
    /// One team's board.
    #[arg(long)]
    pub team: Option<String>,
    /// List the complete cards too (by default only counted).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum BoardCommand {
    /// Move a card: new, root-cause, follow-ups-underway, follow-ups-complete
    /// or complete (never while a repair item is open).
    Move {
        incident: u64,
        stage: String,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

pub fn rca_json(r: &Rca) -> Value {
    json!({
        "incident_id": r.incident_id,
        "service": r.service,
        "team": r.team,
        "title": r.title,
        "required": r.required,
        "status": r.status,
        "assignee": r.assignee,
        "opened_at_ms": r.opened_at_ms,
        "mitigated_at_ms": r.mitigated_at_ms,
        "due_ms": r.due_ms,
        "overdue": r.overdue,
        "completed_at_ms": r.completed_at_ms,
        "completed_by": r.completed_by,
        "duplicate_of": r.duplicate_of,
        "customer_impact": r.customer_impact,
        "significant": r.significant,
        "postmortem_needed": r.postmortem_needed,
        "summary": r.summary,
        "timeline": r.timeline.iter().map(|l| json!({"at_ms": l.at_ms, "what": l.what})).collect::<Vec<_>>(),
        "impact": r.impact,
        "findings": r.findings,
        "mitigation": r.mitigation,
        "repairs": r.repairs.iter().map(|i| json!({"title": i.title, "link": i.link, "done": i.done})).collect::<Vec<_>>(),
        "stage": r.stage,
        "stage_since_ms": r.stage_since_ms,
        "reminders": r.reminders,
        "revision": r.revision,
    })
}

fn rca_text(r: &Rca) -> String {
    let mut out = kv(&[
        ("incident", format!("#{} {}", r.incident_id, text(&r.title))),
        ("service", text(&r.service)),
        ("team", text(&r.team)),
        (
            "status",
            format!(
                "{}{}{}",
                r.status,
                if r.required { "" } else { " (optional)" },
                if r.overdue { ", OVERDUE" } else { "" }
            ),
        ),
        ("assignee", text(&r.assignee)),
        ("mitigated", timestamp(r.mitigated_at_ms)),
        ("due", timestamp(r.due_ms)),
        ("card", r.stage.replace('_', " ")),
        (
            "impact",
            match (r.customer_impact, r.postmortem_needed) {
                (false, _) => "none on customers".into(),
                (true, false) => "customers affected".into(),
                (true, true) => "customers affected: post-mortem meeting needed".into(),
            },
        ),
    ]);
    let section = |title: &str, body: &str, out: &mut String| {
        if !body.trim().is_empty() {
            out.push_str(&format!("\n{title}:\n{}\n", body.trim_end()));
        }
    };
    section("Summary", &r.summary, &mut out);
    section("Impact", &r.impact, &mut out);
    section("Findings and root cause", &r.findings, &mut out);
    section("Mitigation and resolution", &r.mitigation, &mut out);
    if !r.timeline.is_empty() {
        out.push_str("\nTimeline:\n");
        for l in &r.timeline {
            out.push_str(&format!("  {}  {}\n", timestamp(l.at_ms), text(&l.what)));
        }
    }
    if !r.repairs.is_empty() {
        out.push_str("\nRepair items:\n");
        for (n, i) in r.repairs.iter().enumerate() {
            let mark = if i.done { "x" } else { " " };
            let link = if i.link.is_empty() {
                String::new()
            } else {
                format!("  {}", text(&i.link))
            };
            out.push_str(&format!("  {}. [{mark}] {}{link}\n", n + 1, text(&i.title)));
        }
    }
    out
}

/// The request `edit` makes of the record as it is now (`current`: read
/// first when repair items change by number).
fn edit_request(a: &EditArgs, current: Option<&Rca>) -> anyhow::Result<EditRcaRequest> {
    let mut req = EditRcaRequest {
        incident_id: a.incident,
        by: a.actor.resolve(),
        ..Default::default()
    };
    if let Some(path) = &a.file {
        let body =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&body)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let b = |k: &str| v.get(k).and_then(Value::as_bool);
        req.summary = s("summary");
        req.impact = s("impact");
        req.findings = s("findings");
        req.mitigation = s("mitigation");
        req.customer_impact = b("customer_impact");
        req.significant = b("significant");
        if let Some(lines) = v.get("timeline") {
            let lines: Vec<Value> =
                serde_json::from_value(lines.clone()).context("timeline: a list")?;
            req.set_timeline = true;
            req.timeline = lines
                .iter()
                .map(|l| RcaLine {
                    at_ms: l.get("at_ms").and_then(Value::as_u64).unwrap_or(0),
                    what: l.get("what").and_then(Value::as_str).unwrap_or("").into(),
                })
                .collect();
        }
        if let Some(items) = v.get("repairs") {
            let items: Vec<Value> =
                serde_json::from_value(items.clone()).context("repairs: a list")?;
            req.set_repairs = true;
            req.repairs = items
                .iter()
                .map(|i| RepairItem {
                    title: i.get("title").and_then(Value::as_str).unwrap_or("").into(),
                    link: i.get("link").and_then(Value::as_str).unwrap_or("").into(),
                    done: i.get("done").and_then(Value::as_bool).unwrap_or(false),
                })
                .collect();
        }
    }
    let flags = [
        (&a.summary, &mut req.summary),
        (&a.impact, &mut req.impact),
        (&a.findings, &mut req.findings),
        (&a.mitigation, &mut req.mitigation),
        (&a.assignee, &mut req.assignee),
    ];
    for (flag, field) in flags {
        if flag.is_some() {
            field.clone_from(flag);
        }
    }
    if a.customer_impact.is_some() {
        req.customer_impact = a.customer_impact;
    }
    if a.significant.is_some() {
        req.significant = a.significant;
    }
    if !a.add_repair.is_empty() || !a.done.is_empty() || !a.reopen.is_empty() {
        let mut items = if req.set_repairs {
            req.repairs.clone()
        } else {
            current.map(|r| r.repairs.clone()).unwrap_or_default()
        };
        for (ns, done) in [(&a.done, true), (&a.reopen, false)] {
            for &n in ns {
                let item = n
                    .checked_sub(1)
                    .and_then(|i| items.get_mut(i))
                    .with_context(|| {
                        format!(
                            "there is no repair item {n} (see `pagerctl rca show {}`)",
                            a.incident
                        )
                    })?;
                item.done = done;
            }
        }
        for r in &a.add_repair {
            let (title, link) = r.split_once('|').unwrap_or((r.as_str(), ""));
            items.push(RepairItem {
                title: title.trim().into(),
                link: link.trim().into(),
                done: false,
            });
        }
        req.set_repairs = true;
        req.repairs = items;
    }
    Ok(req)
}

fn saved(r: Option<&Rca>, what: &str, commit_index: u64) -> (String, Value) {
    let human = match r {
        Some(r) => format!(
            "{what}: RCA of #{} is {}, card at {}\n",
            r.incident_id,
            r.status,
            r.stage.replace('_', " ")
        ),
        None => format!("{what}\n"),
    };
    let json = json!({"rca": r.map(rca_json), "commit_index": commit_index});
    (human, json)
}

pub async fn run(client: &Client, out: &Printer, cmd: RcaCommand) -> anyhow::Result<()> {
    match cmd {
        RcaCommand::List {
            team,
            status,
            assignee,
            overdue,
        } => {
            let req = ListRcasRequest {
                team: team.unwrap_or_default(),
                status: status.unwrap_or_default(),
                assignee: assignee.unwrap_or_default(),
                overdue_only: overdue,
                consistency: None,
            };
            let r = client
                .call(&req, |ch, req| async move {
                    FollowupsClient::new(ch).list_rcas(req).await
                })
                .await?;
            out.emit(
                || {
                    let mut t = Table::new(&[
                        ("INCIDENT", Align::Right),
                        ("STATUS", Align::Left),
                        ("DUE", Align::Left),
                        ("ASSIGNEE", Align::Left),
                        ("TEAM", Align::Left),
                        ("CARD", Align::Left),
                        ("TITLE", Align::Left),
                    ]);
                    for x in &r.rcas {
                        let status = if x.overdue {
                            format!("{} (overdue)", x.status)
                        } else {
                            x.status.clone()
                        };
                        t.row(vec![
                            x.incident_id.to_string(),
                            status,
                            timestamp(x.due_ms),
                            text(&x.assignee),
                            text(&x.team),
                            x.stage.replace('_', " "),
                            text(&x.title),
                        ]);
                    }
                    t.render()
                },
                || json!({"rcas": r.rcas.iter().map(rca_json).collect::<Vec<_>>(), "applied_index": r.applied_index}),
            )
        }
        RcaCommand::Show { incident } => {
            let r = get(client, incident).await?;
            out.emit(|| rca_text(&r), || rca_json(&r))
        }
        RcaCommand::Edit(a) => {
            let numbered = !a.done.is_empty() || !a.reopen.is_empty() || !a.add_repair.is_empty();
            let current = if numbered && a.file.is_none() {
                Some(get(client, a.incident).await?)
            } else {
                None
            };
            let req = edit_request(&a, current.as_ref())?;
            let r = client
                .call(&req, |ch, req| async move {
                    FollowupsClient::new(ch).edit_rca(req).await
                })
                .await?;
            let (human, json) = saved(r.rca.as_ref(), "saved", r.commit_index);
            out.emit(|| human, || json)
        }
        RcaCommand::Complete { incident, actor } => {
            let req = CompleteRcaRequest {
                incident_id: incident,
                by: actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    FollowupsClient::new(ch).complete_rca(req).await
                })
                .await?;
            let (human, json) = saved(r.rca.as_ref(), "completed", r.commit_index);
            out.emit(|| human, || json)
        }
        RcaCommand::Duplicate {
            incident,
            of,
            actor,
        } => {
            let req = MarkDuplicateRequest {
                incident_id: incident,
                of: of.unwrap_or(0),
                by: actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    FollowupsClient::new(ch).mark_duplicate(req).await
                })
                .await?;
            let (human, json) = saved(r.rca.as_ref(), "marked a duplicate", r.commit_index);
            out.emit(|| human, || json)
        }
    }
}

async fn get(client: &Client, incident: u64) -> anyhow::Result<Rca> {
    let req = GetRcaRequest {
        incident_id: incident,
        consistency: None,
    };
    Ok(client
        .call(&req, |ch, req| async move {
            FollowupsClient::new(ch).get_rca(req).await
        })
        .await?)
}

pub async fn board(client: &Client, out: &Printer, args: BoardArgs) -> anyhow::Result<()> {
    if let Some(BoardCommand::Move {
        incident,
        stage,
        actor,
    }) = args.command
    {
        let req = MoveCardRequest {
            incident_id: incident,
            stage: stage.replace('-', "_"),
            by: actor.resolve(),
        };
        let r = client
            .call(&req, |ch, req| async move {
                FollowupsClient::new(ch).move_card(req).await
            })
            .await?;
        let (human, json) = saved(r.rca.as_ref(), "moved", r.commit_index);
        return out.emit(|| human, || json);
    }
    let req = BoardRequest {
        team: args.team.unwrap_or_default(),
        include_complete: args.all,
        consistency: None,
    };
    let r = client
        .call(&req, |ch, req| async move {
            FollowupsClient::new(ch).board(req).await
        })
        .await?;
    out.emit(
        || {
            let mut s = String::new();
            for c in &r.columns {
                s.push_str(&format!("{} ({})\n", c.title, c.count));
                for card in &c.cards {
                    let mut flags = Vec::new();
                    if card.stale {
                        flags.push("over a week here".to_string());
                    }
                    if card.overdue {
                        flags.push("RCA overdue".to_string());
                    }
                    if card.open_repairs > 0 {
                        flags.push(format!("{} repair item(s) open", card.open_repairs));
                    }
                    let flags = if flags.is_empty() {
                        String::new()
                    } else {
                        format!("  [{}]", flags.join(", "))
                    };
                    s.push_str(&format!(
                        "  #{:<6} {}  {} / {}{flags}\n",
                        card.incident_id,
                        text(&card.title),
                        text(&card.service),
                        text(&card.assignee)
                    ));
                }
            }
            s
        },
        || {
            json!({
                "columns": r.columns.iter().map(|c| json!({
                    "stage": c.stage,
                    "title": c.title,
                    "count": c.count,
                    "cards": c.cards.iter().map(|k| json!({
                        "incident_id": k.incident_id,
                        "title": k.title,
                        "service": k.service,
                        "team": k.team,
                        "stage": k.stage,
                        "stage_since_ms": k.stage_since_ms,
                        "stale": k.stale,
                        "assignee": k.assignee,
                        "rca_status": k.rca_status,
                        "open_repairs": k.open_repairs,
                        "due_ms": k.due_ms,
                        "overdue": k.overdue,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "applied_index": r.applied_index,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::parse;
    use crate::cli::Command;

    fn edit_args(args: &[&str]) -> EditArgs {
        let mut argv = vec!["rca", "edit"];
        argv.extend_from_slice(args);
        match parse(&argv).command {
            Command::Rca(RcaCommand::Edit(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn edit_sends_only_the_fields_given() {
        let req = edit_request(
            &edit_args(&["7", "--summary", "disk full", "--by", "alice"]),
            None,
        )
        .unwrap();
        assert_eq!(req.incident_id, 7);
        assert_eq!(req.summary.as_deref(), Some("disk full"));
        assert_eq!(req.impact, None);
        assert!(!req.set_repairs && !req.set_timeline);
        assert_eq!(req.by, "alice");
    }

    #[test]
    fn repair_items_change_by_number_on_the_current_list() {
        let current = Rca {
            repairs: vec![
                RepairItem {
                    title: "a".into(),
                    link: String::new(),
                    done: false,
                },
                RepairItem {
                    title: "b".into(),
                    link: String::new(),
                    done: true,
                },
            ],
            ..Default::default()
        };
        let a = edit_args(&[
            "7",
            "--done",
            "1",
            "--reopen",
            "2",
            "--add-repair",
            "c|https://t/OPS-1",
        ]);
        let req = edit_request(&a, Some(&current)).unwrap();
        assert!(req.set_repairs);
        let got: Vec<(&str, &str, bool)> = req
            .repairs
            .iter()
            .map(|i| (i.title.as_str(), i.link.as_str(), i.done))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "", true),
                ("b", "", false),
                ("c", "https://t/OPS-1", false)
            ]
        );
        let a = edit_args(&["7", "--done", "3"]);
        let err = edit_request(&a, Some(&current)).unwrap_err().to_string();
        assert!(err.contains("no repair item 3"), "{err}");
    }

    #[test]
    fn board_move_and_board_flags_parse() {
        match parse(&["board", "--team", "db", "--all"]).command {
            Command::Board(b) => {
                assert!(b.command.is_none());
                assert_eq!(b.team.as_deref(), Some("db"));
                assert!(b.all);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["board", "move", "12", "follow-ups-complete"]).command {
            Command::Board(BoardArgs {
                command:
                    Some(BoardCommand::Move {
                        incident, stage, ..
                    }),
                ..
            }) => assert_eq!((incident, stage.as_str()), (12, "follow-ups-complete")),
            other => panic!("{other:?}"),
        }
    }
}
