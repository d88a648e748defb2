//! The Jira client against the fake Jira over loopback sockets: an incident's ticket from
//! creation to RCA, each error class, in-doubt outcomes, and a cross-check of every request
//! against Atlassian's OpenAPI description.

use std::time::Duration;

use pager_fakes::jira::{FakeJira, Fault, Workflow, TEST_API_TOKEN, TEST_EMAIL};
use pager_outbound::adf::{Doc, Inline};
use pager_outbound::jira::Transition;
use pager_outbound::{ErrorKind, JiraClient, OutboundError};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn fake() -> FakeJira {
    let fake = FakeJira::start(TEST_EMAIL, TEST_API_TOKEN).await;
    fake.add_project("OPS", &["Incident", "Task"]);
    fake.add_user(
        "alice@example.com",
        "5b10a2844c20165700ede21g",
        "Alice Liddell",
    );
    fake
}

fn client(fake: &FakeJira) -> JiraClient {
    JiraClient::new(&fake.base_url(), TEST_EMAIL, TEST_API_TOKEN).expect("valid settings")
}

fn description() -> Value {
    Doc::new()
        .paragraph("db1: /var at 99% & <rising>\nsince 10:02 UTC")
        .inlines([
            Inline::strong("Incident: "),
            Inline::link("inc-42", "https://pagerd.example/incidents/inc-42"),
        ])
        .heading(3, "Runbook")
        .bullet_list([
            vec![
                Inline::text("check "),
                Inline::link("disk usage", "https://wiki.example/disk"),
            ],
            vec![Inline::text("rotate logs")],
            vec![Inline::text("")],
        ])
        .into_value()
}

fn assert_kind(err: &OutboundError, kind: ErrorKind, in_doubt: bool, status: Option<u16>) {
    assert_eq!(
        (err.kind, err.in_doubt, err.http_status),
        (kind, in_doubt, status),
        "{err}"
    );
    assert!(!err.message.contains(TEST_API_TOKEN), "{err}");
}

async fn create(jira: &JiraClient) -> Result<pager_outbound::jira::Created, OutboundError> {
    jira.create_issue(
        "OPS",
        "Incident",
        "db1 disk full",
        description(),
        None,
        &["pagerd"],
    )
    .await
}

#[tokio::test]
async fn an_incident_ticket_from_creation_to_rca() {
    let fake = fake().await;
    let jira = client(&fake);

    let account = jira
        .find_account_id("alice@example.com")
        .await
        .expect("searched")
        .expect("found");
    assert_eq!(account, "5b10a2844c20165700ede21g");

    let created = jira
        .create_issue(
            "OPS",
            "Incident",
            "db1 disk full\non the primary",
            description(),
            Some(&account),
            &["pagerd", "sev 1"],
        )
        .await
        .expect("created");
    assert_eq!(created.key, "OPS-1");
    assert!(created
        .self_
        .ends_with(&format!("/rest/api/3/issue/{}", created.id)));
    let issue = &fake.wait_for_issues(1, WAIT).await.expect("recorded")[0];
    assert_eq!(issue.summary, "db1 disk full on the primary");
    assert_eq!(issue.issue_type, "Incident");
    assert_eq!(issue.assignee.as_deref(), Some(account.as_str()));
    assert_eq!(issue.labels, ["pagerd", "sev-1"]);
    assert_eq!(issue.description.as_ref(), Some(&description()));
    assert_eq!(issue.status, "To Do");

    assert_eq!(
        jira.transitions("OPS-1").await.expect("listed"),
        vec![
            Transition {
                id: "11".into(),
                name: "Mitigate".into(),
                to_status: Some("Mitigated".into()),
            },
            Transition {
                id: "31".into(),
                name: "Duplicate".into(),
                to_status: Some("Duplicate".into()),
            },
        ]
    );
    // By the status it leads to, without case.
    jira.transition_to("OPS-1", "mitigated")
        .await
        .expect("moved");
    fake.wait_for_status("OPS-1", "Mitigated", WAIT)
        .await
        .expect("mitigated");
    // By the transition's own name.
    jira.transition_to(&created.key, "COMPLETE RCA")
        .await
        .expect("moved");
    fake.wait_for_status("OPS-1", "RCA Completed", WAIT)
        .await
        .expect("done");
    // Again: already there, nothing to do (a retry after an in-doubt transition).
    jira.transition_to("OPS-1", "RCA Completed")
        .await
        .expect("nothing to do");
    assert_eq!(
        fake.issue("OPS-1").expect("exists").transitions,
        ["Mitigate", "Complete RCA"]
    );

    let err = jira.transition_to("OPS-1", "Reopen").await.unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, None);
    assert!(
        err.message.contains("has no transition \"Reopen\"")
            && err.message.contains("status \"RCA Completed\"")
            && err.message.contains("available: \"Duplicate\""),
        "{err}"
    );

    let comment = Doc::new()
        .paragraph("Resolved by alice.")
        .link("Postmortem", "https://wiki.example/pm/42")
        .into_value();
    let id = jira
        .add_comment("OPS-1", comment.clone())
        .await
        .expect("commented");
    let comments = fake
        .wait_for_comments("OPS-1", 1, WAIT)
        .await
        .expect("recorded");
    assert_eq!(
        (comments[0].id.as_str(), &comments[0].body),
        (id.as_str(), &comment)
    );
}

