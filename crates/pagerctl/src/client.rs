//! Endpoint list and failover.
//!
//! `--endpoint` names one or more nodes. [`Client::call`] makes one gRPC call,
//! trying the nodes in order: a node that cannot be reached (connect failure
//! or connect timeout) or that answers `Unavailable` (not the leader, no
//! quorum, shutting down) hands the call to the next node. Any other answer
//! from a live node is final, success or not, and so is a call that connected
//! but got no answer within `--timeout`: the node may have acted on it.
//!
//! `https://` endpoints are dialled over TLS (rustls, ring), verifying the
//! node's certificate against `--ca-cert` (a private CA) or else the public web
//! PKI roots, for the host named in the URL; `http://` stays plaintext.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};

/// The `--endpoint` value: one or more `http(s)://host:port` URLs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointList(Vec<String>);

impl EndpointList {
    pub fn urls(&self) -> &[String] {
        &self.0
    }
}

/// Clap value parser for `--endpoint`: comma-separated; a bare `host:port`
/// gets `http://` (the form `leader_client_addr` is reported in).
pub fn parse_endpoints(s: &str) -> Result<EndpointList, String> {
    let mut urls = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty endpoint in `{s}`"));
        }
        let url = if part.contains("://") {
            part.to_owned()
        } else {
            format!("http://{part}")
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("`{url}`: use http:// or https://"));
        }
        Endpoint::from_shared(url.clone()).map_err(|e| format!("`{url}`: {e}"))?;
        urls.push(url);
    }
    Ok(EndpointList(urls))
}

/// A connection factory over the endpoint list; see the module docs.
pub struct Client {
    /// `(url as given, endpoint)`, in the order they are tried.
    endpoints: Vec<(String, Endpoint)>,
    /// Bound on each node's connect, and separately on its call.
    timeout: Duration,
    /// `Bearer <token>`, sent with every call when set.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// Dials `https://` endpoints; `None` when every endpoint is `http://`.
    tls: Option<pager_tls::TlsConnector>,
}

impl Client {
    pub fn new(list: &EndpointList, timeout: Duration) -> anyhow::Result<Self> {
        let endpoints = list
            .urls()
            .iter()
            .map(|url| {
                let ep = Endpoint::from_shared(url.clone())
                    .map_err(|e| anyhow::anyhow!("endpoint `{url}`: {e}"))?
                    .connect_timeout(timeout);
                Ok((url.clone(), ep))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut client = Client {
            endpoints,
            timeout,
            authorization: None,
            tls: None,
        };
        if list.urls().iter().any(|u| u.starts_with("https://")) {
            client.tls = Some(client.connector(pager_tls::TlsFiles::default(), "public roots")?);
        }
        Ok(client)
    }

    /// Trust the CA certificate(s) in `ca_cert` (PEM) for `https://`
    /// endpoints instead of the public web PKI roots.
    pub fn with_ca_cert(mut self, ca_cert: Option<&std::path::Path>) -> anyhow::Result<Self> {
        if let Some(path) = ca_cert {
            let files = pager_tls::TlsFiles {
                ca: Some(path.to_path_buf()),
                ..Default::default()
            };
            self.tls = Some(self.connector(files, "--ca-cert")?);
        }
        Ok(self)
    }

    fn connector(
        &self,
        files: pager_tls::TlsFiles,
        what: &str,
    ) -> anyhow::Result<pager_tls::TlsConnector> {
        let tls = pager_tls::ClientTls::client("pagerctl", files)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        Ok(pager_tls::TlsConnector::new(
            tls,
            &pager_tls::TcpOptions {
                connect_timeout: Some(self.timeout),
                ..Default::default()
            },
        ))
    }

    /// Send `authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: Option<&str>) -> anyhow::Result<Self> {
        self.authorization = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--token: not a valid header value"))?,
            ),
        };
        Ok(self)
    }

    /// Make one call, failing over as the module docs describe. `rpc` gets a
    /// fresh channel and a copy of `msg` (with its gRPC deadline set) for each
    /// node tried.
    pub async fn call<M, T, F, Fut>(&self, msg: &M, rpc: F) -> Result<T, CallError>
    where
        M: Clone,
        F: FnMut(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.call_at(msg, rpc).await.map(|(answer, _url)| answer)
    }

    /// [`Client::call`], also returning the URL of the node that answered.
    pub async fn call_at<M, T, F, Fut>(&self, msg: &M, mut rpc: F) -> Result<(T, &str), CallError>
    where
        M: Clone,
        F: FnMut(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let mut attempts = Vec::new();
        for (url, endpoint) in &self.endpoints {
            let connected = match (&self.tls, url.starts_with("https://")) {
                (Some(tls), true) => {
                    let connect = endpoint.connect_with_connector(tls.clone());
                    tokio::time::timeout(self.timeout, connect).await
                }
                _ => tokio::time::timeout(self.timeout, endpoint.connect()).await,
            };
            let channel = match connected {
                Ok(Ok(channel)) => channel,
                Ok(Err(e)) => {
                    attempts.push(Attempt::connect_failed(url, error_chain(&e)));
                    continue;
                }
                Err(_) => {
                    let why = format!("no connection within {}s", self.timeout.as_secs());
                    attempts.push(Attempt::connect_failed(url, why));
                    continue;
                }
            };
            let mut request = Request::new(msg.clone());
            request.set_timeout(self.timeout);
            if let Some(auth) = &self.authorization {
                request.metadata_mut().insert("authorization", auth.clone());
            }
            let status = match tokio::time::timeout(self.timeout, rpc(channel, request)).await {
                Ok(Ok(response)) => return Ok((response.into_inner(), url.as_str())),
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!(
                    "no answer from {url} within {}s (the call may still take effect)",
                    self.timeout.as_secs()
                )),
            };
            let next = status.code() == Code::Unavailable;
            attempts.push(Attempt {
                url: url.clone(),
                status,
                reached: true,
            });
            if !next {
                break;
            }
        }
        Err(CallError { attempts })
    }
}

