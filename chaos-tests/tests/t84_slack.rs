//! Slack through real processes: three `pagerd` processes, a fake Slack and a fake Twilio in
//! this process. An incident is posted once in its service's channel with buttons; a forged,
//! replayed or tampered button press is refused (401) and changes nothing; a press by a Slack
//! member who is nobody in the document is refused politely; alice's press on a follower
//! acknowledges it as alice, and the message is updated in place with the timeline in its
//! thread; `/pagerd resolve` resolves it. Then the leader is SIGKILLed while Slack holds the
//! answer to a post (the message is out, its outcome never recorded): the new leader finds
//! the message by its marker instead of posting again, so there is exactly one, and it is
//! updated as the incident changes.

use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions, SlackTarget, TwilioTarget};
use pager_fakes::slack::{self as fake_slack, FakeSlack, Fault, Signature, SlackMessage};
use pager_fakes::twilio::{self, FakeTwilio};
use pager_proto::pager::v1 as pb;
use std::time::{Duration, Instant};
use tracing::info;

const CHANNEL: &str = "C0DATABASE1";
const ALICE: &str = "U0ALICE0001";
const KEY: &str = "db-key-0001";
const WAIT: Duration = Duration::from_secs(20);

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[users.bob]
email = "bob@example.com"
[teams.db]
members = ["alice", "bob"]
[escalation_policies.db]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]
[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
team = "db"
slack_channel = "C0DATABASE1"
"#;

/// The top-level messages in the channel whose buttons carry incident `id`.
fn posts_of(messages: &[SlackMessage], id: u64) -> Vec<SlackMessage> {
    let value = format!("\"value\":\"{id}\"");
    messages
        .iter()
        .filter(|m| m.channel == CHANNEL && m.thread_ts.is_none())
        .filter(|m| {
            m.blocks
                .as_ref()
                .is_some_and(|b| b.to_string().contains(&value))
        })
        .cloned()
        .collect()
}

/// The replies in the thread of `ts`, their text joined.
fn thread_text(messages: &[SlackMessage], ts: &str) -> String {
    messages
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(ts))
        .filter_map(|m| m.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

fn shows(m: &SlackMessage, status: &str) -> bool {
    m.blocks
        .as_ref()
        .is_some_and(|b| b.to_string().contains(&format!("*Status*\\n{status}")))
}

async fn incident(c: &Cluster, node: u64, id: u64) -> pb::Incident {
    client::incidents(&c.channel(node).expect("channel"))
        .get(pb::GetIncidentRequest {
            id,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("Incidents.Get({id}) on node {node}: {s}"))
        .into_inner()
}

async fn wait_status(c: &Cluster, node: u64, id: u64, status: pb::IncidentStatus) -> pb::Incident {
    let deadline = Instant::now() + WAIT;
    loop {
        let inc = incident(c, node, id).await;
        if inc.status == status as i32 {
            return inc;
        }
        assert!(
            Instant::now() < deadline,
            "incident {id} is {} on node {node}, not {status:?}",
            inc.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_lives_in_one_slack_message_through_buttons_commands_and_a_leader_sigkill() {
    chaos_tests::init_tracing();
    let slack = FakeSlack::start(fake_slack::TEST_BOT_TOKEN, fake_slack::TEST_SIGNING_SECRET).await;
    slack.add_channel(CHANNEL);
    slack.add_user("alice@example.com", ALICE, "alice");
    let twilio = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
    let mut c = Cluster::start(ClusterOptions {
        twilio: Some(TwilioTarget {
            base_url: twilio.base_url(),
            account_sid: twilio::TEST_ACCOUNT_SID.into(),
            auth_token: twilio::TEST_AUTH_TOKEN.into(),
            from: twilio::TEST_FROM.into(),
            timeout_ms: 2_000,
        }),
        slack: Some(SlackTarget {
            base_url: slack.base_url(),
            bot_token: fake_slack::TEST_BOT_TOKEN.into(),
            signing_secret: fake_slack::TEST_SIGNING_SECRET.into(),
            timeout_ms: 2_000,
        }),
        ..ClusterOptions::default()
    })
    .await
    .expect("three pagerd processes start and elect a leader");
    let leader = c.wait_for_leader(WAIT).await.expect("a leader").id;
    let follower = c.follower_of(leader).expect("a follower");
    let to_follower = c.channel(follower).expect("channel");
    client::config(&to_follower)
        .apply(pb::ApplyConfigRequest {
            document: DOC.into(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .expect("the on-call document applies");
    let http = |node: u64| format!("http://{}", c.ports(node).expect("ports").http);
    let interactions = format!("{}/slack/interactions", http(follower));

    info!("--- a trigger: one message in the service's channel, with buttons");
    let id = client::events(&to_follower)
        .send(client::trigger(KEY, "disk-full-db1", "disk full on db1"))
        .await
        .expect("the trigger commits")
        .into_inner()
        .incident_id;
    let messages = slack
        .wait_for_messages_where(WAIT, |m| !posts_of(m, id).is_empty())
        .await
        .expect("the incident's message");
    let post = posts_of(&messages, id).remove(0);
    assert!(shows(&post, "triggered"), "{:?}", post.blocks);
    let blocks = post.blocks.clone().unwrap_or_default().to_string();
    for action in [
        "pagerd_ack",
        "pagerd_resolve",
        "pagerd_escalate",
        "pagerd_page_team",
    ] {
        assert!(blocks.contains(action), "a {action} button: {blocks}");
    }

    info!("--- forged, replayed, tampered and unsigned presses: 401, nothing applied");
    let press = |user: &str| {
        slack.block_action_payload(user, CHANNEL, &post.ts, "pagerd_ack", &id.to_string())
    };
    for signature in [
        Signature::WrongSecret,
        Signature::OldTimestamp(Duration::from_secs(6 * 60)),
        Signature::TamperedBody,
        Signature::Missing,
    ] {
        let (status, body) = slack
            .send_interaction(&interactions, &press(ALICE), signature)
            .await
            .expect("pagerd answers");
        assert_eq!(status, 401, "{signature:?}: {body}");
    }
    info!("--- a Slack member who is nobody in the document: refused politely");
    slack.add_user("mallory@elsewhere.example", "U0MALLORY01", "mallory");
    let (status, _) = slack
        .send_interaction(&interactions, &press("U0MALLORY01"), Signature::Correct)
        .await
        .expect("pagerd answers");
    assert_eq!(status, 200);
    let responses = slack
        .wait_for_responses(1, WAIT)
        .await
        .expect("an answer to who pressed");
    let said = responses[0].body.to_string();
    assert!(
        said.contains("not a user") && said.contains("ephemeral"),
        "{said}"
    );
    assert_eq!(
        incident(&c, leader, id).await.status,
        pb::IncidentStatus::Triggered as i32
    );

    info!("--- alice presses Acknowledge on a follower: acknowledged as alice, updated in place");
    let (status, body) = slack
        .send_interaction(&interactions, &press(ALICE), Signature::Correct)
        .await
        .expect("pagerd answers");
    assert_eq!(status, 200, "{body}");
    let acked = wait_status(&c, follower, id, pb::IncidentStatus::Acknowledged).await;
    assert_eq!(acked.acknowledged_by, "alice");
    let messages = slack
        .wait_for_messages_where(WAIT, |m| {
            let posts = posts_of(m, id);
            posts.len() == 1
                && shows(&posts[0], "acknowledged")
                && thread_text(m, &posts[0].ts).contains("alice: acknowledged")
        })
        .await
        .unwrap_or_else(|_| panic!("the message updated and threaded: {:#?}", slack.messages()));
    assert_eq!(posts_of(&messages, id)[0].ts, post.ts, "the same message");

    info!("--- /pagerd resolve on another node");
    let other = c
        .ids()
        .into_iter()
        .find(|n| *n != follower)
        .expect("another node");
    let (status, body) = slack
        .send_slash_command(
            &format!("{}/slack/commands", http(other)),
            "/pagerd",
            &format!("resolve {id}"),
            ALICE,
            CHANNEL,
            Signature::Correct,
        )
        .await
        .expect("pagerd answers");
    assert_eq!(status, 200);
    assert!(body.contains("done"), "{body}");
    wait_status(&c, other, id, pb::IncidentStatus::Resolved).await;
    slack
        .wait_for_messages_where(WAIT, |m| {
            let posts = posts_of(m, id);
            posts.len() == 1
                && shows(&posts[0], "resolved")
                && thread_text(m, &posts[0].ts).contains("alice: resolved")
        })
        .await
        .expect("the message shows it resolved");

    info!("--- the leader is SIGKILLed while Slack holds the answer to a post");
    // Quiet first: incident 1's steps are all out, so the held request is incident 2's post.
    // (A change made while a step was in flight folds into one more update: wait until no
    // request has come for 500 ms; nothing announces "no more steps".)
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = slack.requests().len();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if slack.requests().len() == seen {
            break;
        }
        assert!(Instant::now() < deadline, "incident {id}'s steps never end");
    }
    slack.fail_next(1, Fault::Hang);
    let before = c.wait_for_leader(WAIT).await.expect("a leader");
    let leader = before.id;
    let id2 = client::events(&c.channel(leader).expect("channel"))
        .send(client::trigger(KEY, "latency-db2", "latency on db2"))
        .await
        .expect("the trigger commits")
        .into_inner()
        .incident_id;
    slack
        .wait_for_messages_where(WAIT, |m| posts_of(m, id2).len() == 1)
        .await
        .expect("the post is out (its answer held)");
    c.kill(leader).expect("SIGKILL the leader");
    let new_leader = c
        .wait_for_new_leader(before, WAIT)
        .await
        .expect("a new leader")
        .0
        .id;
    info!(
        new_leader,
        "--- the new leader finds the post instead of posting again"
    );
    let messages = slack
        .wait_for_messages_where(WAIT, |m| {
            posts_of(m, id2).first().is_some_and(|p| p.edits >= 1)
        })
        .await
        .unwrap_or_else(|_| panic!("the post was found and updated: {:#?}", slack.messages()));
    assert_eq!(posts_of(&messages, id2).len(), 1, "exactly one message");
    let found = slack
        .requests()
        .iter()
        .any(|r| r.method == "conversations.history");
    assert!(found, "looked up by its marker");
    client::incidents(&c.channel(new_leader).expect("channel"))
        .acknowledge(pb::IncidentActionRequest {
            id: id2,
            by: "bob".into(),
        })
        .await
        .expect("the acknowledgement commits");
    let messages = slack
        .wait_for_messages_where(WAIT, |m| {
            posts_of(m, id2)
                .first()
                .is_some_and(|p| shows(p, "acknowledged"))
        })
        .await
        .expect("then updated as the incident changes");
    assert_eq!(
        posts_of(&messages, id2).len(),
        1,
        "still exactly one message"
    );
    c.check_processes().expect("the survivors still run");
}
