//! `pagerctl cluster ...`: membership and health. `init`, `status`,
//! `add-node`, `remove-node`, `promote-learner`, `snapshot` (with `--out`, a
//! checksummed backup streamed to a file) and `transfer-leader`.

use anyhow::Context;
use clap::{Args, Subcommand};
use pager_proto::pager::v1::{
    cluster_client::ClusterClient, AddNodeRequest, BackupChunk, BackupRequest,
    ClusterStatusRequest, InitClusterRequest, NodeInfo, PromoteLearnerRequest, RemoveNodeRequest,
    SnapshotRequest, TransferLeaderRequest,
};

use crate::client::Client;
use crate::output::Printer;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Initialise a new cluster. Without --node: a single-node cluster of the
    /// node called.
    Init {
        /// A voter of the new cluster, e.g.
        /// `id=1,peer=127.0.0.1:8711,client=127.0.0.1:8710,region=us-east`.
        /// Repeat for each node; include the node called.
        #[arg(long = "node", value_parser = parse_node_spec, value_name = "SPEC")]
        nodes: Vec<NodeInfo>,
    },
    /// Show the answering node's view of the cluster.
    Status,
    /// Add a node (as a learner, then promoted to voter unless --learner-only).
    AddNode(AddNodeArgs),
    /// Remove a node from the cluster.
    RemoveNode {
        /// Id of the node to remove.
        id: u64,
    },
    /// Make a learner (added with --learner-only) a voter.
    PromoteLearner {
        /// Id of the learner.
        id: u64,
    },
    /// Take a snapshot now on the node answering (the first reachable
    /// endpoint); with --out, download a consistent, checksummed backup of
    /// the state instead (restore it with `pagerd --restore-from FILE`).
    Snapshot {
        /// Write a backup of the replicated state to FILE.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// With --out: back up the answering node's state without confirming
        /// with the leader that it holds every committed write (no quorum left).
        #[arg(long, requires = "out")]
        allow_stale: bool,
    },
    /// Hand leadership to another voter now (before maintenance on the
    /// leader's host), without waiting for an election timeout.
    TransferLeader {
        /// Id of the voter to lead next; omitted: the leader picks the most
        /// caught-up voter.
        #[arg(long = "to", value_name = "ID")]
        to: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct AddNodeArgs {
    /// Id of the new node (unique in the cluster).
    #[arg(long)]
    pub id: u64,
    /// Raft peer address (host:port).
    #[arg(long, value_parser = parse_host_port, value_name = "ADDR")]
    pub peer: String,
    /// Client (public gRPC) address (host:port).
    #[arg(long, value_parser = parse_host_port, value_name = "ADDR")]
    pub client: String,
    /// Region the node runs in.
    #[arg(long)]
    pub region: String,
    /// Public HTTP base URL of the node (Twilio webhooks, email links).
    #[arg(long, value_name = "URL", default_value = "")]
    pub http_url: String,
    /// Leave the node a learner: it replicates but does not vote.
    #[arg(long)]
    pub learner_only: bool,
}

pub async fn run(client: &Client, out: &Printer, cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Init { nodes } => {
            let req = InitClusterRequest { nodes };
            let ((), url) = client
                .call_at(&req, |ch, req| async move {
                    ClusterClient::new(ch)
                        .init(req)
                        .await
                        .map(|r| r.map(|_| ()))
                })
                .await?;
            out.emit(
                || {
                    if req.nodes.is_empty() {
                        format!("cluster initialised: a single node, the one at {url}\n")
                    } else {
                        let ids: Vec<String> = req.nodes.iter().map(|n| n.id.to_string()).collect();
                        format!(
                            "cluster initialised: {} voters ({})\n",
                            ids.len(),
                            ids.join(", ")
                        )
                    }
                },
                json::empty,
            )
        }
        ClusterCommand::Status => {
            let r = client
                .call(&ClusterStatusRequest {}, |ch, req| async move {
                    ClusterClient::new(ch).status(req).await
                })
                .await?;
            out.emit(|| human::cluster_status(&r), || json::cluster_status(&r))
        }
        ClusterCommand::AddNode(a) => {
            let req = AddNodeRequest {
                node: Some(NodeInfo {
                    id: a.id,
                    peer_addr: a.peer,
                    client_addr: a.client,
                    region: a.region,
                    http_url: a.http_url,
                }),
                learner_only: a.learner_only,
            };
            let r = client
                .call(&req, |ch, req| async move {
                    ClusterClient::new(ch).add_node(req).await
                })
                .await?;
            let kind = if a.learner_only { "learner" } else { "voter" };
            out.emit(
                || human::membership(&format!("node {} added as a {kind}", a.id), &r),
                || json::membership(&r),
            )
        }
        ClusterCommand::RemoveNode { id } => {
            let r = client
                .call(&RemoveNodeRequest { id }, |ch, req| async move {
                    ClusterClient::new(ch).remove_node(req).await
                })
                .await?;
            out.emit(
                || human::membership(&format!("node {id} removed"), &r),
                || json::membership(&r),
            )
        }
        ClusterCommand::PromoteLearner { id } => {
            let r = client
                .call(&PromoteLearnerRequest { id }, |ch, req| async move {
                    ClusterClient::new(ch).promote_learner(req).await
                })
                .await?;
            out.emit(
                || human::membership(&format!("node {id} promoted to voter"), &r),
                || json::membership(&r),
            )
        }
        ClusterCommand::Snapshot {
            out: Some(path),
            allow_stale,
        } => backup(client, out, &path, allow_stale).await,
        ClusterCommand::Snapshot { out: None, .. } => {
            let r = client
                .call(&SnapshotRequest {}, |ch, req| async move {
                    ClusterClient::new(ch).snapshot(req).await
                })
                .await?;
            out.emit(
                || {
                    format!(
                        "snapshot started on node {} at applied index {}\n",
                        r.node_id, r.applied_index
                    )
                },
                || serde_json::json!({"node_id": r.node_id, "applied_index": r.applied_index}),
            )
        }
        ClusterCommand::TransferLeader { to } => {
            let req = TransferLeaderRequest {
                node_id: to.unwrap_or(0),
            };
            let r = client
                .call(&req, |ch, req| async move {
                    ClusterClient::new(ch).transfer_leader(req).await
                })
                .await?;
            out.emit(
                || {
                    format!(
                        "node {} leads (term {}); transfer took {} ms\n",
                        r.leader_id, r.term, r.took_ms
                    )
                },
                || {
                    serde_json::json!({
                        "leader_id": r.leader_id,
                        "term": r.term,
                        "took_ms": r.took_ms,
                    })
                },
            )
        }
    }
}

