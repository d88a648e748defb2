//! What several commands share: the severity `event trigger` and `simulate`
//! take, reading the document `apply` and `diff` are given, and printing the
//! config problems both report.

use anyhow::Context;
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    /// The wire string (`SendEventRequest.severity`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// The document named by `-f` and its wire format: `.json` is JSON, anything
/// else (and `-`, stdin) TOML.
pub fn read_document(file: &std::path::Path) -> anyhow::Result<(String, &'static str)> {
    let is_stdin = file.as_os_str() == "-";
    let document = if is_stdin {
        std::io::read_to_string(std::io::stdin()).context("read the document from stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
    };
    let is_json = !is_stdin
        && file
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
    Ok((document, if is_json { "json" } else { "toml" }))
}

pub mod human {
    //! Human text shared by `apply` and `diff`.

    use pager_proto::pager::v1::ConfigProblem;

    use crate::output::clean;

    /// `  path: message` lines.
    pub fn problems(ps: &[ConfigProblem]) -> String {
        ps.iter()
            .map(|p| format!("  {}: {}\n", clean(&p.path), clean(&p.message)))
            .collect()
    }
}

pub mod json {
    //! JSON shared by `apply` and `diff`.

    use pager_proto::pager::v1::ConfigProblem;
    use serde_json::{json, Value};

    pub fn problem(p: &ConfigProblem) -> Value {
        json!({ "path": p.path, "message": p.message })
    }
}
