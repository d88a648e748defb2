//! Calendar feeds over real HTTP on a three-node cluster: `OnCall.CalendarUrl`
//! gives a secret address every node serves as `text/calendar`, which an
//! independent parser (the `ical` crate) reads with the shifts of the next
//! 60 days; an override added later shows at the next read; rotating the
//! feed turns the old address into a 404 with a JSON reason while the new one
//! works; bad requests name their field.

mod common;

use common::Cluster;
use pager_proto::pager::v1 as pb;
use reqwest::StatusCode;
use std::io::BufReader;

const ONCALL: &str = r#"
[users.alice]
[users.bob]
[schedules.primary]
time_zone = "Europe/Berlin"
[[schedules.primary.layers]]
name = "weekly"
start = "2024-01-01T09:00:00"
rotation = "weekly"
users = ["alice", "bob"]
"#;

async fn url(
    c: &Cluster,
    node: usize,
    req: pb::CalendarUrlRequest,
) -> Result<String, tonic::Status> {
    pb::on_call_client::OnCallClient::new(c.channel(node).await)
        .calendar_url(req)
        .await
        .map(|r| r.into_inner().url)
}

/// The feed's events as (DTSTART, SUMMARY), or the status and body of a refusal.
async fn read(addr: &str) -> Result<Vec<(String, String)>, (StatusCode, String)> {
    let res = reqwest::get(addr).await.expect("the node answers");
    let status = res.status();
    let kind = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = res.text().await.expect("a body");
    if status != StatusCode::OK {
        return Err((status, body));
    }
    assert!(kind.starts_with("text/calendar"), "{kind}");
    let cal = ical::IcalParser::new(BufReader::new(body.as_bytes()))
        .next()
        .expect("a calendar")
        .expect("the feed parses");
    Ok(cal
        .events
        .iter()
        .map(|e| {
            let p = |n: &str| {
                e.properties
                    .iter()
                    .find(|p| p.name == n)
                    .and_then(|p| p.value.clone())
                    .unwrap_or_default()
            };
            (p("DTSTART"), p("SUMMARY"))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_feed_is_served_by_every_node_until_it_is_rotated() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let applied = c.apply(leader, ONCALL).await;
    for node in 1..=3 {
        c.applied(node, applied.commit_index).await;
    }
    let follower = c.follower(leader);
    let alice = || pb::CalendarUrlRequest {
        user: "alice".into(),
        ..Default::default()
    };
    let first = url(&c, follower, alice()).await.expect("an address");
    assert!(first.contains("/v1/calendar/user.alice.0."), "{first}");
    let http_of = |node: usize| format!("http://{}", c.addrs[node - 1].http);
    // The address names the node that gave it; every node serves the same feed.
    let path = &first[first.find("/v1/calendar/").unwrap()..];
    let mut seen = None;
    for node in 1..=3 {
        let events = read(&format!("{}{path}", http_of(node)))
            .await
            .expect("the feed");
        // Weekly turns for 60 days: alice has every other week, 4 or 5 shifts.
        assert!((4..=5).contains(&events.len()), "{events:?}");
        assert!(events.iter().all(|(_, s)| s == "On call: primary (alice)"));
        if let Some(prev) = &seen {
            assert_eq!(prev, &events, "node {node} serves the same shifts");
        }
        seen = Some(events);
    }

    // Rotate: the old address is gone, the new one works.
    let rotated = url(
        &c,
        follower,
        pb::CalendarUrlRequest {
            rotate: true,
            ..alice()
        },
    )
    .await
    .expect("a new address");
    assert_ne!(rotated, first);
    let (status, body) = read(&format!("{}{path}", http_of(leader)))
        .await
        .expect_err("the old address is refused");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let why: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert!(
        why["message"].as_str().unwrap().contains("rotated"),
        "{body}"
    );
    let new_path = &rotated[rotated.find("/v1/calendar/").unwrap()..];
    read(&format!("{}{new_path}", http_of(leader)))
        .await
        .expect("the new address works");
    // Asking again without rotating gives the same (new) address.
    assert_eq!(
        url(&c, leader, alice()).await.unwrap(),
        rotated.replace(&http_of(follower), &http_of(leader))
    );

    // A forged token and bad requests.
    let forged = new_path.replace("user.alice", "user.bob");
    assert_eq!(
        read(&format!("{}{forged}", http_of(leader)))
            .await
            .unwrap_err()
            .0,
        StatusCode::NOT_FOUND
    );
    let none = url(&c, leader, pb::CalendarUrlRequest::default())
        .await
        .unwrap_err();
    assert_eq!(none.code(), tonic::Code::InvalidArgument);
    assert!(none.message().starts_with("user:"), "{}", none.message());
    let unknown = url(
        &c,
        leader,
        pb::CalendarUrlRequest {
            schedule: "nope".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(
        unknown.message().starts_with("schedule:"),
        "{}",
        unknown.message()
    );
}
