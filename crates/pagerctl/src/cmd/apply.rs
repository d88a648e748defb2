//! `pagerctl apply -f FILE`: validate an on-call document and apply it
//! (`--dry-run`: validate only; `--strict-gaps`: refuse a document that
//! leaves schedules without cover).

use clap::Args;
use pager_proto::pager::v1::{config_client::ConfigClient, ApplyConfigRequest};

use super::common::read_document;
use crate::client::Client;
use crate::output::Printer;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The document: `.json` is sent as JSON, anything else as TOML; `-` reads
    /// TOML from stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Validate only; apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse (exit 1, nothing applied) when a schedule leaves nobody on
    /// call somewhere in the next 14 days; otherwise those are warnings.
    #[arg(long)]
    pub strict_gaps: bool,
}

pub async fn run(client: &Client, out: &Printer, args: ApplyArgs) -> anyhow::Result<()> {
    let (document, format) = read_document(&args.file)?;
    if args.strict_gaps && !args.dry_run {
        // Validate first: gaps are warnings to the server, errors here.
        let check = ApplyConfigRequest {
            document: document.clone(),
            format: format.to_owned(),
            dry_run: true,
        };
        let r = client
            .call(&check, |ch, req| async move {
                ConfigClient::new(ch).apply(req).await
            })
            .await?;
        if !r.warnings.is_empty() {
            out.emit(|| human::apply(&r, true), || json::apply(&r))?;
            anyhow::bail!(
                "--strict-gaps: the document leaves schedules without cover; nothing applied"
            );
        }
    }
    let req = ApplyConfigRequest {
        document,
        format: format.to_owned(),
        dry_run: args.dry_run,
    };
    let r = client
        .call(&req, |ch, req| async move {
            ConfigClient::new(ch).apply(req).await
        })
        .await?;
    out.emit(|| human::apply(&r, args.dry_run), || json::apply(&r))
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::ApplyConfigResponse;

    use crate::cmd::common::human::problems;
    use crate::output::kv;

    pub fn apply(r: &ApplyConfigResponse, dry_run: bool) -> String {
        let (result, version) = if dry_run {
            ("valid (dry run: nothing applied)", "live version")
        } else {
            ("applied", "version")
        };
        let mut out = kv(&[
            ("result", result.to_owned()),
            (version, r.version.to_string()),
            ("commit", r.commit_index.to_string()),
            ("users", r.users.to_string()),
            ("services", r.services.to_string()),
            ("escalation policies", r.escalation_policies.to_string()),
        ]);
        if !r.warnings.is_empty() {
            out.push_str("\nwarnings:\n");
            out.push_str(&problems(&r.warnings));
        }
        out
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::ApplyConfigResponse;
    use serde_json::{json, Value};

    use crate::cmd::common::json::problem;

    pub fn apply(r: &ApplyConfigResponse) -> Value {
        json!({
            "version": r.version,
            "commit_index": r.commit_index,
            "users": r.users,
            "services": r.services,
            "escalation_policies": r.escalation_policies,
            "warnings": r.warnings.iter().map(problem).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use crate::cmd::config::ConfigCommand;
    use pager_proto::pager::v1::{ApplyConfigResponse, ConfigProblem};
    use serde_json::json;

    #[test]
    fn apply_and_config_get() {
        let cli = parse(&["apply", "-f", "oncall.toml"]);
        let Command::Apply(a) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.file, std::path::PathBuf::from("oncall.toml"));
        assert!(!a.dry_run);

        let cli = parse(&["apply", "--file", "oncall.json", "--dry-run"]);
        let Command::Apply(a) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(a.file, std::path::PathBuf::from("oncall.json"));
        assert!(a.dry_run);

        assert_eq!(
            parse_err(&["apply"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(matches!(
            parse(&["config", "get"]).command,
            Command::Config(ConfigCommand::Get)
        ));
    }

    fn problem(path: &str, message: &str) -> ConfigProblem {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }

    #[test]
    fn apply_human() {
        let r = ApplyConfigResponse {
            version: 8,
            commit_index: 120,
            users: 3,
            services: 2,
            escalation_policies: 1,
            warnings: vec![],
        };
        assert_eq!(
            human::apply(&r, false),
            "\
result               applied
version              8
commit               120
users                3
services             2
escalation policies  1
"
        );
        assert!(human::apply(&r, true).starts_with("result               valid (dry run"));
    }

    #[test]
    fn apply_warnings() {
        let r = ApplyConfigResponse {
            version: 9,
            commit_index: 130,
            users: 3,
            services: 2,
            escalation_policies: 1,
            warnings: vec![problem("schedules.daytime", "nobody on call")],
        };
        assert!(
            human::apply(&r, false).ends_with(
                "escalation policies  1\n\nwarnings:\n  schedules.daytime: nobody on call\n"
            ),
            "{}",
            human::apply(&r, false)
        );
        assert_eq!(
            json::apply(&r)["warnings"],
            json!([{"path": "schedules.daytime", "message": "nobody on call"}])
        );
    }
}
