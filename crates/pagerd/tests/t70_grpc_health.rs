//! gRPC health checking and server reflection on the client port, as
//! Kubernetes probes and grpcurl use them.

mod common;

use common::Cluster;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_reflection_answer_on_the_client_port() {
    let c = Cluster::start(1).await;
    let mut health = HealthClient::new(c.channel(1).await);
    for service in ["", "pager.v1.Events", "pager.v1.Incidents"] {
        let mut stream = health
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("watch")
            .into_inner();
        // The reporter may start NOT_SERVING until it saw the leader: wait for SERVING.
        loop {
            let status = stream
                .message()
                .await
                .expect("stream")
                .expect("an update")
                .status;
            if status == ServingStatus::Serving as i32 {
                break;
            }
        }
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let mut reflection = ServerReflectionClient::new(c.channel(1).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers.message().await.expect("stream").expect("an answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in pagerd::edge::grpc::PUBLIC_SERVICES {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("raft.")),
        "the peer service is not advertised: {names:?}"
    );
    c.shutdown().await;
}
