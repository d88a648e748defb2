//! The on-call document: users and their contact methods and notification
//! rules, escalation policies, and services with integration keys. It is
//! replicated state, replaced all-or-nothing by `Command::ApplyConfig` after
//! [`OnCallDoc::validate`] accepted it. Everything is named by stable names and
//! kept in `BTreeMap`s so that export → apply is a no-op and snapshots are
//! byte-identical across replicas.

use crate::routing::RoutingRule;
use crate::schedule::{Restriction, Schedule, Zone};
use crate::time::{Millis, Span};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The on-call document: everyone and everything pagerd pages from, each
/// entity under a stable name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallDoc {
    /// Everyone who can be paged, by stable name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, User>,
    /// Groups of users, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub teams: BTreeMap<String, Team>,
    /// On-call schedules, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schedules: BTreeMap<String, Schedule>,
    /// Escalation policies, by name, run by services and teams.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub escalation_policies: BTreeMap<String, EscalationPolicy>,
    /// Response tiers and their acknowledgement SLA.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, Tier>,
    /// Services, by name: where events arrive and incidents open.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
    /// Monitors that expect a ping every `interval`; a missed one opens an incident.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub heartbeats: BTreeMap<String, Heartbeat>,
    /// Planned quiet periods for some services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Ordered rules on incoming events (see [`crate::routing`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_rules: Vec<RoutingRule>,
    /// Outbound webhook subscriptions, by name (see [`crate::webhook`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub webhooks: BTreeMap<String, crate::webhook::WebhookSubscription>,
}

/// A group of users, paged together as a level's target or as responders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    /// Free text for people reading the document.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// User names of the members.
    pub members: Vec<String>,
    /// Policy used when the team is added as a responder (else all members are paged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy: Option<String>,
    /// Users told when an RCA of the team's services is two days overdue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<String>,
    /// The weekly page review by email (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_report: Option<WeeklyReport>,
    /// The Slack channel (its id, `C…` or `G…`) where the incidents of the team's
    /// services are posted, unless the service names its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
}

/// A team's weekly page review email: the report of the seven whole days
/// (UTC) before the day it is sent, to a list of addresses, each week on
/// `day` at `at` on the wall clock of `time_zone`:
///
/// ```toml
/// [teams.database.weekly_report]
/// to = ["db-leads@example.com"]
/// day = "mon"                 # default
/// at = "09:00"                # default
/// time_zone = "Europe/Berlin" # default UTC
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyReport {
    /// Email addresses (a list, not users: a team's leads or a mailing list).
    pub to: Vec<String>,
    /// The day of the week it goes out.
    #[serde(default = "WeeklyReport::monday")]
    pub day: crate::schedule::Day,
    /// The wall-clock time it goes out (a time skipped by a DST change moves later).
    #[serde(default = "WeeklyReport::nine", with = "crate::schedule::civil::time")]
    pub at: jiff::civil::Time,
    /// The zone of `day` and `at`.
    #[serde(default = "WeeklyReport::utc")]
    pub time_zone: Zone,
}

impl WeeklyReport {
    fn monday() -> crate::schedule::Day {
        crate::schedule::Day::Mon
    }

    fn nine() -> jiff::civil::Time {
        jiff::civil::Time::constant(9, 0, 0, 0)
    }

    fn utc() -> Zone {
        Zone::new("UTC")
    }

    /// Addresses one report may go to.
    pub const MAX_TO: usize = 20;
}

/// A response tier: how fast incidents of its services should be acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Free text for people reading the document.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// An incident should be acknowledged within this.
    pub ack_sla: Span,
    /// Whether its services' high-urgency incidents need an RCA (a
    /// service's own `rca` wins); `optional` when neither says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rca: Option<crate::rca::RcaPolicy>,
    /// A required RCA is due this long after mitigation (3 days when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rca_due: Option<Span>,
}

