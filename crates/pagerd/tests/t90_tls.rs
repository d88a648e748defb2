//! TLS: the client port over TLS, mutual TLS between peers with a cluster CA,
//! and certificates reloaded from disk without a restart. Certificates are
//! made here with rcgen (SANs 127.0.0.1 and localhost); nodes run in-process
//! on loopback ports the OS picks.

use pager_proto::pager::v1 as pb;
use pager_tls::{ClientTls, TcpOptions, TlsConnector, TlsFiles};
use pagerd::config::{RawClusterTls, RawConfig, RawMember, RawTls};
use pagerd::{Listeners, Running};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::codegen::Service as _;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::Code;

const SECRET: &str = "peer-secret-000000001";

const ONCALL: &str = r#"
[users.alice]
contact_methods = [ { name = "sms", type = "sms", address = "+15550100001" } ]
notification_rules.high = [ { after = "0", contact = "sms" } ]
[escalation_policies.p]
levels = [ { escalate_after = "5m", targets = [ { user = "alice" } ] } ]
[services.db]
integration_keys = ["db-key-0001"]
escalation_policy = "p"
"#;

// ---------------------------------------------------------------- certificates

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("ca key");
    let cert = params.self_signed(&key).expect("self-signed ca");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for 127.0.0.1 and localhost, good for server and client auth.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

fn leaf(ca: &Ca, name: &str, serial: u64) -> Leaf {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &ca.issuer).expect("signed leaf");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// Write `contents` to `path` the way deployment tools do: a temp file, then a rename.
fn put(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

struct Paths {
    cert: PathBuf,
    key: PathBuf,
}

fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) -> Paths {
    let p = Paths {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    put(&p.cert, &leaf.cert_pem);
    put(&p.key, &leaf.key_pem);
    p
}

fn write_ca(dir: &Path, name: &str, pems: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    put(&path, &pems.concat());
    path
}

// ---------------------------------------------------------------- nodes

struct Addrs {
    client: SocketAddr,
    peer: SocketAddr,
    http: SocketAddr,
}

async fn bind(n: usize) -> (Vec<Listeners>, Vec<Addrs>) {
    let mut ls = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..n {
        let bind = || async { TcpListener::bind("127.0.0.1:0").await.expect("bind") };
        let l = Listeners {
            client: bind().await,
            peer: bind().await,
            http: bind().await,
        };
        addrs.push(Addrs {
            client: l.client.local_addr().expect("addr"),
            peer: l.peer.local_addr().expect("addr"),
            http: l.http.local_addr().expect("addr"),
        });
        ls.push(l);
    }
    (ls, addrs)
}

/// Node `id` of a cluster of `addrs.len()` nodes, node 1 bootstrapping, quick timings.
fn raw_config(id: usize, addrs: &[Addrs], dir: &Path) -> RawConfig {
    let a = &addrs[id - 1];
    let mut raw = RawConfig {
        node_id: id as u64,
        region: format!("r{id}"),
        data_dir: dir.join(format!("node{id}")),
        ..RawConfig::default()
    };
    raw.listen.client = a.client.to_string();
    raw.listen.peer = a.peer.to_string();
    raw.listen.http = a.http.to_string();
    raw.cluster.bootstrap = id == 1;
    raw.cluster.members = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| RawMember {
            id: i as u64 + 1,
            peer: a.peer.to_string(),
            client: a.client.to_string(),
            region: format!("r{}", i + 1),
            http: None,
        })
        .collect();
    raw.raft.heartbeat_interval_ms = 50;
    raw.raft.election_timeout_min_ms = 300;
    raw.raft.election_timeout_max_ms = 600;
    raw.raft.rpc_timeout_ms = 300;
    raw
}

/// Wait until every node knows the same live leader; return it.
async fn leader(nodes: &[Running]) -> u64 {
    let deadline = Duration::from_secs(15);
    let mut m = nodes[0].node.raft.metrics();
    let leader = tokio::time::timeout(deadline, m.wait_for(|m| m.current_leader.is_some()))
        .await
        .expect("a leader within 15 s")
        .expect("metrics")
        .current_leader
        .expect("leader");
    for r in nodes {
        let mut m = r.node.raft.metrics();
        tokio::time::timeout(deadline, m.wait_for(|m| m.current_leader == Some(leader)))
            .await
            .expect("every node learns the leader")
            .expect("metrics");
    }
    leader
}

