//! t97: the deploy artifacts stay true to the daemon they ship.
//!
//! - Every node config (TOML) under `config/` and `deploy/` passes `pagerd --check-config`
//!   (the binary built with this test), on its own and with the environment its artifact gives
//!   it: each compose service's `PAGERD_*` variables; each StatefulSet pod as the image's entry
//!   point sets it up (the real script, run with a `pagerd` on its PATH).
//! - Secret files those configs name are files the artifact provides: compose secrets,
//!   Kubernetes Secret items, systemd `LoadCredential=`. For the check they are dummy files in
//!   a temp dir (absolute `/run/...` paths are re-rooted there).
//! - The YAML parses (every document) and states the facts docs/OPERATIONS.md relies on:
//!   three replicas, one per zone, probes on `/readyz` and `/healthz`, a PodDisruptionBudget of
//!   one, per-pod Services for stable peer addresses, no service-link variables.
//! - The systemd unit passes `systemd-analyze verify` (a copy whose ExecStart is the built
//!   binary, since verify checks that it exists) and `systemd-analyze security` under an
//!   exposure of 2.0. systemd-analyze is on every machine of this project (developers' and
//!   CI's are the same image); where it is missing the test fails and says so, rather than
//!   passing without having checked the unit.
//! - The Dockerfile copies files that exist, builds with `--locked`, runs as a non-root user
//!   and probes the port the image's config listens on.

use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every file under `dir` (recursively) whose name ends in one of `exts`.
fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if exts
                .iter()
                .any(|x| p.file_name().unwrap().to_string_lossy().ends_with(x))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// ---------------------------------------------------------------- check-config runs

/// A node config made runnable here: absolute `/run/...` paths (where the artifacts mount
/// secrets) re-rooted under a temp dir, each named file created with a dummy secret.
struct Staged {
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
    /// The secret paths as the artifact names them (`/run/secrets/cluster_secret`).
    secrets: BTreeSet<String>,
}

const SECRET_ROOT: &str = "/run/";

fn stage(toml: &str, env: &[(String, String)]) -> Staged {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = dir.path().display().to_string();
    let mut secrets = BTreeSet::new();
    let mut localize = |s: &str| -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find(SECRET_ROOT) {
            // Only a path's start: `"/run/..."` in TOML or a whole variable's value.
            let starts_path = at == 0 || rest[..at].ends_with(['"', '\'', '=']);
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || "/._-".contains(c)))
                .unwrap_or(tail.len());
            if starts_path {
                secrets.insert(tail[..len].to_string());
                out.push_str(&base);
            }
            out.push_str(&tail[..len]);
            rest = &tail[len..];
        }
        out.push_str(rest);
        out
    };
    let toml = localize(toml);
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), localize(v))).collect();
    for s in &secrets {
        let p = PathBuf::from(format!("{base}{s}"));
        std::fs::create_dir_all(p.parent().unwrap()).expect("secret dir");
        // 16+ characters (cluster.secret and the bootstrap token want that), and a newline
        // as files written by hand have.
        std::fs::write(&p, "dummy-secret-for-check-config-0123456789\n").expect("secret file");
    }
    let config = dir.path().join("pagerd.toml");
    std::fs::write(&config, toml).expect("staged config");
    Staged {
        dir,
        config,
        env,
        secrets,
    }
}

fn pagerd() -> &'static str {
    env!("CARGO_BIN_EXE_pagerd")
}

/// A clean environment: nothing of the developer's PAGERD_* leaks in.
fn clean(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
}

/// `pagerd --check-config --config F` with exactly `env` (plus PATH).
fn check_config(staged: &Staged) -> Output {
    clean(&mut Command::new(pagerd()))
        .envs(staged.env.iter().cloned())
        .arg("--check-config")
        .arg("--config")
        .arg(&staged.config)
        .output()
        .expect("run pagerd")
}

fn assert_ok(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what}: pagerd --check-config failed\n{}",
        text(o)
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("configuration ok"), "{what}: {}", text(o));
    out
}

/// The on-call documents are not node configs.
fn is_node_config(p: &Path) -> bool {
    !p.file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("oncall")
}

