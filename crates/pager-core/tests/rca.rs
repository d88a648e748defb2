//! RCA records and the page board: opened with every high-urgency incident
//! of a service that wants one, assigned to the first user paged and then to
//! whoever acknowledges, mitigated (with a due date) by resolve, a duplicate
//! by merge; completed only with what the short form or the full template
//! needs; reminders by email when overdue, daily, and the team's admins after
//! two days; the card never complete while a repair item is open; compaction
//! keeps what is not done. Every refusal names its field and changes nothing.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::delivery::Purpose;
use pager_core::rca::{RcaEdit, RepairItem};
use pager_core::{Event, EventAction, IncidentId, RcaStatus, Rejection, Stage, State};

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
notification_rules.low = [ { after = "0", contact = "m" } ]
[users.bob]
contact_methods = [ { name = "m", type = "sms", address = "+15550000002" }, { name = "e", type = "email", address = "bob@example.com" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
notification_rules.low = [ { after = "0", contact = "m" } ]
[users.carol]
email = "carol@example.com"
[teams.db]
members = ["alice", "bob"]
admins = ["carol"]
[escalation_policies.p]
levels = [
  { escalate_after = "5m", targets = [ { user = "alice" } ] },
  { escalate_after = "5m", targets = [ { user = "bob" } ] },
]
[tiers.one]
ack_sla = "5m"
rca = "required"
[tiers.two]
ack_sla = "15m"
rca = "required"
rca_due = "1d"
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
team = "db"
tier = "one"
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
tier = "two"
[services.batch]
integration_keys = ["batch-key-0001"]
escalation_policy = "p"
urgency = "low"
tier = "one"
[services.lab]
integration_keys = ["lab-key-0001"]
escalation_policy = "p"
rca = "off"
[services.misc]
integration_keys = ["misc-key-0001"]
escalation_policy = "p"
"#;

const T0: u64 = 1_700_000_000_000;
const MIN: u64 = 60_000;
const DAY: u64 = 24 * 60 * MIN;

fn trigger(log: &mut Log, at: u64, key: &str, dedup: &str) -> IncidentId {
    let mut cmd = Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: key.into(),
            action: EventAction::Trigger,
            dedup_key: dedup.into(),
            summary: format!("trouble on {dedup}"),
            ..Default::default()
        }),
    };
    cmd.stamp(at);
    match log.apply(cmd).0 {
        Response::Event {
            incident: Some(id), ..
        } => id,
        other => panic!("{other:?}"),
    }
}

fn ok(log: &mut Log, cmd: Command) {
    let r = log.apply(cmd).0;
    assert!(
        matches!(r, Response::Incident { .. } | Response::Noop),
        "{r:?}"
    );
}

/// Applies a command that must be refused naming `field`, and checks it
/// changed nothing but the clock and the log position.
fn refused(log: &mut Log, cmd: Command, field: &str) -> String {
    let before = log.state.clone();
    let r = log.apply(cmd).0;
    let (f, why) = match r {
        Response::Rejected(Rejection::Invalid { field, reason }) => (field, reason),
        Response::Rejected(Rejection::NotFound { field, what }) => (field, what),
        other => panic!("expected a refusal naming {field}, got {other:?}"),
    };
    assert_eq!(f, field, "{why}");
    let mut after = log.state.clone();
    after.clock = before.clock;
    after.last_applied = before.last_applied;
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap(),
        "a refusal changed the state"
    );
    why
}

fn ack(log: &mut Log, at: u64, id: IncidentId, by: &str) {
    ok(
        log,
        Command::Acknowledge {
            at,
            incident: id,
            by: by.into(),
        },
    );
}

fn resolve(log: &mut Log, at: u64, id: IncidentId) {
    ok(
        log,
        Command::Resolve {
            at,
            incident: id,
            by: "alice".into(),
        },
    );
}

fn edit(log: &mut Log, at: u64, id: IncidentId, e: RcaEdit) -> Response {
    log.apply(Command::EditRca {
        at,
        incident: id,
        edit: Box::new(e),
        by: "alice".into(),
    })
    .0
}

fn complete(id: IncidentId, at: u64) -> Command {
    Command::CompleteRca {
        at,
        incident: id,
        by: "alice".into(),
    }
}

fn move_card(id: IncidentId, at: u64, stage: Stage) -> Command {
    Command::MoveCard {
        at,
        incident: id,
        stage,
        by: "alice".into(),
    }
}

