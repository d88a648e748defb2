//! Incoming peer RPCs: the `raft.v1.Raft` gRPC service.
//!
//! Peers only: serve it on the peer port, never on the client port. Its RPCs change Raft state
//! directly and carry no authentication of their own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use pager_proto::raft::v1::raft_server::{Raft as RaftRpc, RaftServer};
use pager_proto::raft::v1::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::network::MAX_PEER_MESSAGE_BYTES;
use crate::types::{NodeId, Raft, TypeConfig};

/// The daemon's handler for forwarded writes: gets the Forward request's JSON, answers JSON.
/// On the leader it proposes the command and answers once applied; elsewhere it refuses.
pub type ForwardFn =
    Arc<dyn Fn(Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, Status>> + Send + Sync>;

/// TCP keepalive on accepted peer connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// HTTP/2 PING interval and answer timeout on accepted peer connections.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the peer server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("set up the peer listener: {0}")]
    Listener(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("peer server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The `raft.v1.Raft` service of one node: Raft RPCs go to its `Raft`, Forward to the daemon.
pub struct RaftService {
    raft: Raft,
    forward: ForwardFn,
}

impl RaftService {
    pub fn new(raft: Raft, forward: ForwardFn) -> Self {
        Self { raft, forward }
    }

    /// The tonic service, accepting messages up to [`MAX_PEER_MESSAGE_BYTES`].
    pub fn into_server(self) -> RaftServer<Self> {
        RaftServer::new(self)
            .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
    }
}

/// Serve the peer service on `listener` until `shutdown` resolves. Accepted connections get
/// `TCP_NODELAY` (without it a 4 KiB RPC waits ~40 ms on delayed ACKs) and keepalives.
///
/// With `cluster_secret`, every request must carry it in
/// [`crate::network::PEER_SECRET_HEADER`] (compared in constant time); others
/// get `UNAUTHENTICATED` and reach neither Raft nor the daemon.
pub async fn serve_peers(
    listener: TcpListener,
    raft: Raft,
    forward: ForwardFn,
    cluster_secret: Option<Arc<str>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_peers_tls(listener, raft, forward, cluster_secret, None, shutdown).await
}

/// [`serve_peers`], over TLS when `tls` is given. With the cluster CA in it (the daemon's
/// `cluster.tls`), a peer must present a certificate signed by that CA or the handshake fails
/// before any RPC; the cluster secret is checked on top. New connections use the
/// certificate current when they are accepted (see [`pager_tls::Reloadable`]).
pub async fn serve_peers_tls(
    listener: TcpListener,
    raft: Raft,
    forward: ForwardFn,
    cluster_secret: Option<Arc<str>>,
    tls: Option<pager_tls::ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, tls = tls.is_some(), "serving raft peers");
    let router = Server::builder()
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            RaftService::new(raft, forward).into_server(),
            move |request: Request<()>| check_secret(cluster_secret.as_deref(), request),
        ));
    match tls {
        Some(tls) => {
            let incoming = pager_tls::TlsIncoming::new(listener, tls, Some(TCP_KEEPALIVE));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
        None => {
            // The server builder's `tcp_nodelay` only applies to listeners it binds itself.
            let incoming = TcpIncoming::from_listener(listener, true, Some(TCP_KEEPALIVE))
                .map_err(ServeError::Listener)?;
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?
        }
    }
    tracing::info!(addr = ?addr, "raft peer server stopped");
    Ok(())
}

fn check_secret(secret: Option<&str>, request: Request<()>) -> Result<Request<()>, Status> {
    use subtle::ConstantTimeEq;
    let Some(secret) = secret else {
        return Ok(request);
    };
    let given = request
        .metadata()
        .get(crate::network::PEER_SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(given.ct_eq(secret.as_bytes())) {
        Ok(request)
    } else {
        Err(Status::unauthenticated(
            "peer port: missing or wrong cluster secret (raft.cluster_secret)",
        ))
    }
}

fn decode<T: DeserializeOwned>(request: Request<RaftPayload>, what: &str) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().json)
        .map_err(|e| Status::invalid_argument(format!("cannot parse {what}: {e}")))
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    serde_json::to_vec(result)
        .map(|json| Response::new(RaftPayload { json }))
        .map_err(|e| Status::internal(format!("cannot encode the answer: {e}")))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(request, "AppendEntriesRequest")?;
        let result = self.raft.append_entries(rpc).await;
        // Accepted from a leader of our vote or a newer one (a `HigherVote` answer refuses a
        // stale leader, which does not count as hearing from the leader).
        if matches!(&result, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.raft.leader_contact().touch();
        }
        reply(&result)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: VoteRequest<NodeId> = decode(request, "VoteRequest")?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode(request, "InstallSnapshotRequest")?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let json = (self.forward)(request.into_inner().json).await?;
        Ok(Response::new(RaftPayload { json }))
    }
}
