//! Traces across the suite's processes, as an OTLP collector receives them: the processes export
//! to a receiver started by the test (opentelemetry-proto's collector service), and the spans
//! must link up by trace id and parent span id across process boundaries.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    SuiteProcess,
    otlp::{OtlpReceiver, ReceivedSpan},
    rollout::{RolloutFleet, deploy},
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

/// The spans of `trace`, once every one of them but the root has its parent among them (spans
/// arrive as they end, children before their parents).
async fn linked_trace(receiver: &OtlpReceiver, trace: &str) -> Vec<ReceivedSpan> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans: Vec<ReceivedSpan> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace)
            .collect();
        let orphans: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| {
                !s.parent_span_id.is_empty() && !spans.iter().any(|p| p.span_id == s.parent_span_id)
            })
            .collect();
        if orphans.is_empty() {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans whose parent never arrived: {orphans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_is_one_trace_across_orchestrator_registry_and_the_instances_it_starts() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let env: Vec<(String, String)> = receiver
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut fleet = RolloutFleet::with_env(None, env).unwrap();
    fleet.start_orchestrator().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    let rollout = deploy(&fleet, "1.0.0", 1).await.unwrap();

    let start = span_of(
        &receiver,
        "rollout-orchestrator",
        "flotilla.rollout.v1.Orchestrator/StartRollout",
    )
    .await;
    assert_eq!(
        start.parent_span_id, "",
        "the test's call carried no context"
    );
    // The instance registers at the end of its startup span, which ends the deployment.
    span_of(&receiver, "greeter", "start greeter@1.0.0").await;
    let spans = linked_trace(&receiver, &start.trace_id).await;
    let by_id = |id: &str| spans.iter().find(|s| s.span_id == id);

    let steps: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| {
            s.service == "rollout-orchestrator" && s.name.starts_with("rollout greeter step")
        })
        .collect();
    assert!(
        !steps.is_empty(),
        "step spans of rollout {}: {spans:#?}",
        rollout.id
    );
    for step in &steps {
        assert_eq!(step.parent_span_id, start.span_id, "{step:?}");
    }
    // The orchestrator's calls to the registry are children of its steps.
    assert!(
        spans.iter().any(|s| s.service == "version-registry"
            && by_id(&s.parent_span_id)
                .is_some_and(|p| p.name.starts_with("rollout greeter step"))),
        "no registry span under a step: {spans:#?}"
    );
    // The instance's startup continues the step that started it, and its registration is a
    // registry span under that.
    let startup = spans
        .iter()
        .find(|s| s.service == "greeter" && s.name == "start greeter@1.0.0")
        .unwrap_or_else(|| panic!("the instance's startup is in the rollout's trace: {spans:#?}"));
    assert!(
        by_id(&startup.parent_span_id).is_some_and(|p| p.name.starts_with("rollout greeter step")),
        "{startup:?}"
    );
    assert!(
        spans.iter().any(|s| s.service == "version-registry"
            && s.name == "flotilla.registry.v1.Registry/RegisterInstance"
            && s.parent_span_id == startup.span_id),
        "the instance's registration is under its startup: {spans:#?}"
    );
}