/// Reminders queued so far: (user, address, days overdue, to an admin).
fn reminders(state: &State) -> Vec<(String, String, u32, bool)> {
    state
        .deliveries
        .values()
        .filter_map(|d| match d.purpose {
            Purpose::RcaReminder {
                days_overdue,
                to_admin,
                ..
            } => Some((d.user.clone(), d.address.clone(), days_overdue, to_admin)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_high_urgency_incident_opens_an_rca_for_the_first_user_paged() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    let rca = &log.state.rcas[&id];
    assert_eq!(rca.status, RcaStatus::Open);
    assert_eq!(rca.assignee, "alice", "level 1 pages alice first");
    assert_eq!((rca.team.as_str(), rca.service.as_str()), ("db", "db"));
    assert!(rca.required);
    assert_eq!(rca.stage, Stage::New);
    assert_eq!(rca.due, None, "the clock starts at mitigation");

    // Escalated to bob: alice keeps it (the first paged); bob acknowledges by
    // phone and takes it.
    log.apply(Command::Tick { at: T0 + 5 * MIN });
    assert_eq!(log.state.rcas[&id].assignee, "alice");
    ack(&mut log, T0 + 6 * MIN, id, "bob (sms)");
    assert_eq!(log.state.rcas[&id].assignee, "bob");

    // Resolve: mitigated, due three days later (the default).
    resolve(&mut log, T0 + 10 * MIN, id);
    let rca = &log.state.rcas[&id];
    assert_eq!(rca.status, RcaStatus::Mitigated);
    assert_eq!(rca.mitigated_at, Some(T0 + 10 * MIN));
    assert_eq!(rca.due, Some(T0 + 10 * MIN + 3 * DAY));
}

#[test]
fn rca_policy_comes_from_the_service_then_the_tier_and_applies_to_high_urgency_only() {
    let mut log = Log::with_doc(DOC, T0);
    let low = trigger(&mut log, T0, "batch-key-0001", "nightly");
    let off = trigger(&mut log, T0, "lab-key-0001", "flaky");
    let optional = trigger(&mut log, T0, "misc-key-0001", "misc");
    let web = trigger(&mut log, T0, "web-key-0001", "slow");
    assert!(!log.state.rcas.contains_key(&low), "low urgency: no RCA");
    assert!(!log.state.rcas.contains_key(&off), "rca = off");
    assert!(
        !log.state.rcas[&optional].required,
        "no tier, no rca: optional"
    );
    resolve(&mut log, T0 + MIN, optional);
    resolve(&mut log, T0 + MIN, web);
    assert_eq!(log.state.rcas[&optional].status, RcaStatus::Mitigated);
    assert_eq!(log.state.rcas[&optional].due, None, "optional: never due");
    assert_eq!(
        log.state.rcas[&web].due,
        Some(T0 + MIN + DAY),
        "tier two: rca_due = 1d"
    );
    // An optional RCA is never reminded of.
    log.apply(Command::Tick { at: T0 + 10 * DAY });
    assert!(
        reminders(&log.state).iter().all(|(u, ..)| u == "alice"),
        "only web's reminders, to alice"
    );
}

#[test]
fn an_overdue_rca_reminds_by_email_on_the_due_date_daily_and_admins_after_two_days() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    ack(&mut log, T0 + MIN, id, "bob");
    resolve(&mut log, T0 + 2 * MIN, id);
    let due = T0 + 2 * MIN + 3 * DAY;
    log.apply(Command::Tick { at: due - 1 });
    assert!(reminders(&log.state).is_empty(), "not due yet");
    log.apply(Command::Tick { at: due });
    assert_eq!(
        reminders(&log.state),
        vec![("bob".into(), "bob@example.com".into(), 0, false)],
        "bob's email contact method: he has no `email`"
    );
    // A tick late by hours still counts the next from the due date.
    log.apply(Command::Tick {
        at: due + DAY + 3 * 60 * MIN,
    });
    log.apply(Command::Tick { at: due + 2 * DAY });
    let sent = reminders(&log.state);
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert_eq!(sent[1], ("bob".into(), "bob@example.com".into(), 1, false));
    assert!(sent[2..].contains(&("carol".into(), "carol@example.com".into(), 2, true)));
    assert!(sent[2..].contains(&("bob".into(), "bob@example.com".into(), 2, false)));
    // Reminders are low urgency email: no phone, no page of the incident.
    for d in log.state.deliveries.values() {
        if matches!(d.purpose, Purpose::RcaReminder { .. }) {
            assert_eq!(d.method, pager_core::ContactKind::Email);
            assert_eq!(
                d.incident, 0,
                "a reminder belongs to no incident's escalation"
            );
        }
    }
    assert_eq!(log.state.rcas[&id].reminders, 3);
    assert!(log.state.rcas[&id].overdue(due));

    // Completing stops them.
    let e = RcaEdit {
        summary: Some("disk filled by logs; no customer impact".into()),
        ..Default::default()
    };
    assert_eq!(
        edit(&mut log, due + 2 * DAY + 1, id, e),
        Response::Incident { id }
    );
    ok(&mut log, complete(id, due + 2 * DAY + 2));
    log.apply(Command::Tick { at: due + 9 * DAY });
    assert_eq!(reminders(&log.state).len(), 4, "none after completion");
    assert!(log.state.next_deadline().is_none());
}

#[test]
fn completing_needs_the_short_form_or_the_full_template() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    let why = refused(&mut log, complete(id, T0 + 1), "incident");
    assert!(why.contains("still open"), "{why}");
    resolve(&mut log, T0 + MIN, id);
    refused(&mut log, complete(id, T0 + 2 * MIN), "summary");

    // Customers were affected: the short summary is not enough.
    let e = RcaEdit {
        customer_impact: Some(true),
        significant: Some(true),
        summary: Some("disk full".into()),
        ..Default::default()
    };
    assert_eq!(
        edit(&mut log, T0 + 3 * MIN, id, e),
        Response::Incident { id }
    );
    let rca = &log.state.rcas[&id];
    assert!(rca.postmortem_needed());
    assert!(
        rca.text()
            .timeline
            .iter()
            .any(|l| l.what.contains("triggered")),
        "the first edit pre-fills the timeline from the incident's: {:?}",
        rca.text().timeline
    );
    refused(&mut log, complete(id, T0 + 4 * MIN), "impact");
    let e = RcaEdit {
        impact: Some("checkout failed for 8 minutes".into()),
        findings: Some("log rotation stopped; the disk filled".into()),
        ..Default::default()
    };
    edit(&mut log, T0 + 5 * MIN, id, e);
    refused(&mut log, complete(id, T0 + 6 * MIN), "mitigation");
    let e = RcaEdit {
        mitigation: Some("alice freed space at 10:05; bob fixed rotation at 11:00".into()),
        repairs: Some(vec![RepairItem {
            title: "alert on disk growth".into(),
            link: "https://jira.example.com/browse/OPS-7".into(),
            done: false,
        }]),
        ..Default::default()
    };
    edit(&mut log, T0 + 7 * MIN, id, e);
    ok(&mut log, complete(id, T0 + 8 * MIN));
    let rca = &log.state.rcas[&id];
    assert_eq!(rca.status, RcaStatus::Completed);
    assert_eq!(rca.completed_by, "alice");
    assert_eq!(rca.stage, Stage::FollowUpsUnderway, "a repair item is open");
    assert!(rca.reminder.is_none());

    // A complete RCA cannot lose a field it needs.
    let e = RcaEdit {
        impact: Some(String::new()),
        ..Default::default()
    };
    let before = log.state.rcas[&id].clone();
    match edit(&mut log, T0 + 9 * MIN, id, e) {
        Response::Rejected(Rejection::Invalid { field, .. }) => assert_eq!(field, "impact"),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.state.rcas[&id], before);
}

#[test]
fn a_card_is_complete_only_when_every_repair_item_is_done() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    ok(&mut log, move_card(id, T0 + 1, Stage::RootCause));
    assert_eq!(log.state.rcas[&id].stage, Stage::RootCause);
    let why = refused(&mut log, move_card(id, T0 + 2, Stage::Complete), "stage");
    assert!(why.contains("required"), "{why}");
    resolve(&mut log, T0 + MIN, id);
    let item = |done| RepairItem {
        title: "alert on disk growth".into(),
        link: String::new(),
        done,
    };
    let e = RcaEdit {
        summary: Some("logs filled the disk".into()),
        repairs: Some(vec![item(false)]),
        ..Default::default()
    };
    edit(&mut log, T0 + 2 * MIN, id, e);
    ok(&mut log, complete(id, T0 + 3 * MIN));
    let why = refused(
        &mut log,
        move_card(id, T0 + 4 * MIN, Stage::Complete),
        "stage",
    );
    assert!(why.contains("1 repair item"), "{why}");
    // Done: the card follows to "follow-ups complete", then may complete.
    let e = RcaEdit {
        repairs: Some(vec![item(true)]),
        ..Default::default()
    };
    edit(&mut log, T0 + 5 * MIN, id, e);
    assert_eq!(log.state.rcas[&id].stage, Stage::FollowUpsComplete);
    ok(&mut log, move_card(id, T0 + 6 * MIN, Stage::Complete));
    assert_eq!(log.state.rcas[&id].stage, Stage::Complete);
    // Reopening an item takes the card back off "complete".
    let e = RcaEdit {
        repairs: Some(vec![item(true), item(false)]),
        ..Default::default()
    };
    edit(&mut log, T0 + 7 * MIN, id, e);
    assert_eq!(log.state.rcas[&id].stage, Stage::FollowUpsUnderway);
    // The timeline of the incident says who moved it.
    let inc = &log.state.incidents[&id];
    assert!(inc
        .timeline
        .iter()
        .any(|e| e.by == "alice" && e.what == "moved the card to Complete"));
}