/// A heartbeat monitor: it must ping every `interval`, or an incident opens
/// on `service`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The service a missed ping opens an incident on.
    pub service: String,
    /// The longest wait for the next ping before it counts as missed.
    pub interval: Span,
    /// The key a monitor pings with (`POST /v1/heartbeat/{key}`).
    pub key: String,
    /// The summary of the incident a missed ping opens; empty: a generated one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// A person who can be paged: how to reach them, and which way when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Display name; the key in `users` is the stable name.
    #[serde(default)]
    pub name: String,
    /// The user's email address (pages go only to `contact_methods`).
    #[serde(default)]
    pub email: String,
    /// The user's own zone, for showing times to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<Zone>,
    /// The ways to reach the user, each named.
    #[serde(default)]
    pub contact_methods: Vec<ContactMethod>,
    /// Which contact method to use how long after the user is paged, per urgency.
    #[serde(default)]
    pub notification_rules: NotificationRules,
    /// An email an hour before each of their shifts starts (`false` turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_reminders: Option<bool>,
}

/// One way to reach a user: a phone for SMS or voice, or an email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactMethod {
    /// Stable name, unique per user, referenced by notification rules.
    pub name: String,
    /// SMS, voice or email (written `type`).
    #[serde(rename = "type")]
    pub kind: ContactKind,
    /// E.164 phone number for sms and voice, an email address for email.
    pub address: String,
}

/// How a page reaches its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactKind {
    /// A text message to a phone number.
    Sms,
    /// A phone call that speaks the page and takes keypresses.
    Voice,
    /// An email, with signed acknowledge / resolve links when the daemon has a public URL.
    Email,
    /// A Slack message with buttons: a direct message to the user (address: their Slack
    /// email or member id), or an incident's post in a channel.
    Slack,
    /// A request about an incident's Jira ticket (address: the project key). Not a
    /// contact method a user can have.
    Jira,
    /// A webhook event to a subscription (address: its URL). Not a contact method either.
    Webhook,
}

impl ContactKind {
    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Sms => "sms",
            ContactKind::Voice => "voice",
            ContactKind::Email => "email",
            ContactKind::Slack => "slack",
            ContactKind::Jira => "jira",
            ContactKind::Webhook => "webhook",
        }
    }
}

/// How a user is notified, per urgency: each rule fires `after` the moment the
/// user is paged, through one of the user's contact methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRules {
    /// The rules for high-urgency incidents.
    #[serde(default)]
    pub high: Vec<NotificationRule>,
    /// The rules for low-urgency incidents.
    #[serde(default)]
    pub low: Vec<NotificationRule>,
}

impl NotificationRules {
    /// The rules that apply to an incident of `urgency`.
    pub fn for_urgency(&self, urgency: Urgency) -> &[NotificationRule] {
        match urgency {
            Urgency::High => &self.high,
            Urgency::Low => &self.low,
        }
    }
}

/// One step of notifying a user: use `contact`, `after` they are paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRule {
    /// Delay from the moment the user is paged; `0` fires at once.
    #[serde(default)]
    pub after: Span,
    /// Name of one of the user's contact methods.
    pub contact: String,
}

/// How hard an incident pages: it picks the users' notification rules.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// The users' high-urgency rules apply (the default).
    #[default]
    High,
    /// The users' low-urgency rules apply.
    Low,
}

impl Urgency {
    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::High => "high",
            Urgency::Low => "low",
        }
    }
}

/// Who to page, level by level, until someone acknowledges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    /// Free text for people reading the document.
    #[serde(default)]
    pub description: String,
    /// Paged in order, first to last; at least one.
    pub levels: Vec<EscalationLevel>,
    /// How many more times the whole policy runs after the last level when
    /// nobody acknowledged (0: page each level once).
    #[serde(default)]
    pub repeat: u32,
    /// Paged when every level and repeat passed without an acknowledgement,
    /// or when nobody at all is on call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Target>,
}

/// One step of a policy: who it pages, and how long before the next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// Time from this level being paged until the next level is.
    pub escalate_after: Span,
    /// Who this level pages; at least one.
    pub targets: Vec<Target>,
}

