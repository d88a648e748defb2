//! gRPC clients of the public API (`pager.v1`), as an alert source or `pagerctl` would hold
//! them: one HTTP/2 connection per [`Channel`], to one node's client port.

use anyhow::Context as _;
use pager_proto::pager::v1 as pb;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

/// How long connecting to a node may take; loopback answers at once or refuses.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A channel to `addr` that connects on first use and reconnects after a failure, so it may
/// be made while the node is down. Every call on it is bounded by `timeout`.
pub fn channel(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("endpoint for {addr}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

pub fn events(ch: &Channel) -> pb::events_client::EventsClient<Channel> {
    pb::events_client::EventsClient::new(ch.clone())
}

pub fn incidents(ch: &Channel) -> pb::incidents_client::IncidentsClient<Channel> {
    pb::incidents_client::IncidentsClient::new(ch.clone())
}

pub fn followups(ch: &Channel) -> pb::followups_client::FollowupsClient<Channel> {
    pb::followups_client::FollowupsClient::new(ch.clone())
}

pub fn config(ch: &Channel) -> pb::config_client::ConfigClient<Channel> {
    pb::config_client::ConfigClient::new(ch.clone())
}

pub fn cluster(ch: &Channel) -> pb::cluster_client::ClusterClient<Channel> {
    pb::cluster_client::ClusterClient::new(ch.clone())
}

/// The `authorization` value that presents API token `token`.
pub fn bearer(token: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    format!("Bearer {token}")
        .parse()
        .context("an API token must be printable ASCII")
}

/// `msg` as a request carrying `bearer` (from [`bearer`]) when given.
pub fn authorized<T>(msg: T, bearer: Option<&MetadataValue<Ascii>>) -> Request<T> {
    let mut req = Request::new(msg);
    if let Some(b) = bearer {
        req.metadata_mut().insert("authorization", b.clone());
    }
    req
}

/// A trigger event for `routing_key` with `dedup_key`.
pub fn trigger(routing_key: &str, dedup_key: &str, summary: &str) -> pb::SendEventRequest {
    pb::SendEventRequest {
        routing_key: routing_key.into(),
        action: pb::EventAction::Trigger as i32,
        dedup_key: dedup_key.into(),
        summary: summary.into(),
        source: "chaos-tests".into(),
        severity: "critical".into(),
        ..Default::default()
    }
}