#[test]
fn merging_or_marking_a_duplicate_means_no_rca_is_needed() {
    let mut log = Log::with_doc(DOC, T0);
    let a = trigger(&mut log, T0, "db-key-0001", "disk-a");
    let b = trigger(&mut log, T0, "db-key-0001", "disk-b");
    let c = trigger(&mut log, T0, "db-key-0001", "disk-c");
    ok(
        &mut log,
        Command::Merge {
            at: T0 + MIN,
            incident: b,
            into: a,
            by: "alice".into(),
        },
    );
    let rb = &log.state.rcas[&b];
    assert_eq!(rb.status, RcaStatus::Duplicate);
    assert_eq!(rb.duplicate_of, Some(a));
    assert_eq!(rb.stage, Stage::Complete);
    assert!(rb.reminder.is_none(), "a duplicate is never due");
    refused(
        &mut log,
        Command::MarkDuplicate {
            at: T0 + 2 * MIN,
            incident: c,
            of: Some(c),
            by: "alice".into(),
        },
        "of",
    );
    refused(
        &mut log,
        Command::MarkDuplicate {
            at: T0 + 2 * MIN,
            incident: c,
            of: Some(999),
            by: "alice".into(),
        },
        "of",
    );
    resolve(&mut log, T0 + 3 * MIN, c);
    ok(
        &mut log,
        Command::MarkDuplicate {
            at: T0 + 4 * MIN,
            incident: c,
            of: Some(a),
            by: "alice".into(),
        },
    );
    assert_eq!(log.state.rcas[&c].status, RcaStatus::Duplicate);
    log.apply(Command::Tick { at: T0 + 10 * DAY });
    assert!(
        reminders(&log.state).is_empty(),
        "the duplicate's reminder went with it"
    );
    let why = refused(&mut log, complete(c, T0 + 10 * DAY), "incident");
    assert!(why.contains("duplicate"), "{why}");
}

