//! The web console over real HTTP on a three-node cluster (the browser tests
//! are in chaos-tests): signing in on one node and acting on another as that
//! user, CSRF, expired, foreign and revoked sessions, a responder trying an
//! admin's part, sign-in limits, bad input, security headers, and the live
//! list's event stream with its resume.

mod common;

use common::agent::Agent;
use common::{trigger, Cluster};
use pager_core::{Command, IncidentStatus, TokenRole};
use pagerd::edge::console::session::{self, Claims};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use std::time::Duration;

const ONCALL: &str = r#"
[users.alice]
contact_methods = [
  { name = "email", type = "email", address = "alice@example.com" },
  { name = "phone", type = "sms", address = "+15550100001" },
]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[users.bob]
contact_methods = [ { name = "email", type = "email", address = "bob@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[users.carol]
email = "carol@example.com"
contact_methods = [ { name = "sms", type = "sms", address = "+15550100003" } ]
notification_rules.high = [ { after = "1h", contact = "sms" } ]
[users.ops]
contact_methods = [ { name = "email", type = "email", address = "ops@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "email" } ]
[schedules.primary]
time_zone = "UTC"
[[schedules.primary.layers]]
name = "weekly"
start = "2024-01-01T00:00:00"
rotation = "weekly"
users = ["bob"]
[escalation_policies.p]
levels = [ { escalate_after = "1h", targets = [ { schedule = "primary" } ] } ]
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
"#;

const ALICE_PW: &str = "alice-password-1";
const OPS_PW: &str = "ops-password-0001";
const BOB_PW: &str = "bob-password-0001";

fn base(c: &Cluster, id: usize) -> String {
    format!("http://{}", c.addrs[id - 1].http)
}

/// A cluster with the document, alice (responder) and ops (admin) able to
/// sign in, and one triggered incident. Returns the leader.
async fn cluster() -> (Cluster, usize) {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    for (user, pw, role) in [
        ("alice", ALICE_PW, TokenRole::Responder),
        ("ops", OPS_PW, TokenRole::Admin),
        ("bob", BOB_PW, TokenRole::Responder),
    ] {
        let w = c
            .node(leader)
            .node
            .write(Command::SetPassword {
                at: 0,
                user: user.into(),
                role,
                phc: pagerd::edge::password::hash(pw).unwrap(),
                by: "test".into(),
            })
            .await
            .unwrap();
        for id in 1..=3 {
            c.applied(id, w.index).await;
        }
    }
    let r = c
        .events(leader)
        .await
        .send(trigger("web-key-0001", "cpu-web1"))
        .await
        .unwrap()
        .into_inner();
    for id in 1..=3 {
        c.applied(id, r.commit_index).await;
    }
    (c, leader)
}

fn incident(c: &Cluster, node: usize, id: u64) -> std::sync::Arc<pager_core::Incident> {
    c.node(node)
        .node
        .read(|s| s.incidents.get(&id).cloned())
        .expect("incident exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_on_one_node_and_acts_on_another_as_themselves() {
    let (c, leader) = cluster().await;
    let follower = c.follower(leader);
    let mut alice = Agent::new();
    let signed = alice.sign_in(&base(&c, follower), "alice", ALICE_PW).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/incidents");
    let cookie = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("pagerd_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");

    // The same cookie works on the leader: every node checks it.
    let list = alice.get(&format!("{}/incidents", base(&c, leader))).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains(r#"id="incident-1""#), "{}", list.body);
    assert!(list.body.contains("disk full on db1"));
    // A triggered row is acknowledged in one tap, with this session's token.
    assert!(
        list.body
            .contains(r#"action="/incidents/1/acknowledge" class="quick-ack""#),
        "{}",
        list.body
    );
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(list.headers[h], v, "{h}");
    }
    let csp = list.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!list.body.contains("<script>"), "no inline script");

    // Acknowledge from the follower's page: one write, named after alice.
    let page = alice
        .get(&format!("{}/incidents/1", base(&c, follower)))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    let acked = alice
        .post(
            &format!("{}/incidents/1/acknowledge", base(&c, follower)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(acked.status, StatusCode::SEE_OTHER, "{}", acked.body);
    assert_eq!(acked.location(), "/incidents/1?done=acknowledge");
    // Read-your-writes: the follower's page shows the acknowledgement at once.
    let after = alice
        .get(&format!("{}{}", base(&c, follower), acked.location()))
        .await;
    assert!(after.body.contains("Acknowledged."), "{}", after.body);
    assert!(
        after
            .body
            .contains(r#"<span class="by">alice</span> <span class="what">acknowledged"#),
        "{}",
        after.body
    );
    let inc = incident(&c, follower, 1);
    assert_eq!(inc.status, IncidentStatus::Acknowledged);
    assert_eq!(inc.acknowledged_by, "alice");

    // A note, sent twice (a retry): written once, by alice.
    for _ in 0..2 {
        let noted = alice
            .post(
                &format!("{}/incidents/1/note", base(&c, follower)),
                &[("csrf", &csrf), ("text", "restarted the web tier")],
            )
            .await;
        assert_eq!(noted.status, StatusCode::SEE_OTHER, "{}", noted.body);
    }
    let notes: Vec<_> = incident(&c, leader, 1)
        .timeline
        .iter()
        .filter(|t| t.what == "note: restarted the web tier")
        .map(|t| t.by.clone())
        .collect();
    assert_eq!(notes, vec!["alice".to_string()]);

    // A rejected action shows why, with a 4xx, and changes nothing.
    let bad = alice
        .post(
            &format!("{}/incidents/1/merge", base(&c, follower)),
            &[("csrf", &csrf), ("into", "99")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND, "{}", bad.body);
    assert!(bad.body.contains(r#"id="error""#), "{}", bad.body);
    assert_eq!(incident(&c, leader, 1).status, IncidentStatus::Acknowledged);

    // Sign out: the cookie goes and pages send the browser to sign in.
    let out = alice
        .post(
            &format!("{}/logout", base(&c, follower)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let again = alice
        .get(&format!("{}/incidents", base(&c, follower)))
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert!(
        again.location().starts_with("/login?why=missing"),
        "{}",
        again.location()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_this_sessions_csrf_token_are_refused_and_change_nothing() {
    let (c, leader) = cluster().await;
    let url = base(&c, leader);
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    let missing = alice
        .post(&format!("{url}/incidents/1/acknowledge"), &[])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.body);
    assert!(
        missing.body.contains("Nothing was changed"),
        "{}",
        missing.body
    );
    let forged = alice
        .post(
            &format!("{url}/incidents/1/resolve"),
            &[("csrf", "Zm9yZ2VkLXRva2Vu")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A token from an earlier session of the same user is stale.
    let old = alice.get(&format!("{url}/incidents/1")).await.csrf();
    let mut again = Agent::new();
    again.sign_in(&url, "alice", ALICE_PW).await;
    let stale = again
        .post(&format!("{url}/incidents/1/resolve"), &[("csrf", &old)])
        .await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    // The sign-in form has its own token.
    let mut stranger = Agent::new();
    let login = stranger
        .post(
            &format!("{url}/login"),
            &[("user", "alice"), ("password", ALICE_PW), ("csrf", "x")],
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key(session::COOKIE));
    assert_eq!(incident(&c, leader, 1).status, IncidentStatus::Triggered);
    c.shutdown().await;
}

/// A session cookie as a node would sign it, with `key`.
fn forge(key: &[u8], user: &str, version: u64, expires: u64) -> String {
    pagerd::edge::links::seal(
        key,
        &Claims {
            user: user.into(),
            version,
            expires,
            nonce: "n".into(),
            seen: 0,
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_foreign_and_revoked_sessions_are_refused() {
    let (c, leader) = cluster().await;
    let url = base(&c, leader);
    let (link_key, version) = c.node(leader).node.read(|s| {
        (
            s.link_key.expose().to_string(),
            s.credentials["alice"].sessions_version,
        )
    });
    let key = session::key(&link_key).unwrap();
    let now = pagerd::node::now_ms();
    let cases = [
        ("expired", forge(&key, "alice", version, now - 1)),
        (
            "invalid",
            forge(
                &session::key("another cluster").unwrap(),
                "alice",
                version,
                now + 60_000,
            ),
        ),
        ("revoked", forge(&key, "alice", version - 1, now + 60_000)),
    ];
    for (why, cookie) in cases {
        let mut a = Agent::new();
        a.cookies.insert(session::COOKIE.into(), cookie);
        let page = a.get(&format!("{url}/incidents/1")).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{why}");
        assert!(
            page.location()
                .starts_with(&format!("/login?why={why}&next=%2Fincidents%2F1")),
            "{why}: {}",
            page.location()
        );
        let post = a
            .post(&format!("{url}/incidents/1/acknowledge"), &[("csrf", "x")])
            .await;
        assert_eq!(post.status, StatusCode::UNAUTHORIZED, "{why}");
    }
    // The sign-in page says why.
    let mut a = Agent::new();
    let login = a.get(&format!("{url}/login?why=expired")).await;
    assert!(
        login.body.contains("Your session expired"),
        "{}",
        login.body
    );

    // A good session, then an admin signs alice out everywhere.
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    assert_eq!(
        alice.get(&format!("{url}/incidents")).await.status,
        StatusCode::OK
    );
    let w = c
        .node(leader)
        .node
        .write(Command::RevokeSessions {
            at: 0,
            user: "alice".into(),
            by: "ops".into(),
        })
        .await
        .unwrap();
    c.applied(leader, w.index).await;
    let gone = alice.get(&format!("{url}/incidents")).await;
    assert!(
        gone.location().starts_with("/login?why=revoked"),
        "{}",
        gone.location()
    );
    assert_eq!(incident(&c, leader, 1).status, IncidentStatus::Triggered);

    // Signed in again, then the document drops alice: her session ends at once.
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    assert_eq!(
        alice.get(&format!("{url}/incidents")).await.status,
        StatusCode::OK
    );
    let start = ONCALL.find("[users.alice]").unwrap();
    let end = ONCALL.find("[users.bob]").unwrap();
    let without = format!("{}{}", &ONCALL[..start], &ONCALL[end..]);
    let applied = c.apply(leader, &without).await;
    c.applied(leader, applied.commit_index).await;
    let gone = alice.get(&format!("{url}/incidents")).await;
    assert!(
        gone.location().starts_with("/login?why=revoked"),
        "{}",
        gone.location()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_cannot_do_an_admins_part() {
    let (c, leader) = cluster().await;
    let url = base(&c, leader);
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    let cluster = alice.get(&format!("{url}/cluster")).await;
    assert_eq!(cluster.status, StatusCode::FORBIDDEN, "{}", cluster.body);
    assert!(!alice
        .get(&format!("{url}/incidents"))
        .await
        .body
        .contains(r#"href="/cluster""#));
    let oncall = alice.get(&format!("{url}/oncall")).await;
    assert!(
        oncall.body.contains(r#"<strong class="now">bob</strong>"#),
        "{}",
        oncall.body
    );
    let csrf = oncall.csrf();
    let version = c.node(leader).node.read(|s| s.config_version);
    // Moving bob's shift to ops is neither alice's page nor her shift.
    let refused = alice
        .post(
            &format!("{url}/oncall/override"),
            &[
                ("csrf", &csrf),
                ("schedule", "primary"),
                ("user", "ops"),
                ("replaces", "bob"),
                ("hours", "2"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(c.node(leader).node.read(|s| s.config_version), version);
    // Taking the page herself is hers to do.
    let taken = alice
        .post(
            &format!("{url}/oncall/override"),
            &[
                ("csrf", &csrf),
                ("schedule", "primary"),
                ("user", "alice"),
                ("hours", "2"),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::SEE_OTHER, "{}", taken.body);
    let now = alice.get(&format!("{url}/oncall?done=override")).await;
    assert!(
        now.body.contains(r#"<strong class="now">alice</strong>"#),
        "{}",
        now.body
    );
    assert!(now.body.contains("Override added."));

    let mut ops = Agent::new();
    ops.sign_in(&url, "ops", OPS_PW).await;
    let cluster = ops.get(&format!("{url}/cluster")).await;
    assert_eq!(cluster.status, StatusCode::OK, "{}", cluster.body);
    assert!(
        cluster.body.contains(&format!("node {leader} (leader)")),
        "{}",
        cluster.body
    );
    assert!(
        cluster.body.contains(r#"<dd id="quorum">yes</dd>"#),
        "{}",
        cluster.body
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_bad_input_and_too_many_attempts_get_a_page_saying_why() {
    let (c, leader) = cluster().await;
    let url = base(&c, leader);
    let mut mallory = Agent::new();
    let wrong = mallory.sign_in(&url, "alice", "not-her-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password."));
    let unknown = mallory.sign_in(&url, "nobody", "whatever-password").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    // Five attempts a minute per user: the sixth is refused before checking.
    let mut last = StatusCode::OK;
    for _ in 0..5 {
        last = mallory.sign_in(&url, "alice", "still-not-it").await.status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let limited = mallory.sign_in(&url, "alice", ALICE_PW).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(!mallory.cookies.contains_key(session::COOKIE));

    let mut ops = Agent::new();
    ops.sign_in(&url, "ops", OPS_PW).await;
    for (path, status) in [
        ("/incidents/77", StatusCode::NOT_FOUND),
        ("/incidents/seven", StatusCode::NOT_FOUND),
        ("/incidents?status=sleeping", StatusCode::BAD_REQUEST),
        ("/nowhere", StatusCode::NOT_FOUND),
    ] {
        let page = ops.get(&format!("{url}{path}")).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(
            page.body.contains(r#"id="problem-detail""#),
            "{path}: {}",
            page.body
        );
    }
    let csrf = ops.get(&format!("{url}/incidents/1")).await.csrf();
    let snooze = ops
        .post(
            &format!("{url}/incidents/1/snooze"),
            &[("csrf", &csrf), ("minutes", "0")],
        )
        .await;
    assert_eq!(snooze.status, StatusCode::BAD_REQUEST, "{}", snooze.body);
    assert!(snooze.body.contains("Snooze for 1 minute to 24 hours."));
    assert_eq!(incident(&c, leader, 1).status, IncidentStatus::Triggered);
    c.shutdown().await;
}

/// The next server-sent event of `res`: (event, id, data).
async fn next_event(res: &mut reqwest::Response, buf: &mut String) -> (String, String, String) {
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.into();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.into();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                return (event, id, data);
            }
            continue; // a keep-alive comment
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_list_streams_changes_and_resumes_from_the_last_revision() {
    let (c, leader) = cluster().await;
    let follower = c.follower(leader);
    let url = base(&c, follower);
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    let list = alice.get(&format!("{url}/incidents")).await;
    let at = list.body.find(r#"data-revision=""#).unwrap() + r#"data-revision=""#.len();
    let revision: u64 = list.body[at..at + list.body[at..].find('"').unwrap()]
        .parse()
        .unwrap();
    let open = |from: String| {
        alice
            .http
            .get(format!("{url}/incidents/stream?status=open&from={from}"))
            .header(COOKIE, alice.cookie_header())
            .send()
    };
    let mut res = open(revision.to_string()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut buf = String::new();

    // A new incident appears as an upsert of its rendered row.
    let r = c
        .events(leader)
        .await
        .send(trigger("web-key-0001", "disk-web2"))
        .await
        .unwrap()
        .into_inner();
    let (event, id, data) = next_event(&mut res, &mut buf).await;
    assert_eq!(event, "upsert");
    assert!(
        data.contains(&format!(r#"id="incident-{}""#, r.incident_id)),
        "{data}"
    );
    assert!(data.contains("status-triggered"));
    let seen: u64 = id.parse().unwrap();

    // Resolving it leaves the "open" filter: a remove.
    let resolved = c
        .incidents(leader)
        .await
        .resolve(pager_proto::pager::v1::IncidentActionRequest {
            id: r.incident_id,
            by: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (event, id, data) = next_event(&mut res, &mut buf).await;
    assert_eq!(
        (event.as_str(), data),
        ("remove", r.incident_id.to_string())
    );
    // The id is the index the pass read through: at or after the resolve.
    assert!(id.parse::<u64>().unwrap() >= resolved.commit_index, "{id}");
    drop(res);

    // Reconnecting with the id before the resolve replays it.
    let mut again = open(seen.to_string()).await.unwrap();
    let mut buf = String::new();
    let (event, _, data) = next_event(&mut again, &mut buf).await;
    assert_eq!(
        (event.as_str(), data),
        ("remove", r.incident_id.to_string())
    );

    // Many incidents in one log entry (a batch packs them) all arrive: a
    // list must not stop at the first incident of an entry.
    let events: Vec<_> = (0..30)
        .map(|n| trigger("web-key-0001", &format!("batch-{n}")))
        .collect();
    let sent = c
        .events(leader)
        .await
        .send_batch(pager_proto::pager::v1::SendBatchRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.results.len(), 30);
    // Each is a row, or (more than 20 in one pass: a storm) counted in a
    // "many" event that offers a reload; none is left out.
    let mut seen_rows = std::collections::BTreeSet::new();
    let mut counted = 0;
    while seen_rows.len() + counted < 30 {
        let (event, _, data) = next_event(&mut again, &mut buf).await;
        match event.as_str() {
            "upsert" => {
                let at = data.find(r#"data-id=""#).unwrap() + r#"data-id=""#.len();
                seen_rows.insert(data[at..at + data[at..].find('"').unwrap()].to_string());
            }
            "many" => counted += data.parse::<usize>().unwrap(),
            other => panic!("unexpected {other} event"),
        }
    }
    assert_eq!(seen_rows.len() + counted, 30);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_reads_in_the_console_and_a_shift_is_swapped_from_its_week() {
    let (c, leader) = cluster().await;
    let url = base(&c, c.follower(leader));
    let mut bob = Agent::new();
    bob.sign_in(&url, "bob", BOB_PW).await;
    let services = bob.get(&format!("{url}/services")).await;
    assert_eq!(services.status, StatusCode::OK);
    assert!(
        services.body.contains(r#"<a href="/services/web">web</a>"#),
        "{}",
        services.body
    );
    assert!(
        services.body.contains("schedule primary; then after 1h"),
        "{}",
        services.body
    );
    assert!(services.body.contains("…0001") && !services.body.contains("web-key-0001"));

    // The plan a trigger would page: bob, by email, an hour in (his rule).
    let plan = bob.get(&format!("{url}/services/web")).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert!(
        plan.body
            .contains("<td>1h</td><td>1</td><td>bob</td><td>email</td>"),
        "{}",
        plan.body
    );
    assert_eq!(
        bob.get(&format!("{url}/services/nope")).await.status,
        StatusCode::NOT_FOUND
    );

    // The week: bob every day, each shift of his with a swap form.
    let week = bob.get(&format!("{url}/schedules/primary")).await;
    assert_eq!(week.status, StatusCode::OK, "{}", week.body);
    assert_eq!(week.body.matches(r#"<li class="day">"#).count(), 7);
    assert!(
        week.body.contains(r#"class="inline swap""#),
        "{}",
        week.body
    );
    let field = |name: &str| {
        let at = week
            .body
            .find(&format!(r#"name="{name}" value=""#))
            .unwrap()
            + format!(r#"name="{name}" value=""#).len();
        week.body[at..at + week.body[at..].find('"').unwrap()].to_string()
    };
    let (start, end) = (field("start_ms"), field("end_ms"));
    let csrf = week.csrf();
    let swapped = bob
        .post(
            &format!("{url}/oncall/override"),
            &[
                ("csrf", &csrf),
                ("schedule", "primary"),
                ("replaces", "bob"),
                ("user", "alice"),
                ("start_ms", &start),
                ("end_ms", &end),
            ],
        )
        .await;
    assert_eq!(swapped.status, StatusCode::SEE_OTHER, "{}", swapped.body);
    let after = bob.get(&format!("{url}/schedules/primary")).await;
    assert!(
        after
            .body
            .contains("<strong>alice</strong> <span class=\"muted\">override</span>"),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("<strong>alice</strong> for bob"),
        "{}",
        after.body
    );
    let bad = bob.get(&format!("{url}/schedules/primary?week=soon")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_page_is_a_real_page_recorded_on_the_profile_and_never_an_incident() {
    let (c, leader) = cluster().await;
    let follower = c.follower(leader);
    let url = base(&c, follower);
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    let profile = alice.get(&format!("{url}/profile")).await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert!(
        profile.body.contains("a****@example.com"),
        "{}",
        profile.body
    );
    assert!(
        !profile.body.contains("alice@example.com"),
        "addresses are masked"
    );
    assert!(profile.body.contains("after 1h: email"), "{}", profile.body);
    let csrf = profile.csrf();
    for contact in ["email", "phone"] {
        let sent = alice
            .post(
                &format!("{url}/profile/test"),
                &[("csrf", &csrf), ("contact", contact)],
            )
            .await;
        assert_eq!(
            sent.status,
            StatusCode::SEE_OTHER,
            "{contact}: {}",
            sent.body
        );
        assert_eq!(sent.location(), "/profile?done=test");
    }
    // The leader sends both, like any page.
    let mails = c
        .smtp
        .wait_for_mails(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(mails[0].to, vec!["alice@example.com".to_string()]);
    let sms = c
        .twilio
        .wait_for_messages(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(sms[0].to, "+15550100001");
    assert!(
        sms[0].body.contains("pagerd test page for alice via phone"),
        "{}",
        sms[0].body
    );
    assert!(
        !sms[0].body.contains("Reply"),
        "no reply codes: {}",
        sms[0].body
    );
    // Recorded as sent, on every node, and no incident was opened.
    let node = c.node(follower).node.clone();
    let mut applied = node.applied.clone();
    tokio::time::timeout(
        Duration::from_secs(10),
        applied.wait_for(|_| {
            node.read(|s| {
                s.deliveries
                    .values()
                    .filter(|d| {
                        d.purpose == pager_core::delivery::Purpose::Test
                            && d.status == pager_core::delivery::DeliveryStatus::Sent
                    })
                    .count()
                    == 2
            })
        }),
    )
    .await
    .expect("both test pages recorded as sent")
    .unwrap();
    assert_eq!(
        node.read(|s| s.incidents.len()),
        1,
        "only the fixture's incident"
    );
    let profile = alice.get(&format!("{url}/profile?done=test")).await;
    assert!(profile.body.contains("Test page on its way."));
    assert_eq!(
        profile.body.matches("<td>sent</td>").count(),
        2,
        "{}",
        profile.body
    );
    // An unknown contact method is refused with a reason.
    let bad = alice
        .post(
            &format!("{url}/profile/test"),
            &[("csrf", &csrf), ("contact", "pager")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND, "{}", bad.body);
    assert!(bad.body.contains("contact method"), "{}", bad.body);

    // Sign out everywhere: this session ends too.
    let out = alice
        .post(
            &format!("{url}/profile/sign-out-everywhere"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let gone = alice.get(&format!("{url}/profile")).await;
    assert!(
        gone.location().starts_with("/login?why="),
        "{}",
        gone.location()
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_invites_a_user_by_email_and_the_link_works_once() {
    let (c, leader) = cluster().await;
    let url = base(&c, c.follower(leader));
    let mut ops = Agent::new();
    ops.sign_in(&url, "ops", OPS_PW).await;
    let users = ops.get(&format!("{url}/users")).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    assert!(users.body.contains(r#"id="user-carol""#));
    let csrf = users.csrf();
    let invited = ops
        .post(
            &format!("{url}/users/carol/invite"),
            &[("csrf", &csrf), ("role", "responder")],
        )
        .await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.body);
    // The leader sends the email, like a page.
    let mail = c
        .smtp
        .wait_for_mails(1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(mail[0].to, vec!["carol@example.com".to_string()]);
    let text = mail[0].text().replace("=\r\n", "");
    let at = text.find("/invite/").expect("a link in the invitation");
    let path: String = text[at..]
        .chars()
        .take_while(|ch| !ch.is_whitespace() && *ch != '"' && *ch != '<')
        .collect();

    // Opening it on any node shows the form; the password sets and signs in.
    let mut carol = Agent::new();
    let form = carol.get(&format!("{url}{path}")).await;
    assert_eq!(form.status, StatusCode::OK, "{path}: {}", form.body);
    let csrf = form.csrf();
    let short = carol
        .post(
            &format!("{url}{path}"),
            &[("csrf", &csrf), ("password", "short"), ("confirm", "short")],
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.body.contains("at least 10 bytes"), "{}", short.body);
    let set = carol
        .post(
            &format!("{url}{path}"),
            &[
                ("csrf", &csrf),
                ("password", "carol-password-1"),
                ("confirm", "carol-password-1"),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(set.location(), "/incidents");
    let list = carol.get(&format!("{url}/incidents")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains(r#"title="Sign out carol""#));
    let role = c.node(leader).node.read(|s| s.credentials["carol"].role);
    assert_eq!(role, TokenRole::Responder);

    // Used once: the same link no longer works.
    let again = Agent::new().get(&format!("{url}{path}")).await;
    assert_eq!(again.status, StatusCode::GONE, "{}", again.body);
    assert!(again.body.contains("used already"), "{}", again.body);
    // A forged link does not either.
    let forged = Agent::new().get(&format!("{url}/invite/e30.AAAA")).await;
    assert_eq!(forged.status, StatusCode::GONE);
    // A responder cannot invite.
    let mut alice = Agent::new();
    alice.sign_in(&url, "alice", ALICE_PW).await;
    let csrf = alice.get(&format!("{url}/incidents")).await.csrf();
    let refused = alice
        .post(&format!("{url}/users/bob/invite"), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    c.shutdown().await;
}
