//! A cluster of real `pagerd` processes on loopback.
//!
//! Each node gets a directory under one temp dir: `node<id>/` is its `data_dir` (redb log,
//! snapshots) and also holds the generated `pagerd.toml` and `pagerd.log`, where the process's
//! stdout and stderr go (appended across restarts, each run opened by a `=== chaos-tests` line).
//! Node 1 bootstraps the cluster with every member (`cluster.bootstrap = true`), the others
//! wait to be contacted, as in `config/cluster/node*.toml`.
//!
//! Ports: the harness binds `127.0.0.1:0` three times per node to learn free ports, closes those
//! sockets and writes the ports into the configs. Between the close and `pagerd`'s own bind
//! another process (or an outgoing connection of this one, which draws from the same
//! ephemeral range) may take a port. That race is tiny but real, so a node that exits with
//! "Address already in use" while starting is handled: at cluster start every node gets new
//! ports and the cluster starts again from empty data dirs; at a restart (which must reuse the
//! ports the other members know) the harness retries a few times, then fails saying so.
//!
//! Processes are stopped with `Child::kill`, which is SIGKILL on Unix: no shutdown code runs.
//! Dropping the [`Cluster`] kills every process; when the thread is panicking (a failed test)
//! it also prints the tail of every node's log and keeps the temp dir, naming it (set
//! `CHAOS_KEEP=1` to keep it after a passing run too). If the test process itself is killed
//! (SIGKILL, or a runner's timeout), the `pagerd` children outlive it: tying their lives to
//! ours needs `prctl(PR_SET_PDEATHSIG)`, i.e. the `libc` crate, which this crate does not use.
//!
//! Waiting is done by polling `Cluster.Status` on every live node every [`POLL`] against a hard
//! deadline: there is no other way to observe another process's Raft state, and a poll on
//! loopback costs well under a millisecond. A leader counts only once every live node names it
//! and it says it leads: a restarted ex-leader reports itself leader of its old term for a
//! moment (openraft restores its committed vote) until it hears of the newer term. With
//! [`ClusterOptions::auth`] set, the polls present its bootstrap admin token, so they work
//! whether the nodes run with auth on or off ([`Cluster::set_auth`] changes it for the next
//! restarts).
//!
//! With [`ClusterOptions::proxies`], node `i` sends its peer traffic from `127.0.0.(10+i)`
//! (`cluster.peer_source_ip`) to the members' advertised peer addresses, which are the
//! harness's per-link proxies ([`crate::proxy::Links`]) in front of the real peer ports; and it
//! reaches Twilio and SMTP through its own gates ([`crate::proxy::Gates`]), so the providers
//! record which node sent each page. Faults beyond SIGKILL: [`Cluster::pause`] and
//! [`Cluster::resume`] (SIGSTOP / SIGCONT: a paused node is not [`Cluster::live`]),
//! [`Cluster::terminate`] (SIGTERM, a planned stop), [`Cluster::wipe`] (a stopped node loses
//! its data and, restarted, waits to be added back rather than bootstrapping). Signals other
//! than SIGKILL are sent with `kill(1)`, which keeps this crate free of `libc`.

use crate::binary;
use crate::client;
use crate::proxy::{self, Gates, Links};
use anyhow::{anyhow, bail, Context as _};
use pager_proto::pager::v1 as pb;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;

/// Interval between two status polls.
pub const POLL: Duration = Duration::from_millis(10);
/// Bound on one `Cluster.Status` call (a live node on loopback answers in about a millisecond).
pub const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// Fresh ports tried at cluster start when a port was taken ("address in use").
const START_ATTEMPTS: u32 = 4;
/// Tries to restart a node on its old ports when one is taken.
const RESTART_ATTEMPTS: u32 = 5;
/// Lines of each log printed when something fails.
pub const TAIL_LINES: usize = 40;
/// Set to keep the temp dir (configs, logs, data) after a passing run too.
pub const KEEP_ENV: &str = "CHAOS_KEEP";

/// Overrides the default `log.filter` of the nodes (e.g. `debug,openraft=info`).
pub const LOG_ENV: &str = "CHAOS_PAGERD_LOG";

const REGIONS: [&str; 5] = ["us-east", "eu-west", "ap-south", "us-west", "eu-central"];

/// `[raft]` timings of every node. The default is `pagerd`'s own default (a LAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub rpc_timeout_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 400,
            election_timeout_max_ms: 800,
            rpc_timeout_ms: 1000,
        }
    }
}

/// Where the nodes' `[twilio]` section points (a `FakeTwilio` of the test, usually).
#[derive(Debug, Clone)]
pub struct TwilioTarget {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub from: String,
    pub timeout_ms: u64,
}

/// Where the nodes' `[smtp]` section points (plain SMTP, no credentials).
#[derive(Debug, Clone)]
pub struct SmtpTarget {
    pub addr: SocketAddr,
    pub from: String,
    pub timeout_ms: u64,
}

/// The `[dispatch]` knobs that decide when the leader sends a page, written into every node's
/// config when set (else pagerd's defaults apply: see `config/pagerd.toml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DispatchKnobs {
    /// `dispatch.concurrency`: sends in flight from the leader.
    pub concurrency: usize,
    /// `dispatch.messages_per_second`: account-wide SMS rate, 0 = not paced.
    pub messages_per_second: f64,
    /// `dispatch.recipient_burst` pages per `recipient_window_ms` to one number or address.
    pub recipient_burst: u32,
    pub recipient_window_ms: u64,
    /// `dispatch.high_urgency_max_delay_ms`: the per-recipient throttle's bound.
    pub high_urgency_max_delay_ms: u64,
    /// `dispatch.reconcile_grace_ms`: wait before looking up an SMS left in doubt.
    pub reconcile_grace_ms: u64,
}

