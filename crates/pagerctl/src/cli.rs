//! Command-line shape (clap derive). Parsing only: nothing here talks to the
//! network. Values the server would reject anyway (a node spec without a port,
//! a trigger without a summary) are caught here so they fail as usage errors
//! (exit 2) before any call is made.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use pager_proto::pager::v1::IncidentStatus;

use crate::client::{parse_endpoints, EndpointList};
use crate::cmd::apply::ApplyArgs;
use crate::cmd::cluster::ClusterCommand;
use crate::cmd::config::ConfigCommand;
use crate::cmd::diff::DiffArgs;
use crate::cmd::event::EventCommand;
use crate::cmd::oncall::OncallArgs;
use crate::cmd::schedule::ScheduleCommand;
use crate::cmd::simulate::SimulateArgs;
use crate::cmd::token::TokenCommand;
use crate::when::{parse_when, When};

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

    /// Output format: aligned text, or the response message as JSON.
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
    Human,
    Json,
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
    /// The pages a trigger on a service would send if nobody answered.
    /// Nothing is sent.
    Simulate(SimulateArgs),
    /// What applying an on-call document would change, and what is wrong with
    /// it (exit 1 when it would be refused). Nothing is applied.
    Diff(DiffArgs),
}

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
}
