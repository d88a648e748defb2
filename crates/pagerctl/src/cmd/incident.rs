//! `pagerctl incident ...`: read incidents (`list`, `show`, `watch`) and act
//! on them (`ack`, `resolve`, `snooze`, `reassign`, `escalate`,
//! `add-responders`, `merge`, `set-role`, `note`). Every action prints where
//! the incident stands afterwards.

use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use pager_proto::pager::v1::{
    incidents_client::IncidentsClient, reassign_request, responder, AddNoteRequest,
    AddRespondersRequest, EscalateRequest, GetIncidentRequest, IncidentActionRequest,
    IncidentActionResponse, IncidentRole, IncidentStatus, ListIncidentsRequest, MergeRequest,
    ReadConsistency, ReassignRequest, Responder, SetBridgeRequest, SetRoleRequest, SnoozeRequest,
    WatchRequest,
};

use crate::client::Client;
use crate::output::Printer;
use crate::when::{self, parse_when, When};

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// List incidents, newest first.
    #[command(alias = "ls")]
    List {
        /// Only these statuses (repeat for more); default all.
        #[arg(long = "status", value_enum, value_name = "STATUS")]
        statuses: Vec<StatusArg>,
        /// Only this service (stable name).
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// At most this many (server default 100).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Only this urgency.
        #[arg(long, value_parser = ["high", "low"], value_name = "URGENCY")]
        urgency: Option<String>,
        /// Only incidents created at or after this time (RFC 3339, or -2h).
        #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
        since: Option<When>,
        /// Only incidents created before this time.
        #[arg(long, value_parser = parse_when, allow_hyphen_values = true, value_name = "TIME")]
        until: Option<When>,
        /// The next page: the token the previous page printed.
        #[arg(long, value_name = "TOKEN")]
        page_token: Option<String>,
        /// Reflect every write committed before the call (asks the leader).
        #[arg(long)]
        linearizable: bool,
    },
    /// Show one incident: every field, deliveries, timeline.
    #[command(alias = "get")]
    Show { id: u64 },
    /// Acknowledge an incident: paging stops.
    #[command(alias = "acknowledge")]
    Ack(IncidentActionArgs),
    /// Resolve an incident.
    Resolve(IncidentActionArgs),
    /// Stop paging until a time, then page again (a triggered incident is
    /// acknowledged meanwhile).
    Snooze(SnoozeArgs),
    /// Hand the incident to a user or an escalation policy, paged from its
    /// first level.
    Reassign(ReassignArgs),
    /// Page a level of the incident's escalation policy now.
    Escalate(EscalateArgs),
    /// Page more people now.
    AddResponders(AddRespondersArgs),
    /// Resolve the incident as a duplicate of another, which carries on.
    Merge(MergeArgs),
    /// Name the incident commander or the communications liaison (an empty
    /// name clears the role).
    SetRole(SetRoleArgs),
    /// Set the incident's conference bridge (an http(s) URL; "" clears it).
    SetBridge(BridgeArgs),
    /// Add a note to the incident's timeline.
    Note(NoteArgs),
    /// Follow incident changes as they are committed, one line each (JSON
    /// lines with `--output json`). Resumes on the next endpoint from the
    /// last revision seen when a node goes away.
    Watch {
        /// Start after this revision; 0 prints every incident first.
        #[arg(long, default_value_t = 0, value_name = "REVISION")]
        from_revision: u64,
        /// Only this service (stable name).
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
    },
}

/// `--by` of the incident actions.
#[derive(Debug, Args)]
pub struct ActorArgs {
    /// Who acts, as the timeline records it [default: $USER, else "pagerctl"].
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

impl ActorArgs {
    pub fn resolve(&self) -> String {
        actor(self.by.as_deref(), std::env::var("USER").ok().as_deref())
    }
}

/// `--by` if given, else the login name, else "pagerctl".
pub fn actor(by: Option<&str>, login: Option<&str>) -> String {
    [by, login]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("pagerctl")
        .to_owned()
}

#[derive(Debug, Args)]
pub struct SnoozeArgs {
    pub id: u64,
    /// Page again at this time: RFC 3339 (2026-03-07T09:00:00Z) or from now (+30m, +2h).
    #[arg(long, value_parser = parse_when, value_name = "TIME")]
    pub until: When,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("to").required(true).args(["user", "policy"])))]
