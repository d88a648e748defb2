//! Console passwords: only users of the current document get one, only an
//! Argon2id hash is kept, a bad request changes nothing, and a user removed
//! from the document loses theirs with it.

mod common;

use common::Log;
use pager_core::command::{Command, Response};
use pager_core::{OnCallDoc, Rejection, TokenRole};

const DOC: &str = r#"
[users.alice]
contact_methods = [ { name = "m", type = "sms", address = "+15550000001" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[users.bob]
contact_methods = [ { name = "m", type = "sms", address = "+15550000002" } ]
notification_rules.high = [ { after = "0", contact = "m" } ]
[escalation_policies.p]
levels = [ { escalate_after = "5m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

const T0: u64 = 1_700_000_000_000;
const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo";

fn set(log: &mut Log, user: &str, phc: &str) -> Response {
    log.apply(Command::SetPassword {
        at: T0 + 1,
        user: user.into(),
        role: TokenRole::Responder,
        phc: phc.into(),
        by: "ops".into(),
    })
    .0
}

#[test]
fn a_password_is_kept_as_its_hash_for_users_of_the_document() {
    let mut log = Log::with_doc(DOC, T0);
    assert_eq!(set(&mut log, "alice", PHC), Response::Noop);
    let cred = &log.state.credentials["alice"];
    assert_eq!(
        (
            cred.phc.as_str(),
            cred.role,
            cred.set_at,
            cred.set_by.as_str()
        ),
        (PHC, TokenRole::Responder, T0 + 1, "ops")
    );
}

#[test]
fn unknown_users_and_other_hashes_are_refused_and_change_nothing() {
    let mut log = Log::with_doc(DOC, T0);
    let before = log.state.credentials.clone();
    match set(&mut log, "mallory", PHC) {
        Response::Rejected(Rejection::NotFound { field, .. }) => assert_eq!(field, "user"),
        other => panic!("{other:?}"),
    }
    for bad in [
        "hunter2",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        &"$argon2id$".repeat(40),
    ] {
        match set(&mut log, "alice", bad) {
            Response::Rejected(Rejection::Invalid { field, .. }) => assert_eq!(field, "phc"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(log.state.credentials, before);
    match log
        .apply(Command::ClearPassword {
            at: T0 + 2,
            user: "bob".into(),
            by: "ops".into(),
        })
        .0
    {
        Response::Rejected(Rejection::NotFound { field, .. }) => assert_eq!(field, "user"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn clearing_or_leaving_the_document_ends_sign_in() {
    let mut log = Log::with_doc(DOC, T0);
    assert_eq!(set(&mut log, "alice", PHC), Response::Noop);
    assert_eq!(set(&mut log, "bob", PHC), Response::Noop);
    let cleared = log.apply(Command::ClearPassword {
        at: T0 + 2,
        user: "bob".into(),
        by: "ops".into(),
    });
    assert_eq!(cleared.0, Response::Noop);
    assert!(!log.state.credentials.contains_key("bob"));

    // A document without alice takes her password with it.
    let without_alice = DOC
        .replace("[users.alice]\n", "[users.carol]\n")
        .replace("{ user = \"alice\" }", "{ user = \"carol\" }");
    let doc = OnCallDoc::from_toml(&without_alice).expect("parses");
    assert_eq!(doc.validate(), vec![]);
    let r = log.apply(Command::ApplyConfig {
        at: T0 + 3,
        doc: Box::new(doc),
    });
    assert_eq!(r.0, Response::ConfigApplied { version: 2 });
    assert!(log.state.credentials.is_empty());
}

#[test]
fn an_older_snapshot_without_credentials_still_loads() {
    let log = Log::with_doc(DOC, T0);
    let mut json: serde_json::Value = serde_json::to_value(&log.state).expect("serializes");
    json.as_object_mut()
        .expect("an object")
        .remove("credentials");
    let back: pager_core::State = serde_json::from_value(json).expect("loads");
    assert!(back.credentials.is_empty());
}

#[test]
fn a_new_password_or_a_revocation_moves_the_session_version() {
    let mut log = Log::with_doc(DOC, T0);
    set(&mut log, "alice", PHC);
    let first = log.state.credentials["alice"].sessions_version;
    assert!(first > 0, "the version is the SetPassword's log index");
    let revoke = |user: &str| Command::RevokeSessions {
        at: T0 + 2,
        user: user.into(),
        by: "ops".into(),
    };
    assert_eq!(log.apply(revoke("alice")).0, Response::Noop);
    let revoked = log.state.credentials["alice"].sessions_version;
    assert!(revoked > first, "{revoked} > {first}");
    set(&mut log, "alice", PHC);
    assert!(log.state.credentials["alice"].sessions_version > revoked);
    assert_eq!(
        log.state.sessions_version("alice"),
        log.state.credentials["alice"].sessions_version
    );
    // A user without a password (single sign-on) is signed out all the same,
    // and gets no password by it.
    assert_eq!(log.state.sessions_version("bob"), 0);
    assert_eq!(log.apply(revoke("bob")).0, Response::Noop);
    assert!(log.state.sessions_version("bob") > 0);
    assert!(!log.state.credentials.contains_key("bob"));
    match log.apply(revoke("mallory")).0 {
        Response::Rejected(Rejection::NotFound { field, .. }) => assert_eq!(field, "user"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}
