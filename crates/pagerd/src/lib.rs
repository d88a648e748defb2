//! pagerd: the daemon. It wires the pure domain (`pager-core`), the
//! replicated log (`pager-raft`) and the channels (`pager-notify`) together.
//!
//! ```text
//!                 edge (any node)                      node              every node
//!  client port ─► edge::grpc ──────────────┐
//!  http port   ─► edge::http, compat,      ├─► Node::write ─► leader: stamp, propose ─► apply
//!                 webhooks, links ─────────┘        ▲                     (pager-core)
//!  peer port   ─► Raft RPCs, node::peer (followers' writes, election state)
//!
//!  leader (only while leading): scheduler (Takeover, Tick at the next deadline),
//!  dispatcher (pace, reconcile, send, Outcome), retention, transfer
//! ```
//!
//! Layout, by responsibility:
//! - [`edge`]: what answers the outside on any node (gRPC API, HTTP,
//!   PagerDuty / Alertmanager compatibility, Twilio webhooks, email links,
//!   rate limit)
//! - [`leader`]: the leader's loops (scheduler, dispatcher, pacer, retention,
//!   transfer, early elections) and self-monitoring
//! - [`node`]: the Raft handle, the write path and the peer protocol;
//!   [`config`]: figment layers and validation; [`error`]: one mapping to
//!   gRPC status

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// `tonic::Status` (the gRPC error) and `figment::Error` are large by design;
// boxing them at every handler would only obscure the code.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod edge;
pub mod error;
pub mod leader;
pub mod node;

use anyhow::Context as _;
use config::NodeConfig;
use node::{ForwardReply, ForwardRequest, Node};
use pager_proto::pager::v1 as pb;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info};

/// Listening sockets, bound before start (tests bind port 0 and learn the ports).
pub struct Listeners {
    pub client: TcpListener,
    pub peer: TcpListener,
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(cfg: &NodeConfig) -> anyhow::Result<Listeners> {
        let bind = |a: SocketAddr, what: &'static str| async move {
            TcpListener::bind(a)
                .await
                .with_context(|| format!("bind {what} address {a}"))
        };
        Ok(Listeners {
            client: bind(cfg.client_listen, "client").await?,
            peer: bind(cfg.peer_listen, "peer").await?,
            http: bind(cfg.http_listen, "http").await?,
        })
    }
}

/// A started node. Dropping it does not stop it: call [`Running::shutdown`].
pub struct Running {
    pub node: Arc<Node>,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Resolves when the Raft log file is closed (so it may be reopened).
    log_closed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    /// The TLS configs in use (client port, peer server, peer client), for
    /// [`Running::reload_tls`]; each also polls its files on its own.
    tls: Vec<Arc<dyn pager_tls::Reload>>,
}

impl Running {
    /// Hand leadership to another voter if this node leads (before a planned
    /// stop); see [`Node::step_down`].
    pub async fn step_down(&self) -> Option<u64> {
        self.node.step_down().await
    }

    /// Re-read the TLS certificate files now (on SIGHUP), as the periodic
    /// check does: changed and valid files are used by new connections, bad
    /// ones are logged and the previous certificate kept.
    pub async fn reload_tls(&self) {
        if self.tls.is_empty() {
            info!("no TLS configured: nothing to reload");
        }
        for r in &self.tls {
            let r = r.clone();
            let _ = tokio::task::spawn_blocking(move || r.reload_and_log()).await;
        }
    }

    /// Stop serving, stop Raft, and wait for every task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.node.raft.shutdown().await {
            error!(cause = %e, "raft shutdown");
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.log_closed.await;
    }
}

/// Seed this node's empty data dir from a backup file (`pagerctl cluster
/// snapshot --out`): the node then starts as a one-voter cluster holding the
/// backup's state, and the other nodes join it with `AddNode`.
pub async fn restore(
    cfg: &NodeConfig,
    backup: &std::path::Path,
) -> anyhow::Result<pager_raft::backup::BackupInfo> {
    let bytes =
        std::fs::read(backup).with_context(|| format!("read backup {}", backup.display()))?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("create data dir {}", cfg.data_dir.display()))?;
    let info = pager_raft::backup::restore(&cfg.data_dir, &bytes, cfg.node_id, cfg.peer_node())
        .await
        .with_context(|| format!("restore {}", backup.display()))?;
    Ok(info)
}

