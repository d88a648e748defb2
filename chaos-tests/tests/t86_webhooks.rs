//! Webhooks through real processes: three `pagerd` processes and a webhook receiver that
//! checks every delivery as the Standard Webhooks specification asks (signature over id,
//! timestamp and body; timestamp within 5 minutes). An incident's events arrive in order,
//! each signed with the subscription's secret; a 503 is retried under the same id; the
//! leader is SIGKILLed while the receiver holds an event (received, never answered): the new
//! leader sends it again under the same id, and nothing else twice. A refused event (400) is
//! dead at once, listed, and a replay delivers it with its id.

use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions};
use pager_fakes::webhooks::{self as fake_hooks, FakeWebhookReceiver, Fault, ReceivedEvent};
use pager_proto::pager::v1 as pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::info;

const KEY: &str = "db-key-0001";
const WAIT: Duration = Duration::from_secs(30);

fn doc(url: &str) -> String {
    format!(
        r#"
[users.alice]
contact_methods = [ {{ name = "sms", type = "sms", address = "+15550100001" }} ]
notification_rules.high = [ {{ after = "0", contact = "sms" }} ]
[teams.db]
members = ["alice"]
[escalation_policies.db]
levels = [ {{ escalate_after = "30m", targets = [ {{ user = "alice" }} ] }} ]
[services.database]
integration_keys = ["{KEY}"]
escalation_policy = "db"
team = "db"
[webhooks.bridge]
url = "{url}"
teams = ["db"]
events = ["triggered", "acknowledged", "note_added", "resolved"]
"#
    )
}

