//! The cluster, for admins: members, regions, the leader and its term,
//! indexes, each member's lag (the leader's view), quorum, the last
//! snapshot and the on-call document's version.

use super::{html, Console, Nav, Session};
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use openraft::ServerState;

pub struct Member {
    pub id: u64,
    pub region: String,
    pub role: &'static str,
    pub voter: bool,
    /// Entries behind the leader; empty when this node is not the leader.
    pub lag: String,
    pub console: String,
    pub this: bool,
}

#[derive(Template)]
#[template(path = "console/cluster.html")]
struct ClusterPage {
    nav: Nav,
    node: u64,
    role: &'static str,
    term: u64,
    leader: String,
    /// The leader's console, to read the lag from there.
    leader_console: String,
    last_log: u64,
    applied: u64,
    quorum: bool,
    snapshot: String,
    config_version: u64,
    members: Vec<Member>,
}

fn role(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

pub async fn page(State(console): State<Console>, session: Session) -> Response {
    if let Err(p) = session.require_admin() {
        return p.into_response();
    }
    let node = &console.node;
    let m = node.metrics();
    let last_log = m.last_log_index.unwrap_or(0);
    let membership = m.membership_config.membership();
    let members = m
        .membership_config
        .nodes()
        .map(|(id, n)| {
            let lag = m.replication.as_ref().map(|r| {
                let matched = r
                    .get(id)
                    .cloned()
                    .flatten()
                    .map(|l| l.index)
                    .unwrap_or(if *id == m.id { last_log } else { 0 });
                last_log.saturating_sub(matched).to_string()
            });
            Member {
                id: *id,
                region: n.region.clone(),
                role: if Some(*id) == m.current_leader {
                    "leader"
                } else if membership.voter_ids().any(|v| v == *id) {
                    "voter"
                } else {
                    "learner"
                },
                voter: membership.voter_ids().any(|v| v == *id),
                lag: lag.unwrap_or_default(),
                console: n.http_url.clone(),
                this: *id == m.id,
            }
        })
        .collect();
    let leader_node = m.current_leader.and_then(|l| node.member(l));
    let page = ClusterPage {
        nav: Nav::new(&session, "cluster"),
        node: m.id,
        role: role(m.state),
        term: m.current_term,
        leader: m
            .current_leader
            .map(|l| format!("node {l}"))
            .unwrap_or_else(|| "none known (election under way?)".into()),
        leader_console: leader_node
            .filter(|_| m.state != ServerState::Leader)
            .map(|n| n.http_url)
            .unwrap_or_default(),
        last_log,
        applied: m.last_applied.map(|l| l.index).unwrap_or(0),
        quorum: crate::leader::monitor::in_quorum(node),
        snapshot: m
            .snapshot
            .map(|s| format!("index {} (term {})", s.index, s.leader_id.term))
            .unwrap_or_else(|| "none yet".into()),
        config_version: node.read(|s| s.config_version),
        members,
    };
    html(&page)
}