/// Who a level (or a responder request) pages: a user, whoever a schedule
/// has on call at the instant the level fires, or every member of a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// One user, by name.
    User(String),
    /// Whoever the schedule has on call (and its shadows) at that instant.
    Schedule(String),
    /// Every member of the team.
    Team(String),
}

/// Something that can break: events arrive for it, and incidents open on it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Free text for people reading the document.
    #[serde(default)]
    pub description: String,
    /// The owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Keys alert sources send with their events (`routing_key`); list the
    /// new one beside the old while rotating.
    pub integration_keys: Vec<String>,
    /// The policy the primary track of each new incident runs.
    pub escalation_policy: String,
    /// How the urgency of its incidents is decided.
    #[serde(default)]
    pub urgency: UrgencyRule,
    /// Carried by every page of this service.
    #[serde(default)]
    pub runbook_url: String,
    /// Name of a tier (its acknowledgement SLA applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Whether its high-urgency incidents need an RCA; the tier's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rca: Option<crate::rca::RcaPolicy>,
    /// Triggers without a dedup key fold into the service's newest open
    /// incident opened within this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping_window: Option<Span>,
    /// An acknowledged incident that is not resolved re-triggers after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_timeout: Option<Span>,
    /// An open incident is resolved this long after it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve_after: Option<Span>,
    /// Weekly hours for `urgency = "support_hours"`: high inside, low outside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_hours: Option<SupportHours>,
    /// Alert storm: when this many new incidents opened on the service in the
    /// last minute, further new triggers fold into one "alert storm"
    /// incident (paged once) until it is resolved. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm_threshold_per_minute: Option<u32>,
    /// The Slack channel (its id, `C…` or `G…`) where each incident is posted, with
    /// buttons, updated as it changes, its timeline in the message's thread; else the
    /// team's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
    /// A Jira ticket for each high-urgency incident: its project and issue type, and the
    /// moves its workflow makes on resolve, duplicate and RCA completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jira: Option<crate::ticket::JiraTarget>,
}

/// A service's weekly support hours, in one time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportHours {
    /// The zone the windows' wall-clock times are in.
    pub time_zone: Zone,
    /// Same form as schedule restrictions: `{ days = ["mon", ...], from = "08:00", to = "20:00" }`.
    pub windows: Vec<Restriction>,
}

/// A planned quiet period for some services: their events are recorded but
/// open no page, and (with `pause_escalations`) their running escalations
/// wait until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Unique among the windows.
    pub name: String,
    /// The services it quiets.
    pub services: Vec<String>,
    /// RFC 3339 instants; `end` exclusive.
    #[serde(with = "crate::schedule::civil::instant")]
    pub start: Millis,
    /// When it ends (exclusive), in milliseconds since the Unix epoch.
    #[serde(with = "crate::schedule::civil::instant")]
    pub end: Millis,
    /// Whether running escalations of its services wait until it ends (default: true).
    #[serde(default = "yes")]
    pub pause_escalations: bool,
}

fn yes() -> bool {
    true
}

/// How a service decides an incident's urgency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrgencyRule {
    /// Every incident is high urgency (the default).
    #[default]
    High,
    /// Every incident is low urgency.
    Low,
    /// critical and error: high; warning and info: low.
    Severity,
    /// High inside the service's `support_hours`, low outside.
    SupportHours,
}

impl UrgencyRule {
    /// The urgencies incidents of this service can have.
    pub fn possible(self) -> &'static [Urgency] {
        match self {
            UrgencyRule::High => &[Urgency::High],
            UrgencyRule::Low => &[Urgency::Low],
            UrgencyRule::Severity | UrgencyRule::SupportHours => &[Urgency::High, Urgency::Low],
        }
    }
}

/// One problem in a document, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The field at fault (`users.alice.contact_methods[0].address`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Maximum lengths that keep one document and its pages within bounds.
pub const MAX_NAME_LEN: usize = 128;

