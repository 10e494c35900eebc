//! What callers are told when nothing can take their call, or the client cannot start.

mod support;

use std::time::Duration;

use flotilla_client::{ClientError, FleetClient};
use flotilla_proto::testing::v1::{EchoRequest, echo_client::EchoClient};
use support::{AttemptLog, EchoInstance, SERVICE, TestRegistry, echo_channel};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirement_nothing_satisfies_fails_calls_with_unavailable_naming_it() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0", "2.0.0"]).await;
    let log = AttemptLog::default();
    let _a = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let _b = EchoInstance::start(&registry.url, "2.0.0", &log).await;

    let channel = echo_channel(&registry, "^3", 0).await;
    let status = EchoClient::new(channel)
        .echo(EchoRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "no healthy instance of echo satisfying ^3 (0 known, 0 serving)"
    );

    let waited = FleetClient::builder(registry.url.clone(), SERVICE)
        .requirement("^3")
        .unwrap()
        .wait_for_endpoints(true)
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&waited, ClientError::NoEndpoints { requirement, .. } if requirement == "^3"),
        "{waited}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_endpoints_returns_once_an_instance_serves() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let url = registry.url.clone();
    let connecting = tokio::spawn(
        FleetClient::builder(url, SERVICE)
            .wait_for_endpoints(true)
            .connect_timeout(Duration::from_secs(10))
            .connect(),
    );
    let instance = EchoInstance::start(&registry.url, "1.0.0", &AttemptLog::default()).await;
    let channel = connecting.await.unwrap().unwrap();
    assert_eq!(channel.snapshot().endpoints[0].instance_id, instance.id);
}

#[tokio::test]
async fn an_invalid_requirement_is_a_builder_error() {
    let error = FleetClient::builder("http://127.0.0.1:1", SERVICE)
        .requirement(">>1")
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::InvalidRequirement { requirement, .. } if requirement == ">>1"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("\">>1\" is not a semver requirement")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_fails_clearly() {
    // Nothing listens on a port just freed.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let error = FleetClient::builder(url, SERVICE)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::RegistryUnreachable { .. }),
        "{error}"
    );

    let error = FleetClient::builder("not a url", SERVICE)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidRegistryUrl { .. }),
        "{error}"
    );

    let registry = TestRegistry::start().await;
    let error = FleetClient::builder(registry.url.clone(), "nobody")
        .connect()
        .await
        .unwrap_err();
    match &error {
        ClientError::Refused { status, .. } => assert_eq!(status.code(), Code::NotFound),
        other => panic!("{other}"),
    }

    let error = FleetClient::builder(registry.url.clone(), SERVICE)
        .caller_schema(&b"\x0a\x05hello-not-a-descriptor"[..])
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::InvalidCallerSchema(_)),
        "{error}"
    );
}
