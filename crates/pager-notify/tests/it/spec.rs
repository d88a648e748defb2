//! Cross-checks against Twilio's own OpenAPI description, kept beside the repository in
//! `shared/reference/twilio/`. Skipped, with a note, where that file is absent.

use std::collections::BTreeSet;
use std::path::PathBuf;

use pager_fakes::twilio::{FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_FROM};
use serde_json::Value;

const MESSAGES: &str = "/2010-04-01/Accounts/{AccountSid}/Messages.json";
const CALLS: &str = "/2010-04-01/Accounts/{AccountSid}/Calls.json";

fn spec() -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/twilio/twilio_api_v2010.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: no Twilio OpenAPI spec at {}", path.display());
        return None;
    };
    Some(serde_json::from_str(&text).expect("the spec is JSON"))
}

fn post<'a>(spec: &'a Value, path: &str) -> &'a Value {
    &spec["paths"][path]["post"]
}

fn form_schema<'a>(spec: &'a Value, path: &str) -> &'a Value {
    &post(spec, path)["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
}

fn names(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The schema a 201 answer of `path` refers to.
fn created_schema<'a>(spec: &'a Value, path: &str) -> &'a Value {
    let reference = post(spec, path)["responses"]["201"]["content"]["application/json"]["schema"]
        ["$ref"]
        .as_str()
        .expect("201 has a schema $ref");
    let name = reference
        .strip_prefix("#/components/schemas/")
        .expect("local ref");
    &spec["components"]["schemas"][name]
}

#[test]
fn the_parameters_we_send_exist_and_the_required_ones_are_checked() {
    let Some(spec) = spec() else { return };

    let messages = form_schema(&spec, MESSAGES);
    let properties = names(&messages["properties"]);
    for field in [
        "To",
        "From",
        "MessagingServiceSid",
        "Body",
        "MediaUrl",
        "ContentSid",
    ] {
        assert!(properties.contains(field), "Messages.json has no {field}");
    }
    // The schema requires only `To`; `From` or `MessagingServiceSid`, and a body, are required
    // by prose and error codes (21603, 21602), which the fake enforces too.
    assert_eq!(names(&messages["required"]), set(&["To"]));

    let calls = form_schema(&spec, CALLS);
    let properties = names(&calls["properties"]);
    for field in ["To", "From", "Twiml", "Timeout", "Url", "ApplicationSid"] {
        assert!(properties.contains(field), "Calls.json has no {field}");
    }
    assert_eq!(names(&calls["required"]), set(&["To", "From"]));
    assert_eq!(calls["properties"]["Timeout"]["type"], "integer");

    for path in [MESSAGES, CALLS] {
        let account = &post(&spec, path)["parameters"][0];
        assert_eq!(account["name"], "AccountSid");
        assert_eq!(account["schema"]["pattern"], "^AC[0-9a-fA-F]{32}$");
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["accountSid_authToken"]["scheme"],
        "basic"
    );
}

