//! Traces across the suite's processes, as an OTLP collector receives them: the processes export
//! to a receiver started by the test (opentelemetry-proto's collector service), and the spans
//! must link up by trace id and parent span id across process boundaries.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    SuiteProcess,
    otlp::{OtlpReceiver, ReceivedSpan},
};
use flotilla_proto::demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient};

/// Waits until the receiver holds a span of `service` named `name`.
async fn span_of(receiver: &OtlpReceiver, service: &str, name: &str) -> ReceivedSpan {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(span) = receiver
            .spans()
            .into_iter()
            .find(|s| s.service == service && s.name == name)
        {
            return span;
        }
        assert!(
            Instant::now() < deadline,
            "no span {name} from {service} within 15 s; received: {:#?}",
            receiver.spans()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_through_the_frontend_is_one_trace_through_frontend_and_greeter() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let env = receiver.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registry = SuiteProcess::registry(&["--data-file", ":memory:"]).unwrap();
    let registry_url = registry.endpoint();
    let _greeter = SuiteProcess::start_with_env(
        "demo-greeter",
        &["--registry", &registry_url, "--release", "1.1.0"],
        &env,
    )
    .unwrap();
    let frontend = SuiteProcess::start_with_env(
        "demo-frontend",
        &[
            "--registry",
            &registry_url,
            "--version",
            "1.0.0",
            "--greeter-requirement",
            "^1.0",
        ],
        &env,
    )
    .unwrap();

    let reply = FrontendClient::connect(frontend.endpoint())
        .await
        .unwrap()
        .greet(GreetRequest {
            name: "traced".into(),
            locale: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.greeter_version, "1.1.0");

    let greet = span_of(&receiver, "frontend", "demo.frontend.v1.Frontend/Greet").await;
    let hello = span_of(&receiver, "greeter", "demo.greeter.v1.Greeter/SayHello").await;
    // The test's call carried no context: the trace starts at the frontend.
    assert_eq!(greet.parent_span_id, "", "{greet:?}");
    assert_eq!(
        hello.trace_id, greet.trace_id,
        "one trace: {hello:?} {greet:?}"
    );
    assert_eq!(
        hello.parent_span_id, greet.span_id,
        "the greeter's span is a child of the frontend's"
    );
    // Every span of that trace comes from the two services.
    let services: std::collections::BTreeSet<String> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == greet.trace_id)
        .map(|s| s.service)
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["frontend", "greeter"]
    );
}
