//! A node's `/metrics` (Prometheus text format) read over plain HTTP/1.0 on its `listen.http`
//! port. The delivery counters (`pagerd_deliveries_total{outcome=...}`) are replicated state,
//! so every node that applied the same index reports the same values; gauges such as
//! `pagerd_deliveries_pending` and `pagerd_raft_is_leader` are the node's own view.
//!
//! HTTP/1.0 with `Connection: close` keeps the client a dozen lines: the answer is the bytes
//! until the server closes, never chunked.

use anyhow::{bail, Context as _};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Bound on one scrape (a live node on loopback answers in a few milliseconds).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One scrape: every sample, keyed by its name with labels as written
/// (`pagerd_deliveries_total{outcome="reconciled"}`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub samples: BTreeMap<String, f64>,
}

impl Metrics {
    /// The sample named exactly `key`, 0 when absent.
    pub fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// `pagerd_deliveries_total{outcome="<outcome>"}` as an integer.
    pub fn deliveries(&self, outcome: &str) -> u64 {
        self.get(&format!("pagerd_deliveries_total{{outcome=\"{outcome}\"}}")) as u64
    }

    /// `pagerd_deliveries_pending`: claimed deliveries with no outcome yet.
    pub fn pending(&self) -> u64 {
        self.get("pagerd_deliveries_pending") as u64
    }

    /// Parse the Prometheus text format: `name{labels} value` lines, `#` comments skipped.
    pub fn parse(text: &str) -> Metrics {
        let mut samples = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some((key, value)) = line.rsplit_once(' ') {
                if let Ok(v) = value.parse::<f64>() {
                    samples.insert(key.trim().to_string(), v);
                }
            }
        }
        Metrics { samples }
    }
}

/// `GET /metrics` from `http` (a node's `listen.http`).
pub async fn scrape(http: SocketAddr) -> anyhow::Result<Metrics> {
    let fetch = async {
        let mut stream = TcpStream::connect(http)
            .await
            .with_context(|| format!("connect to {http}"))?;
        stream
            .write_all(
                format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .with_context(|| format!("send GET /metrics to {http}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .with_context(|| format!("read /metrics from {http}"))?;
        anyhow::Ok(raw)
    };
    let raw = tokio::time::timeout(SCRAPE_TIMEOUT, fetch)
        .await
        .with_context(|| format!("GET http://{http}/metrics: no answer in {SCRAPE_TIMEOUT:?}"))??;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!(
            "GET http://{http}/metrics: no end of headers in {} bytes",
            raw.len()
        );
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        bail!("GET http://{http}/metrics: {status}");
    }
    Ok(Metrics::parse(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_and_without_labels() {
        let m = Metrics::parse(
            "# HELP pagerd_deliveries_total Deliveries by outcome.\n\
             # TYPE pagerd_deliveries_total counter\n\
             pagerd_deliveries_total{outcome=\"reclaimed\"} 12\n\
             pagerd_deliveries_total{outcome=\"reconciled\"} 9\n\
             pagerd_deliveries_pending 3\n",
        );
        assert_eq!(m.deliveries("reclaimed"), 12);
        assert_eq!(m.deliveries("reconciled"), 9);
        assert_eq!(m.deliveries("sent"), 0);
        assert_eq!(m.pending(), 3);
    }
}
