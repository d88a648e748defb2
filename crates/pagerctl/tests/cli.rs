//! The built binary against in-test tonic servers on 127.0.0.1:0: exit codes,
//! failover across `--endpoint`, and error reporting.
//!
//! Each server's listener is bound before the binary starts, so there is
//! nothing to wait for: the binary's connect lands in the accept queue.

mod common;

use common::pagerctl_with_stdin;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pager_proto::pager::v1::cluster_server::{Cluster, ClusterServer};
use pager_proto::pager::v1::config_server::{Config, ConfigServer};
use pager_proto::pager::v1::{
    AddNodeRequest, ApplyConfigRequest, ApplyConfigResponse, ClusterStatus, ClusterStatusRequest,
    ConfigChange, ConfigChangeKind, ConfigProblem, DiffConfigRequest, DiffConfigResponse,
    GetConfigRequest, GetConfigResponse, InitClusterRequest, InitClusterResponse, MemberStatus,
    MembershipResponse, NodeInfo, RemoveNodeRequest,
};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_pagerctl");

/// How a fake node answers `Cluster.Status`.
#[derive(Clone)]
enum Answer {
    Status(ClusterStatus),
    Fail(tonic::Code, &'static str),
}

/// A fake node: answers `Status` as told and counts the calls it got.
struct FakeNode {
    answer: Answer,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Cluster for FakeNode {
    async fn init(
        &self,
        _: Request<InitClusterRequest>,
    ) -> Result<Response<InitClusterResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.answer {
            Answer::Status(s) => Ok(Response::new(s.clone())),
            Answer::Fail(code, msg) => Err(Status::new(*code, *msg)),
        }
    }

    async fn add_node(
        &self,
        _: Request<AddNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn remove_node(
        &self,
        _: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn promote_learner(
        &self,
        _: Request<pager_proto::pager::v1::PromoteLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn snapshot(
        &self,
        _: Request<pager_proto::pager::v1::SnapshotRequest>,
    ) -> Result<Response<pager_proto::pager::v1::SnapshotResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn transfer_leader(
        &self,
        _: Request<pager_proto::pager::v1::TransferLeaderRequest>,
    ) -> Result<Response<pager_proto::pager::v1::TransferLeaderResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    type BackupStream = tokio_stream::Empty<Result<pager_proto::pager::v1::BackupChunk, Status>>;

    async fn backup(
        &self,
        _: Request<pager_proto::pager::v1::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        Err(Status::unimplemented("fake node"))
    }
}

/// Start a fake node on 127.0.0.1:0; returns its URL and its call counter.
/// The server lives as long as the test's runtime.
async fn spawn_node(answer: Answer) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let incoming = TcpIncoming::from_listener(listener, true, None).expect("incoming");
    let calls = Arc::new(AtomicUsize::new(0));
    let node = FakeNode {
        answer,
        calls: calls.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ClusterServer::new(node))
            .serve_with_incoming(incoming),
    );
    (format!("http://{addr}"), calls)
}

fn status_of(node_id: u64) -> ClusterStatus {
    ClusterStatus {
        node_id,
        region: "us-east".into(),
        role: "leader".into(),
        term: 4,
        leader_id: node_id,
        leader_client_addr: "127.0.0.1:8710".into(),
        last_log_index: 10,
        commit_index: 10,
        applied_index: 10,
        members: vec![MemberStatus {
            node: Some(NodeInfo {
                id: node_id,
                peer_addr: "127.0.0.1:8711".into(),
                client_addr: "127.0.0.1:8710".into(),
                region: "us-east".into(),
                http_url: String::new(),
            }),
            voter: true,
            matched_index: 10,
            lag: 0,
        }],
    }
}

/// Nothing listens on port 1: connect is refused at once.
const DEAD: &str = "http://127.0.0.1:1";

async fn pagerctl(args: &[&str]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("PAGERCTL_ENDPOINT")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run pagerctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["incident", "show"],
        &["incident", "show", "forty-two"],
        &["--output", "yaml", "cluster", "status"],
        &["--timeout", "0", "cluster", "status"],
        &["--endpoint", "ftp://127.0.0.1:1", "cluster", "status"],
        &["event", "trigger", "--routing-key", "rk"],
        &["event", "resolve", "--routing-key", "rk"],
        &["cluster", "init", "--node", "id=1,peer=h:1"],
        &["incident", "snooze", "1", "--until", "later"],
        &["incident", "reassign", "1"],
        &["incident", "escalate", "1", "--level", "0"],
        &["incident", "add-responders", "1"],
        &[
            "incident",
            "set-role",
            "1",
            "--commander",
            "a",
            "--liaison",
            "b",
        ],
        &["oncall", "--schedule", "a", "--service", "b"],
        &["schedule", "show"],
        &["simulate", "--severity", "info"],
        &["diff"],
    ] {
        let out = pagerctl(args).await;
        assert_exit(&out, 2);
        assert!(out.stdout.is_empty(), "{args:?}: usage goes to stderr");
        assert!(!out.stderr.is_empty(), "{args:?}: says what is wrong");
    }
}

#[tokio::test]
async fn help_exits_0() {
    let out = pagerctl(&["incident", "--help"]).await;
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("list"));
}