#[test]
fn every_node_config_passes_check_config() {
    let mut checked = Vec::new();
    for dir in ["config", "deploy"] {
        for f in files_under(&root().join(dir), &[".toml"]) {
            if !is_node_config(&f) {
                continue;
            }
            let staged = stage(&read(&f), &[]);
            assert_ok(&rel(&f), &check_config(&staged));
            checked.push(rel(&f));
        }
    }
    for expected in [
        "config/pagerd.toml",
        "config/cluster/node1.toml",
        "deploy/docker/pagerd.toml",
        "deploy/compose/pagerd.toml",
        "deploy/systemd/pagerd.toml",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} not found among {checked:?}"
        );
    }
}

#[test]
fn check_config_catches_a_bad_value_in_a_staged_config() {
    // The harness itself: a broken key must fail, or the passes above prove nothing.
    let staged = stage(
        "[cluster]\nbootstrap = false\nsecret_file = \"/run/secrets/s\"\n[raft]\nheartbeat_interval_ms = 5000\n",
        &[],
    );
    let o = check_config(&staged);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("raft"),
        "{}",
        text(&o)
    );
    assert!(staged.dir.path().join("run/secrets/s").exists());
    let env = vec![("PAGERD_BOGUS".to_string(), "1".to_string())];
    let o = check_config(&stage("", &env));
    assert!(
        !o.status.success(),
        "unknown PAGERD_ key accepted: {}",
        text(&o)
    );
}

// ---------------------------------------------------------------- YAML

