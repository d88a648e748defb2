//! pager-tls: TLS for pagerd's gRPC ports and for its clients (peers, pagerctl).
//!
//! Everything is rustls with the **ring** provider chosen explicitly. This workspace compiles
//! rustls with both ring and aws-lc-rs (lettre and reqwest ask for them), so rustls cannot pick
//! a process-wide default provider by itself; building every config with
//! [`provider()`] means neither the daemon, nor a library user, nor a test has to call
//! `CryptoProvider::install_default`.
//!
//! ```text
//!  PEM files ──read──▶ TlsFiles + contents ──build──▶ rustls::{Server,Client}Config
//!      ▲                                                   │ swapped whole on change
//!      └── Reloadable::watch (poll) / reload (SIGHUP) ◀────┘
//!  ServerTls ─▶ TlsIncoming (a listener's TLS connections, for tonic's serve_with_incoming)
//!  ClientTls ─▶ TlsConnector (tower connector, for Endpoint::connect_with_connector*)
//!  TcpOptions ─▶ TcpConnector (the same without TLS: binds a local address tonic cannot)
//! ```
//!
//! Each new connection takes the config current at that moment: a reloaded certificate is used
//! by new connections, established ones keep theirs. A file that cannot be loaded never
//! replaces a working config.
//!
//! Layout: [`files`] (PEM loading, [`TlsFiles`], [`TlsError`]), [`reload`] ([`Reloadable`],
//! [`ServerTls`], [`ClientTls`]), [`incoming`] ([`TlsIncoming`], [`TlsIo`]), [`connector`]
//! ([`TlsConnector`], [`TcpConnector`], [`TcpOptions`]).
//!
//! Key material never reaches a log or an error message: errors name the file and what is
//! wrong with it, not its contents.
//!
//! tonic's own `tls` feature must stay off in this workspace: with it, tonic refuses an
//! `https://` URI given to a custom connector ("Connecting to HTTPS without TLS enabled").
//! [`TlsIo`] implements tonic's `Connected` itself for the same reason.

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod connector;
pub mod files;
pub mod incoming;
pub mod reload;

use std::sync::Arc;

pub use connector::{TcpConnector, TcpOptions, TlsConnector};
pub use files::{FileRole, TlsError, TlsFiles};
pub use incoming::{TlsIncoming, TlsIo};
pub use reload::{ClientTls, Reload, Reloadable, ServerTls};

/// ALPN id of HTTP/2: gRPC needs it; offered by both sides.
pub const ALPN_H2: &[u8] = b"h2";

/// The crypto provider of every config built here: ring (see the crate docs for why explicit).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
