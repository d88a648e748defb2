//! `pagerctl`: the command-line client for pagerd. It speaks only the public
//! gRPC API (`pager_proto::pager::v1`).
//!
//! - `cli.rs`: the top of the command line (clap derive): global options and
//!   the list of commands.
//! - `cmd/`: one module per command: its arguments, its calls, its output.
//! - `client.rs`: the endpoint list and failover to the next node.
//! - `output.rs`: printing to stdout, and the table and text helpers every
//!   command's output uses.
//! - `when.rs`: times on the command line (RFC 3339 or `+30m`).
//!
//! Exit codes: 0 ok, 1 error (`error: <gRPC code>: <message>` on stderr; also
//! `diff` of a document apply would refuse), 2 usage (clap).

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod cli;
mod client;
mod cmd;
mod output;
mod when;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use cli::{Cli, Command};
use client::Client;
use output::Printer;

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
        Command::User(cmd) => cmd::user::run(&client, &out, cmd).await,
        Command::Completions { .. } => Ok(()),
        Command::Apply(args) => cmd::apply::run(&client, &out, args).await,
        Command::Config(cmd) => cmd::config::run(&client, &out, cmd).await,
        Command::Event(cmd) => cmd::event::run(&client, &out, cmd).await,
        Command::Incident(cmd) => cmd::incident::run(&client, &out, cmd).await,
        Command::Oncall(args) => cmd::oncall::run(&client, &out, args).await,
        Command::Schedule(cmd) => cmd::schedule::run(&client, &out, cmd).await,
        Command::Rca(cmd) => cmd::rca::run(&client, &out, cmd).await,
        Command::Board(args) => cmd::rca::board(&client, &out, args).await,
        Command::Calendar(cmd) => cmd::calendar::run(&client, &out, cmd).await,
        Command::Report(args) => cmd::report::run(&client, &out, args).await,
        Command::Handoff(cmd) => cmd::handoff::run(&client, &out, cmd).await,
        Command::Webhook(cmd) => cmd::webhook::run(&client, &out, cmd).await,
        Command::Simulate(args) => cmd::simulate::run(&client, &out, args).await,
        Command::Diff(args) => cmd::diff::run(&client, &out, args).await,
    }
}
