//! Configs that follow their files: [`Reloadable`] re-reads the PEM files, and when their
//! contents changed and still make a valid config, swaps it in for new connections.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};

use crate::files::{Contents, TlsError, TlsFiles};

/// A rustls config built from [`TlsFiles`], rebuilt by [`Reloadable::reload`] when the files'
/// contents change. Cheap to clone: clones share the config.
pub struct Reloadable<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    /// What the config is for, in logs: "client port", "peer server", "peer client".
    name: &'static str,
    files: TlsFiles,
    build: fn(&Contents) -> Result<T, TlsError>,
    /// The config each new connection takes. Read by every accept or connect (clone the
    /// `Arc`, release); written only by a successful reload.
    current: RwLock<Arc<T>>,
    /// Digest of the contents last tried, loaded or refused: an unchanged file is not rebuilt,
    /// and a bad one is reported once, not on every poll. Held for a whole reload, so two
    /// reloads (poll and SIGHUP) do not interleave.
    seen: Mutex<u64>,
}

/// The server side: the node's certificate, and with a CA, required client certificates.
pub type ServerTls = Reloadable<ServerConfig>;
/// The client side: trusted CA roots, and with a certificate, the identity presented.
pub type ClientTls = Reloadable<ClientConfig>;

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// Names the files, never their contents.
impl<T> fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloadable")
            .field("name", &self.inner.name)
            .field("files", &self.inner.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Load a server config (blocking file reads): `cert` and `key` required; `ca` makes
    /// client certificates required.
    pub fn server(name: &'static str, files: TlsFiles) -> Result<Self, TlsError> {
        Self::load(name, files, Contents::server_config)
    }
}

impl ClientTls {
    /// Load a client config (blocking file reads): `ca`, or the public web PKI roots without
    /// it; `cert` and `key` optional (mutual TLS).
    pub fn client(name: &'static str, files: TlsFiles) -> Result<Self, TlsError> {
        Self::load(name, files, Contents::client_config)
    }
}

impl<T: Send + Sync + 'static> Reloadable<T> {
    fn load(
        name: &'static str,
        files: TlsFiles,
        build: fn(&Contents) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let contents = files.read()?;
        let config = build(&contents)?;
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                files,
                build,
                current: RwLock::new(Arc::new(config)),
                seen: Mutex::new(contents.digest()),
            }),
        })
    }

    /// The config for a new connection.
    pub fn current(&self) -> Arc<T> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Poll the files every `every` (skipped when zero) until `stop` resolves, reloading and
    /// logging as [`Reload::reload_and_log`] does.
    pub async fn watch(self, every: Duration, stop: impl Future<Output = ()>) {
        if every.is_zero() {
            return;
        }
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; the files were just read
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticks.tick() => {}
            }
            let this = self.clone();
            if tokio::task::spawn_blocking(move || this.reload_and_log())
                .await
                .is_err()
            {
                return; // the runtime is shutting down
            }
        }
    }
}

/// A config that can be reloaded, whatever its side (for a list of them: SIGHUP).
pub trait Reload: Send + Sync {
    /// What the config is for, in logs.
    fn name(&self) -> &'static str;

    /// Re-read the files (blocking). `Ok(true)`: their contents changed and new connections
    /// now use them; `Ok(false)`: unchanged since the last attempt; `Err`: changed but
    /// unusable, the previous config stays in use.
    fn reload(&self) -> Result<bool, TlsError>;

    /// [`Reload::reload`], with the outcome logged (INFO reloaded, WARN refused).
    fn reload_and_log(&self) {
        match self.reload() {
            Ok(true) => tracing::info!(
                tls = self.name(),
                "TLS files changed: reloaded, new connections use them"
            ),
            Ok(false) => tracing::debug!(tls = self.name(), "TLS files unchanged"),
            Err(e) => tracing::warn!(
                tls = self.name(),
                cause = %e,
                "TLS files changed but cannot be used; keeping the previous certificate"
            ),
        }
    }
}

impl<T: Send + Sync + 'static> Reload for Reloadable<T> {
    fn name(&self) -> &'static str {
        self.inner.name
    }

    fn reload(&self) -> Result<bool, TlsError> {
        let inner = &self.inner;
        let mut seen = inner.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let contents = match inner.files.read() {
            Ok(contents) => contents,
            Err(e) => {
                // A file missing or unreadable (e.g. half-way through a rotation): report it
                // once per distinct error.
                let digest = digest_of(&e.to_string());
                let new = *seen != digest;
                *seen = digest;
                return if new { Err(e) } else { Ok(false) };
            }
        };
        let digest = contents.digest();
        if *seen == digest {
            return Ok(false);
        }
        *seen = digest;
        let config = (inner.build)(&contents)?;
        *inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(true)
    }
}

fn digest_of(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn self_signed(dir: &std::path::Path, cert: &str, key: &str) {
        let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let key_pair = KeyPair::generate().expect("key");
        let c = params.self_signed(&key_pair).expect("cert");
        std::fs::write(dir.join(cert), c.pem()).expect("write cert");
        std::fs::write(dir.join(key), key_pair.serialize_pem()).expect("write key");
    }

    #[test]
    fn reload_swaps_only_on_a_valid_change_and_reports_a_bad_one_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        self_signed(dir.path(), "a.crt", "a.key");
        let files = TlsFiles {
            cert: Some(dir.path().join("a.crt")),
            key: Some(dir.path().join("a.key")),
            ca: None,
        };
        let tls = ServerTls::server("test", files).expect("loads");
        let first = tls.current();
        assert!(!tls.reload().expect("unchanged"), "nothing changed");
        assert!(Arc::ptr_eq(&first, &tls.current()));

        // A new certificate with the old key: refused once, then unchanged.
        self_signed(dir.path(), "a.crt", "other.key");
        let e = tls.reload().expect_err("key does not match");
        assert_eq!(e.role(), crate::FileRole::Key, "{e}");
        assert!(!tls.reload().expect("reported once"));
        assert!(Arc::ptr_eq(&first, &tls.current()), "old config kept");

        // A missing key file: refused, old config kept.
        std::fs::remove_file(dir.path().join("a.key")).expect("rm");
        let e = tls.reload().expect_err("missing");
        assert!(e.to_string().starts_with("cannot read"), "{e}");
        assert!(Arc::ptr_eq(&first, &tls.current()));

        // The matching key arrives: swapped.
        std::fs::rename(dir.path().join("other.key"), dir.path().join("a.key")).expect("mv");
        assert!(tls.reload().expect("valid"));
        assert!(!Arc::ptr_eq(&first, &tls.current()));
    }

    #[test]
    fn a_client_without_a_ca_trusts_the_public_roots() {
        let tls = ClientTls::client("test", TlsFiles::default()).expect("public roots");
        assert!(!tls.current().client_auth_cert_resolver.has_certs());
        let e = ClientTls::client(
            "test",
            TlsFiles {
                ca: Some("/no/such/ca.pem".into()),
                ..Default::default()
            },
        )
        .expect_err("missing CA");
        assert_eq!(e.role(), crate::FileRole::Ca);
        assert!(e.to_string().contains("/no/such/ca.pem"), "{e}");
    }
}
