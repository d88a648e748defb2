//! The providers fail under traffic, on three nodes: Twilio unreachable (every node's gate
//! refuses connections) for 3 s; Twilio answering `429 Too Many Requests` to the next 6
//! requests; Twilio taking 3 s to answer the next 3 (longer than the nodes' 2 s timeout: the
//! SMS are out but the sender cannot know, so they are in doubt and looked up before any
//! re-send); the SMTP server down for 3 s. Pages due in those windows go out when the provider
//! is back (each window is an outage that extends their deadline by twice its rest: retries
//! back off exponentially). Every invariant is checked at the end and the report line printed.
//!
//! Run: `cargo test -p chaos-tests --test t60_providers -- --nocapture`

use chaos_tests::scenario::{Scenario, ScenarioOptions};
use chaos_tests::{faults, metrics};
use std::time::Duration;
use tracing::info;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_survive_twilio_and_smtp_outages() {
    let mut s = Scenario::start("t60_providers", ScenarioOptions::default())
        .await
        .expect("three nodes behind proxies");
    let traffic = s.traffic(60).expect("traffic");
    s.run_for(Duration::from_secs(2)).await;

    info!("--- Twilio unreachable for 3 s");
    faults::twilio_down(&s.cluster, &mut s.history, Duration::from_secs(3))
        .await
        .expect("Twilio down and back");
    s.run_for(Duration::from_secs(1)).await;

    info!("--- Twilio answers 429 to the next 6 requests");
    faults::twilio_429(&s.twilio, &mut s.history, 6, Duration::from_secs(5))
        .await
        .expect("429s");
    let throttled = s
        .twilio
        .rejected()
        .iter()
        .filter(|r| r.http_status == Some(429))
        .count();
    assert!(throttled > 0, "no request met the 429s");

    info!("--- Twilio answers the next 3 requests after 3 s (the nodes give up after 2 s)");
    faults::twilio_slow(
        &s.twilio,
        &mut s.history,
        3,
        Duration::from_secs(3),
        Duration::from_secs(5),
    )
    .await
    .expect("slow answers");
    s.run_for(Duration::from_secs(1)).await;

    info!("--- SMTP down for 3 s");
    faults::smtp_down(&s.smtp, &mut s.history, Duration::from_secs(3))
        .await
        .expect("SMTP down and back");
    s.run_for(Duration::from_secs(1)).await;

    // The late answers made pages in doubt, and they were looked up rather than re-sent
    // (the counters are replicated: any node says the same once caught up).
    let leader = s
        .cluster
        .wait_for_leader(s.opts.wait)
        .await
        .expect("a leader");
    let http = s.cluster.ports(leader.id).expect("ports").http;
    let m = metrics::scrape(http).await.expect("metrics");
    info!(
        in_doubt = m.deliveries("in_doubt"),
        reconciled = m.deliveries("reconciled"),
        "--- deliveries in doubt"
    );
    assert!(m.deliveries("in_doubt") > 0, "no send was left in doubt");
    assert!(
        m.deliveries("reconciled") > 0,
        "no SMS in doubt was looked up"
    );

    s.finish(traffic).await.expect("every invariant holds");
}