/// `cluster snapshot --out FILE`: stream a backup into FILE.tmp, check its
/// length and SHA-256 against the header, fsync, then rename it into place.
async fn backup(
    client: &Client,
    out: &Printer,
    path: &std::path::Path,
    allow_stale: bool,
) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    use std::io::Write as _;
    let req = BackupRequest { allow_stale };
    let (mut stream, url) = client
        .call_at(&req, |ch, req| async move {
            ClusterClient::new(ch).backup(req).await
        })
        .await?;
    let url = url.to_string();
    let header = match stream.message().await? {
        Some(BackupChunk {
            header: Some(h), ..
        }) => h,
        _ => anyhow::bail!("{url} sent no backup header"),
    };
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    file.write_all(header.line.as_bytes())?;
    let mut hash = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.message().await? {
        hash.update(&chunk.data);
        received += chunk.data.len() as u64;
        file.write_all(&chunk.data)
            .with_context(|| format!("write {}", tmp.display()))?;
    }
    let sha256: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if received != header.bytes || sha256 != header.sha256 {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!(
            "backup from {url} is damaged: {received} bytes with sha256 {sha256}, \
             expected {} bytes with sha256 {}",
            header.bytes,
            header.sha256
        );
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    out.emit(
        || {
            format!(
                "backup of node {} at index {} (term {}): {} bytes, sha256 {}, written to {}\n",
                header.node_id,
                header.index,
                header.term,
                header.bytes,
                header.sha256,
                path.display()
            )
        },
        || {
            serde_json::json!({
                "node_id": header.node_id,
                "index": header.index,
                "term": header.term,
                "bytes": header.bytes,
                "sha256": header.sha256,
                "file": path.display().to_string(),
            })
        },
    )
}

