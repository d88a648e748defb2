//! Console sign-in through an OpenID Connect provider (a fake that behaves as
//! the specifications say): the authorization code flow with PKCE signs in the
//! user whose verified email the ID token names, on any node; a user without
//! a password gets the responder role and is signed out like anyone; a
//! replayed code, a foreign state, a refusal at the provider, an unknown or
//! unverified email are each refused with the reason on the sign-in page.

mod common;

use common::agent::Agent;
use common::Cluster;
use pager_core::Command;
use pager_fakes::oidc::{self, FakeOidc, Identity};
use pagerd::config::{RawConfig, RawOidc};
use reqwest::StatusCode;
use std::sync::OnceLock;

const ONCALL: &str = r#"
[users.alice]
email = "Alice@Example.com"
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "1h", contact = "sms" } ]
[users.carol]
contact_methods = [ { name = "mail", type = "email", address = "carol@example.com" } ]
notification_rules.high = [ { after = "1h", contact = "mail" } ]
[escalation_policies.p]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[services.web]
integration_keys = ["web-key-0001"]
escalation_policy = "p"
"#;

/// The fake's issuer and the secret each node is configured with (a tune
/// function cannot capture them).
static ISSUER: OnceLock<String> = OnceLock::new();
static SECRET: OnceLock<&'static str> = OnceLock::new();

fn with_oidc(raw: &mut RawConfig) {
    raw.auth.oidc = Some(RawOidc {
        issuer: ISSUER.get().cloned().unwrap_or_default(),
        client_id: oidc::CLIENT_ID.into(),
        client_secret: SECRET.get().map(|s| s.to_string()),
        ..RawOidc::default()
    });
}

fn identity(email: &str) -> Identity {
    Identity {
        sub: format!("sub-{email}"),
        email: email.into(),
        email_verified: true,
        preferred_username: email.split('@').next().unwrap_or("").into(),
    }
}

/// Follow one sign-in through the provider: the node's redirect, the
/// provider's, then the callback's answer.
async fn sso(agent: &mut Agent, url: &str) -> common::agent::Page {
    let start = agent.get(&format!("{url}/login/oidc?next=/oncall")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let to_provider = start.location().to_string();
    for part in [
        "response_type=code",
        "code_challenge_method=S256",
        "scope=openid+email+profile",
        "nonce=",
        "state=",
    ] {
        assert!(to_provider.contains(part), "{part} in {to_provider}");
    }
    let back = agent.get(&to_provider).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
    let callback = back.location().to_string();
    assert!(
        callback.starts_with(&format!("{url}/login/oidc/callback?")),
        "{callback}"
    );
    agent.get(&callback).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_signs_in_the_user_the_provider_names_and_refuses_the_rest() {
    let idp = FakeOidc::start().await.unwrap();
    ISSUER.set(idp.issuer()).unwrap();
    SECRET.set(oidc::CLIENT_SECRET).unwrap();
    let c = Cluster::start_tuned(3, with_oidc).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let follower = c.follower(leader);
    let url = format!("http://{}", c.addrs[follower - 1].http);
    idp.register_redirect_uri(&format!("{url}/login/oidc/callback"));

    // The sign-in page offers it.
    let mut alice = Agent::new();
    let login = alice.get(&format!("{url}/login")).await;
    assert!(login.body.contains(r#"id="sso""#), "{}", login.body);

    // Alice's verified email (any case) names her: signed in, on to /oncall.
    idp.sign_in_as(Some(identity("alice@example.com")));
    let done = sso(&mut alice, &url).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/oncall");
    let page = alice.get(&format!("{url}/incidents")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(r#"title="Sign out alice""#));
    // Without a password she is a responder; the session works on the leader too.
    let leader_url = format!("http://{}", c.addrs[leader - 1].http);
    assert_eq!(
        alice.get(&format!("{leader_url}/cluster")).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(
        c.node(leader).node.read(|s| s.credentials.is_empty()),
        "no password was made"
    );
    assert!(idp.hits("token") >= 1 && idp.hits("jwks") >= 1);

    // Carol's email is on a contact method: that names her too.
    let mut carol = Agent::new();
    idp.sign_in_as(Some(identity("carol@example.com")));
    assert_eq!(sso(&mut carol, &url).await.location(), "/oncall");

    // An admin signs carol out everywhere: her single sign-on session ends.
    let w = c
        .node(leader)
        .node
        .write(Command::RevokeSessions {
            at: 0,
            user: "carol".into(),
            by: "ops".into(),
        })
        .await
        .unwrap();
    c.applied(follower, w.index).await;
    let gone = carol.get(&format!("{url}/incidents")).await;
    assert!(
        gone.location().starts_with("/login?why=revoked"),
        "{}",
        gone.location()
    );

    // Nobody of the document has this email.
    let mut mallory = Agent::new();
    idp.sign_in_as(Some(identity("mallory@example.com")));
    let refused = sso(&mut mallory, &url).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("no user of the on-call document has the email m****@example.com"),
        "{}",
        refused.body
    );
    assert!(!mallory.cookies.contains_key("pagerd_session"));

    // An unverified email is not enough.
    let mut unverified = identity("alice@example.com");
    unverified.email_verified = false;
    idp.sign_in_as(Some(unverified));
    let refused = sso(&mut Agent::new(), &url).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("not verified"), "{}", refused.body);

    // The user refuses at the provider: the provider's error, on our page.
    idp.sign_in_as(None);
    let mut a = Agent::new();
    let refused = sso(&mut a, &url).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("access_denied"), "{}", refused.body);

    // A replayed callback: the code was used (and the flow cookie is gone).
    idp.sign_in_as(Some(identity("alice@example.com")));
    let mut b = Agent::new();
    let start = b.get(&format!("{url}/login/oidc")).await;
    let back = b.get(start.location()).await;
    let callback = back.location().to_string();
    let flow = b.cookies.get("pagerd_oidc").cloned().unwrap();
    assert_eq!(b.get(&callback).await.status, StatusCode::SEE_OTHER);
    let mut replay = Agent::new();
    replay.cookies.insert("pagerd_oidc".into(), flow.clone());
    let again = replay.get(&callback).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    assert!(again.body.contains("invalid_grant"), "{}", again.body);
    // A callback whose state is not the flow's.
    let mut forged = Agent::new();
    forged.cookies.insert("pagerd_oidc".into(), flow);
    let wrong = forged
        .get(&format!(
            "{url}/login/oidc/callback?code=x&state=not-the-state"
        ))
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.body.contains("not for this sign-in"),
        "{}",
        wrong.body
    );
    c.shutdown().await;
}