impl DispatchKnobs {
    /// `key = value` lines, in `config/pagerd.toml`'s order.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("concurrency = {}", self.concurrency),
            format!("messages_per_second = {:?}", self.messages_per_second),
            format!("recipient_burst = {}", self.recipient_burst),
            format!("recipient_window_ms = {}", self.recipient_window_ms),
            format!(
                "high_urgency_max_delay_ms = {}",
                self.high_urgency_max_delay_ms
            ),
            format!("reconcile_grace_ms = {}", self.reconcile_grace_ms),
        ]
    }
}

/// The nodes' `[auth]` section: API tokens on the gRPC API.
#[derive(Clone)]
pub struct AuthOptions {
    /// `auth.enabled`: every gRPC call but `Events` needs `authorization: Bearer <token>`.
    pub enabled: bool,
    /// `auth.bootstrap_admin_token` (at least 16 characters). The harness sends it on its own
    /// `Cluster.Status` polls, so they work whether auth is on or off; calls made on a
    /// [`Cluster::channel`] carry no token unless the caller adds one
    /// ([`client::authorized`]).
    pub bootstrap_admin_token: String,
}

impl std::fmt::Debug for AuthOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOptions")
            .field("enabled", &self.enabled)
            .field("bootstrap_admin_token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub nodes: usize,
    pub timings: Timings,
    /// `dispatch.write_timeout_ms`.
    pub write_timeout_ms: u64,
    /// The rest of `[dispatch]`; `None`: pagerd's defaults.
    pub dispatch: Option<DispatchKnobs>,
    pub twilio: Option<TwilioTarget>,
    pub smtp: Option<SmtpTarget>,
    /// `[auth]` of every node; `None`: no such section (auth off, pagerd's default).
    pub auth: Option<AuthOptions>,
    /// `log.filter` of every node.
    pub log_filter: String,
    /// Bound on a node starting to serve, and on the first leader election.
    pub start_timeout: Duration,
    /// Peer traffic through per-link proxies, provider traffic through per-node gates (see
    /// the module documentation). Off: nodes dial each other and the providers directly.
    pub proxies: bool,
    /// Region of node `i` at index `i - 1`; empty: every node in a region of its own.
    pub regions: Vec<String>,
    /// `raft.snapshot_every_entries` (and `max_in_snapshot_log_to_keep = 0`, so a node added
    /// later must catch up by snapshot); `None`: pagerd's defaults.
    pub snapshot_every_entries: Option<u64>,
    /// `[slack]` of every node: the fake Slack's Web API root, the bot token and the signing
    /// secret; `None`: no Slack.
    pub slack: Option<SlackTarget>,
    /// `[jira]` of every node (a `FakeJira` of the test); `None`: no Jira.
    pub jira: Option<JiraTarget>,
    /// `[webhooks.secrets]` of every node: (subscription, secret); empty: none.
    pub webhook_secrets: Vec<(String, String)>,
    /// `[webhooks] timeout_ms`; `None`: pagerd's default.
    pub webhook_timeout_ms: Option<u64>,
}

/// Where the nodes' `[jira]` section points.
#[derive(Debug, Clone)]
pub struct JiraTarget {
    pub base_url: String,
    pub email: String,
    pub api_token: String,
    pub timeout_ms: u64,
}

/// Where the nodes' `[slack]` section points (a `FakeSlack` of the test).
#[derive(Debug, Clone)]
pub struct SlackTarget {
    pub base_url: String,
    pub bot_token: String,
    pub signing_secret: String,
    pub timeout_ms: u64,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            timings: Timings::default(),
            write_timeout_ms: 5_000,
            dispatch: None,
            twilio: None,
            smtp: None,
            auth: None,
            log_filter: std::env::var(LOG_ENV).unwrap_or_else(|_| "info,openraft=warn".into()),
            start_timeout: Duration::from_secs(30),
            proxies: false,
            regions: Vec::new(),
            snapshot_every_entries: None,
            slack: None,
            jira: None,
            webhook_secrets: Vec::new(),
            webhook_timeout_ms: None,
        }
    }
}

/// A node's three listening addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub http: SocketAddr,
}

/// The leader as every live node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub id: u64,
    pub term: u64,
}

/// A node SIGKILLed by [`Cluster::kill`].
#[derive(Debug, Clone, Copy)]
pub struct Killed {
    pub id: u64,
    /// Just before the signal was sent.
    pub at: Instant,
    pub wall: SystemTime,
}

struct NodeProc {
    id: u64,
    dir: PathBuf,
    ports: Ports,
    /// The process while it should be running; `None` once killed (or never started).
    child: Mutex<Option<Child>>,
    /// Offset in `pagerd.log` where the current run's output starts.
    run_from: u64,
    /// Used for status polls; replaced at each start.
    status: Channel,
    starts: u32,
    /// SIGSTOPped by the harness and not yet resumed.
    paused: bool,
    /// Wiped: restarted, it must not bootstrap but wait to be added back.
    rejoin: bool,
}

