//! The integrations phase: `n` incidents at once on services that each post to a Slack
//! channel, open a Jira ticket and have a webhook subscription, while their pages escalate.
//!
//! Workload: [`SERVICES`] services, each with a channel, the Jira project `BENCH` and the one
//! webhook subscription (every event kind). Level 1 texts the service's first user at once,
//! level 2 texts a second user `delay` later. The incidents are triggered from `clients`
//! concurrent clients to the leader; each one's `created_at_ms` is read back. Then, against
//! fake Twilio, Slack, Jira and webhook servers in this process:
//!
//! - SMS: per level-2 page, its deadline (`created_at_ms + delay`) to the SMS at the fake
//!   (received time); a page never seen, or later than [`MISS_AFTER`], is a miss; a further SMS
//!   for the same incident and recipient is a duplicate.
//! - Slack: one top-level message per incident (found by its buttons' value); more is a
//!   duplicate, none a miss.
//! - Jira: one issue per incident (its summary names it); more is a duplicate.
//! - Webhooks: one `incident.triggered` and one `incident.escalated` per incident (first
//!   receipts by `webhook-id`); redeliveries are counted.
//!
//! The bench's `[dispatch]` knobs apply (no account rate; a recipient may take 1,000 pages a
//! minute), as in the storm, whose round without faults is the same page load without the
//! integrations.
//!
//! The phase waits until every page and integration is out (or [`SETTLE_LIMIT`]) and reports
//! how long the integrations took after the last trigger.

use anyhow::Context as _;
use chaos_tests::client;
use chaos_tests::cluster::{Cluster, ClusterOptions, JiraTarget, SlackTarget, TwilioTarget};
use chaos_tests::pages::incident_in;
use chaos_tests::report::percentiles;
use pager_fakes::jira::{self as fake_jira, FakeJira, Workflow};
use pager_fakes::slack::{self as fake_slack, FakeSlack};
use pager_fakes::twilio::{self, FakeTwilio};
use pager_fakes::webhooks::{self as fake_hooks, FakeWebhookReceiver};
use pager_proto::pager::v1 as pb;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Services of the phase.
pub const SERVICES: usize = 50;
/// A level-2 page later than this after its deadline, or never seen, is a miss.
pub const MISS_AFTER: Duration = Duration::from_secs(30);
/// How long after the last deadline the integrations may take to be all out.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(300);
const READERS: usize = 16;

pub struct Settings {
    pub incidents: usize,
    pub clients: usize,
    pub delay: Duration,
}

#[derive(Default)]
pub struct Phase {
    pub incidents: usize,
    pub trigger_secs: f64,
    pub sms_latency: Vec<Duration>,
    pub sms_missed: usize,
    pub sms_duplicates: usize,
    pub slack_posts: usize,
    pub slack_missing: usize,
    pub slack_duplicates: usize,
    pub slack_requests: usize,
    pub jira_issues: usize,
    pub jira_missing: usize,
    pub jira_duplicates: usize,
    pub jira_requests: usize,
    pub hook_events: usize,
    pub hook_missing: usize,
    pub hook_redeliveries: usize,
    /// From the last trigger to the last integration request out.
    pub settled_after: Option<Duration>,
}

fn channel(i: usize) -> String {
    format!("C0BENCH{i:04}")
}

