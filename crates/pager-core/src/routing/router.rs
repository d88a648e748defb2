//! The compiled rules and their evaluation.

use super::compile::compile;
use super::rule::{Field, RoutingRule};
use crate::event::{Event, Severity};
use crate::oncall::{Problem, Urgency};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The rules compiled for evaluation: fields parsed, regexes built once.
///
/// Derived from a `&[RoutingRule]` and never serialized: keep the rules in the
/// replicated state and rebuild the router from them when they change and when
/// a snapshot is installed. No `PartialEq`: compare the rules instead.
#[derive(Debug, Clone, Default)]
pub struct Router {
    rules: Vec<CompiledRule>,
}

#[derive(Debug, Clone)]
pub(super) struct CompiledRule {
    pub(super) name: String,
    pub(super) tests: Vec<(Field, Test)>,
    pub(super) route_to: Vec<String>,
    pub(super) set_severity: Option<Severity>,
    pub(super) set_urgency: Option<Urgency>,
    pub(super) suppress: bool,
    pub(super) runbook_url: Option<String>,
    pub(super) continue_matching: bool,
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    Equals(String),
    NotEquals(String),
    Contains(String),
    /// Cloning shares the compiled program (the `regex` crate keeps it in an `Arc`).
    Matches(Regex),
    Exists,
    NotExists,
}

/// What the rules decided for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Services to page, in the order the matching rules named them, each once;
    /// `[default_service]` when no matching rule routed anywhere. Filled in
    /// even when `suppressed`, so the event is recorded against its services.
    pub services: Vec<String>,
    /// Overrides the event's severity (the last matching rule that set it wins).
    pub severity: Option<Severity>,
    /// Overrides the service's urgency (the last matching rule that set it wins).
    pub urgency: Option<Urgency>,
    /// Record the event, open no page (any matching rule that suppressed).
    pub suppressed: bool,
    /// Overrides the service's runbook (the last matching rule that set it wins).
    pub runbook_url: Option<String>,
    /// Names of the rules that matched and applied, in order, for the incident timeline.
    pub matched: Vec<String>,
}

impl Router {
    /// Compiles `rules`, or lists every problem in them. Checks everything
    /// [`validate`](super::validate) does except that `route_to` names exist,
    /// which needs the on-call document.
    pub fn new(rules: &[RoutingRule]) -> Result<Router, Vec<Problem>> {
        let (rules, problems) = compile(rules, None);
        if problems.is_empty() {
            Ok(Router { rules })
        } else {
            Err(problems)
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Runs the rules over `event`. `default_service` is the service owning
    /// the event's integration key, if any. Pure: the same rules and event
    /// give the same decision on every replica.
    pub fn route(&self, event: &Event, default_service: Option<&str>) -> Decision {
        let mut d = Decision::default();
        for rule in &self.rules {
            if !rule.matches(event) {
                continue;
            }
            d.matched.push(rule.name.clone());
            for svc in &rule.route_to {
                if !d.services.contains(svc) {
                    d.services.push(svc.clone());
                }
            }
            if rule.set_severity.is_some() {
                d.severity = rule.set_severity;
            }
            if rule.set_urgency.is_some() {
                d.urgency = rule.set_urgency;
            }
            d.suppressed |= rule.suppress;
            if rule.runbook_url.is_some() {
                d.runbook_url.clone_from(&rule.runbook_url);
            }
            if !rule.continue_matching {
                break;
            }
        }
        if d.services.is_empty() {
            if let Some(svc) = default_service {
                d.services.push(svc.to_string());
            }
        }
        d
    }
}

impl CompiledRule {
    fn matches(&self, event: &Event) -> bool {
        self.tests.iter().all(|(field, test)| {
            let value = field.get(event);
            match test {
                Test::Equals(want) => value == Some(want.as_str()),
                Test::NotEquals(want) => value != Some(want.as_str()),
                Test::Contains(needle) => value.is_some_and(|v| v.contains(needle.as_str())),
                Test::Matches(re) => value.is_some_and(|v| re.is_match(v)),
                Test::Exists => value.is_some(),
                Test::NotExists => value.is_none(),
            }
        })
    }
}
