//! The built binary against an in-test TLS server on 127.0.0.1:0: an
//! `https://` endpoint with `--ca-cert` (or `PAGERCTL_CA_CERT`) is trusted,
//! without it the private CA is not, and a bad CA file is named.

use std::path::{Path, PathBuf};
use std::process::Output;

use pager_proto::pager::v1::config_server::{Config, ConfigServer};
use pager_proto::pager::v1::{
    ApplyConfigRequest, ApplyConfigResponse, DiffConfigRequest, DiffConfigResponse,
    GetConfigRequest, GetConfigResponse,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tonic::{Request, Response, Status};

const BIN: &str = env!("CARGO_BIN_EXE_pagerctl");

/// Answers `Get` with a fixed document.
struct FakeConfig;

#[tonic::async_trait]
impl Config for FakeConfig {
    async fn apply(
        &self,
        _: Request<ApplyConfigRequest>,
    ) -> Result<Response<ApplyConfigResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn get(
        &self,
        _: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        Ok(Response::new(GetConfigResponse {
            version: 7,
            document: "# served over TLS\n".into(),
        }))
    }

    async fn diff(
        &self,
        _: Request<DiffConfigRequest>,
    ) -> Result<Response<DiffConfigResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }
}

/// A private CA in `dir/ca.pem` and a server certificate for 127.0.0.1 and
/// localhost signed by it.
fn certificates(dir: &Path) -> (PathBuf, pager_tls::TlsFiles) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("leaf params");
    let key = KeyPair::generate().expect("key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let files = pager_tls::TlsFiles {
        cert: Some(write("server.crt", cert.pem())),
        key: Some(write("server.key", key.serialize_pem())),
        ca: None,
    };
    (write("ca.pem", ca_cert.pem()), files)
}

/// Serve the fake Config service over TLS; the listener is bound before the
/// binary runs, so there is nothing to wait for.
async fn serve_tls(files: pager_tls::TlsFiles) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let tls = pager_tls::ServerTls::server("test server", files).expect("server TLS");
    let incoming = pager_tls::TlsIncoming::new(listener, tls, None);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ConfigServer::new(FakeConfig))
            .serve_with_incoming(incoming),
    );
    port
}

async fn pagerctl(args: &[&str], ca_env: Option<&Path>) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("PAGERCTL_ENDPOINT")
        .env_remove("PAGERCTL_CA_CERT")
        .kill_on_drop(true);
    if let Some(ca) = ca_env {
        cmd.env("PAGERCTL_CA_CERT", ca);
    }
    cmd.output().await.expect("run pagerctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_with_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, files) = certificates(dir.path());
    let port = serve_tls(files).await;
    let https = format!("https://127.0.0.1:{port}");
    let ca_arg = ca.to_str().expect("utf-8 path");

    // --ca-cert: trusted, the call answers.
    let out = pagerctl(
        &["--endpoint", &https, "--ca-cert", ca_arg, "config", "get"],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("served over TLS"));

    // The same from the environment, by name (the certificate has a DNS SAN).
    let by_name = format!("https://localhost:{port}");
    let out = pagerctl(&["--endpoint", &by_name, "config", "get"], Some(&ca)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Without it the public roots do not vouch for a private CA.
    let out = pagerctl(&["--endpoint", &https, "config", "get"], None).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("certificate"), "{err}");

    // A plaintext endpoint at a TLS port gets no answer.
    let plain = format!("http://127.0.0.1:{port}");
    let out = pagerctl(
        &["--endpoint", &plain, "--timeout", "3", "config", "get"],
        None,
    )
    .await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // A CA file that is not there is named.
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().expect("utf-8 path");
    let out = pagerctl(
        &["--endpoint", &https, "--ca-cert", missing, "config", "get"],
        None,
    )
    .await;
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("--ca-cert") && err.contains(missing), "{err}");
}