fn yaml_docs(path: &Path) -> Vec<Value> {
    let src = read(path);
    let mut docs = Vec::new();
    for d in serde_norway::Deserializer::from_str(&src) {
        let mut v: Value =
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", rel(path)));
        v.apply_merge()
            .unwrap_or_else(|e| panic!("{}: merge keys: {e}", rel(path)));
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

#[test]
fn every_yaml_under_deploy_parses() {
    let files = files_under(&root().join("deploy"), &[".yml", ".yaml"]);
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let docs = yaml_docs(&f);
        assert!(!docs.is_empty(), "{}: no document", rel(&f));
        for d in &docs {
            assert!(d.is_mapping(), "{}: a document is not a mapping", rel(&f));
        }
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A compose `environment`, as a map or as a list of `K=V`.
fn compose_env(v: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    if let Some(m) = v.as_mapping() {
        for (k, v) in m {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("environment value {other:?}"),
            };
            env.insert(s(k).to_string(), v);
        }
    } else if let Some(seq) = v.as_sequence() {
        for e in seq {
            let (k, v) = s(e).split_once('=').expect("K=V");
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

fn seconds(d: &str) -> u64 {
    let d = d.trim();
    if let Some(m) = d.strip_suffix('m') {
        m.parse::<u64>().expect("minutes") * 60
    } else {
        d.trim_end_matches('s').parse().expect("seconds")
    }
}

fn toml_members(toml_src: &str) -> Vec<toml::Value> {
    let v: toml::Value = toml::from_str(toml_src).expect("toml");
    v.get("cluster")
        .and_then(|c| c.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
}

fn member(members: &[toml::Value], id: u64) -> &toml::Value {
    members
        .iter()
        .find(|m| m.get("id").and_then(|i| i.as_integer()) == Some(id as i64))
        .unwrap_or_else(|| panic!("no member {id}"))
}

fn tstr<'a>(v: &'a toml::Value, key: &str) -> &'a str {
    v.get(key).and_then(|x| x.as_str()).unwrap_or("")
}

#[test]
fn compose_three_regions_with_env_config_and_file_secrets() {
    let dir = root().join("deploy/compose");
    let docs = yaml_docs(&dir.join("docker-compose.yml"));
    assert_eq!(docs.len(), 1);
    let c = &docs[0];
    let services = c["services"].as_mapping().expect("services");
    let names: Vec<&str> = services.keys().map(s).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south"]);
    let wan = &c["networks"]["wan"];
    assert_eq!(
        wan["internal"].as_bool(),
        Some(true),
        "wan carries peers only"
    );
    let top_secrets = &c["secrets"];
    assert!(top_secrets.is_mapping(), "top-level secrets");

    let mut bootstraps = 0;
    let mut ips = BTreeSet::new();
    for (name, svc) in services {
        let name = s(name);
        let env = compose_env(&svc["environment"]);
        for k in env.keys() {
            assert!(
                k.starts_with("PAGERD_"),
                "{name}: {k} is not a PAGERD_ variable"
            );
        }
        // Its own region network plus the shared wan, on which it has a fixed address.
        let nets: BTreeSet<&str> = svc["networks"]
            .as_mapping()
            .expect("networks")
            .keys()
            .map(s)
            .collect();
        assert_eq!(nets, BTreeSet::from([name, "wan"]), "{name}: networks");
        assert!(c["networks"].get(name).is_some(), "network {name} declared");
        let ip = s(&svc["networks"]["wan"]["ipv4_address"]).to_string();
        assert!(
            !ip.is_empty() && ips.insert(ip.clone()),
            "{name}: wan address"
        );
        assert!(
            seconds(s(&svc["stop_grace_period"])) >= 30,
            "{name}: stop_grace_period must leave time for the hand-over"
        );
        // The config file: pagerd.toml mounted where the image's PAGERD_CONFIG points.
        let volumes: Vec<&str> = svc["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .map(s)
            .collect();
        let config_src = volumes
            .iter()
            .find_map(|v| v.strip_suffix(":/etc/pagerd/pagerd.toml:ro"))
            .unwrap_or_else(|| panic!("{name}: no config mounted at /etc/pagerd/pagerd.toml"));
        assert!(
            volumes.iter().any(|v| v.ends_with(":/var/lib/pagerd")),
            "{name}: data volume"
        );
        let toml_src = read(&dir.join(config_src));

        let env_list: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let staged = stage(&toml_src, &env_list);
        let out = assert_ok(&format!("compose service {name}"), &check_config(&staged));
        let id: u64 = env["PAGERD_NODE_ID"].parse().expect("node id");
        assert!(
            out.contains(&format!("node {id} in region {name},")),
            "{name}: {out}"
        );
        // Every secret file the config names is a secret this service mounts.
        let mounted: BTreeSet<&str> = svc["secrets"]
            .as_sequence()
            .expect("secrets")
            .iter()
            .map(s)
            .collect();
        assert!(
            !staged.secrets.is_empty(),
            "{name}: secrets come from files"
        );
        for path in &staged.secrets {
            let secret = path
                .strip_prefix("/run/secrets/")
                .unwrap_or_else(|| panic!("{name}: {path} is not a compose secret"));
            assert!(mounted.contains(secret), "{name}: {secret} not mounted");
            let file = s(&top_secrets[secret]["file"]);
            assert!(file.starts_with("./secrets/"), "{secret}: {file}");
        }
        // What the node advertises is what the bootstrap membership says of it.
        let members = toml_members(&toml_src);
        assert_eq!(members.len(), 3);
        let me = member(&members, id);
        assert_eq!(env["PAGERD_ADVERTISE__PEER"], tstr(me, "peer"), "{name}");
        assert_eq!(
            env["PAGERD_ADVERTISE__CLIENT"],
            tstr(me, "client"),
            "{name}"
        );
        assert_eq!(env["PAGERD_ADVERTISE__HTTP"], tstr(me, "http"), "{name}");
        assert_eq!(env["PAGERD_REGION"], tstr(me, "region"), "{name}");
        assert!(
            tstr(me, "peer").starts_with(&format!("{ip}:")),
            "{name}: peer address on its wan address"
        );
        assert!(
            env["PAGERD_TWILIO__BASE_URL"].starts_with("https://api."),
            "{name}: a Twilio edge"
        );
        if env.get("PAGERD_CLUSTER__BOOTSTRAP").map(String::as_str) == Some("true") {
            bootstraps += 1;
        }
    }
    assert_eq!(bootstraps, 1, "exactly one node initialises the cluster");
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| s(&d["kind"]) == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    by_kind(docs, kind)
        .into_iter()
        .find(|d| s(&d["metadata"]["name"]) == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// `selector` (a label map) selects pods labelled `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_mapping().expect("selector");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_statefulset_services_probes_and_budget() {
    let dir = root().join("deploy/k8s");
    let docs = yaml_docs(&dir.join("pagerd.yaml"));
    let secrets = yaml_docs(&dir.join("secrets.example.yaml"));

    let sts = named(&docs, "StatefulSet", "pagerd");
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(3));
    assert_eq!(
        s(&spec["podManagementPolicy"]),
        "Parallel",
        "pods are not Ready before the cluster is: ordered start would never finish"
    );
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert!(selects(&spec["selector"]["matchLabels"], labels));
    assert_eq!(
        pod["enableServiceLinks"].as_bool(),
        Some(false),
        "service-link variables (PAGERD_NODE_0_SERVICE_HOST, ...) would be read as config keys"
    );
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(0) >= 30);

    // One voter per zone.
    let anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_sequence()
        .expect("required pod anti-affinity");
    assert!(anti.iter().any(|t| {
        s(&t["topologyKey"]) == "topology.kubernetes.io/zone"
            && selects(&t["labelSelector"]["matchLabels"], labels)
    }));

    // The headless governing Service lists pods before they are Ready.
    let headless = named(&docs, "Service", s(&spec["serviceName"]));
    assert_eq!(s(&headless["spec"]["clusterIP"]), "None");
    assert_eq!(
        headless["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true)
    );

    let containers = pod["containers"].as_sequence().expect("containers");
    let c = containers
        .iter()
        .find(|c| s(&c["name"]) == "pagerd")
        .expect("pagerd container");
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["path"]), "/readyz");
    let live = &c["livenessProbe"];
    assert!(
        s(&live["httpGet"]["path"]) == "/healthz" || live.get("grpc").is_some(),
        "liveness on /healthz or gRPC health"
    );
    let ports: BTreeMap<&str, u64> = c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| (s(&p["name"]), p["containerPort"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("client", 8700), ("peer", 8701), ("http", 8702)])
    );

    let env: BTreeMap<String, String> = c["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| (s(&e["name"]).to_string(), s(&e["value"]).to_string()))
        .collect();
    let config_path = Path::new(&env["PAGERD_CONFIG"]);

    // Mounts: data from the claim template, config from the ConfigMap, secrets as files.
    let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|m| (s(&m["mountPath"]), s(&m["name"])))
        .collect();
    let claims: Vec<&str> = spec["volumeClaimTemplates"]
        .as_sequence()
        .expect("volumeClaimTemplates")
        .iter()
        .map(|t| s(&t["metadata"]["name"]))
        .collect();
    let volumes: BTreeMap<&str, &Value> = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|v| (s(&v["name"]), v))
        .collect();
    let config_vol = volumes[mounts[config_path.parent().unwrap().to_str().unwrap()]];
    let cm = named(&docs, "ConfigMap", s(&config_vol["configMap"]["name"]));
    let file_name = config_path.file_name().unwrap().to_str().unwrap();
    let toml_src = s(&cm["data"][file_name]).to_string();
    assert!(!toml_src.is_empty(), "ConfigMap has {file_name}");
    let cfg: toml::Value = toml::from_str(&toml_src).expect("ConfigMap TOML");
    let data_dir = cfg["data_dir"].as_str().expect("data_dir");
    assert!(
        claims.contains(&mounts[data_dir]),
        "data_dir {data_dir} is on a volumeClaimTemplate"
    );
    assert_eq!(
        cfg["listen"]["http"].as_str().unwrap().rsplit(':').next(),
        Some("8702")
    );

    // A per-pod Service for each ordinal, so peer addresses survive rescheduling.
    let pattern = &env["ADVERTISE_SERVICE"];
    assert!(pattern.contains("{ordinal}"), "{pattern}");
    for i in 0..3 {
        let svc = named(
            &docs,
            "Service",
            &pattern.replace("{ordinal}", &i.to_string()),
        );
        assert_eq!(
            s(&svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"]),
            format!("pagerd-{i}")
        );
        assert_eq!(
            svc["spec"]["publishNotReadyAddresses"].as_bool(),
            Some(true)
        );
        assert_ne!(
            s(&svc["spec"]["clusterIP"]),
            "None",
            "needs a stable ClusterIP"
        );
        let svc_ports: BTreeSet<&str> = svc["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| s(&p["targetPort"]))
            .collect();
        assert_eq!(svc_ports, BTreeSet::from(["client", "peer"]));
    }
    // The client Service: Ready pods only.
    let client = named(&docs, "Service", "pagerd");
    assert!(selects(&client["spec"]["selector"], labels));
    assert_ne!(
        client["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true)
    );

    let pdb = named(&docs, "PodDisruptionBudget", "pagerd");
    assert_eq!(pdb["spec"]["maxUnavailable"].as_u64(), Some(1));
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], labels));

    // Each pod, set up by the image's entry point, passes --check-config, and the secret
    // files its config names are Secret keys mounted there.
    for ordinal in 0..3u64 {
        let staged = stage(&toml_src, &[]);
        let o = run_entrypoint(&staged, &env, ordinal);
        let out = assert_ok(&format!("pod pagerd-{ordinal}"), &o);
        assert!(
            out.contains(&format!("node {} in region ", ordinal + 1)),
            "pagerd-{ordinal}: {out}"
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("advertises"),
            "{}",
            text(&o)
        );
        assert_eq!(staged.secrets.len(), 4, "{:?}", staged.secrets);
        for path in &staged.secrets {
            let (dir, file) = path.rsplit_once('/').unwrap();
            let vol = volumes[mounts
                .get(dir)
                .unwrap_or_else(|| panic!("{path}: nothing mounted at {dir}"))];
            let sources = vol["projected"]["sources"]
                .as_sequence()
                .expect("projected secrets");
            let found = sources.iter().any(|src| {
                let secret = named(&secrets, "Secret", s(&src["secret"]["name"]));
                src["secret"]["items"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|it| {
                        s(&it["path"]) == file
                            && (secret["stringData"].get(s(&it["key"])).is_some()
                                || secret["data"].get(s(&it["key"])).is_some())
                    })
            });
            assert!(found, "{path}: no Secret item provides it");
        }
    }
}

/// The image's entry point as pod `pagerd-<ordinal>` runs it, with the container's literal
/// environment; the per-pod Service is not resolvable here, so `localhost` stands in for it.
fn run_entrypoint(staged: &Staged, env: &BTreeMap<String, String>, ordinal: u64) -> Output {
    let bin = staged.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("pagerd");
    if !link.exists() {
        std::os::unix::fs::symlink(pagerd(), &link).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.env_clear().env("PATH", path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("HOSTNAME", format!("pagerd-{ordinal}"))
        .env("ADVERTISE_SERVICE", "localhost")
        .env("ADVERTISE_WAIT_SECS", "0")
        .arg(root().join("deploy/docker/pagerd-entrypoint.sh"))
        .arg("--check-config")
        .arg("--config")
        .arg(&staged.config)
        .output()
        .expect("run the entry point")
}

// ---------------------------------------------------------------- systemd

fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let dir = root().join("deploy/systemd");
    let unit = read(&dir.join("pagerd.service"));
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert!(
            unit_values(&unit, key).contains(&want),
            "pagerd.service: {key}={want}"
        );
    }
    assert!(!unit_values(&unit, "RestrictAddressFamilies").is_empty());
    assert!(seconds(unit_values(&unit, "TimeoutStopSec")[0]) >= 30);
    assert!(
        !unit_values(&unit, "StateDirectory").is_empty()
            || !unit_values(&unit, "ReadWritePaths").is_empty()
    );

    // The config it starts with, and the credentials that config reads.
    let exec = unit_values(&unit, "ExecStart")[0];
    let mut words = exec.split_whitespace();
    let binary = words.next().unwrap();
    let config = words
        .skip_while(|w| *w != "--config")
        .nth(1)
        .expect("ExecStart --config");
    let toml_src = read(&dir.join(Path::new(config).file_name().unwrap()));
    let staged = stage(&toml_src, &[]);
    let out = assert_ok("deploy/systemd/pagerd.toml", &check_config(&staged));
    assert!(out.contains("node 1 in region"), "{out}");
    let credentials: BTreeSet<&str> = unit_values(&unit, "LoadCredential")
        .into_iter()
        .map(|c| c.split(':').next().unwrap())
        .collect();
    assert!(!staged.secrets.is_empty());
    for path in &staged.secrets {
        let name = path
            .strip_prefix("/run/credentials/pagerd.service/")
            .unwrap_or_else(|| panic!("{path} is not a credential of pagerd.service"));
        assert!(credentials.contains(name), "no LoadCredential={name}:...");
    }
    let cfg: toml::Value = toml::from_str(&toml_src).unwrap();
    assert_eq!(
        cfg["data_dir"].as_str(),
        Some(format!("/var/lib/{}", unit_values(&unit, "StateDirectory")[0]).as_str()),
        "data_dir is the unit's StateDirectory"
    );

    // systemd-analyze on a copy whose binary exists here.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!(
            "systemd-analyze is not installed: it is needed to verify deploy/systemd/pagerd.service \
             (Debian: apt-get install systemd)"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("pagerd.service");
    let unit_here = unit.replace(&format!("={binary} "), &format!("={} ", pagerd()));
    assert_ne!(unit_here, unit, "ExecStart not rewritten");
    std::fs::write(&copy, unit_here).unwrap();

    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze verify");
    let all = text(&o);
    // verify exits 0 on unknown keys and bad values; it only prints them.
    let complaints: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("pagerd.service"))
        .collect();
    assert!(
        o.status.success() && complaints.is_empty(),
        "systemd-analyze verify:\n{all}"
    );

    // Exposure 2.0 at most (systemd's scale, 0 = locked down, 10 = unprotected).
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze security");
    assert!(
        o.status.success(),
        "systemd-analyze security:\n{}",
        text(&o)
    );
}

