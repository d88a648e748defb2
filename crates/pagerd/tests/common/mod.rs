//! An in-process cluster on loopback: real Raft over real gRPC sockets, real
//! redb files in a temp dir, a fake Twilio and a real SMTP server.

#![allow(dead_code)]

pub mod agent;

use pager_fakes::smtp::SmtpServer;
use pager_fakes::twilio::FakeTwilio;
use pager_proto::pager::v1 as pb;
use pagerd::config::{RawConfig, RawMember, RawSmtp, RawTwilio};
use pagerd::{Listeners, Running};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// One service (`web-key-0001`) whose pages wait an hour: for tests about
/// the cluster rather than paging.
pub const QUIET_ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "email", type = "email", address = "alice@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[escalation_policies.p]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
"#;

pub const SID: &str = "AC00000000000000000000000000000001";
pub const TOKEN: &str = "test-auth-token";

pub struct Addrs {
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub http: SocketAddr,
}

pub struct Cluster {
    pub nodes: Vec<Option<Running>>,
    /// Bound sockets of nodes not started yet.
    listeners: Vec<Listeners>,
    /// Nodes 1..=voters are the initial members; the rest are spares that
    /// start empty (`start_spare`) and join with `AddNode`.
    pub voters: usize,
    spares: std::collections::BTreeMap<usize, Listeners>,
    pub addrs: Vec<Addrs>,
    pub twilio: FakeTwilio,
    pub smtp: SmtpServer,
    pub dir: tempfile::TempDir,
    pub write_timeout_ms: u64,
    /// Snapshot every this many entries (small in tests that exercise snapshots).
    pub snapshot_every: u64,
    /// Account-wide call pacing (tests that place many calls raise it).
    pub calls_per_second: f64,
    /// A second Twilio auth token accepted on webhooks (rotation).
    pub previous_token: Option<&'static str>,
    /// `auth.enabled` with this bootstrap admin token.
    pub auth: Option<&'static str>,
    /// Applied last to every node's raw config.
    pub tune: Option<fn(&mut RawConfig)>,
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_with(n, 5_000).await
    }

    pub async fn start_with(n: usize, snapshot_every: u64) -> Cluster {
        Cluster::start_full(n, snapshot_every, None, None).await
    }

    /// A cluster whose node configs `tune` adjusts (after the test defaults).
    pub async fn start_tuned(n: usize, tune: fn(&mut RawConfig)) -> Cluster {
        Cluster::start_full(n, 5_000, None, Some(tune)).await
    }

    /// A cluster requiring API tokens, with `bootstrap` as the bootstrap admin token.
    pub async fn start_with_auth(n: usize, bootstrap: &'static str) -> Cluster {
        Cluster::start_full(n, 5_000, Some(bootstrap), None).await
    }

    /// A new cluster rebuilt from a backup file: node 1 is seeded from it
    /// (`pagerd --restore-from`) and leads alone; the others start empty and
    /// join it with `AddNode`, catching up by snapshot.
    pub async fn start_restored(n: usize, backup: &[u8]) -> Cluster {
        let mut c = Cluster::bound(n, 5_000, None, None).await;
        let file = c.dir.path().join("restore.backup");
        std::fs::write(&file, backup).expect("write backup file");
        pagerd::restore(&c.config(1), &file)
            .await
            .expect("restore node 1");
        for (i, l) in std::mem::take(&mut c.listeners).into_iter().enumerate() {
            let mut cfg = c.config(i + 1);
            cfg.bootstrap = false;
            let running = pagerd::start(cfg, l).await.expect("node starts");
            c.nodes.push(Some(running));
        }
        let first = c.node(1).node.clone();
        let mut m = first.raft.metrics();
        tokio::time::timeout(
            Duration::from_secs(10),
            m.wait_for(|m| m.state == openraft::ServerState::Leader),
        )
        .await
        .expect("the restored node leads alone")
        .expect("metrics");
        for id in 2..=n {
            let node = c.node(id).node.self_node();
            first
                .change_membership(pagerd::node::ForwardRequest::AddNode {
                    id: id as u64,
                    node,
                    learner_only: false,
                })
                .await
                .expect("a new node joins the restored one");
        }
        c.leader().await;
        c
    }

    /// `voters` initial members and `spares` more nodes bound but not started.
    pub async fn start_with_spares(voters: usize, spares: usize) -> Cluster {
        let mut c = Cluster::bound(voters + spares, 5_000, None, None).await;
        c.voters = voters;
        for (i, l) in std::mem::take(&mut c.listeners).into_iter().enumerate() {
            if i < voters {
                let running = pagerd::start(c.config(i + 1), l)
                    .await
                    .expect("node starts");
                c.nodes.push(Some(running));
            } else {
                c.spares.insert(i + 1, l);
                c.nodes.push(None);
            }
        }
        c.leader().await;
        c
    }

    /// Start spare node `id` with an empty data dir (in `region`, if given);
    /// it waits to be added.
    pub async fn start_spare(&mut self, id: usize, region: Option<&str>) {
        let l = self.spares.remove(&id).expect("a spare not started yet");
        let mut cfg = self.config(id);
        cfg.bootstrap = false;
        if let Some(r) = region {
            cfg.region = r.into();
        }
        let running = pagerd::start(cfg, l).await.expect("spare starts");
        self.nodes[id - 1] = Some(running);
    }

    async fn start_full(
        n: usize,
        snapshot_every: u64,
        auth: Option<&'static str>,
        tune: Option<fn(&mut RawConfig)>,
    ) -> Cluster {
        let mut c = Cluster::bound(n, snapshot_every, auth, tune).await;
        for (i, l) in std::mem::take(&mut c.listeners).into_iter().enumerate() {
            let running = pagerd::start(c.config(i + 1), l)
                .await
                .expect("node starts");
            c.nodes.push(Some(running));
        }
        c.leader().await;
        c
    }

    /// Listeners bound and providers started; no node running yet.
    async fn bound(
        n: usize,
        snapshot_every: u64,
        auth: Option<&'static str>,
        tune: Option<fn(&mut RawConfig)>,
    ) -> Cluster {
        let twilio = FakeTwilio::start(SID, TOKEN).await;
        let smtp = SmtpServer::start().expect("start smtp server");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let l = Listeners {
                client: bind().await,
                peer: bind().await,
                http: bind().await,
            };
            addrs.push(Addrs {
                client: l.client.local_addr().unwrap(),
                peer: l.peer.local_addr().unwrap(),
                http: l.http.local_addr().unwrap(),
            });
            listeners.push(l);
        }
        Cluster {
            nodes: Vec::new(),
            voters: n,
            spares: Default::default(),
            listeners,
            addrs,
            twilio,
            smtp,
            dir,
            write_timeout_ms: 2_000,
            snapshot_every,
            calls_per_second: 20.0,
            previous_token: None,
            auth,
            tune,
        }
    }

    pub fn config(&self, id: usize) -> pagerd::config::NodeConfig {
        let regions = ["us-east", "eu-west", "ap-south", "us-west", "eu-central"];
        let a = &self.addrs[id - 1];
        let mut raw = RawConfig {
            node_id: id as u64,
            region: regions[(id - 1) % regions.len()].into(),
            data_dir: self.data_dir(id),
            ..RawConfig::default()
        };
        raw.listen.client = a.client.to_string();
        raw.listen.peer = a.peer.to_string();
        raw.listen.http = a.http.to_string();
        raw.cluster.bootstrap = id == 1;
        raw.cluster.members = self
            .addrs
            .iter()
            .take(self.voters)
            .enumerate()
            .map(|(i, a)| RawMember {
                id: i as u64 + 1,
                peer: a.peer.to_string(),
                client: a.client.to_string(),
                region: regions[i % regions.len()].into(),
                http: Some(format!("http://{}", a.http)),
            })
            .collect();
        raw.raft.heartbeat_interval_ms = 50;
        raw.raft.election_timeout_min_ms = 300;
        raw.raft.election_timeout_max_ms = 600;
        raw.raft.rpc_timeout_ms = 300;
        raw.raft.snapshot_every_entries = self.snapshot_every;
        raw.raft.max_in_snapshot_log_to_keep = 0;
        raw.twilio = Some(RawTwilio {
            base_url: self.twilio.base_url(),
            account_sid: SID.into(),
            auth_token: Some(TOKEN.into()),
            auth_token_file: None,
            previous_auth_token: self.previous_token.map(Into::into),
            previous_auth_token_file: None,
            from: Some("+15550009999".into()),
            messaging_service_sid: None,
            timeout_ms: 2_000,
        });
        raw.smtp = Some(RawSmtp {
            host: self.smtp.addr().ip().to_string(),
            port: self.smtp.addr().port(),
            tls: "none".into(),
            username: None,
            password: None,
            password_file: None,
            from: "pagerd@example.com".into(),
            timeout_ms: 2_000,
        });
        raw.console.enabled = false;
        raw.dispatch.write_timeout_ms = self.write_timeout_ms;
        raw.dispatch.calls_per_second = self.calls_per_second;
        if let Some(token) = self.auth {
            raw.auth.enabled = true;
            raw.auth.bootstrap_admin_token = Some(token.into());
        }
        raw.dispatch.reconcile_grace_ms = 200;
        if let Some(tune) = self.tune {
            tune(&mut raw);
        }
        raw.validate().expect("test config is valid")
    }

    pub fn data_dir(&self, id: usize) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    pub fn node(&self, id: usize) -> &Running {
        self.nodes[id - 1].as_ref().expect("node is running")
    }

    /// Wait until some running node is leader and every running node knows it.
    pub async fn leader(&self) -> usize {
        let running: Vec<u64> = (1..=self.nodes.len())
            .filter(|&i| self.nodes[i - 1].is_some())
            .map(|i| i as u64)
            .collect();
        let first = self.nodes.iter().flatten().next().expect("a running node");
        let mut m = first.node.raft.metrics();
        let leader = tokio::time::timeout(
            Duration::from_secs(10),
            m.wait_for(|m| m.current_leader.is_some_and(|l| running.contains(&l))),
        )
        .await
        .expect("a live leader within 10 s")
        .expect("metrics")
        .current_leader
        .expect("leader") as usize;
        let mut m = self.node(leader).node.raft.metrics();
        m.wait_for(|m| m.state == openraft::ServerState::Leader)
            .await
            .expect("leader metrics");
        for r in self.nodes.iter().flatten() {
            let mut m = r.node.raft.metrics();
            tokio::time::timeout(
                Duration::from_secs(10),
                m.wait_for(|m| m.current_leader == Some(leader as u64)),
            )
            .await
            .expect("every node learns the leader")
            .expect("metrics");
        }
        leader
    }

    pub fn follower(&self, leader: usize) -> usize {
        (1..=self.nodes.len())
            .find(|&i| i != leader && self.nodes[i - 1].is_some())
            .expect("a running follower")
    }

    /// SIGKILL stand-in for in-process nodes: stop serving and drop everything.
    pub async fn kill(&mut self, id: usize) {
        if let Some(r) = self.nodes[id - 1].take() {
            r.shutdown().await;
        }
    }

    /// Restart a node on its old ports and data dir.
    pub async fn restart(&mut self, id: usize) {
        let a = &self.addrs[id - 1];
        let l = Listeners {
            client: TcpListener::bind(a.client).await.expect("rebind client"),
            peer: TcpListener::bind(a.peer).await.expect("rebind peer"),
            http: TcpListener::bind(a.http).await.expect("rebind http"),
        };
        let running = pagerd::start(self.config(id), l)
            .await
            .expect("node restarts");
        self.nodes[id - 1] = Some(running);
    }

    pub async fn channel(&self, id: usize) -> Channel {
        Channel::from_shared(format!("http://{}", self.addrs[id - 1].client))
            .unwrap()
            .connect()
            .await
            .expect("connect client port")
    }

    pub async fn events(&self, id: usize) -> pb::events_client::EventsClient<Channel> {
        pb::events_client::EventsClient::new(self.channel(id).await)
    }

    pub async fn incidents(&self, id: usize) -> pb::incidents_client::IncidentsClient<Channel> {
        pb::incidents_client::IncidentsClient::new(self.channel(id).await)
    }

    pub async fn apply(&self, id: usize, doc: &str) -> pb::ApplyConfigResponse {
        let mut c = pb::config_client::ConfigClient::new(self.channel(id).await);
        c.apply(pb::ApplyConfigRequest {
            document: doc.into(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .expect("config applies")
        .into_inner()
    }

    /// Wait until node `id` has applied at least `index`.
    pub async fn applied(&self, id: usize, index: u64) {
        let mut rx = self.node(id).node.applied.clone();
        tokio::time::timeout(
            Duration::from_secs(20),
            rx.wait_for(|l| l.map(|l| l.index).unwrap_or(0) >= index),
        )
        .await
        .expect("node catches up in time")
        .expect("applied channel open");
    }

    pub async fn shutdown(mut self) {
        for i in 1..=self.nodes.len() {
            self.kill(i).await;
        }
    }
}

pub fn trigger(key: &str, dedup: &str) -> pb::SendEventRequest {
    pb::SendEventRequest {
        routing_key: key.into(),
        action: pb::EventAction::Trigger as i32,
        dedup_key: dedup.into(),
        summary: "disk full on db1".into(),
        source: "db1".into(),
        severity: "critical".into(),
        ..Default::default()
    }
}