#[test]
fn bad_edits_are_refused_whole() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    let e = |edit: RcaEdit| Command::EditRca {
        at: T0 + 1,
        incident: id,
        edit: Box::new(edit),
        by: "alice".into(),
    };
    refused(
        &mut log,
        e(RcaEdit {
            summary: Some("fine".into()),
            assignee: Some("mallory".into()),
            ..Default::default()
        }),
        "assignee",
    );
    refused(
        &mut log,
        e(RcaEdit {
            findings: Some("x".repeat(20_000)),
            ..Default::default()
        }),
        "findings",
    );
    refused(
        &mut log,
        e(RcaEdit {
            repairs: Some(vec![RepairItem {
                title: " ".into(),
                link: String::new(),
                done: false,
            }]),
            ..Default::default()
        }),
        "repairs",
    );
    refused(
        &mut log,
        Command::EditRca {
            at: T0 + 1,
            incident: 999,
            edit: Box::default(),
            by: "alice".into(),
        },
        "incident",
    );
    refused(&mut log, move_card(999, T0 + 1, Stage::New), "incident");
}

#[test]
fn compaction_keeps_rcas_that_are_not_done_and_forgets_finished_ones() {
    let mut log = Log::with_doc(DOC, T0);
    let pending = trigger(&mut log, T0, "db-key-0001", "disk-a");
    let done = trigger(&mut log, T0, "db-key-0001", "disk-b");
    resolve(&mut log, T0 + MIN, pending);
    resolve(&mut log, T0 + MIN, done);
    let e = RcaEdit {
        summary: Some("transient".into()),
        ..Default::default()
    };
    edit(&mut log, T0 + 2 * MIN, done, e);
    ok(&mut log, complete(done, T0 + 3 * MIN));
    ok(&mut log, move_card(done, T0 + 4 * MIN, Stage::Complete));
    let r = log
        .apply(Command::Compact {
            at: T0 + 5 * DAY,
            resolved_before: T0 + 4 * DAY,
        })
        .0;
    assert!(
        matches!(r, Response::Compacted { incidents: 2, .. }),
        "{r:?}"
    );
    assert!(log.state.incidents.is_empty());
    assert!(log.state.rcas.contains_key(&pending), "not done: kept");
    assert!(
        !log.state.rcas.contains_key(&done),
        "done and complete: forgotten"
    );
    // The kept one still reminds, and can still be completed and moved.
    log.apply(Command::Tick { at: T0 + 5 * DAY });
    assert!(!reminders(&log.state).is_empty(), "overdue since day 3");
    let e = RcaEdit {
        summary: Some("found later".into()),
        ..Default::default()
    };
    assert_eq!(
        edit(&mut log, T0 + 6 * DAY, pending, e),
        Response::Incident { id: pending }
    );
    ok(&mut log, complete(pending, T0 + 6 * DAY));
}

