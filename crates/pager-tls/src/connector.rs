//! The client side: connectors for tonic channels
//! (`Endpoint::connect_with_connector` / `connect_with_connector_lazy`). [`TlsConnector`]
//! dials TCP and runs the TLS handshake with the [`ClientTls`] config current at that moment;
//! [`TcpConnector`] dials plain TCP with the same [`TcpOptions`].
//!
//! tonic's own `ClientTlsConfig` is neither reloadable nor able to take an explicit crypto
//! provider, hence this. The server's name is the host of the URI (`https://10.0.0.1:8701`:
//! the certificate needs an IP SAN 10.0.0.1; `https://pagerd.example.com`: a DNS SAN).
//!
//! tonic 0.12's `Endpoint` cannot bind the local end of its connections, so a channel whose
//! connections must leave from a given address ([`TcpOptions::local_address`]: a multi-homed
//! host, a firewall keyed on source addresses) takes one of these connectors even in
//! plaintext.

use std::error::Error;
use std::net::IpAddr;
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
    /// Bind the local end of each connection to this address (port chosen by the OS) before
    /// connecting; `None`: the OS picks the source address by its routes. A destination of the
    /// other address family cannot be reached from it.
    pub local_address: Option<IpAddr>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            nodelay: true,
            keepalive: None,
            connect_timeout: None,
            local_address: None,
        }
    }
}

impl TcpOptions {
    /// An HTTP connector that dials with these options; `https://` URIs are allowed through
    /// (the caller adds the TLS).
    fn connector(&self) -> HttpConnector {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(self.nodelay);
        tcp.set_keepalive(self.keepalive);
        tcp.set_connect_timeout(self.connect_timeout);
        tcp.set_local_address(self.local_address);
        tcp
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
        // The URI is https://; the TLS is ours, not the HTTP connector's.
        Self {
            tls,
            tcp: options.connector(),
        }
    }
}

/// Plain TCP with [`TcpOptions`] (for a plaintext channel that must bind its local address,
/// which tonic's own connector cannot). Cheap to clone.
#[derive(Clone)]
pub struct TcpConnector {
    tcp: HttpConnector,
}

impl TcpConnector {
    pub fn new(options: &TcpOptions) -> Self {
        Self {
            tcp: options.connector(),
        }
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

impl Service<Uri> for TcpConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.tcp.call(uri);
        Box::pin(async move { Ok(connect.await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Linux routes all of 127.0.0.0/8 to the loopback interface, so 127.0.0.2 is a local
    /// address to bind without any set-up.
    #[tokio::test]
    async fn connections_leave_from_the_local_address_asked_for() {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("listen");
        let uri: Uri = format!("http://{}", listener.local_addr().expect("addr"))
            .parse()
            .expect("uri");
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let mut connector = TcpConnector::new(&TcpOptions {
            local_address: Some(source),
            ..TcpOptions::default()
        });
        let (dialled, accepted) = tokio::join!(connector.call(uri.clone()), listener.accept());
        let _io = dialled.expect("connect from 127.0.0.2");
        let (_, peer) = accepted.expect("accept");
        assert_eq!(peer.ip(), source);

        let mut unbound = TcpConnector::new(&TcpOptions::default());
        let (dialled, accepted) = tokio::join!(unbound.call(uri), listener.accept());
        let _io = dialled.expect("connect");
        assert_eq!(accepted.expect("accept").1.ip(), Ipv4Addr::LOCALHOST);
    }
}