/// Open the stores, start Raft, the servers, the scheduler and the dispatcher.
pub async fn start(cfg: NodeConfig, listeners: Listeners) -> anyhow::Result<Running> {
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("create data dir {}", cfg.data_dir.display()))?;
    let notifier =
        pager_notify::Notifier::new(cfg.notify.clone()).context("set up notification channels")?;
    // TLS files are loaded before anything starts: a bad one stops the node here.
    let client_tls = cfg
        .client_tls
        .as_ref()
        .map(|t| pager_tls::ServerTls::server("client port", t.files.clone()))
        .transpose()
        .context("tls: load the client port certificate")?;
    let peer_tls = cfg
        .peer_tls
        .as_ref()
        .map(|t| {
            Ok::<_, pager_tls::TlsError>((
                pager_tls::ServerTls::server("peer server", t.files.clone())?,
                pager_tls::ClientTls::client("peer client", t.files.clone())?,
            ))
        })
        .transpose()
        .context("cluster.tls: load the peer certificates")?;

    let (log_store, sm_store) = pager_raft::open(&cfg.data_dir)
        .await
        .context("open raft storage")?;
    // Before Raft starts: it may apply entries as soon as it is built.
    let (effects, routed) = leader::effects::route();
    sm_store.on_effects(effects);
    let log_closed = Box::pin(log_store.closed());
    let log = log_store.peek();
    let state = sm_store.state();
    let applied = sm_store.subscribe_applied();
    let cluster_secret: Option<Arc<str>> =
        cfg.cluster_secret.as_ref().map(|s| Arc::from(s.expose()));
    let peers = pager_raft::PeerClients::with_options(pager_raft::ClientOptions {
        connect_timeout: cfg.rpc_timeout,
        cluster_secret: cluster_secret.clone(),
        tls: peer_tls.as_ref().map(|(_, client)| client.clone()),
        local_address: cfg.peer_source_ip,
        ..Default::default()
    });
    let network = pager_raft::Network::new(peers.clone());
    let raft = pager_raft::Raft::new(
        cfg.node_id,
        Arc::new(cfg.raft.clone()),
        network,
        log_store,
        sm_store,
    )
    .await
    .context("start raft")?;
    let (stop, stopped) = watch::channel(false);
    let node = Arc::new(Node {
        cfg: cfg.clone(),
        raft,
        log,
        state,
        peers,
        applied,
        leader: leader::LeaderState::new(&cfg.dispatch),
        leader_changes: Default::default(),
        slack_users: Default::default(),
        limiter: edge::ratelimit::KeyLimiter::new(
            cfg.events_per_second_per_key,
            cfg.events_burst_per_key,
        ),
        stopping: stopped.clone(),
        health: Default::default(),
    });

    let until_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let client_addr = listeners.client.local_addr()?;
    let peer_addr = listeners.peer.local_addr()?;
    let http_addr = listeners.http.local_addr()?;
    let mut tasks = Vec::new();

    // Peer port: Raft RPCs and forwarded writes.
    let fwd_node = node.clone();
    let forward: pager_raft::ForwardFn = Arc::new(move |body: Vec<u8>| {
        let n = fwd_node.clone();
        Box::pin(async move { n.handle_forward(body).await })
    });
    let (raft, shutdown) = (node.raft.clone(), until_stop(stopped.clone()));
    let peer_server_tls = peer_tls.as_ref().map(|(server, _)| server.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = pager_raft::serve_peers_tls(
            listeners.peer,
            raft,
            forward,
            cluster_secret,
            peer_server_tls,
            shutdown,
        )
        .await
        {
            error!(cause = %e, "peer server stopped");
        }
    }));

    // TLS reloads: each config polls its files; SIGHUP checks all at once.
    let mut tls: Vec<Arc<dyn pager_tls::Reload>> = Vec::new();
    if let (Some(t), Some(s)) = (&client_tls, &cfg.client_tls) {
        tls.push(Arc::new(t.clone()));
        let watch = t
            .clone()
            .watch(s.reload_interval, until_stop(stopped.clone()));
        tasks.push(tokio::spawn(watch));
    }
    if let (Some((server, client)), Some(s)) = (&peer_tls, &cfg.peer_tls) {
        tls.push(Arc::new(server.clone()));
        tls.push(Arc::new(client.clone()));
        let watch = server
            .clone()
            .watch(s.reload_interval, until_stop(stopped.clone()));
        tasks.push(tokio::spawn(watch));
        let watch = client
            .clone()
            .watch(s.reload_interval, until_stop(stopped.clone()));
        tasks.push(tokio::spawn(watch));
    }

    // Client port: the public API, TCP_NODELAY on every accepted socket,
    // TLS-terminated when `[tls]` is set.
    let api = edge::grpc::Api { node: node.clone() };
    let incoming = match client_tls {
        Some(t) => ClientIncoming::Tls(pager_tls::TlsIncoming::new(listeners.client, t, None)),
        None => ClientIncoming::Plain(
            tonic::transport::server::TcpIncoming::from_listener(listeners.client, true, None)
                .map_err(|e| anyhow::anyhow!("client listener: {e}"))?,
        ),
    };
    let shutdown = until_stop(stopped.clone());
    // grpc.health.v1: "" is SERVING while the process runs (liveness); each
    // public service is SERVING while a leader is known (readiness).
    let (health, health_service) = tonic_health::server::health_reporter();
    tasks.push(tokio::spawn(edge::grpc::report_health(
        node.clone(),
        health,
        stopped.clone(),
    )));
    // Only the public services: the Raft service lives on the peer port.
    let reflection_service = edge::grpc::PUBLIC_SERVICES
        .iter()
        .fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pager_proto::FILE_DESCRIPTOR_SET),
            |b, name| b.with_service_name(*name),
        )
        .build_v1()
        .map_err(|e| anyhow::anyhow!("grpc reflection: {e}"))?;
    tasks.push(tokio::spawn(async move {
        let router = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_service)
            .add_service(pb::events_server::EventsServer::new(api.clone()))
            .add_service(pb::incidents_server::IncidentsServer::new(api.clone()))
            .add_service(pb::config_server::ConfigServer::new(api.clone()))
            .add_service(pb::on_call_server::OnCallServer::new(api.clone()))
            .add_service(pb::cluster_server::ClusterServer::new(api.clone()))
            .add_service(pb::tokens_server::TokensServer::new(api.clone()))
            .add_service(pb::users_server::UsersServer::new(api.clone()))
            .add_service(pb::followups_server::FollowupsServer::new(api.clone()))
            .add_service(pb::webhooks_server::WebhooksServer::new(api));
        let res = match incoming {
            ClientIncoming::Plain(i) => router.serve_with_incoming_shutdown(i, shutdown).await,
            ClientIncoming::Tls(i) => router.serve_with_incoming_shutdown(i, shutdown).await,
        };
        if let Err(e) = res {
            error!(cause = %e, "client server stopped");
        }
    }));

    // HTTP: health, readiness, metrics.
    let app = edge::http::router(node.clone());
    let shutdown = until_stop(stopped.clone());
    tasks.push(tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        if let Err(e) = axum::serve(listeners.http, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            error!(cause = %e, "http server stopped");
        }
    }));

    tasks.push(tokio::spawn(
        leader::scheduler::Scheduler {
            node: node.clone(),
            wake: routed.wake,
            shutdown: stopped.clone(),
        }
        .run(),
    ));
    tasks.push(tokio::spawn(leader::transfer::prefer_regions(
        node.clone(),
        stopped.clone(),
    )));
    tasks.push(tokio::spawn(leader::retention::run(
        node.clone(),
        stopped.clone(),
    )));
    // Who stands first when the leader goes silent: the question travels over
    // the peer protocol, the rule and the election are pager-raft's.
    let asker = node.clone();
    let ask = move |id: u64| {
        let node = asker.clone();
        async move {
            let addr = node.peer_addr_of(id)?;
            match node.forward(&addr, &ForwardRequest::ElectionState).await {
                Ok(ForwardReply::ElectionState(s)) => Some(s),
                _ => None,
            }
        }
    };
    let counter = node.clone();
    let stood = move || {
        counter
            .health
            .elections_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    tasks.push(tokio::spawn(pager_raft::elections::run(
        node.raft.clone(),
        node.log.clone(),
        cfg.node_id,
        ask,
        stood,
        stopped.clone(),
    )));
    tasks.push(tokio::spawn(leader::monitor::run(
        node.clone(),
        notifier.clone(),
        stopped.clone(),
    )));
    tasks.push(tokio::spawn(
        leader::dispatcher::Dispatcher::new(node.clone(), notifier, routed.claims, stopped.clone())
            .run(),
    ));

    if cfg.bootstrap
        && !node
            .raft
            .is_initialized()
            .await
            .context("read raft state")?
    {
        let members: BTreeMap<u64, pager_raft::PeerNode> = cfg
            .members
            .iter()
            .map(|m| {
                let region = if m.region.is_empty() {
                    cfg.region.clone()
                } else {
                    m.region.clone()
                };
                (
                    m.id,
                    pager_raft::PeerNode {
                        peer_addr: m.peer.clone(),
                        client_addr: m.client.clone(),
                        region,
                        http_url: match (&m.http, m.id == cfg.node_id) {
                            (Some(u), _) => u.trim_end_matches('/').to_string(),
                            (None, true) => cfg.public_url.clone(),
                            (None, false) => String::new(),
                        },
                    },
                )
            })
            .collect();
        info!(
            node = cfg.node_id,
            members = members.len().max(1),
            "bootstrapping a new cluster"
        );
        node.init(members).await.context("initialise cluster")?;
    }
    info!(node = cfg.node_id, region = %cfg.region, client = %client_addr, peer = %peer_addr, http = %http_addr, "pagerd started");
    Ok(Running {
        node,
        client_addr,
        peer_addr,
        http_addr,
        stop,
        tasks,
        log_closed,
        tls,
    })
}

/// The client port's connections: plain TCP, or TLS-terminated (`[tls]`).
enum ClientIncoming {
    Plain(tonic::transport::server::TcpIncoming),
    Tls(pager_tls::TlsIncoming),
}
