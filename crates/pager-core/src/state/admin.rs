//! The document and the state's housekeeping: applying a new on-call
//! document, compacting old resolved incidents, schedule overrides and API
//! tokens.

use super::{rejected_invalid, RouterCache, State};
use crate::command::{Rejection, Response};
use crate::delivery::DeliveryStatus;
use crate::incident::{Incident, IncidentId, IncidentStatus};
use crate::oncall::OnCallDoc;
use crate::routing::Router;
use crate::time::Millis;
use std::sync::Arc;

impl State {
    pub(super) fn apply_config(&mut self, doc: &OnCallDoc) -> Response {
        let problems = doc.validate();
        if !problems.is_empty() {
            return Response::Rejected(Rejection::ConfigInvalid { problems });
        }
        self.config = Arc::new(doc.clone());
        self.config_version += 1;
        // A user removed from the document loses console access with it.
        self.credentials
            .retain(|user, _| doc.users.contains_key(user));
        self.signed_out
            .retain(|user, _| doc.users.contains_key(user));
        self.router = RouterCache(Router::new(&doc.routing_rules).ok());
        self.key_index = doc
            .services
            .iter()
            .flat_map(|(name, svc)| {
                svc.integration_keys
                    .iter()
                    .map(move |k| (k.clone(), name.clone()))
            })
            .collect();
        // Monitors that left the document stop; their timers go with them.
        let gone: Vec<String> = self
            .heartbeats
            .keys()
            .filter(|n| !doc.heartbeats.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(key) = self.heartbeats.remove(&name).and_then(|h| h.timer) {
                self.timers.remove(&key);
            }
        }
        Response::ConfigApplied {
            version: self.config_version,
        }
    }

    /// Whether some incident was resolved before `before` (the leader's
    /// cheap check before proposing `Compact`).
    pub fn has_resolved_before(&self, before: Millis) -> bool {
        self.incidents
            .values()
            .any(|i| Self::compactable(i, before))
    }

    pub(super) fn compactable(i: &Incident, before: Millis) -> bool {
        i.status == IncidentStatus::Resolved && i.resolved_at.is_some_and(|t| t < before)
    }

    /// Forget incidents resolved before `before` and their deliveries. An
    /// incident with a delivery still pending (cannot happen after resolve,
    /// which cancels them) is kept.
    pub(super) fn compact(&mut self, before: Millis) -> Response {
        let old: Vec<IncidentId> = self
            .incidents
            .values()
            .filter(|i| Self::compactable(i, before))
            .filter(|i| !i.deliveries.iter().any(|d| self.pending.contains(d)))
            .map(|i| i.id)
            .collect();
        let mut deliveries = 0;
        for id in &old {
            let Some(inc) = self.incidents.remove(id) else {
                continue;
            };
            for key in &inc.timers {
                self.timers.remove(key);
            }
            for d in &inc.deliveries {
                deliveries += u64::from(self.deliveries.remove(d).is_some());
            }
        }
        // Test pages, invitations and reminders belong to no incident: they go
        // once settled and as old. One waiting to retry is not settled: its
        // retry timer would find nothing and the message would be lost.
        let pending = &self.pending;
        let before_tests = self.deliveries.len();
        self.deliveries.retain(|id, d| {
            d.purpose.is_page()
                || d.updated_at >= before
                || pending.contains(id)
                || d.status == DeliveryStatus::RetryWait
        });
        deliveries += (before_tests - self.deliveries.len()) as u64;
        self.forget_rcas(before);
        self.forget_chats();
        self.forget_tickets();
        let (incidents, known) = (&self.incidents, &self.deliveries);
        self.latest_to_phone.retain(|_, d| known.contains_key(d));
        self.last_ungrouped.retain(|_, i| incidents.contains_key(i));
        Response::Compacted {
            incidents: old.len() as u64,
            deliveries,
        }
    }

    pub(super) fn add_override(
        &mut self,
        schedule: &str,
        over: &crate::schedule::Override,
    ) -> Response {
        if !self.config.schedules.contains_key(schedule) {
            return Response::Rejected(Rejection::NotFound {
                field: "schedule".into(),
                what: format!("schedule {schedule:?}"),
            });
        }
        if over.end <= over.start {
            return rejected_invalid("end", "must be after start");
        }
        let mut doc = (*self.config).clone();
        if let Some(s) = doc.schedules.get_mut(schedule) {
            s.overrides.push(over.clone());
        }
        self.apply_config(&doc)
    }

    pub(super) fn create_token(
        &mut self,
        at: Millis,
        name: &str,
        role: crate::auth::TokenRole,
        sha256: &str,
        by: &str,
    ) -> Response {
        if name.trim().is_empty() || name.len() > crate::auth::MAX_TOKEN_NAME {
            return rejected_invalid(
                "name",
                format!("1 to {} bytes", crate::auth::MAX_TOKEN_NAME),
            );
        }
        if self.tokens.contains_key(name) {
            return rejected_invalid(
                "name",
                format!("a token named {name:?} exists; revoke it first"),
            );
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return rejected_invalid("sha256", "64 hex digits");
        }
        if self.tokens.values().any(|t| t.sha256 == sha256) {
            return rejected_invalid("sha256", "another token has this secret");
        }
        self.tokens.insert(
            name.to_string(),
            crate::auth::ApiToken {
                name: name.to_string(),
                role,
                sha256: sha256.to_ascii_lowercase(),
                created_at: at,
                created_by: by.to_string(),
            },
        );
        Response::Noop
    }

    pub(super) fn set_password(
        &mut self,
        index: u64,
        at: Millis,
        user: &str,
        role: crate::auth::TokenRole,
        phc: &str,
        by: &str,
    ) -> Response {
        if !self.config.users.contains_key(user) {
            return Response::Rejected(Rejection::NotFound {
                field: "user".into(),
                what: format!("user {user:?} in the on-call document"),
            });
        }
        if !phc.starts_with("$argon2id$") || phc.len() > crate::auth::MAX_PHC {
            return rejected_invalid(
                "phc",
                format!(
                    "an Argon2id PHC string of at most {} bytes",
                    crate::auth::MAX_PHC
                ),
            );
        }
        self.credentials.insert(
            user.to_string(),
            crate::auth::Credential {
                user: user.to_string(),
                role,
                phc: phc.to_string(),
                set_at: at,
                set_by: by.to_string(),
                sessions_version: index,
            },
        );
        Response::Noop
    }

    /// The token whose secret has this digest.
    pub fn token_by_digest(&self, sha256: &str) -> Option<&crate::auth::ApiToken> {
        self.tokens.values().find(|t| t.sha256 == sha256)
    }
}