fn doc(delay: Duration, hook_url: &str) -> String {
    let mut d = String::new();
    let teams: Vec<String> = (0..SERVICES).map(|i| format!("\"t{i:02}\"")).collect();
    for i in 0..SERVICES {
        let _ = write!(
            d,
            r#"
[users.l1-{i:02}]
email = "l1-{i:02}@example.com"
contact_methods = [ {{ name = "sms", type = "sms", address = "+1555040{i:04}" }} ]
notification_rules.high = [ {{ after = "0", contact = "sms" }} ]
[users.l2-{i:02}]
email = "l2-{i:02}@example.com"
contact_methods = [ {{ name = "sms", type = "sms", address = "+1555041{i:04}" }} ]
notification_rules.high = [ {{ after = "0", contact = "sms" }} ]
[teams.t{i:02}]
members = ["l1-{i:02}", "l2-{i:02}"]
[escalation_policies.p{i:02}]
levels = [
  {{ escalate_after = "{}s", targets = [ {{ user = "l1-{i:02}" }} ] }},
  {{ escalate_after = "1h", targets = [ {{ user = "l2-{i:02}" }} ] }},
]
[services.s{i:02}]
integration_keys = ["bench-integ-{i:02}"]
escalation_policy = "p{i:02}"
team = "t{i:02}"
slack_channel = "{}"
jira = {{ project = "BENCH" }}
"#,
            delay.as_secs(),
            channel(i)
        );
    }
    let _ = write!(
        d,
        "\n[webhooks.bench]\nurl = \"{hook_url}\"\nteams = [{}]\n",
        teams.join(", ")
    );
    d
}

