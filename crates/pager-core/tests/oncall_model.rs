//! Exact-effect tests of the on-call model: schedules and teams as targets,
//! skipped empty levels, fallback, routing rules, grouping, urgency by
//! severity, ack timeout, auto-resolve, incident actions and heartbeats.

use pager_core::command::{Command, Effect, Rejection, Responder, Response};
use pager_core::incident::{Assignee, Role};
use pager_core::{
    Event, EventAction, IncidentStatus, LogMeta, OnCallDoc, Severity, State, Urgency,
};

// 2026-03-02 (a Monday) 12:00 UTC = 07:00 in New York (EST).
const MON_1200Z: u64 = 1_772_452_800_000;
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "sms", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
notification_rules.low = [ { after = "0", contact = "sms" } ]
[users.bob]
contact_methods = [ { name = "sms", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
notification_rules.low = [ { after = "0", contact = "sms" } ]
[users.carol]
contact_methods = [ { name = "email", type = "email", address = "carol@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]
notification_rules.low = [ { after = "0", contact = "email" } ]
[users.dave]
contact_methods = [ { name = "email", type = "email", address = "dave@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]
notification_rules.low = [ { after = "0", contact = "email" } ]

[teams.product]
members = ["bob", "carol"]
[teams.devops]
members = ["alice"]
escalation_policy = "devops"

# Business hours only (Mon-Fri 08:00-20:00 New York): alice, with dave shadowing.
[schedules.triage]
time_zone = "America/New_York"
# Exact-effect tests of paging: handoff emails (tests/handoff.rs) would add their timers.
handoffs = false
[[schedules.triage.layers]]
name = "business-hours"
start = "2026-01-05T08:00:00"
rotation = "weekly"
users = ["alice"]
shadows = ["dave"]
restrictions = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00" } ]

[escalation_policies.triage]
levels = [
  { escalate_after = "10m", targets = [ { schedule = "triage" } ] },
  { escalate_after = "10m", targets = [ { team = "product" } ] },
]
fallback = { user = "carol" }

[escalation_policies.devops]
levels = [
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
  { escalate_after = "5m", targets = [ { user = "bob" } ] },
]

[tiers.tier1]
ack_sla = "5m"

[services.checkout]
integration_keys = ["checkout-key-1"]
escalation_policy = "triage"
urgency = "severity"
tier = "tier1"
grouping_window = "10m"
ack_timeout = "30m"

[services.database]
integration_keys = ["database-key-1"]
escalation_policy = "devops"
auto_resolve_after = "4h"

[heartbeats.nightly-backup]
service = "database"
interval = "1h"
key = "backup-heartbeat-1"

[[routing_rules]]
name = "shared-postgres-pages-both"
conditions = [ { field = "component", op = "equals", value = "postgres" } ]
route_to = ["checkout", "database"]
continue = true
[[routing_rules]]
name = "drop-test-noise"
conditions = [ { field = "details.env", op = "equals", value = "test" } ]
suppress = true
"#;

struct Log {
    state: State,
    index: u64,
}

impl Log {
    fn new() -> Log {
        let mut log = Log {
            state: State::default(),
            index: 0,
        };
        let doc = OnCallDoc::from_toml(DOC).expect("fixture parses");
        assert_eq!(doc.validate(), vec![]);
        let (r, _) = log.apply(Command::ApplyConfig {
            at: MON_1200Z - HOUR,
            doc: Box::new(doc),
        });
        assert_eq!(r, Response::ConfigApplied { version: 1 });
        log
    }

    fn apply(&mut self, cmd: Command) -> (Response, Vec<Effect>) {
        self.index += 1;
        let applied = self.state.apply(
            LogMeta {
                index: self.index,
                term: 1,
            },
            &cmd,
        );
        self.state
            .check_invariants()
            .expect("invariants hold after every apply");
        (applied.response, applied.effects)
    }

    fn send(&mut self, at: u64, event: Event) -> (Response, Vec<Effect>) {
        self.apply(Command::Ingest {
            at,
            event: Box::new(event),
        })
    }

    /// (user, shadow) of every delivery of an incident, in order.
    fn paged(&self, incident: u64) -> Vec<(String, bool)> {
        self.state.incidents[&incident]
            .deliveries
            .iter()
            .map(|d| {
                (
                    self.state.deliveries[d].user.clone(),
                    self.state.deliveries[d].shadow,
                )
            })
            .collect()
    }
}

fn ev(key: &str, dedup: &str) -> Event {
    Event {
        routing_key: key.into(),
        action: EventAction::Trigger,
        dedup_key: dedup.into(),
        summary: "checkout errors".into(),
        severity: Severity::Critical,
        ..Default::default()
    }
}

fn users(v: &[(&str, bool)]) -> Vec<(String, bool)> {
    v.iter().map(|(u, s)| (u.to_string(), *s)).collect()
}

#[test]
fn outside_business_hours_the_empty_level_is_skipped_at_once() {
    // 07:00 in New York: the triage schedule has nobody; product is paged now.
    let mut log = Log::new();
    let (resp, effects) = log.send(MON_1200Z, ev("checkout-key-1", "k"));
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(1),
            dedup_key: "k".into(),
            folded: false
        }
    );
    assert_eq!(
        effects,
        vec![
            Effect::IncidentOpened { incident: 1 },
            Effect::Escalated {
                incident: 1,
                level: 1,
                repeat: 0
            },
            Effect::Deliver {
                delivery: 1,
                term: 1
            },
            Effect::Deliver {
                delivery: 2,
                term: 1
            },
            Effect::WakeAt(MON_1200Z + 10 * MIN),
        ]
    );
    assert_eq!(log.paged(1), users(&[("bob", false), ("carol", false)]));
    let inc = &log.state.incidents[&1];
    assert!(inc
        .timeline
        .iter()
        .any(|t| t.what == "level 1: nobody on call, skipped"));
    assert_eq!(inc.ack_due, Some(MON_1200Z + 5 * MIN), "tier1 SLA");
    // After the last level, the fallback (carol) is paged.
    let (_, effects) = log.apply(Command::Tick {
        at: MON_1200Z + 10 * MIN,
    });
    assert_eq!(
        effects,
        vec![Effect::Deliver {
            delivery: 3,
            term: 1
        }]
    );
    assert_eq!(log.state.deliveries[&3].user, "carol");
    assert_eq!(log.state.next_deadline(), None, "nothing left to page");
}

#[test]
fn inside_business_hours_the_schedule_pages_its_user_and_shadow() {
    // 13:00 New York (18:00 UTC).
    let mut log = Log::new();
    log.send(MON_1200Z + 6 * HOUR, ev("checkout-key-1", "k"));
    assert_eq!(log.paged(1), users(&[("alice", false), ("dave", true)]));
    // Nobody answers: level 2 (the product team) 10 minutes later.
    log.apply(Command::Tick {
        at: MON_1200Z + 6 * HOUR + 10 * MIN,
    });
    assert_eq!(
        log.paged(1),
        users(&[
            ("alice", false),
            ("dave", true),
            ("bob", false),
            ("carol", false)
        ])
    );
}

#[test]
fn routing_rule_pages_both_services_and_suppress_records_only() {
    let mut log = Log::new();
    let mut e = ev("checkout-key-1", "pg-1");
    e.component = "postgres".into();
    let (resp, _) = log.send(MON_1200Z, e);
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(1),
            dedup_key: "pg-1".into(),
            folded: false
        }
    );
    let services: Vec<&str> = log
        .state
        .incidents
        .values()
        .map(|i| i.service.as_str())
        .collect();
    assert_eq!(services, vec!["checkout", "database"]);
    assert!(log.state.incidents[&2]
        .timeline
        .iter()
        .any(|t| t.what.contains("shared-postgres-pages-both")));

    let mut noise = ev("checkout-key-1", "noise");
    noise.custom_details.insert("env".into(), "test".into());
    let (resp, effects) = log.send(MON_1200Z + 1, noise);
    assert_eq!(
        resp,
        Response::Event {
            incident: None,
            dedup_key: "noise".into(),
            folded: false
        }
    );
    assert_eq!(effects, vec![]);
    assert_eq!(log.state.stats.events_suppressed, 1);
}

#[test]
fn urgency_follows_severity_and_grouping_window_folds_keyless_triggers() {
    let mut log = Log::new();
    let mut warn = ev("checkout-key-1", "");
    warn.severity = Severity::Warning;
    let (resp, _) = log.send(MON_1200Z, warn.clone());
    let Response::Event {
        incident: Some(first),
        folded: false,
        ..
    } = resp
    else {
        panic!("{resp:?}")
    };
    assert_eq!(log.state.incidents[&first].urgency, Urgency::Low);
    let (resp, _) = log.send(MON_1200Z + 9 * MIN, warn.clone());
    assert!(matches!(resp, Response::Event { incident: Some(i), folded: true, .. } if i == first));
    // Past the window: a new incident.
    let (resp, _) = log.send(MON_1200Z + 11 * MIN, warn);
    assert!(matches!(resp, Response::Event { incident: Some(i), folded: false, .. } if i != first));
}

#[test]
fn acknowledged_incident_retriggers_after_the_ack_timeout() {
    let mut log = Log::new();
    log.send(MON_1200Z, ev("checkout-key-1", "k"));
    log.apply(Command::Acknowledge {
        at: MON_1200Z + MIN,
        incident: 1,
        by: "bob".into(),
    });
    assert_eq!(log.state.next_deadline(), Some(MON_1200Z + 31 * MIN));
    let (_, effects) = log.apply(Command::Tick {
        at: MON_1200Z + 31 * MIN,
    });
    assert_eq!(effects[0], Effect::IncidentRetriggered { incident: 1 });
    assert_eq!(log.state.incidents[&1].status, IncidentStatus::Triggered);
    assert_eq!(log.paged(1).len(), 4, "product paged again");
}

#[test]
fn auto_resolve_survives_acknowledgement() {
    let mut log = Log::new();
    log.send(MON_1200Z, ev("database-key-1", "k"));
    log.apply(Command::Acknowledge {
        at: MON_1200Z + MIN,
        incident: 1,
        by: "alice".into(),
    });
    let (_, effects) = log.apply(Command::Tick {
        at: MON_1200Z + 4 * HOUR,
    });
    assert_eq!(effects, vec![Effect::IncidentResolved { incident: 1 }]);
    assert_eq!(log.state.incidents[&1].resolved_by, "pagerd (auto-resolve)");
}

#[test]
fn snooze_stops_paging_then_triggers_again() {
    let mut log = Log::new();
    log.send(MON_1200Z, ev("database-key-1", "k"));
    let until = MON_1200Z + HOUR;
    let (resp, _) = log.apply(Command::Snooze {
        at: MON_1200Z + MIN,
        incident: 1,
        until,
        by: "alice".into(),
    });
    assert_eq!(resp, Response::Incident { id: 1 });
    let inc = &log.state.incidents[&1];
    assert_eq!(
        (inc.status, inc.snoozed_until),
        (IncidentStatus::Acknowledged, Some(until))
    );
    assert_eq!(
        log.state.next_deadline(),
        Some(until),
        "only the snooze timer is left"
    );
    let (_, effects) = log.apply(Command::Tick { at: until });
    assert_eq!(effects[0], Effect::IncidentRetriggered { incident: 1 });
    assert_eq!(log.paged(1), users(&[("alice", false), ("alice", false)]));
    let (resp, _) = log.apply(Command::Snooze {
        at: until + 1,
        incident: 1,
        until: until - 1,
        by: "alice".into(),
    });
    assert!(
        matches!(resp, Response::Rejected(Rejection::Invalid { ref field, .. }) if field == "until")
    );
}

#[test]
fn reassign_escalate_and_add_responders() {
    let mut log = Log::new();
    log.send(MON_1200Z, ev("database-key-1", "k"));
    // Escalate now to level 2 of devops: bob.
    log.apply(Command::Escalate {
        at: MON_1200Z + MIN,
        incident: 1,
        level: 2,
        by: "alice".into(),
    });
    assert_eq!(log.paged(1), users(&[("alice", false), ("bob", false)]));
    let (resp, _) = log.apply(Command::Escalate {
        at: MON_1200Z + MIN,
        incident: 1,
        level: 3,
        by: "x".into(),
    });
    assert!(matches!(
        resp,
        Response::Rejected(Rejection::Invalid { .. })
    ));
    // Reassign to carol: only she is paged from now on.
    log.apply(Command::Reassign {
        at: MON_1200Z + 2 * MIN,
        incident: 1,
        to: Assignee::User("carol".into()),
        by: "bob".into(),
    });
    assert_eq!(log.paged(1).last().unwrap().0, "carol");
    assert_eq!(
        log.state.next_deadline(),
        Some(MON_1200Z + 4 * HOUR),
        "only auto-resolve is left"
    );
    // Add the devops team as responders: its policy runs on its own track.
    log.apply(Command::AddResponders {
        at: MON_1200Z + 3 * MIN,
        incident: 1,
        targets: vec![Responder::Team("devops".into())],
        by: "carol".into(),
    });
    assert_eq!(log.paged(1).last().unwrap().0, "alice");
    let (_, effects) = log.apply(Command::Tick {
        at: MON_1200Z + 8 * MIN,
    });
    assert_eq!(
        effects[0],
        Effect::Escalated {
            incident: 1,
            level: 1,
            repeat: 0
        }
    );
    assert_eq!(log.paged(1).last().unwrap().0, "bob");
    let (resp, _) = log.apply(Command::AddResponders {
        at: MON_1200Z + 9 * MIN,
        incident: 1,
        targets: vec![Responder::User("nobody".into())],
        by: "carol".into(),
    });
    assert!(
        matches!(resp, Response::Rejected(Rejection::NotFound { ref field, .. }) if field == "targets[0]")
    );
}

#[test]
fn merge_resolves_the_duplicate_and_later_triggers_fold_into_the_survivor() {
    let mut log = Log::new();
    log.send(MON_1200Z, ev("database-key-1", "a"));
    log.send(MON_1200Z, ev("database-key-1", "b"));
    let (resp, _) = log.apply(Command::Merge {
        at: MON_1200Z + MIN,
        incident: 2,
        into: 1,
        by: "alice".into(),
    });
    assert_eq!(resp, Response::Incident { id: 1 });
    let dup = &log.state.incidents[&2];
    assert_eq!(
        (dup.status, dup.merged_into),
        (IncidentStatus::Resolved, Some(1))
    );
    let (resp, _) = log.send(MON_1200Z + 2 * MIN, ev("database-key-1", "b"));
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(1),
            dedup_key: "b".into(),
            folded: true
        }
    );
    // Resolving the survivor frees both keys.
    log.apply(Command::Resolve {
        at: MON_1200Z + 3 * MIN,
        incident: 1,
        by: "alice".into(),
    });
    let (resp, _) = log.send(MON_1200Z + 4 * MIN, ev("database-key-1", "b"));
    assert_eq!(
        resp,
        Response::Event {
            incident: Some(3),
            dedup_key: "b".into(),
            folded: false
        }
    );
}

