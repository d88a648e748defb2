//! The peer gRPC service and network on one node: error mapping on both sides.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::VoteRequest;
use openraft::testing::log_id;
use openraft::Vote;
use pager_proto::raft::v1::RaftPayload;
use pager_raft::{serve_peers, ForwardFn, Network, PeerClients, PeerNode, Raft, RaftTimings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::{Code, Status};

fn peer(addr: &str) -> PeerNode {
    PeerNode {
        peer_addr: addr.to_string(),
        client_addr: String::new(),
        region: "test".to_string(),
        http_url: String::new(),
    }
}

fn echo_forward() -> ForwardFn {
    Arc::new(|json| {
        Box::pin(async move {
            if json == b"refuse" {
                return Err(Status::failed_precondition("not the leader"));
            }
            Ok(json)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_maps_errors_and_forwards() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let clients = PeerClients::default();
    let (log, sm) = pager_raft::open(dir.path()).await.unwrap();
    let config = Arc::new(RaftTimings::default().validate().unwrap());
    let raft = Raft::new(1, config, Network::new(clients.clone()), log, sm)
        .await
        .unwrap();
    raft.initialize(BTreeMap::from([(1, peer(&addr))]))
        .await
        .unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_peers(
        listener,
        raft.clone(),
        echo_forward(),
        None,
        async {
            let _ = stop_rx.await;
        },
    ));

    // Bad JSON: InvalidArgument naming the request type.
    let mut client = clients.client(&addr).unwrap();
    let status = client
        .append_entries(RaftPayload {
            json: b"{not json".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("AppendEntriesRequest"),
        "{status}"
    );

    // Forward: the daemon's handler answers, or its status comes back unchanged.
    let timeout = Duration::from_secs(5);
    let answer = clients
        .forward(&addr, b"hello".to_vec(), timeout)
        .await
        .unwrap();
    assert_eq!(answer, b"hello");
    let status = clients
        .forward(&addr, b"refuse".to_vec(), timeout)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    // A well-formed RPC reaches Raft and its answer comes back.
    let mut network = Network::new(clients.clone());
    let mut conn = network.new_client(1, &peer(&addr)).await;
    let option = RPCOption::new(Duration::from_secs(5));
    let vote = VoteRequest::new(Vote::new(0, 2), None);
    let resp = conn.vote(vote, option.clone()).await.unwrap();
    assert!(!resp.vote_granted, "a stale vote is refused");

    // A Raft error on the peer comes back as RemoteError (a stopped node is Fatal there).
    raft.shutdown().await.unwrap();
    let vote = VoteRequest::new(Vote::new(9, 2), Some(log_id(1, 1, 1)));
    match conn.vote(vote, option).await {
        Err(RPCError::RemoteError(remote)) => assert_eq!(remote.target, 1),
        other => panic!("expected RemoteError, got {other:?}"),
    }

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_is_unreachable() {
    // A port that was just free: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut network = Network::new(PeerClients::default());
    let mut conn = network.new_client(1, &peer(&addr)).await;
    let vote = VoteRequest::new(Vote::new(1, 2), None);
    match conn
        .vote(vote, RPCOption::new(Duration::from_secs(5)))
        .await
    {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }

    let status = PeerClients::default()
        .forward(&addr, b"x".to_vec(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_address_is_unreachable() {
    let mut network = Network::new(PeerClients::default());
    let mut conn = network.new_client(1, &peer("not a uri")).await;
    let vote = VoteRequest::new(Vote::new(1, 2), None);
    match conn
        .vote(vote, RPCOption::new(Duration::from_secs(1)))
        .await
    {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_port_refuses_requests_without_the_cluster_secret() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (log, sm) = pager_raft::open(dir.path()).await.unwrap();
    let config = Arc::new(RaftTimings::default().validate().unwrap());
    let raft = Raft::new(1, config, Network::new(PeerClients::default()), log, sm)
        .await
        .unwrap();
    let secret: Arc<str> = Arc::from("a-cluster-secret-0001");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_peers(
        listener,
        raft.clone(),
        echo_forward(),
        Some(secret.clone()),
        async {
            let _ = stop_rx.await;
        },
    ));
    let timeout = Duration::from_secs(5);
    let options = |secret: Option<Arc<str>>| {
        PeerClients::with_options(pager_raft::ClientOptions {
            cluster_secret: secret,
            ..Default::default()
        })
    };
    for wrong in [None, Some(Arc::from("not-the-secret"))] {
        let status = options(wrong)
            .forward(&addr, b"hello".to_vec(), timeout)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status}");
    }
    let answer = options(Some(secret))
        .forward(&addr, b"hello".to_vec(), timeout)
        .await
        .unwrap();
    assert_eq!(answer, b"hello");
    raft.shutdown().await.unwrap();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// `ClientOptions::local_address` (`cluster.peer_source_ip`): peer connections leave from that
/// address, and RPCs over them work. A relay in front of the peer port sees the source; Linux
/// routes all of 127.0.0.0/8 to loopback, so 127.0.0.3 needs no set-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_connections_leave_from_the_configured_source_address() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (log, sm) = pager_raft::open(dir.path()).await.unwrap();
    let config = Arc::new(RaftTimings::default().validate().unwrap());
    let raft = Raft::new(1, config, Network::new(PeerClients::default()), log, sm)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_peers(
        listener,
        raft.clone(),
        echo_forward(),
        None,
        async {
            let _ = stop_rx.await;
        },
    ));
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap().to_string();
    let (seen_tx, seen_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut from, peer) = relay.accept().await.unwrap();
        let _ = seen_tx.send(peer.ip());
        let mut to = tokio::net::TcpStream::connect(backend).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut from, &mut to).await;
    });
    let source: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    let clients = PeerClients::with_options(pager_raft::ClientOptions {
        local_address: Some(source),
        ..Default::default()
    });
    let answer = clients
        .forward(&relay_addr, b"hello".to_vec(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer, b"hello");
    assert_eq!(seen_rx.await.unwrap(), source);
    raft.shutdown().await.unwrap();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
