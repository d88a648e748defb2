//! The rules as written: the serde model of `[[routing_rules]]`.

use crate::event::{Event, Severity};
use crate::oncall::Urgency;
use serde::{Deserialize, Serialize};

/// One routing rule. Its conditions are ANDed; when they all hold, its
/// actions apply (see the [module docs](super) for how rules combine).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// Stable and unique among the rules; recorded in [`Decision::matched`]
    /// and so in the incident timeline.
    ///
    /// [`Decision::matched`]: super::Decision::matched
    pub name: String,
    /// All must hold; an empty list matches every event.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Services to page, in order. Names from the on-call document's `services`.
    #[serde(default)]
    pub route_to: Vec<String>,
    /// Re-rate the event to this severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_severity: Option<Severity>,
    /// Open its incidents at this urgency, whatever the service's rule says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_urgency: Option<Urgency>,
    /// Record the event but open no page.
    #[serde(default)]
    pub suppress: bool,
    /// The runbook link of its incidents, in place of the service's (an http(s) URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// `false` (default): when this rule matches, evaluation stops here.
    /// `true`: later rules are evaluated too.
    #[serde(rename = "continue", default)]
    pub continue_matching: bool,
}

/// A test on one field of an event: `{ field = "component", op = "equals", value = "postgres" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// One of [`FIELDS`], or `details.<key>` for a custom detail.
    pub field: String,
    /// How the field is tested.
    pub op: Op,
    /// Required by every op except `exists` and `not_exists`, which refuse one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Condition {
    /// A condition from borrowed parts.
    pub fn new(field: &str, op: Op, value: Option<&str>) -> Condition {
        Condition {
            field: field.to_string(),
            op,
            value: value.map(str::to_string),
        }
    }
}

/// How a condition tests its field. Comparisons are exact and case-sensitive;
/// use `matches` with `(?i)` for case-insensitive tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The field is present and equal to the value.
    Equals,
    /// Not `equals`: true when the field is absent.
    NotEquals,
    /// The field is present and contains the value as a substring.
    Contains,
    /// The field is present and the regex finds a match anywhere in it
    /// (anchor with `^…$` for a whole-field match).
    Matches,
    /// The field is present.
    Exists,
    /// The field is absent.
    NotExists,
}

impl Op {
    /// The snake_case name, as written in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::Contains => "contains",
            Op::Matches => "matches",
            Op::Exists => "exists",
            Op::NotExists => "not_exists",
        }
    }

    /// Whether the op compares against a `value`.
    pub fn takes_value(self) -> bool {
        !matches!(self, Op::Exists | Op::NotExists)
    }
}

/// The event fields a condition may name, besides `details.<key>`.
pub const FIELDS: &[&str] = &[
    "summary",
    "source",
    "severity",
    "component",
    "group",
    "class",
    "dedup_key",
    "routing_key",
];

/// Prefix of the fields that name a custom detail.
pub const DETAILS_PREFIX: &str = "details.";

/// A condition's field, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Field {
    Summary,
    Source,
    Severity,
    Component,
    Group,
    Class,
    DedupKey,
    RoutingKey,
    Detail(String),
}

impl Field {
    pub(super) fn parse(s: &str) -> Option<Field> {
        Some(match s {
            "summary" => Field::Summary,
            "source" => Field::Source,
            "severity" => Field::Severity,
            "component" => Field::Component,
            "group" => Field::Group,
            "class" => Field::Class,
            "dedup_key" => Field::DedupKey,
            "routing_key" => Field::RoutingKey,
            _ => match s.strip_prefix(DETAILS_PREFIX) {
                Some(key) if !key.is_empty() => Field::Detail(key.to_string()),
                _ => return None,
            },
        })
    }

    /// The field's value in `event`; `None` when absent. A field is absent
    /// when it is empty or, for `details.<key>`, when the key is not there.
    pub(super) fn get<'e>(&self, event: &'e Event) -> Option<&'e str> {
        let s = match self {
            Field::Summary => &event.summary,
            Field::Source => &event.source,
            Field::Severity => return Some(event.severity.as_str()),
            Field::Component => &event.component,
            Field::Group => &event.group,
            Field::Class => &event.class,
            Field::DedupKey => &event.dedup_key,
            Field::RoutingKey => &event.routing_key,
            Field::Detail(key) => event.custom_details.get(key)?,
        };
        (!s.is_empty()).then_some(s.as_str())
    }
}
