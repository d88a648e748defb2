//! An incident's Slack message as replicated state: one post when it opens
//! (service channel, else the team's), one step in flight at a time, changes
//! while a step is in flight folded into one update, the timeline replied in
//! the thread in order; steps are deliveries that acknowledging does not
//! cancel, retried with backoff, reclaimed by a new term, and kept through a
//! compaction while one is in flight.

mod common;

use common::Log;
use pager_core::chat::ChatStep;
use pager_core::command::{Command, Response};
use pager_core::delivery::{Delivery, Purpose};
use pager_core::{ContactKind, DeliveryStatus, Event, EventAction, OnCallDoc, SendResult};

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [
  { name = "m", type = "sms", address = "+15550000001" },
  { name = "dm", type = "slack", address = "alice@example.com" },
]
notification_rules.high = [ { after = "0", contact = "m" }, { after = "0", contact = "dm" } ]
[teams.database]
members = ["alice"]
slack_channel = "C0DATABASE1"
[escalation_policies.p]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
team = "database"
[services.web]
integration_keys = ["web-key-001"]
escalation_policy = "p"
team = "database"
slack_channel = "C0WEBSITE01"
[services.quiet]
integration_keys = ["quiet-key-1"]
escalation_policy = "p"
"#;

const T0: u64 = 1_796_104_800_000;

fn trigger(log: &mut Log, at: u64, key: &str, dedup: &str) -> u64 {
    let mut cmd = Command::Ingest {
        at: 0,
        event: Box::new(Event {
            routing_key: key.into(),
            action: EventAction::Trigger,
            dedup_key: dedup.into(),
            summary: format!("{dedup} is down"),
            ..Default::default()
        }),
    };
    cmd.stamp(at);
    match log.apply(cmd).0 {
        Response::Event {
            incident: Some(incident),
            ..
        } => incident,
        r => panic!("trigger: {r:?}"),
    }
}

/// The chat steps of `incident`, in order: (step, status).
fn steps(log: &Log, incident: u64) -> Vec<(ChatStep, DeliveryStatus)> {
    log.state
        .deliveries
        .values()
        .filter(|d| d.incident == incident)
        .filter_map(|d| match d.purpose {
            Purpose::Chat { step } => Some((step, d.status)),
            _ => None,
        })
        .collect()
}

fn in_flight(log: &Log, incident: u64) -> Delivery {
    let id = log.state.chat[&incident].busy.expect("a step in flight");
    (*log.state.deliveries[&id]).clone()
}

fn sent(log: &mut Log, at: u64, d: &Delivery, provider_id: &str) {
    log.apply(Command::Outcome {
        at,
        delivery: d.id,
        attempt: d.attempt,
        result: SendResult::Sent {
            provider_id: provider_id.into(),
            reconciled: false,
        },
    });
}

#[test]
fn an_incident_is_posted_once_then_updated_and_threaded_one_step_at_a_time() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    // The team's channel; exactly one step: the post.
    assert_eq!(
        steps(&log, id),
        vec![(ChatStep::Post, DeliveryStatus::Pending)]
    );
    let post = in_flight(&log, id);
    assert_eq!(
        (post.method, post.address.as_str()),
        (ContactKind::Slack, "C0DATABASE1")
    );
    assert!(
        !log.state.incidents[&id].deliveries.contains(&post.id),
        "not a page"
    );

    // Two changes while the post is out: nothing more is queued yet.
    log.apply(Command::AddNote {
        at: T0 + 1_000,
        incident: id,
        text: "looking".into(),
        by: "alice".into(),
    });
    let (r, _) = log.apply(Command::Acknowledge {
        at: T0 + 2_000,
        incident: id,
        by: "alice".into(),
    });
    assert!(matches!(r, Response::Incident { .. }), "{r:?}");
    assert_eq!(steps(&log, id).len(), 1);
    // Acknowledging cancelled the pages still pending, not the post.
    assert_eq!(
        log.state.deliveries[&post.id].status,
        DeliveryStatus::Pending
    );

    sent(&mut log, T0 + 3_000, &post, "C0DATABASE1/1796104803.000100");
    assert_eq!(log.state.chat[&id].ts, "1796104803.000100");
    // Then one update (both changes folded in) ...
    let update = in_flight(&log, id);
    assert_eq!(
        update.purpose,
        Purpose::Chat {
            step: ChatStep::Update
        }
    );
    sent(
        &mut log,
        T0 + 4_000,
        &update,
        "C0DATABASE1/1796104803.000100",
    );
    // ... then one reply with every entry since the post, in order.
    let reply = in_flight(&log, id);
    let Purpose::Chat {
        step: ChatStep::Reply { from, to },
    } = reply.purpose
    else {
        panic!("{:?}", reply.purpose)
    };
    let timeline = &log.state.incidents[&id].timeline;
    assert_eq!(to as usize, timeline.len());
    let posted_with = timeline[..from as usize]
        .iter()
        .map(|e| e.what.as_str())
        .collect::<Vec<_>>();
    assert_eq!(
        posted_with,
        ["triggered"],
        "the post showed the first entry"
    );
    assert!(timeline[from as usize..]
        .iter()
        .any(|e| e.what.contains("looking")));
    sent(
        &mut log,
        T0 + 5_000,
        &reply,
        "C0DATABASE1/1796104805.000100",
    );
    // Nothing left: the message is up to date. (The outcomes added no entries.)
    assert_eq!(log.state.chat[&id].busy, None);
    assert_eq!(log.state.incidents[&id].timeline.len(), to as usize);
    assert_eq!(steps(&log, id).len(), 3);

    // A change now goes out at once: an update, then its reply.
    log.apply(Command::Resolve {
        at: T0 + 6_000,
        incident: id,
        by: "alice".into(),
    });
    let update = in_flight(&log, id);
    assert_eq!(
        update.purpose,
        Purpose::Chat {
            step: ChatStep::Update
        }
    );
    sent(&mut log, T0 + 7_000, &update, "x");
    let reply = in_flight(&log, id);
    assert!(matches!(
        reply.purpose,
        Purpose::Chat { step: ChatStep::Reply { from: f, .. } } if f == to
    ));
}