/// `id=1,peer=HOST:PORT,client=HOST:PORT,region=R`, keys in any order and any
/// case, each exactly once.
fn parse_node_spec(s: &str) -> Result<NodeInfo, String> {
    let (mut id, mut peer, mut client, mut region, mut http) = (None, None, None, None, None);
    for part in s.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        let slot_taken = match key.as_str() {
            "id" => id
                .replace(
                    value
                        .parse::<u64>()
                        .map_err(|e| format!("id `{value}`: {e}"))?,
                )
                .is_some(),
            "peer" => peer.replace(parse_host_port(value)?).is_some(),
            "client" => client.replace(parse_host_port(value)?).is_some(),
            "region" => region.replace(value.to_owned()).is_some(),
            "http" => http.replace(value.to_owned()).is_some(),
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected id, peer, client, region, http)"
                ))
            }
        };
        if slot_taken {
            return Err(format!("`{key}` given twice"));
        }
    }
    let missing = |what: &str| format!("missing `{what}=` (expected id=,peer=,client=,region=)");
    Ok(NodeInfo {
        id: id.ok_or_else(|| missing("id"))?,
        peer_addr: peer.ok_or_else(|| missing("peer"))?,
        client_addr: client.ok_or_else(|| missing("client"))?,
        region: region.ok_or_else(|| missing("region"))?,
        http_url: http.unwrap_or_default(),
    })
}

/// `host:port` with a numeric port (IPv6 as `[::1]:8711`).
fn parse_host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not host:port"))?;
    if host.is_empty() {
        return Err(format!("`{s}` has no host"));
    }
    port.parse::<u16>()
        .map_err(|e| format!("`{s}`: port `{port}`: {e}"))?;
    Ok(s.to_owned())
}

mod human {
    //! The human text this command prints (`--output human`, the default).

    use pager_proto::pager::v1::{ClusterStatus, MembershipResponse};

    use crate::output::{clean, kv, text, Align, Table};

    pub fn cluster_status(s: &ClusterStatus) -> String {
        let is_leader = s.leader_id != 0 && s.leader_id == s.node_id;
        let leader = match (s.leader_id, s.leader_client_addr.as_str()) {
            (0, _) => "none known".to_owned(),
            (id, "") => id.to_string(),
            (id, addr) => format!("{id} at {}", clean(addr)),
        };
        let node = if s.region.is_empty() {
            s.node_id.to_string()
        } else {
            format!("{} ({})", s.node_id, clean(&s.region))
        };
        let mut out = kv(&[
            ("node", node),
            ("role", text(&s.role)),
            ("term", s.term.to_string()),
            ("leader", leader),
            ("last log", s.last_log_index.to_string()),
            ("commit", s.commit_index.to_string()),
            ("applied", s.applied_index.to_string()),
        ]);
        out.push('\n');
        if s.members.is_empty() {
            out.push_str("members: none known\n");
            return out;
        }
        let mut table = Table::new(&[
            ("ID", Align::Right),
            ("REGION", Align::Left),
            ("MEMBER", Align::Left),
            ("PEER", Align::Left),
            ("CLIENT", Align::Left),
            ("MATCHED", Align::Right),
            ("LAG", Align::Right),
        ]);
        for m in &s.members {
            let node = m.node.clone().unwrap_or_default();
            // Matched index and lag are the leader's view; 0 elsewhere means
            // "unknown", not "caught up".
            let (matched, lag) = if is_leader {
                (m.matched_index.to_string(), m.lag.to_string())
            } else {
                ("-".to_owned(), "-".to_owned())
            };
            table.row(vec![
                node.id.to_string(),
                text(&node.region),
                if m.voter { "voter" } else { "learner" }.to_owned(),
                text(&node.peer_addr),
                text(&node.client_addr),
                matched,
                lag,
            ]);
        }
        out.push_str(&table.render());
        if !is_leader {
            out.push_str("(matched and lag are known only to the leader");
            if !s.leader_client_addr.is_empty() {
                out.push_str(&format!(": --endpoint {}", clean(&s.leader_client_addr)));
            }
            out.push_str(")\n");
        }
        out
    }

