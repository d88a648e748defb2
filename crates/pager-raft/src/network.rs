//! Outgoing peer RPCs: openraft's network over tonic, and write forwarding to the leader.
//!
//! Requests and answers are JSON inside `RaftPayload`; an answer is the JSON of
//! `Result<Response, RaftError<E>>`, so a Raft-level refusal on the peer comes back as a
//! `RemoteError`, distinct from a failed call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use pager_proto::raft::v1::raft_client::RaftClient;
use pager_proto::raft::v1::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::types::{NodeId, PeerNode, RPCError, RaftError, TypeConfig};

/// Largest peer message, either way: AppendEntries batches and snapshot chunks stay below it.
pub const MAX_PEER_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How connections to peers are made and kept alive.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Give up a TCP connect after this long; the RPC fails as unreachable.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval, also while idle, so a dead peer or path is noticed.
    pub keepalive_interval: Duration,
    /// Close the connection if a PING is not answered within this long.
    pub keepalive_timeout: Duration,
    /// TCP keepalive, for middleboxes that drop idle flows.
    pub tcp_keepalive: Duration,
    /// Shared cluster secret sent with every peer request (see [`PEER_SECRET_HEADER`]).
    pub cluster_secret: Option<Arc<str>>,
    /// Peer TLS (the cluster CA, and this node's certificate for mutual TLS): bare `host:port`
    /// addresses are dialled as `https://` and the peer's certificate is verified against the
    /// CA for that host. Reloads apply to new connections. `None`: plaintext `http://`.
    pub tls: Option<pager_tls::ClientTls>,
    /// Bind the local end of every peer connection to this address (`cluster.peer_source_ip`:
    /// a multi-homed host, firewalls keyed on peer source addresses); `None`: the OS chooses
    /// by its routes.
    pub local_address: Option<IpAddr>,
}

/// Metadata carrying the cluster secret on the peer port.
pub const PEER_SECRET_HEADER: &str = "x-pagerd-cluster-secret";

/// Put the cluster secret on an outgoing peer request.
fn authorize<T>(secret: &Option<Arc<str>>, request: &mut tonic::Request<T>) {
    if let Some(secret) = secret {
        if let Ok(value) = secret.parse() {
            request.metadata_mut().insert(PEER_SECRET_HEADER, value);
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(20),
            tcp_keepalive: Duration::from_secs(30),
            cluster_secret: None,
            tls: None,
            local_address: None,
        }
    }
}

/// A peer address that cannot be turned into a gRPC endpoint.
#[derive(Debug, thiserror::Error)]
#[error("invalid peer address {addr:?}: {source}")]
pub struct PeerAddrError {
    pub addr: String,
    pub source: tonic::transport::Error,
}

/// Long-lived gRPC channels to peers, one per address, shared by the Raft network and the
/// daemon's forwarding. Cheap to clone. Channels connect lazily and reconnect by themselves.
#[derive(Clone, Default)]
pub struct PeerClients {
    /// Address → channel. A std mutex: held only to look up or insert, never across `.await`.
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    options: Arc<ClientOptions>,
}

