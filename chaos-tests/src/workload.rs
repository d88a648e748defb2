//! The on-call documents scenarios apply, and the model of what they page.
//!
//! [`OnCall`] renders to the TOML `Config.Apply` takes and, independently of `pager-core`, says
//! which pages an incident must produce and when ([`OnCall::expected_pages`]): level `k` of
//! repeat `r` is paged at `created + (r * levels + k)` escalation delays, each user through
//! every contact method `after_ms` later (at once by default), until the incident is
//! acknowledged.

use crate::history::ExpectedPage;
use crate::pages::PageChannel;
use std::fmt::Write as _;

/// A user notified by SMS and/or email `after_ms` after their level is paged (at once by
/// default). pagerd requires a notification rule of every user on an escalation path.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub sms: Option<String>,
    pub email: Option<String>,
    pub after_ms: u64,
}

impl User {
    pub fn new(name: &str) -> User {
        User {
            name: name.into(),
            sms: None,
            email: None,
            after_ms: 0,
        }
    }
    /// Notify this long after the user's level is paged instead of at once.
    pub fn after(mut self, ms: u64) -> User {
        self.after_ms = ms;
        self
    }
    pub fn sms(mut self, number: &str) -> User {
        self.sms = Some(number.into());
        self
    }
    pub fn email(mut self, address: &str) -> User {
        self.email = Some(address.into());
        self
    }
}

#[derive(Debug, Clone)]
pub struct Level {
    /// Delay before the next level (or repeat) is paged.
    pub escalate_after_ms: u64,
    pub users: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// Times the whole policy is paged again after the first pass.
    pub repeat: u32,
    pub levels: Vec<Level>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub key: String,
    pub policy: String,
}

#[derive(Debug, Clone, Default)]
pub struct OnCall {
    pub users: Vec<User>,
    pub policies: Vec<Policy>,
    pub services: Vec<Service>,
}

impl OnCall {
    pub fn user(mut self, u: User) -> OnCall {
        self.users.push(u);
        self
    }

    /// A policy of `levels` as `(escalate_after_ms, users)`.
    pub fn policy(mut self, name: &str, repeat: u32, levels: &[(u64, &[&str])]) -> OnCall {
        self.policies.push(Policy {
            name: name.into(),
            repeat,
            levels: levels
                .iter()
                .map(|(after, users)| Level {
                    escalate_after_ms: *after,
                    users: users.iter().map(|u| u.to_string()).collect(),
                })
                .collect(),
        });
        self
    }

    pub fn service(mut self, name: &str, key: &str, policy: &str) -> OnCall {
        self.services.push(Service {
            name: name.into(),
            key: key.into(),
            policy: policy.into(),
        });
        self
    }

