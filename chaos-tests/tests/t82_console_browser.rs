//! The web console in a real headless Chromium against three real pagerd processes: sign in
//! on a follower, see an incident sent to `/v2/enqueue` appear without a reload, open it,
//! acknowledge it (the timeline names the signed-in user), take the page with an override,
//! then SIGKILL the leader with an incident's page open on the follower and acknowledge during
//! the election: it lands once. Sign out. Screenshots of each page go to
//! `target/console-screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (`.ci/run` installs them); without them it fails.

use chaos_tests::browser::{self, Browser};
use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions};
use pager_proto::pager::v1 as pb;
use std::time::Duration;
use tracing::info;

/// Bound on each wait for the page or the cluster.
const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "web-key-0001";
const PASSWORD: &str = "alice-console-pw";

/// Pages wait an hour: nothing is sent, so no provider is needed.
const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "email", type = "email", address = "alice@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[users.bob]
contact_methods = [ { name = "email", type = "email", address = "bob@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[schedules.primary]
time_zone = "UTC"
[[schedules.primary.layers]]
name = "weekly"
start = "2024-01-01T00:00:00"
rotation = "weekly"
users = ["bob"]
[escalation_policies.web]
levels = [ { escalate_after = "1h", targets = [ { schedule = "primary" } ] } ]
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "web"
runbook_url = "https://runbooks.example.com/web"
"#;

/// Send a trigger as an alert source would: PagerDuty Events v2 on a node's HTTP port.
async fn enqueue(http: std::net::SocketAddr, dedup: &str, summary: &str) -> anyhow::Result<()> {
    let res = reqwest::Client::new()
        .post(format!("http://{http}/v2/enqueue"))
        .json(&serde_json::json!({
            "routing_key": KEY,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {"summary": summary, "source": "web1", "severity": "critical"},
        }))
        .send()
        .await?;
    anyhow::ensure!(res.status() == 202, "enqueue: {}", res.text().await?);
    Ok(())
}

async fn incident_by_dedup(c: &Cluster, node: u64, dedup: &str) -> anyhow::Result<pb::Incident> {
    let list = client::incidents(&c.channel(node)?)
        .list(pb::ListIncidentsRequest::default())
        .await?
        .into_inner();
    list.incidents
        .into_iter()
        .find(|i| i.dedup_key == dedup)
        .ok_or_else(|| anyhow::anyhow!("no incident with dedup key {dedup}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_works_an_incident_in_the_browser_through_a_leader_sigkill(
) -> anyhow::Result<()> {
    chaos_tests::init_tracing();
    assert!(
        Browser::available(),
        "no browser: install the Debian packages chromium and chromium-driver (looked for {} and {})",
        browser::chromium_path().display(),
        browser::chromedriver_path().display()
    );
    let mut c = Cluster::start(ClusterOptions::default()).await?;
    let leader = c.wait_for_leader(WAIT).await?;
    let follower = c.follower_of(leader.id)?;
    let to_leader = c.channel(leader.id)?;
    client::config(&to_leader)
        .apply(pb::ApplyConfigRequest {
            document: ONCALL.into(),
            format: "toml".into(),
            dry_run: false,
        })
        .await?;
    let set = pb::users_client::UsersClient::new(to_leader.clone())
        .set_password(pb::SetPasswordRequest {
            user: "alice".into(),
            password: PASSWORD.into(),
            role: "responder".into(),
        })
        .await?
        .into_inner();
    c.wait_applied(follower, set.commit_index, WAIT).await?;
    let console = format!("http://{}", c.ports(follower)?.http);
    let browser = Browser::start().await?;

    info!(follower, "--- sign in on a follower");
    browser.goto(&format!("{console}/")).await?;
    browser.wait_for("#login", WAIT).await?;
    browser.screenshot("login").await?;
    browser.fill("#user", "alice").await?;
    browser.fill("#password", PASSWORD).await?;
    browser.click("#sign-in").await?;
    browser.wait_for("#incidents", WAIT).await?;
    browser.wait_for_text("#live", "live", WAIT).await?;

    info!("--- an event through /v2/enqueue appears without a reload");
    // A mark on this page's window: a reload would lose it.
    browser
        .client()
        .execute("window.pagerdMark = 'same page'; return 1;", vec![])
        .await?;
    enqueue(c.ports(leader.id)?.http, "cpu-web1", "cpu pegged on web1").await?;
    let row = browser
        .wait_for_text(
            "#incidents li.incident .summary",
            "cpu pegged on web1",
            WAIT,
        )
        .await?;
    assert_eq!(row, "cpu pegged on web1");
    let mark = browser
        .client()
        .execute("return window.pagerdMark || 'reloaded';", vec![])
        .await?;
    assert_eq!(mark, serde_json::json!("same page"), "the list reloaded");
    browser.screenshot("incidents").await?;

    info!("--- open it and acknowledge");
    let first = incident_by_dedup(&c, leader.id, "cpu-web1").await?;
    browser.click(&format!("#incident-{} a", first.id)).await?;
    browser
        .wait_for_text("#summary", "cpu pegged on web1", WAIT)
        .await?;
    browser.screenshot("incident").await?;
    browser.click("#ack").await?;
    browser
        .wait_for_text("#done", "Acknowledged.", WAIT)
        .await?;
    let timeline = browser.text("#timeline").await?;
    assert!(timeline.contains("alice acknowledged"), "{timeline}");
    assert_eq!(browser.text("#status").await?, "acknowledged");

    info!("--- take the page");
    browser.goto(&format!("{console}/oncall")).await?;
    browser.wait_for("#override", WAIT).await?;
    let before = browser.text("#schedule-primary .now").await?;
    assert_eq!(before, "bob");
    browser.fill("#ov-hours", "2").await?;
    browser.click("#take").await?;
    browser
        .wait_for_text("#done", "Override added.", WAIT)
        .await?;
    assert_eq!(browser.text("#schedule-primary .now").await?, "alice");
    browser.wait_for_text("#my-shifts", "primary", WAIT).await?;
    browser.screenshot("oncall").await?;
    browser.click("#schedule-primary h3 a").await?;
    browser.wait_for("#week", WAIT).await?;
    browser.screenshot("schedule").await?;
    browser.goto(&format!("{console}/services/web")).await?;
    browser.wait_for("#plan", WAIT).await?;
    browser.screenshot("service").await?;
    browser.goto(&format!("{console}/profile")).await?;
    browser.wait_for("#contacts", WAIT).await?;
    browser.screenshot("profile").await?;

    info!("--- the leader dies with an incident's page open on the follower");
    enqueue(c.ports(leader.id)?.http, "disk-web2", "disk full on web2").await?;
    let second = incident_by_dedup(&c, leader.id, "disk-web2").await?;
    c.wait_all_caught_up(leader.id, WAIT).await?;
    browser
        .goto(&format!("{console}/incidents/{}", second.id))
        .await?;
    browser.wait_for("#ack", WAIT).await?;
    c.kill(leader.id)?;
    // Submitted while the cluster elects: the follower waits for the new leader.
    browser.click("#ack").await?;
    let answered = browser
        .wait_for("#done, #error", WAIT)
        .await?
        .text()
        .await?;
    // An acknowledge is safe to send twice, so the console sends it again once
    // the cluster has a new leader: it lands, and once.
    assert!(answered.contains("Acknowledged."), "{answered}");
    let (new_leader, _) = c.wait_for_new_leader(leader, WAIT).await?;
    let after = client::incidents(&c.channel(new_leader.id)?)
        .get(pb::GetIncidentRequest {
            id: second.id,
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(after.acknowledged_by, "alice");
    let acks = after
        .timeline
        .iter()
        .filter(|t| t.what == "acknowledged")
        .count();
    assert_eq!(acks, 1, "acknowledged once: {:?}", after.timeline);
    browser.screenshot("incident-after-failover").await?;

    info!("--- the live list keeps working after the election");
    browser.goto(&format!("{console}/incidents")).await?;
    browser.wait_for_text("#live", "live", WAIT).await?;
    enqueue(
        c.ports(new_leader.id)?.http,
        "mem-web3",
        "memory low on web3",
    )
    .await?;
    browser
        .wait_for_text("#incidents", "memory low on web3", WAIT)
        .await?;
    // One tap from the list: the row that arrived live acknowledges with
    // this session's token (the script fills it into the shared row).
    let third = incident_by_dedup(&c, new_leader.id, "mem-web3").await?;
    browser
        .click(&format!("#incident-{} .quick-ack button", third.id))
        .await?;
    browser
        .wait_for_text("#done", "Acknowledged.", WAIT)
        .await?;

    info!("--- sign out");
    browser.click("#sign-out").await?;
    browser.wait_for("#login", WAIT).await?;
    browser.goto(&format!("{console}/incidents")).await?;
    browser.wait_for("#login", WAIT).await?;
    browser.close().await?;
    Ok(())
}
