//! Existing monitoring switches to pagerd by changing a URL: PagerDuty's
//! Events API v2 on `POST /v2/enqueue` and Alertmanager's webhook on
//! `POST /v1/alertmanager/{key}`, fed the payloads those tools send
//! (`tests/fixtures/`). Every refusal answers in PagerDuty's error shape and
//! applies nothing, as the gRPC incident list shows.

mod common;

use common::Cluster;
use pager_proto::pager::v1 as pb;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::time::Duration;
use tracing::info;

/// The key of the PagerDuty fixtures: 32 characters, as PagerDuty's are.
const PD_KEY: &str = "5f2c8e41a9d04b7c93e6a1f08b2d47c6";
/// Any pagerd integration key works in the Alertmanager URL.
const AM_KEY: &str = "prom-datapipe-0001";
const GROUP: &str = r#"{}/{team="datapipe"}:{alertname="InstanceDown"}"#;
const FINGERPRINTS: [&str; 2] = ["5d4f8a3c2b1e0f97", "a07c19e4d2b86f31"];

const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
notification_rules.low = [ { after = "0", contact = "sms" } ]
[escalation_policies.ops]
levels = [ { escalate_after = "1h", targets = [ { user = "alice" } ] } ]
[services.datapipe]
integration_keys = ["5f2c8e41a9d04b7c93e6a1f08b2d47c6"]
escalation_policy = "ops"
urgency = "severity"
[services.prometheus]
integration_keys = ["prom-datapipe-0001"]
escalation_policy = "ops"
urgency = "severity"
"#;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture is JSON")
}

/// POST `body` to node `id`'s HTTP port; (status, JSON body, headers).
async fn post(
    c: &Cluster,
    id: usize,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, HeaderMap) {
    let res = reqwest::Client::new()
        .post(format!("http://{}{path}", c.addrs[id - 1].http))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("http request");
    let code = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a JSON answer ({e}), got {code}: {text}"));
    (code, body, headers)
}

/// Node `id`'s incidents, oldest first.
async fn incidents(c: &Cluster, id: usize) -> Vec<pb::Incident> {
    let mut list = c
        .incidents(id)
        .await
        .list(pb::ListIncidentsRequest::default())
        .await
        .expect("list incidents")
        .into_inner()
        .incidents;
    list.sort_by_key(|i| i.id);
    list
}