#[test]
fn an_acknowledgement_after_the_tiers_sla_is_a_breach_recorded_once() {
    let mut log = Log::with_doc(DOC, T0);
    let late = trigger(&mut log, T0, "db-key-0001", "late");
    let prompt = trigger(&mut log, T0, "db-key-0001", "prompt");
    let never = trigger(&mut log, T0, "db-key-0001", "never");
    let no_tier = trigger(&mut log, T0, "misc-key-0001", "no-tier");
    ack(&mut log, T0 + 4 * MIN, prompt, "alice");
    ack(&mut log, T0 + 6 * MIN, late, "alice");
    resolve(&mut log, T0 + 7 * MIN, late);
    resolve(&mut log, T0 + 10 * MIN, never);
    resolve(&mut log, T0 + 60 * MIN, no_tier);
    let breached = |id| log.state.incidents[&id].sla_breached;
    assert!(breached(late) && breached(never));
    assert!(!breached(prompt), "acknowledged within 5m");
    assert!(!breached(no_tier), "no tier, no SLA");
    assert_eq!(log.state.stats.sla_breaches, 2, "the late one counts once");
    let notes: Vec<&str> = log.state.incidents[&late]
        .timeline
        .iter()
        .filter(|e| e.what.starts_with("SLA breached"))
        .map(|e| e.what.as_str())
        .collect();
    assert_eq!(notes, ["SLA breached: acknowledge within 5m, 1m late"]);
}

#[test]
fn a_policy_that_cannot_meet_its_tiers_sla_is_warned_about() {
    let slow = DOC.replace(
        r#"{ escalate_after = "5m", targets = [ { user = "alice" } ] },"#,
        r#"{ escalate_after = "10m", targets = [ { user = "alice" } ] },"#,
    );
    let doc = pager_core::OnCallDoc::from_toml(&slow).expect("parses");
    assert!(doc.validate().is_empty(), "a warning, not an error");
    let paths: Vec<String> = doc.sla_warnings().into_iter().map(|p| p.path).collect();
    // Tier one (5m) and two (15m): only one's services are warned about.
    assert_eq!(paths, ["services.batch.tier", "services.db.tier"]);
    let ok = pager_core::OnCallDoc::from_toml(DOC).expect("parses");
    assert!(ok.sla_warnings().is_empty());
}

#[test]
fn a_reminder_waiting_to_retry_survives_compaction_and_is_retried() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    resolve(&mut log, T0 + MIN, id);
    let due = T0 + MIN + 3 * DAY;
    log.apply(Command::Tick { at: due });
    let reminder = log
        .state
        .deliveries
        .values()
        .find(|d| matches!(d.purpose, Purpose::RcaReminder { .. }))
        .map(|d| d.id)
        .expect("a reminder");
    // The mail server refused it for now: it waits to retry.
    log.apply(Command::Outcome {
        at: due + 1,
        delivery: reminder,
        attempt: 1,
        result: pager_core::SendResult::Failed {
            retryable: true,
            in_doubt: false,
            code: None,
            message: "451 try again".into(),
        },
    });
    assert_eq!(
        log.state.deliveries[&reminder].status,
        pager_core::DeliveryStatus::RetryWait
    );
    // Retention runs while it waits: the incident goes, the reminder stays.
    log.apply(Command::Compact {
        at: due + 2,
        resolved_before: due + 2,
    });
    assert!(log.state.incidents.is_empty());
    let d = &log.state.deliveries[&reminder];
    assert_eq!(d.status, pager_core::DeliveryStatus::RetryWait, "kept");
    // Its retry timer finds it and sends it again.
    log.apply(Command::Tick { at: due + 10 * MIN });
    let d = &log.state.deliveries[&reminder];
    assert_eq!(
        (d.status, d.attempt),
        (pager_core::DeliveryStatus::Pending, 2)
    );
}