impl NodeProc {
    fn config_path(&self) -> PathBuf {
        self.dir.join("pagerd.toml")
    }
    fn log_path(&self) -> PathBuf {
        self.dir.join("pagerd.log")
    }
    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a node did not come up.
enum StartError {
    /// It exited because a port was taken.
    AddrInUse(String),
    Other(anyhow::Error),
}

/// The proxies of [`ClusterOptions::proxies`].
pub struct Net {
    pub links: Links,
    /// Each node's way to the fake Twilio, when there is one.
    pub twilio: Option<Gates>,
    /// Each node's way to the SMTP server, when there is one.
    pub smtp: Option<Gates>,
}

/// See the module documentation.
pub struct Cluster {
    opts: ClusterOptions,
    bin: PathBuf,
    root: tempfile::TempDir,
    nodes: Vec<NodeProc>,
    net: Option<Net>,
}

impl Cluster {
    /// Start `opts.nodes` processes and wait until every node knows the same leader.
    pub async fn start(opts: ClusterOptions) -> anyhow::Result<Cluster> {
        if opts.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        let bin = binary::pagerd()?;
        let root = tempfile::Builder::new()
            .prefix("pagerd-chaos-")
            .tempdir()
            .context("create the cluster's temp dir")?;
        let net = if opts.proxies {
            Some(start_net(&opts).await?)
        } else {
            None
        };
        let mut cluster = Cluster {
            bin,
            nodes: Vec::new(),
            root,
            opts,
            net,
        };
        for attempt in 1..=START_ATTEMPTS {
            cluster.fresh_nodes()?;
            match cluster.start_all().await {
                Ok(()) => {
                    return match cluster.wait_for_leader(cluster.opts.start_timeout).await {
                        Ok(_) => Ok(cluster),
                        Err(e) => Err(cluster.failed_start(e)),
                    };
                }
                Err(StartError::AddrInUse(msg)) if attempt < START_ATTEMPTS => {
                    eprintln!("chaos-tests: {msg}; starting again on new ports");
                    cluster.kill_all();
                }
                Err(StartError::AddrInUse(msg)) => {
                    let e = anyhow!("{msg}, {START_ATTEMPTS} times with fresh ports");
                    return Err(cluster.failed_start(e));
                }
                Err(StartError::Other(e)) => return Err(cluster.failed_start(e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The cluster will be dropped without a panic: print the logs and keep them.
    fn failed_start(&mut self, e: anyhow::Error) -> anyhow::Error {
        self.kill_all();
        self.print_log_tails(TAIL_LINES);
        self.root.disable_cleanup(true);
        e.context(format!(
            "start a cluster of {} (configs, logs and data kept in {})",
            self.opts.nodes,
            self.root.path().display()
        ))
    }

    /// New ports and empty node directories for every node.
    fn fresh_nodes(&mut self) -> anyhow::Result<()> {
        let ports = free_ports(self.opts.nodes)?;
        self.nodes.clear();
        for (i, ports) in ports.into_iter().enumerate() {
            let id = i as u64 + 1;
            let dir = self.root.path().join(format!("node{id}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("clear {}", dir.display()))?;
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            self.nodes.push(NodeProc {
                id,
                dir,
                ports,
                child: Mutex::new(None),
                run_from: 0,
                status: client::channel(ports.client, STATUS_TIMEOUT)?,
                starts: 0,
                paused: false,
                rejoin: false,
            });
            if let Some(net) = &self.net {
                net.links.set_backend(id, ports.peer);
            }
        }
        for node in &self.nodes {
            let text = self.config_toml(node);
            std::fs::write(node.config_path(), text)
                .with_context(|| format!("write {}", node.config_path().display()))?;
        }
        Ok(())
    }

    async fn start_all(&mut self) -> Result<(), StartError> {
        for i in 0..self.nodes.len() {
            self.spawn(i).map_err(StartError::Other)?;
        }
        let deadline = Instant::now() + self.opts.start_timeout;
        for i in 0..self.nodes.len() {
            self.wait_serving(i, deadline).await?;
        }
        Ok(())
    }

    /// The node's TOML config. Strings are written as JSON strings, which are valid TOML basic
    /// strings.
    fn config_toml(&self, node: &NodeProc) -> String {
        let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let t = &self.opts.timings;
        let mut out = String::new();
        let _ = writeln!(out, "# Generated by chaos-tests for node {}.", node.id);
        let _ = writeln!(out, "node_id = {}", node.id);
        let _ = writeln!(out, "region = {}", q(&self.region_of(node.id)));
        let _ = writeln!(out, "data_dir = {}", q(&node.dir.to_string_lossy()));
        let _ = writeln!(out, "\n[listen]");
        let _ = writeln!(out, "client = {}", q(&node.ports.client.to_string()));
        let _ = writeln!(out, "peer = {}", q(&node.ports.peer.to_string()));
        let _ = writeln!(out, "http = {}", q(&node.ports.http.to_string()));
        if self.net.is_some() {
            let _ = writeln!(out, "\n[advertise]");
            let _ = writeln!(out, "peer = {}", q(&self.peer_addr(node.id)));
        }
        let _ = writeln!(out, "\n[cluster]");
        let _ = writeln!(out, "bootstrap = {}", node.id == 1 && !node.rejoin);
        if self.net.is_some() {
            let ip = proxy::node_ip(node.id).to_string();
            let _ = writeln!(out, "peer_source_ip = {}", q(&ip));
        }
        let _ = writeln!(out, "members = [");
        for m in &self.nodes {
            let _ = writeln!(
                out,
                "  {{ id = {}, peer = {}, client = {}, region = {} }},",
                m.id,
                q(&self.peer_addr(m.id)),
                q(&m.ports.client.to_string()),
                q(&self.region_of(m.id))
            );
        }
        let _ = writeln!(out, "]");
        let _ = writeln!(out, "\n[raft]");
        let _ = writeln!(out, "heartbeat_interval_ms = {}", t.heartbeat_interval_ms);
        let _ = writeln!(
            out,
            "election_timeout_min_ms = {}",
            t.election_timeout_min_ms
        );
        let _ = writeln!(
            out,
            "election_timeout_max_ms = {}",
            t.election_timeout_max_ms
        );
        let _ = writeln!(out, "rpc_timeout_ms = {}", t.rpc_timeout_ms);
        if let Some(every) = self.opts.snapshot_every_entries {
            let _ = writeln!(out, "snapshot_every_entries = {every}");
            let _ = writeln!(out, "max_in_snapshot_log_to_keep = 0");
        }
        if let Some(tw) = &self.opts.twilio {
            let _ = writeln!(out, "\n[twilio]");
            let base_url = match self.gate(|n| n.twilio.as_ref(), node.id) {
                Some(gate) => format!("http://{gate}"),
                None => tw.base_url.clone(),
            };
            let _ = writeln!(out, "base_url = {}", q(&base_url));
            let _ = writeln!(out, "account_sid = {}", q(&tw.account_sid));
            let _ = writeln!(out, "auth_token = {}", q(&tw.auth_token));
            let _ = writeln!(out, "from = {}", q(&tw.from));
            let _ = writeln!(out, "timeout_ms = {}", tw.timeout_ms);
        }
        if let Some(s) = &self.opts.smtp {
            let _ = writeln!(out, "\n[smtp]");
            let addr = self.gate(|n| n.smtp.as_ref(), node.id).unwrap_or(s.addr);
            let _ = writeln!(out, "host = {}", q(&addr.ip().to_string()));
            let _ = writeln!(out, "port = {}", addr.port());
            let _ = writeln!(out, "tls = \"none\"");
            let _ = writeln!(out, "from = {}", q(&s.from));
            let _ = writeln!(out, "timeout_ms = {}", s.timeout_ms);
        }
        if let Some(sl) = &self.opts.slack {
            let _ = writeln!(out, "\n[slack]");
            let _ = writeln!(out, "base_url = {}", q(&sl.base_url));
            let _ = writeln!(out, "bot_token = {}", q(&sl.bot_token));
            let _ = writeln!(out, "signing_secret = {}", q(&sl.signing_secret));
            let _ = writeln!(out, "timeout_ms = {}", sl.timeout_ms);
        }
        if let Some(j) = &self.opts.jira {
            let _ = writeln!(out, "\n[jira]");
            let _ = writeln!(out, "base_url = {}", q(&j.base_url));
            let _ = writeln!(out, "email = {}", q(&j.email));
            let _ = writeln!(out, "api_token = {}", q(&j.api_token));
            let _ = writeln!(out, "timeout_ms = {}", j.timeout_ms);
        }
        if !self.opts.webhook_secrets.is_empty() || self.opts.webhook_timeout_ms.is_some() {
            let _ = writeln!(out, "\n[webhooks]");
            if let Some(ms) = self.opts.webhook_timeout_ms {
                let _ = writeln!(out, "timeout_ms = {ms}");
            }
            let _ = writeln!(out, "[webhooks.secrets]");
            for (name, secret) in &self.opts.webhook_secrets {
                let _ = writeln!(out, "{} = {}", q(name), q(secret));
            }
        }
        // pagerd needs a channel; with no provider, pages go to the console (the node's log).
        let console = self.opts.twilio.is_none() && self.opts.smtp.is_none();
        let _ = writeln!(out, "\n[console]\nenabled = {console}");
        let _ = writeln!(out, "\n[dispatch]");
        let _ = writeln!(out, "write_timeout_ms = {}", self.opts.write_timeout_ms);
        // Load generators send from a few keys at thousands a second: the
        // per-key limiter would measure itself, not the cluster.
        let _ = writeln!(out, "events_per_second_per_key = 0");
        for line in self.opts.dispatch.iter().flat_map(DispatchKnobs::lines) {
            let _ = writeln!(out, "{line}");
        }
        if let Some(a) = &self.opts.auth {
            let _ = writeln!(out, "\n[auth]");
            let _ = writeln!(out, "enabled = {}", a.enabled);
            let _ = writeln!(
                out,
                "bootstrap_admin_token = {}",
                q(&a.bootstrap_admin_token)
            );
        }
        let _ = writeln!(out, "\n[log]\nformat = \"text\"");
        let _ = writeln!(out, "filter = {}", q(&self.opts.log_filter));
        out
    }

    /// Start node `i`'s process, output appended to its log.
    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let bin = self.bin.clone();
        let node = &mut self.nodes[i];
        if node.child().is_some() {
            bail!("node {} is already running", node.id);
        }
        let log_path = node.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        node.starts += 1;
        writeln!(
            log,
            "=== chaos-tests: start #{} of node {} ({})",
            node.starts,
            node.id,
            bin.display()
        )
        .with_context(|| format!("write {}", log_path.display()))?;
        node.run_from = log
            .metadata()
            .with_context(|| format!("stat {}", log_path.display()))?
            .len();
        let stderr = log
            .try_clone()
            .with_context(|| format!("duplicate {}", log_path.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(node.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .env("NO_COLOR", "1");
        // PAGERD_* variables of the test's environment would override the generated config.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PAGERD_") {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {} for node {}", bin.display(), node.id))?;
        *node.child() = Some(child);
        node.status = client::channel(node.ports.client, STATUS_TIMEOUT)?;
        Ok(())
    }

    /// Wait until node `i` answers `Cluster.Status`, or report why it exited.
    async fn wait_serving(&self, i: usize, deadline: Instant) -> Result<(), StartError> {
        let node = &self.nodes[i];
        loop {
            let exited = node
                .child()
                .as_mut()
                .map(|c| c.try_wait())
                .transpose()
                .map_err(|e| StartError::Other(anyhow!("wait for node {}: {e}", node.id)))?
                .flatten();
            if let Some(status) = exited {
                *node.child() = None;
                let out = self.run_output(node);
                let msg = format!("node {} exited while starting ({status})", node.id);
                let taken = out
                    .lines()
                    .find(|l| l.contains("Address already in use") || l.contains("os error 98"));
                if let Some(line) = taken {
                    return Err(StartError::AddrInUse(format!(
                        "{msg}, a port was taken: {}",
                        line.trim()
                    )));
                }
                return Err(StartError::Other(anyhow!(
                    "{msg}; its output:\n{}",
                    tail(&out, TAIL_LINES)
                )));
            }
            if self.status(node.id).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StartError::Other(anyhow!(
                    "node {} did not answer Cluster.Status within {:?}; log tail:\n{}",
                    node.id,
                    self.opts.start_timeout,
                    self.log_tail(node.id, TAIL_LINES)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn node(&self, id: u64) -> anyhow::Result<&NodeProc> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| anyhow!("no node {id} in a cluster of {}", self.nodes.len()))
    }

    fn index(&self, id: u64) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .ok_or_else(|| anyhow!("no node {id} in a cluster of {}", self.nodes.len()))
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Nodes that should be running (started and not killed by the harness) and are not
    /// paused.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child().is_some() && !n.paused)
            .map(|n| n.id)
            .collect()
    }

    pub fn is_live(&self, id: u64) -> bool {
        self.node(id)
            .is_ok_and(|n| n.child().is_some() && !n.paused)
    }

    /// The OS process id of node `id` while it runs (for reading its CPU time, say).
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).ok()?.child().as_ref().map(Child::id)
    }

    pub fn ports(&self, id: u64) -> anyhow::Result<Ports> {
        Ok(self.node(id)?.ports)
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// Replace every node's `[auth]` section and rewrite its config file. A running node keeps
    /// what it started with: the change takes effect as each node is (re)started.
    pub fn set_auth(&mut self, auth: Option<AuthOptions>) -> anyhow::Result<()> {
        self.opts.auth = auth;
        for node in &self.nodes {
            let text = self.config_toml(node);
            std::fs::write(node.config_path(), text)
                .with_context(|| format!("write {}", node.config_path().display()))?;
        }
        Ok(())
    }

    /// Keep the temp dir (configs, logs, data) when the cluster is dropped, as after a failed
    /// test: for a failure found without a panic (an invariant checked at the end).
    pub fn keep(&mut self) {
        self.root.disable_cleanup(true);
        eprintln!(
            "chaos-tests: keeping configs, logs and data in {}",
            self.root.path().display()
        );
    }

    /// The temp dir holding every node's directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A new channel to node `id`'s client port, each call bounded by the write timeout plus
    /// a margin (a write may legitimately take that long before failing `Unavailable`).
    pub fn channel(&self, id: u64) -> anyhow::Result<Channel> {
        let timeout = Duration::from_millis(self.opts.write_timeout_ms) + Duration::from_secs(5);
        client::channel(self.node(id)?.ports.client, timeout)
    }

    /// `Cluster.Status` of node `id`, bounded by [`STATUS_TIMEOUT`].
    pub async fn status(&self, id: u64) -> anyhow::Result<pb::ClusterStatus> {
        let node = self.node(id)?;
        let mut c = client::cluster(&node.status);
        let bearer = match &self.opts.auth {
            Some(a) => Some(client::bearer(&a.bootstrap_admin_token)?),
            None => None,
        };
        let req = client::authorized(pb::ClusterStatusRequest {}, bearer.as_ref());
        match tokio::time::timeout(STATUS_TIMEOUT, c.status(req)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(anyhow!("node {id}: Cluster.Status: {s}")),
            Err(_) => Err(anyhow!(
                "node {id}: Cluster.Status: no answer in {STATUS_TIMEOUT:?}"
            )),
        }
    }

    /// Fail if a node that should be running has exited, with the end of its log.
    pub fn check_processes(&self) -> anyhow::Result<()> {
        for node in &self.nodes {
            let mut child = node.child();
            let exited = match child.as_mut() {
                Some(c) => c
                    .try_wait()
                    .with_context(|| format!("wait for node {}", node.id))?,
                None => None,
            };
            if let Some(status) = exited {
                *child = None;
                drop(child);
                bail!(
                    "node {} exited on its own ({status}); its output:\n{}",
                    node.id,
                    tail(&self.run_output(node), TAIL_LINES)
                );
            }
        }
        Ok(())
    }

    /// Wait until some live node leads and every live node names it as leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<Leader> {
        self.wait_for_leader_among(&self.ids(), timeout).await
    }

    /// [`Cluster::wait_for_leader`] counting only the live nodes among `nodes` (e.g. the
    /// majority side of a partition).
    pub async fn wait_for_leader_among(
        &self,
        nodes: &[u64],
        timeout: Duration,
    ) -> anyhow::Result<Leader> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_processes()?;
            let live: Vec<u64> = self
                .live()
                .into_iter()
                .filter(|id| nodes.contains(id))
                .collect();
            let mut statuses = Vec::with_capacity(live.len());
            for &id in &live {
                statuses.push((id, self.status(id).await));
            }
            if let Some(leader) = agreed_leader(&live, &statuses) {
                return Ok(leader);
            }
            if Instant::now() > deadline {
                bail!(
                    "no leader known by every live node {live:?} within {timeout:?}; last statuses: {}",
                    describe(&statuses)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until some live node other than `old` reports itself leader of a later term (the
    /// first sign of a finished election; other nodes may not know yet). Returns it and the
    /// instant it was seen.
    pub async fn wait_for_new_leader(
        &self,
        old: Leader,
        timeout: Duration,
    ) -> anyhow::Result<(Leader, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_processes()?;
            let mut statuses = Vec::new();
            for id in self.live().into_iter().filter(|&id| id != old.id) {
                let s = self.status(id).await;
                if let Ok(st) = &s {
                    if st.role == "leader" && st.term > old.term {
                        return Ok((Leader { id, term: st.term }, Instant::now()));
                    }
                }
                statuses.push((id, s));
            }
            if Instant::now() > deadline {
                bail!(
                    "no node but {} became leader after term {} within {timeout:?}; last statuses: {}",
                    old.id,
                    old.term,
                    describe(&statuses)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A live node other than `leader`.
    pub fn follower_of(&self, leader: u64) -> anyhow::Result<u64> {
        self.live()
            .into_iter()
            .find(|&id| id != leader)
            .ok_or_else(|| anyhow!("no live node besides {leader}"))
    }

    /// Wait until node `id` has applied log index `index`; returns its applied index.
    pub async fn wait_applied(
        &self,
        id: u64,
        index: u64,
        timeout: Duration,
    ) -> anyhow::Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_processes()?;
            let last = match self.status(id).await {
                Ok(s) if s.applied_index >= index => return Ok(s.applied_index),
                Ok(s) => Ok(s.applied_index),
                Err(e) => Err(e),
            };
            if Instant::now() > deadline {
                bail!(
                    "node {id} did not apply index {index} within {timeout:?}; last seen: {last:?}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until every live node has applied what `leader` had applied when this was called.
    pub async fn wait_all_caught_up(&self, leader: u64, timeout: Duration) -> anyhow::Result<u64> {
        let target = self.status(leader).await?.applied_index;
        for id in self.live() {
            self.wait_applied(id, target, timeout).await?;
        }
        Ok(target)
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<Killed> {
        let i = self.index(id)?;
        self.check_processes()?;
        let mut child = self.nodes[i]
            .child()
            .take()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        let wall = SystemTime::now();
        let at = Instant::now();
        child.kill().with_context(|| format!("SIGKILL node {id}"))?;
        child
            .wait()
            .with_context(|| format!("reap node {id} after SIGKILL"))?;
        self.nodes[i].paused = false;
        Ok(Killed { id, at, wall })
    }

    /// SIGSTOP node `id`: it stays a process, holds its sockets and answers nothing until
    /// [`Cluster::resume`]. It no longer counts as live.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<Killed> {
        let i = self.index(id)?;
        self.check_processes()?;
        if self.nodes[i].paused {
            bail!("node {id} is already paused");
        }
        let wall = SystemTime::now();
        let at = Instant::now();
        self.signal(i, "STOP")?;
        self.nodes[i].paused = true;
        Ok(Killed { id, at, wall })
    }

    /// SIGCONT node `id` after [`Cluster::pause`].
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        let i = self.index(id)?;
        if !self.nodes[i].paused {
            bail!("node {id} is not paused");
        }
        self.signal(i, "CONT")?;
        self.nodes[i].paused = false;
        Ok(())
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.node(id).is_ok_and(|n| n.paused)
    }

    /// SIGTERM node `id` (a planned stop: a leader hands leadership over first) and wait for
    /// it to exit, at most `timeout` (then SIGKILL, and an error). Returns when the signal was
    /// sent.
    pub async fn terminate(&mut self, id: u64, timeout: Duration) -> anyhow::Result<Killed> {
        let i = self.index(id)?;
        self.check_processes()?;
        if self.nodes[i].paused {
            bail!("node {id} is paused: SIGTERM would wait for SIGCONT");
        }
        let wall = SystemTime::now();
        let at = Instant::now();
        self.signal(i, "TERM")?;
        let mut child = self.nodes[i]
            .child()
            .take()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        let pid = child.id();
        let waited = tokio::time::timeout(
            timeout,
            tokio::task::spawn_blocking(move || {
                let status = child.wait();
                (child, status)
            }),
        )
        .await;
        match waited {
            Ok(Ok((_, Ok(status)))) if status.success() => Ok(Killed { id, at, wall }),
            Ok(Ok((_, Ok(status)))) => bail!(
                "node {id} exited with {status} after SIGTERM; its output:\n{}",
                tail(&self.run_output(&self.nodes[i]), TAIL_LINES)
            ),
            Ok(Ok((_, Err(e)))) => Err(e).with_context(|| format!("wait for node {id}")),
            Ok(Err(e)) => Err(anyhow!("wait for node {id}: {e}")),
            Err(_) => {
                // The waiting thread holds the child; kill it by pid and let the thread reap.
                let _ = kill_pid(pid, "KILL");
                bail!("node {id} did not exit within {timeout:?} of SIGTERM (SIGKILLed)")
            }
        }
    }

    /// Delete a stopped node's data (its Raft log, vote and snapshots; its config and log
    /// file stay). Restarted, it does not bootstrap: it waits to be added to the cluster.
    pub fn wipe(&mut self, id: u64) -> anyhow::Result<()> {
        let i = self.index(id)?;
        if self.nodes[i].child().is_some() {
            bail!("node {id} is running; stop it before wiping its data");
        }
        let node = &self.nodes[i];
        let (config, log) = (node.config_path(), node.log_path());
        for entry in
            std::fs::read_dir(&node.dir).with_context(|| format!("list {}", node.dir.display()))?
        {
            let path = entry
                .with_context(|| format!("list {}", node.dir.display()))?
                .path();
            if path == config || path == log {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            }
            .with_context(|| format!("remove {}", path.display()))?;
        }
        self.nodes[i].rejoin = true;
        let text = self.config_toml(&self.nodes[i]);
        std::fs::write(self.nodes[i].config_path(), text)
            .with_context(|| format!("write {}", self.nodes[i].config_path().display()))?;
        Ok(())
    }

    /// What `Cluster.AddNode` needs to add node `id` back.
    pub fn node_info(&self, id: u64) -> anyhow::Result<pb::NodeInfo> {
        let node = self.node(id)?;
        Ok(pb::NodeInfo {
            id,
            peer_addr: self.peer_addr(id),
            client_addr: node.ports.client.to_string(),
            region: self.region_of(id),
            http_url: format!("http://{}", node.ports.http),
        })
    }

    /// The proxies, when [`ClusterOptions::proxies`] is set.
    pub fn net(&self) -> anyhow::Result<&Net> {
        self.net
            .as_ref()
            .ok_or_else(|| anyhow!("the cluster runs without proxies (ClusterOptions::proxies)"))
    }

    /// The region of node `id`.
    pub fn region_of(&self, id: u64) -> String {
        let i = (id as usize).saturating_sub(1);
        match self.opts.regions.get(i) {
            Some(r) => r.clone(),
            None => region(id).to_string(),
        }
    }

    /// The nodes of `region`.
    pub fn nodes_in(&self, region: &str) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|&id| self.region_of(id) == region)
            .collect()
    }

    /// The peer address the members know node `id` by: its proxy, or its real peer port.
    fn peer_addr(&self, id: u64) -> String {
        let proxied = self.net.as_ref().and_then(|n| n.links.addr(id));
        match (proxied, self.node(id)) {
            (Some(addr), _) => addr.to_string(),
            (None, Ok(node)) => node.ports.peer.to_string(),
            (None, Err(_)) => String::new(),
        }
    }

    /// Node `id`'s gate to a provider, when it has one.
    fn gate(&self, which: impl Fn(&Net) -> Option<&Gates>, id: u64) -> Option<SocketAddr> {
        self.net
            .as_ref()
            .and_then(which)
            .and_then(|g| g.get(id))
            .map(proxy::Gate::addr)
    }

    /// Send signal `name` (`STOP`, `CONT`, `TERM`) to node `i`'s process.
    fn signal(&self, i: usize, name: &str) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let pid = node
            .child()
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("node {} is not running", node.id))?;
        kill_pid(pid, name).with_context(|| format!("SIG{name} node {}", node.id))
    }

    /// Start node `id` again with its config, ports and data dir; returns once it serves
    /// `Cluster.Status` (not once it caught up: see [`Cluster::wait_applied`]).
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let i = self.index(id)?;
        if self.nodes[i].child().is_some() {
            bail!("node {id} is running; kill it first");
        }
        for attempt in 1..=RESTART_ATTEMPTS {
            self.spawn(i)?;
            let deadline = Instant::now() + self.opts.start_timeout;
            match self.wait_serving(i, deadline).await {
                Ok(()) => return Ok(()),
                Err(StartError::AddrInUse(msg)) if attempt < RESTART_ATTEMPTS => {
                    // Another socket holds one of the node's ports; it may go away.
                    eprintln!("chaos-tests: {msg}; retrying the restart");
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
                Err(StartError::AddrInUse(msg)) => {
                    bail!("{msg}; gave up after {RESTART_ATTEMPTS} restarts on the same ports")
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    fn kill_all(&mut self) {
        for node in &self.nodes {
            if let Some(mut child) = node.child().take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// The whole log of node `id` (every run).
    pub fn log(&self, id: u64) -> anyhow::Result<String> {
        let path = self.node(id)?.log_path();
        std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .with_context(|| format!("read {}", path.display()))
    }

    /// The last `lines` lines of node `id`'s log, or why they cannot be read.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        match self.log(id) {
            Ok(text) => tail(&text, lines),
            Err(e) => format!("({e:#})"),
        }
    }

    /// Output of the node's current (or last) run.
    fn run_output(&self, node: &NodeProc) -> String {
        let path = node.log_path();
        let read = || -> std::io::Result<String> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(node.run_from))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Ok(String::from_utf8_lossy(&buf).into_owned())
        };
        read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
    }

    /// Print the end of every node's log to stderr.
    pub fn print_log_tails(&self, lines: usize) {
        for node in &self.nodes {
            eprintln!(
                "----- node {} ({}), last {lines} lines of {}:\n{}",
                node.id,
                if node.child().is_some() {
                    "running"
                } else {
                    "stopped"
                },
                node.log_path().display(),
                self.log_tail(node.id, lines)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        let keep = std::env::var_os(KEEP_ENV).is_some();
        if std::thread::panicking() {
            self.print_log_tails(TAIL_LINES);
        }
        if std::thread::panicking() || keep {
            self.root.disable_cleanup(true);
            eprintln!(
                "chaos-tests: kept configs, logs and data in {}",
                self.root.path().display()
            );
        }
    }
}

/// `kill -s NAME PID`.
fn kill_pid(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdin(Stdio::null())
        .status()
        .context("run kill(1)")?;
    if !status.success() {
        bail!("kill -s {name} {pid}: {status}");
    }
    Ok(())
}

/// The link proxies and provider gates of `opts`, before any node exists.
async fn start_net(opts: &ClusterOptions) -> anyhow::Result<Net> {
    let ids: Vec<u64> = (1..=opts.nodes as u64).collect();
    let links = Links::start(&ids).await.context("start the link proxies")?;
    let twilio = match &opts.twilio {
        Some(tw) => {
            let upstream: SocketAddr = tw
                .base_url
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .with_context(|| {
                    format!(
                        "the proxies need Twilio at http://IP:PORT, not {}",
                        tw.base_url
                    )
                })?;
            Some(
                Gates::start(&ids, upstream)
                    .await
                    .context("start the Twilio gates")?,
            )
        }
        None => None,
    };
    let smtp = match &opts.smtp {
        Some(s) => Some(
            Gates::start(&ids, s.addr)
                .await
                .context("start the SMTP gates")?,
        ),
        None => None,
    };
    Ok(Net {
        links,
        twilio,
        smtp,
    })
}

fn region(id: u64) -> &'static str {
    REGIONS[(id as usize - 1) % REGIONS.len()]
}

/// `n` sets of three distinct free loopback ports. All sockets are open at once so the OS
/// hands out distinct ports, then closed: see the module documentation for the race.
fn free_ports(n: usize) -> anyhow::Result<Vec<Ports>> {
    let mut held = Vec::with_capacity(3 * n);
    for _ in 0..3 * n {
        let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0 to find a free port")?;
        held.push(l);
    }
    let addrs = held
        .iter()
        .map(|l| l.local_addr().context("local address of a probe socket"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(held);
    Ok(addrs
        .chunks(3)
        .map(|a| Ports {
            client: a[0],
            peer: a[1],
            http: a[2],
        })
        .collect())
}

fn agreed_leader(
    live: &[u64],
    statuses: &[(u64, anyhow::Result<pb::ClusterStatus>)],
) -> Option<Leader> {
    let mut leader = None;
    for (_, s) in statuses {
        let s = s.as_ref().ok()?;
        if s.leader_id == 0 || !live.contains(&s.leader_id) {
            return None;
        }
        match leader {
            None => leader = Some(s.leader_id),
            Some(l) if l == s.leader_id => {}
            Some(_) => return None,
        }
    }
    let id = leader?;
    let (_, own) = statuses.iter().find(|(n, _)| *n == id)?;
    let own = own.as_ref().ok()?;
    (own.role == "leader").then_some(Leader { id, term: own.term })
}

fn describe(statuses: &[(u64, anyhow::Result<pb::ClusterStatus>)]) -> String {
    statuses
        .iter()
        .map(|(id, s)| match s {
            Ok(s) => format!(
                "node {id}: {} term {} leader {} applied {}",
                s.role, s.term, s.leader_id, s.applied_index
            ),
            Err(e) => format!("node {id}: {e:#}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(3).expect("free ports");
        let mut all: Vec<SocketAddr> = ports
            .iter()
            .flat_map(|p| [p.client, p.peer, p.http])
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 9);
        assert!(all.iter().all(|a| a.ip().is_loopback()));
    }

    fn st(id: u64, role: &str, leader: u64) -> (u64, anyhow::Result<pb::ClusterStatus>) {
        (
            id,
            Ok(pb::ClusterStatus {
                node_id: id,
                role: role.into(),
                term: 3,
                leader_id: leader,
                ..Default::default()
            }),
        )
    }

    #[test]
    fn a_leader_counts_once_every_live_node_names_it_and_it_leads() {
        let live = [1, 2, 3];
        let ok = [
            st(1, "follower", 2),
            st(2, "leader", 2),
            st(3, "follower", 2),
        ];
        assert_eq!(agreed_leader(&live, &ok), Some(Leader { id: 2, term: 3 }));
        let split = [
            st(1, "follower", 2),
            st(2, "leader", 2),
            st(3, "follower", 1),
        ];
        assert_eq!(agreed_leader(&live, &split), None);
        let dead = [st(2, "follower", 1), st(3, "follower", 1)];
        assert_eq!(agreed_leader(&[2, 3], &dead), None, "node 1 was killed");
        let stale = [st(1, "candidate", 2), st(2, "follower", 2)];
        assert_eq!(agreed_leader(&[1, 2], &stale), None);
    }
}