#[tokio::test]
async fn keys_count_per_project_and_workflows_are_the_tests() {
    let fake = fake().await;
    fake.add_project("SEC", &["Incident"]);
    fake.set_workflow(
        "SEC",
        Workflow::new("Open").transition("5", "Close", &["Open"], "Closed"),
    );
    let jira = client(&fake);
    for (project, key) in [("OPS", "OPS-1"), ("OPS", "OPS-2"), ("SEC", "SEC-1")] {
        let created = jira
            .create_issue(project, "Incident", "x", Value::Null, None, &[] as &[&str])
            .await
            .expect("created");
        assert_eq!(created.key, key);
    }
    jira.transition_to("SEC-1", "close").await.expect("closed");
    assert_eq!(fake.issue("SEC-1").map(|i| i.status), Some("Closed".into()));
    let err = jira.transition_to("SEC-1", "Mitigated").await.unwrap_err();
    assert!(err.message.contains("available: none"), "{err}");
}

#[tokio::test]
async fn finding_people() {
    let fake = fake().await;
    fake.add_user("alice@example.org", "acc-other-alice", "Alice Other");
    let jira = client(&fake);
    // Two people match the prefix; the email picks one.
    assert_eq!(
        jira.find_account_id("alice@example.com").await,
        Ok(Some("5b10a2844c20165700ede21g".into()))
    );
    assert_eq!(jira.find_account_id("nobody@example.com").await, Ok(None));

    // With addresses hidden: one match is taken, two are not guessed between.
    fake.hide_emails(true);
    fake.add_user("bob@example.com", "acc-bob", "Bob");
    assert_eq!(
        jira.find_account_id("bob@example.com").await,
        Ok(Some("acc-bob".into()))
    );
    assert_eq!(jira.find_account_id("alice@example").await, Ok(None));
}

#[tokio::test]
async fn credentials_refused() {
    let fake = fake().await;
    let wrong = JiraClient::new(&fake.base_url(), TEST_EMAIL, "wrong-token").expect("valid");
    let err = create(&wrong).await.unwrap_err();
    assert_kind(&err, ErrorKind::Auth, false, Some(401));
    assert!(err.message.contains("You are not authenticated"), "{err}");
    assert_eq!(err.code.as_deref(), Some("401"));
    assert!(!err.retryable());
    let err = wrong
        .find_account_id("alice@example.com")
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Auth, false, Some(401));
    assert!(!err.message.contains("alice@example.com"), "{err}");
    assert!(fake.issues().is_empty());
}