fn type_of(e: &ReceivedEvent) -> String {
    e.json
        .as_ref()
        .and_then(|j| j["type"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Wait until the receiver has events of all of `types`, in that order (first receipt of each id).
async fn wait_types(hooks: &FakeWebhookReceiver, types: &[&str]) -> Vec<ReceivedEvent> {
    let deadline = Instant::now() + WAIT;
    loop {
        let firsts: Vec<ReceivedEvent> = hooks
            .events()
            .into_iter()
            .filter(|e| !e.redelivery)
            .collect();
        let got: Vec<String> = firsts.iter().map(type_of).collect();
        if got.len() >= types.len() {
            assert_eq!(got[..types.len()], *types, "in order");
            return firsts;
        }
        assert!(
            Instant::now() < deadline,
            "events {got:?}, waiting for {types:?}; attempts {:?}",
            hooks.attempts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list(c: &Cluster, node: u64, status: &str) -> Vec<pb::WebhookEvent> {
    pb::webhooks_client::WebhooksClient::new(c.channel(node).expect("channel"))
        .list_events(pb::ListWebhookEventsRequest {
            status: status.into(),
            ..Default::default()
        })
        .await
        .expect("ListEvents")
        .into_inner()
        .events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incidents_webhooks_arrive_signed_in_order_once_through_a_leader_sigkill() {
    chaos_tests::init_tracing();
    let hooks = FakeWebhookReceiver::start(fake_hooks::TEST_SECRET).await;
    let mut c = Cluster::start(ClusterOptions {
        webhook_secrets: vec![("bridge".into(), fake_hooks::TEST_SECRET.into())],
        // Long: a held event stays held until the leader is killed.
        webhook_timeout_ms: Some(60_000),
        ..ClusterOptions::default()
    })
    .await
    .expect("three pagerd processes start and elect a leader");
    let before = c.wait_for_leader(WAIT).await.expect("a leader");
    let leader = before.id;
    let to_leader = c.channel(leader).expect("channel");
    client::config(&to_leader)
        .apply(pb::ApplyConfigRequest {
            document: doc(&hooks.url()),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .expect("the on-call document applies");

    info!("--- the first delivery gets a 503: retried under the same id; then in order");
    hooks.respond_next(1, 503);
    let id = client::events(&to_leader)
        .send(client::trigger(KEY, "disk-full-db1", "disk full on db1"))
        .await
        .expect("the trigger commits")
        .into_inner()
        .incident_id;
    let incidents = client::incidents(&to_leader);
    incidents
        .clone()
        .acknowledge(pb::IncidentActionRequest {
            id,
            by: "alice".into(),
        })
        .await
        .expect("acknowledged");
    incidents
        .clone()
        .add_note(pb::AddNoteRequest {
            id,
            text: "disk at 100%".into(),
            by: "alice".into(),
        })
        .await
        .expect("noted");
    let got = wait_types(
        &hooks,
        &[
            "incident.triggered",
            "incident.acknowledged",
            "incident.note_added",
        ],
    )
    .await;
    let first_id = got[0].id.clone();
    let tries: Vec<_> = hooks
        .attempts()
        .into_iter()
        .filter(|a| a.id.as_deref() == Some(first_id.as_str()))
        .map(|a| a.status)
        .collect();
    assert_eq!(tries, [Some(503), Some(200)], "retried under its id");
    let body = got[0].json.clone().unwrap_or_default();
    assert_eq!(body["data"]["incident"]["id"], id);
    assert_eq!(body["data"]["incident"]["service"], "database");
    assert_eq!(
        got[1].json.clone().unwrap_or_default()["data"]["by"],
        "alice"
    );
    assert_eq!(
        got[2].json.clone().unwrap_or_default()["data"]["note"],
        "disk at 100%"
    );

    info!("--- the receiver holds the resolve's event; SIGKILL the leader");
    hooks.fail_next(1, Fault::Hang);
    incidents
        .clone()
        .resolve(pb::IncidentActionRequest {
            id,
            by: "alice".into(),
        })
        .await
        .expect("resolved");
    let got = wait_types(
        &hooks,
        &[
            "incident.triggered",
            "incident.acknowledged",
            "incident.note_added",
            "incident.resolved",
        ],
    )
    .await;
    let held = got[3].id.clone();
    c.kill(leader).expect("SIGKILL the leader");
    let new_leader = c
        .wait_for_new_leader(before, WAIT)
        .await
        .expect("a new leader")
        .0
        .id;
    let deadline = Instant::now() + WAIT;
    while !hooks.events().iter().any(|e| e.redelivery && e.id == held) {
        assert!(
            Instant::now() < deadline,
            "the held event sent again: {:?}",
            hooks.attempts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing else twice: only the held event was in flight at the kill.
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for e in hooks.events() {
        *received.entry(e.id).or_default() += 1;
    }
    for (event, n) in &received {
        let expected = if *event == held { 2 } else { 1 };
        assert_eq!(*n, expected, "{event} received {n} times");
    }

    info!("--- a refused event is dead at once, listed, and replayed with its id");
    hooks.respond_next(1, 400);
    let id2 = client::events(&c.channel(new_leader).expect("channel"))
        .send(client::trigger(KEY, "latency-db2", "latency on db2"))
        .await
        .expect("the trigger commits")
        .into_inner()
        .incident_id;
    let deadline = Instant::now() + WAIT;
    let dead = loop {
        let dead = list(&c, new_leader, "dead").await;
        if let Some(e) = dead.iter().find(|e| e.incident_id == id2) {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "dead: {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead.r#type, "incident.triggered");
    assert!(dead.error.contains("400"), "{}", dead.error);
    assert_eq!(dead.attempts, 1, "a 400 is not retried");
    let follower = c.follower_of(new_leader).expect("a follower");
    pb::webhooks_client::WebhooksClient::new(c.channel(follower).expect("channel"))
        .replay(pb::ReplayWebhookRequest {
            event_id: dead.id,
            by: "alice".into(),
        })
        .await
        .expect("replayed");
    let deadline = Instant::now() + WAIT;
    while !hooks.events().iter().any(|e| e.id == dead.message_id) {
        assert!(
            Instant::now() < deadline,
            "replayed: {:?}",
            hooks.attempts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = pb::webhooks_client::WebhooksClient::new(c.channel(new_leader).expect("channel"))
        .replay(pb::ReplayWebhookRequest {
            event_id: dead.id,
            by: "alice".into(),
        })
        .await
        .expect_err("delivered now: not dead");
    assert_eq!(again.code(), tonic::Code::InvalidArgument, "{again}");
    assert!(again.message().starts_with("event"), "{}", again.message());
    c.check_processes().expect("the survivors still run");
}
