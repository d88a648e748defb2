//! Event routing rules: each op, how rules combine, validation paths, regex
//! safety, and the TOML form.

use pager_core::oncall::Problem;
use pager_core::routing::{validate, Condition, Decision, Op, Router, RoutingRule};
use pager_core::{Event, Severity, Urgency};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn event() -> Event {
    Event {
        routing_key: "int-key-0001".into(),
        summary: "Checkout DB replication lag 45s".into(),
        source: "db-7.prod".into(),
        severity: Severity::Error,
        component: "postgres".into(),
        group: "checkout".into(),
        class: "replication".into(),
        custom_details: BTreeMap::from([
            ("region".to_string(), "eu-west-1".to_string()),
            ("empty".to_string(), String::new()),
        ]),
        ..Default::default()
    }
}

fn cond(field: &str, op: Op, value: Option<&str>) -> Condition {
    Condition::new(field, op, value)
}

fn rule(name: &str, conditions: Vec<Condition>, route_to: &[&str]) -> RoutingRule {
    RoutingRule {
        name: name.into(),
        conditions,
        route_to: route_to.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn router(rules: &[RoutingRule]) -> Router {
    Router::new(rules).expect("rules compile")
}

/// Whether a single condition holds for `ev`.
fn holds(c: Condition, ev: &Event) -> bool {
    let r = router(&[rule("r", vec![c], &["svc"])]);
    r.route(ev, None).matched == ["r"]
}

fn problems(list: &[(&str, &str)]) -> Vec<Problem> {
    list.iter()
        .map(|(p, m)| Problem {
            path: p.to_string(),
            message: m.to_string(),
        })
        .collect()
}

// ---- each op ----

#[test]
fn op_equals() {
    let ev = event();
    assert!(holds(cond("component", Op::Equals, Some("postgres")), &ev));
    assert!(!holds(cond("component", Op::Equals, Some("Postgres")), &ev));
    assert!(!holds(cond("component", Op::Equals, Some("postgre")), &ev));
    assert!(holds(cond("severity", Op::Equals, Some("error")), &ev));
    assert!(!holds(cond("severity", Op::Equals, Some("critical")), &ev));
    assert!(holds(
        cond("routing_key", Op::Equals, Some("int-key-0001")),
        &ev
    ));
    // an absent field equals nothing
    assert!(!holds(cond("dedup_key", Op::Equals, Some("x")), &ev));
}

#[test]
fn op_not_equals() {
    let ev = event();
    assert!(holds(cond("component", Op::NotEquals, Some("redis")), &ev));
    assert!(!holds(
        cond("component", Op::NotEquals, Some("postgres")),
        &ev
    ));
    assert!(holds(
        cond("severity", Op::NotEquals, Some("critical")),
        &ev
    ));
    // the negation of equals: holds on an absent field
    assert!(holds(cond("dedup_key", Op::NotEquals, Some("x")), &ev));
    assert!(holds(cond("details.team", Op::NotEquals, Some("x")), &ev));
}

#[test]
fn op_contains() {
    let ev = event();
    assert!(holds(
        cond("summary", Op::Contains, Some("replication lag")),
        &ev
    ));
    assert!(!holds(cond("summary", Op::Contains, Some("checkout")), &ev)); // case-sensitive
    assert!(holds(cond("source", Op::Contains, Some(".prod")), &ev));
    assert!(holds(
        cond("details.region", Op::Contains, Some("eu-")),
        &ev
    ));
    assert!(!holds(cond("details.team", Op::Contains, Some("a")), &ev));
}

#[test]
fn op_matches() {
    let ev = event();
    assert!(holds(
        cond("summary", Op::Matches, Some("(?i)checkout")),
        &ev
    ));
    assert!(!holds(cond("summary", Op::Matches, Some("checkout")), &ev));
    assert!(holds(cond("summary", Op::Matches, Some(r"lag \d+s$")), &ev)); // unanchored search
    assert!(!holds(cond("summary", Op::Matches, Some(r"^lag")), &ev));
    assert!(holds(
        cond("source", Op::Matches, Some(r"^db-\d+\.prod$")),
        &ev
    ));
    assert!(holds(
        cond("details.region", Op::Matches, Some(r"^eu-")),
        &ev
    ));
    // an absent field matches no regex, not even one matching ""
    assert!(!holds(
        cond("class", Op::Matches, Some("x*")),
        &Event::default()
    ));
    assert!(!holds(cond("details.team", Op::Matches, Some(".*")), &ev));
}

#[test]
fn op_exists_and_not_exists() {
    let ev = event();
    for (field, present) in [
        ("summary", true),
        ("source", true),
        ("severity", true), // always present
        ("component", true),
        ("group", true),
        ("class", true),
        ("routing_key", true),
        ("dedup_key", false), // empty
        ("details.region", true),
        ("details.team", false),  // no such key
        ("details.empty", false), // key with an empty value
    ] {
        assert_eq!(
            holds(cond(field, Op::Exists, None), &ev),
            present,
            "{field}"
        );
        assert_eq!(
            holds(cond(field, Op::NotExists, None), &ev),
            !present,
            "{field}"
        );
    }
}

#[test]
fn details_keys_may_contain_dots() {
    let mut ev = event();
    ev.custom_details
        .insert("k8s.namespace".into(), "payments".into());
    assert!(holds(
        cond("details.k8s.namespace", Op::Equals, Some("payments")),
        &ev
    ));
}

// ---- combining conditions and rules ----

#[test]
fn conditions_are_anded() {
    let ev = event();
    let both = vec![
        cond("component", Op::Equals, Some("postgres")),
        cond("details.region", Op::Exists, None),
    ];
    let r = router(&[rule("r", both.clone(), &["db"])]);
    assert_eq!(r.route(&ev, None).services, ["db"]);

    let mut one_fails = both;
    one_fails.push(cond("severity", Op::Equals, Some("critical")));
    let r = router(&[rule("r", one_fails, &["db"])]);
    assert_eq!(r.route(&ev, Some("owner")), decision(&["owner"], &[]));
}

#[test]
fn empty_conditions_match_everything() {
    let r = router(&[rule("catch-all", vec![], &["ops"])]);
    assert_eq!(r.route(&Event::default(), None).matched, ["catch-all"]);
    assert_eq!(r.route(&event(), None).services, ["ops"]);
}

fn decision(services: &[&str], matched: &[&str]) -> Decision {
    Decision {
        services: services.iter().map(|s| s.to_string()).collect(),
        matched: matched.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn first_match_wins() {
    let rules = [
        rule(
            "no",
            vec![cond("component", Op::Equals, Some("redis"))],
            &["cache"],
        ),
        rule(
            "db",
            vec![cond("component", Op::Equals, Some("postgres"))],
            &["database"],
        ),
        rule("all", vec![], &["ops"]),
    ];
    let d = router(&rules).route(&event(), Some("owner"));
    assert_eq!(d, decision(&["database"], &["db"]));
}

#[test]
fn continue_keeps_evaluating_until_a_rule_without_it() {
    let mut a = rule("a", vec![], &["database"]);
    a.continue_matching = true;
    let skipped = rule(
        "skipped",
        vec![cond("group", Op::Equals, Some("x"))],
        &["nope"],
    );
    let b = rule(
        "b",
        vec![cond("group", Op::Equals, Some("checkout"))],
        &["checkout"],
    );
    let after_stop = rule("after-stop", vec![], &["ops"]);
    let d = router(&[a, skipped, b, after_stop]).route(&event(), Some("owner"));
    assert_eq!(d, decision(&["database", "checkout"], &["a", "b"]));
}

#[test]
fn a_shared_component_pages_both_teams_each_once() {
    // Braze: DevOps gets database failures, Product Engineering unhandled
    // exceptions, and both the job queue.
    let mut queue = rule(
        "job-queue",
        vec![cond("component", Op::Equals, Some("job-queue"))],
        &["devops", "product-eng", "devops"],
    );
    queue.continue_matching = true;
    let mut queue_again = rule(
        "queue-backlog",
        vec![cond("summary", Op::Contains, Some("backlog"))],
        &["product-eng", "queue-owners"],
    );
    queue_again.continue_matching = true;
    let db = rule(
        "db",
        vec![cond("component", Op::Equals, Some("postgres"))],
        &["devops"],
    );
    let r = router(&[queue, queue_again, db]);
    let ev = Event {
        component: "job-queue".into(),
        summary: "queue backlog 2M".into(),
        ..Default::default()
    };
    assert_eq!(
        r.route(&ev, Some("owner")),
        decision(
            &["devops", "product-eng", "queue-owners"],
            &["job-queue", "queue-backlog"]
        )
    );
    assert_eq!(r.route(&event(), None), decision(&["devops"], &["db"]));
}

#[test]
fn later_set_actions_override_earlier_ones() {
    let mut first = rule("first", vec![], &[]);
    first.set_severity = Some(Severity::Warning);
    first.set_urgency = Some(Urgency::Low);
    first.runbook_url = Some("https://runbooks.example.com/a".into());
    first.continue_matching = true;
    let mut second = rule("second", vec![], &[]);
    second.set_severity = Some(Severity::Critical);
    second.continue_matching = true;
    let mut third = rule("third", vec![], &[]);
    third.runbook_url = Some("https://runbooks.example.com/c".into());
    let d = router(&[first, second, third]).route(&event(), Some("owner"));
    assert_eq!(
        d,
        Decision {
            services: vec!["owner".into()],
            severity: Some(Severity::Critical),
            urgency: Some(Urgency::Low), // never overridden
            suppressed: false,
            runbook_url: Some("https://runbooks.example.com/c".into()),
            matched: vec!["first".into(), "second".into(), "third".into()],
        }
    );
}

#[test]
fn set_severity_and_urgency_from_one_rule() {
    let mut r = rule(
        "lag",
        vec![cond("class", Op::Equals, Some("replication"))],
        &["database"],
    );
    r.set_severity = Some(Severity::Critical);
    r.set_urgency = Some(Urgency::High);
    let d = router(&[r]).route(&event(), None);
    assert_eq!(d.severity, Some(Severity::Critical));
    assert_eq!(d.urgency, Some(Urgency::High));
    // nothing set when no rule says so
    let d = router(&[rule("x", vec![], &["a"])]).route(&event(), None);
    assert_eq!((d.severity, d.urgency, d.runbook_url), (None, None, None));
}

#[test]
fn suppress_is_sticky_and_keeps_the_services() {
    let mut quiet = rule(
        "quiet-info",
        vec![cond("severity", Op::Equals, Some("error"))],
        &[],
    );
    quiet.suppress = true;
    quiet.continue_matching = true;
    let loud = rule("route", vec![], &["database"]);
    let d = router(&[quiet.clone(), loud]).route(&event(), Some("owner"));
    assert!(d.suppressed);
    assert_eq!(d.services, ["database"]);
    assert_eq!(d.matched, ["quiet-info", "route"]);

    // alone, a suppressing rule leaves the event with its default service
    let d = router(&[quiet]).route(&event(), Some("owner"));
    assert!(d.suppressed);
    assert_eq!(d.services, ["owner"]);
}

#[test]
fn default_service_when_no_rule_routes() {
    let ev = event();
    // no rules
    assert_eq!(
        Router::default().route(&ev, Some("owner")),
        decision(&["owner"], &[])
    );
    // no rule matches
    let r = router(&[rule(
        "redis",
        vec![cond("component", Op::Equals, Some("redis"))],
        &["cache"],
    )]);
    assert_eq!(r.route(&ev, Some("owner")), decision(&["owner"], &[]));
    // a rule matches but routes nowhere (and stops evaluation)
    let r = router(&[rule("stop", vec![], &[]), rule("all", vec![], &["ops"])]);
    assert_eq!(r.route(&ev, Some("owner")), decision(&["owner"], &["stop"]));
    // a rule routes: the default service is not added
    let r = router(&[rule("all", vec![], &["ops"])]);
    assert_eq!(r.route(&ev, Some("owner")), decision(&["ops"], &["all"]));
    // an unknown integration key and no rule: nowhere
    assert_eq!(Router::default().route(&ev, None), Decision::default());
}

#[test]
fn router_is_clone_and_debug() {
    let r = router(&[rule(
        "m",
        vec![cond("summary", Op::Matches, Some("(?i)checkout"))],
        &["a"],
    )]);
    let c = r.clone();
    assert_eq!(c.route(&event(), None), r.route(&event(), None));
    assert!(format!("{r:?}").contains("checkout"));
    assert_eq!((r.len(), r.is_empty()), (1, false));
}

// ---- regex safety ----

#[test]
fn hostile_regex_runs_in_linear_time() {
    // Catastrophic for a backtracking engine: exponential in the length.
    let r = router(&[rule(
        "evil",
        vec![cond("summary", Op::Matches, Some("(a+)+$"))],
        &["x"],
    )]);
    let mut ev = event();
    ev.summary = format!("{}b", "a".repeat(100_000));
    // `(a+)+$` needs a run of a's at the very end: "…ab" has none.
    assert_eq!(r.route(&ev, None).matched, Vec::<String>::new());
    ev.summary = "a".repeat(100_000);
    assert_eq!(r.route(&ev, None).matched, ["evil"]);

    let r = router(&[rule(
        "evil2",
        vec![cond("details.blob", Op::Matches, Some("^(x+x+)+y$"))],
        &["x"],
    )]);
    ev.custom_details.insert("blob".into(), "x".repeat(200_000));
    assert!(r.route(&ev, None).matched.is_empty());
    ev.custom_details
        .insert("blob".into(), format!("{}y", "x".repeat(200_000)));
    assert_eq!(r.route(&ev, None).matched, ["evil2"]);
}

#[test]
fn regexes_too_long_or_too_big_are_refused() {
    let long = "a".repeat(1025);
    let ok = "a".repeat(1024);
    let rules = [
        rule("long", vec![cond("summary", Op::Matches, Some(&long))], &[]),
        rule("ok", vec![cond("summary", Op::Matches, Some(&ok))], &[]),
        // 10 bytes of pattern, many MiB compiled: Unicode \w repeated
        rule(
            "big",
            vec![cond("summary", Op::Matches, Some(r"\w{2000}"))],
            &[],
        ),
    ];
    let got = Router::new(&rules).unwrap_err();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].path, "routing_rules[0].conditions[0].value");
    assert_eq!(got[0].message, "regex longer than 1024 bytes");
    assert_eq!(got[1].path, "routing_rules[2].conditions[0].value");
    assert!(
        got[1]
            .message
            .starts_with("invalid regex: compiled regex exceeds the size limit of"),
        "{}",
        got[1].message
    );
}

// ---- validation ----

#[test]
fn validate_lists_every_problem_with_its_path() {
    let toml = r#"
[[routing_rules]]
name = "db"
conditions = [
  { field = "summary", op = "matches", value = "(unclosed" },
  { field = "component", op = "equals" },
  { field = "details.region", op = "exists", value = "eu" },
]
route_to = ["database", "nope"]

[[routing_rules]]
name = "db"
conditions = [
  { field = "host", op = "equals", value = "x" },
  { field = "details.", op = "exists" },
  { field = "severity", op = "equals", value = "sev1" },
  { field = "group", op = "contains", value = "" },
]
runbook_url = "ftp://example.com"

[[routing_rules]]
name = ""
route_to = ["checkout", "ghost"]

[[routing_rules]]
name = "ok"
conditions = [ { field = "severity", op = "not_equals", value = "info" } ]
route_to = ["database", "checkout"]
"#;
    let rules = parse(toml).routing_rules;
    let known = |s: &str| s == "database" || s == "checkout";
    let want = problems(&[
        (
            "routing_rules[0].conditions[0].value",
            "invalid regex: unclosed group",
        ),
        (
            "routing_rules[0].conditions[1].value",
            "op equals requires a value",
        ),
        (
            "routing_rules[0].conditions[2].value",
            "op exists takes no value",
        ),
        ("routing_rules[0].route_to[1]", "unknown service \"nope\""),
        (
            "routing_rules[1].name",
            "duplicate rule name \"db\" (first used by routing_rules[0])",
        ),
        (
            "routing_rules[1].conditions[0].field",
            "unknown field \"host\": expected one of summary, source, severity, component, \
             group, class, dedup_key, routing_key, or details.<key>",
        ),
        (
            "routing_rules[1].conditions[1].field",
            "unknown field \"details.\": expected one of summary, source, severity, \
             component, group, class, dedup_key, routing_key, or details.<key>",
        ),
        (
            "routing_rules[1].conditions[2].value",
            "unknown severity \"sev1\": expected critical, error, warning or info",
        ),
        (
            "routing_rules[1].conditions[3].value",
            "op contains requires a non-empty value (an empty field is absent: use not_exists)",
        ),
        (
            "routing_rules[1].runbook_url",
            "must be an http:// or https:// URL of at most 2048 bytes, without spaces",
        ),
        ("routing_rules[2].name", "name must be 1 to 128 characters"),
        ("routing_rules[2].route_to[1]", "unknown service \"ghost\""),
    ]);
    assert_eq!(validate(&rules, &known), want);

    // Router::new reports the same, less the service names it cannot check.
    let without_services: Vec<Problem> = want
        .into_iter()
        .filter(|p| !p.path.contains(".route_to["))
        .collect();
    assert_eq!(Router::new(&rules).unwrap_err(), without_services);
}

#[test]
fn valid_rules_have_no_problems() {
    let rules = parse(EXAMPLE).routing_rules;
    assert_eq!(
        validate(&rules, &|s| s == "database" || s == "checkout"),
        vec![]
    );
    assert!(Router::new(&rules).is_ok());
}

#[test]
fn limits_on_rules_and_conditions() {
    let many: Vec<RoutingRule> = (0..1001)
        .map(|i| rule(&format!("r{i}"), vec![], &[]))
        .collect();
    assert_eq!(
        validate(&many, &|_| true),
        problems(&[("routing_rules", "at most 1000 rules, found 1001")])
    );
    let conds = vec![cond("summary", Op::Exists, None); 33];
    assert_eq!(
        validate(&[rule("r", conds, &[])], &|_| true),
        problems(&[(
            "routing_rules[0].conditions",
            "at most 32 conditions, found 33"
        )])
    );
}

// ---- TOML ----

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    routing_rules: Vec<RoutingRule>,
}

fn parse(text: &str) -> Doc {
    toml::from_str(text).expect("parses")
}

const EXAMPLE: &str = r#"
[[routing_rules]]
name = "checkout-db-to-both-teams"
conditions = [
  { field = "component", op = "equals", value = "postgres" },
  { field = "summary", op = "matches", value = "(?i)checkout" },
  { field = "details.region", op = "exists" },
  { field = "severity", op = "equals", value = "critical" },
]
route_to = ["database", "checkout"]
set_severity = "critical"
set_urgency = "high"
suppress = false
runbook_url = "https://runbooks.example.com/checkout-db"
continue = false

[[routing_rules]]
name = "drop-info"
conditions = [ { field = "severity", op = "equals", value = "info" } ]
suppress = true
continue = true

[[routing_rules]]
name = "everything-else"
"#;

#[test]
fn toml_round_trip() {
    let doc = parse(EXAMPLE);
    let first = &doc.routing_rules[0];
    assert_eq!(first.conditions.len(), 4);
    assert_eq!(
        first.conditions[2],
        cond("details.region", Op::Exists, None)
    );
    assert_eq!(first.route_to, ["database", "checkout"]);
    assert_eq!(
        (first.set_severity, first.set_urgency),
        (Some(Severity::Critical), Some(Urgency::High))
    );
    assert!(!first.continue_matching && !first.suppress);
    let last = &doc.routing_rules[2];
    assert_eq!(last, &rule("everything-else", vec![], &[]));

    let text = toml::to_string_pretty(&doc).expect("serializes");
    let again = parse(&text);
    assert_eq!(again, doc);
    // deterministic: the same rules serialize to the same bytes, in order
    assert_eq!(toml::to_string_pretty(&again).expect("serializes"), text);
    let names: Vec<_> = again
        .routing_rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["checkout-db-to-both-teams", "drop-info", "everything-else"]
    );

    let json = serde_json::to_string(&doc).expect("serializes");
    assert_eq!(serde_json::from_str::<Doc>(&json).expect("parses"), doc);

    // and it routes as written
    let mut ev = event();
    ev.severity = Severity::Critical;
    ev.summary = "checkout: primary down".into();
    let d = Router::new(&doc.routing_rules)
        .expect("compiles")
        .route(&ev, Some("owner"));
    assert_eq!(d.services, ["database", "checkout"]);
    assert_eq!(
        d.runbook_url.as_deref(),
        Some("https://runbooks.example.com/checkout-db")
    );
}

#[test]
fn unknown_keys_and_ops_are_refused_while_parsing() {
    let typo = "[[routing_rules]]\nname = \"a\"\ncontinu = true\n";
    let err = toml::from_str::<Doc>(typo).unwrap_err().to_string();
    assert!(err.contains("unknown field `continu`"), "{err}");

    let bad_op = "[[routing_rules]]\nname = \"a\"\nconditions = [ { field = \"summary\", op = \"like\", value = \"x\" } ]\n";
    let err = toml::from_str::<Doc>(bad_op).unwrap_err().to_string();
    assert!(err.contains("unknown variant `like`"), "{err}");

    let bad_cond_key = "[[routing_rules]]\nname = \"a\"\nconditions = [ { field = \"summary\", op = \"exists\", negate = true } ]\n";
    let err = toml::from_str::<Doc>(bad_cond_key).unwrap_err().to_string();
    assert!(err.contains("unknown field `negate`"), "{err}");

    let bad_urgency = "[[routing_rules]]\nname = \"a\"\nset_urgency = \"urgent\"\n";
    assert!(toml::from_str::<Doc>(bad_urgency).is_err());
}