#[tokio::test]
async fn invalid_requests_are_permanent_and_say_which_field() {
    let fake = fake().await;
    let jira = client(&fake);
    let try_create = |project: &'static str,
                      issue_type: &'static str,
                      description: Value,
                      assignee: Option<&'static str>| {
        let jira = jira.clone();
        async move {
            jira.create_issue(
                project,
                issue_type,
                "x",
                description,
                assignee,
                &[] as &[&str],
            )
            .await
            .unwrap_err()
        }
    };
    let cases = [
        (try_create("NOPE", "Incident", Value::Null, None).await, "project: Specify a valid project ID or key"),
        (try_create("OPS", "Epic", Value::Null, None).await, "issuetype: Specify a valid issue type"),
        (try_create("OPS", "Incident", json!("plain text"), None).await, "description: Operation value must be an Atlassian Document"),
        (
            try_create(
                "OPS",
                "Incident",
                json!({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}),
                None,
            )
            .await,
            "an empty text node at /content/0/content/0",
        ),
        (try_create("OPS", "Incident", Value::Null, Some("acc-nobody")).await, "assignee: Specified user does not exist"),
    ];
    for (err, detail) in cases {
        assert_kind(&err, ErrorKind::Permanent, false, Some(400));
        assert!(err.message.contains(detail), "{err}");
    }

    let err = jira.transitions("OPS-99").await.unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(404));
    assert!(err.message.contains("Issue does not exist"), "{err}");
    let err = jira
        .add_comment("OPS-99", Doc::new().paragraph("x").into_value())
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(404));
    // A key that would leave its path is refused before any request.
    let before = fake.requests().len();
    let err = jira.transitions("../../admin").await.unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, None);
    assert_eq!(fake.requests().len(), before);

    create(&jira).await.expect("created OPS-1");
    let err = jira
        .add_comment("OPS-1", json!({"type": "doc", "version": 1, "content": [{"type": "bulletList", "content": []}]}))
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(400));
    assert!(err.message.contains("comment:"), "{err}");
    assert!(fake.issues().iter().all(|i| i.comments.is_empty()));
}

#[tokio::test]
async fn rate_limits_and_outages() {
    let fake = fake().await;
    let jira = client(&fake);

    fake.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 12,
        },
    );
    let err = create(&jira).await.unwrap_err();
    assert_kind(
        &err,
        ErrorKind::RateLimited {
            retry_after: Some(Duration::from_secs(12)),
        },
        false,
        Some(429),
    );
    assert!(err.retryable());

    fake.fail_next(1, Fault::Status(503));
    assert_kind(
        &create(&jira).await.unwrap_err(),
        ErrorKind::Transient,
        false,
        Some(503),
    );
    // A 500 may come after the issue was made.
    fake.fail_next(1, Fault::Status(500));
    assert_kind(
        &create(&jira).await.unwrap_err(),
        ErrorKind::Transient,
        true,
        Some(500),
    );
    // Reads are never in doubt.
    fake.fail_next(1, Fault::Status(500));
    let err = jira.find_account_id("alice@example.com").await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, Some(500));
    assert!(fake.issues().is_empty(), "faults create nothing");
    assert_eq!(create(&jira).await.map(|c| c.key), Ok("OPS-1".into()));
}

#[tokio::test]
async fn no_answer_after_the_request_was_sent_is_in_doubt() {
    let fake = fake().await;
    let jira = client(&fake)
        .with_timeout(Duration::from_millis(300))
        .expect("valid timeout");

    fake.fail_next(1, Fault::Hang);
    let err = create(&jira).await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, None);
    assert_eq!(
        fake.issues().len(),
        1,
        "the issue exists: a retry would duplicate it"
    );

    fake.fail_next(1, Fault::DropAfterAccept);
    let err = client(&fake)
        .add_comment("OPS-1", Doc::new().paragraph("x").into_value())
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Transient, true, None);
    assert_eq!(fake.issue("OPS-1").map(|i| i.comments.len()), Some(1));

    fake.fail_next(1, Fault::Hang);
    let err = jira.transitions("OPS-1").await.unwrap_err();
    assert_kind(&err, ErrorKind::Transient, false, None);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_by_its_label() {
    let fake = fake().await;
    let jira = client(&fake)
        .with_timeout(Duration::from_millis(300))
        .expect("valid timeout");
    fake.fail_next(1, Fault::DropAfterAccept);
    let err = jira
        .create_issue(
            "OPS",
            "Incident",
            "db1 disk full",
            description(),
            None,
            &["pagerd-delivery-42"],
        )
        .await
        .unwrap_err();
    assert!(err.in_doubt, "{err}");
    let found = jira
        .find_by_label("OPS", "pagerd-delivery-42")
        .await
        .expect("searched");
    assert_eq!(found.as_deref(), Some("OPS-1"));
    assert_eq!(
        jira.find_by_label("OPS", "pagerd-delivery-43")
            .await
            .expect("searched"),
        None
    );
    // A project Jira does not know is Jira's 400: permanent, and says which.
    let err = jira
        .find_by_label("NOPE", "pagerd-delivery-42")
        .await
        .unwrap_err();
    assert_kind(&err, ErrorKind::Permanent, false, Some(400));
    assert!(err.message.contains("NOPE"), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_transient_and_certainly_not_sent() {
    let fake = fake().await;
    let base = fake.base_url();
    fake.shutdown().await;
    let jira = JiraClient::new(&base, TEST_EMAIL, TEST_API_TOKEN).expect("valid");
    assert_kind(
        &create(&jira).await.unwrap_err(),
        ErrorKind::Transient,
        false,
        None,
    );
}

fn spec() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/spec/jira/jira_platform_v3.json"
    );
    let text = std::fs::read_to_string(path).expect("the Jira spec is in tests/spec");
    serde_json::from_str(&text).expect("the spec is JSON")
}