impl PeerClients {
    /// Channels that give up connecting after `connect_timeout` (e.g. the RPC timeout), with the
    /// default keepalives.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::with_options(ClientOptions {
            connect_timeout,
            ..ClientOptions::default()
        })
    }

    pub fn with_options(options: ClientOptions) -> Self {
        Self {
            channels: Arc::default(),
            options: Arc::new(options),
        }
    }

    /// The cached channel to `addr` (`host:port`, or a URI), created on first use. Must be
    /// called inside a tokio runtime.
    pub fn channel(&self, addr: &str) -> Result<Channel, PeerAddrError> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let opts = &self.options;
        let uri = match (addr.contains("://"), &opts.tls) {
            (true, _) => addr.to_string(),
            (false, Some(_)) => format!("https://{addr}"),
            (false, None) => format!("http://{addr}"),
        };
        let endpoint = Endpoint::from_shared(uri)
            .map_err(|source| PeerAddrError {
                addr: addr.to_string(),
                source,
            })?
            .tcp_nodelay(true)
            .connect_timeout(opts.connect_timeout)
            .http2_keep_alive_interval(opts.keepalive_interval)
            .keep_alive_timeout(opts.keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(opts.tcp_keepalive));
        // A custom connector dials TCP itself, so it gets the TCP settings too.
        let tcp = pager_tls::TcpOptions {
            nodelay: true,
            keepalive: Some(opts.tcp_keepalive),
            connect_timeout: Some(opts.connect_timeout),
            local_address: opts.local_address,
        };
        let channel = match (&opts.tls, opts.local_address) {
            (None, None) => endpoint.connect_lazy(),
            // tonic's own connector cannot bind the local address.
            (None, Some(_)) => {
                endpoint.connect_with_connector_lazy(pager_tls::TcpConnector::new(&tcp))
            }
            (Some(tls), _) => endpoint
                .connect_with_connector_lazy(pager_tls::TlsConnector::new(tls.clone(), &tcp)),
        };
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }

    /// A Raft service client on the cached channel to `addr`.
    pub fn client(&self, addr: &str) -> Result<RaftClient<Channel>, PeerAddrError> {
        Ok(RaftClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES))
    }

    /// Send `payload` to the Forward RPC of the node at `addr` and return its answer. Fails with
    /// `DeadlineExceeded` after `timeout`, `Unavailable` if the peer cannot be reached, or the
    /// status the peer's forward handler returned.
    pub async fn forward(
        &self,
        addr: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Status> {
        let mut client = self
            .client(addr)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let mut request = tonic::Request::new(RaftPayload { json: payload });
        request.set_timeout(timeout);
        authorize(&self.options.cluster_secret, &mut request);
        match tokio::time::timeout(timeout, client.forward(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner().json),
            Ok(Err(status)) => Err(status),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "forward to {addr}: no answer within {timeout:?}"
            ))),
        }
    }
}

/// openraft's network: makes a [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct Network {
    clients: PeerClients,
}

impl Network {
    pub fn new(clients: PeerClients) -> Self {
        Self { clients }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerConnection {
        PeerConnection {
            target,
            node: node.clone(),
            client: self.clients.client(&node.peer_addr).map_err(Arc::new),
            secret: self.clients.options.cluster_secret.clone(),
        }
    }
}

/// RPCs to one peer, over the shared channel to its address.
pub struct PeerConnection {
    target: NodeId,
    node: PeerNode,
    /// An invalid address fails every RPC as unreachable.
    client: Result<RaftClient<Channel>, Arc<PeerAddrError>>,
    secret: Option<Arc<str>>,
}

#[derive(Debug, Clone, Copy)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// A peer RPC got no answer in time. (openraft also bounds each call by the same TTL and then
/// reports its own `Timeout`; either way the call is not retried at once and no backoff starts.)
#[derive(Debug, thiserror::Error)]
#[error("{rpc:?} to node {target} at {addr}: no answer within {ttl:?}")]
struct NoAnswer {
    rpc: Rpc,
    target: NodeId,
    addr: String,
    ttl: Duration,
}

impl PeerConnection {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(e))),
        };
        let json = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftPayload { json });
        request.set_timeout(ttl);
        authorize(&self.secret, &mut request);
        let call = async move {
            match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let answer = match tokio::time::timeout(ttl, call).await {
            Ok(Ok(response)) => response.into_inner().json,
            Ok(Err(status)) => return Err(self.status_error(rpc, ttl, status)),
            Err(_) => return Err(self.timeout(rpc, ttl)),
        };
        let result: Result<Resp, RaftError<E>> = serde_json::from_slice(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    fn timeout<E: std::error::Error>(&self, rpc: Rpc, ttl: Duration) -> RPCError<E> {
        RPCError::Network(NetworkError::new(&NoAnswer {
            rpc,
            target: self.target,
            addr: self.node.peer_addr.clone(),
            ttl,
        }))
    }

    /// Transport failures are `Unreachable` (openraft backs off before retrying that peer);
    /// anything else the peer's server said is a `Network` error (retried at once).
    fn status_error<E: std::error::Error>(
        &self,
        rpc: Rpc,
        ttl: Duration,
        status: Status,
    ) -> RPCError<E> {
        tracing::debug!(
            target_node = self.target,
            addr = %self.node.peer_addr,
            rpc = ?rpc,
            code = ?status.code(),
            message = status.message(),
            "peer rpc failed"
        );
        match status.code() {
            Code::DeadlineExceeded => self.timeout(rpc, ttl),
            Code::Unavailable | Code::Unknown | Code::Cancelled => {
                RPCError::Unreachable(Unreachable::new(&status))
            }
            _ => RPCError::Network(NetworkError::new(&status)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError> {
        self.call(Rpc::AppendEntries, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<InstallSnapshotError>> {
        self.call(Rpc::InstallSnapshot, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }
}
