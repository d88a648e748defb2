//! `pagerd`: run one node. With no `--config`, a single-node cluster under
//! `./data` that prints the pages it would send.

// An unwrap outside tests is a crash on input or I/O: return the error instead.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "pagerd",
    version,
    about = "A self-hosted paging system that cannot go down"
)]
struct Args {
    /// Node config (TOML). Later layers: PAGERD_* environment variables, `__` for nesting.
    #[arg(long, env = "PAGERD_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration, print a summary and exit.
    #[arg(long)]
    check_config: bool,
    /// Seed this node's empty data dir from a backup (`pagerctl cluster
    /// snapshot --out FILE`) and exit; then start the node normally and add
    /// the others to it. For rebuilding a cluster that lost its majority.
    #[arg(long, value_name = "FILE")]
    restore_from: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let cfg = match pagerd::config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pagerd: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.check_config {
        println!(
            "configuration ok: node {} in region {}, client {}, peer {}, http {}",
            cfg.node_id, cfg.region, cfg.client_listen, cfg.peer_listen, cfg.http_listen
        );
        let on = |b: bool| if b { "on" } else { "off" };
        println!(
            "tls: client port {}, peer mutual TLS {}",
            on(cfg.client_tls.is_some()),
            on(cfg.peer_tls.is_some())
        );
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(backup) = &args.restore_from {
        let restored = tokio::runtime::Runtime::new()
            .context("start runtime")
            .and_then(|rt| rt.block_on(pagerd::restore(&cfg, backup)));
        return match restored {
            Ok(info) => {
                println!(
                    "restored index {} (term {}, {} bytes, sha256 {}) into {} as node {} alone; \
                     start it, then add the other nodes with `pagerctl cluster add-node`",
                    info.index,
                    info.term,
                    info.bytes,
                    info.sha256,
                    cfg.data_dir.display(),
                    cfg.node_id
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pagerd: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let filter =
        EnvFilter::try_from_env("PAGERD_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.log.filter));
    if cfg.log.format == "json" {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pagerd: start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("pagerd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cfg: pagerd::config::NodeConfig) -> anyhow::Result<()> {
    let listeners = pagerd::Listeners::bind(&cfg).await?;
    let running = pagerd::start(cfg, listeners).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("install SIGTERM handler")?;
    // SIGHUP: re-read the TLS certificate files now (they are also polled).
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("install SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading TLS certificates");
                running.reload_tls().await;
            }
        }
    }
    tracing::info!("shutting down");
    // A leader hands over first, so escalations do not wait out an election
    // timeout (rolling upgrades); bounded by the transfer budget.
    if let Some(to) = running.step_down().await {
        tracing::info!(to, "handed leadership over");
    }
    running.shutdown().await;
    Ok(())
}