/// The spec path template (`/rest/api/3/issue/{issueIdOrKey}/transitions`) matching `path`.
fn template<'a>(spec: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    spec["paths"]
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| {
                    (p.starts_with('{') && p.ends_with('}') && !s.is_empty()) || p == s
                })
        })
}

/// A schema with its `$ref` followed.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => &spec["components"]["schemas"][name],
        None => schema,
    }
}

/// Every request the client sends is an operation of the spec (path and method), with only
/// query parameters it declares, and a JSON body whose top-level members its schema declares.
#[tokio::test]
async fn every_request_is_declared_in_jiras_openapi_description() {
    let spec = spec();
    let fake = fake().await;
    let jira = client(&fake);
    jira.find_account_id("alice@example.com")
        .await
        .expect("found");
    let created = jira
        .create_issue(
            "OPS",
            "Incident",
            "x",
            description(),
            Some("5b10a2844c20165700ede21g"),
            &["a"],
        )
        .await
        .expect("created");
    jira.transitions(&created.key).await.expect("listed");
    jira.transition_to(&created.key, "Mitigated")
        .await
        .expect("moved");
    jira.transition_to(&created.key, "Mitigated")
        .await
        .expect("already there");
    jira.status(&created.key).await.expect("read");
    jira.add_comment(&created.key, description())
        .await
        .expect("commented");
    jira.find_by_label("OPS", "a").await.expect("searched");

    let requests = fake.requests();
    assert!(requests.len() >= 8, "{requests:?}");
    let mut operations = std::collections::BTreeSet::new();
    for request in &requests {
        let template = template(&spec, &request.path)
            .unwrap_or_else(|| panic!("{} is not a path of the spec", request.path));
        let path_item = &spec["paths"][template];
        let operation = &path_item[request.method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{} {template} is not in the spec",
            request.method
        );
        operations.insert(format!("{} {template}", request.method));

        let declared: Vec<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .chain(path_item["parameters"].as_array())
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str())
            .collect();
        for (name, _) in &request.query {
            assert!(
                declared.contains(&name.as_str()),
                "{template} takes no query {name}"
            );
        }
        if let Some(Value::Object(body)) = &request.body {
            let schema = resolve(
                &spec,
                &operation["requestBody"]["content"]["application/json"]["schema"],
            );
            let properties = schema["properties"].as_object().expect("a body schema");
            for member in body.keys() {
                assert!(
                    properties.contains_key(member),
                    "{template}: no body member {member}"
                );
            }
        }
        assert!(request.status.is_some_and(|s| s < 300), "{request:?}");
    }
    assert_eq!(
        operations.into_iter().collect::<Vec<_>>(),
        [
            "GET /rest/api/3/issue/{issueIdOrKey}",
            "GET /rest/api/3/issue/{issueIdOrKey}/transitions",
            "GET /rest/api/3/user/search",
            "POST /rest/api/3/issue",
            "POST /rest/api/3/issue/{issueIdOrKey}/comment",
            "POST /rest/api/3/issue/{issueIdOrKey}/transitions",
            "POST /rest/api/3/search",
        ]
    );

    // The fields we set are system fields the spec's create example and IssueUpdateDetails know.
    let create = resolve(
        &spec,
        &spec["paths"]["/rest/api/3/issue"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"],
    );
    assert!(create["properties"]["fields"].is_object());
    let example = &spec["paths"]["/rest/api/3/issue"]["post"]["requestBody"]["content"]
        ["application/json"]["example"]["fields"];
    for field in [
        "summary",
        "issuetype",
        "project",
        "description",
        "assignee",
        "labels",
    ] {
        assert!(
            !example[field].is_null(),
            "the spec's example has no {field}"
        );
    }
    assert_eq!(example["description"]["type"], "doc");
    assert_eq!(example["description"]["version"], 1);
}