#[tokio::test]
async fn fails_over_from_a_dead_endpoint() {
    let (url, calls) = spawn_node(Answer::Status(status_of(3))).await;
    let endpoints = format!("{DEAD},{url}");

    let out = pagerctl(&[
        "--endpoint",
        &endpoints,
        "--timeout",
        "5",
        "cluster",
        "status",
    ])
    .await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("node      3 (us-east)\nrole      leader\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\nID  REGION   MEMBER  PEER"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let out = pagerctl(&[
        "cluster",
        "status",
        "--output",
        "json",
        "--endpoint",
        &endpoints,
    ])
    .await;
    assert_exit(&out, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["node_id"], 3);
    assert_eq!(v["members"][0]["node"]["client_addr"], "127.0.0.1:8710");

    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn endpoint_from_the_environment() {
    let (url, calls) = spawn_node(Answer::Status(status_of(5))).await;
    let out = tokio::process::Command::new(BIN)
        .args(["cluster", "status"])
        .env("PAGERCTL_ENDPOINT", format!("{DEAD},{url}"))
        .kill_on_drop(true)
        .output()
        .await
        .expect("run pagerctl");
    assert_exit(&out, 0);
    assert!(text(&out.stdout).starts_with("node      5 "));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn fails_over_from_a_node_that_answers_unavailable() {
    let (follower, follower_calls) = spawn_node(Answer::Fail(
        tonic::Code::Unavailable,
        "not leader; leader is node 2 at 127.0.0.1:8710",
    ))
    .await;
    let (leader, leader_calls) = spawn_node(Answer::Status(status_of(2))).await;

    let endpoints = format!("{follower},{leader}");
    let out = pagerctl(&["--endpoint", &endpoints, "cluster", "status"]).await;
    assert_exit(&out, 0);
    assert!(text(&out.stdout).starts_with("node      2 "));
    assert_eq!(follower_calls.load(Ordering::SeqCst), 1);
    assert_eq!(leader_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn any_other_error_from_a_live_node_is_final() {
    let (first, first_calls) = spawn_node(Answer::Fail(
        tonic::Code::FailedPrecondition,
        "cluster not initialised",
    ))
    .await;
    let (second, second_calls) = spawn_node(Answer::Status(status_of(2))).await;

    let endpoints = format!("{first},{second}");
    let out = pagerctl(&["--endpoint", &endpoints, "cluster", "status"]).await;
    assert_exit(&out, 1);
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "error: FailedPrecondition: cluster not initialised\n"
    );
    assert_eq!(first_calls.load(Ordering::SeqCst), 1);
    assert_eq!(second_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn when_every_node_fails_the_leader_hint_is_reported() {
    let (follower, _) = spawn_node(Answer::Fail(
        tonic::Code::Unavailable,
        "not leader; leader is node 2 at 10.0.0.2:8710",
    ))
    .await;

    let endpoints = format!("{follower},{DEAD}");
    let out = pagerctl(&["--endpoint", &endpoints, "cluster", "status"]).await;
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    // The headline is the live node's answer, not the later connect failure.
    assert!(
        stderr.starts_with("error: Unavailable: not leader; leader is node 2 at 10.0.0.2:8710\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("\n  {DEAD}: Unavailable: cannot connect: ")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_single_dead_endpoint_exits_1() {
    let out = pagerctl(&["--endpoint", DEAD, "incident", "list"]).await;
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: Unavailable: {DEAD}: cannot connect: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn a_missing_document_is_an_error_before_any_call() {
    let out = pagerctl(&[
        "--endpoint",
        DEAD,
        "apply",
        "-f",
        "/nonexistent/oncall.toml",
    ])
    .await;
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: read /nonexistent/oncall.toml: "),
        "{stderr}"
    );
}

/// A fake node's Config service: `Diff` finds a problem in any document
/// naming the user "zed", and one change otherwise; `Apply` warns of a
/// schedule gap in any document naming "gappy" and counts real applies.
#[derive(Default)]
struct FakeConfig {
    applied: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl Config for FakeConfig {
    async fn apply(
        &self,
        req: Request<ApplyConfigRequest>,
    ) -> Result<Response<ApplyConfigResponse>, Status> {
        let req = req.into_inner();
        if !req.dry_run {
            self.applied
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let warnings = if req.document.contains("gappy") {
            vec![ConfigProblem {
                path: "schedules.gappy".into(),
                message: "nobody on call for 1 stretch(es) in the next 14 days".into(),
            }]
        } else {
            vec![]
        };
        Ok(Response::new(ApplyConfigResponse {
            version: if req.dry_run { 3 } else { 4 },
            warnings,
            ..Default::default()
        }))
    }

    async fn get(
        &self,
        _: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn diff(
        &self,
        req: Request<DiffConfigRequest>,
    ) -> Result<Response<DiffConfigResponse>, Status> {
        let req = req.into_inner();
        if req.format != "toml" {
            return Err(Status::invalid_argument("format: expected toml"));
        }
        let problems = if req.document.contains("zed") {
            vec![ConfigProblem {
                path: "teams.db.members[0]".into(),
                message: "unknown user \"zed\"".into(),
            }]
        } else {
            vec![]
        };
        Ok(Response::new(DiffConfigResponse {
            version: 3,
            changes: vec![ConfigChange {
                path: "teams.db".into(),
                kind: ConfigChangeKind::Added as i32,
            }],
            problems,
            warnings: vec![],
        }))
    }
}

async fn spawn_config_node() -> String {
    spawn_config_node_with(FakeConfig::default()).await
}

async fn spawn_config_node_with(fake: FakeConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let incoming = TcpIncoming::from_listener(listener, true, None).expect("incoming");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ConfigServer::new(fake))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

#[tokio::test]
async fn diff_exits_0_with_changes_and_1_with_problems() {
    let url = spawn_config_node().await;
    let out = pagerctl_with_stdin(
        &["--endpoint", &url, "diff", "-f", "-"],
        "[teams.db]\nmembers = [\"alice\"]\n",
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "changes against live version 3:\n  + teams.db\n"
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let out = pagerctl_with_stdin(
        &["--endpoint", &url, "--output", "json", "diff", "-f", "-"],
        "[teams.db]\nmembers = [\"zed\"]\n",
    )
    .await;
    assert_exit(&out, 1);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["problems"][0]["path"], "teams.db.members[0]");
    assert_eq!(v["changes"][0]["kind"], "added");
    assert_eq!(
        text(&out.stderr),
        "error: 1 problem(s) in stdin: apply would refuse it\n"
    );
}

#[tokio::test]
async fn strict_gaps_refuses_a_document_with_gaps_and_applies_nothing() {
    let fake = FakeConfig::default();
    let applied = fake.applied.clone();
    let url = spawn_config_node_with(fake).await;
    let doc = "[schedules.gappy]\n";
    let out = pagerctl_with_stdin(
        &["--endpoint", &url, "apply", "--strict-gaps", "-f", "-"],
        doc,
    )
    .await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("--strict-gaps"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        applied.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing applied"
    );
    // Without the flag the same document applies, with the warning shown.
    let out = pagerctl_with_stdin(&["--endpoint", &url, "apply", "-f", "-"], doc).await;
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("schedules.gappy"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(applied.load(std::sync::atomic::Ordering::SeqCst), 1);
    // With the flag and no gaps, it applies.
    let out = pagerctl_with_stdin(
        &["--endpoint", &url, "apply", "--strict-gaps", "-f", "-"],
        "[users]\n",
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(applied.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn completions_are_generated_without_a_server() {
    let out = pagerctl(&["--endpoint", DEAD, "completions", "bash"]).await;
    assert_exit(&out, 0);
    let script = text(&out.stdout);
    assert!(script.contains("_pagerctl()"), "a bash completion function");
    assert!(script.contains("incident"), "subcommands listed");
    let out = pagerctl(&["completions", "tcsh"]).await;
    assert_exit(&out, 2);
}