#[test]
fn roles_and_notes_land_in_the_timeline_with_who() {
    let mut log = Log::new();
    log.send(MON_1200Z, ev("database-key-1", "a"));
    log.apply(Command::SetRole {
        at: MON_1200Z + 1,
        incident: 1,
        role: Role::Commander,
        user: "bob".into(),
        by: "alice".into(),
    });
    log.apply(Command::SetRole {
        at: MON_1200Z + 2,
        incident: 1,
        role: Role::Liaison,
        user: "carol".into(),
        by: "alice".into(),
    });
    log.apply(Command::AddNote {
        at: MON_1200Z + 3,
        incident: 1,
        text: "failing over to replica".into(),
        by: "bob".into(),
    });
    let inc = &log.state.incidents[&1];
    assert_eq!(
        (inc.commander.as_str(), inc.liaison.as_str()),
        ("bob", "carol")
    );
    let last: Vec<(&str, &str)> = inc
        .timeline
        .iter()
        .rev()
        .take(3)
        .map(|t| (t.what.as_str(), t.by.as_str()))
        .collect();
    assert_eq!(
        last,
        vec![
            ("note: failing over to replica", "bob"),
            ("communications liaison: carol", "alice"),
            ("incident commander: bob", "alice"),
        ]
    );
    // The same note sent again by the same user (a form resubmitted after an
    // election) is the note already there; by someone else, or later than the
    // window, it is a new one.
    let notes = |log: &Log| {
        log.state.incidents[&1]
            .timeline
            .iter()
            .filter(|t| t.what == "note: failing over to replica")
            .count()
    };
    let note = |at: u64, by: &str| Command::AddNote {
        at,
        incident: 1,
        text: "failing over to replica".into(),
        by: by.into(),
    };
    log.apply(note(MON_1200Z + 4, "bob"));
    assert_eq!(notes(&log), 1, "a repeated note is written once");
    log.apply(note(MON_1200Z + 5, "carol"));
    assert_eq!(
        notes(&log),
        2,
        "another user's same words are their own note"
    );
    log.apply(note(
        MON_1200Z + 4 + pager_core::state::NOTE_REPEAT_WINDOW + 1,
        "bob",
    ));
    assert_eq!(notes(&log), 3, "the same words much later are a new note");
    let (resp, _) = log.apply(Command::SetRole {
        at: MON_1200Z + 4,
        incident: 1,
        role: Role::Commander,
        user: "zed".into(),
        by: "x".into(),
    });
    assert!(matches!(
        resp,
        Response::Rejected(Rejection::NotFound { .. })
    ));
}