fn status(s: pb::IncidentStatus) -> i32 {
    s as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pagerduty_trigger_acknowledge_resolve_walk_one_incident() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    c.apply(f, ONCALL).await;
    let processed =
        json!({"status": "success", "message": "Event processed", "dedup_key": "db-prod-1/disk"});

    info!("--- trigger through a follower's HTTP port");
    let (code, body, _) = post(&c, f, "/v2/enqueue", fixture("pagerduty/trigger.json")).await;
    assert_eq!((code, &body), (202, &processed));
    // The leader applied the event before the follower answered.
    let list = incidents(&c, leader).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let inc = &list[0];
    assert_eq!(inc.service, "datapipe");
    assert_eq!(inc.dedup_key, "db-prod-1/disk");
    assert_eq!(
        inc.summary,
        "Disk /var/lib/mysql at 97% on db-prod-1.example.com"
    );
    assert_eq!(inc.source, "db-prod-1.example.com");
    assert_eq!(
        (inc.severity.as_str(), inc.urgency.as_str()),
        ("critical", "high")
    );
    assert_eq!(inc.status, status(pb::IncidentStatus::Triggered));
    let details = c
        .node(leader)
        .node
        .read(|s| s.incidents[&inc.id].custom_details.clone());
    assert_eq!(details["free space"], "3%");
    assert_eq!(details["load avg"], "1.25");
    assert_eq!(details["client"], "Example Monitoring");
    assert_eq!(details["client_url"], "https://monitoring.example.com");
    assert_eq!(details["timestamp"], "2026-03-07T10:15:30.123+0000");
    assert!(details["links"].contains("Host dashboard"), "{details:?}");
    assert!(
        details["images"].contains("db-prod-1-disk.png"),
        "{details:?}"
    );
    let sms = c
        .twilio
        .wait_for_messages(1, Duration::from_secs(5))
        .await
        .expect("the trigger pages");
    assert_eq!(sms[0].to, "+15550100001");

    info!("--- acknowledge, then resolve, by the same dedup key");
    for (file, want) in [
        ("acknowledge", pb::IncidentStatus::Acknowledged),
        ("resolve", pb::IncidentStatus::Resolved),
    ] {
        let (code, body, _) = post(
            &c,
            f,
            "/v2/enqueue",
            fixture(&format!("pagerduty/{file}.json")),
        )
        .await;
        assert_eq!((code, &body), (202, &processed), "{file}");
        let list = incidents(&c, leader).await;
        assert_eq!(list.len(), 1, "{file}: still one incident");
        assert_eq!(list[0].id, inc.id);
        assert_eq!(list[0].status, status(want), "{file}");
    }

    info!("--- a trigger without dedup_key answers with the key pagerd assigned");
    let mut event = fixture_json("pagerduty/trigger.json");
    event.as_object_mut().unwrap().remove("dedup_key");
    let (code, body, _) = post(&c, f, "/v2/enqueue", event.to_string()).await;
    assert_eq!(code, 202, "{body}");
    let key = body["dedup_key"].as_str().expect("a dedup key");
    let list = incidents(&c, leader).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].dedup_key, key);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alertmanager_group_opens_one_incident_per_alert_and_resolves_them() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    let path = format!("/v1/alertmanager/{AM_KEY}");

    info!("--- a firing group of two alerts");
    let (code, body, _) = post(&c, 1, &path, fixture("alertmanager/firing.json")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "success");
    let opened: Vec<u64> = FINGERPRINTS
        .iter()
        .enumerate()
        .map(|(i, fp)| {
            let a = &body["alerts"][i];
            assert_eq!(a["fingerprint"], *fp);
            assert_eq!(a["status"], "firing");
            assert_eq!(a["dedup_key"], format!("{GROUP}:{fp}"));
            assert_eq!(a["folded"], false);
            assert_eq!(a["applied"], true);
            a["incident_id"].as_u64().expect("an incident")
        })
        .collect();
    let list = incidents(&c, 1).await;
    assert_eq!(list.iter().map(|i| i.id).collect::<Vec<_>>(), opened);
    let (db1, db2) = (&list[0], &list[1]);
    assert_eq!(db1.service, "prometheus");
    assert_eq!(db1.summary, "db1.example.com:9100 is down");
    assert_eq!(db1.source, "db1.example.com:9100");
    assert_eq!(
        (db1.severity.as_str(), db1.urgency.as_str()),
        ("critical", "high")
    );
    assert_eq!(
        db2.summary, "db2.example.com:9100 of job node has been down for more than 5 minutes.",
        "no summary annotation: the description"
    );
    assert_eq!(
        (db2.severity.as_str(), db2.urgency.as_str()),
        ("error", "high"),
        "severity \"page\" is not pagerd's: error, as Alertmanager's PagerDuty receiver"
    );
    assert!(list
        .iter()
        .all(|i| i.status == status(pb::IncidentStatus::Triggered)));
    let details = c
        .node(1)
        .node
        .read(|s| s.incidents[&db1.id].custom_details.clone());
    assert_eq!(details["labels.team"], "datapipe");
    assert_eq!(
        details["annotations.runbook_url"],
        "https://runbooks.example.com/instance-down"
    );
    assert_eq!(details["startsAt"], "2026-03-07T10:15:30.123Z");
    assert_eq!(details["fingerprint"], FINGERPRINTS[0]);
    assert!(!details.contains_key("endsAt"), "unset endsAt is left out");
    c.twilio
        .wait_for_messages(2, Duration::from_secs(5))
        .await
        .expect("both alerts page");

    info!("--- Alertmanager repeats the notification: the alerts fold");
    let (code, body, _) = post(&c, 1, &path, fixture("alertmanager/firing.json")).await;
    assert_eq!(code, 200, "{body}");
    for (i, id) in opened.iter().enumerate() {
        assert_eq!(body["alerts"][i]["incident_id"], *id);
        assert_eq!(body["alerts"][i]["folded"], true);
    }
    assert_eq!(incidents(&c, 1).await.len(), 2);

    info!("--- the resolved notification resolves both");
    let (code, body, _) = post(&c, 1, &path, fixture("alertmanager/resolved.json")).await;
    assert_eq!(code, 200, "{body}");
    for (i, id) in opened.iter().enumerate() {
        assert_eq!(body["alerts"][i]["status"], "resolved");
        assert_eq!(body["alerts"][i]["incident_id"], *id);
    }
    let list = incidents(&c, 1).await;
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .all(|i| i.status == status(pb::IncidentStatus::Resolved)),
        "{list:?}"
    );
    c.shutdown().await;
}

