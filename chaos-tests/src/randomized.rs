//! A randomized run: the scenario's traffic, and faults drawn one after another from every
//! kind [`crate::faults`] has, with random holds and pauses between them, until the run's
//! duration is spent; then every invariant.
//!
//! Everything random comes from one seed ([`Rng`]): the fault schedule, the traffic's choices
//! of node and of incidents to acknowledge. The processes' timing is not reproducible, so a
//! seed replays the same schedule, not the same interleaving; a failure that depends on a
//! race may need a few runs of its seed. A run that fails prints its seed and the command that
//! reproduces it ([`RandomOptions::repro`]).
//!
//! Used by `tests/t70_randomized.rs` (a short run in CI) and `examples/soak.rs` (the long one:
//! `cargo run -p chaos-tests --release --example soak -- --duration 30m`).

use crate::cluster::TAIL_LINES;
use crate::faults;
use crate::report::ScenarioReport;
use crate::rng::Rng;
use crate::scenario::{Scenario, ScenarioOptions};
use anyhow::Context as _;
use std::time::{Duration, Instant};

/// Environment variable the test reads its seed from.
pub const SEED_ENV: &str = "CHAOS_SEED";
/// Environment variable the test reads its duration from (`45s`, `10m`, `2h`, or seconds).
pub const DURATION_ENV: &str = "CHAOS_DURATION";

#[derive(Debug, Clone)]
pub struct RandomOptions {
    pub seed: u64,
    /// How long faults keep coming (the run then lets the last deadlines pass and checks).
    pub duration: Duration,
    /// 3, or 5 (then in regions 2/2/1, and whole regions may be killed).
    pub nodes: usize,
    /// How to run this again: the command printed with the seed.
    pub repro: String,
}

/// A kind of fault the run may draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    KillLeader,
    KillFollower,
    PauseLeader,
    IsolateLeader,
    PartitionFollower,
    CutLeaderOutgoing,
    Latency,
    TwilioDown,
    Twilio429,
    TwilioSlow,
    SmtpDown,
    RollingRestart,
    WipeFollower,
    KillRegion,
    KillAll,
}

/// Each kind with its weight (how often it is drawn relative to the others).
const KINDS: [(Kind, u64); 15] = [
    (Kind::KillLeader, 4),
    (Kind::KillFollower, 2),
    (Kind::PauseLeader, 4),
    (Kind::IsolateLeader, 4),
    (Kind::PartitionFollower, 2),
    (Kind::CutLeaderOutgoing, 3),
    (Kind::Latency, 2),
    (Kind::TwilioDown, 2),
    (Kind::Twilio429, 2),
    (Kind::TwilioSlow, 2),
    (Kind::SmtpDown, 2),
    (Kind::RollingRestart, 1),
    (Kind::WipeFollower, 1),
    (Kind::KillRegion, 2),
    (Kind::KillAll, 1),
];

/// Draw a kind that `nodes` nodes can take.
pub fn draw(rng: &mut Rng, nodes: usize) -> Kind {
    let usable: Vec<(Kind, u64)> = KINDS
        .iter()
        .copied()
        .filter(|(k, _)| *k != Kind::KillRegion || nodes >= 5)
        .collect();
    let total: u64 = usable.iter().map(|(_, w)| w).sum();
    let mut x = rng.below(total);
    for (k, w) in &usable {
        if x < *w {
            return *k;
        }
        x -= w;
    }
    Kind::KillLeader
}

/// `45s`, `10m`, `2h`, `1500ms`, or a number of seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 45s, 10m or 2h"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => anyhow::bail!("{s:?}: unknown unit {other:?} (ms, s, m, h)"),
    })
}

/// Run; prints the seed first, and with an error, the command that reproduces the run.
pub async fn run(opts: RandomOptions) -> anyhow::Result<ScenarioReport> {
    println!(
        "randomized: seed={} duration={:?} nodes={}",
        opts.seed, opts.duration, opts.nodes
    );
    let result = run_inner(&opts).await;
    if let Err(e) = &result {
        println!(
            "randomized run failed with seed {}: {e:#}\nreproduce with: {}",
            opts.seed, opts.repro
        );
    }
    result
}