#[test]
fn the_limits_we_cut_to_are_the_documented_ones() {
    let Some(spec) = spec() else { return };
    let body = form_schema(&spec, MESSAGES)["properties"]["Body"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(body.contains("up to 1,600 characters"), "{body}");
    assert_eq!(pager_notify::twilio::MAX_SMS_BODY, 1600);
    let twiml = form_schema(&spec, CALLS)["properties"]["Twiml"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(twiml.contains("Max 4000 characters"), "{twiml}");
    assert_eq!(pager_notify::twilio::MAX_TWIML, 4000);
}

async fn create(twilio: &FakeTwilio, resource: &str, form: &[(&str, &str)]) -> Value {
    let url = format!(
        "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/{resource}",
        twilio.base_url()
    );
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(TEST_ACCOUNT_SID, Some(TEST_AUTH_TOKEN))
        .form(form)
        .send()
        .await
        .expect("fake answers");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

fn assert_fits(resource: &Value, schema: &Value, spec: &Value) {
    assert_eq!(
        names(resource),
        names(&schema["properties"]),
        "fields differ from the spec's schema"
    );
    let sid = resource["sid"].as_str().expect("sid");
    let pattern = schema["properties"]["sid"]["pattern"]
        .as_str()
        .expect("pattern");
    // `^(SM|MM)[0-9a-fA-F]{32}$` or `^CA[0-9a-fA-F]{32}$`
    let prefixes: Vec<&str> = pattern
        .trim_start_matches('^')
        .split('[')
        .next()
        .unwrap_or_default()
        .trim_matches(|c| c == '(' || c == ')')
        .split('|')
        .collect();
    assert!(
        prefixes.iter().any(|p| sid.starts_with(p)),
        "{sid} vs {pattern}"
    );
    assert_eq!(sid.len(), 34);
    assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    let status_enum = schema["properties"]["status"]["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .map(|name| &spec["components"]["schemas"][name]["enum"])
        .expect("status enum");
    assert!(
        status_enum
            .as_array()
            .is_some_and(|values| values.contains(&resource["status"])),
        "status {} not in {status_enum}",
        resource["status"]
    );
    assert_eq!(resource["api_version"], "2010-04-01");
    assert_eq!(resource["account_sid"], TEST_ACCOUNT_SID);
    let date = resource["date_created"].as_str().expect("date");
    assert!(date.ends_with(" +0000") && date.len() == 31, "{date}");
}

#[tokio::test]
async fn the_fakes_resources_have_the_specs_shape() {
    let Some(spec) = spec() else { return };
    let twilio = FakeTwilio::start(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).await;

    let message = create(
        &twilio,
        "Messages.json",
        &[("To", "+15551234567"), ("From", TEST_FROM), ("Body", "hi")],
    )
    .await;
    assert_fits(&message, created_schema(&spec, MESSAGES), &spec);
    assert_eq!(message["status"], "queued");

    let call = create(
        &twilio,
        "Calls.json",
        &[
            ("To", "+15551234567"),
            ("From", TEST_FROM),
            ("Twiml", "<Response><Say>hi</Say></Response>"),
        ],
    )
    .await;
    assert_fits(&call, created_schema(&spec, CALLS), &spec);
    assert_eq!(call["status"], "queued");
}

#[test]
fn the_call_parameters_of_a_voice_call_by_url_exist() {
    let Some(spec) = spec() else { return };
    let properties = &form_schema(&spec, CALLS)["properties"];
    for field in [
        "Url",
        "Method",
        "FallbackUrl",
        "FallbackMethod",
        "StatusCallback",
        "StatusCallbackMethod",
        "StatusCallbackEvent",
        "MachineDetection",
    ] {
        assert!(properties.get(field).is_some(), "Calls.json has no {field}");
    }
    for method in ["Method", "FallbackMethod", "StatusCallbackMethod"] {
        let values = &properties[method]["enum"];
        assert!(
            values
                .as_array()
                .is_some_and(|v| v.contains(&"POST".into())),
            "{method}: {values}"
        );
    }
    // An array: sent as one `StatusCallbackEvent` pair per event.
    let events = &properties["StatusCallbackEvent"];
    assert_eq!(events["type"], "array");
    let text = events["description"].as_str().unwrap_or_default();
    for event in pager_notify::twilio::CALL_STATUS_EVENTS {
        assert!(text.contains(&format!("`{event}`")), "{event} in {text}");
    }
    assert!(
        text.contains("separate `status_callback_event` parameter"),
        "{text}"
    );
    let detection = properties["MachineDetection"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(detection.contains("`Enable`"), "{detection}");
    let timeout = properties["Timeout"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        timeout.contains("the maximum is `600` seconds"),
        "{timeout}"
    );
    assert_eq!(pager_notify::twilio::MAX_CALL_RING_TIMEOUT_SECS, 600);
}

#[test]
fn the_list_query_parameters_exist() {
    let Some(spec) = spec() else { return };
    let parameters = &spec["paths"][MESSAGES]["get"]["parameters"];
    let query: BTreeSet<String> = parameters
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        query,
        set(&[
            "To",
            "From",
            "DateSent",
            "DateSent<",
            "DateSent>",
            "PageSize",
            "Page",
            "PageToken"
        ])
    );
    let page_size = parameters
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "PageSize"))
        .expect("PageSize");
    assert_eq!(page_size["schema"]["maximum"], 1000);
    // Twilio's own example encodes `DateSent>` as `DateSent%3E=` in a query string.
    let example = &spec["paths"][MESSAGES]["get"]["responses"]["200"]["content"]
        ["application/json"]["examples"]["readFullPage1"]["value"]["first_page_uri"];
    assert!(
        example
            .as_str()
            .is_some_and(|uri| uri.contains("DateSent%3E=2008-01-02")),
        "{example}"
    );
}

#[tokio::test]
async fn the_fakes_list_has_the_specs_envelope() {
    let Some(spec) = spec() else { return };
    let twilio = FakeTwilio::start(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).await;
    for body in ["one", "two"] {
        create(
            &twilio,
            "Messages.json",
            &[("To", "+15551234567"), ("From", TEST_FROM), ("Body", body)],
        )
        .await;
    }
    let (status, list) =
        crate::lookup::get_list(&twilio, &[("To", "+15551234567"), ("PageSize", "1")]).await;
    assert_eq!(status, 200);
    let envelope = &spec["paths"][MESSAGES]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert_eq!(names(&list), names(&envelope["properties"]));
    let message_schema = &spec["components"]["schemas"]["api.v2010.account.message"];
    let messages = list["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    for message in messages {
        assert_fits(message, message_schema, &spec);
        let sent = message["date_sent"].as_str().expect("date_sent");
        assert!(sent.ends_with(" +0000"), "{sent}");
    }
    assert!(list["next_page_uri"].is_string());
}