/// One refused request: where, what, and the answer expected. Each expected
/// error is a prefix of the answer's error at the same position.
struct Refused {
    what: &'static str,
    path: String,
    body: String,
    code: u16,
    status: &'static str,
    errors: Vec<&'static str>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_requests_answer_in_pagerduty_shape_and_apply_nothing() {
    let c = Cluster::start(1).await;
    c.apply(1, ONCALL).await;
    let pd = "/v2/enqueue".to_string();
    let am = format!("/v1/alertmanager/{AM_KEY}");
    let trigger = fixture_json("pagerduty/trigger.json");
    let firing = fixture_json("alertmanager/firing.json");
    let edit = |v: &Value, f: &dyn Fn(&mut Value)| {
        let mut v = v.clone();
        f(&mut v);
        v.to_string()
    };
    let pd_limit = pagerd::edge::compat::pagerduty::MAX_BODY_BYTES;
    let am_limit = pagerd::edge::compat::alertmanager::MAX_BODY_BYTES;
    let invalid = "invalid event";
    let cases = vec![
        Refused {
            what: "malformed JSON",
            path: pd.clone(),
            body: r#"{"routing_key": "#.into(),
            code: 400,
            status: "Unrecognized object",
            errors: vec!["body: JSON parse error"],
        },
        Refused {
            what: "not an object",
            path: pd.clone(),
            body: r#"["trigger"]"#.into(),
            code: 400,
            status: invalid,
            errors: vec!["body: expected a JSON object, got array"],
        },
        Refused {
            what: "wrong types",
            path: pd.clone(),
            body: edit(&trigger, &|v| {
                v["routing_key"] = json!(42);
                v["payload"]["severity"] = json!(3);
                v["links"] = json!("https://example.com");
            }),
            code: 400,
            status: invalid,
            errors: vec![
                "routing_key: expected a string, got number",
                "payload.severity: expected a string, got number",
                "links: expected an array, got string",
            ],
        },
        Refused {
            what: "trigger without summary, source, severity",
            path: pd.clone(),
            body: json!({"routing_key": PD_KEY, "event_action": "trigger", "payload": {}})
                .to_string(),
            code: 400,
            status: invalid,
            errors: vec![
                "payload.summary: required on trigger",
                "payload.source: required on trigger",
                "payload.severity: required on trigger",
            ],
        },
        Refused {
            what: "empty object",
            path: pd.clone(),
            body: "{}".into(),
            code: 400,
            status: invalid,
            errors: vec!["routing_key: required", "event_action: required"],
        },
        Refused {
            what: "acknowledge without dedup_key",
            path: pd.clone(),
            body: json!({"routing_key": PD_KEY, "event_action": "acknowledge"}).to_string(),
            code: 400,
            status: invalid,
            errors: vec!["dedup_key: required on acknowledge and resolve"],
        },
        Refused {
            what: "unknown severity",
            path: pd.clone(),
            body: edit(&trigger, &|v| v["payload"]["severity"] = json!("sev1")),
            code: 400,
            status: invalid,
            errors: vec![
                r#"payload.severity: "sev1" is not one of critical, error, warning, info"#,
            ],
        },
        Refused {
            what: "body over 512 KiB",
            path: pd.clone(),
            body: edit(&trigger, &|v| {
                v["payload"]["custom_details"]["log"] = json!("x".repeat(pd_limit))
            }),
            code: 413,
            status: invalid,
            errors: vec!["body: larger than 524288 bytes"],
        },
        Refused {
            what: "unknown routing key",
            path: pd.clone(),
            body: edit(&trigger, &|v| v["routing_key"] = json!("no-such-key-0000")),
            code: 400,
            status: invalid,
            errors: vec!["routing_key: no service has this integration key"],
        },
        Refused {
            what: "alertmanager: malformed JSON",
            path: am.clone(),
            body: fixture("alertmanager/firing.json")[..100].to_string(),
            code: 400,
            status: "Unrecognized object",
            errors: vec!["body: JSON parse error"],
        },
        Refused {
            what: "alertmanager: one good alert, one bad, no groupKey",
            path: am.clone(),
            body: edit(&firing, &|v| {
                v.as_object_mut().unwrap().remove("groupKey");
                v["alerts"][1]["status"] = json!("pending");
                v["alerts"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("fingerprint");
            }),
            code: 400,
            status: invalid,
            errors: vec![
                "groupKey: required",
                r#"alerts[1].status: "pending" is not firing or resolved"#,
                "alerts[1].fingerprint: required",
            ],
        },
        Refused {
            what: "alertmanager: wrong types",
            path: am.clone(),
            body: edit(&firing, &|v| {
                v["alerts"][0]["labels"] = json!("InstanceDown");
                v["alerts"][1]["annotations"]["summary"] = json!(5);
            }),
            code: 400,
            status: invalid,
            errors: vec![
                "alerts[0].labels: expected an object, got string",
                "alerts[1].annotations.summary: expected a string, got number",
            ],
        },
        Refused {
            what: "alertmanager: no alerts",
            path: am.clone(),
            body: edit(&firing, &|v| v["alerts"] = json!([])),
            code: 400,
            status: invalid,
            errors: vec!["alerts: at least one alert"],
        },
        Refused {
            what: "alertmanager: unknown integration key",
            path: "/v1/alertmanager/no-such-key-0000".into(),
            body: firing.to_string(),
            code: 404,
            status: "not found",
            errors: vec!["integration_key: no service has this integration key"],
        },
        Refused {
            what: "alertmanager: body over 8 MiB",
            path: am.clone(),
            body: edit(&firing, &|v| {
                v["alerts"][0]["annotations"]["log"] = json!("x".repeat(am_limit))
            }),
            code: 413,
            status: invalid,
            errors: vec!["body: larger than 8388608 bytes"],
        },
    ];
    for case in cases {
        info!(what = case.what, "--- refused");
        let (code, body, headers) = post(&c, 1, &case.path, case.body).await;
        let w = case.what;
        assert_eq!(code, case.code, "{w}: {body}");
        assert_eq!(
            headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..]),
            "{w}"
        );
        assert_eq!(body["status"], case.status, "{w}: {body}");
        assert!(body["message"].as_str().is_some(), "{w}: {body}");
        let errors: Vec<&str> = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{w}: an errors list: {body}"))
            .iter()
            .map(|e| e.as_str().expect("errors are strings"))
            .collect();
        assert_eq!(errors.len(), case.errors.len(), "{w}: {errors:?}");
        for (got, want) in errors.iter().zip(&case.errors) {
            assert!(got.starts_with(want), "{w}: {got:?} is not {want:?}");
        }
    }

    assert!(incidents(&c, 1).await.is_empty(), "nothing was applied");
    assert_eq!(c.node(1).node.read(|s| s.stats.events), 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_quorum_both_answer_503_and_say_retrying_is_safe() {
    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    c.apply(leader, ONCALL).await;
    let survivor = c.follower(leader);
    let other = (1..=3).find(|&i| i != leader && i != survivor).unwrap();
    info!("--- kill two of three");
    c.kill(leader).await;
    c.kill(other).await;

    let am = format!("/v1/alertmanager/{AM_KEY}");
    for (path, body) in [
        ("/v2/enqueue", fixture("pagerduty/trigger.json")),
        (am.as_str(), fixture("alertmanager/firing.json")),
    ] {
        let (code, body, headers) = post(&c, survivor, path, body).await;
        assert_eq!(code, 503, "{path}: {body}");
        assert_eq!(body["status"], "unavailable");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("retrying is safe"), "{message}");
        assert_eq!(
            headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        if path == am {
            for i in 0..2 {
                assert_eq!(body["alerts"][i]["applied"], false, "{body}");
            }
        }
    }
    assert!(incidents(&c, survivor).await.is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_grpc_resource_exhausted() {
    let c = Cluster::start_tuned(1, |raw| {
        raw.dispatch.events_per_second_per_key = 0.5;
        raw.dispatch.events_burst_per_key = 2;
    })
    .await;
    c.apply(1, ONCALL).await;
    let event = |key: &str| {
        json!({
            "routing_key": PD_KEY,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {"summary": "disk full", "source": "db1", "severity": "critical"},
        })
        .to_string()
    };
    for key in ["r1", "r2"] {
        let (code, _, _) = post(&c, 1, "/v2/enqueue", event(key)).await;
        assert_eq!(code, 202);
    }
    let (code, body, headers) = post(&c, 1, "/v2/enqueue", event("r3")).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["status"], "throttled");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // gRPC shares the bucket: RESOURCE_EXHAUSTED naming the field.
    let mut req = common::trigger(PD_KEY, "r4");
    req.routing_key = PD_KEY.into();
    let err = c.events(1).await.send(req).await.expect_err("throttled");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(
        err.message().starts_with("routing_key"),
        "{}",
        err.message()
    );
    assert!(err.metadata().get("retry-after").is_some());
    // Nothing of the throttled events was applied.
    let keys: Vec<String> = incidents(&c, 1)
        .await
        .into_iter()
        .map(|i| i.dedup_key)
        .collect();
    assert_eq!(keys, vec!["r1", "r2"]);
    c.shutdown().await;
}