#[test]
fn the_service_channel_wins_and_a_service_without_one_posts_nothing() {
    let mut log = Log::with_doc(DOC, T0);
    let web = trigger(&mut log, T0, "web-key-001", "5xx");
    assert_eq!(in_flight(&log, web).address, "C0WEBSITE01");
    let quiet = trigger(&mut log, T0, "quiet-key-1", "cron");
    assert!(steps(&log, quiet).is_empty());
    assert!(!log.state.chat.contains_key(&quiet));
}

#[test]
fn a_failed_step_is_retried_then_recorded_and_a_failed_post_stops_the_message() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    let post = in_flight(&log, id);
    log.apply(Command::Outcome {
        at: T0 + 100,
        delivery: post.id,
        attempt: 1,
        result: SendResult::Failed {
            retryable: true,
            in_doubt: false,
            code: None,
            message: "ratelimited".into(),
        },
    });
    assert_eq!(
        log.state.deliveries[&post.id].status,
        DeliveryStatus::RetryWait
    );
    // The incident is resolved and compacted while the retry waits: the retry survives.
    log.apply(Command::Resolve {
        at: T0 + 200,
        incident: id,
        by: "alice".into(),
    });
    log.apply(Command::Compact {
        at: T0 + 300,
        resolved_before: T0 + 250,
    });
    assert!(!log.state.incidents.contains_key(&id));
    assert!(
        log.state.chat.contains_key(&id),
        "kept while a step is in flight"
    );
    log.apply(Command::Tick { at: T0 + 60_000 });
    let retried = &log.state.deliveries[&post.id];
    assert_eq!(
        (retried.status, retried.attempt),
        (DeliveryStatus::Pending, 2)
    );
    log.apply(Command::Outcome {
        at: T0 + 61_000,
        delivery: post.id,
        attempt: 2,
        result: SendResult::Failed {
            retryable: false,
            in_doubt: false,
            code: None,
            message: "channel_not_found".into(),
        },
    });
    let t = &log.state.chat[&id];
    assert_eq!(
        (t.busy, t.failed, t.error.as_str()),
        (None, 1, "channel_not_found")
    );
    assert_eq!(
        steps(&log, id).len(),
        1,
        "no update of a message never posted"
    );
    log.apply(Command::Compact {
        at: T0 + 62_000,
        resolved_before: T0 + 250,
    });
    assert!(!log.state.chat.contains_key(&id), "forgotten once settled");
}

#[test]
fn a_new_term_reclaims_a_step_in_flight_in_doubt() {
    let mut log = Log::with_doc(DOC, T0);
    let id = trigger(&mut log, T0, "db-key-0001", "disk");
    let post = in_flight(&log, id);
    log.term += 1;
    log.apply(Command::Takeover {
        at: T0 + 1_000,
        key_seed: String::new(),
    });
    let d = &log.state.deliveries[&post.id];
    assert!(d.in_doubt && d.claim_term > post.claim_term, "{d:?}");
    assert_eq!(d.status, DeliveryStatus::Pending);
}

#[test]
fn channels_and_slack_contacts_are_checked() {
    let bad = DOC
        .replace("C0DATABASE1", "#database")
        .replace("\"alice@example.com\" }", "\"@alice\" }");
    let problems = OnCallDoc::from_toml(&bad).expect("parses").validate();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert!(
        paths.contains(&"teams.database.slack_channel"),
        "{problems:?}"
    );
    assert!(
        paths.contains(&"users.alice.contact_methods[1].address"),
        "{problems:?}"
    );
}
