//! The server side: a listener's connections, TLS-terminated, as the incoming stream of a
//! tonic server (`Server::serve_with_incoming_shutdown`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::reload::ServerTls;

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Handshake = BoxFuture<'static, (SocketAddr, io::Result<TlsIo>)>;

/// Accepted TCP connections after a TLS handshake with the config current at accept time
/// ([`ServerTls::current`]). Handshakes run concurrently, so a slow or silent client holds up
/// no one; a failed handshake (plaintext client, untrusted client certificate) is logged and
/// skipped. Owns the listener: dropping the stream (the server stopped) closes the port.
pub struct TlsIncoming {
    listener: TcpListener,
    tls: ServerTls,
    /// TCP keepalive on accepted sockets.
    keepalive: Option<Duration>,
    handshakes: FuturesUnordered<Handshake>,
}

impl TlsIncoming {
    /// Accepted sockets get `TCP_NODELAY` (gRPC's small messages must not wait on delayed
    /// ACKs) and, when given, TCP keepalive.
    pub fn new(listener: TcpListener, tls: ServerTls, keepalive: Option<Duration>) -> Self {
        Self {
            listener,
            tls,
            keepalive,
            handshakes: FuturesUnordered::new(),
        }
    }

    fn start_handshake(&mut self, tcp: TcpStream, remote: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        if let Some(idle) = self.keepalive {
            let ka = socket2::TcpKeepalive::new().with_time(idle);
            let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&ka);
        }
        let info = tcp.connect_info();
        let acceptor = tokio_rustls::TlsAcceptor::from(self.tls.current());
        self.handshakes.push(Box::pin(async move {
            let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Ok(TlsIo { stream, info }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
                )),
            };
            (remote, result)
        }));
    }
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsIo>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Take every connection waiting; the listener wakes us for the next.
        loop {
            match this.listener.poll_accept(cx) {
                Poll::Ready(Ok((tcp, remote))) => this.start_handshake(tcp, remote),
                // tonic logs and skips an accept error, as for plain TCP.
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                Poll::Pending => break,
            }
        }
        while let Poll::Ready(Some((remote, result))) = this.handshakes.poll_next_unpin(cx) {
            match result {
                Ok(io) => return Poll::Ready(Some(Ok(io))),
                // Closed before a handshake: a TCP probe or port check, not worth a warning.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => tracing::debug!(
                    tls = this.tls_name(),
                    remote = %remote,
                    "connection closed before the TLS handshake"
                ),
                Err(e) => tracing::warn!(
                    tls = this.tls_name(),
                    remote = %remote,
                    cause = %e,
                    "TLS handshake failed"
                ),
            }
        }
        // Pending: the listener and every handshake in flight will wake us.
        Poll::Pending
    }
}

impl TlsIncoming {
    fn tls_name(&self) -> &'static str {
        use crate::reload::Reload;
        self.tls.name()
    }
}

/// One TLS connection accepted by [`TlsIncoming`]. To tonic it is a TCP connection
/// (`Request::remote_addr` works as without TLS).
pub struct TlsIo {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl TlsIo {
    /// The certificate chain the client presented (mutual TLS), leaf first.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        self.stream.get_ref().1.peer_certificates()
    }
}

impl Connected for TlsIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
