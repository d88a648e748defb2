//! What every fault scenario shares: the fake Twilio and the SMTP server, a cluster whose
//! nodes talk through the harness's proxies, the on-call document and its model, the traffic,
//! and the end of a run — stop the traffic, let the last deadlines pass, derive the pages the
//! model requires from the incidents the cluster holds, check every invariant, print the
//! report line.
//!
//! The document: one service whose policy pages alice (SMS and email) at once and bob (SMS)
//! [`ScenarioOptions::level_ms`] later, once (no repeat). The traffic acknowledges every third
//! incident between the two levels, so bob's page of those must not come.
//!
//! The model is applied to the cluster's final state, not to what the clients saw: an event
//! whose answer was lost may still have opened an incident, which pages like any other. The
//! inputs it takes from the state are the leader-stamped `created_at_ms` and
//! `acknowledged_at_ms`; from them it says, independently of pager-core, which pages are due
//! when. A page due within the failover bound before the acknowledgement is optional: a
//! failover may let the acknowledgement commit first.

use crate::client;
use crate::cluster::{
    Cluster, ClusterOptions, DispatchKnobs, SmtpTarget, Timings, TwilioTarget, TAIL_LINES,
};
use crate::history::{from_epoch_ms, ExpectedPage, History};
use crate::invariants::{self, Bounds, ScenarioBounds};
use crate::pages;
use crate::report::ScenarioReport;
use crate::traffic::{Traffic, TrafficOptions};
use crate::workload::{OnCall, User};
use anyhow::Context as _;
use pager_fakes::smtp::{self, SmtpServer};
use pager_fakes::twilio::{self, FakeTwilio};
use pager_proto::pager::v1 as pb;
use std::time::{Duration, Instant, SystemTime};

pub const KEY: &str = "chaos-key-0001";
pub const SERVICE: &str = "chaos";
pub const ALICE_SMS: &str = "+15550100001";
pub const ALICE_EMAIL: &str = "alice@example.com";
pub const BOB_SMS: &str = "+15550100002";

#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub nodes: usize,
    /// Region per node (see [`ClusterOptions::regions`]).
    pub regions: Vec<String>,
    pub snapshot_every_entries: Option<u64>,
    pub timings: Timings,
    /// Delay between the two escalation levels.
    pub level_ms: u64,
    /// How late a page may be after its deadline: one failover (election, takeover, tick).
    pub failover_bound: Duration,
    /// `twilio.timeout_ms` and `smtp.timeout_ms` of the nodes.
    pub provider_timeout_ms: u64,
    /// Bound on each wait for the cluster (elections, catching up, restarts).
    pub wait: Duration,
    /// `dispatch.messages_per_second`: account-wide SMS pacing (0: none). With pacing, a
    /// burst of incidents leaves the leader holding claimed pages waiting for their slot.
    pub messages_per_second: f64,
}

impl Default for ScenarioOptions {
    fn default() -> Self {
        ScenarioOptions {
            nodes: 3,
            regions: Vec::new(),
            snapshot_every_entries: None,
            timings: Timings::default(),
            level_ms: 3_000,
            failover_bound: Duration::from_secs(4),
            provider_timeout_ms: 2_000,
            wait: Duration::from_secs(30),
            messages_per_second: 0.0,
        }
    }
}

/// A running scenario; see the module documentation.
pub struct Scenario {
    pub name: String,
    pub opts: ScenarioOptions,
    pub twilio: FakeTwilio,
    pub smtp: SmtpServer,
    pub cluster: Cluster,
    pub history: History,
    pub doc: OnCall,
    started: Instant,
}

/// The on-call document of every scenario.
pub fn oncall(level_ms: u64) -> OnCall {
    OnCall::default()
        .user(User::new("alice").sms(ALICE_SMS).email(ALICE_EMAIL))
        .user(User::new("bob").sms(BOB_SMS))
        .policy("p", 0, &[(level_ms, &["alice"]), (level_ms, &["bob"])])
        .service(SERVICE, KEY, "p")
}