/// One node tried by [`Client::call`].
#[derive(Debug)]
pub struct Attempt {
    url: String,
    status: Status,
    /// The node answered (false: it could not be reached).
    reached: bool,
}

impl Attempt {
    fn connect_failed(url: &str, why: String) -> Self {
        Attempt {
            url: url.to_owned(),
            status: Status::unavailable(format!("cannot connect: {why}")),
            reached: false,
        }
    }
}

/// Every node tried, in order; the call failed on all of them, or got a
/// final error from the last.
#[derive(Debug)]
pub struct CallError {
    attempts: Vec<Attempt>,
}

impl CallError {
    /// The attempt to report: the final answer when there was one, else the
    /// last answer from a live node (it may name the leader), else the last
    /// connect failure.
    fn headline(&self) -> Option<&Attempt> {
        let last = self.attempts.last()?;
        if last.status.code() != Code::Unavailable {
            return Some(last);
        }
        self.attempts
            .iter()
            .rev()
            .find(|a| a.reached)
            .or(Some(last))
    }
}

/// `Unavailable: message` (a node that could not be reached is named:
/// `Unavailable: http://..: cannot connect: ..`), then, when more than one
/// node was tried, one indented line per node.
impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.headline() {
            None => write!(f, "InvalidArgument: no endpoint given")?,
            Some(a) if a.reached => write_status(f, &a.status)?,
            Some(a) => write!(
                f,
                "{:?}: {}: {}",
                a.status.code(),
                a.url,
                a.status.message()
            )?,
        }
        if self.attempts.len() > 1 {
            for a in &self.attempts {
                write!(f, "\n  {}: ", a.url)?;
                write_status(f, &a.status)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

fn write_status(f: &mut fmt::Formatter<'_>, status: &Status) -> fmt::Result {
    // `Code`'s Debug is its gRPC name (`Unavailable`, `FailedPrecondition`).
    if status.message().is_empty() {
        write!(f, "{:?}", status.code())
    } else {
        write!(f, "{:?}: {}", status.code(), status.message())
    }
}

/// `tcp connect error: Connection refused (os error 111)`: tonic's top-level
/// "transport error" says nothing without its sources, which say it all.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !matches!(parts.last(), Some(p) if p.ends_with(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_list_parsing() {
        let list = parse_endpoints("http://10.0.0.1:8700, 10.0.0.2:8700").expect("valid list");
        assert_eq!(
            list.urls(),
            ["http://10.0.0.1:8700", "http://10.0.0.2:8700"]
        );
        assert!(parse_endpoints("").is_err());
        assert!(parse_endpoints("a:1,").is_err());
        assert_eq!(
            parse_endpoints("https://a:1").expect("https").urls(),
            ["https://a:1"]
        );
        assert!(parse_endpoints("ftp://a:1").is_err());
        assert!(parse_endpoints("http://bad host:1").is_err());
    }

    fn attempt(url: &str, status: Status, reached: bool) -> Attempt {
        Attempt {
            url: url.into(),
            status,
            reached,
        }
    }

    #[test]
    fn reports_the_live_node_that_names_the_leader() {
        let err = CallError {
            attempts: vec![
                attempt(
                    "http://a:1",
                    Status::unavailable("not leader; leader is node 2 at b:1"),
                    true,
                ),
                attempt(
                    "http://c:1",
                    Status::unavailable("cannot connect: refused"),
                    false,
                ),
            ],
        };
        assert_eq!(
            err.to_string(),
            "Unavailable: not leader; leader is node 2 at b:1\n  \
             http://a:1: Unavailable: not leader; leader is node 2 at b:1\n  \
             http://c:1: Unavailable: cannot connect: refused"
        );
    }

    #[test]
    fn an_unreachable_node_is_named() {
        let err = CallError {
            attempts: vec![attempt(
                "http://c:1",
                Status::unavailable("cannot connect: refused"),
                false,
            )],
        };
        assert_eq!(
            err.to_string(),
            "Unavailable: http://c:1: cannot connect: refused"
        );
    }

    #[test]
    fn a_final_answer_is_the_headline() {
        let err = CallError {
            attempts: vec![attempt(
                "http://a:1",
                Status::failed_precondition("cluster already initialised"),
                true,
            )],
        };
        assert_eq!(
            err.to_string(),
            "FailedPrecondition: cluster already initialised"
        );
    }
}
