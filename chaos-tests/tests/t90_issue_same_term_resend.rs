//! Regression test of a fixed pagerd bug: a leader SIGKILLed while a page is in flight and
//! restarted before the followers' election timeout comes back as leader of the *same* term
//! (openraft 0.9 restores its committed vote and re-establishes leadership). Its new process
//! cannot know whether the old one sent the page. Before the fix the first `Tick` re-claimed
//! only older terms, so the page went out twice and `pagerd_deliveries_total
//! {outcome="reclaimed"}` did not count it. Now every leader process commits a `Takeover`
//! before sending anything, which re-claims (and counts) every unsettled delivery; avoiding the
//! duplicate itself needs reconciliation with Twilio.
//!
//! Run: `cargo test -p chaos-tests --test t90_issue_same_term_resend -- --nocapture`

use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions, TwilioTarget};
use chaos_tests::workload::{OnCall, User};
use pager_fakes::twilio::{self, FakeTwilio, Fault};
use pager_proto::pager::v1 as pb;
use std::io::{Read as _, Write as _};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `pagerd_deliveries_total{outcome="reclaimed"}` from a node's `/metrics` (plain HTTP/1.0).
fn reclaimed(http: std::net::SocketAddr) -> u64 {
    let mut s = std::net::TcpStream::connect(http).expect("connect to the http port");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: pagerd\r\n\r\n")
        .expect("send the request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read /metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("pagerd_deliveries_total{outcome=\"reclaimed\"} "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the reclaimed counter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_restarted_in_its_term_counts_the_page_it_resends() {
    chaos_tests::init_tracing();
    let tw = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
    let mut c = Cluster::start(ClusterOptions {
        twilio: Some(TwilioTarget {
            base_url: tw.base_url(),
            account_sid: twilio::TEST_ACCOUNT_SID.into(),
            auth_token: twilio::TEST_AUTH_TOKEN.into(),
            from: twilio::TEST_FROM.into(),
            timeout_ms: 10_000,
        }),
        ..ClusterOptions::default()
    })
    .await
    .expect("cluster");
    let doc = OnCall::default()
        .user(User::new("alice").sms("+15550100001"))
        .policy("p", 0, &[(3_600_000, &["alice"])])
        .service("svc", "svc-key-000001", "p");
    let leader = c.wait_for_leader(WAIT).await.expect("leader");
    let ch = c.channel(leader.id).expect("channel");
    client::config(&ch)
        .apply(pb::ApplyConfigRequest {
            document: doc.to_toml(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .expect("config applies");

    // Twilio takes the message at once but holds its answer: the outcome cannot commit.
    tw.fail_next(1, Fault::Delay(Duration::from_secs(5)));
    let sent = client::events(&ch)
        .send(client::trigger("svc-key-000001", "k1", "page in flight"))
        .await
        .expect("trigger commits")
        .into_inner();
    tw.wait_for_messages(1, WAIT)
        .await
        .expect("the page reached Twilio");

    c.kill(leader.id).expect("SIGKILL the leader");
    c.restart(leader.id).await.expect("restart it at once");
    let after = c.wait_for_leader(WAIT).await.expect("leader");
    println!("leader before the kill {leader:?}, after the restart {after:?}");

    // Settle: wait until the delivery has an outcome again.
    let mut inc = client::incidents(&c.channel(after.id).expect("channel"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let delivery = loop {
        let i = inc
            .get(pb::GetIncidentRequest {
                id: sent.incident_id,
                ..Default::default()
            })
            .await
            .expect("incident")
            .into_inner();
        if let Some(d) = i.deliveries.first().filter(|d| d.status != "pending") {
            break d.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let pages = tw.messages().len() as u64;
    let counted = reclaimed(c.ports(after.id).expect("ports").http);
    println!(
        "SMS at Twilio: {pages}; delivery term {} attempt {} status {}; reclaimed counter {counted}",
        delivery.term, delivery.attempt, delivery.status
    );
    assert!(
        pages - 1 <= counted,
        "{} duplicate page(s) went out but reclaimed = {counted}",
        pages - 1
    );
}
