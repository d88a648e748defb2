//! An RCA through a failover, with real processes: three `pagerd` processes, a fake Twilio
//! and a real SMTP server in this process. A high-urgency trigger opens an RCA record
//! assigned to the on-call who was paged; acknowledge and resolve (through a follower) make it
//! mitigated with a due date from the tier; the leader is SIGKILLed just before the due date,
//! and the reminder email still arrives, from the new leader, once, not before it was due and
//! late by less than a failover. The killed node restarts and serves the same record; the RCA
//! is then written and completed. Every invariant is checked (the reminder counts in the
//! duplicate check by its delivery, like a page).

use chaos_tests::cluster::{Cluster, ClusterOptions, SmtpTarget, TwilioTarget};
use chaos_tests::history::{epoch_ms, from_epoch_ms, Accepted, Acked, ExpectedPage, History};
use chaos_tests::invariants::{self, Bounds};
use chaos_tests::pages::{self, PageChannel};
use chaos_tests::report::ScenarioReport;
use chaos_tests::{client, faults};
use pager_fakes::smtp::{self, SmtpServer};
use pager_fakes::twilio::{self, FakeTwilio};
use pager_proto::pager::v1 as pb;
use std::time::{Duration, Instant, SystemTime};
use tracing::info;

const ALICE_SMS: &str = "+15550100001";
const ALICE_EMAIL: &str = "alice@example.com";
const KEY: &str = "db-key-0001";
/// The tier's `rca_due`: long enough to resolve, wait for the outcomes and kill before it.
const DUE_MS: u64 = 8_000;
/// A reminder may be late by at most one failover (election 500-1000 ms, then a tick).
const FAILOVER_BOUND: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(20);

const DOC: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[users.carol]
email = "carol@example.com"
[teams.db]
members = ["alice"]
admins = ["carol"]
[escalation_policies.db]
levels = [ { escalate_after = "30m", targets = [ { user = "alice" } ] } ]
[tiers.one]
ack_sla = "5m"
rca = "required"
rca_due = "8s"
[services.database]
integration_keys = ["db-key-0001"]
escalation_policy = "db"
team = "db"
tier = "one"
"#;

async fn rca(c: &Cluster, node: u64, id: u64, min_index: u64) -> pb::Rca {
    client::followups(&c.channel(node).expect("channel"))
        .get_rca(pb::GetRcaRequest {
            incident_id: id,
            consistency: Some(pb::ReadConsistency {
                min_index,
                linearizable: false,
            }),
        })
        .await
        .unwrap_or_else(|s| panic!("Followups.GetRca({id}) on node {node}: {s}"))
        .into_inner()
}