impl OnCallDoc {
    /// Where the incidents of `service` are posted in Slack: its own channel, else its team's.
    pub fn slack_channel_of(&self, service: &str) -> Option<&str> {
        let svc = self.services.get(service)?;
        svc.slack_channel.as_deref().or_else(|| {
            let team = self.teams.get(svc.team.as_deref()?)?;
            team.slack_channel.as_deref()
        })
    }

    /// Read a document from TOML; a syntax or shape error is one problem at `document`.
    pub fn from_toml(text: &str) -> Result<OnCallDoc, Problem> {
        toml::from_str(text).map_err(|e| Problem {
            path: "document".into(),
            message: e.to_string().trim().to_string(),
        })
    }

    /// Read a document from JSON; a syntax or shape error is one problem at `document`.
    pub fn from_json(text: &str) -> Result<OnCallDoc, Problem> {
        serde_json::from_str(text).map_err(|e| Problem {
            path: "document".into(),
            message: e.to_string(),
        })
    }

    /// The document as pretty-printed TOML.
    pub fn to_toml(&self) -> String {
        // The document holds only maps, strings, numbers and lists: it always
        // serializes; an empty string would only hide a bug in this crate.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Every problem in the document; empty means it may be applied.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |path: String, message: String| out.push(Problem { path, message });
        let is_user = |u: &str| self.users.contains_key(u);

        for (uname, user) in &self.users {
            let base = format!("users.{uname}");
            check_name(&base, uname, &mut bad);
            if let Some(z) = &user.time_zone {
                if z.time_zone().is_none() {
                    bad(
                        format!("{base}.time_zone"),
                        format!("unknown time zone {:?}", z.name()),
                    );
                }
            }
            let mut names = BTreeSet::new();
            for (i, cm) in user.contact_methods.iter().enumerate() {
                let p = format!("{base}.contact_methods[{i}]");
                if !names.insert(cm.name.as_str()) {
                    bad(
                        format!("{p}.name"),
                        format!("duplicate contact method {:?}", cm.name),
                    );
                }
                check_name(&format!("{p}.name"), &cm.name, &mut bad);
                let ok = match cm.kind {
                    ContactKind::Sms | ContactKind::Voice => is_e164(&cm.address),
                    ContactKind::Email => is_email(&cm.address),
                    ContactKind::Slack => is_email(&cm.address) || is_slack_id(&cm.address, "UW"),
                    ContactKind::Jira | ContactKind::Webhook => false,
                };
                if !ok {
                    let want = match cm.kind {
                        ContactKind::Email => "an email address",
                        ContactKind::Slack => "the user's Slack email address or member id (U…)",
                        ContactKind::Jira | ContactKind::Webhook => {
                            bad(
                                format!("{p}.type"),
                                format!(
                                    "{} is not a contact method (set `jira` on a service, or a \
                                     subscription under `webhooks`)",
                                    cm.kind.as_str()
                                ),
                            );
                            continue;
                        }
                        _ => "an E.164 phone number such as +15551234567",
                    };
                    bad(format!("{p}.address"), format!("must be {want}"));
                }
            }
            for (urg, rules) in [
                ("high", &user.notification_rules.high),
                ("low", &user.notification_rules.low),
            ] {
                for (i, rule) in rules.iter().enumerate() {
                    if !names.contains(rule.contact.as_str()) {
                        bad(
                            format!("{base}.notification_rules.{urg}[{i}].contact"),
                            format!("unknown contact method {:?}", rule.contact),
                        );
                    }
                }
            }
        }

        for (tname, team) in &self.teams {
            let base = format!("teams.{tname}");
            check_name(&base, tname, &mut bad);
            for (i, m) in team.members.iter().enumerate() {
                if !is_user(m) {
                    bad(
                        format!("{base}.members[{i}]"),
                        format!("unknown user {m:?}"),
                    );
                }
            }
            for (i, a) in team.admins.iter().enumerate() {
                if !is_user(a) {
                    bad(format!("{base}.admins[{i}]"), format!("unknown user {a:?}"));
                }
            }
            if let Some(p) = &team.escalation_policy {
                if !self.escalation_policies.contains_key(p) {
                    bad(
                        format!("{base}.escalation_policy"),
                        format!("unknown policy {p:?}"),
                    );
                }
            }
            check_slack_channel(&base, team.slack_channel.as_deref(), &mut bad);
            if let Some(w) = &team.weekly_report {
                let base = format!("{base}.weekly_report");
                if w.to.is_empty() {
                    bad(format!("{base}.to"), "at least one address".into());
                }
                if w.to.len() > WeeklyReport::MAX_TO {
                    bad(
                        format!("{base}.to"),
                        format!("at most {} addresses", WeeklyReport::MAX_TO),
                    );
                }
                for (i, a) in w.to.iter().enumerate() {
                    if !is_email(a) {
                        bad(
                            format!("{base}.to[{i}]"),
                            format!("{a:?} is not an email address"),
                        );
                    }
                }
                if w.time_zone.time_zone().is_none() {
                    bad(
                        format!("{base}.time_zone"),
                        format!("unknown time zone {:?}", w.time_zone.name()),
                    );
                }
            }
        }

        for (sname, schedule) in &self.schedules {
            let base = format!("schedules.{sname}");
            check_name(&base, sname, &mut bad);
            for p in schedule.validate(&base, &is_user) {
                bad(p.path, p.message);
            }
        }

        for (tname, tier) in &self.tiers {
            check_name(&format!("tiers.{tname}"), tname, &mut bad);
            if tier.ack_sla == Span::ZERO {
                bad(
                    format!("tiers.{tname}.ack_sla"),
                    "must be more than 0".into(),
                );
            }
            if tier.rca_due == Some(Span::ZERO) {
                bad(
                    format!("tiers.{tname}.rca_due"),
                    "must be more than 0".into(),
                );
            }
        }

        for (pname, policy) in &self.escalation_policies {
            let base = format!("escalation_policies.{pname}");
            check_name(&base, pname, &mut bad);
            if policy.levels.is_empty() {
                bad(
                    format!("{base}.levels"),
                    "a policy needs at least one level".into(),
                );
            }
            if policy.repeat > 100 {
                bad(format!("{base}.repeat"), "at most 100".into());
            }
            for (i, level) in policy.levels.iter().enumerate() {
                let p = format!("{base}.levels[{i}]");
                if level.targets.is_empty() {
                    bad(
                        format!("{p}.targets"),
                        "a level needs at least one target".into(),
                    );
                }
                if level.escalate_after < Span::from_secs(1)
                    && (policy.levels.len() > 1 || policy.repeat > 0 || policy.fallback.is_some())
                {
                    bad(format!("{p}.escalate_after"), "must be at least 1s".into());
                }
                for (j, t) in level.targets.iter().enumerate() {
                    self.check_target(&format!("{p}.targets[{j}]"), t, &mut bad);
                }
            }
            if let Some(t) = &policy.fallback {
                self.check_target(&format!("{base}.fallback"), t, &mut bad);
            }
        }

        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        let mut key_ok =
            |path: String, key: &str, owner: String, bad: &mut dyn FnMut(String, String)| {
                if key.len() < 8
                    || key.len() > 128
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    bad(
                        path,
                        "must be 8 to 128 characters of letters, digits, '-' or '_'".into(),
                    );
                } else if let Some(other) = keys.insert(key.to_string(), owner) {
                    bad(path, format!("key already used by {other}"));
                }
            };
        for (sname, svc) in &self.services {
            let base = format!("services.{sname}");
            check_name(&base, sname, &mut bad);
            check_slack_channel(&base, svc.slack_channel.as_deref(), &mut bad);
            if let Some(jira) = &svc.jira {
                check_jira(&base, jira, &mut bad);
            }
            if svc.integration_keys.is_empty() {
                bad(
                    format!("{base}.integration_keys"),
                    "a service needs at least one integration key".into(),
                );
            }
            for (i, key) in svc.integration_keys.iter().enumerate() {
                key_ok(
                    format!("{base}.integration_keys[{i}]"),
                    key,
                    format!("service {sname:?}"),
                    &mut bad,
                );
            }
            match (&svc.support_hours, svc.urgency) {
                (None, UrgencyRule::SupportHours) => bad(
                    format!("{base}.support_hours"),
                    "required with urgency = \"support_hours\"".into(),
                ),
                (Some(h), _) => {
                    if h.time_zone.time_zone().is_none() {
                        bad(
                            format!("{base}.support_hours.time_zone"),
                            format!("unknown time zone {:?}", h.time_zone.name()),
                        );
                    }
                    if h.windows.is_empty() {
                        bad(
                            format!("{base}.support_hours.windows"),
                            "at least one window".into(),
                        );
                    }
                }
                _ => {}
            }
            if let Some(t) = &svc.team {
                if !self.teams.contains_key(t) {
                    bad(format!("{base}.team"), format!("unknown team {t:?}"));
                }
            }
            if let Some(t) = &svc.tier {
                if !self.tiers.contains_key(t) {
                    bad(format!("{base}.tier"), format!("unknown tier {t:?}"));
                }
            }
            if svc.storm_threshold_per_minute.is_some_and(|n| n < 2) {
                bad(
                    format!("{base}.storm_threshold_per_minute"),
                    "must be at least 2".into(),
                );
            }
            for (field, span) in [
                ("grouping_window", svc.grouping_window),
                ("ack_timeout", svc.ack_timeout),
                ("auto_resolve_after", svc.auto_resolve_after),
            ] {
                if span.is_some_and(|s| s < Span::from_secs(1)) {
                    bad(format!("{base}.{field}"), "must be at least 1s".into());
                }
            }
            match self.escalation_policies.get(&svc.escalation_policy) {
                None => bad(
                    format!("{base}.escalation_policy"),
                    format!("unknown policy {:?}", svc.escalation_policy),
                ),
                Some(policy) => {
                    // Reachability: everyone who can be paged for this service
                    // has a rule for every urgency the service can produce.
                    let mut users = BTreeSet::new();
                    for t in policy
                        .levels
                        .iter()
                        .flat_map(|l| l.targets.iter())
                        .chain(policy.fallback.iter())
                    {
                        users.extend(self.target_users(t));
                    }
                    for u in users {
                        let Some(user) = self.users.get(u) else {
                            continue;
                        };
                        for urgency in svc.urgency.possible() {
                            if user.notification_rules.for_urgency(*urgency).is_empty() {
                                bad(
                                    format!("users.{u}.notification_rules.{}", urgency.as_str()),
                                    format!(
                                        "user is on the escalation path of service {sname:?} ({} urgency) but has no rule for it",
                                        urgency.as_str()
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }

        let mut window_names = BTreeSet::new();
        for (i, w) in self.maintenance_windows.iter().enumerate() {
            let base = format!("maintenance_windows[{i}]");
            check_name(&format!("{base}.name"), &w.name, &mut bad);
            if !window_names.insert(w.name.as_str()) {
                bad(
                    format!("{base}.name"),
                    format!("duplicate window {:?}", w.name),
                );
            }
            if w.end <= w.start {
                bad(format!("{base}.end"), "must be after start".into());
            }
            if w.services.is_empty() {
                bad(format!("{base}.services"), "at least one service".into());
            }
            for (j, s) in w.services.iter().enumerate() {
                if !self.services.contains_key(s) {
                    bad(
                        format!("{base}.services[{j}]"),
                        format!("unknown service {s:?}"),
                    );
                }
            }
        }

        for (hname, hb) in &self.heartbeats {
            let base = format!("heartbeats.{hname}");
            check_name(&base, hname, &mut bad);
            if !self.services.contains_key(&hb.service) {
                bad(
                    format!("{base}.service"),
                    format!("unknown service {:?}", hb.service),
                );
            }
            if hb.interval < Span::from_secs(10) {
                bad(format!("{base}.interval"), "must be at least 10s".into());
            }
            key_ok(
                format!("{base}.key"),
                &hb.key,
                format!("heartbeat {hname:?}"),
                &mut bad,
            );
        }
        for (wname, w) in &self.webhooks {
            let base = format!("webhooks.{wname}");
            check_name(&base, wname, &mut bad);
            let url_ok = (w.url.starts_with("https://") || w.url.starts_with("http://"))
                && w.url.len() <= 2_048
                && !w.url.contains(char::is_whitespace)
                && w.url
                    .split("://")
                    .nth(1)
                    .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !url_ok {
                bad(
                    format!("{base}.url"),
                    "must be an absolute http(s) URL".into(),
                );
            }
            if w.services.is_empty() && w.teams.is_empty() {
                bad(
                    base.clone(),
                    "subscribes to nothing: list services or teams".into(),
                );
            }
            for (i, s) in w.services.iter().enumerate() {
                if !self.services.contains_key(s) {
                    bad(
                        format!("{base}.services[{i}]"),
                        format!("unknown service {s:?}"),
                    );
                }
            }
            for (i, t) in w.teams.iter().enumerate() {
                if !self.teams.contains_key(t) {
                    bad(format!("{base}.teams[{i}]"), format!("unknown team {t:?}"));
                }
            }
        }
        out.extend(crate::routing::validate(&self.routing_rules, &|s| {
            self.services.contains_key(s)
        }));
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        out.dedup();
        out
    }

    fn check_target(&self, path: &str, t: &Target, bad: &mut impl FnMut(String, String)) {
        let (kind, name, known) = match t {
            Target::User(u) => ("user", u, self.users.contains_key(u)),
            Target::Schedule(s) => ("schedule", s, self.schedules.contains_key(s)),
            Target::Team(t) => ("team", t, self.teams.contains_key(t)),
        };
        if !known {
            bad(format!("{path}.{kind}"), format!("unknown {kind} {name:?}"));
        }
    }

    /// Every user a target can ever page (all of a schedule's users and shadows).
    pub fn target_users<'a>(&'a self, t: &'a Target) -> Vec<&'a str> {
        match t {
            Target::User(u) => vec![u.as_str()],
            Target::Team(name) => self
                .teams
                .get(name)
                .map(|t| t.members.iter().map(String::as_str).collect())
                .unwrap_or_default(),
            Target::Schedule(name) => self
                .schedules
                .get(name)
                .map(|s| {
                    let layers = s
                        .layers
                        .iter()
                        .flat_map(|l| l.users.iter().chain(l.shadows.iter()));
                    layers
                        .chain(s.overrides.iter().map(|o| &o.user))
                        .map(String::as_str)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The shifts of a calendar feed in `[from, to)`, by start: a user's on
    /// every schedule, or one schedule's; `None` when the subject is not in
    /// the document.
    pub fn feed_shifts(
        &self,
        subject: &crate::command::CalendarSubject,
        from: crate::time::Millis,
        to: crate::time::Millis,
    ) -> Option<Vec<(String, crate::schedule::Shift)>> {
        use crate::command::CalendarSubject;
        let mut out: Vec<(String, crate::schedule::Shift)> = match subject {
            CalendarSubject::User(u) => {
                if !self.users.contains_key(u) {
                    return None;
                }
                self.schedules
                    .iter()
                    .flat_map(|(name, s)| {
                        s.shifts(from, to)
                            .into_iter()
                            .filter(|sh| sh.user == *u)
                            .map(move |sh| (name.clone(), sh))
                    })
                    .collect()
            }
            CalendarSubject::Schedule(name) => self
                .schedules
                .get(name)?
                .shifts(from, to)
                .into_iter()
                .map(|sh| (name.clone(), sh))
                .collect(),
        };
        out.sort_by(|a, b| (a.1.start, &a.0).cmp(&(b.1.start, &b.0)));
        Some(out)
    }

    /// Services whose tier's acknowledgement SLA their policy cannot meet:
    /// the first level waits longer than the SLA before anyone else is
    /// paged. Warnings, not errors: the document still applies.
    pub fn sla_warnings(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        for (name, svc) in &self.services {
            let Some((tname, tier)) = svc.tier.as_ref().and_then(|t| self.tiers.get_key_value(t))
            else {
                continue;
            };
            let Some(policy) = self.escalation_policies.get(&svc.escalation_policy) else {
                continue;
            };
            let Some(first) = policy.levels.first() else {
                continue;
            };
            if first.escalate_after > tier.ack_sla {
                out.push(Problem {
                    path: format!("services.{name}.tier"),
                    message: format!(
                        "tier {tname:?} asks for an acknowledgement within {}, but policy {:?} \
                         pages its next level only after {}: the SLA cannot be met by escalation",
                        tier.ack_sla, svc.escalation_policy, first.escalate_after
                    ),
                });
            }
        }
        out
    }

    /// Schedules with nobody on call somewhere in `[from, to)`: (path, gaps).
    pub fn schedule_gaps(
        &self,
        from: crate::time::Millis,
        to: crate::time::Millis,
    ) -> Vec<Problem> {
        let mut out = Vec::new();
        for (name, s) in &self.schedules {
            let gaps = s.gaps(from, to);
            if let Some((start, end)) = gaps.first() {
                out.push(Problem {
                    path: format!("schedules.{name}"),
                    message: format!(
                        "nobody on call for {} stretch(es) in the next {} days, the first from {} to {}",
                        gaps.len(),
                        (to - from) / 86_400_000,
                        crate::time::rfc3339(*start),
                        crate::time::rfc3339(*end)
                    ),
                });
            }
        }
        out
    }

    /// The service that owns an integration key.
    pub fn service_for_key(&self, key: &str) -> Option<(&str, &Service)> {
        self.services
            .iter()
            .find(|(_, s)| s.integration_keys.iter().any(|k| k == key))
            .map(|(n, s)| (n.as_str(), s))
    }
}

fn check_name(path: &str, name: &str, bad: &mut impl FnMut(String, String)) {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        bad(
            path.to_string(),
            format!("name must be 1 to {MAX_NAME_LEN} characters"),
        );
    }
}

/// `+` then 8 to 15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()) && !d.starts_with('0')
}

/// A Slack id of one of `kinds` (`C` channel, `G` private channel, `U`/`W` member): the
/// letter, then 8 to 20 upper-case letters and digits.
fn is_slack_id(s: &str, kinds: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| kinds.contains(c))
        && (9..=21).contains(&s.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn check_slack_channel(base: &str, channel: Option<&str>, bad: &mut impl FnMut(String, String)) {
    if let Some(c) = channel {
        if !is_slack_id(c, "CG") {
            bad(
                format!("{base}.slack_channel"),
                format!(
                    "{c:?} is not a Slack channel id (C… or G…, as in the channel's details): \
                     names change, ids do not"
                ),
            );
        }
    }
}

fn check_jira(base: &str, jira: &crate::ticket::JiraTarget, bad: &mut impl FnMut(String, String)) {
    let key = &jira.project;
    let mut chars = key.chars();
    let key_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && (2..=10).contains(&key.len())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !key_ok {
        bad(
            format!("{base}.jira.project"),
            format!(
                "{key:?} is not a Jira project key (2 to 10 capital letters, digits or '_', \
                 starting with a letter, as in OPS-12)"
            ),
        );
    }
    for (field, value) in [
        ("issue_type", &jira.issue_type),
        ("mitigated", &jira.mitigated),
        ("duplicate", &jira.duplicate),
        ("rca_completed", &jira.rca_completed),
    ] {
        if value.trim().is_empty() || value.len() > MAX_NAME_LEN {
            bad(
                format!("{base}.jira.{field}"),
                format!("must be 1 to {MAX_NAME_LEN} characters"),
            );
        }
    }
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}