// ---------------------------------------------------------------- clients

/// A client trusting the CA(s) in `ca` (and presenting `identity`, if any).
fn client_tls(ca: &Path, identity: Option<&Paths>) -> ClientTls {
    ClientTls::client(
        "test client",
        TlsFiles {
            ca: Some(ca.to_path_buf()),
            cert: identity.map(|p| p.cert.clone()),
            key: identity.map(|p| p.key.clone()),
        },
    )
    .expect("client TLS config")
}

async fn tls_channel(
    addr: SocketAddr,
    tls: &ClientTls,
) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector(TlsConnector::new(tls.clone(), &TcpOptions::default()))
        .await
}

async fn status(ch: Channel) -> Result<pb::ClusterStatus, tonic::Status> {
    let mut req = tonic::Request::new(pb::ClusterStatusRequest {});
    req.set_timeout(Duration::from_secs(5));
    pb::cluster_client::ClusterClient::new(ch)
        .status(req)
        .await
        .map(|r| r.into_inner())
}

/// A fresh TLS connection to `addr`: the leaf certificate the server presented.
async fn presented(addr: SocketAddr, tls: &ClientTls) -> Result<Vec<u8>, String> {
    let uri: Uri = format!("https://{addr}").parse().expect("uri");
    let mut connector = TlsConnector::new(tls.clone(), &TcpOptions::default());
    let io = tokio::time::timeout(Duration::from_secs(5), connector.call(uri))
        .await
        .map_err(|_| "no handshake within 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (_, conn) = io.inner().get_ref();
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.as_ref().to_vec())
        .ok_or_else(|| "no certificate presented".to_string())
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_port_serves_tls_and_refuses_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca1 = ca("client CA");
    let ca_path = write_ca(dir.path(), "ca", &[&ca1.pem]);
    let other_ca = write_ca(dir.path(), "other-ca", &[&ca("someone else").pem]);
    let server = leaf(&ca1, "pagerd client port", 1);
    let files = write_leaf(dir.path(), "server", &server);

    let (mut ls, addrs) = bind(1).await;
    let mut raw = raw_config(1, &addrs, dir.path());
    raw.cluster.members.clear();
    raw.tls = Some(RawTls {
        cert_file: Some(files.cert.clone()),
        key_file: Some(files.key.clone()),
        reload_interval_ms: 0,
    });
    let cfg = raw.validate().expect("valid config");
    let node = pagerd::start(cfg, ls.remove(0)).await.expect("node starts");
    leader(std::slice::from_ref(&node)).await;
    let addr = addrs[0].client;

    // With the CA: a gRPC call over TLS answers.
    let trusted = client_tls(&ca_path, None);
    let ch = tls_channel(addr, &trusted).await.expect("TLS connect");
    let st = status(ch).await.expect("status over TLS");
    assert_eq!(st.node_id, 1);
    assert_eq!(
        presented(addr, &trusted).await.expect("handshake"),
        server.der
    );

    // By name too: the certificate has a DNS SAN for localhost.
    let by_name = Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
        .expect("uri")
        .connect_with_connector(TlsConnector::new(trusted.clone(), &TcpOptions::default()))
        .await
        .expect("TLS connect by name");
    status(by_name).await.expect("status over TLS by name");

    // Plaintext: no answer.
    let plain = match Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
    {
        Ok(ch) => status(ch).await.map(|_| ()).map_err(|s| s.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(plain.is_err(), "a plaintext client must not get an answer");

    // A client that does not trust the CA: the handshake fails.
    let untrusting = client_tls(&other_ca, None);
    let err = presented(addr, &untrusting)
        .await
        .expect_err("server certificate from an unknown CA");
    assert!(
        err.contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peers_use_mutual_tls_with_the_cluster_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster_ca = ca("cluster CA");
    let ca_path = write_ca(dir.path(), "cluster-ca", &[&cluster_ca.pem]);
    let (ls, addrs) = bind(3).await;
    let mut nodes = Vec::new();
    let mut node_files = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        let id = i + 1;
        let files = write_leaf(
            dir.path(),
            &format!("node{id}"),
            &leaf(&cluster_ca, &format!("node{id}"), id as u64),
        );
        let mut raw = raw_config(id, &addrs, dir.path());
        raw.cluster.secret = Some(SECRET.into());
        raw.cluster.tls = Some(RawClusterTls {
            ca_file: Some(ca_path.clone()),
            cert_file: Some(files.cert.clone()),
            key_file: Some(files.key.clone()),
            reload_interval_ms: 0,
        });
        let cfg = raw.validate().expect("valid config");
        assert!(cfg.peer_tls.is_some());
        nodes.push(pagerd::start(cfg, l).await.expect("node starts"));
        node_files.push(files);
    }

    tracing_init();
    let leader_id = leader(&nodes).await;
    let follower = (1..=3)
        .find(|&i| i != leader_id as usize)
        .expect("a follower");

    // A write through a follower: forwarded to the leader over the peer
    // port, committed by a majority, applied everywhere.
    let ch = Channel::from_shared(format!("http://{}", addrs[follower - 1].client))
        .expect("uri")
        .connect()
        .await
        .expect("client port");
    pb::config_client::ConfigClient::new(ch)
        .apply(pb::ApplyConfigRequest {
            document: ONCALL.into(),
            format: "toml".into(),
            dry_run: false,
        })
        .await
        .expect("applied through mutual TLS between peers");
    let index = nodes[leader_id as usize - 1]
        .node
        .read(|s| s.last_applied.index);
    for r in &nodes {
        let mut rx = r.node.applied.clone();
        tokio::time::timeout(
            Duration::from_secs(15),
            rx.wait_for(|l| l.map(|l| l.index).unwrap_or(0) >= index),
        )
        .await
        .expect("every node applies the write")
        .expect("applied channel");
        assert_eq!(r.node.read(|s| s.config_version), 1);
    }

    let leader_peer = addrs[leader_id as usize - 1].peer.to_string();
    let forward = |clients: pager_raft::PeerClients| {
        let addr = leader_peer.clone();
        async move {
            clients
                .forward(&addr, b"{}".to_vec(), Duration::from_secs(3))
                .await
        }
    };
    let peer_clients = |tls: Option<ClientTls>| {
        pager_raft::PeerClients::with_options(pager_raft::ClientOptions {
            connect_timeout: Duration::from_secs(2),
            cluster_secret: Some(SECRET.into()),
            tls,
            ..Default::default()
        })
    };

    // Control: a peer with a certificate from the cluster CA and the secret
    // reaches the Forward handler (which rejects the empty request itself).
    let member = forward(peer_clients(Some(client_tls(
        &ca_path,
        Some(&node_files[0]),
    ))))
    .await
    .expect_err("an empty forward is not a command");
    assert!(
        !matches!(member.code(), Code::Unavailable | Code::Unauthenticated),
        "a member reaches the handler: {member}"
    );

    // A peer presenting a certificate from another CA is refused in the
    // handshake, before the secret or Raft are looked at.
    let stranger_ca = ca("stranger CA");
    let stranger = write_leaf(dir.path(), "stranger", &leaf(&stranger_ca, "stranger", 99));
    let refused = forward(peer_clients(Some(client_tls(&ca_path, Some(&stranger)))))
        .await
        .expect_err("a certificate from another CA");
    assert_refused(&refused);

    // No certificate at all, and plaintext: refused too.
    let anonymous = forward(peer_clients(Some(client_tls(&ca_path, None))))
        .await
        .expect_err("no client certificate");
    assert_refused(&anonymous);
    let plain = forward(peer_clients(None)).await.expect_err("plaintext");
    assert_refused(&plain);

    for r in nodes {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_certificate_on_disk_is_served_without_a_restart() {
    tracing_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let (old_ca, new_ca) = (ca("old CA"), ca("new CA"));
    let old_only = write_ca(dir.path(), "old-ca", &[&old_ca.pem]);
    let new_only = write_ca(dir.path(), "new-ca", &[&new_ca.pem]);
    let both = write_ca(dir.path(), "both", &[&old_ca.pem, &new_ca.pem]);
    let old = leaf(&old_ca, "pagerd", 1);
    let files = write_leaf(dir.path(), "server", &old);

    let (mut ls, addrs) = bind(1).await;
    let mut raw = raw_config(1, &addrs, dir.path());
    raw.cluster.members.clear();
    raw.tls = Some(RawTls {
        cert_file: Some(files.cert.clone()),
        key_file: Some(files.key.clone()),
        reload_interval_ms: 100,
    });
    let node = pagerd::start(raw.validate().expect("valid config"), ls.remove(0))
        .await
        .expect("node starts");
    leader(std::slice::from_ref(&node)).await;
    let addr = addrs[0].client;
    let either = client_tls(&both, None);
    assert_eq!(presented(addr, &either).await.expect("handshake"), old.der);
    // A connection made now lives on across the reload.
    let long_lived = tls_channel(addr, &client_tls(&old_only, None))
        .await
        .expect("TLS connect");
    status(long_lived.clone()).await.expect("status");

    // A broken file is refused and the old certificate kept. `reload_tls`
    // (SIGHUP) returns once the files were examined.
    put(&files.cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    node.reload_tls().await;
    assert_eq!(
        presented(addr, &either).await.expect("still serving"),
        old.der,
        "a bad file must not replace the certificate"
    );

    // A new certificate from another CA (cert first, then key: in between the
    // pair does not match and is refused). The poller picks it up.
    let new = leaf(&new_ca, "pagerd", 2);
    put(&files.cert, &new.cert_pem);
    put(&files.key, &new.key_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match presented(addr, &either).await {
            Ok(der) if der == new.der => break,
            Ok(der) => assert_eq!(der, old.der, "only the old or the new certificate"),
            Err(e) => panic!("handshake failed during the rotation: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // New connections: the new CA works, the old one no longer does.
    let ch = tls_channel(addr, &client_tls(&new_only, None))
        .await
        .expect("TLS connect with the new CA");
    status(ch).await.expect("status with the new certificate");
    presented(addr, &client_tls(&old_only, None))
        .await
        .expect_err("the old CA does not vouch for the new certificate");
    // The connection made before the reload still works.
    status(long_lived)
        .await
        .expect("an established connection survives");
    node.shutdown().await;
}

#[test]
fn bad_tls_config_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca1 = ca("ca");
    let a = write_leaf(dir.path(), "a", &leaf(&ca1, "a", 1));
    let b = write_leaf(dir.path(), "b", &leaf(&ca1, "b", 2));
    let ca_path = write_ca(dir.path(), "ca", &[&ca1.pem]);
    let missing = dir.path().join("missing.pem");
    let err = |tune: &dyn Fn(&mut RawConfig)| {
        let mut raw = RawConfig::default();
        tune(&mut raw);
        match raw.validate() {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    };
    let tls = |cert: &Path, key: &Path| {
        Some(RawTls {
            cert_file: Some(cert.to_path_buf()),
            key_file: Some(key.to_path_buf()),
            reload_interval_ms: 0,
        })
    };

    let e = err(&|raw| raw.tls = tls(&missing, &a.key));
    assert!(
        e.starts_with(&format!("tls.cert_file: cannot read {}", missing.display())),
        "{e}"
    );
    let e = err(&|raw| raw.tls = tls(&a.cert, &b.key));
    assert!(
        e.starts_with("tls.key_file:") && e.contains("does not belong"),
        "{e}"
    );
    let e = err(&|raw| raw.tls = tls(&a.key, &a.key));
    assert!(
        e.starts_with("tls.cert_file:") && e.contains("no certificate"),
        "{e}"
    );
    let key_pem = std::fs::read_to_string(&a.key).expect("key");
    let e = err(&|raw| raw.tls = tls(&a.cert, &a.cert));
    assert!(e.starts_with("tls.key_file:"), "{e}");
    assert!(!e.contains(key_pem.trim()), "no key material in errors");
    let e = err(&|raw| {
        raw.tls = Some(RawTls {
            cert_file: Some(a.cert.clone()),
            key_file: None,
            reload_interval_ms: 0,
        })
    });
    assert!(e.starts_with("tls.key_file: required"), "{e}");
    let e = err(&|raw| {
        raw.cluster.tls = Some(RawClusterTls {
            ca_file: None,
            cert_file: Some(a.cert.clone()),
            key_file: Some(a.key.clone()),
            reload_interval_ms: 0,
        })
    });
    assert!(e.starts_with("cluster.tls.ca_file: required"), "{e}");
    let e = err(&|raw| {
        raw.cluster.tls = Some(RawClusterTls {
            ca_file: Some(a.key.clone()),
            cert_file: Some(a.cert.clone()),
            key_file: Some(a.key.clone()),
            reload_interval_ms: 0,
        })
    });
    assert!(e.starts_with("cluster.tls.ca_file:"), "{e}");

    // Valid: loaded, and the Debug of the config shows paths, not keys.
    let mut raw = RawConfig {
        tls: tls(&a.cert, &a.key),
        ..RawConfig::default()
    };
    raw.cluster.tls = Some(RawClusterTls {
        ca_file: Some(ca_path),
        cert_file: Some(b.cert.clone()),
        key_file: Some(b.key.clone()),
        reload_interval_ms: 0,
    });
    let cfg = raw.validate().expect("valid");
    assert!(cfg.client_tls.is_some() && cfg.peer_tls.is_some());
    assert!(!format!("{cfg:?}").contains("PRIVATE KEY"));
}

/// The call failed in the transport (the connection was refused), not in a handler.
fn assert_refused(status: &tonic::Status) {
    let mut chain = status.to_string();
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        chain.push_str(&format!(": {e}"));
        next = e.source();
    }
    // Which of these depends on when the client notices the server's alert.
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ) && chain.contains("transport error"),
        "{chain}"
    );
}

/// The commented `[tls]` and `[cluster.tls]` examples in config/pagerd.toml,
/// uncommented and pointed at real files, load: the documented keys exist.
#[test]
fn the_shipped_tls_examples_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca1 = ca("ca");
    let node = write_leaf(dir.path(), "node", &leaf(&ca1, "node", 1));
    let ca_path = write_ca(dir.path(), "ca", &[&ca1.pem]);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/pagerd.toml");
    let text = std::fs::read_to_string(&shipped).expect("read config/pagerd.toml");
    let mut out = String::new();
    let mut in_example = false;
    let mut sections = 0;
    for line in text.lines() {
        if line == "# [tls]" || line == "# [cluster.tls]" {
            in_example = true;
            sections += 1;
        } else if !line.starts_with("# ") {
            in_example = false;
        }
        let line = if in_example {
            line.trim_start_matches("# ")
        } else {
            line
        };
        out.push_str(line);
        out.push('\n');
    }
    assert_eq!(sections, 2, "both examples are in config/pagerd.toml");
    let out = out
        .replace(
            "/etc/pagerd/tls/client.crt",
            &node.cert.display().to_string(),
        )
        .replace(
            "/etc/pagerd/tls/client.key",
            &node.key.display().to_string(),
        )
        .replace("/etc/pagerd/tls/node.crt", &node.cert.display().to_string())
        .replace("/etc/pagerd/tls/node.key", &node.key.display().to_string())
        .replace(
            "/etc/pagerd/tls/cluster-ca.crt",
            &ca_path.display().to_string(),
        );
    let file = dir.path().join("pagerd.toml");
    std::fs::write(&file, out).expect("write");
    let cfg = RawConfig::load_file_only(&file).expect("the uncommented examples load");
    let (client, peer) = (
        cfg.client_tls.expect("[tls]"),
        cfg.peer_tls.expect("[cluster.tls]"),
    );
    assert_eq!(client.files.cert.as_deref(), Some(node.cert.as_path()));
    assert_eq!(peer.files.ca.as_deref(), Some(ca_path.as_path()));
    assert_eq!(peer.reload_interval, Duration::from_secs(5));
}

fn tracing_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
