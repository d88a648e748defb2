//! `pagerctl diff -f FILE`: what applying an on-call document would change,
//! and what is wrong with it (exit 1 when apply would refuse it).

use clap::Args;
use pager_proto::pager::v1::{config_client::ConfigClient, ConfigChangeKind, DiffConfigRequest};

use super::common::read_document;
use crate::client::Client;
use crate::output::Printer;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The document: `.json` is read as JSON, anything else as TOML; `-`
    /// reads TOML from stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: std::path::PathBuf,
}

pub async fn run(client: &Client, out: &Printer, args: DiffArgs) -> anyhow::Result<()> {
    let (document, format) = read_document(&args.file)?;
    let req = DiffConfigRequest {
        document,
        format: format.to_owned(),
    };
    let r = client
        .call(&req, |ch, req| async move {
            ConfigClient::new(ch).diff(req).await
        })
        .await?;
    out.emit(|| human::diff(&r), || json::diff(&r))?;
    if !r.problems.is_empty() {
        let name = if args.file.as_os_str() == "-" {
            "stdin".to_owned()
        } else {
            args.file.display().to_string()
        };
        anyhow::bail!(
            "{} problem(s) in {name}: apply would refuse it",
            r.problems.len()
        );
    }
    Ok(())
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::{ConfigChangeKind, DiffConfigResponse};

    use crate::cmd::common::human::problems;
    use crate::output::clean;

    /// After `diff`: the changes, then why apply would refuse the document
    /// and what it would warn about.
    pub fn diff(r: &DiffConfigResponse) -> String {
        let mut out = if r.changes.is_empty() {
            format!("no changes against live version {}\n", r.version)
        } else {
            format!("changes against live version {}:\n", r.version)
        };
        for c in &r.changes {
            let sign = match ConfigChangeKind::try_from(c.kind) {
                Ok(ConfigChangeKind::Added) => "+",
                Ok(ConfigChangeKind::Removed) => "-",
                Ok(ConfigChangeKind::Changed) => "~",
                _ => "?",
            };
            out.push_str(&format!("  {sign} {}\n", clean(&c.path)));
        }
        if !r.problems.is_empty() {
            out.push_str("problems (apply would refuse the document):\n");
            out.push_str(&problems(&r.problems));
        }
        if !r.warnings.is_empty() {
            out.push_str("warnings:\n");
            out.push_str(&problems(&r.warnings));
        }
        out
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::{ConfigChange, DiffConfigResponse};
    use serde_json::{json, Value};

    use super::change_kind_name;
    use crate::cmd::common::json::problem;

    pub fn change(c: &ConfigChange) -> Value {
        json!({ "path": c.path, "kind": change_kind_name(c.kind) })
    }

    pub fn diff(r: &DiffConfigResponse) -> Value {
        json!({
            "version": r.version,
            "changes": r.changes.iter().map(change).collect::<Vec<_>>(),
            "problems": r.problems.iter().map(problem).collect::<Vec<_>>(),
            "warnings": r.warnings.iter().map(problem).collect::<Vec<_>>(),
        })
    }
}

/// `added`, `removed`, `changed`; `unknown(7)` for a value newer than this client.
fn change_kind_name(kind: i32) -> String {
    match ConfigChangeKind::try_from(kind) {
        Ok(k) => k
            .as_str_name()
            .trim_start_matches("CONFIG_CHANGE_KIND_")
            .to_ascii_lowercase(),
        Err(_) => format!("unknown({kind})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use pager_proto::pager::v1::{
        ConfigChange, ConfigChangeKind, ConfigProblem, DiffConfigResponse,
    };
    use serde_json::json;

    #[test]
    fn diff() {
        let Command::Diff(a) = parse(&["diff", "-f", "oncall.toml"]).command else {
            panic!("wrong command");
        };
        assert_eq!(a.file, std::path::PathBuf::from("oncall.toml"));
        let Command::Diff(a) = parse(&["diff", "--file", "-"]).command else {
            panic!("wrong command");
        };
        assert_eq!(a.file, std::path::PathBuf::from("-"));
        assert_eq!(
            parse_err(&["diff"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    fn problem(path: &str, message: &str) -> ConfigProblem {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }

    #[test]
    fn diff_human_and_json() {
        let change = |path: &str, kind: ConfigChangeKind| ConfigChange {
            path: path.into(),
            kind: kind as i32,
        };
        let r = DiffConfigResponse {
            version: 3,
            changes: vec![
                change("users.erin", ConfigChangeKind::Added),
                change("escalation_policies.secondary", ConfigChangeKind::Removed),
                change("tiers.tier1", ConfigChangeKind::Changed),
            ],
            problems: vec![problem("teams.dbteam.members[1]", "unknown user \"zed\"")],
            warnings: vec![problem(
                "schedules.daytime",
                "nobody on call for 10 stretch(es)",
            )],
        };
        assert_eq!(
            human::diff(&r),
            "\
changes against live version 3:
  + users.erin
  - escalation_policies.secondary
  ~ tiers.tier1
problems (apply would refuse the document):
  teams.dbteam.members[1]: unknown user \"zed\"
warnings:
  schedules.daytime: nobody on call for 10 stretch(es)
"
        );
        assert_eq!(
            json::diff(&r),
            json!({
                "version": 3,
                "changes": [
                    {"path": "users.erin", "kind": "added"},
                    {"path": "escalation_policies.secondary", "kind": "removed"},
                    {"path": "tiers.tier1", "kind": "changed"},
                ],
                "problems": [{"path": "teams.dbteam.members[1]", "message": "unknown user \"zed\""}],
                "warnings": [{"path": "schedules.daytime", "message": "nobody on call for 10 stretch(es)"}],
            })
        );
        assert_eq!(
            human::diff(&DiffConfigResponse {
                version: 4,
                ..Default::default()
            }),
            "no changes against live version 4\n"
        );
        assert_eq!(change_kind_name(9), "unknown(9)");
    }
}
