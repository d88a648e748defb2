//! Three nodes on loopback: elect, replicate, forward, lose the leader, elect again, restart the
//! lost node from its directory and watch it catch up.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pager_core::{Command, Response};
use pager_raft::{
    serve_peers, ForwardFn, LogId, Network, NodeId, PeerClients, PeerNode, Raft, RaftTimings,
    ServeError, StateHandle,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Status;
use tracing::info;

const WAIT: Duration = Duration::from_secs(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

struct Node {
    id: NodeId,
    addr: SocketAddr,
    raft: Raft,
    state: StateHandle,
    /// Resolves when the node's raft log file is closed.
    log_closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServeError>>,
}

/// The daemon's forward handler in miniature: propose the command, answer the response.
fn forward_to(raft: Raft) -> ForwardFn {
    Arc::new(move |json| {
        let raft = raft.clone();
        Box::pin(async move {
            let cmd: Command = serde_json::from_slice(&json)
                .map_err(|e| Status::invalid_argument(format!("cannot parse Command: {e}")))?;
            let written = raft
                .client_write(cmd)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            serde_json::to_vec(&written.data).map_err(|e| Status::internal(e.to_string()))
        })
    })
}

async fn start_node(id: NodeId, dir: &Path, listener: TcpListener, clients: &PeerClients) -> Node {
    let addr = listener.local_addr().unwrap();
    let (log, sm) = pager_raft::open(dir).await.unwrap();
    let log_closed = Box::pin(log.closed());
    let state = sm.state();
    let config = Arc::new(RaftTimings::default().validate().unwrap());
    let network = Network::new(clients.clone());
    let raft = Raft::new(id, config, network, log, sm).await.unwrap();
    let (stop_server, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_peers(
        listener,
        raft.clone(),
        forward_to(raft.clone()),
        None,
        async move {
            let _ = stop.await;
        },
    ));
    Node {
        id,
        addr,
        raft,
        state,
        log_closed,
        stop_server,
        server,
    }
}

/// Stop a node as abruptly as the API allows, and wait until its files are free.
async fn stop_node(node: Node) -> (NodeId, SocketAddr) {
    let Node {
        id,
        addr,
        raft,
        log_closed,
        stop_server,
        server,
        ..
    } = node;
    raft.shutdown().await.unwrap();
    let _ = stop_server.send(());
    tokio::time::timeout(WAIT, server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    drop(raft);
    tokio::time::timeout(WAIT, log_closed)
        .await
        .expect("raft log closed");
    (id, addr)
}

/// Wait until `node` sees a leader other than `not`; returns it.
async fn wait_leader(node: &Node, not: Option<NodeId>) -> NodeId {
    let metrics = node
        .raft
        .wait(Some(WAIT))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            format!("node {} sees a leader other than {not:?}", node.id),
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

/// Wait, through the applied watch channel, until `node` applied `log_id`.
async fn wait_applied(node: &Node, log_id: LogId) {
    let mut applied = node.state.subscribe_applied();
    tokio::time::timeout(
        WAIT,
        applied.wait_for(|a| a.is_some_and(|a| a.index >= log_id.index)),
    )
    .await
    .unwrap_or_else(|_| panic!("node {} applies {log_id}", node.id))
    .unwrap();
}

fn state_json(node: &Node) -> serde_json::Value {
    node.state.read(|s| serde_json::to_value(s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn elect_replicate_fail_over_and_catch_up() {
    init_tracing();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let clients = PeerClients::new(Duration::from_secs(1));

    info!("--- start three nodes on OS-chosen loopback ports");
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let members: BTreeMap<NodeId, PeerNode> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let peer_addr = l.local_addr().unwrap().to_string();
            let node = PeerNode {
                peer_addr,
                client_addr: String::new(),
                region: format!("region-{}", i + 1),
                http_url: String::new(),
            };
            (i as NodeId + 1, node)
        })
        .collect();
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = i as NodeId + 1;
        nodes.push(Some(
            start_node(id, dirs[i].path(), listener, &clients).await,
        ));
    }
    info!("--- initialize and wait for a leader");
    nodes[0]
        .as_ref()
        .unwrap()
        .raft
        .initialize(members.clone())
        .await
        .unwrap();
    let leader = wait_leader(nodes[0].as_ref().unwrap(), None).await;
    for n in nodes.iter().flatten() {
        let m = n
            .raft
            .wait(Some(WAIT))
            .current_leader(leader, "all agree on the leader")
            .await
            .unwrap();
        assert_eq!(m.current_leader, Some(leader));
    }
    info!(leader, "--- leader elected; write through it");
    let leader_node = nodes[(leader - 1) as usize].as_ref().unwrap();
    let written = leader_node
        .raft
        .client_write(Command::Tick { at: 1_000 })
        .await
        .unwrap();
    assert_eq!(written.data, Response::Noop);
    for n in nodes.iter().flatten() {
        wait_applied(n, written.log_id).await;
    }
    let expected = state_json(leader_node);
    for n in nodes.iter().flatten() {
        if n.state.last_applied() == leader_node.state.last_applied() {
            assert_eq!(state_json(n), expected, "node {} state", n.id);
        }
    }

    info!("--- forward a write from a follower's side to the leader");
    let follower = nodes.iter().flatten().find(|n| n.id != leader).unwrap();
    let answer = clients
        .forward(
            &leader_node.addr.to_string(),
            serde_json::to_vec(&Command::Tick { at: 2_000 }).unwrap(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let response: Response = serde_json::from_slice(&answer).unwrap();
    assert_eq!(response, Response::Noop);
    let forwarded_at = leader_node.state.last_applied().unwrap();
    wait_applied(follower, forwarded_at).await;

    info!(leader, "--- stop the leader");
    let old = nodes[(leader - 1) as usize].take().unwrap();
    let (old_id, old_addr) = stop_node(old).await;

    info!("--- wait for a new leader among the survivors");
    let survivors: Vec<&Node> = nodes.iter().flatten().collect();
    let new_leader = wait_leader(survivors[0], Some(old_id)).await;
    for n in &survivors {
        n.raft
            .wait(Some(WAIT))
            .current_leader(new_leader, "survivors agree on the new leader")
            .await
            .unwrap();
    }
    info!(new_leader, "--- new leader; write through it");
    let new_leader_node = nodes[(new_leader - 1) as usize].as_ref().unwrap();
    let written = new_leader_node
        .raft
        .client_write(Command::Tick { at: 3_000 })
        .await
        .unwrap();
    for n in nodes.iter().flatten() {
        wait_applied(n, written.log_id).await;
    }

    info!(old_id, "--- restart the stopped node from its directory");
    let listener = TcpListener::bind(old_addr).await.unwrap();
    let restarted = start_node(
        old_id,
        dirs[(old_id - 1) as usize].path(),
        listener,
        &clients,
    )
    .await;
    wait_applied(&restarted, written.log_id).await;
    restarted
        .raft
        .wait(Some(WAIT))
        .current_leader(new_leader, "restarted node follows the new leader")
        .await
        .unwrap();
    let new_leader_node = nodes[(new_leader - 1) as usize].as_ref().unwrap();
    if restarted.state.last_applied() == new_leader_node.state.last_applied() {
        assert_eq!(state_json(&restarted), state_json(new_leader_node));
    }
    nodes[(old_id - 1) as usize] = Some(restarted);

    info!("--- shut everything down");
    for n in nodes.into_iter().flatten() {
        stop_node(n).await;
    }
}
