//! The on-call API over gRPC on a three-node cluster: who is on call, shifts,
//! simulated page plans, config diffs and gap warnings, and every incident
//! action through a follower, with the state in the answer and field-named
//! errors for bad input.

mod common;

use common::{trigger, Cluster};
use pager_proto::pager::v1 as pb;
use pb::escalation_track::Assignee;
use tonic::transport::Channel;
use tonic::Code;
use tracing::info;

const MIN: u64 = 60_000;
const DAY: u64 = 86_400_000;
/// 2030-01-07T12:00:00Z, a Monday: 314 weeks after the rotation's start, so
/// alice (turn 0 of 2) is on call from 2030-01-07T00:00Z to 2030-01-14T00:00Z.
const T: u64 = 1_894_017_600_000;
const WEEK_START: u64 = T - 12 * 60 * MIN;
const NEXT_HANDOFF: u64 = WEEK_START + 7 * DAY;

const ONCALL: &str = r#"
[users.alice]
contact_methods = [
  { name = "sms", type = "sms", address = "+15550100001" },
  { name = "voice", type = "voice", address = "+15550100001" },
]
notification_rules.high = [ { after = "0", contact = "sms" }, { after = "1m", contact = "voice" } ]
[users.bob]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100002" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[users.carol]
contact_methods = [ { name = "email", type = "email", address = "carol@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]
[users.dave]
contact_methods = [ { name = "email", type = "email", address = "dave@example.com" } ]
notification_rules.high = [ { after = "0", contact = "email" } ]

[teams.dbteam]
members = ["bob", "carol"]

[schedules.primary]
time_zone = "UTC"
[[schedules.primary.layers]]
name = "weekly"
start = "2024-01-01T00:00:00"
rotation = "weekly"
users = ["alice", "bob"]
shadows = ["dave"]

[escalation_policies.db]
repeat = 1
levels = [
  { escalate_after = "5m", targets = [ { schedule = "primary" } ] },
  { escalate_after = "5m", targets = [ { team = "dbteam" } ] },
]

[escalation_policies.secondary]
levels = [ { escalate_after = "5m", targets = [ { user = "carol" } ] } ]

[tiers.tier1]
ack_sla = "15m"

[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
tier = "tier1"
"#;

/// Business hours only: nobody on call at night or at weekends.
const BUSINESS_HOURS: &str = r#"
[schedules.daytime]
time_zone = "UTC"
[[schedules.daytime.layers]]
name = "days"
start = "2024-01-01T00:00:00"
rotation = "weekly"
users = ["carol"]
restrictions = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "09:00", to = "17:00" } ]
"#;

async fn oncall(c: &Cluster, id: usize) -> pb::on_call_client::OnCallClient<Channel> {
    pb::on_call_client::OnCallClient::new(c.channel(id).await)
}

async fn config(c: &Cluster, id: usize) -> pb::config_client::ConfigClient<Channel> {
    pb::config_client::ConfigClient::new(c.channel(id).await)
}

fn who(subject: pb::who_is_on_call_request::Subject, at_ms: u64) -> pb::WhoIsOnCallRequest {
    pb::WhoIsOnCallRequest {
        subject: Some(subject),
        at_ms,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[track_caller]
fn assert_status(err: &tonic::Status, code: Code, field: &str) {
    assert_eq!(err.code(), code, "{field}: {}", err.message());
    assert!(
        err.message().starts_with(field),
        "the message names {field}: {}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_is_on_call_shifts_and_simulated_pages() {
    use pb::who_is_on_call_request::Subject;
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    let applied = c.apply(leader, ONCALL).await;
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    c.applied(f, applied.commit_index).await;
    let mut api = oncall(&c, f).await;

    info!("--- a schedule: who, until when, and who next");
    let r = api
        .who_is_on_call(who(Subject::Schedule("primary".into()), T))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.at_ms, T);
    assert_eq!(
        r.schedules,
        vec![pb::ScheduleOnCall {
            schedule: "primary".into(),
            time_zone: "UTC".into(),
            users: strings(&["alice"]),
            shadows: strings(&["dave"]),
            until_ms: NEXT_HANDOFF,
            next_users: strings(&["bob"]),
        }]
    );
    assert!(r.service.is_none() && r.user.is_none());

    info!("--- no subject: every schedule");
    let all = api
        .who_is_on_call(pb::WhoIsOnCallRequest {
            subject: None,
            at_ms: T,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.schedules, r.schedules);

    info!("--- a service: each level of its policy");
    let r = api
        .who_is_on_call(who(Subject::Service("database".into()), T))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.service,
        Some(pb::ServiceOnCall {
            service: "database".into(),
            escalation_policy: "db".into(),
            levels: vec![
                pb::LevelOnCall {
                    level: 1,
                    users: strings(&["alice"]),
                    shadows: strings(&["dave"]),
                    until_ms: NEXT_HANDOFF,
                    next_users: strings(&["bob"]),
                },
                pb::LevelOnCall {
                    level: 2,
                    users: strings(&["bob", "carol"]),
                    shadows: vec![],
                    until_ms: 0,
                    next_users: vec![],
                },
            ],
        })
    );

    info!("--- a user: the schedules they are on, as responder or shadow");
    for (user, shadow) in [("alice", false), ("dave", true)] {
        let r = api
            .who_is_on_call(who(Subject::User(user.into()), T))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.user,
            Some(pb::UserOnCall {
                user: user.into(),
                schedules: vec![pb::UserSchedule {
                    schedule: "primary".into(),
                    shadow,
                    until_ms: NEXT_HANDOFF,
                    next_users: strings(&["bob"]),
                }],
            }),
            "{user}"
        );
    }
    let r = api
        .who_is_on_call(who(Subject::User("carol".into()), T))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.user.map(|u| u.schedules),
        Some(vec![]),
        "carol is off call"
    );

    info!("--- at_ms = 0 is the node's clock");
    let before = pagerd::node::now_ms();
    let r = api
        .who_is_on_call(who(Subject::Schedule("primary".into()), 0))
        .await
        .unwrap()
        .into_inner();
    assert!(r.at_ms >= before && r.at_ms <= pagerd::node::now_ms());
    assert_eq!(
        r.schedules[0].users.len(),
        1,
        "the rotation always has someone"
    );

    info!("--- unknown names are NotFound, naming the field");
    for (subject, field) in [
        (Subject::Schedule("nope".into()), "schedule"),
        (Subject::Service("nope".into()), "service"),
        (Subject::User("nope".into()), "user"),
    ] {
        let err = api.who_is_on_call(who(subject, T)).await.unwrap_err();
        assert_status(&err, Code::NotFound, field);
    }

    info!("--- shifts: cut at the range's ends");
    let r = api
        .list_shifts(pb::ListShiftsRequest {
            schedule: "primary".into(),
            from_ms: T,
            to_ms: T + 14 * DAY,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.time_zone.as_str(), r.from_ms, r.to_ms),
        ("UTC", T, T + 14 * DAY)
    );
    let shift = |user: &str, start_ms, end_ms| pb::Shift {
        user: user.into(),
        start_ms,
        end_ms,
        layer: "weekly".into(),
    };
    assert_eq!(
        r.shifts,
        vec![
            shift("alice", T, NEXT_HANDOFF),
            shift("bob", NEXT_HANDOFF, NEXT_HANDOFF + 7 * DAY),
            shift("alice", NEXT_HANDOFF + 7 * DAY, T + 14 * DAY),
        ]
    );
    for (from_ms, to_ms, field) in [(T, T + 91 * DAY, "to_ms"), (T, T - 1, "to_ms")] {
        let err = api
            .list_shifts(pb::ListShiftsRequest {
                schedule: "primary".into(),
                from_ms,
                to_ms,
            })
            .await
            .unwrap_err();
        assert_status(&err, Code::InvalidArgument, field);
    }
    let err = api
        .list_shifts(pb::ListShiftsRequest {
            schedule: "nope".into(),
            from_ms: T,
            to_ms: T + DAY,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "schedule");

    info!("--- simulate: the exact plan if nobody answers");
    let r = api
        .simulate(pb::SimulateRequest {
            service: "database".into(),
            at_ms: T,
            severity: "critical".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.service.as_str(), r.at_ms), ("database", T));
    let plan: Vec<(u64, &str, &str, u32, u32, bool)> = r
        .pages
        .iter()
        .map(|p| {
            assert_eq!(p.at_ms, T + p.offset_ms);
            (
                p.offset_ms / 1000,
                p.user.as_str(),
                p.method.as_str(),
                p.level,
                p.repeat,
                p.shadow,
            )
        })
        .collect();
    assert_eq!(
        plan,
        vec![
            (0, "alice", "sms", 1, 0, false),
            (0, "dave", "email", 1, 0, true),
            (60, "alice", "voice", 1, 0, false),
            (300, "bob", "sms", 2, 0, false),
            (300, "carol", "email", 2, 0, false),
            (600, "alice", "sms", 1, 1, false),
            (600, "dave", "email", 1, 1, true),
            (660, "alice", "voice", 1, 1, false),
            (900, "bob", "sms", 2, 1, false),
            (900, "carol", "email", 2, 1, false),
        ]
    );
    let err = api
        .simulate(pb::SimulateRequest {
            service: "nope".into(),
            at_ms: T,
            severity: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "service");
    let err = api
        .simulate(pb::SimulateRequest {
            service: "database".into(),
            at_ms: T,
            severity: "sev1".into(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "severity");
    assert!(c.twilio.messages().is_empty(), "a simulation pages nobody");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diff_round_trip_changes_problems_and_gap_warnings() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    let applied = c.apply(leader, ONCALL).await;
    c.applied(f, applied.commit_index).await;
    let mut cfg = config(&c, f).await;
    let diff = |document: String| pb::DiffConfigRequest {
        document,
        format: "toml".into(),
    };

    info!("--- export, apply the export: diffing it against the live document is empty");
    let exported = cfg
        .get(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner()
        .document;
    let again = c.apply(f, &exported).await;
    let d = cfg.diff(diff(exported.clone())).await.unwrap().into_inner();
    assert_eq!(d.version, again.version);
    assert!(d.changes.is_empty(), "{:?}", d.changes);
    assert!(d.problems.is_empty() && d.warnings.is_empty(), "{d:?}");

    info!("--- a change: entity by entity");
    let changed = ONCALL.replace(r#"ack_sla = "15m""#, r#"ack_sla = "10m""#)
        + r#"
[users.erin]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100005" } ]
"#;
    let changed = changed.replace(
        "[escalation_policies.secondary]\nlevels = [ { escalate_after = \"5m\", targets = [ { user = \"carol\" } ] } ]\n",
        "",
    );
    let d = cfg.diff(diff(changed)).await.unwrap().into_inner();
    let kinds: Vec<(&str, pb::ConfigChangeKind)> = d
        .changes
        .iter()
        .map(|ch| (ch.path.as_str(), ch.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("users.erin", pb::ConfigChangeKind::Added),
            (
                "escalation_policies.secondary",
                pb::ConfigChangeKind::Removed
            ),
            ("tiers.tier1", pb::ConfigChangeKind::Changed),
        ]
    );
    assert!(d.problems.is_empty(), "{:?}", d.problems);

    info!("--- problems: what Apply would refuse, with paths");
    let broken = ONCALL.replace(
        r#"members = ["bob", "carol"]"#,
        r#"members = ["bob", "zed"]"#,
    );
    let d = cfg.diff(diff(broken)).await.unwrap().into_inner();
    assert_eq!(
        d.problems
            .iter()
            .map(|p| p.path.as_str())
            .collect::<Vec<_>>(),
        vec!["teams.dbteam.members[1]"]
    );
    let d = cfg
        .diff(diff("users = 3 = 4".into()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.problems.len(), 1);
    assert_eq!(d.problems[0].path, "document");
    assert!(d.changes.is_empty());
    let err = cfg
        .diff(pb::DiffConfigRequest {
            document: exported,
            format: "yaml".into(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "format");

    info!("--- a schedule with nobody on call at night: a warning, applied all the same");
    let with_gaps = format!("{ONCALL}\n{BUSINESS_HOURS}");
    let d = cfg
        .diff(diff(with_gaps.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.changes.len(), 1, "{:?}", d.changes);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert_eq!(d.warnings[0].path, "schedules.daytime");
    assert!(
        d.warnings[0].message.contains("nobody on call"),
        "{}",
        d.warnings[0].message
    );
    let dry = cfg
        .apply(pb::ApplyConfigRequest {
            document: with_gaps.clone(),
            format: "toml".into(),
            dry_run: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dry.warnings, d.warnings);
    let applied = c.apply(f, &with_gaps).await;
    assert_eq!(applied.warnings, d.warnings);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incident_actions_through_a_follower() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    c.apply(leader, ONCALL).await;
    let mut inc = c.incidents(f).await;
    let opened = c
        .events(f)
        .await
        .send(trigger("db-key-0001", "disk-full-db1"))
        .await
        .unwrap()
        .into_inner();
    let id = opened.incident_id;
    c.applied(f, opened.commit_index).await;
    let created = inc
        .get(pb::GetIncidentRequest {
            id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.ack_due_ms, created.created_at_ms + 15 * MIN);
    assert_eq!(
        created.escalations,
        vec![pb::EscalationTrack {
            assignee: Some(Assignee::Policy("db".into())),
            level: 0,
            repeat: 0,
            done: false,
        }]
    );
    // The latest entry by someone other than pagerd (whose delivery outcomes
    // arrive as the pages go out).
    let last = |i: &pb::Incident| {
        i.timeline
            .iter()
            .rev()
            .find(|e| e.by != "pagerd")
            .cloned()
            .unwrap_or_default()
    };

    info!("--- snooze: acknowledged until then");
    let until = pagerd::node::now_ms() + 60 * MIN;
    let r = inc
        .snooze(pb::SnoozeRequest {
            id,
            until_ms: until,
            by: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let i = r.incident.unwrap();
    assert_eq!(i.status, pb::IncidentStatus::Acknowledged as i32);
    assert_eq!(
        (i.snoozed_until_ms, i.acknowledged_by.as_str()),
        (until, "alice")
    );
    assert!(last(&i).what.starts_with("snoozed until"), "{:?}", last(&i));
    assert!(r.commit_index > opened.commit_index);

    info!("--- escalate: level 2 pages now, the snooze is over");
    let r = inc
        .escalate(pb::EscalateRequest {
            id,
            level: 2,
            by: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let i = r.incident.unwrap();
    assert_eq!(i.status, pb::IncidentStatus::Triggered as i32);
    assert_eq!((i.escalation_level, i.snoozed_until_ms), (1, 0));
    assert!(i
        .timeline
        .iter()
        .any(|e| e.what == "escalated to level 2" && e.by == "alice"));
    let paged: Vec<&str> = i.deliveries.iter().map(|d| d.user.as_str()).collect();
    assert!(
        paged.contains(&"bob") && paged.contains(&"carol"),
        "{paged:?}"
    );

    info!("--- reassign: to a user, then to a policy");
    let r = inc
        .reassign(pb::ReassignRequest {
            id,
            to: Some(pb::reassign_request::To::User("carol".into())),
            by: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let i = r.incident.unwrap();
    assert_eq!(
        i.escalations[0].assignee,
        Some(Assignee::User("carol".into()))
    );
    assert_eq!(i.escalations.len(), 1);
    let r = inc
        .reassign(pb::ReassignRequest {
            id,
            to: Some(pb::reassign_request::To::Policy("secondary".into())),
            by: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.incident.unwrap().escalations[0].assignee,
        Some(Assignee::Policy("secondary".into()))
    );

    info!("--- add responders: a user and a team without a policy (each member)");
    let responder = |t: pb::responder::Target| pb::Responder { target: Some(t) };
    let r = inc
        .add_responders(pb::AddRespondersRequest {
            id,
            responders: vec![
                responder(pb::responder::Target::User("dave".into())),
                responder(pb::responder::Target::Team("dbteam".into())),
            ],
            by: "carol".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let i = r.incident.unwrap();
    let assignees: Vec<_> = i
        .escalations
        .iter()
        .map(|t| t.assignee.clone().unwrap())
        .collect();
    assert_eq!(
        assignees,
        vec![
            Assignee::Policy("secondary".into()),
            Assignee::User("dave".into()),
            Assignee::User("bob".into()),
            Assignee::User("carol".into()),
        ]
    );
    assert!(i.deliveries.iter().any(|d| d.user == "dave" && !d.shadow));

    info!("--- roles");
    let role = |role: pb::IncidentRole, user: &str| pb::SetRoleRequest {
        id,
        role: role as i32,
        user: user.into(),
        by: "carol".into(),
    };
    let r = inc
        .set_role(role(pb::IncidentRole::Commander, "alice"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.incident.unwrap().commander, "alice");
    let r = inc
        .set_role(role(pb::IncidentRole::Liaison, "bob"))
        .await
        .unwrap()
        .into_inner();
    let i = r.incident.unwrap();
    assert_eq!((i.commander.as_str(), i.liaison.as_str()), ("alice", "bob"));

    info!("--- a note");
    let r = inc
        .add_note(pb::AddNoteRequest {
            id,
            text: "replica lag is 0, primary disk at 100%".into(),
            by: "carol".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let note = last(&r.incident.unwrap());
    assert_eq!(
        (note.what.as_str(), note.by.as_str()),
        ("note: replica lag is 0, primary disk at 100%", "carol")
    );

    info!("--- merge a duplicate: the answer is the incident that carries on");
    let dup = c
        .events(f)
        .await
        .send(trigger("db-key-0001", "disk-full-db1-again"))
        .await
        .unwrap()
        .into_inner()
        .incident_id;
    assert_ne!(dup, id);
    let r = inc
        .merge(pb::MergeRequest {
            id: dup,
            into: id,
            by: "alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let survivor = r.incident.unwrap();
    assert_eq!(survivor.id, id);
    assert_eq!(
        last(&survivor).what,
        format!("#{dup} merged in as a duplicate")
    );
    let merged = inc
        .get(pb::GetIncidentRequest {
            id: dup,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (merged.status, merged.merged_into),
        (pb::IncidentStatus::Resolved as i32, id)
    );

    info!("--- a trigger with the duplicate's key folds into the survivor");
    let again = c
        .events(f)
        .await
        .send(trigger("db-key-0001", "disk-full-db1-again"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.incident_id, again.folded), (id, true));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_incident_actions_name_the_field() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    c.apply(leader, ONCALL).await;
    let mut inc = c.incidents(f).await;
    let id = c
        .events(f)
        .await
        .send(trigger("db-key-0001", "k1"))
        .await
        .unwrap()
        .into_inner()
        .incident_id;
    let now = pagerd::node::now_ms();
    let responder = |t: pb::responder::Target| pb::Responder { target: Some(t) };

    info!("--- unknown incident: NotFound");
    let err = inc
        .snooze(pb::SnoozeRequest {
            id: 999,
            until_ms: now + 60 * MIN,
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "id");
    let err = inc
        .escalate(pb::EscalateRequest {
            id: 999,
            level: 1,
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "id");
    let err = inc
        .add_note(pb::AddNoteRequest {
            id: 999,
            text: "x".into(),
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "id");
    let err = inc
        .merge(pb::MergeRequest {
            id,
            into: 999,
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "into");

    info!("--- out of range, in the past, blank, missing: InvalidArgument");
    for level in [0, 3] {
        let err = inc
            .escalate(pb::EscalateRequest {
                id,
                level,
                by: String::new(),
            })
            .await
            .unwrap_err();
        assert_status(&err, Code::InvalidArgument, "level");
        assert!(err.message().contains("1 to 2"), "{}", err.message());
    }
    for until_ms in [now - 60_000, 0] {
        let err = inc
            .snooze(pb::SnoozeRequest {
                id,
                until_ms,
                by: String::new(),
            })
            .await
            .unwrap_err();
        assert_status(&err, Code::InvalidArgument, "until_ms");
    }
    let err = inc
        .reassign(pb::ReassignRequest {
            id,
            to: None,
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "to");
    let err = inc
        .add_responders(pb::AddRespondersRequest {
            id,
            responders: vec![],
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "responders");
    let err = inc
        .set_role(pb::SetRoleRequest {
            id,
            role: pb::IncidentRole::Unspecified as i32,
            user: "alice".into(),
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "role");
    let err = inc
        .add_note(pb::AddNoteRequest {
            id,
            text: "  ".into(),
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "text");
    let err = inc
        .merge(pb::MergeRequest {
            id,
            into: id,
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "into");

    info!("--- unknown names: NotFound, naming the request's field");
    let err = inc
        .reassign(pb::ReassignRequest {
            id,
            to: Some(pb::reassign_request::To::Policy("nope".into())),
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "policy");
    let err = inc
        .add_responders(pb::AddRespondersRequest {
            id,
            responders: vec![
                responder(pb::responder::Target::User("dave".into())),
                responder(pb::responder::Target::Team("nope".into())),
            ],
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "responders[1].team");
    let err = inc
        .set_role(pb::SetRoleRequest {
            id,
            role: pb::IncidentRole::Commander as i32,
            user: "nope".into(),
            by: String::new(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "user");

    info!("--- nothing changed the incident");
    let i = inc
        .get(pb::GetIncidentRequest {
            id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i.status, pb::IncidentStatus::Triggered as i32);
    assert_eq!((i.escalation_level, i.snoozed_until_ms), (0, 0));
    assert_eq!(i.escalations.len(), 1);
    assert!(i.commander.is_empty());
    let by_people: Vec<_> = i.timeline.iter().filter(|e| e.by != "pagerd").collect();
    assert_eq!(by_people.len(), 1, "only the trigger: {by_people:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_override_created_through_the_api_puts_someone_on_call() {
    use pb::who_is_on_call_request::Subject;
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    let applied = c.apply(leader, ONCALL).await;
    let mut api = oncall(&c, f).await;
    let r = api
        .create_override(pb::CreateOverrideRequest {
            schedule: "primary".into(),
            user: "carol".into(),
            replaces: "alice".into(),
            start_ms: T - 60 * MIN,
            end_ms: T + 60 * MIN,
        })
        .await
        .expect("override created")
        .into_inner();
    assert_eq!(r.config_version, applied.version + 1);
    c.applied(f, r.commit_index).await;
    let now = api
        .who_is_on_call(who(Subject::Schedule("primary".into()), T))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.schedules[0].users, strings(&["carol"]));
    let after = api
        .who_is_on_call(who(Subject::Schedule("primary".into()), T + 2 * 60 * MIN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.schedules[0].users, strings(&["alice"]));

    let bad = |schedule: &str, user: &str, start_ms: u64, end_ms: u64| pb::CreateOverrideRequest {
        schedule: schedule.into(),
        user: user.into(),
        replaces: String::new(),
        start_ms,
        end_ms,
    };
    let err = api
        .create_override(bad("nope", "carol", T, T + MIN))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "schedule");
    let err = api
        .create_override(bad("primary", "carol", T, T))
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "end_ms");
    let err = api
        .create_override(bad("primary", "zed", T, T + MIN))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("zed"), "{}", err.message());
    let version = c.node(leader).node.read(|s| s.config_version);
    assert_eq!(
        version, r.config_version,
        "refused overrides change nothing"
    );
    c.shutdown().await;
}
