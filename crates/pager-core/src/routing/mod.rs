//! Event routing rules: which services an event pages, and how, decided from
//! the event's fields (PagerDuty event orchestration, Opsgenie routing).
//!
//! A page usually belongs to the team owning the integration key it arrived
//! on. Rules route by content instead: database failures to the database
//! team, a shared component (the job queue, a checkout database) to every
//! team that depends on it.
//!
//! ```toml
//! [[routing_rules]]
//! name = "checkout-db-to-both-teams"          # stable, unique
//! # all conditions must hold (AND); an empty list matches every event
//! conditions = [
//!   { field = "component", op = "equals", value = "postgres" },
//!   { field = "summary", op = "matches", value = "(?i)checkout" },   # regex
//!   { field = "details.region", op = "exists" },                     # a custom detail
//!   { field = "severity", op = "equals", value = "critical" },
//! ]
//! # actions, all optional
//! route_to = ["database", "checkout"]          # services; one event may page several
//! set_severity = "critical"                    # critical | error | warning | info
//! set_urgency = "high"                         # high | low
//! suppress = false                             # record the event, open no page
//! runbook_url = "https://runbooks.example.com/checkout-db"
//! continue = false                             # true: keep evaluating later rules
//! ```
//!
//! # Conditions
//!
//! `field` is one of `summary`, `source`, `severity`, `component`, `group`,
//! `class`, `dedup_key`, `routing_key` (the event as the source sent it), or
//! `details.<key>` for a custom detail. A field is **absent** when it is empty
//! or, for `details.<key>`, when the event has no such key; `severity` is
//! always present.
//!
//! | op | holds when | value |
//! |---|---|---|
//! | `equals` | the field is present and equal to `value` | required |
//! | `not_equals` | not `equals` (so also when the field is absent) | required |
//! | `contains` | the field is present and contains `value` | required |
//! | `matches` | the field is present and the regex `value` matches somewhere in it | required |
//! | `exists` | the field is present | refused |
//! | `not_exists` | the field is absent | refused |
//!
//! Comparisons are exact and case-sensitive; `(?i)` in a regex ignores case,
//! `^…$` anchors it to the whole field. Regexes use the `regex` crate: matching
//! is linear in the input whatever the pattern (no backtracking, so a hostile
//! `(a+)+$` cannot stall the state machine); patterns are capped at
//! [`MAX_PATTERN_LEN`] bytes and [`REGEX_SIZE_LIMIT`] bytes compiled. Values
//! must be non-empty (an empty field is absent: test it with `not_exists`), and
//! an `equals`/`not_equals` on `severity` must name a severity.
//!
//! # Semantics
//!
//! 1. Rules are evaluated in order. A rule **matches** when all its conditions
//!    hold.
//! 2. The first matching rule applies and **stops** evaluation, unless it has
//!    `continue = true`: then later rules are evaluated too, and each later
//!    matching rule also applies (and stops evaluation unless it too has
//!    `continue = true`).
//! 3. When several rules apply: `route_to` **accumulates**, in order, each
//!    service once; `set_severity`, `set_urgency` and `runbook_url` of a later
//!    rule **override** an earlier one's; `suppress` is **sticky** (any applied
//!    rule suppressing suppresses the event).
//! 4. When no applied rule routes the event anywhere (no rule matched, or none
//!    of those that did had a `route_to`), it goes to the default service: the
//!    one owning the event's integration key, if any.
//! 5. A suppressed event still has its services: it is recorded against them,
//!    and opens no page.
//!
//! [`Decision::matched`] lists the rules that applied, for the incident
//! timeline. Routing decides where a trigger opens incidents; an acknowledge
//! or resolve follows its `dedup_key` to the incidents it opened.
//!
//! # Determinism
//!
//! [`RoutingRule`]s are replicated state: plain data, serialized in the order
//! written. [`Router`] is derived from them ([`Router::new`], which compiles
//! each regex once) and never serialized; every replica builds the same
//! router and [`Router::route`] is a pure function of the router, the event
//! and the default service. Whether a regex compiles within the size limit
//! depends on the `regex` crate version, fixed by `Cargo.lock`: replicas on the
//! same build agree.
//!
//! Layout:
//! - [`rule`](RoutingRule): the serde model, [`RoutingRule`], [`Condition`], [`Op`]
//! - [`validate`]: checking rules against the on-call document, shared with
//!   [`Router::new`]
//! - [`Router`]: the compiled rules, [`Router::route`] and its [`Decision`]

mod compile;
mod router;
mod rule;

pub use compile::{
    validate, MAX_CONDITIONS, MAX_PATTERN_LEN, MAX_RULES, MAX_URL_LEN, MAX_VALUE_LEN,
    REGEX_DFA_SIZE_LIMIT, REGEX_SIZE_LIMIT,
};
pub use router::{Decision, Router};
pub use rule::{Condition, Op, RoutingRule, DETAILS_PREFIX, FIELDS};