    /// `headline`, then who the cluster's voters and learners are now.
    pub fn membership(headline: &str, r: &MembershipResponse) -> String {
        let ids = |ids: &[u64]| {
            if ids.is_empty() {
                "-".to_owned()
            } else {
                ids.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        format!(
            "{headline}\n\n{}",
            kv(&[
                ("voters", ids(&r.voters)),
                ("learners", ids(&r.learners)),
                ("commit", r.commit_index.to_string()),
            ])
        )
    }
}

mod json {
    //! The JSON this command prints (`--output json`).

    use pager_proto::pager::v1::{ClusterStatus, MemberStatus, MembershipResponse, NodeInfo};
    use serde_json::{json, Value};

    pub fn empty() -> Value {
        json!({})
    }

    pub fn node(n: &NodeInfo) -> Value {
        json!({
            "id": n.id,
            "peer_addr": n.peer_addr,
            "client_addr": n.client_addr,
            "region": n.region,
        })
    }

    pub fn member(m: &MemberStatus) -> Value {
        json!({
            "node": m.node.as_ref().map_or(Value::Null, node),
            "voter": m.voter,
            "matched_index": m.matched_index,
            "lag": m.lag,
        })
    }

    pub fn cluster_status(s: &ClusterStatus) -> Value {
        json!({
            "node_id": s.node_id,
            "region": s.region,
            "role": s.role,
            "term": s.term,
            "leader_id": s.leader_id,
            "leader_client_addr": s.leader_client_addr,
            "last_log_index": s.last_log_index,
            "commit_index": s.commit_index,
            "applied_index": s.applied_index,
            "members": s.members.iter().map(member).collect::<Vec<_>>(),
        })
    }

    pub fn membership(r: &MembershipResponse) -> Value {
        json!({
            "voters": r.voters,
            "learners": r.learners,
            "commit_index": r.commit_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::testing::*;
    use crate::cli::Command;
    use pager_proto::pager::v1::{ClusterStatus, MemberStatus, MembershipResponse};
    use serde_json::json;

    #[test]
    fn cluster_init() {
        let cli = parse(&["cluster", "init"]);
        let Command::Cluster(ClusterCommand::Init { nodes }) = cli.command else {
            panic!("wrong command");
        };
        assert!(nodes.is_empty());

        let cli = parse(&[
            "cluster",
            "init",
            "--node",
            "ID=1,peer=127.0.0.1:8711,client=127.0.0.1:8710,region=us-east",
            "--node",
            "region=eu-west,client=[::1]:8720,peer=[::1]:8721,id=2",
        ]);
        let Command::Cluster(ClusterCommand::Init { nodes }) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(
            nodes,
            vec![
                NodeInfo {
                    id: 1,
                    peer_addr: "127.0.0.1:8711".into(),
                    client_addr: "127.0.0.1:8710".into(),
                    region: "us-east".into(),
                    http_url: String::new(),
                },
                NodeInfo {
                    id: 2,
                    peer_addr: "[::1]:8721".into(),
                    client_addr: "[::1]:8720".into(),
                    region: "eu-west".into(),
                    http_url: String::new(),
                },
            ]
        );
    }

    #[test]
    fn cluster_init_bad_node_specs() {
        for spec in [
            "id=1,peer=127.0.0.1:8711,client=127.0.0.1:8710",
            "id=x,peer=127.0.0.1:8711,client=127.0.0.1:8710,region=r",
            "id=1,peer=127.0.0.1,client=127.0.0.1:8710,region=r",
            "id=1,id=2,peer=h:1,client=h:2,region=r",
            "id=1,peer=h:1,client=h:2,region=r,zone=z",
            "id=1 peer=h:1",
        ] {
            assert_eq!(
                parse_err(&["cluster", "init", "--node", spec]),
                clap::error::ErrorKind::ValueValidation,
                "{spec}"
            );
        }
    }

    #[test]
    fn cluster_status_add_remove() {
        assert!(matches!(
            parse(&["cluster", "status"]).command,
            Command::Cluster(ClusterCommand::Status)
        ));

        let cli = parse(&[
            "cluster",
            "add-node",
            "--id",
            "4",
            "--peer",
            "10.0.0.4:8711",
            "--client",
            "10.0.0.4:8710",
            "--region",
            "eu-west",
            "--learner-only",
        ]);
        let Command::Cluster(ClusterCommand::AddNode(a)) = cli.command else {
            panic!("wrong command");
        };
        assert_eq!(
            (a.id, a.peer.as_str(), a.client.as_str(), a.region.as_str()),
            (4, "10.0.0.4:8711", "10.0.0.4:8710", "eu-west")
        );
        assert!(a.learner_only);

        let cli = parse(&[
            "cluster", "add-node", "--id", "4", "--peer", "h:1", "--client", "h:2", "--region", "r",
        ]);
        let Command::Cluster(ClusterCommand::AddNode(a)) = cli.command else {
            panic!("wrong command");
        };
        assert!(!a.learner_only);

        assert_eq!(
            parse_err(&["cluster", "add-node", "--id", "4", "--peer", "h:1"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );

        let cli = parse(&["cluster", "remove-node", "3"]);
        assert!(matches!(
            cli.command,
            Command::Cluster(ClusterCommand::RemoveNode { id: 3 })
        ));
        assert_eq!(
            parse_err(&["cluster", "remove-node"]),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    fn node(id: u64, region: &str, port: u16) -> NodeInfo {
        NodeInfo {
            id,
            peer_addr: format!("10.0.0.{id}:{}", port + 1),
            client_addr: format!("10.0.0.{id}:{port}"),
            region: region.into(),
            http_url: String::new(),
        }
    }

    fn sample_status() -> ClusterStatus {
        ClusterStatus {
            node_id: 1,
            region: "us-east".into(),
            role: "leader".into(),
            term: 7,
            leader_id: 1,
            leader_client_addr: "10.0.0.1:8710".into(),
            last_log_index: 1234,
            commit_index: 1234,
            applied_index: 1233,
            members: vec![
                MemberStatus {
                    node: Some(node(1, "us-east", 8710)),
                    voter: true,
                    matched_index: 1234,
                    lag: 0,
                },
                MemberStatus {
                    node: Some(node(2, "us-west", 8710)),
                    voter: true,
                    matched_index: 1230,
                    lag: 4,
                },
                MemberStatus {
                    node: Some(node(12, "eu-central", 8710)),
                    voter: false,
                    matched_index: 17,
                    lag: 1217,
                },
            ],
        }
    }

    #[test]
    fn cluster_status_human_from_the_leader() {
        assert_eq!(
            human::cluster_status(&sample_status()),
            "\
node      1 (us-east)
role      leader
term      7
leader    1 at 10.0.0.1:8710
last log  1234
commit    1234
applied   1233

ID  REGION      MEMBER   PEER            CLIENT          MATCHED   LAG
 1  us-east     voter    10.0.0.1:8711   10.0.0.1:8710      1234     0
 2  us-west     voter    10.0.0.2:8711   10.0.0.2:8710      1230     4
12  eu-central  learner  10.0.0.12:8711  10.0.0.12:8710       17  1217
"
        );
    }

    #[test]
    fn cluster_status_human_from_a_follower() {
        let mut s = sample_status();
        s.node_id = 2;
        s.region = "us-west".into();
        s.role = "follower".into();
        for m in &mut s.members {
            (m.matched_index, m.lag) = (0, 0);
        }
        s.members.truncate(2);
        assert_eq!(
            human::cluster_status(&s),
            "\
node      2 (us-west)
role      follower
term      7
leader    1 at 10.0.0.1:8710
last log  1234
commit    1234
applied   1233

ID  REGION   MEMBER  PEER           CLIENT         MATCHED  LAG
 1  us-east  voter   10.0.0.1:8711  10.0.0.1:8710        -    -
 2  us-west  voter   10.0.0.2:8711  10.0.0.2:8710        -    -
(matched and lag are known only to the leader: --endpoint 10.0.0.1:8710)
"
        );

        s.leader_id = 0;
        s.leader_client_addr.clear();
        assert!(human::cluster_status(&s).contains("\nleader    none known\n"));
    }

    #[test]
    fn cluster_status_json() {
        assert_eq!(
            json::cluster_status(&sample_status()),
            json!({
                "node_id": 1,
                "region": "us-east",
                "role": "leader",
                "term": 7,
                "leader_id": 1,
                "leader_client_addr": "10.0.0.1:8710",
                "last_log_index": 1234,
                "commit_index": 1234,
                "applied_index": 1233,
                "members": [
                    {"node": {"id": 1, "peer_addr": "10.0.0.1:8711", "client_addr": "10.0.0.1:8710", "region": "us-east"},
                     "voter": true, "matched_index": 1234, "lag": 0},
                    {"node": {"id": 2, "peer_addr": "10.0.0.2:8711", "client_addr": "10.0.0.2:8710", "region": "us-west"},
                     "voter": true, "matched_index": 1230, "lag": 4},
                    {"node": {"id": 12, "peer_addr": "10.0.0.12:8711", "client_addr": "10.0.0.12:8710", "region": "eu-central"},
                     "voter": false, "matched_index": 17, "lag": 1217},
                ],
            })
        );
    }

    #[test]
    fn membership_human_and_json() {
        let m = MembershipResponse {
            voters: vec![1, 2, 3],
            learners: vec![],
            commit_index: 57,
        };
        assert_eq!(
            human::membership("node 3 added as a voter", &m),
            "node 3 added as a voter\n\nvoters    1, 2, 3\nlearners  -\ncommit    57\n"
        );
        assert_eq!(
            json::membership(&m),
            json!({"voters": [1, 2, 3], "learners": [], "commit_index": 57})
        );
    }
}
