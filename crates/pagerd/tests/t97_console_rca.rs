//! RCAs and the page board in the console, over real HTTP on a three-node
//! cluster: the RCA list names the signed-in user's, completing an empty RCA
//! is refused naming the field, a save lands (read your writes on a
//! follower), a stale form is refused rather than merged, the board counts
//! the card and refuses "complete" while a repair item is open, then moves
//! it once the item is done. Forms without the CSRF token and unknown RCAs
//! are refused with a page saying why.

mod common;

use common::agent::{Agent, Page};
use common::{trigger, Cluster};
use pager_core::{Command, RcaStatus, Stage, TokenRole};
use reqwest::StatusCode;

const ONCALL: &str = r#"
[users.alice]
email = "alice@example.com"
contact_methods = [ { name = "email", type = "email", address = "alice@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[teams.db]
members = ["alice"]
[escalation_policies.p]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[tiers.one]
ack_sla = "5m"
rca = "required"
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
team = "db"
tier = "one"
"#;

const ALICE_PW: &str = "alice-password-1";

fn base(c: &Cluster, id: usize) -> String {
    format!("http://{}", c.addrs[id - 1].http)
}

/// The value of the page's hidden `revision` field.
fn revision(page: &Page) -> String {
    let marker = r#"name="revision" value=""#;
    let at = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no revision field in:\n{}", page.body));
    let rest = &page.body[at + marker.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn rca(c: &Cluster, node: usize, id: u64) -> pager_core::Rca {
    c.node(node)
        .node
        .read(|s| s.rcas.get(&id).map(|r| (**r).clone()))
        .expect("the RCA exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rca_is_written_completed_and_its_card_moved_in_the_console() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let w = c
        .node(leader)
        .node
        .write(Command::SetPassword {
            at: 0,
            user: "alice".into(),
            role: TokenRole::Responder,
            phc: pagerd::edge::password::hash(ALICE_PW).unwrap(),
            by: "test".into(),
        })
        .await
        .unwrap();
    let sent = c
        .events(leader)
        .await
        .send(trigger("db-key-0001", "disk-db1"))
        .await
        .unwrap()
        .into_inner();
    let id = sent.incident_id;
    let resolved = c
        .node(leader)
        .node
        .write(Command::Resolve {
            at: 0,
            incident: id,
            by: "alice".into(),
        })
        .await
        .unwrap();
    for node in 1..=3 {
        c.applied(node, w.index.max(resolved.index)).await;
    }
    let follower = c.follower(leader);
    let url = |path: &str| format!("{}{path}", base(&c, follower));
    let mut alice = Agent::new();
    let signed = alice.sign_in(&base(&c, follower), "alice", ALICE_PW).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);

    // The list: alice's, still to write.
    let list = alice.get(&url("/rcas")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains(&format!(r#"id="rca-{id}""#)),
        "{}",
        list.body
    );
    assert!(list.body.contains("yours"), "{}", list.body);

    // Completing an empty RCA: refused, naming what is missing; nothing changes.
    let page = alice.get(&url(&format!("/rcas/{id}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();
    let first = revision(&page);
    let refused = alice
        .post(&url(&format!("/rcas/{id}/complete")), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("summary"), "{}", refused.body);
    assert_eq!(rca(&c, leader, id).status, RcaStatus::Mitigated);

    // A save with a repair item lands, and the follower shows it at once.
    let form = |rev: &str, repairs: &str| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("revision".to_string(), rev.to_string()),
            (
                "summary".to_string(),
                "log rotation stopped; no customer impact".to_string(),
            ),
            (
                "timeline".to_string(),
                "2026-12-07T09:15:00Z the disk filled".to_string(),
            ),
            ("repairs".to_string(), repairs.to_string()),
            ("assignee".to_string(), "alice".to_string()),
        ]
    };
    let open_item = "[ ] alert on disk growth | https://jira.example.com/browse/OPS-7";
    let fields = form(&first, open_item);
    let as_refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saved = alice
        .post(&url(&format!("/rcas/{id}/save")), &as_refs)
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location(), format!("/rcas/{id}?done=save"));
    let after = alice.get(&url(saved.location())).await;
    assert!(after.body.contains("Saved."), "{}", after.body);
    assert!(after.body.contains("OPS-7"), "{}", after.body);

    // The same form again (its revision is old now): refused, not applied twice.
    let stale = alice
        .post(&url(&format!("/rcas/{id}/save")), &as_refs)
        .await;
    assert_eq!(stale.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        stale.body.contains("someone changed this RCA"),
        "{}",
        stale.body
    );

    let done = alice
        .post(&url(&format!("/rcas/{id}/complete")), &[("csrf", &csrf)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let r = rca(&c, leader, id);
    assert_eq!(
        (r.status, r.stage),
        (RcaStatus::Completed, Stage::FollowUpsUnderway)
    );
    assert_eq!(r.completed_by, "alice");

    // The board: counted in its column; "complete" refused while the item is open.
    let board = alice.get(&url("/board?team=db")).await;
    assert_eq!(board.status, StatusCode::OK);
    assert!(
        board.body.contains(r#"id="count-follow_ups_underway">1<"#),
        "{}",
        board.body
    );
    assert!(board.body.contains(&format!(r#"id="card-{id}""#)));
    let move_to = |stage: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("stage", stage.to_string()),
            ("back", "board".to_string()),
            ("team", "db".to_string()),
        ]
    };
    let fields = move_to("complete");
    let as_refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = alice
        .post(&url(&format!("/rcas/{id}/move")), &as_refs)
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("repair item(s) still open"),
        "{}",
        refused.body
    );

    // Mark the item done (from a fresh form): the card follows, then completes.
    let page = alice.get(&url(&format!("/rcas/{id}"))).await;
    let fields = form(&revision(&page), &open_item.replacen("[ ]", "[x]", 1));
    let done_refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saved = alice
        .post(&url(&format!("/rcas/{id}/save")), &done_refs)
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(rca(&c, leader, id).stage, Stage::FollowUpsComplete);
    let moved = alice
        .post(&url(&format!("/rcas/{id}/move")), &as_refs)
        .await;
    assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.body);
    assert_eq!(moved.location(), "/board?done=move&team=db");
    let board = alice.get(&url(moved.location())).await;
    assert!(board.body.contains("Card moved."), "{}", board.body);
    assert!(
        board.body.contains(r#"id="count-complete">1<"#),
        "{}",
        board.body
    );

    // No CSRF token, an unknown RCA, a stage that does not exist.
    let forged = alice
        .post(&url(&format!("/rcas/{id}/move")), &[("stage", "new")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(rca(&c, leader, id).stage, Stage::Complete, "nothing moved");
    let missing = alice.get(&url("/rcas/999")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("no RCA record"), "{}", missing.body);
    let bad = alice
        .post(
            &url(&format!("/rcas/{id}/move")),
            &[("csrf", &csrf), ("stage", "done-ish")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("not a stage"), "{}", bad.body);

    // The page review: the last 7 days by default hold today's incident.
    let report = alice.get(&url("/reports")).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert!(
        report.body.contains(r#"<dd id="incidents">1</dd>"#),
        "{}",
        report.body
    );
    assert!(
        report.body.contains("disk full on db1"),
        "the alert is listed: {}",
        report.body
    );
    let bad_date = alice.get(&url("/reports?from=yesterday")).await;
    assert_eq!(bad_date.status, StatusCode::BAD_REQUEST);
    assert!(bad_date.body.contains("from:"), "{}", bad_date.body);
    let backwards = alice
        .get(&url("/reports?from=2026-12-07&to=2026-12-01"))
        .await;
    assert_eq!(backwards.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        backwards
            .body
            .contains("to: the range ends before it starts"),
        "{}",
        backwards.body
    );
}