pub struct ReassignArgs {
    pub id: u64,
    /// A user (stable name), paged once.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// An escalation policy, paged from its first level.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
pub struct EscalateArgs {
    pub id: u64,
    /// Level to page, 1-based.
    #[arg(
        long,
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "N"
    )]
    pub level: u32,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("responders")
        .required(true)
        .multiple(true)
        .args(["users", "teams", "policies"])
))]
pub struct AddRespondersArgs {
    pub id: u64,
    /// A user, paged once (repeat for more).
    #[arg(long = "user", value_name = "USER")]
    pub users: Vec<String>,
    /// A team: its escalation policy, else every member (repeat for more).
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,
    /// An escalation policy, level by level (repeat for more).
    #[arg(long = "policy", value_name = "POLICY")]
    pub policies: Vec<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The duplicate: resolved by the merge.
    pub id: u64,
    /// The incident that carries on.
    #[arg(long, value_name = "ID")]
    pub into: u64,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("role").required(true).args(["commander", "liaison"])))]
pub struct SetRoleArgs {
    pub id: u64,
    /// The incident commander ("" clears).
    #[arg(long, value_name = "USER")]
    pub commander: Option<String>,
    /// The communications liaison ("" clears).
    #[arg(long, value_name = "USER")]
    pub liaison: Option<String>,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
pub struct BridgeArgs {
    pub id: u64,
    /// The bridge's URL ("" clears it).
    pub url: String,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    pub id: u64,
    /// The note (quote it).
    pub text: String,
    #[command(flatten)]
    pub actor: ActorArgs,
}

#[derive(Debug, Args)]
pub struct IncidentActionArgs {
    pub id: u64,
    /// Who acts; the server records "api" when absent.
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Triggered,
    Acknowledged,
    Resolved,
}

impl From<StatusArg> for IncidentStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Triggered => IncidentStatus::Triggered,
            StatusArg::Acknowledged => IncidentStatus::Acknowledged,
            StatusArg::Resolved => IncidentStatus::Resolved,
        }
    }
}