impl Scenario {
    /// Start the providers and the cluster (through proxies) and apply the document.
    pub async fn start(name: &str, opts: ScenarioOptions) -> anyhow::Result<Scenario> {
        crate::init_tracing();
        let started = Instant::now();
        let twilio = FakeTwilio::try_start(twilio::TEST_ACCOUNT_SID, twilio::TEST_AUTH_TOKEN)
            .await
            .context("start the fake Twilio")?;
        let smtp = SmtpServer::start().context("start the SMTP server")?;
        let cluster = Cluster::start(ClusterOptions {
            nodes: opts.nodes,
            timings: opts.timings,
            twilio: Some(TwilioTarget {
                base_url: twilio.base_url(),
                account_sid: twilio::TEST_ACCOUNT_SID.into(),
                auth_token: twilio::TEST_AUTH_TOKEN.into(),
                from: twilio::TEST_FROM.into(),
                timeout_ms: opts.provider_timeout_ms,
            }),
            smtp: Some(SmtpTarget {
                addr: smtp.addr(),
                from: smtp::TEST_FROM.into(),
                timeout_ms: opts.provider_timeout_ms,
            }),
            // The same few numbers are paged all the time: no per-recipient throttle, which
            // would delay pages on purpose and measure itself.
            dispatch: Some(DispatchKnobs {
                concurrency: 64,
                messages_per_second: opts.messages_per_second,
                recipient_burst: 100_000,
                recipient_window_ms: 1_000,
                high_urgency_max_delay_ms: 0,
                reconcile_grace_ms: 500,
            }),
            proxies: true,
            regions: opts.regions.clone(),
            snapshot_every_entries: opts.snapshot_every_entries,
            ..ClusterOptions::default()
        })
        .await
        .with_context(|| format!("{name}: start {} pagerd processes", opts.nodes))?;
        let doc = oncall(opts.level_ms);
        let leader = cluster.wait_for_leader(opts.wait).await?;
        client::config(&cluster.channel(leader.id)?)
            .apply(pb::ApplyConfigRequest {
                document: doc.to_toml(),
                format: "toml".into(),
                dry_run: false,
            })
            .await
            .context("apply the on-call document")?;
        tracing::info!(name, root = %cluster.root().display(), "--- scenario started");
        Ok(Scenario {
            name: name.into(),
            opts,
            twilio,
            smtp,
            cluster,
            history: History::default(),
            doc,
            started,
        })
    }

