//! The long randomized run (soak): traffic and a seeded schedule of every kind of fault for
//! `--duration`, then every invariant and the report line. Exits non-zero, printing the seed
//! and the command that reproduces the run, when an invariant broke.
//!
//! ```text
//! cargo run -p chaos-tests --release --example soak -- --duration 30m
//! cargo run -p chaos-tests --release --example soak -- --duration 2h --nodes 5 --seed 42
//! ```
//!
//! A release build runs `target/release/pagerd` (built first if missing or stale); set
//! `PAGERD_BIN` to run another. `CHAOS_KEEP=1` keeps the nodes' configs, logs and data.

use chaos_tests::randomized::{self, RandomOptions};
use chaos_tests::rng::Rng;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Randomized faults against real pagerd processes, then every invariant")]
struct Args {
    /// How long faults keep coming: 45s, 30m, 2h.
    #[arg(long, default_value = "30m")]
    duration: String,
    /// The seed of the schedule; drawn from the clock when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// 3, or 5 (regions 2/2/1; whole regions are killed too).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let duration = match randomized::parse_duration(&args.duration) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("soak: --duration: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if args.nodes != 3 && args.nodes != 5 {
        eprintln!("soak: --nodes must be 3 or 5");
        return std::process::ExitCode::FAILURE;
    }
    let seed = args.seed.unwrap_or_else(Rng::fresh_seed);
    let opts = RandomOptions {
        seed,
        duration,
        nodes: args.nodes,
        repro: format!(
            "cargo run -p chaos-tests --release --example soak -- --duration {} --nodes {} --seed {seed}",
            args.duration, args.nodes
        ),
    };
    match randomized::run(opts).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        // The report line, the violations, the seed and the command are printed already.
        Err(_) => std::process::ExitCode::FAILURE,
    }
}