#[test]
fn missed_heartbeat_opens_an_incident_and_the_next_ping_resolves_it() {
    let mut log = Log::new();
    let ping = |at| Command::Heartbeat {
        at,
        key: "backup-heartbeat-1".into(),
    };
    // Not armed before the first ping.
    assert_eq!(log.state.next_deadline(), None);
    log.apply(ping(MON_1200Z));
    assert_eq!(log.state.next_deadline(), Some(MON_1200Z + HOUR));
    log.apply(ping(MON_1200Z + 30 * MIN));
    assert_eq!(
        log.state.next_deadline(),
        Some(MON_1200Z + 90 * MIN),
        "each ping re-arms"
    );
    let (_, effects) = log.apply(Command::Tick {
        at: MON_1200Z + 90 * MIN,
    });
    assert_eq!(effects[0], Effect::IncidentOpened { incident: 1 });
    let inc = &log.state.incidents[&1];
    assert_eq!(
        (inc.service.as_str(), inc.dedup_key.as_str()),
        ("database", "heartbeat:nightly-backup")
    );
    let (resp, _) = log.apply(ping(MON_1200Z + 100 * MIN));
    assert_eq!(resp, Response::Incident { id: 1 });
    assert_eq!(log.state.incidents[&1].status, IncidentStatus::Resolved);
    let (resp, _) = log.apply(Command::Heartbeat {
        at: MON_1200Z,
        key: "nope".into(),
    });
    assert!(matches!(
        resp,
        Response::Rejected(Rejection::NotFound { .. })
    ));
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let mut doc = OnCallDoc::from_toml(DOC).unwrap();
    doc.escalation_policies.get_mut("triage").unwrap().levels[1].targets[0] =
        pager_core::oncall::Target::Team("payments".into());
    doc.services.get_mut("checkout").unwrap().tier = Some("gold".into());
    doc.users
        .get_mut("carol")
        .unwrap()
        .notification_rules
        .low
        .clear();
    doc.heartbeats.get_mut("nightly-backup").unwrap().service = "ghost".into();
    doc.services.get_mut("database").unwrap().team = Some("dba".into());
    let lines: Vec<String> = doc.validate().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        lines,
        vec![
            "escalation_policies.triage.levels[1].targets[0].team: unknown team \"payments\"".to_string(),
            "heartbeats.nightly-backup.service: unknown service \"ghost\"".to_string(),
            "services.checkout.tier: unknown tier \"gold\"".to_string(),
            "services.database.team: unknown team \"dba\"".to_string(),
            "users.carol.notification_rules.low: user is on the escalation path of service \"checkout\" (low urgency) but has no rule for it".to_string(),
        ]
    );
}