#[test]
fn systemd_verify_rejects_what_the_test_must_catch() {
    // The check above trusts verify's output: make sure a typo shows up in it.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is not installed (Debian: apt-get install systemd)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("pagerd.service");
    std::fs::write(
        &copy,
        format!(
            "[Service]\nExecStart={} --check-config\nProtectSystm=strict\n",
            pagerd()
        ),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        text(&o).contains("pagerd.service") && text(&o).contains("ProtectSystm"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------- Dockerfile

#[test]
fn dockerfile_builds_locked_runs_unprivileged_and_probes_its_port() {
    let dockerfile = read(&root().join("deploy/docker/Dockerfile"));
    // Continuation lines joined, comments dropped.
    let joined = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let instr: Vec<(String, String)> = joined
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let l = l.trim();
            let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (k.to_ascii_uppercase(), v.trim().to_string())
        })
        .collect();
    let all = |k: &str| -> Vec<&str> {
        instr
            .iter()
            .filter(|(i, _)| i == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert!(all("FROM").len() >= 2, "multi-stage");
    assert!(all("RUN")
        .iter()
        .any(|r| r.contains("cargo build --release --locked -p pagerd -p pagerctl")));

    // Every file copied from the build context exists.
    for c in all("COPY") {
        let words: Vec<&str> = c.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from=")) {
            continue;
        }
        let args: Vec<&str> = words.into_iter().filter(|w| !w.starts_with("--")).collect();
        for src in &args[..args.len() - 1] {
            assert!(
                *src == "." || root().join(src).exists(),
                "COPY {src}: not in the repository"
            );
        }
    }
    let user = all("USER");
    let user = user.last().expect("USER");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    assert!(!all("VOLUME").is_empty());

    // The image's config: the file PAGERD_CONFIG names, copied from deploy/docker/.
    let config_target = all("ENV")
        .iter()
        .find_map(|e| e.strip_prefix("PAGERD_CONFIG="))
        .expect("ENV PAGERD_CONFIG=")
        .to_string();
    let copied = all("COPY")
        .into_iter()
        .find(|c| c.ends_with(&config_target))
        .expect("the config is copied to PAGERD_CONFIG");
    let src = copied.split_whitespace().rev().nth(1).expect("COPY source");
    let cfg: toml::Value = toml::from_str(&read(&root().join(src))).unwrap();
    let port = |k: &str| -> String {
        cfg["listen"][k]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .to_string()
    };
    let exposed: BTreeSet<&str> = all("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    for k in ["client", "peer", "http"] {
        assert!(exposed.contains(port(k).as_str()), "EXPOSE {}", port(k));
    }
    let health = all("HEALTHCHECK").join(" ");
    assert!(
        health.contains(&format!("127.0.0.1:{}/healthz", port("http"))),
        "HEALTHCHECK on listen.http: {health}"
    );
    // What the health check runs is installed in the runtime stage.
    assert!(health.contains("curl"));
    let runtime_stage = joined.rsplit("\nFROM ").next().unwrap();
    assert!(runtime_stage.contains("install -y --no-install-recommends ca-certificates curl"));
    // The entry point execs pagerd, which the image puts on PATH.
    let entry = read(&root().join("deploy/docker/pagerd-entrypoint.sh"));
    assert!(entry.contains("exec pagerd \"$@\""));
    assert!(all("COPY")
        .iter()
        .any(|c| c.contains("/out/pagerd") && c.ends_with("/usr/local/bin/")));
}