async fn run_inner(opts: &RandomOptions) -> anyhow::Result<ScenarioReport> {
    let mut rng = Rng::new(opts.seed);
    let five = opts.nodes >= 5;
    let regions = if five {
        ["us-east", "us-east", "eu-west", "eu-west", "ap-south"]
            .iter()
            .map(|r| r.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let name = format!("randomized-seed-{}", opts.seed);
    let mut s = Scenario::start(
        &name,
        ScenarioOptions {
            nodes: if five { 5 } else { 3 },
            regions,
            // Small, so a wiped node catches up by snapshot.
            snapshot_every_entries: Some(200),
            // A random schedule may stack faults (a partition right after a kill): one
            // election more than the scenarios with one fault at a time.
            failover_bound: Duration::from_secs(6),
            ..ScenarioOptions::default()
        },
    )
    .await?;
    let wait = s.opts.wait;
    let traffic = s.traffic(rng.next_u64())?;
    let started = Instant::now();
    s.run_for(Duration::from_secs(2)).await;
    let mut n = 0;
    while started.elapsed() < opts.duration {
        n += 1;
        let kind = draw(&mut rng, opts.nodes);
        let hold = Duration::from_millis(rng.between(1_000, 3_000));
        tracing::info!(n, ?kind, hold_ms = hold.as_millis() as u64, "--- fault");
        if let Err(e) = apply(&mut s, &mut rng, kind, hold, wait).await {
            s.cluster.print_log_tails(TAIL_LINES);
            s.cluster.keep();
            return Err(e.context(format!("fault #{n}: {kind:?}")));
        }
        s.run_for(Duration::from_millis(rng.between(500, 2_000)))
            .await;
    }
    s.finish(traffic).await
}

async fn apply(
    s: &mut Scenario,
    rng: &mut Rng,
    kind: Kind,
    hold: Duration,
    wait: Duration,
) -> anyhow::Result<()> {
    let (c, h) = (&mut s.cluster, &mut s.history);
    match kind {
        Kind::KillLeader => {
            let leader = c.wait_for_leader(wait).await?;
            faults::note_in_flight(c, h, "kill-leader", leader.id).await;
            let k = faults::kill_known_leader(c, h, leader, wait).await?;
            tokio::time::sleep(hold).await;
            faults::restart(c, h, k.old.id, wait).await?;
        }
        Kind::KillFollower => {
            let leader = c.wait_for_leader(wait).await?;
            let followers: Vec<u64> = c.live().into_iter().filter(|&i| i != leader.id).collect();
            let id = *rng.pick(&followers).context("no follower")?;
            let killed = c.kill(id)?;
            h.faults.push(crate::history::FaultRecord {
                kind: "kill-follower".into(),
                node: id,
                at: killed.wall,
                failover: None,
            });
            tokio::time::sleep(hold).await;
            faults::restart(c, h, id, wait).await?;
        }
        Kind::PauseLeader => {
            faults::pause_leader(c, h, hold, wait).await?;
        }
        Kind::IsolateLeader => {
            faults::isolate_leader(c, h, hold, wait).await?;
        }
        Kind::PartitionFollower => {
            faults::partition_follower(c, h, hold, wait).await?;
        }
        Kind::CutLeaderOutgoing => {
            faults::cut_leader_outgoing(c, h, hold, wait).await?;
        }
        Kind::Latency => {
            let latency = Duration::from_millis(rng.between(10, 80));
            faults::slow_links(c, h, latency, hold, wait).await?;
        }
        Kind::TwilioDown => faults::twilio_down(c, h, hold).await?,
        Kind::Twilio429 => {
            let n = rng.between(2, 8) as usize;
            faults::twilio_429(&s.twilio, h, n, hold * 2).await?;
        }
        Kind::TwilioSlow => {
            let n = rng.between(1, 4) as usize;
            let delay = Duration::from_millis(rng.between(500, 3_000));
            faults::twilio_slow(&s.twilio, h, n, delay, hold * 2).await?;
        }
        Kind::SmtpDown => faults::smtp_down(&s.smtp, h, hold).await?,
        Kind::RollingRestart => {
            faults::rolling_restart(c, h, wait).await?;
        }
        Kind::WipeFollower => {
            let leader = c.wait_for_leader(wait).await?;
            let followers: Vec<u64> = c.live().into_iter().filter(|&i| i != leader.id).collect();
            let id = *rng.pick(&followers).context("no follower")?;
            faults::wipe_and_rejoin(c, h, id, wait).await?;
        }
        Kind::KillRegion => {
            let regions = ["us-east", "eu-west", "ap-south"];
            let region = *rng.pick(&regions).context("no region")?;
            let dead = faults::kill_region(c, h, region, wait).await?;
            tokio::time::sleep(hold).await;
            for id in dead {
                faults::restart(c, h, id, wait).await?;
            }
        }
        Kind::KillAll => {
            faults::kill_all_and_restart(c, h, hold, wait).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn the_schedule_follows_the_seed_and_fits_the_cluster() {
        let draws = |seed, nodes| {
            let mut rng = Rng::new(seed);
            (0..200).map(|_| draw(&mut rng, nodes)).collect::<Vec<_>>()
        };
        assert_eq!(draws(9, 3), draws(9, 3));
        assert!(
            !draws(9, 3).contains(&Kind::KillRegion),
            "3 nodes have no 2-node region"
        );
        assert!(draws(9, 5).contains(&Kind::KillRegion));
    }
}