#[test]
fn the_document_round_trips_through_toml() {
    let doc = OnCallDoc::from_toml(DOC).unwrap();
    let text = doc.to_toml();
    assert_eq!(OnCallDoc::from_toml(&text).unwrap(), doc);
    assert_eq!(
        OnCallDoc::from_toml(&text).unwrap().to_toml(),
        text,
        "export is stable"
    );
}

#[test]
fn simulate_lists_the_exact_page_plan_with_the_code_that_runs() {
    let log = Log::new();
    // 19:55 New York on a Monday: alice (and shadow dave) until 20:00, then
    // level 2 (product) at 20:05, then the fallback (carol) at 20:15.
    let at = MON_1200Z + 12 * HOUR + 55 * MIN;
    let plan = log
        .state
        .simulate("checkout", at, Severity::Critical)
        .expect("service exists");
    let rows: Vec<(u64, &str, &str, bool, u32)> = plan
        .iter()
        .map(|p| {
            (
                (p.at - at) / MIN,
                p.user.as_str(),
                p.method.as_str(),
                p.shadow,
                p.level,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (0, "alice", "sms", false, 1),
            (0, "dave", "email", true, 1),
            (10, "bob", "sms", false, 2),
            (10, "carol", "email", false, 2),
            (20, "carol", "email", false, 2),
        ]
    );
    // The live state is untouched.
    assert!(log.state.incidents.is_empty());
    assert!(matches!(
        log.state.simulate("nope", at, Severity::Critical),
        Err(Rejection::NotFound { .. })
    ));
}

#[test]
fn on_call_queries_for_service_and_user() {
    let log = Log::new();
    let doc = &log.state.config;
    let afternoon = MON_1200Z + 6 * HOUR;
    let levels = doc.service_on_call("checkout", afternoon).unwrap();
    assert_eq!(levels[0].users, vec!["alice".to_string()]);
    assert_eq!(levels[0].shadows, vec!["dave".to_string()]);
    // The restriction window ends at 20:00 New York = 01:00 UTC next day.
    assert_eq!(levels[0].until, Some(MON_1200Z + 13 * HOUR));
    assert_eq!(
        levels[1].users,
        vec!["bob".to_string(), "carol".to_string()]
    );
    let alice = doc.user_on_call("alice", afternoon);
    assert_eq!(alice.len(), 1);
    assert_eq!(
        (alice[0].schedule.as_str(), alice[0].shadow),
        ("triage", false)
    );
    assert!(
        doc.user_on_call("alice", MON_1200Z).is_empty(),
        "07:00 is outside the window"
    );
}

#[test]
fn diff_names_what_changes_and_is_empty_for_the_same_document() {
    let old = OnCallDoc::from_toml(DOC).unwrap();
    assert_eq!(old.diff(&old), vec![]);
    let mut new = old.clone();
    new.users.remove("dave");
    new.teams.get_mut("product").unwrap().members.pop();
    new.tiers.insert("tier2".into(), new.tiers["tier1"].clone());
    new.routing_rules.pop();
    let changes: Vec<String> = old
        .diff(&new)
        .iter()
        .map(|c| format!("{:?} {}", c.kind, c.path))
        .collect();
    assert_eq!(
        changes,
        vec![
            "Removed users.dave",
            "Changed teams.product",
            "Added tiers.tier2",
            "Changed routing_rules"
        ]
    );
}

fn with_doc(edit: impl FnOnce(&mut OnCallDoc)) -> Log {
    let mut log = Log::new();
    let mut doc = (*log.state.config).clone();
    edit(&mut doc);
    assert_eq!(doc.validate(), vec![]);
    let (r, _) = log.apply(Command::ApplyConfig {
        at: MON_1200Z - HOUR,
        doc: Box::new(doc),
    });
    assert_eq!(r, Response::ConfigApplied { version: 2 });
    log
}

#[test]
fn support_hours_decide_urgency_in_the_services_zone() {
    let mut log = with_doc(|doc| {
        let svc = doc.services.get_mut("database").unwrap();
        svc.urgency = pager_core::oncall::UrgencyRule::SupportHours;
        svc.support_hours = Some(
            toml::from_str::<pager_core::oncall::SupportHours>(
                r#"time_zone = "America/New_York"
windows = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "09:00", to = "17:00" } ]"#,
            )
            .unwrap(),
        );
    });
    log.send(MON_1200Z, ev("database-key-1", "early")); // 07:00 New York
    log.send(MON_1200Z + 6 * HOUR, ev("database-key-1", "midday")); // 13:00 New York
    let urgencies: Vec<Urgency> = log.state.incidents.values().map(|i| i.urgency).collect();
    assert_eq!(urgencies, vec![Urgency::Low, Urgency::High]);
}

