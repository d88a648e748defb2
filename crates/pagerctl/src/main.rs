//! `pagerctl`: the command-line client for pagerd. It speaks only the public
//! gRPC API (`pager_proto::pager::v1`).
//!
//! - `cli.rs`: the command line (clap derive).
//! - `client.rs`: the endpoint list and failover to the next node.
//! - `output.rs`: human tables and JSON.
//!
//! Exit codes: 0 ok, 1 error (`error: <gRPC code>: <message>` on stderr),
//! 2 usage (clap).

mod cli;
mod client;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pager_proto::pager::v1::{
    cluster_client::ClusterClient, config_client::ConfigClient, events_client::EventsClient,
    incidents_client::IncidentsClient, AddNodeRequest, ApplyConfigRequest, ClusterStatusRequest,
    EventAction, GetConfigRequest, GetIncidentRequest, IncidentActionRequest, IncidentStatus,
    InitClusterRequest, ListIncidentsRequest, NodeInfo, RemoveNodeRequest, SendEventRequest,
};

use cli::{ApplyArgs, Cli, ClusterCommand, Command, ConfigCommand, EventCommand, IncidentCommand};
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
    let client = Client::new(
        &cli.global.endpoint,
        Duration::from_secs(cli.global.timeout),
    )?;
    let out = Printer::new(cli.global.output);
    match cli.command {
        Command::Cluster(cmd) => cluster(&client, &out, cmd).await,
        Command::Apply(args) => apply(&client, &out, args).await,
        Command::Config(ConfigCommand::Get) => {
            let r = client
                .call(&GetConfigRequest {}, |ch, req| async move {
                    ConfigClient::new(ch).get(req).await
                })
                .await?;
            out.emit(|| human::config(&r), || json::config(&r))
        }
        Command::Event(cmd) => event(&client, &out, cmd).await,
        Command::Incident(cmd) => incident(&client, &out, cmd).await,
    }
}

async fn cluster(client: &Client, out: &Printer, cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Init { nodes } => {
            let req = InitClusterRequest { nodes };
            let ((), url) = client
                .call_at(&req, |ch, req| async move {
                    ClusterClient::new(ch)
                        .init(req)
                        .await
                        .map(|r| r.map(|_| ()))
                })
                .await?;
            out.emit(
                || {
                    if req.nodes.is_empty() {
                        format!("cluster initialised: a single node, the one at {url}\n")
                    } else {
                        let ids: Vec<String> = req.nodes.iter().map(|n| n.id.to_string()).collect();
                        format!(
                            "cluster initialised: {} voters ({})\n",
                            ids.len(),
                            ids.join(", ")
                        )
                    }
                },
                json::empty,
            )
        }
        ClusterCommand::Status => {
            let r = client
                .call(&ClusterStatusRequest {}, |ch, req| async move {
                    ClusterClient::new(ch).status(req).await
                })
                .await?;
            out.emit(|| human::cluster_status(&r), || json::cluster_status(&r))
        }
        ClusterCommand::AddNode(a) => {
            let req = AddNodeRequest {
                node: Some(NodeInfo {
                    id: a.id,
                    peer_addr: a.peer,
                    client_addr: a.client,
                    region: a.region,
                }),
                learner_only: a.learner_only,
            };
            let r = client
                .call(&req, |ch, req| async move {
                    ClusterClient::new(ch).add_node(req).await
                })
                .await?;
            let kind = if a.learner_only { "learner" } else { "voter" };
            out.emit(
                || human::membership(&format!("node {} added as a {kind}", a.id), &r),
                || json::membership(&r),
            )
        }
        ClusterCommand::RemoveNode { id } => {
            let r = client
                .call(&RemoveNodeRequest { id }, |ch, req| async move {
                    ClusterClient::new(ch).remove_node(req).await
                })
                .await?;
            out.emit(
                || human::membership(&format!("node {id} removed"), &r),
                || json::membership(&r),
            )
        }
    }
}

async fn apply(client: &Client, out: &Printer, args: ApplyArgs) -> anyhow::Result<()> {
    let is_stdin = args.file.as_os_str() == "-";
    let document = if is_stdin {
        std::io::read_to_string(std::io::stdin()).context("read the document from stdin")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("read {}", args.file.display()))?
    };
    let is_json = !is_stdin
        && args
            .file
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    let req = ApplyConfigRequest {
        document,
        format: if is_json { "json" } else { "toml" }.to_owned(),
        dry_run: args.dry_run,
    };
    let r = client
        .call(&req, |ch, req| async move {
            ConfigClient::new(ch).apply(req).await
        })
        .await?;
    out.emit(|| human::apply(&r, args.dry_run), || json::apply(&r))
}

async fn event(client: &Client, out: &Printer, cmd: EventCommand) -> anyhow::Result<()> {
    let req = match cmd {
        EventCommand::Trigger(t) => SendEventRequest {
            routing_key: t.routing_key,
            action: EventAction::Trigger as i32,
            dedup_key: t.dedup_key.unwrap_or_default(),
            summary: t.summary,
            source: t.source.unwrap_or_default(),
            severity: t.severity.as_str().to_owned(),
            component: t.component.unwrap_or_default(),
            group: t.group.unwrap_or_default(),
            class: t.class.unwrap_or_default(),
            custom_details: t.details.into_iter().collect(),
        },
        EventCommand::Acknowledge(k) => SendEventRequest {
            routing_key: k.routing_key,
            action: EventAction::Acknowledge as i32,
            dedup_key: k.dedup_key,
            ..Default::default()
        },
        EventCommand::Resolve(k) => SendEventRequest {
            routing_key: k.routing_key,
            action: EventAction::Resolve as i32,
            dedup_key: k.dedup_key,
            ..Default::default()
        },
    };
    let r = client
        .call(&req, |ch, req| async move {
            EventsClient::new(ch).send(req).await
        })
        .await?;
    out.emit(|| human::send_event(&r), || json::send_event(&r))
}

async fn incident(client: &Client, out: &Printer, cmd: IncidentCommand) -> anyhow::Result<()> {
    match cmd {
        IncidentCommand::List {
            statuses,
            service,
            limit,
        } => {
            let req = ListIncidentsRequest {
                statuses: statuses
                    .into_iter()
                    .map(|s| IncidentStatus::from(s) as i32)
                    .collect(),
                service: service.unwrap_or_default(),
                limit: limit.unwrap_or(0),
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
                .call(&GetIncidentRequest { id }, |ch, req| async move {
                    IncidentsClient::new(ch).get(req).await
                })
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
    }
}
