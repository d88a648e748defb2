//! The on-call document: users and their contact methods and notification
//! rules, escalation policies, and services with integration keys. It is
//! replicated state, replaced all-or-nothing by `Command::ApplyConfig` after
//! [`OnCallDoc::validate`] accepted it. Everything is named by stable names and
//! kept in `BTreeMap`s so that export → apply is a no-op and snapshots are
//! byte-identical across replicas.

use crate::time::Span;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallDoc {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub escalation_policies: BTreeMap<String, EscalationPolicy>,
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Display name; the key in `users` is the stable name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub contact_methods: Vec<ContactMethod>,
    #[serde(default)]
    pub notification_rules: NotificationRules,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactMethod {
    /// Stable name, unique per user, referenced by notification rules.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ContactKind,
    /// E.164 phone number for sms and voice, an email address for email.
    pub address: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactKind {
    Sms,
    Voice,
    Email,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Sms => "sms",
            ContactKind::Voice => "voice",
            ContactKind::Email => "email",
        }
    }
}

/// How a user is notified, per urgency: each rule fires `after` the moment the
/// user is paged, through one of the user's contact methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRules {
    #[serde(default)]
    pub high: Vec<NotificationRule>,
    #[serde(default)]
    pub low: Vec<NotificationRule>,
}

impl NotificationRules {
    pub fn for_urgency(&self, urgency: Urgency) -> &[NotificationRule] {
        match urgency {
            Urgency::High => &self.high,
            Urgency::Low => &self.low,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRule {
    #[serde(default)]
    pub after: Span,
    /// Name of one of the user's contact methods.
    pub contact: String,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    #[default]
    High,
    Low,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::High => "high",
            Urgency::Low => "low",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPolicy {
    #[serde(default)]
    pub description: String,
    pub levels: Vec<EscalationLevel>,
    /// How many more times the whole policy runs after the last level when
    /// nobody acknowledged (0: page each level once).
    #[serde(default)]
    pub repeat: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// Time from this level being paged until the next level is.
    pub escalate_after: Span,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    User(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub description: String,
    /// Keys alert sources send with their events (`routing_key`).
    pub integration_keys: Vec<String>,
    pub escalation_policy: String,
    #[serde(default)]
    pub urgency: Urgency,
    /// Carried by every page of this service.
    #[serde(default)]
    pub runbook_url: String,
}

/// One problem in a document, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
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
    pub fn from_toml(text: &str) -> Result<OnCallDoc, Problem> {
        toml::from_str(text).map_err(|e| Problem {
            path: "document".into(),
            message: e.to_string().trim().to_string(),
        })
    }

    pub fn from_json(text: &str) -> Result<OnCallDoc, Problem> {
        serde_json::from_str(text).map_err(|e| Problem {
            path: "document".into(),
            message: e.to_string(),
        })
    }

    pub fn to_toml(&self) -> String {
        // The document holds only maps, strings, numbers and lists: it always
        // serializes; an empty string would only hide a bug in this crate.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Every problem in the document; empty means it may be applied.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |path: String, message: String| out.push(Problem { path, message });

        for (uname, user) in &self.users {
            let base = format!("users.{uname}");
            check_name(&base, uname, &mut bad);
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
                };
                if !ok {
                    let want = match cm.kind {
                        ContactKind::Email => "an email address",
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
                    && (policy.levels.len() > 1 || policy.repeat > 0)
                {
                    bad(format!("{p}.escalate_after"), "must be at least 1s".into());
                }
                for (j, t) in level.targets.iter().enumerate() {
                    let Target::User(u) = t;
                    if !self.users.contains_key(u) {
                        bad(
                            format!("{p}.targets[{j}].user"),
                            format!("unknown user {u:?}"),
                        );
                    }
                }
            }
        }

        let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
        for (sname, svc) in &self.services {
            let base = format!("services.{sname}");
            check_name(&base, sname, &mut bad);
            if svc.integration_keys.is_empty() {
                bad(
                    format!("{base}.integration_keys"),
                    "a service needs at least one integration key".into(),
                );
            }
            for (i, key) in svc.integration_keys.iter().enumerate() {
                let p = format!("{base}.integration_keys[{i}]");
                if key.len() < 8
                    || key.len() > 128
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    bad(
                        p,
                        "must be 8 to 128 characters of letters, digits, '-' or '_'".into(),
                    );
                } else if let Some(other) = keys.insert(key, sname) {
                    bad(p, format!("key already used by service {other:?}"));
                }
            }
            match self.escalation_policies.get(&svc.escalation_policy) {
                None => bad(
                    format!("{base}.escalation_policy"),
                    format!("unknown policy {:?}", svc.escalation_policy),
                ),
                Some(policy) => {
                    // Reachability: everyone on the path can be notified at this urgency.
                    for level in &policy.levels {
                        for Target::User(u) in &level.targets {
                            if let Some(user) = self.users.get(u) {
                                if user.notification_rules.for_urgency(svc.urgency).is_empty() {
                                    bad(
                                        format!("users.{u}.notification_rules.{}", svc.urgency.as_str()),
                                        format!(
                                            "user is on the escalation path of service {sname:?} ({} urgency) but has no rule for it",
                                            svc.urgency.as_str()
                                        ),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path).then(a.message.cmp(&b.message)));
        out.dedup();
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
