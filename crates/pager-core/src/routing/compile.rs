//! Checking the rules and lowering them to the compiled form, in one pass:
//! [`validate`] is the pass with the output thrown away, [`Router::new`] the
//! pass with it kept, so the two cannot disagree.
//!
//! [`Router::new`]: super::Router::new

use super::router::{CompiledRule, Test};
use super::rule::{Condition, Field, Op, RoutingRule, DETAILS_PREFIX, FIELDS};
use crate::event::Severity;
use crate::oncall::{Problem, MAX_NAME_LEN};
use regex::RegexBuilder;
use std::collections::BTreeMap;

/// Longest regex pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Longest non-regex `value`, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// Ceiling on a compiled regex (the `regex` crate's default is 10 MiB). Counted
/// per regex; a pattern over it is refused at validation, not at match time.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Ceiling on each regex's lazy-DFA cache; past it the matcher falls back to
/// slower engines that are still linear in the input.
pub const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;
/// Bounds on the work one event costs the state machine.
pub const MAX_RULES: usize = 1000;
/// Most conditions in one rule.
pub const MAX_CONDITIONS: usize = 32;
/// Longest `runbook_url`, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Every problem in `rules`, each with its path (`routing_rules[2].conditions[0].value`),
/// in document order; empty means the rules may be applied. `services` says
/// whether a service name exists in the on-call document.
pub fn validate(rules: &[RoutingRule], services: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    compile(rules, Some(services)).1
}

/// Checks everything; checks service names only when `services` is given.
pub(super) fn compile(
    rules: &[RoutingRule],
    services: Option<&dyn Fn(&str) -> bool>,
) -> (Vec<CompiledRule>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut bad = |path: String, message: String| problems.push(Problem { path, message });
    let mut out = Vec::with_capacity(rules.len());

    if rules.len() > MAX_RULES {
        bad(
            "routing_rules".into(),
            format!("at most {MAX_RULES} rules, found {}", rules.len()),
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, rule) in rules.iter().enumerate() {
        let base = format!("routing_rules[{i}]");
        if rule.name.is_empty() || rule.name.len() > MAX_NAME_LEN {
            bad(
                format!("{base}.name"),
                format!("name must be 1 to {MAX_NAME_LEN} characters"),
            );
        } else if let Some(first) = names.get(rule.name.as_str()) {
            bad(
                format!("{base}.name"),
                format!(
                    "duplicate rule name {:?} (first used by routing_rules[{first}])",
                    rule.name
                ),
            );
        } else {
            names.insert(&rule.name, i);
        }

        if rule.conditions.len() > MAX_CONDITIONS {
            bad(
                format!("{base}.conditions"),
                format!(
                    "at most {MAX_CONDITIONS} conditions, found {}",
                    rule.conditions.len()
                ),
            );
        }
        let mut tests = Vec::with_capacity(rule.conditions.len());
        for (j, cond) in rule.conditions.iter().enumerate() {
            let path = format!("{base}.conditions[{j}]");
            if let Some(test) = compile_condition(&path, cond, &mut bad) {
                tests.push(test);
            }
        }

        if let Some(services) = services {
            for (k, svc) in rule.route_to.iter().enumerate() {
                if !services(svc) {
                    bad(
                        format!("{base}.route_to[{k}]"),
                        format!("unknown service {svc:?}"),
                    );
                }
            }
        }
        if let Some(url) = &rule.runbook_url {
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok || url.len() > MAX_URL_LEN || url.chars().any(char::is_whitespace) {
                bad(
                    format!("{base}.runbook_url"),
                    format!(
                        "must be an http:// or https:// URL of at most {MAX_URL_LEN} bytes, without spaces"
                    ),
                );
            }
        }

        out.push(CompiledRule {
            name: rule.name.clone(),
            tests,
            route_to: rule.route_to.clone(),
            set_severity: rule.set_severity,
            set_urgency: rule.set_urgency,
            suppress: rule.suppress,
            runbook_url: rule.runbook_url.clone(),
            continue_matching: rule.continue_matching,
        });
    }
    (out, problems)
}

/// One condition lowered to a field accessor and a test; `None` after
/// reporting when it cannot be.
fn compile_condition(
    path: &str,
    cond: &Condition,
    bad: &mut impl FnMut(String, String),
) -> Option<(Field, Test)> {
    let field = Field::parse(&cond.field);
    if field.is_none() {
        bad(
            format!("{path}.field"),
            format!(
                "unknown field {:?}: expected one of {}, or {DETAILS_PREFIX}<key>",
                cond.field,
                FIELDS.join(", ")
            ),
        );
    }
    let vpath = format!("{path}.value");
    let test = match (cond.op, cond.value.as_deref()) {
        (Op::Exists, None) => Some(Test::Exists),
        (Op::NotExists, None) => Some(Test::NotExists),
        (op @ (Op::Exists | Op::NotExists), Some(_)) => {
            bad(vpath, format!("op {} takes no value", op.as_str()));
            None
        }
        (op, None) => {
            bad(vpath, format!("op {} requires a value", op.as_str()));
            None
        }
        (op, Some("")) => {
            bad(
                vpath,
                format!(
                    "op {} requires a non-empty value (an empty field is absent: use not_exists)",
                    op.as_str()
                ),
            );
            None
        }
        (Op::Matches, Some(pattern)) => {
            if pattern.len() > MAX_PATTERN_LEN {
                bad(vpath, format!("regex longer than {MAX_PATTERN_LEN} bytes"));
                None
            } else {
                match RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
                    .build()
                {
                    Ok(re) => Some(Test::Matches(re)),
                    Err(e) => {
                        bad(vpath, format!("invalid regex: {}", regex_error(&e)));
                        None
                    }
                }
            }
        }
        (op, Some(value)) => {
            if value.len() > MAX_VALUE_LEN {
                bad(vpath, format!("value longer than {MAX_VALUE_LEN} bytes"));
                None
            } else if field == Some(Field::Severity)
                && matches!(op, Op::Equals | Op::NotEquals)
                && Severity::parse(value).is_none()
            {
                bad(
                    vpath,
                    format!(
                        "unknown severity {value:?}: expected critical, error, warning or info"
                    ),
                );
                None
            } else {
                let value = value.to_string();
                Some(match op {
                    Op::NotEquals => Test::NotEquals(value),
                    Op::Contains => Test::Contains(value),
                    // Equals: the other ops were handled above.
                    _ => Test::Equals(value),
                })
            }
        }
    };
    Some((field?, test?))
}

/// The regex crate's syntax errors span several lines (the pattern, a caret,
/// `error: ...`); a problem is one line, so keep the `error:` line.
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regex exceeds the size limit of {limit} bytes")
        }
        other => {
            let text = other.to_string();
            text.lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .map(str::to_string)
                .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
        }
    }
}
