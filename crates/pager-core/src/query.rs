//! Read-only questions about the on-call setup, answered by the same code
//! that runs in the cluster: who is on call, and what a trigger would page.

use crate::command::{Command, Rejection, Response};
use crate::delivery::Delivery;
use crate::event::{Event, EventAction, Severity};
use crate::oncall::{OnCallDoc, Target};
use crate::state::State;
use crate::time::Millis;
use crate::LogMeta;
use serde::{Deserialize, Serialize};

/// Who one level of a service's policy would page at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelOnCall {
    /// 1-based.
    pub level: u32,
    /// The responders it would page.
    pub users: Vec<String>,
    /// The shadows it would copy.
    pub shadows: Vec<String>,
    /// The next instant the answer for this level may change (from schedules).
    pub until: Option<Millis>,
}

/// A schedule a user is on call for at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserOnCall {
    /// The schedule's name.
    pub schedule: String,
    /// True when the user shadows rather than responds.
    pub shadow: bool,
    /// When the answer may next change, in milliseconds since the Unix epoch; None:
    /// not within [`crate::schedule::UNTIL_HORIZON`].
    pub until: Option<Millis>,
}

/// One page of a simulated trigger nobody answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPage {
    /// When it would go out, in milliseconds since the Unix epoch.
    pub at: Millis,
    /// The user paged.
    pub user: String,
    /// `sms`, `voice` or `email`.
    pub method: String,
    /// The name of the user's contact method it would go to.
    pub contact: String,
    /// A copy for a shadow, not a responder.
    pub shadow: bool,
    /// 1-based level and 0-based repeat of the primary track when paged.
    pub level: u32,
    /// Completed repeats of the policy when paged (0 on the first pass).
    pub repeat: u32,
}

/// How far ahead a simulation looks, and how many pages it lists at most.
pub const SIMULATION_HORIZON: Millis = 7 * 86_400_000;
/// Most pages a simulation lists.
pub const SIMULATION_MAX_PAGES: usize = 500;

impl OnCallDoc {
    /// Each level of a service's policy at `at`.
    pub fn service_on_call(&self, service: &str, at: Millis) -> Option<Vec<LevelOnCall>> {
        let svc = self.services.get(service)?;
        let policy = self.escalation_policies.get(&svc.escalation_policy)?;
        Some(
            policy
                .levels
                .iter()
                .enumerate()
                .map(|(i, level)| {
                    let mut out = LevelOnCall {
                        level: i as u32 + 1,
                        users: vec![],
                        shadows: vec![],
                        until: None,
                    };
                    for t in &level.targets {
                        match t {
                            Target::User(u) => out.users.push(u.clone()),
                            Target::Team(name) => out.users.extend(
                                self.teams
                                    .get(name)
                                    .into_iter()
                                    .flat_map(|t| t.members.clone()),
                            ),
                            Target::Schedule(name) => {
                                if let Some(s) = self.schedules.get(name) {
                                    let on = s.on_call_at(at);
                                    out.users.extend(on.users);
                                    out.shadows.extend(on.shadows);
                                    out.until = match (out.until, on.until) {
                                        (Some(a), Some(b)) => Some(a.min(b)),
                                        (a, b) => a.or(b),
                                    };
                                }
                            }
                        }
                    }
                    out
                })
                .collect(),
        )
    }

    /// The schedules that have `user` on call (or shadowing) at `at`.
    pub fn user_on_call(&self, user: &str, at: Millis) -> Vec<UserOnCall> {
        self.schedules
            .iter()
            .filter_map(|(name, s)| {
                let on = s.on_call_at(at);
                let shadow = on.shadows.iter().any(|u| u == user);
                (shadow || on.users.iter().any(|u| u == user)).then(|| UserOnCall {
                    schedule: name.clone(),
                    shadow,
                    until: on.until,
                })
            })
            .collect()
    }
}

impl State {
    /// The pages a trigger on `service` at `at` would send if nobody ever
    /// answered: the real `apply` on a copy of the state, ticked from
    /// deadline to deadline (up to a week, at most 500 pages).
    pub fn simulate(
        &self,
        service: &str,
        at: Millis,
        severity: Severity,
    ) -> Result<Vec<PlannedPage>, Rejection> {
        let svc = self
            .config
            .services
            .get(service)
            .ok_or_else(|| Rejection::NotFound {
                field: "service".into(),
                what: format!("service {service:?}"),
            })?;
        let key = svc.integration_keys.first().cloned().unwrap_or_default();
        let mut sim = self.clone();
        let at = at.max(sim.clock);
        let mut meta = LogMeta {
            index: sim.last_applied.index,
            term: sim.last_applied.term,
        };
        let dedup_key = format!("pagerd-simulation-{}", meta.index);
        let mut step = |sim: &mut State, cmd: Command| {
            meta.index += 1;
            sim.apply(meta, &cmd).response
        };
        let event = Event {
            routing_key: key,
            action: EventAction::Trigger,
            dedup_key,
            summary: "simulated trigger".into(),
            severity,
            ..Default::default()
        };
        let incident = match step(
            &mut sim,
            Command::Ingest {
                at,
                event: Box::new(event),
            },
        ) {
            Response::Event {
                incident: Some(id), ..
            } => id,
            Response::Rejected(r) => return Err(r),
            _ => return Ok(vec![]),
        };
        let mut seen = 0;
        let mut pages = Vec::new();
        let collect = |sim: &State, seen: &mut usize, pages: &mut Vec<PlannedPage>| {
            let Some(inc) = sim.incidents.get(&incident) else {
                return;
            };
            let (level, repeat) = inc.escalation();
            for d in inc.deliveries[*seen..]
                .iter()
                .filter_map(|d| sim.deliveries.get(d))
            {
                pages.push(planned(d, level + 1, repeat));
            }
            *seen = inc.deliveries.len();
        };
        collect(&sim, &mut seen, &mut pages);
        while pages.len() < SIMULATION_MAX_PAGES {
            let Some(next) = sim.next_deadline() else {
                break;
            };
            if next > at + SIMULATION_HORIZON {
                break;
            }
            step(&mut sim, Command::Tick { at: next });
            collect(&sim, &mut seen, &mut pages);
        }
        pages.truncate(SIMULATION_MAX_PAGES);
        Ok(pages)
    }
}

fn planned(d: &Delivery, level: u32, repeat: u32) -> PlannedPage {
    PlannedPage {
        at: d.created_at,
        user: d.user.clone(),
        method: d.method.as_str().into(),
        contact: d.contact.clone(),
        shadow: d.shadow,
        level,
        repeat,
    }
}