    /// Start the traffic against every node (triggers every 400 ms, every third incident
    /// acknowledged halfway to the second level).
    pub fn traffic(&self, seed: u64) -> anyhow::Result<Traffic> {
        let nodes = self
            .cluster
            .ids()
            .into_iter()
            .map(|id| Ok((id, self.cluster.ports(id)?.client)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Traffic::start(
            nodes,
            TrafficOptions {
                routing_key: KEY.into(),
                ack_after: Duration::from_millis(self.opts.level_ms / 2),
                seed,
                ..TrafficOptions::default()
            },
        )
    }

    /// Send `n` triggers at once to node `via` (besides the traffic), recorded as accepted:
    /// a burst of incidents, all paging alice at the same moment.
    pub async fn burst(&mut self, via: u64, n: usize) -> anyhow::Result<()> {
        let ch = self.cluster.channel(via)?;
        let started = SystemTime::now();
        let sends = (0..n).map(|i| {
            let mut events = client::events(&ch);
            let key = format!("burst-{}-{i}", crate::history::epoch_ms(started));
            async move {
                let r = events
                    .send(client::trigger(KEY, &key, "burst"))
                    .await
                    .with_context(|| format!("burst trigger {key} to node {via}"))?;
                anyhow::Ok(r.into_inner())
            }
        });
        for r in join_all(sends).await? {
            let r = r?;
            self.history.accepted.push(crate::history::Accepted {
                incident: r.incident_id,
                dedup_key: r.dedup_key,
                folded: r.folded,
                commit_index: r.commit_index,
                via,
            });
        }
        Ok(())
    }

    /// Let the traffic run for `d` (a phase without faults).
    pub async fn run_for(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Stop the traffic, heal every link, bring the providers back, wait for the last
    /// deadlines, check every invariant and print the report line. Fails, after the line and
    /// the list of violations, when an invariant broke.
    pub async fn finish(mut self, traffic: Traffic) -> anyhow::Result<ScenarioReport> {
        let seen = traffic.stop().await?;
        tracing::info!(
            accepted = seen.accepted.len(),
            refused = seen.refused,
            acks = seen.acks.len(),
            acks_refused = seen.acks_refused,
            "--- traffic stopped"
        );
        self.history.accepted.extend(seen.accepted);
        self.history.acks.extend(seen.acks);
        let net = self.cluster.net()?;
        net.links.heal();
        if let Some(g) = &net.twilio {
            g.up().await.context("bring the Twilio gates up")?;
        }
        self.smtp
            .restart()
            .await
            .context("restart the SMTP server")?;
        self.twilio.clear_faults();
        for id in self.cluster.ids() {
            if self.cluster.is_paused(id) {
                self.cluster.resume(id)?;
            }
        }
        let wait = self.opts.wait;
        let leader = self.cluster.wait_for_leader(wait).await?;
        self.cluster.wait_all_caught_up(leader.id, wait).await?;

        // Wait until every page the document requires is due, plus the bound and any outage
        // allowance: the last chance for it to arrive, and for a page that must not come (an
        // acknowledged incident's next level) to show up.
        let (expected, _) = self.expectations(leader.id).await?;
        let bound = self.opts.failover_bound;
        let until = expected
            .iter()
            .map(|p| {
                let due = from_epoch_ms(p.due_ms);
                let extra: Duration = self
                    .history
                    .outages
                    .iter()
                    .map(|o| o.allowance(p.channel, due, bound))
                    .sum();
                due + bound + extra
            })
            .max()
            .unwrap_or_else(SystemTime::now);
        tracing::info!(
            pages = expected.len(),
            wait_ms = until
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_millis() as u64,
            "--- waiting for the last deadlines"
        );
        // Done early once every required page arrived and a second has passed since the
        // last deadline (time for a page that must not come to show up).
        let last_due = expected
            .iter()
            .map(|p| from_epoch_ms(p.due_ms))
            .max()
            .unwrap_or_else(SystemTime::now);
        self.wait_for_pages(&expected, until, last_due + ABSENCE_MARGIN)
            .await;
        // A write whose client gave up may still have committed meanwhile: read again.
        let leader = self.cluster.wait_for_leader(wait).await?;
        self.cluster.wait_all_caught_up(leader.id, wait).await?;
        let (expected, optional) = self.expectations(leader.id).await?;
        self.history.expected = expected;
        self.history.optional = optional;

        let observed = pages::observed(Some(&self.twilio), Some(&self.smtp));
        let bounds = ScenarioBounds {
            base: Bounds {
                failover: self.opts.failover_bound,
                in_flight_after_ack: 1,
                catch_up: wait,
            },
            lease_slack: Duration::from_millis(750),
            quiet: wait,
        };
        tracing::info!(observed = observed.len(), "--- checking the invariants");
        let findings = invariants::check_scenario(&self.cluster, &self.history, &observed, bounds)
            .await
            .context("check the invariants")?;
        let report = ScenarioReport::new(&self.name, &self.history, &findings);
        println!("{report}");
        if !self.history.in_flight.is_empty() {
            let notes: Vec<String> = self
                .history
                .in_flight
                .iter()
                .map(|f| format!("{}:{}", f.fault, f.pending))
                .collect();
            println!("  pages in flight at the faults: {}", notes.join(" "));
        }
        if let (Some(s), Some(r)) = (&findings.senders, &findings.replicas) {
            println!(
                "  pages attributed to a sender: {}, terms led: {}, replicas compared at index {:?} on {} nodes",
                s.attributed, s.terms, r.index, r.nodes
            );
        }
        if let Some(d) = findings
            .duplicates
            .as_ref()
            .filter(|d| !d.duplicated.is_empty())
        {
            println!("  duplicated deliveries: {}", d.duplicated.join(" "));
        }
        println!("  {} took {:?}", self.name, self.started.elapsed());
        if !report.is_clean() {
            self.cluster.print_log_tails(TAIL_LINES);
            self.cluster.keep();
        }
        report.into_result()
    }
}

/// After the last deadline, how long a page that must not come is given to show up.
const ABSENCE_MARGIN: Duration = Duration::from_secs(1);

impl Scenario {
    /// Wait until every page of `expected` arrived and `not_before` has passed, or until
    /// `until`; woken by each page a provider records.
    async fn wait_for_pages(
        &self,
        expected: &[ExpectedPage],
        until: SystemTime,
        not_before: SystemTime,
    ) {
        loop {
            let now = SystemTime::now();
            let Ok(left) = until.duration_since(now) else {
                return;
            };
            let observed = pages::observed(Some(&self.twilio), Some(&self.smtp));
            let missing = expected.iter().any(|e| {
                !observed.iter().any(|p| {
                    p.incident == Some(e.incident) && p.channel == e.channel && p.to == e.to
                })
            });
            let wait = match not_before.duration_since(now) {
                Ok(d) if !missing => d,
                Err(_) if !missing => return,
                _ => left,
            };
            let (sms, mails) = (self.twilio.messages().len(), self.smtp.mails().len());
            tokio::select! {
                _ = self.twilio.wait_for_messages(sms + 1, wait) => {}
                _ = self.smtp.wait_for_mails(mails + 1, wait) => {}
            }
        }
    }

    /// The pages the document requires of the incidents node `node` holds, and the optional
    /// ones (see the module documentation).
    async fn expectations(
        &self,
        node: u64,
    ) -> anyhow::Result<(Vec<ExpectedPage>, Vec<ExpectedPage>)> {
        let bound_ms = self.opts.failover_bound.as_millis() as u64;
        let (mut expected, mut optional) = (Vec::new(), Vec::new());
        for inc in all_incidents(&self.cluster, node).await? {
            let acked = (inc.acknowledged_at_ms > 0).then_some(inc.acknowledged_at_ms);
            let all = self
                .doc
                .expected_pages(&inc.service, inc.id, inc.created_at_ms, acked);
            for page in all {
                match acked {
                    Some(a) if page.due_ms + bound_ms >= a => optional.push(page),
                    _ => expected.push(page),
                }
            }
        }
        Ok((expected, optional))
    }
}

/// Run every future to completion concurrently (each a task), results in order.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> anyhow::Result<Vec<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.context("a concurrent request's task")?);
    }
    Ok(out)
}

/// Every incident node `node` holds (all pages of `Incidents.List`).
pub async fn all_incidents(cluster: &Cluster, node: u64) -> anyhow::Result<Vec<pb::Incident>> {
    let mut c = client::incidents(&cluster.channel(node)?);
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = c
            .list(pb::ListIncidentsRequest {
                limit: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("Incidents.List on node {node}"))?
            .into_inner();
        out.extend(page.incidents);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}
