//! API tokens: without one, with a wrong one, with one of too small a role,
//! and after revocation, calls are refused with the right code and nothing is
//! applied; events need no token (the integration key is the credential).

mod common;

use common::{trigger, Cluster};
use pager_proto::pager::v1 as pb;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Code;

const BOOTSTRAP: &str = "bootstrap-admin-secret-0001";

const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[escalation_policies.p]
levels = [ { escalate_after = "5m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = token {
        let value: MetadataValue<_> = format!("Bearer {t}").parse().unwrap();
        req.metadata_mut().insert("authorization", value);
    }
    req
}

async fn apply(ch: Channel, token: Option<&str>) -> Result<pb::ApplyConfigResponse, tonic::Status> {
    pb::config_client::ConfigClient::new(ch)
        .apply(with_token(
            pb::ApplyConfigRequest {
                document: ONCALL.into(),
                format: "toml".into(),
                dry_run: false,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn create(
    ch: Channel,
    token: &str,
    name: &str,
    role: &str,
) -> Result<pb::CreateTokenResponse, tonic::Status> {
    pb::tokens_client::TokensClient::new(ch)
        .create(with_token(
            pb::CreateTokenRequest {
                name: name.into(),
                role: role.into(),
            },
            Some(token),
        ))
        .await
        .map(|r| r.into_inner())
}

async fn ack(
    ch: Channel,
    token: Option<&str>,
    id: u64,
) -> Result<pb::IncidentActionResponse, tonic::Status> {
    pb::incidents_client::IncidentsClient::new(ch)
        .acknowledge(with_token(
            pb::IncidentActionRequest {
                id,
                by: String::new(),
            },
            token,
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_and_roles_guard_the_api() {
    let c = Cluster::start_with_auth(3, BOOTSTRAP).await;
    let leader = c.leader().await;
    let f = c.follower(leader);

    // No token, a wrong one: UNAUTHENTICATED, nothing applied.
    for token in [None, Some("not-a-token")] {
        let err = apply(c.channel(f).await, token).await.expect_err("refused");
        assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
        assert!(
            err.message().starts_with("authorization"),
            "{}",
            err.message()
        );
    }
    let version = c.node(leader).node.read(|s| s.config_version);
    assert_eq!(version, 0, "nothing applied");

    // The bootstrap token is an admin: it applies and creates tokens.
    apply(c.channel(f).await, Some(BOOTSTRAP))
        .await
        .expect("admin applies");
    let responder = create(c.channel(f).await, BOOTSTRAP, "alice-phone", "responder")
        .await
        .expect("token created");
    // The create was forwarded to the leader: let the follower apply it
    // before asking the follower to check the token.
    c.applied(f, responder.commit_index).await;
    assert!(responder.secret.starts_with("pgd_"));
    let admin = create(c.channel(leader).await, BOOTSTRAP, "ops", "admin")
        .await
        .expect("token created");
    let dup = create(c.channel(leader).await, BOOTSTRAP, "ops", "admin")
        .await
        .expect_err("name taken");
    assert_eq!(dup.code(), Code::InvalidArgument);
    // Only digests are replicated.
    let stored = c.node(f).node.read(|s| format!("{:?}", s.tokens));
    assert!(!stored.contains(&responder.secret) && !stored.contains(&admin.secret));

    // Events need no token.
    let id = c
        .events(f)
        .await
        .send(trigger("db-key-0001", "auth-1"))
        .await
        .expect("event accepted without a token")
        .into_inner()
        .incident_id;

    // A responder may acknowledge but not change the configuration.
    let err = apply(c.channel(f).await, Some(&responder.secret))
        .await
        .expect_err("responder may not apply");
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    assert!(err.message().contains("admin role"), "{}", err.message());
    let acked = ack(c.channel(f).await, Some(&responder.secret), id)
        .await
        .expect("responder acknowledges");
    assert_eq!(
        acked.incident.unwrap().status,
        pb::IncidentStatus::Acknowledged as i32
    );

    // Revoked: refused everywhere.
    pb::tokens_client::TokensClient::new(c.channel(leader).await)
        .revoke(with_token(
            pb::RevokeTokenRequest {
                name: "alice-phone".into(),
            },
            Some(&admin.secret),
        ))
        .await
        .expect("admin revokes");
    let list = pb::tokens_client::TokensClient::new(c.channel(leader).await)
        .list(with_token(pb::ListTokensRequest {}, Some(&admin.secret)))
        .await
        .expect("admin lists")
        .into_inner();
    let names: Vec<_> = list.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["ops"]);
    assert_eq!(list.tokens[0].created_by, "bootstrap-admin");
    // Read your write on the follower before asking it.
    c.applied(f, c.node(leader).node.read(|s| s.last_applied.index))
        .await;
    let err = ack(c.channel(f).await, Some(&responder.secret), id)
        .await
        .expect_err("revoked");
    assert_eq!(err.code(), Code::Unauthenticated);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_peer_port_demands_the_cluster_secret() {
    let c = Cluster::start_tuned(3, |raw| {
        raw.cluster.secret = Some("peer-secret-000000001".into());
    })
    .await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    // The cluster works: elections, replication, a follower forwarding a write.
    pb::config_client::ConfigClient::new(c.channel(f).await)
        .apply(pb::ApplyConfigRequest {
            document: ONCALL.into(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .expect("forwarded through the authenticated peer port");
    // A stranger on the peer port is refused before Raft or forwarding.
    let stranger = pager_raft::PeerClients::new(std::time::Duration::from_secs(2));
    let status = stranger
        .forward(
            &c.addrs[leader - 1].peer.to_string(),
            b"{}".to_vec(),
            std::time::Duration::from_secs(2),
        )
        .await
        .expect_err("no secret");
    assert_eq!(status.code(), Code::Unauthenticated, "{status}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_an_admin_sets_console_passwords() {
    let c = Cluster::start_with_auth(3, BOOTSTRAP).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    apply(c.channel(f).await, Some(BOOTSTRAP))
        .await
        .expect("admin applies");
    let responder = create(c.channel(f).await, BOOTSTRAP, "alice-phone", "responder")
        .await
        .expect("token created");
    // The create was forwarded to the leader: let the follower apply it
    // before asking the follower to check the token.
    c.applied(f, responder.commit_index).await;
    let set = |token: Option<String>, user: &str, password: &str| {
        let req = pb::SetPasswordRequest {
            user: user.into(),
            password: password.into(),
            role: String::new(),
        };
        let ch = c.channel(f);
        async move {
            pb::users_client::UsersClient::new(ch.await)
                .set_password(with_token(req, token.as_deref()))
                .await
        }
    };
    let err = set(None, "alice", "long enough secret")
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = set(
        Some(responder.secret.clone()),
        "alice",
        "long enough secret",
    )
    .await
    .expect_err("a responder may not");
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    let err = set(Some(BOOTSTRAP.into()), "alice", "short")
        .await
        .expect_err("too short");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("password"), "{}", err.message());
    let err = set(Some(BOOTSTRAP.into()), "nobody", "long enough secret")
        .await
        .expect_err("not in the document");
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert!(c.node(leader).node.read(|s| s.credentials.is_empty()));

    let ok = set(Some(BOOTSTRAP.into()), "alice", "long enough secret")
        .await
        .expect("admin sets it")
        .into_inner();
    c.applied(leader, ok.commit_index).await;
    let cred = c
        .node(leader)
        .node
        .read(|s| s.credentials.get("alice").cloned())
        .expect("replicated");
    assert_eq!(
        (cred.role, cred.set_by.as_str()),
        (pager_core::TokenRole::Responder, "bootstrap-admin")
    );
    assert!(pagerd::edge::password::verify(
        &cred.phc,
        "long enough secret"
    ));

    // Invitations and signing out everywhere are an admin's too.
    let invite = |token: &str| {
        let req = pb::InviteRequest {
            user: "alice".into(),
            role: "admin".into(),
        };
        let ch = c.channel(f);
        let token = token.to_string();
        async move {
            pb::users_client::UsersClient::new(ch.await)
                .invite(with_token(req, Some(&token)))
                .await
        }
    };
    let err = invite(&responder.secret)
        .await
        .expect_err("a responder may not");
    assert_eq!(err.code(), Code::PermissionDenied);
    // alice's only contact method is an SMS and she has no email: refused, nothing queued.
    let err = invite(BOOTSTRAP).await.expect_err("no email address");
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(
        err.message().starts_with("user: alice has no email"),
        "{}",
        err.message()
    );
    let signed_out = pb::users_client::UsersClient::new(c.channel(f).await)
        .sign_out(with_token(
            pb::SignOutRequest {
                user: "alice".into(),
            },
            Some(BOOTSTRAP),
        ))
        .await
        .expect("admin signs alice out")
        .into_inner();
    c.applied(leader, signed_out.commit_index).await;
    let version = c
        .node(leader)
        .node
        .read(|s| s.credentials["alice"].sessions_version);
    assert_eq!(version, signed_out.commit_index);
    c.shutdown().await;
}
