//! Test pages: a real delivery to one contact method that belongs to no
//! incident. It is claimed, sent, retried and reconciled like any page, never
//! touches an incident or the user's escalation, is limited per user, and is
//! compacted once settled and old.

mod common;

use common::Log;
use pager_core::command::{Command, Effect, Response, SendResult};
use pager_core::delivery::DeliveryStatus;
use pager_core::state::TEST_PAGES_PER_HOUR;
use pager_core::Rejection;

const DOC: &str = r#"
[users.alice]
contact_methods = [
  { name = "phone", type = "sms", address = "+15550000001" },
  { name = "mail", type = "email", address = "alice@example.com" },
]
notification_rules.high = [ { after = "0", contact = "phone" } ]
[escalation_policies.p]
levels = [ { escalate_after = "5m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

const T0: u64 = 1_700_000_000_000;

fn test_page(log: &mut Log, at: u64, contact: &str) -> (Response, Vec<Effect>) {
    log.apply(Command::TestPage {
        at,
        user: "alice".into(),
        contact: contact.into(),
        by: "alice".into(),
    })
}

#[test]
fn a_test_page_is_a_delivery_of_no_incident_sent_and_retried_like_a_page() {
    let mut log = Log::with_doc(DOC, T0);
    let (r, effects) = test_page(&mut log, T0 + 1, "phone");
    let Response::Queued { delivery } = r else {
        panic!("expected a test page, got {r:?}");
    };
    assert_eq!(
        effects,
        vec![Effect::Deliver {
            delivery,
            term: log.term
        }]
    );
    let d = &log.state.deliveries[&delivery];
    assert!(
        d.purpose == pager_core::delivery::Purpose::Test
            && d.incident == 0
            && d.status == DeliveryStatus::Pending
    );
    assert_eq!(
        (d.method.as_str(), d.address.as_str()),
        ("sms", "+15550000001")
    );
    assert!(log.state.incidents.is_empty(), "no incident");
    assert!(log.state.pending_deliveries().any(|p| p.id == delivery));

    // A retryable failure waits and is claimed again; then it is sent.
    log.apply(Command::Outcome {
        at: T0 + 2,
        delivery,
        attempt: 1,
        result: SendResult::Failed {
            retryable: true,
            in_doubt: false,
            code: Some(503),
            message: "busy".into(),
        },
    });
    assert_eq!(
        log.state.deliveries[&delivery].status,
        DeliveryStatus::RetryWait
    );
    let (_, effects) = log.apply(Command::Tick { at: T0 + 3_600_000 });
    assert!(effects.contains(&Effect::Deliver {
        delivery,
        term: log.term
    }));
    log.apply(Command::Outcome {
        at: T0 + 3_600_001,
        delivery,
        attempt: 2,
        result: SendResult::Sent {
            provider_id: "SM1".into(),
            reconciled: false,
        },
    });
    let d = &log.state.deliveries[&delivery];
    assert_eq!(
        (d.status, d.provider_id.as_str()),
        (DeliveryStatus::Sent, "SM1")
    );
    assert!(log.state.incidents.is_empty());

    // A new leader re-claims a test page in flight like any other.
    let (_, effects) = test_page(&mut log, T0 + 3_600_002, "mail");
    let Some(Effect::Deliver { delivery: mail, .. }) = effects.first().cloned() else {
        panic!("a deliver effect");
    };
    log.term += 1;
    let (_, effects) = log.apply(Command::Takeover {
        at: T0 + 3_600_003,
        key_seed: "k".into(),
    });
    assert!(effects.contains(&Effect::Deliver {
        delivery: mail,
        term: log.term
    }));
    assert_eq!(log.state.deliveries[&mail].reclaims, 1);
}

#[test]
fn unknown_users_and_contacts_and_too_many_tests_are_refused() {
    let mut log = Log::with_doc(DOC, T0);
    let before = log.state.deliveries.len();
    let (r, _) = log.apply(Command::TestPage {
        at: T0 + 1,
        user: "mallory".into(),
        contact: "phone".into(),
        by: "mallory".into(),
    });
    assert!(
        matches!(r, Response::Rejected(Rejection::NotFound { ref field, .. }) if field == "user"),
        "{r:?}"
    );
    let (r, _) = test_page(&mut log, T0 + 1, "pager");
    assert!(
        matches!(r, Response::Rejected(Rejection::NotFound { ref field, .. }) if field == "contact"),
        "{r:?}"
    );
    assert_eq!(log.state.deliveries.len(), before);
    for i in 0..TEST_PAGES_PER_HOUR as u64 {
        let (r, _) = test_page(&mut log, T0 + 10 + i, "mail");
        assert!(matches!(r, Response::Queued { .. }), "{r:?}");
    }
    let (r, _) = test_page(&mut log, T0 + 100, "mail");
    assert!(
        matches!(r, Response::Rejected(Rejection::Invalid { ref field, .. }) if field == "contact"),
        "{r:?}"
    );
    // An hour later there is room again.
    let (r, _) = test_page(&mut log, T0 + 3_600_100, "mail");
    assert!(matches!(r, Response::Queued { .. }), "{r:?}");
}

#[test]
fn settled_test_pages_are_compacted_when_old() {
    let mut log = Log::with_doc(DOC, T0);
    let (Response::Queued { delivery: sent }, _) = test_page(&mut log, T0 + 1, "mail") else {
        panic!("a test page");
    };
    let (Response::Queued { delivery: waiting }, _) = test_page(&mut log, T0 + 2, "phone") else {
        panic!("a test page");
    };
    log.apply(Command::Outcome {
        at: T0 + 3,
        delivery: sent,
        attempt: 1,
        result: SendResult::Sent {
            provider_id: "m1".into(),
            reconciled: false,
        },
    });
    let (r, _) = log.apply(Command::Compact {
        at: T0 + 10,
        resolved_before: T0 + 5,
    });
    assert_eq!(
        r,
        Response::Compacted {
            incidents: 0,
            deliveries: 1
        }
    );
    assert!(!log.state.deliveries.contains_key(&sent));
    assert!(
        log.state.deliveries.contains_key(&waiting),
        "a pending one stays"
    );
}

#[test]
fn an_invitation_is_an_email_delivery_naming_the_role_and_the_password_version() {
    use pager_core::delivery::Purpose;
    use pager_core::TokenRole;
    let mut log = Log::with_doc(DOC, T0);
    let invite = |log: &mut Log, user: &str| {
        log.apply(Command::Invite {
            at: T0 + 1,
            user: user.into(),
            role: TokenRole::Admin,
            by: "ops".into(),
        })
        .0
    };
    let Response::Queued { delivery } = invite(&mut log, "alice") else {
        panic!("an invitation");
    };
    let d = &log.state.deliveries[&delivery];
    assert_eq!(
        (
            d.purpose.clone(),
            d.method.as_str(),
            d.address.as_str(),
            d.incident
        ),
        (
            Purpose::Invite {
                role: TokenRole::Admin,
                version: 0
            },
            "email",
            "alice@example.com",
            0
        )
    );
    let r = invite(&mut log, "nobody");
    assert!(
        matches!(r, Response::Rejected(Rejection::NotFound { ref field, .. }) if field == "user"),
        "{r:?}"
    );
    // A user without any email address cannot be invited.
    let doc = DOC.replace(
        r#"  { name = "mail", type = "email", address = "alice@example.com" },
"#,
        "",
    );
    let mut log = Log::with_doc(&doc, T0);
    let r = invite(&mut log, "alice");
    assert!(
        matches!(r, Response::Rejected(Rejection::Invalid { ref field, .. }) if field == "user"),
        "{r:?}"
    );
}
