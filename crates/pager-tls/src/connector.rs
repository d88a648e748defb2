//! The client side: a connector for tonic channels
//! (`Endpoint::connect_with_connector` / `connect_with_connector_lazy`) that dials TCP and
//! runs the TLS handshake with the [`ClientTls`] config current at that moment.
//!
//! tonic's own `ClientTlsConfig` is neither reloadable nor able to take an explicit crypto
//! provider, hence this. The server's name is the host of the URI (`https://10.0.0.1:8701`:
//! the certificate needs an IP SAN 10.0.0.1; `https://pagerd.example.com`: a DNS SAN).

use std::error::Error;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::codegen::Service;
use tonic::transport::Uri;

use crate::reload::ClientTls;

/// TCP settings of outgoing connections (a custom connector replaces the ones tonic's
/// `Endpoint` would apply to its own).
#[derive(Debug, Clone)]
pub struct TcpOptions {
    pub nodelay: bool,
    pub keepalive: Option<Duration>,
    /// Bound on the TCP connect alone (`Endpoint::connect_timeout` bounds the handshake too).
    pub connect_timeout: Option<Duration>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            keepalive: None,
            connect_timeout: None,
        }
    }
}

/// TCP, then TLS with the current [`ClientTls`]; see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    tls: ClientTls,
    tcp: HttpConnector,
}

impl TlsConnector {
    pub fn new(tls: ClientTls, options: &TcpOptions) -> Self {
        let mut tcp = HttpConnector::new();
        // The URI is https://; the TLS is ours, not the HTTP connector's.
        tcp.enforce_http(false);
        tcp.set_nodelay(options.nodelay);
        tcp.set_keepalive(options.keepalive);
        tcp.set_connect_timeout(options.connect_timeout);
        Self { tls, tcp }
    }
}

type BoxError = Box<dyn Error + Send + Sync>;

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.tls.current();
        // `[::1]` → `::1`: the name to verify is the bare address.
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
        let connect = self.tcp.call(uri);
        Box::pin(async move {
            let host = host.ok_or("the URI has no host to verify the certificate against")?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
            let tcp = connect.await?.into_inner();
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