pub async fn run_phase(s: &Settings) -> anyhow::Result<Phase> {
    let twilio = FakeTwilio::start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN).await;
    let slack = FakeSlack::start(fake_slack::TEST_BOT_TOKEN, fake_slack::TEST_SIGNING_SECRET).await;
    let jira = FakeJira::start(fake_jira::TEST_EMAIL, fake_jira::TEST_API_TOKEN).await;
    let hooks = FakeWebhookReceiver::start(fake_hooks::TEST_SECRET).await;
    for i in 0..SERVICES {
        slack.add_channel(&channel(i));
        jira.add_user(
            &format!("l1-{i:02}@example.com"),
            &format!("acct-l1-{i:02}"),
            "L1",
        );
    }
    jira.add_project("BENCH", &["Incident"]);
    jira.set_workflow("BENCH", Workflow::incident());
    let c = Cluster::start(ClusterOptions {
        twilio: Some(TwilioTarget {
            base_url: twilio.base_url(),
            account_sid: twilio::TEST_ACCOUNT_SID.into(),
            auth_token: twilio::TEST_AUTH_TOKEN.into(),
            from: twilio::TEST_FROM.into(),
            timeout_ms: 5_000,
        }),
        slack: Some(SlackTarget {
            base_url: slack.base_url(),
            bot_token: fake_slack::TEST_BOT_TOKEN.into(),
            signing_secret: fake_slack::TEST_SIGNING_SECRET.into(),
            timeout_ms: 5_000,
        }),
        jira: Some(JiraTarget {
            base_url: jira.base_url(),
            email: fake_jira::TEST_EMAIL.into(),
            api_token: fake_jira::TEST_API_TOKEN.into(),
            timeout_ms: 5_000,
        }),
        webhook_secrets: vec![("bench".into(), fake_hooks::TEST_SECRET.into())],
        // The bench's knobs, as the storm's: no account rate, each recipient may take every
        // page of the phase (a level-2 user is paged for 1 in 50 incidents).
        dispatch: Some(crate::KNOBS),
        ..ClusterOptions::default()
    })
    .await
    .context("start three pagerd processes")?;
    let leader = c
        .wait_for_leader(Duration::from_secs(30))
        .await
        .context("a leader")?
        .id;
    let ch = c.channel(leader)?;
    client::config(&ch)
        .apply(pb::ApplyConfigRequest {
            document: doc(s.delay, &hooks.url()),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .context("apply the document")?;

    // Trigger from concurrent clients.
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..s.clients {
        let (ch, next, n) = (ch.clone(), next.clone(), s.incidents);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut events = client::events(&ch);
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= n {
                    return Ok::<_, anyhow::Error>(ids);
                }
                let key = format!("bench-integ-{:02}", k % SERVICES);
                let r = events
                    .send(client::trigger(
                        &key,
                        &format!("integ-{k}"),
                        &format!("integ {k}"),
                    ))
                    .await?
                    .into_inner();
                ids.push(r.incident_id);
            }
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    let triggered = Instant::now();
    let trigger_secs = started.elapsed().as_secs_f64();

    // Each incident's creation instant, for its level-2 deadline.
    let created: Arc<tokio::sync::Mutex<HashMap<u64, u64>>> = Arc::default();
    let queue = Arc::new(tokio::sync::Mutex::new(ids.clone()));
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (ch, queue, created) = (ch.clone(), queue.clone(), created.clone());
        readers.push(tokio::spawn(async move {
            let mut incidents = client::incidents(&ch);
            loop {
                let Some(id) = queue.lock().await.pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let inc = incidents
                    .get(pb::GetIncidentRequest {
                        id,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                created.lock().await.insert(id, inc.created_at_ms);
            }
        }));
    }
    for r in readers {
        r.await??;
    }
    let created = created.lock().await.clone();
    let last_deadline = created.values().copied().max().unwrap_or(0) + s.delay.as_millis() as u64;

    // Wait for every page and every integration, or the limit.
    let n = ids.len();
    let limit = Instant::now()
        + Duration::from_millis(
            last_deadline.saturating_sub(chaos_tests::history::epoch_ms(SystemTime::now())),
        )
        + SETTLE_LIMIT;
    let mut settled_after = None;
    loop {
        let l2 = twilio
            .messages()
            .iter()
            .filter(|m| m.to.starts_with("+1555041"))
            .count();
        let posts = slack
            .messages()
            .iter()
            .filter(|m| m.thread_ts.is_none() && m.channel.starts_with("C0BENCH"))
            .count();
        let issues = jira.issues().len();
        let hooks_seen = hooks.events().iter().filter(|e| !e.redelivery).count();
        if l2 >= n && posts >= n && issues >= n && hooks_seen >= 2 * n {
            settled_after = Some(triggered.elapsed());
            break;
        }
        if Instant::now() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A little longer: anything sent twice after the counts were reached shows.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut p = Phase {
        incidents: n,
        trigger_secs,
        settled_after,
        ..Phase::default()
    };
    // SMS, level 2.
    let mut first: HashMap<(u64, String), SystemTime> = HashMap::new();
    for m in twilio.messages() {
        let Some(inc) = incident_in(&m.body) else {
            continue;
        };
        let key = (inc, m.to.clone());
        match first.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => p.sms_duplicates += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(m.received_at);
            }
        }
    }
    for (id, at) in &created {
        let to = first
            .iter()
            .find(|((inc, to), _)| inc == id && to.starts_with("+1555041"))
            .map(|(_, t)| *t);
        let deadline =
            SystemTime::UNIX_EPOCH + Duration::from_millis(at + s.delay.as_millis() as u64);
        match to.and_then(|t| t.duration_since(deadline).ok().or(Some(Duration::ZERO))) {
            Some(late) if late <= MISS_AFTER => p.sms_latency.push(late),
            _ => p.sms_missed += 1,
        }
    }
    // Slack: top-level posts per incident.
    let mut posts: BTreeMap<u64, usize> = BTreeMap::new();
    let msgs = slack.messages();
    p.slack_requests = slack.requests().len();
    for m in msgs.iter().filter(|m| m.thread_ts.is_none()) {
        let blocks = m.blocks.as_ref().map(|b| b.to_string()).unwrap_or_default();
        if let Some(id) = ids
            .iter()
            .find(|id| blocks.contains(&format!("\"value\":\"{id}\"")))
        {
            *posts.entry(*id).or_default() += 1;
        }
    }
    p.slack_posts = posts.values().sum();
    p.slack_missing = n - posts.len();
    p.slack_duplicates = posts.values().map(|c| c - 1).sum();
    // Jira: issues per incident.
    let mut issues: BTreeMap<u64, usize> = BTreeMap::new();
    for i in jira.issues() {
        if let Some(id) = i
            .summary
            .strip_prefix("[pagerd #")
            .and_then(|r| r.split(']').next())
            .and_then(|x| x.parse::<u64>().ok())
        {
            *issues.entry(id).or_default() += 1;
        }
    }
    p.jira_requests = jira.requests().len();
    p.jira_issues = issues.values().sum();
    p.jira_missing = n - issues.len();
    p.jira_duplicates = issues.values().map(|c| c - 1).sum();
    // Webhooks: triggered and escalated per incident.
    let mut kinds: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for e in hooks.events() {
        if e.redelivery {
            p.hook_redeliveries += 1;
            continue;
        }
        p.hook_events += 1;
        let j = e.json.clone().unwrap_or(Value::Null);
        let (Some(id), Some(kind)) = (j["data"]["incident"]["id"].as_u64(), j["type"].as_str())
        else {
            continue;
        };
        *kinds.entry((id, kind.to_string())).or_default() += 1;
    }
    for id in &ids {
        for kind in ["incident.triggered", "incident.escalated"] {
            if !kinds.contains_key(&(*id, kind.to_string())) {
                p.hook_missing += 1;
            }
        }
    }
    drop(c);
    Ok(p)
}

impl Phase {
    pub fn is_clean(&self) -> bool {
        self.sms_missed == 0
            && self.sms_duplicates == 0
            && self.slack_missing == 0
            && self.slack_duplicates == 0
            && self.jira_missing == 0
            && self.jira_duplicates == 0
            && self.hook_missing == 0
    }

    fn sms_ms(&self) -> Vec<f64> {
        percentiles(&self.sms_latency, &[50.0, 99.0, 100.0])
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect()
    }

    pub fn print(&self) {
        let ms = self.sms_ms();
        let at = |i: usize| ms.get(i).copied().unwrap_or(f64::NAN);
        println!(
            "{} incidents triggered in {:.1} s; each posts to Slack, opens a Jira ticket and has a webhook subscription",
            self.incidents, self.trigger_secs
        );
        println!("| what | delivered | missing | twice | other |");
        println!("|---|---|---|---|---|");
        println!(
            "| level-2 SMS: deadline -> Twilio p50 / p99 / max {:.1} / {:.1} / {:.1} ms | {} | {} | {} | |",
            at(0),
            at(1),
            at(2),
            self.sms_latency.len(),
            self.sms_missed,
            self.sms_duplicates
        );
        println!(
            "| Slack messages (one per incident) | {} | {} | {} | {} requests |",
            self.slack_posts, self.slack_missing, self.slack_duplicates, self.slack_requests
        );
        println!(
            "| Jira tickets (one per incident) | {} | {} | {} | {} requests |",
            self.jira_issues, self.jira_missing, self.jira_duplicates, self.jira_requests
        );
        println!(
            "| webhook events (triggered + escalated + ...) | {} | {} | | {} redeliveries |",
            self.hook_events, self.hook_missing, self.hook_redeliveries
        );
        match self.settled_after {
            Some(d) => println!("all out {:.1} s after the last trigger", d.as_secs_f64()),
            None => println!("NOT all out within the limit"),
        }
    }

    pub fn json(&self) -> Value {
        let ms = self.sms_ms();
        json!({
            "incidents": self.incidents,
            "trigger_secs": self.trigger_secs,
            "sms_level2_deadline_ms": { "p50": ms.first(), "p99": ms.get(1), "max": ms.get(2) },
            "sms_missed": self.sms_missed,
            "sms_duplicates": self.sms_duplicates,
            "slack": { "posts": self.slack_posts, "missing": self.slack_missing, "duplicates": self.slack_duplicates, "requests": self.slack_requests },
            "jira": { "issues": self.jira_issues, "missing": self.jira_missing, "duplicates": self.jira_duplicates, "requests": self.jira_requests },
            "webhooks": { "events": self.hook_events, "missing": self.hook_missing, "redeliveries": self.hook_redeliveries },
            "settled_after_s": self.settled_after.map(|d| d.as_secs_f64()),
        })
    }
}
