//! `pagerctl`: the command-line client for pagerd. It speaks only the public
//! gRPC API (`pager_proto::pager::v1`).
//!
//! - `cli.rs`: the command line (clap derive).
//! - `client.rs`: the endpoint list and failover to the next node.
//! - `output.rs`: human tables and JSON.
//! - `when.rs`: times on the command line (RFC 3339 or `+30m`).
//!
//! Exit codes: 0 ok, 1 error (`error: <gRPC code>: <message>` on stderr; also
//! `diff` of a document apply would refuse), 2 usage (clap).

mod cli;
mod client;
mod cmd;
mod output;
mod when;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pager_proto::pager::v1::{
    incidents_client::IncidentsClient, reassign_request, responder, AddNoteRequest,
    AddRespondersRequest, EscalateRequest, GetIncidentRequest, IncidentActionRequest,
    IncidentActionResponse, IncidentRole, IncidentStatus, ListIncidentsRequest, MergeRequest,
    ReadConsistency, ReassignRequest, Responder, SetRoleRequest, SnoozeRequest, WatchRequest,
};

use cli::{Cli, Command, IncidentCommand};
use client::Client;
use output::{human, json, Printer};

fn main() -> ExitCode {
    // Usage errors exit 2 here, inside clap; --help and --version exit 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A failed call prints as `<gRPC code>: <message>` (client::CallError).
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completions { shell } = cli.command {
        return cmd::completions::run(shell);
    }
    let client = Client::new(
        &cli.global.endpoint,
        Duration::from_secs(cli.global.timeout),
    )?
    .with_token(cli.global.token.as_deref())?
    .with_ca_cert(cli.global.ca_cert.as_deref())?;
    let out = Printer::new(cli.global.output);
    match cli.command {
        Command::Cluster(cmd) => cmd::cluster::run(&client, &out, cmd).await,
        Command::Token(cmd) => cmd::token::run(&client, &out, cmd).await,
        Command::Completions { .. } => Ok(()),
        Command::Apply(args) => cmd::apply::run(&client, &out, args).await,
        Command::Config(cmd) => cmd::config::run(&client, &out, cmd).await,
        Command::Event(cmd) => cmd::event::run(&client, &out, cmd).await,
        Command::Incident(cmd) => incident(&client, &out, cmd).await,
        Command::Oncall(args) => cmd::oncall::run(&client, &out, args).await,
        Command::Schedule(cmd) => cmd::schedule::run(&client, &out, cmd).await,
        Command::Simulate(args) => cmd::simulate::run(&client, &out, args).await,
        Command::Diff(args) => cmd::diff::run(&client, &out, args).await,
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

async fn incident(client: &Client, out: &Printer, cmd: IncidentCommand) -> anyhow::Result<()> {
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

fn emit_action(out: &Printer, r: &IncidentActionResponse) -> anyhow::Result<()> {
    out.emit(|| human::incident_action(r), || json::incident_action(r))
}
