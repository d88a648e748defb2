//! What applying a new on-call document would change, entity by entity
//! (`pagerctl diff -f FILE`).

use crate::oncall::OnCallDoc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one entity differs between the live document and the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the new document.
    Added,
    /// Only in the live document.
    Removed,
    /// In both, with different contents.
    Changed,
}

/// One entity that applying the new document would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `users.alice`, `services.checkout`, `routing_rules`.
    pub path: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
}

fn section<T: PartialEq>(
    name: &str,
    old: &BTreeMap<String, T>,
    new: &BTreeMap<String, T>,
    out: &mut Vec<Change>,
) {
    for (k, v) in old {
        match new.get(k) {
            None => out.push(Change {
                path: format!("{name}.{k}"),
                kind: ChangeKind::Removed,
            }),
            Some(n) if n != v => out.push(Change {
                path: format!("{name}.{k}"),
                kind: ChangeKind::Changed,
            }),
            Some(_) => {}
        }
    }
    for k in new.keys().filter(|k| !old.contains_key(*k)) {
        out.push(Change {
            path: format!("{name}.{k}"),
            kind: ChangeKind::Added,
        });
    }
}

impl OnCallDoc {
    /// Changes from `self` (live) to `new`, in document order. Empty: applying is a no-op.
    pub fn diff(&self, new: &OnCallDoc) -> Vec<Change> {
        let mut out = Vec::new();
        section("users", &self.users, &new.users, &mut out);
        section("teams", &self.teams, &new.teams, &mut out);
        section("schedules", &self.schedules, &new.schedules, &mut out);
        section(
            "escalation_policies",
            &self.escalation_policies,
            &new.escalation_policies,
            &mut out,
        );
        section("tiers", &self.tiers, &new.tiers, &mut out);
        section("services", &self.services, &new.services, &mut out);
        section("heartbeats", &self.heartbeats, &new.heartbeats, &mut out);
        section("webhooks", &self.webhooks, &new.webhooks, &mut out);
        if self.maintenance_windows != new.maintenance_windows {
            out.push(Change {
                path: "maintenance_windows".into(),
                kind: ChangeKind::Changed,
            });
        }
        if self.routing_rules != new.routing_rules {
            let kind = match (self.routing_rules.is_empty(), new.routing_rules.is_empty()) {
                (true, false) => ChangeKind::Added,
                (false, true) => ChangeKind::Removed,
                _ => ChangeKind::Changed,
            };
            out.push(Change {
                path: "routing_rules".into(),
                kind,
            });
        }
        out
    }
}