fn reminders(smtp: &SmtpServer, id: u64) -> Vec<smtp::ReceivedMail> {
    let marker = format!("incident {id} on database");
    smtp.mails()
        .into_iter()
        .filter(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("RCA") && s.contains(&marker))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rca_reminder_due_across_a_leader_sigkill_arrives_once() {
    chaos_tests::init_tracing();
    let started = Instant::now();
    let twilio = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
    let smtp = SmtpServer::start().expect("start the SMTP server");
    let mut c = Cluster::start(ClusterOptions {
        twilio: Some(TwilioTarget {
            base_url: twilio.base_url(),
            account_sid: twilio::TEST_ACCOUNT_SID.into(),
            auth_token: twilio::TEST_AUTH_TOKEN.into(),
            from: twilio::TEST_FROM.into(),
            timeout_ms: 2_000,
        }),
        smtp: Some(SmtpTarget {
            addr: smtp.addr(),
            from: smtp::TEST_FROM.into(),
            timeout_ms: 2_000,
        }),
        ..ClusterOptions::default()
    })
    .await
    .expect("three pagerd processes start and elect a leader");
    let mut h = History::default();
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

    info!("--- a high-urgency trigger opens an RCA assigned to the paged on-call");
    let sent = client::events(&to_follower)
        .send(client::trigger(KEY, "disk-full-db1", "disk full on db1"))
        .await
        .expect("the trigger commits")
        .into_inner();
    let id = sent.incident_id;
    h.accepted.push(Accepted {
        incident: id,
        dedup_key: sent.dedup_key.clone(),
        folded: sent.folded,
        commit_index: sent.commit_index,
        via: follower,
    });
    twilio
        .wait_for_messages(1, Duration::from_secs(5))
        .await
        .expect("alice's SMS");
    let opened = rca(&c, follower, id, sent.commit_index).await;
    assert_eq!(
        (
            opened.status.as_str(),
            opened.assignee.as_str(),
            opened.required
        ),
        ("open", "alice", true)
    );
    assert_eq!((opened.team.as_str(), opened.stage.as_str()), ("db", "new"));

    info!("--- acknowledge and resolve through a follower: mitigated, due in 8 s");
    let mut incidents = client::incidents(&to_follower);
    let acked = incidents
        .acknowledge(pb::IncidentActionRequest {
            id,
            by: "alice".into(),
        })
        .await
        .expect("the acknowledgement commits")
        .into_inner();
    h.acks.push(Acked {
        incident: id,
        commit_index: acked.commit_index,
        returned_at: SystemTime::now(),
    });
    let inc = acked.incident.expect("the incident");
    h.expected = vec![ExpectedPage {
        incident: id,
        channel: PageChannel::Sms,
        to: ALICE_SMS.into(),
        due_ms: inc.created_at_ms,
    }];
    let resolved = incidents
        .resolve(pb::IncidentActionRequest {
            id,
            by: "alice".into(),
        })
        .await
        .expect("the resolve commits")
        .into_inner();
    let resolved_at = resolved.incident.expect("the incident").resolved_at_ms;
    let mitigated = rca(&c, follower, id, resolved.commit_index).await;
    assert_eq!(mitigated.status, "mitigated");
    assert_eq!(mitigated.mitigated_at_ms, resolved_at);
    let due = resolved_at + DUE_MS;
    assert_eq!(mitigated.due_ms, due, "the tier's rca_due after mitigation");
    assert!(reminders(&smtp, id).is_empty(), "nothing before it is due");

    // Kill only once the page's outcome is committed: a page in flight would be re-sent by
    // the next leader (a counted duplicate), which is not what this test is about.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let inc = client::incidents(&c.channel(leader).expect("channel"))
            .get(pb::GetIncidentRequest {
                id,
                ..Default::default()
            })
            .await
            .expect("Incidents.Get")
            .into_inner();
        if inc.deliveries.iter().all(|d| d.status == "sent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the SMS outcome was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The scenario's instant, not a synchronisation: the kill must land just before the due date.
    let kill_at = from_epoch_ms(due - 1_500);
    if let Ok(wait) = kill_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
    let margin = due.saturating_sub(epoch_ms(SystemTime::now()));
    assert!(
        margin > 500,
        "only {margin} ms left before the reminder: the kill would not precede it"
    );
    info!(
        margin_ms = margin,
        "--- SIGKILL the leader just before the reminder is due"
    );
    let kill = faults::kill_leader(&mut c, &mut h, WAIT)
        .await
        .expect("a new leader after the kill");
    assert_eq!(kill.old.id, leader);

    info!("--- the reminder comes from the new leader, once");
    let mails = smtp
        .wait_for_mails(1, Duration::from_millis(margin) + Duration::from_secs(10))
        .await
        .expect("the reminder email");
    let reminder = &mails[0];
    assert_eq!(reminder.to, vec![ALICE_EMAIL.to_string()]);
    let subject = reminder.header("Subject").unwrap_or_default();
    assert!(
        subject.contains(&format!("RCA due today: incident {id} on database")),
        "{subject}"
    );
    let late = reminder
        .received_at
        .duration_since(from_epoch_ms(due))
        .unwrap_or_else(|e| panic!("the reminder came {:?} before it was due", e.duration()));
    println!(
        "reminder {} ms after it was due; election took {} ms",
        late.as_millis(),
        kill.election.as_millis()
    );
    assert!(late < FAILOVER_BOUND, "the reminder was late by {late:?}");

    info!(
        node = leader,
        "--- restart the killed node: it serves the same record"
    );
    let (now_leader, caught_up) = faults::restart(&mut c, &mut h, leader, WAIT)
        .await
        .expect("the killed node restarts and catches up");
    let on_leader = rca(&c, now_leader.id, id, caught_up).await;
    let on_restarted = rca(&c, leader, id, caught_up).await;
    assert_eq!(on_restarted.revision, on_leader.revision);
    assert_eq!(on_restarted.reminders, 1, "one reminder recorded");
    assert_eq!(reminders(&smtp, id).len(), 1, "and one sent");
    assert!(on_restarted.overdue);

    info!("--- write and complete it through the restarted node");
    let mut followups = client::followups(&c.channel(leader).expect("channel"));
    let refused = followups
        .complete_rca(pb::CompleteRcaRequest {
            incident_id: id,
            by: "alice".into(),
        })
        .await
        .expect_err("completing an empty RCA is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().starts_with("summary:"),
        "{}",
        refused.message()
    );
    followups
        .edit_rca(pb::EditRcaRequest {
            incident_id: id,
            summary: Some("log rotation stopped; no customer impact".into()),
            by: "alice".into(),
            ..Default::default()
        })
        .await
        .expect("the summary saves");
    let done = followups
        .complete_rca(pb::CompleteRcaRequest {
            incident_id: id,
            by: "alice".into(),
        })
        .await
        .expect("the RCA completes")
        .into_inner()
        .rca
        .expect("the record");
    assert_eq!(done.status, "completed");
    assert_eq!(done.stage, "follow_ups_complete", "no repair items");
    assert!(!done.overdue);

    info!("--- invariants");
    let observed = pages::observed(Some(&twilio), Some(&smtp));
    let bounds = Bounds {
        failover: FAILOVER_BOUND,
        in_flight_after_ack: 1,
        catch_up: WAIT,
    };
    let findings = invariants::check_all(&c, &h, &observed, bounds)
        .await
        .expect("invariants can be checked");
    let report = ScenarioReport::new("t83_rca_reminder", &h, &findings);
    println!("{report}");
    let report = report.into_result().expect("every invariant holds");
    assert_eq!(
        report.duplicates,
        0,
        "sms {:?}, mail {:?}",
        twilio
            .messages()
            .iter()
            .map(|m| m.body.clone())
            .collect::<Vec<_>>(),
        smtp.mails()
            .iter()
            .map(|m| m.header("Message-ID"))
            .collect::<Vec<_>>()
    );
    println!("t83_rca_reminder took {:?}", started.elapsed());
}