pub async fn run(client: &Client, out: &Printer, cmd: IncidentCommand) -> anyhow::Result<()> {
    match cmd {
        IncidentCommand::Watch {
            from_revision,
            service,
        } => watch(client, out, from_revision, service.unwrap_or_default()).await,
        IncidentCommand::List {
            statuses,
            service,
            limit,
            urgency,
            since,
            until,
            page_token,
            linearizable,
        } => {
            let now = when::now_ms();
            let req = ListIncidentsRequest {
                statuses: statuses
                    .into_iter()
                    .map(|s| IncidentStatus::from(s) as i32)
                    .collect(),
                service: service.unwrap_or_default(),
                limit: limit.unwrap_or(0),
                urgency: urgency.unwrap_or_default(),
                created_from_ms: since.map_or(0, |w| w.resolve(now)),
                created_before_ms: until.map_or(0, |w| w.resolve(now)),
                page_token: page_token.unwrap_or_default(),
                consistency: Some(ReadConsistency {
                    min_index: 0,
                    linearizable,
                }),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).list(req).await
                })
                .await?;
            out.emit(|| human::incident_list(&r), || json::incident_list(&r))
        }
        IncidentCommand::Show { id } => {
            let r = client
                .call(
                    &GetIncidentRequest {
                        id,
                        ..Default::default()
                    },
                    |ch, req| async move { IncidentsClient::new(ch).get(req).await },
                )
                .await?;
            out.emit(|| human::incident(&r), || json::incident(&r))
        }
        IncidentCommand::Ack(a) => {
            let req = IncidentActionRequest {
                id: a.id,
                by: a.by.unwrap_or_default(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).acknowledge(req).await
                })
                .await?;
            out.emit(|| human::incident_action(&r), || json::incident_action(&r))
        }
        IncidentCommand::Resolve(a) => {
            let req = IncidentActionRequest {
                id: a.id,
                by: a.by.unwrap_or_default(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).resolve(req).await
                })
                .await?;
            out.emit(|| human::incident_action(&r), || json::incident_action(&r))
        }
        IncidentCommand::Snooze(a) => {
            let req = SnoozeRequest {
                id: a.id,
                until_ms: a.until.resolve(when::now_ms()),
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).snooze(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::Reassign(a) => {
            let to = match (a.user, a.policy) {
                (Some(u), _) => reassign_request::To::User(u),
                (None, Some(p)) => reassign_request::To::Policy(p),
                // clap requires one of the two.
                (None, None) => anyhow::bail!("reassign: --user or --policy is required"),
            };
            let req = ReassignRequest {
                id: a.id,
                to: Some(to),
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).reassign(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::Escalate(a) => {
            let req = EscalateRequest {
                id: a.id,
                level: a.level,
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).escalate(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::AddResponders(a) => {
            let by = a.actor.resolve();
            let target = |t| Responder { target: Some(t) };
            let responders = (a.users.into_iter().map(responder::Target::User))
                .chain(a.teams.into_iter().map(responder::Target::Team))
                .chain(a.policies.into_iter().map(responder::Target::Policy))
                .map(target)
                .collect();
            let req = AddRespondersRequest {
                id: a.id,
                responders,
                by,
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).add_responders(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::Merge(a) => {
            let req = MergeRequest {
                id: a.id,
                into: a.into,
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).merge(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::SetRole(a) => {
            let (role, user) = match (a.commander, a.liaison) {
                (Some(u), _) => (IncidentRole::Commander, u),
                (None, Some(u)) => (IncidentRole::Liaison, u),
                // clap requires one of the two.
                (None, None) => anyhow::bail!("set-role: --commander or --liaison is required"),
            };
            let req = SetRoleRequest {
                id: a.id,
                role: role as i32,
                user,
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).set_role(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::SetBridge(a) => {
            let req = SetBridgeRequest {
                id: a.id,
                url: a.url,
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).set_bridge(req).await
                })
                .await?;
            emit_action(out, &r)
        }
        IncidentCommand::Note(a) => {
            let req = AddNoteRequest {
                id: a.id,
                text: a.text,
                by: a.actor.resolve(),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    IncidentsClient::new(ch).add_note(req).await
                })
                .await?;
            emit_action(out, &r)
        }
    }
}

/// `incident watch`: print each change; when the stream breaks, resume from
/// the last revision on whichever endpoint answers, until interrupted.
async fn watch(
    client: &Client,
    out: &Printer,
    mut cursor: u64,
    service: String,
) -> anyhow::Result<()> {
    loop {
        let req = WatchRequest {
            from_revision: cursor,
            service: service.clone(),
        };
        let (mut stream, url) = match client
            .call_at(&req, |ch, req| async move {
                IncidentsClient::new(ch).watch(req).await
            })
            .await
        {
            Ok(opened) => opened,
            Err(e) => {
                eprintln!("watch: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let url = url.to_string();
        loop {
            match stream.message().await {
                Ok(Some(change)) => {
                    cursor = cursor.max(change.revision);
                    out.line(
                        || human::incident_change(&change),
                        || json::incident_change(&change),
                    )?;
                }
                Ok(None) => {
                    eprintln!("watch: {url} ended the stream; resuming from revision {cursor}");
                    break;
                }
                Err(status) => {
                    eprintln!(
                        "watch: {url}: {:?}: {}; resuming from revision {cursor}",
                        status.code(),
                        status.message()
                    );
                    break;
                }
            }
        }
    }
}

fn emit_action(out: &Printer, r: &IncidentActionResponse) -> anyhow::Result<()> {
    out.emit(|| human::incident_action(r), || json::incident_action(r))
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

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::{
        escalation_track, Delivery, EscalationTrack, Incident, IncidentActionResponse,
        IncidentChange, ListIncidentsResponse,
    };

    use super::status_name;
    use crate::output::{clean, kv, text, timestamp, Align, Table};

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
            ("bridge", text(&i.bridge_url)),
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

        if !i.integrations.is_empty() {
            out.push_str("\nINTEGRATIONS\n");
            for g in &i.integrations {
                let reference = if g.reference.is_empty() {
                    "-"
                } else {
                    &g.reference
                };
                let mut line = format!(
                    "{}  {}  {}  sent {}, failed {}{}",
                    g.provider,
                    text(reference),
                    g.state,
                    g.sent,
                    g.failed,
                    if g.busy { ", one in flight" } else { "" }
                );
                if !g.error.is_empty() {
                    line.push_str(&format!("  error: {}", text(&g.error)));
                }
                out.push_str(&line);
                out.push('\n');
            }
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

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::{
        escalation_track, Delivery, EscalationTrack, Incident, IncidentActionResponse,
        IncidentChange, ListIncidentsResponse, TimelineEntry,
    };
    use serde_json::{json, Value};

    use super::status_name;

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
            "bridge_url": i.bridge_url,
            "liaison": i.liaison,
            "snoozed_until_ms": i.snoozed_until_ms,
            "merged_into": i.merged_into,
            "ack_due_ms": i.ack_due_ms,
            "escalations": i.escalations.iter().map(escalation).collect::<Vec<_>>(),
            "integrations": i.integrations.iter().map(|g| json!({
                "provider": g.provider,
                "reference": g.reference,
                "state": g.state,
                "sent": g.sent,
                "failed": g.failed,
                "error": g.error,
                "busy": g.busy,
            })).collect::<Vec<_>>(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use pager_proto::pager::v1::{
        escalation_track, Delivery, EscalationTrack, Incident, IncidentChange,
        ListIncidentsResponse, TimelineEntry,
    };
    use serde_json::json;

    #[test]
    fn incident_list() {
        let cli = parse(&["incident", "list"]);
        let Command::Incident(IncidentCommand::List {
            statuses,
            service,
            limit,
            ..
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert!(statuses.is_empty());
        assert_eq!((service, limit), (None, None));

        let cli = parse(&[
            "incident",
            "list",
            "--status",
            "triggered",
            "--status",
            "acknowledged",
            "--service",
            "payments",
            "--limit",
            "5",
            "--urgency",
            "high",
            "--since",
            "-2h",
            "--page-token",
            "41",
            "--linearizable",
        ]);
        let Command::Incident(IncidentCommand::List {
            statuses,
            service,
            limit,
            urgency,
            since,
            until,
            page_token,
            linearizable,
        }) = cli.command
        else {
            panic!("wrong command");
        };
        assert_eq!(statuses, [StatusArg::Triggered, StatusArg::Acknowledged]);
        assert_eq!(service.as_deref(), Some("payments"));
        assert_eq!(limit, Some(5));
        assert_eq!(urgency.as_deref(), Some("high"));
        assert_eq!(since, Some(When::FromNow(-2 * 3_600_000)));
        assert_eq!(until, None);
        assert_eq!(page_token.as_deref(), Some("41"));
        assert!(linearizable);
        assert_eq!(
            parse_err(&["incident", "list", "--urgency", "medium"]),
            clap::error::ErrorKind::InvalidValue
        );

        assert_eq!(
            parse_err(&["incident", "list", "--status", "open"]),
            clap::error::ErrorKind::InvalidValue
        );
        assert_eq!(
            parse_err(&["incident", "list", "--limit", "lots"]),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn incident_show_ack_resolve() {
        assert!(matches!(
            parse(&["incident", "show", "42"]).command,
            Command::Incident(IncidentCommand::Show { id: 42 })
        ));
        assert_eq!(
            parse_err(&["incident", "show", "forty-two"]),
            clap::error::ErrorKind::ValueValidation
        );

        let cli = parse(&["incident", "ack", "42", "--by", "alice"]);
        let Command::Incident(IncidentCommand::Ack(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.id, a.by.as_deref()), (42, Some("alice")));

        let cli = parse(&["incident", "resolve", "7"]);
        let Command::Incident(IncidentCommand::Resolve(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.id, a.by), (7, None));

        assert_eq!(
            parse_err(&["incident", "ack"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn actor_defaults_to_the_login_then_pagerctl() {
        assert_eq!(actor(Some("alice"), Some("root")), "alice");
        assert_eq!(actor(None, Some("bob")), "bob");
        assert_eq!(actor(Some("  "), Some("bob")), "bob");
        assert_eq!(actor(None, Some("")), "pagerctl");
        assert_eq!(actor(None, None), "pagerctl");
    }

    #[test]
    fn incident_snooze() {
        let cli = parse(&["incident", "snooze", "42", "--until", "+30m"]);
        let Command::Incident(IncidentCommand::Snooze(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.id, a.until, a.actor.by),
            (42, When::FromNow(1_800_000), None)
        );

        let cli = parse(&[
            "incident",
            "snooze",
            "42",
            "--until",
            "2023-11-14T23:13:20+01:00",
            "--by",
            "alice",
        ]);
        let Command::Incident(IncidentCommand::Snooze(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.until, When::At(T0));
        assert_eq!(a.actor.by.as_deref(), Some("alice"));

        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["incident", "snooze", "42"]),
            MissingRequiredArgument
        );
        for bad in ["30m", "+30", "tomorrow", "2023-11-14T22:13:20"] {
            assert_eq!(
                parse_err(&["incident", "snooze", "42", "--until", bad]),
                ValueValidation,
                "{bad}"
            );
        }
    }

    #[test]
    fn incident_reassign() {
        let cli = parse(&["incident", "reassign", "7", "--user", "carol"]);
        let Command::Incident(IncidentCommand::Reassign(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.id, a.user.as_deref(), a.policy),
            (7, Some("carol"), None)
        );

        let cli = parse(&["incident", "reassign", "7", "--policy", "db", "--by", "bob"]);
        let Command::Incident(IncidentCommand::Reassign(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.user, a.policy.as_deref()), (None, Some("db")));
        assert_eq!(a.actor.by.as_deref(), Some("bob"));

        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["incident", "reassign", "7"]),
            MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&["incident", "reassign", "7", "--user", "a", "--policy", "b"]),
            ArgumentConflict
        );
    }

    #[test]
    fn incident_escalate() {
        let cli = parse(&["incident", "escalate", "7", "--level", "2"]);
        let Command::Incident(IncidentCommand::Escalate(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.id, a.level), (7, 2));

        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["incident", "escalate", "7"]),
            MissingRequiredArgument
        );
        // Levels are 1-based.
        assert_eq!(
            parse_err(&["incident", "escalate", "7", "--level", "0"]),
            ValueValidation
        );
    }

    #[test]
    fn incident_add_responders() {
        let cli = parse(&[
            "incident",
            "add-responders",
            "7",
            "--user",
            "dave",
            "--team",
            "dbteam",
            "--user",
            "erin",
            "--policy",
            "secondary",
        ]);
        let Command::Incident(IncidentCommand::AddResponders(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.id, 7);
        assert_eq!(a.users, ["dave", "erin"]);
        assert_eq!(a.teams, ["dbteam"]);
        assert_eq!(a.policies, ["secondary"]);

        let cli = parse(&["incident", "add-responders", "7", "--team", "dbteam"]);
        let Command::Incident(IncidentCommand::AddResponders(a)) = cli.command else {
            panic!("wrong command");
        };
        assert!(a.users.is_empty() && a.policies.is_empty());

        assert_eq!(
            parse_err(&["incident", "add-responders", "7"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn incident_merge() {
        let cli = parse(&["incident", "merge", "8", "--into", "7"]);
        let Command::Incident(IncidentCommand::Merge(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.id, a.into), (8, 7));

        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["incident", "merge", "8"]),
            MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&["incident", "merge", "8", "--into", "seven"]),
            ValueValidation
        );
    }

    #[test]
    fn incident_set_role() {
        let cli = parse(&["incident", "set-role", "7", "--commander", "alice"]);
        let Command::Incident(IncidentCommand::SetRole(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.id, a.commander.as_deref(), a.liaison),
            (7, Some("alice"), None)
        );

        // An empty name clears the role.
        let cli = parse(&["incident", "set-role", "7", "--liaison", ""]);
        let Command::Incident(IncidentCommand::SetRole(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.commander, a.liaison.as_deref()), (None, Some("")));

        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["incident", "set-role", "7"]),
            MissingRequiredArgument
        );
        assert_eq!(
            parse_err(&[
                "incident",
                "set-role",
                "7",
                "--commander",
                "a",
                "--liaison",
                "b"
            ]),
            ArgumentConflict
        );
    }

    #[test]
    fn incident_note() {
        let cli = parse(&["incident", "note", "7", "replica lag is 0", "--by", "carol"]);
        let Command::Incident(IncidentCommand::Note(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!((a.id, a.text.as_str()), (7, "replica lag is 0"));
        assert_eq!(a.actor.by.as_deref(), Some("carol"));
        assert_eq!(
            parse_err(&["incident", "note", "7"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    fn sample_incident() -> Incident {
        Incident {
            revision: 57,
            sla_breached: false,
            integrations: Vec::new(),
            bridge_url: String::new(),
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
bridge         -

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
                "bridge_url": "",
                "liaison": "",
                "snoozed_until_ms": 0,
                "merged_into": 0,
                "ack_due_ms": T0 + 300_000,
                "escalations": [
                    {"policy": "payments", "level": 1, "repeat": 0, "done": false},
                    {"user": "carol", "level": 0, "repeat": 0, "done": true},
                ],
                "integrations": [],
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
