//! Idempotent calls answered UNAVAILABLE are retried on other instances, at most `max_retries`
//! times, with the same headers; other calls are never retried.

mod support;

use std::collections::HashSet;

use flotilla_client::FleetClient;
use flotilla_proto::testing::v1::{DESCRIPTOR_SET, EchoRequest, echo_client::EchoClient};
use support::{
    AttemptLog, EchoInstance, SERVICE, TRACEPARENT, TRACESTATE, TestRegistry, echo_channel,
    eventually, traced,
};
use tonic::Code;

/// A request every instance answers with UNAVAILABLE.
fn failing(call_id: &str) -> tonic::Request<EchoRequest> {
    traced(
        call_id,
        EchoRequest {
            fail_unavailable: true,
            ..Default::default()
        },
    )
}

async fn three_instances() -> (TestRegistry, AttemptLog, Vec<EchoInstance>) {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let log = AttemptLog::default();
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(EchoInstance::start(&registry.url, "1.0.0", &log).await);
    }
    (registry, log, instances)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_idempotent_call_is_retried_on_other_instances_with_its_trace_context() {
    let (registry, log, _instances) = three_instances().await;
    let mut client = EchoClient::new(echo_channel(&registry, "", 3).await);

    let status = client.echo(failing("e1")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "asked to fail");
    let attempts = log.of("e1");
    assert_eq!(attempts.len(), 3, "1 + max_retries (2): {attempts:?}");
    let instances: HashSet<_> = attempts.iter().map(|a| a.instance_id.as_str()).collect();
    assert_eq!(
        instances.len(),
        3,
        "each retry goes elsewhere: {attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.traceparent.as_deref() == Some(TRACEPARENT)
                && a.tracestate.as_deref() == Some(TRACESTATE)),
        "{attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_call_is_never_retried() {
    let (registry, log, _instances) = three_instances().await;
    let mut client = EchoClient::new(echo_channel(&registry, "", 3).await);

    let status = client.record(failing("r1")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(log.of("r1").len(), 1);

    // Failing is not unhealthy: the instances keep their shares.
    let reply = client.record(traced("r2", EchoRequest::default())).await;
    assert!(reply.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_named_idempotent_are_retried_and_max_retries_bounds_the_attempts() {
    let (registry, log, _instances) = three_instances().await;

    let named = FleetClient::builder(registry.url.clone(), SERVICE)
        .idempotent_method("/flotilla.testing.v1.Echo/Record")
        .max_retries(1)
        .connect()
        .await
        .unwrap();
    eventually(std::time::Duration::from_secs(5), "3 endpoints", || {
        named.snapshot().endpoints.len() == 3
    })
    .await;
    let mut client = EchoClient::new(named);
    client.record(failing("named-record")).await.unwrap_err();
    assert_eq!(log.of("named-record").len(), 2);
    // Without the schema, Echo is just another method.
    client.echo(failing("unnamed-echo")).await.unwrap_err();
    assert_eq!(log.of("unnamed-echo").len(), 1);

    let no_retries = FleetClient::builder(registry.url.clone(), SERVICE)
        .caller_schema(DESCRIPTOR_SET)
        .max_retries(0)
        .connect()
        .await
        .unwrap();
    EchoClient::new(no_retries)
        .echo(failing("no-retries"))
        .await
        .unwrap_err();
    assert_eq!(log.of("no-retries").len(), 1);
}
