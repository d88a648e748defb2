//! chaos-tests: real `pagerd` processes, real faults, invariant checks, and the benchmark.
//!
//! A scenario starts a [`cluster::Cluster`] of OS processes on loopback, pointed at a fake
//! Twilio and a real SMTP server living in the test process (`pager-fakes`), drives
//! it through the public gRPC API only, injects [`faults`], records what its clients saw in a
//! [`history::History`], and checks the [`invariants`] against the cluster's state and the
//! pages the providers received ([`pages`]). [`report`] prints one line per scenario. The
//! layout follows etcd's `tests/robustness` (faults / traffic / model / validate / report):
//!
//! - [`binary`]: find (or build once) the `pagerd` executable.
//! - [`browser`]: a headless Chromium over WebDriver (chromedriver), for the console's
//!   end-to-end tests.
//! - [`cluster`]: start, SIGKILL, SIGSTOP/SIGCONT, SIGTERM, wipe and restart nodes; wait for a
//!   leader or an applied index.
//! - [`proxy`]: the per-link proxies between nodes (partitions, latency) and the per-node
//!   gates to the providers (who sent a page; a provider down).
//! - [`client`]: gRPC clients of `pager.v1`.
//! - [`traffic`]: triggers and acknowledgements through the public API, as clients saw them.
//! - [`workload`]: on-call documents and the model of the pages they require.
//! - [`faults`]: process, network and provider faults, with the failover they cause.
//! - [`history`]: accepted events, acknowledgements, expected pages, faults, outages.
//! - [`elections`]: who led which term, from the nodes' logs.
//! - [`metrics`]: a node's `/metrics` (delivery counters, pending deliveries).
//! - [`pages`]: what the providers received, and from which node.
//! - [`invariants`]: one invariant per file.
//! - [`report`]: the scenario line.
//! - [`scenario`]: what every fault scenario shares (providers, proxies, document, traffic,
//!   the checks at the end); [`randomized`]: seeded faults and traffic; [`rng`]: its seeds.
//!
//! Scenarios are in `tests/`, numbered per area: `t10_real_processes` (paging across a leader
//! SIGKILL, acknowledgement, restart), `t20_partitions` (symmetric, asymmetric, leader in a
//! minority, latency), `t30_zombie_leader` (SIGSTOP past the election timeout, SIGCONT),
//! `t40_regions` (five nodes 2/2/1: a region killed; every node killed), `t50_restarts`
//! (rolling SIGTERM; a node wiped and re-added by snapshot), `t60_providers` (Twilio down,
//! 429, slow; SMTP down), `t70_randomized` (a seeded schedule of all of them; the long soak is
//! `examples/soak.rs`), `t81_browser` (the [`browser`] harness on a page the test serves),
//! `t90_issue_*` (reproductions of pagerd bugs). The benchmark is `src/bin/bench.rs`; the latest
//! figures are in the repository's `BENCHMARKS.md`, earlier runs in `BENCH-RESULTS.md`.
//!
//! Environment: `PAGERD_BIN` (the binary to run), `CHAOS_KEEP` (keep configs, logs and data),
//! `CHAOS_PAGERD_LOG` (the nodes' log filter), `CHROMEDRIVER` and `CHROMIUM` (the browser's
//! executables), `RUST_LOG` (this process's).

pub mod binary;
pub mod browser;
pub mod client;
pub mod cluster;
pub mod elections;
pub mod faults;
pub mod history;
pub mod invariants;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod randomized;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod traffic;
pub mod workload;

/// Log to the test's captured output; `RUST_LOG` overrides the default `info`. Idempotent.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
