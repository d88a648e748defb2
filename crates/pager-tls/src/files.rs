//! PEM files → rustls configs. Every config is built with [`crate::provider`].

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The PEM files of one TLS endpoint. Which are needed depends on the side:
///
/// | | `cert` + `key` | `ca` |
/// |---|---|---|
/// | server | required | set: clients must present a certificate chaining to it (mutual TLS) |
/// | client | optional: presented when the server asks (mutual TLS) | roots servers are verified against; unset: the public web PKI roots |
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// Private key of the leaf certificate: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: Option<PathBuf>,
    /// CA certificate(s) to trust.
    pub ca: Option<PathBuf>,
}

/// Which of [`TlsFiles`] an error is about (callers map it to their config key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Cert,
    Key,
    Ca,
}

impl fmt::Display for FileRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileRole::Cert => "certificate",
            FileRole::Key => "private key",
            FileRole::Ca => "CA certificate",
        })
    }
}

/// A TLS file that cannot be used. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        role: FileRole,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid {
        role: FileRole,
        path: PathBuf,
        reason: String,
    },
    #[error("no {0} file given")]
    Missing(FileRole),
}

impl TlsError {
    /// The file at fault.
    pub fn role(&self) -> FileRole {
        match self {
            TlsError::Read { role, .. } | TlsError::Invalid { role, .. } => *role,
            TlsError::Missing(role) => *role,
        }
    }
}

fn invalid(role: FileRole, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        role,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The bytes of each file named in [`TlsFiles`], read once so that parsing and change
/// detection see the same contents.
pub(crate) struct Contents {
    cert: Option<(PathBuf, Vec<u8>)>,
    key: Option<(PathBuf, Vec<u8>)>,
    ca: Option<(PathBuf, Vec<u8>)>,
}

impl TlsFiles {
    /// Read every named file (blocking).
    pub(crate) fn read(&self) -> Result<Contents, TlsError> {
        let read = |role, path: &Option<PathBuf>| -> Result<_, TlsError> {
            path.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .map(|bytes| (p.clone(), bytes))
                        .map_err(|cause| TlsError::Read {
                            role,
                            path: p.clone(),
                            cause,
                        })
                })
                .transpose()
        };
        Ok(Contents {
            cert: read(FileRole::Cert, &self.cert)?,
            key: read(FileRole::Key, &self.key)?,
            ca: read(FileRole::Ca, &self.ca)?,
        })
    }
}

impl Contents {
    /// A fingerprint of the contents, to notice a change (not a security check).
    pub(crate) fn digest(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for part in [&self.cert, &self.key, &self.ca] {
            part.as_ref().map(|(_, bytes)| bytes).hash(&mut h);
        }
        h.finish()
    }

    /// The leaf-first chain and its key, checked to belong together.
    fn identity(&self) -> Result<Option<Arc<CertifiedKey>>, TlsError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(TlsError::Missing(FileRole::Key)),
            (None, Some(_)) => return Err(TlsError::Missing(FileRole::Cert)),
            (Some(cert), Some(key)) => (cert, key),
        };
        let chain = certificates(FileRole::Cert, &cert.0, &cert.1)?;
        let der = PrivateKeyDer::from_pem_slice(&key.1).map_err(|e| {
            let reason = match e {
                pem::Error::NoItemsFound => "no private key found (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)".to_string(),
                other => pem_reason(&other),
            };
            invalid(FileRole::Key, &key.0, reason)
        })?;
        let certified = CertifiedKey::from_der(chain, der, &crate::provider()).map_err(|e| {
            let reason = match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "the private key does not belong to the certificate in {}",
                    cert.0.display()
                ),
                // rustls' own words: the key type is not supported, etc. (no key bytes).
                other => format!("unusable private key: {other}"),
            };
            invalid(FileRole::Key, &key.0, reason)
        })?;
        Ok(Some(Arc::new(certified)))
    }

    fn roots(&self) -> Result<Option<Arc<RootCertStore>>, TlsError> {
        let Some((path, bytes)) = &self.ca else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(FileRole::Ca, path, bytes)? {
            roots.add(cert).map_err(|e| {
                invalid(
                    FileRole::Ca,
                    path,
                    format!("not a usable CA certificate: {e}"),
                )
            })?;
        }
        Ok(Some(Arc::new(roots)))
    }

    /// A server config: `cert` + `key` required; with `ca`, a client certificate chaining to
    /// it is required of every client.
    pub(crate) fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let identity = self.identity()?.ok_or(TlsError::Missing(FileRole::Cert))?;
        let provider = crate::provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(FileRole::Cert, self.cert.as_ref().map(|(p, _)| p), e))?;
        let builder = match self.roots()? {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| config_error(FileRole::Ca, self.ca.as_ref().map(|(p, _)| p), e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)));
        config.alpn_protocols = vec![crate::ALPN_H2.to_vec()];
        Ok(config)
    }

    /// A client config: servers verified against `ca` (or the public web PKI roots); with
    /// `cert` + `key`, presented to servers that ask for a client certificate.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let roots = match self.roots()? {
            Some(roots) => roots,
            None => Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
        };
        let builder = ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(FileRole::Ca, self.ca.as_ref().map(|(p, _)| p), e))?
            .with_root_certificates(roots);
        let mut config = match self.identity()? {
            None => builder.with_no_client_auth(),
            Some(identity) => builder.with_client_cert_resolver(Arc::new(
                rustls::sign::SingleCertAndKey::from(identity),
            )),
        };
        config.alpn_protocols = vec![crate::ALPN_H2.to_vec()];
        Ok(config)
    }
}

/// A PEM problem in words, without the offending bytes (which could be key material).
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "not valid PEM: a block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "not valid PEM: a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "not valid PEM: a block is not valid base64".into(),
        pem::Error::Io(e) => format!("cannot read: {e}"),
        pem::Error::SectionTooLarge => "not valid PEM: a block is too large".into(),
        _ => "not valid PEM".into(),
    }
}

fn config_error(role: FileRole, path: Option<&PathBuf>, e: impl fmt::Display) -> TlsError {
    match path {
        Some(p) => invalid(role, p, e.to_string()),
        None => TlsError::Missing(role),
    }
}

fn certificates(
    role: FileRole,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(role, path, pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(invalid(
            role,
            path,
            "no certificate found (expected a PEM `CERTIFICATE` block)",
        ));
    }
    Ok(certs)
}
