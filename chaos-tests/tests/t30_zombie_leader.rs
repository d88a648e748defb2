//! A zombie leader: the leader is SIGSTOPped past the election timeout while traffic flows,
//! the others elect a new leader, then it gets SIGCONT and wakes believing it still leads.
//!
//! To give the zombie something to send when it wakes, SMS are paced (10 a second, account
//! wide) and a burst of incidents goes to the leader just before the pause: it holds claimed
//! pages waiting for their slot (noted from its `pagerd_deliveries_pending`, and asserted).
//! When it wakes, those slots are long past; it must not send them (its lease ran out: the
//! new leader re-claimed them). Every page any provider received is checked against who led
//! which term (`only-the-leader-pages`: each node reaches Twilio and SMTP from its own
//! address, so every page is attributed to its sender), then every other invariant.
//!
//! The failover bound is 5 s here: an election (up to 1 s of timeout, then a vote), the
//! reconciliation grace of SMS in doubt (500 ms), and the paced backlog (up to 1 s).
//!
//! Run: `cargo test -p chaos-tests --test t30_zombie_leader -- --nocapture`

use chaos_tests::faults;
use chaos_tests::scenario::{Scenario, ScenarioOptions};
use std::time::Duration;
use tracing::info;

const BURST: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_wakes_up_and_pages_nobody() {
    let mut s = Scenario::start(
        "t30_zombie_leader",
        ScenarioOptions {
            messages_per_second: 10.0,
            failover_bound: Duration::from_secs(5),
            ..ScenarioOptions::default()
        },
    )
    .await
    .expect("three nodes behind proxies");
    let wait = s.opts.wait;
    let traffic = s.traffic(30).expect("traffic");
    s.run_for(Duration::from_secs(2)).await;

    for round in 1..=2 {
        let leader = s.cluster.wait_for_leader(wait).await.expect("a leader");
        s.burst(leader.id, BURST)
            .await
            .expect("a burst of incidents");
        // The zombie wakes this long after the new leader's election: well past the slack the
        // check allows a deposed leader's last page (750 ms).
        let hold = Duration::from_millis(1_500);
        info!(
            round,
            hold_ms = hold.as_millis() as u64,
            "--- SIGSTOP the leader"
        );
        let z = faults::pause_leader(&mut s.cluster, &mut s.history, hold, wait)
            .await
            .expect("a new leader while the old one is stopped");
        info!(
            zombie = z.old.id,
            new = z.new.id,
            election_ms = z.election.as_millis() as u64,
            "--- SIGCONT: the zombie woke up"
        );
        assert_ne!(z.new.id, z.old.id);
        assert!(z.new.term > z.old.term);
        s.run_for(Duration::from_secs(2)).await;
    }
    let held: Vec<u64> = s.history.in_flight.iter().map(|f| f.pending).collect();
    assert!(
        held.iter().any(|&n| n > 0),
        "the zombie held no claimed page at any pause ({held:?}): the scenario tested nothing"
    );

    s.finish(traffic).await.expect("every invariant holds");
}
