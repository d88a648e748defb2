//! Command-line shape (clap derive): the top-level [`Cli`], the global
//! options and the [`Command`] list; each command's own arguments are in its
//! `cmd::` module. Parsing only: nothing here or in those argument types talks
//! to the network. Values the server would reject anyway (a node spec without
//! a port, a trigger without a summary) are caught while parsing so they fail
//! as usage errors (exit 2) before any call is made.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::{parse_endpoints, EndpointList};
use crate::cmd::apply::ApplyArgs;
use crate::cmd::calendar::CalendarCommand;
use crate::cmd::cluster::ClusterCommand;
use crate::cmd::config::ConfigCommand;
use crate::cmd::diff::DiffArgs;
use crate::cmd::event::EventCommand;
use crate::cmd::handoff::HandoffCommand;
use crate::cmd::incident::IncidentCommand;
use crate::cmd::oncall::OncallArgs;
use crate::cmd::rca::{BoardArgs, RcaCommand};
use crate::cmd::report::ReportArgs;
use crate::cmd::schedule::ScheduleCommand;
use crate::cmd::simulate::SimulateArgs;
use crate::cmd::token::TokenCommand;
use crate::cmd::user::UserCommand;
use crate::cmd::webhook::WebhookCommand;

#[derive(Debug, Parser)]
#[command(
    name = "pagerctl",
    version,
    about = "Command-line client for pagerd",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// pagerd client address(es), comma-separated; the next one is tried when
    /// a node is unreachable or answers Unavailable.
    #[arg(
        long,
        global = true,
        env = "PAGERCTL_ENDPOINT",
        default_value = "http://127.0.0.1:8700",
        value_parser = parse_endpoints,
        value_name = "URL[,URL...]"
    )]
    pub endpoint: EndpointList,

    /// API token (when the cluster has `auth.enabled`); prefer the
    /// environment variable, which stays out of shell history.
    #[arg(
        long,
        global = true,
        env = "PAGERCTL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// PEM CA certificate(s) to trust for `https://` endpoints (a private
    /// CA); without it, the public web PKI roots.
    #[arg(long, global = true, env = "PAGERCTL_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,

    /// Output format: aligned text (`human` or `table`), the response as
    /// JSON, or CSV (`report` only).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Seconds to wait for each node (connect, then the call).
    #[arg(
        long,
        global = true,
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..),
        value_name = "SECS"
    )]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned text (also `table`).
    #[value(alias = "table")]
    Human,
    Json,
    /// Comma-separated values: `report` only.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster membership and health.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Validate and apply an on-call document (users, services, policies).
    Apply(ApplyArgs),
    /// Read the live on-call document.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Send an event (PagerDuty Events API v2 semantics).
    #[command(subcommand)]
    Event(EventCommand),
    /// API tokens: create (the secret is printed once), revoke, list. Admin only.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Who can sign in to the web console: set-password (read from standard
    /// input), clear-password, list. Admin only.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a shell completion script: `pagerctl completions bash > /etc/bash_completion.d/pagerctl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Read incidents and act on them: acknowledge, resolve, snooze,
    /// reassign, escalate, add responders, merge, roles, notes.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Who is on call, until when, and who takes over: every schedule, or
    /// one schedule, service or user.
    Oncall(OncallArgs),
    /// On-call schedules.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Root cause analyses of high-urgency incidents: list, show, edit,
    /// complete, mark a duplicate.
    #[command(subcommand)]
    Rca(RcaCommand),
    /// The page board: every page's card by stage, per team; `board move`.
    Board(BoardArgs),
    /// The page review report: pages by team, service and alert, off-hours
    /// and night pages, MTTA/MTTR, escalations, SLA breaches, open RCAs.
    Report(ReportArgs),
    /// Shift handoffs: leave a note for a schedule's next on-call.
    #[command(subcommand)]
    Handoff(HandoffCommand),
    /// Outbound webhooks: the events sent, the dead-letter list, replay.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Calendar feeds of on-call shifts (iCalendar) to subscribe to.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// The pages a trigger on a service would send if nobody answered.
    /// Nothing is sent.
    Simulate(SimulateArgs),
    /// What applying an on-call document would change, and what is wrong with
    /// it (exit 1 when it would be refused). Nothing is applied.
    Diff(DiffArgs),
}

/// Parsing helpers for the tests of the command line, here and in the
/// command modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::Cli;
    use clap::Parser;

    pub const T0: u64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    pub fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["pagerctl"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?} should parse: {e}"),
        }
    }

    pub fn parse_err(args: &[&str]) -> clap::error::ErrorKind {
        let mut argv = vec!["pagerctl"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(cli) => panic!("{args:?} should not parse, got {cli:?}"),
            Err(e) => e.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = parse(&[
            "cluster",
            "status",
            "--endpoint",
            "http://a:1, b:2",
            "--output",
            "json",
            "--timeout",
            "3",
        ]);
        assert_eq!(cli.global.endpoint.urls(), ["http://a:1", "http://b:2"]);
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.timeout, 3);
        assert!(matches!(
            cli.command,
            Command::Cluster(ClusterCommand::Status)
        ));

        let cli = parse(&["--output", "human", "config", "get"]);
        assert_eq!(cli.global.output, OutputFormat::Human);
        assert!(matches!(cli.command, Command::Config(ConfigCommand::Get)));
    }

    #[test]
    fn https_endpoints_and_a_private_ca() {
        let cli = parse(&[
            "--endpoint",
            "https://a:1,http://b:2",
            "--ca-cert",
            "ca.pem",
            "config",
            "get",
        ]);
        assert_eq!(cli.global.endpoint.urls(), ["https://a:1", "http://b:2"]);
        assert_eq!(
            cli.global.ca_cert.as_deref(),
            Some(std::path::Path::new("ca.pem"))
        );
    }

    #[test]
    fn bad_global_flags() {
        use clap::error::ErrorKind::*;
        assert_eq!(
            parse_err(&["--output", "yaml", "config", "get"]),
            InvalidValue
        );
        assert_eq!(
            parse_err(&["--timeout", "0", "config", "get"]),
            ValueValidation
        );
        assert_eq!(
            parse_err(&["--endpoint", "http://a:1,,", "config", "get"]),
            ValueValidation
        );
        assert_eq!(
            parse_err(&["--endpoint", "ftp://a:1", "config", "get"]),
            ValueValidation
        );
        assert_eq!(parse_err(&[]), DisplayHelpOnMissingArgumentOrSubcommand);
        assert_eq!(parse_err(&["frobnicate"]), InvalidSubcommand);
    }
}