    /// The document for `Config.Apply` (format `toml`).
    pub fn to_toml(&self) -> String {
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let mut out = String::new();
        for u in &self.users {
            let _ = writeln!(out, "[users.{}]", u.name);
            let mut methods = Vec::new();
            let mut rules = Vec::new();
            if let Some(n) = &u.sms {
                methods.push(format!(
                    "{{ name = \"sms\", type = \"sms\", address = {} }}",
                    q(n)
                ));
                rules.push(format!(
                    "{{ after = \"{}\", contact = \"sms\" }}",
                    span(u.after_ms)
                ));
            }
            if let Some(a) = &u.email {
                methods.push(format!(
                    "{{ name = \"email\", type = \"email\", address = {} }}",
                    q(a)
                ));
                rules.push(format!(
                    "{{ after = \"{}\", contact = \"email\" }}",
                    span(u.after_ms)
                ));
            }
            let _ = writeln!(out, "contact_methods = [ {} ]", methods.join(", "));
            let _ = writeln!(out, "notification_rules.high = [ {} ]\n", rules.join(", "));
        }
        for p in &self.policies {
            let _ = writeln!(out, "[escalation_policies.{}]", p.name);
            let _ = writeln!(out, "repeat = {}", p.repeat);
            let _ = writeln!(out, "levels = [");
            for l in &p.levels {
                let targets: Vec<String> = l
                    .users
                    .iter()
                    .map(|u| format!("{{ user = {} }}", q(u)))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {{ escalate_after = \"{}\", targets = [ {} ] }},",
                    span(l.escalate_after_ms),
                    targets.join(", ")
                );
            }
            let _ = writeln!(out, "]\n");
        }
        for s in &self.services {
            let _ = writeln!(out, "[services.{}]", s.name);
            let _ = writeln!(out, "integration_keys = [{}]", q(&s.key));
            let _ = writeln!(out, "escalation_policy = {}", q(&s.policy));
            let _ = writeln!(
                out,
                "runbook_url = \"https://runbooks.example.com/{}\"\n",
                s.name
            );
        }
        out
    }

    /// Every page an incident of `service` created at `created_ms` must produce while it is
    /// not acknowledged: those due strictly before `acked_ms` (all of them when `None`).
    pub fn expected_pages(
        &self,
        service: &str,
        incident: u64,
        created_ms: u64,
        acked_ms: Option<u64>,
    ) -> Vec<ExpectedPage> {
        let mut out = Vec::new();
        let Some(policy) = self
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| self.policies.iter().find(|p| p.name == s.policy))
        else {
            return out;
        };
        let mut due = created_ms;
        for _repeat in 0..=policy.repeat {
            for level in &policy.levels {
                if acked_ms.is_some_and(|a| due >= a) {
                    return out;
                }
                for name in &level.users {
                    let Some(u) = self.users.iter().find(|u| &u.name == name) else {
                        continue;
                    };
                    let page_due = due + u.after_ms;
                    if acked_ms.is_some_and(|a| page_due >= a) {
                        continue;
                    }
                    let methods = [(PageChannel::Sms, &u.sms), (PageChannel::Email, &u.email)];
                    for (channel, to) in methods {
                        if let Some(to) = to {
                            out.push(ExpectedPage {
                                incident,
                                channel,
                                to: to.clone(),
                                due_ms: page_due,
                            });
                        }
                    }
                }
                due += level.escalate_after_ms;
            }
        }
        out
    }

    /// When the first page due after `after_ms` would be due (for absence checks).
    pub fn next_due_after(&self, service: &str, created_ms: u64, after_ms: u64) -> Option<u64> {
        let policy = self
            .services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| self.policies.iter().find(|p| p.name == s.policy))?;
        let mut due = created_ms;
        for _repeat in 0..=policy.repeat {
            for level in &policy.levels {
                if due > after_ms {
                    return Some(due);
                }
                due += level.escalate_after_ms;
            }
        }
        None
    }
}

/// A duration as pagerd's on-call document writes it: `0`, `4s`, `1500ms`.
fn span(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> OnCall {
        OnCall::default()
            .user(
                User::new("alice")
                    .sms("+15550100001")
                    .email("alice@example.com"),
            )
            .user(User::new("bob").sms("+15550100002"))
            .policy("db", 1, &[(4_000, &["alice"]), (4_000, &["bob"])])
            .service("database", "db-key-0001", "db")
    }

    #[test]
    fn pages_follow_levels_and_repeats_until_the_ack() {
        let all = doc().expected_pages("database", 9, 1_000, None);
        let due: Vec<(u64, &str)> = all.iter().map(|p| (p.due_ms, p.to.as_str())).collect();
        assert_eq!(
            due,
            vec![
                (1_000, "+15550100001"),
                (1_000, "alice@example.com"),
                (5_000, "+15550100002"),
                (9_000, "+15550100001"),
                (9_000, "alice@example.com"),
                (13_000, "+15550100002"),
            ]
        );
        let acked = doc().expected_pages("database", 9, 1_000, Some(6_000));
        assert_eq!(acked.len(), 3);
        assert_eq!(doc().next_due_after("database", 1_000, 6_000), Some(9_000));
        assert_eq!(doc().next_due_after("database", 1_000, 13_000), None);
    }

    #[test]
    fn the_document_is_toml_pagerd_accepts() {
        let text = doc().to_toml();
        assert!(text.contains("[users.alice]"), "{text}");
        assert!(text.contains("escalate_after = \"4s\""), "{text}");
        assert!(
            text.contains("integration_keys = [\"db-key-0001\"]"),
            "{text}"
        );
    }
}