#[test]
fn maintenance_records_events_without_paging_and_pauses_escalations() {
    // Window: 12:30 to 13:30 UTC on the database service.
    let (start, end) = (MON_1200Z + 30 * MIN, MON_1200Z + 90 * MIN);
    let mut log = with_doc(|doc| {
        doc.maintenance_windows
            .push(pager_core::oncall::MaintenanceWindow {
                name: "db-upgrade".into(),
                services: vec!["database".into()],
                start,
                end,
                pause_escalations: true,
            });
    });
    // Opened before the window: level 2 would be due at 12:35, inside it.
    log.send(
        MON_1200Z + 30 * MIN - 5 * MIN,
        ev("database-key-1", "before"),
    );
    let (resp, effects) = log.send(MON_1200Z + 40 * MIN, ev("database-key-1", "during"));
    assert_eq!(
        resp,
        Response::Event {
            incident: None,
            dedup_key: "during".into(),
            folded: false
        }
    );
    assert_eq!(effects, vec![]);
    assert_eq!(log.state.stats.events_in_maintenance, 1);
    let (_, effects) = log.apply(Command::Tick {
        at: start + 5 * MIN,
    });
    assert_eq!(
        effects,
        vec![Effect::WakeAt(end)],
        "paused until the window ends"
    );
    let (_, effects) = log.apply(Command::Tick { at: end });
    assert_eq!(
        effects[0],
        Effect::Escalated {
            incident: 1,
            level: 1,
            repeat: 0
        }
    );
    assert_eq!(log.paged(1), users(&[("alice", false), ("bob", false)]));
}
