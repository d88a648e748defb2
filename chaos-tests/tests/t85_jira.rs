//! Jira through real processes: three `pagerd` processes, a fake Jira and a fake Twilio in
//! this process. A high-urgency incident opens one ticket, assigned to the on-call's Jira
//! account (found by email), its description an ADF document that links back. Jira hangs
//! on the create: the SMS page goes out all the same. The leader is SIGKILLed while Jira
//! holds the answer to that create (the issue exists, its outcome never recorded): the new
//! leader finds it by its label instead of creating another, so there is exactly one.
//! Resolving moves it to Mitigated, completing the RCA to RCA Completed, and the ticket's
//! state is on the incident (`Incidents.Get`).

use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions, JiraTarget, TwilioTarget};
use pager_fakes::jira::{self as fake_jira, FakeJira, Fault, Workflow};
use pager_fakes::twilio::{self, FakeTwilio};
use pager_proto::pager::v1 as pb;
use std::time::{Duration, Instant};
use tracing::info;

const KEY: &str = "db-key-0001";
const ALICE_JIRA: &str = "5b10a2844c20165700ede21a";
const WAIT: Duration = Duration::from_secs(20);

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[users.bob]
email = "bob@example.com"
[escalation_policies.db]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]
[tiers.one]
ack_sla = "5m"
rca = "required"
[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
tier = "one"
runbook_url = "https://runbooks.example.com/db"
jira = { project = "DB" }
"#;

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

/// Wait until the incident's Jira entry (on `node`) satisfies `done`.
async fn wait_jira(
    c: &Cluster,
    node: u64,
    id: u64,
    done: impl Fn(&pb::Integration) -> bool,
) -> pb::Integration {
    let deadline = Instant::now() + WAIT;
    loop {
        let inc = incident(c, node, id).await;
        if let Some(g) = inc.integrations.iter().find(|g| g.provider == "jira") {
            if done(g) {
                return g.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "incident {id}'s ticket on node {node}: {:?}",
            inc.integrations
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_opens_one_jira_ticket_through_an_outage_and_a_leader_sigkill() {
    chaos_tests::init_tracing();
    let jira = FakeJira::start(fake_jira::TEST_EMAIL, fake_jira::TEST_API_TOKEN).await;
    jira.add_project("DB", &["Incident", "Task"]);
    jira.set_workflow("DB", Workflow::incident());
    jira.add_user("alice@example.com", ALICE_JIRA, "Alice Example");
    let twilio = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
    let mut c = Cluster::start(ClusterOptions {
        twilio: Some(TwilioTarget {
            base_url: twilio.base_url(),
            account_sid: twilio::TEST_ACCOUNT_SID.into(),
            auth_token: twilio::TEST_AUTH_TOKEN.into(),
            from: twilio::TEST_FROM.into(),
            timeout_ms: 2_000,
        }),
        jira: Some(JiraTarget {
            base_url: jira.base_url(),
            email: fake_jira::TEST_EMAIL.into(),
            api_token: fake_jira::TEST_API_TOKEN.into(),
            // Long: the held create stays held until the leader is killed.
            timeout_ms: 60_000,
        }),
        ..ClusterOptions::default()
    })
    .await
    .expect("three pagerd processes start and elect a leader");
    let before = c.wait_for_leader(WAIT).await.expect("a leader");
    let leader = before.id;
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

    info!("--- Jira holds the answer to the create: the SMS page goes out regardless");
    jira.fail_next_on("POST", "/rest/api/3/issue", 1, Fault::Hang);
    let id = client::events(&to_follower)
        .send(client::trigger(KEY, "disk-full-db1", "disk full on db1"))
        .await
        .expect("the trigger commits")
        .into_inner()
        .incident_id;
    let issues = jira
        .wait_for_issues(1, WAIT)
        .await
        .expect("the create reached Jira");
    let sms = twilio
        .wait_for_messages(1, WAIT)
        .await
        .expect("the page, while Jira hangs");
    assert_eq!(sms[0].to, "+15550100001");
    let created = incident(&c, leader, id).await;
    let g = created
        .integrations
        .iter()
        .find(|g| g.provider == "jira")
        .expect("the ticket is on the incident");
    assert!(
        g.busy && g.reference.is_empty(),
        "its create is in flight: {g:?}"
    );

    let issue = &issues[0];
    assert_eq!(
        (issue.project.as_str(), issue.issue_type.as_str()),
        ("DB", "Incident")
    );
    assert_eq!(
        issue.assignee.as_deref(),
        Some(ALICE_JIRA),
        "the on-call's account"
    );
    assert!(
        issue.summary.contains("disk full on db1"),
        "{}",
        issue.summary
    );
    let description = issue.description.clone().unwrap_or_default().to_string();
    assert!(
        description.contains("https://runbooks.example.com/db")
            && description.contains(&format!("/incidents/{id}")),
        "{description}"
    );
    assert!(
        issue
            .labels
            .iter()
            .any(|l| l.starts_with("pagerd-delivery-")),
        "{:?}",
        issue.labels
    );

    info!("--- SIGKILL the leader: the new one finds the issue by its label");
    c.kill(leader).expect("SIGKILL the leader");
    let new_leader = c
        .wait_for_new_leader(before, WAIT)
        .await
        .expect("a new leader")
        .0
        .id;
    let g = wait_jira(&c, new_leader, id, |g| !g.reference.is_empty()).await;
    assert_eq!(g.reference, issue.key);
    assert_eq!(jira.issues().len(), 1, "exactly one ticket");
    let searched = jira
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path == "/rest/api/3/search");
    assert!(searched, "looked up by its label");
    let inc = incident(&c, new_leader, id).await;
    assert!(
        inc.timeline
            .iter()
            .any(|e| e.what == format!("Jira ticket {} opened", issue.key)),
        "{:?}",
        inc.timeline
    );

    info!("--- resolve: Mitigated; the RCA completed: RCA Completed");
    let to_leader = c.channel(new_leader).expect("channel");
    client::incidents(&to_leader)
        .resolve(pb::IncidentActionRequest {
            id,
            by: "alice".into(),
        })
        .await
        .expect("the resolve commits");
    jira.wait_for_status(&issue.key, "Mitigated", WAIT)
        .await
        .unwrap_or_else(|_| panic!("mitigated: {:?}", jira.issue(&issue.key)));
    wait_jira(&c, new_leader, id, |g| g.state == "mitigated" && !g.busy).await;
    let followups = client::followups(&to_leader);
    followups
        .clone()
        .edit_rca(pb::EditRcaRequest {
            incident_id: id,
            summary: Some("logs filled the disk; no customer impact".into()),
            by: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("the RCA is written");
    followups
        .clone()
        .complete_rca(pb::CompleteRcaRequest {
            incident_id: id,
            by: "alice".into(),
        })
        .await
        .expect("the RCA is complete");
    let done = jira
        .wait_for_status(&issue.key, "RCA Completed", WAIT)
        .await
        .unwrap_or_else(|_| panic!("rca completed: {:?}", jira.issue(&issue.key)));
    assert_eq!(done.transitions, ["Mitigate", "Complete RCA"]);
    let g = wait_jira(&c, new_leader, id, |g| g.state == "rca_completed").await;
    assert!(g.error.is_empty() && g.failed == 0, "{g:?}");
    assert_eq!(jira.issues().len(), 1, "still exactly one ticket");
    c.check_processes().expect("the survivors still run");
}
