//! Calls are balanced by the route's weights, follow route changes without a restart, reach
//! only versions satisfying the requirement, and say who answered.

mod support;

use std::{collections::HashMap, time::Duration};

use flotilla_client::{AnsweredBy, FleetChannel, answered_by};
use flotilla_proto::{
    registry::v1 as pb,
    testing::v1::{EchoRequest, echo_client::EchoClient},
};
use support::{
    AttemptLog, EchoInstance, InstanceOptions, TestRegistry, echo_channel, echo_fingerprint,
    eventually,
};

/// Makes `calls` Echo calls from 4 concurrent callers and counts the answers by version.
async fn versions_answering(channel: &FleetChannel, calls: usize) -> HashMap<String, usize> {
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = EchoClient::new(channel.clone());
            tokio::spawn(async move {
                let mut seen = HashMap::<String, usize>::new();
                for _ in 0..calls / 4 {
                    let reply = client.echo(EchoRequest::default()).await.unwrap();
                    *seen.entry(reply.into_inner().version).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    let mut seen = HashMap::new();
    for caller in callers {
        for (version, n) in caller.await.unwrap() {
            *seen.entry(version).or_default() += n;
        }
    }
    seen
}

fn share(seen: &HashMap<String, usize>, version: &str) -> f64 {
    let total: usize = seen.values().sum();
    seen.get(version).copied().unwrap_or(0) as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_follow_the_route_and_its_changes() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0", "1.1.0"]).await;
    registry.set_route(&[("1.0.0", 25), ("1.1.0", 75)]).await;
    let log = AttemptLog::default();
    let _old_a = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let _old_b = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let _new = EchoInstance::start(&registry.url, "1.1.0", &log).await;
    let channel = echo_channel(&registry, "", 3).await;

    let seen = versions_answering(&channel, 2_000).await;
    assert!((share(&seen, "1.0.0") - 0.25).abs() <= 0.05, "{seen:?}");
    assert!((share(&seen, "1.1.0") - 0.75).abs() <= 0.05, "{seen:?}");

    registry.set_route(&[("1.0.0", 90), ("1.1.0", 10)]).await;
    eventually(
        Duration::from_secs(5),
        "the new route reaches the client",
        || (channel.snapshot().version_share("1.0.0") - 0.9).abs() < 1e-9,
    )
    .await;
    let seen = versions_answering(&channel, 2_000).await;
    assert!((share(&seen, "1.0.0") - 0.90).abs() <= 0.05, "{seen:?}");
    assert!((share(&seen, "1.1.0") - 0.10).abs() <= 0.05, "{seen:?}");
    let snapshot = channel.snapshot();
    assert!(snapshot.route_applied, "{snapshot}");
    assert_eq!(
        snapshot.revision, 2,
        "one set at connect, one for the route: {snapshot}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requirement_keeps_calls_off_other_versions() {
    let mut registry = TestRegistry::start().await;
    registry
        .create_echo_service(&["1.0.0", "1.1.0", "1.2.0", "2.0.0"])
        .await;
    let log = AttemptLog::default();
    let mut instances = Vec::new();
    for version in ["1.0.0", "1.1.0", "1.2.0", "2.0.0"] {
        instances.push(EchoInstance::start(&registry.url, version, &log).await);
    }

    let channel = echo_channel(&registry, "^1.1", 2).await;
    let seen = versions_answering(&channel, 500).await;
    assert_eq!(seen.values().sum::<usize>(), 500);
    assert_eq!(
        seen.keys()
            .filter(|v| !["1.1.0", "1.2.0"].contains(&v.as_str()))
            .count(),
        0,
        "{seen:?}"
    );

    // The excluded instances are alive: a caller accepting any version reaches all of them.
    let any = echo_channel(&registry, "", 4).await;
    let seen = versions_answering(&any, 400).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_the_registry_reports_not_serving_get_no_calls() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let log = AttemptLog::default();
    let serving = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let idle = EchoInstance::start_with(
        &registry.url,
        "1.0.0",
        &log,
        InstanceOptions {
            registry_status: pb::ServingStatus::NotServing,
            ..Default::default()
        },
    )
    .await;
    let channel = echo_channel(&registry, "", 2).await;

    let seen = versions_answering(&channel, 200).await;
    assert_eq!(seen["1.0.0"], 200);
    assert_eq!(idle.served(), 0);
    assert_eq!(serving.served(), 200);
    let snapshot = channel.snapshot();
    let view = snapshot.endpoint(&idle.id).unwrap();
    assert!(!view.serving && view.share == 0.0, "{snapshot}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_by_names_the_version_and_instance_that_answered() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let instance = EchoInstance::start(&registry.url, "1.0.0", &AttemptLog::default()).await;
    let channel = echo_channel(&registry, "", 1).await;

    let response = EchoClient::new(channel)
        .echo(EchoRequest {
            message: "who?".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        answered_by(&response),
        Some(AnsweredBy {
            version: "1.0.0".into(),
            instance_id: instance.id.clone(),
            schema_fingerprint: Some(echo_fingerprint()),
        })
    );
    assert_eq!(response.get_ref().message, "who?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_registry_is_followed_again_and_calls_go_on_meanwhile() {
    let mut registry = TestRegistry::start().await;
    let address = registry.address;
    registry.create_echo_service(&["1.0.0"]).await;
    let log = AttemptLog::default();
    let first = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let channel = echo_channel(&registry, "", 1).await;
    let mut client = EchoClient::new(channel.clone());

    registry.stop().await;
    for _ in 0..50 {
        let reply = client.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(reply.into_inner().instance_id, first.id);
    }

    // A new registry, on the same address, knows only a new instance.
    let mut registry = TestRegistry::start_on(address).await;
    registry.create_echo_service(&["1.0.0"]).await;
    let second = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    eventually(
        Duration::from_secs(15),
        "the client subscribes to the new registry",
        || {
            let snapshot = channel.snapshot();
            snapshot.endpoints.len() == 1 && snapshot.endpoints[0].instance_id == second.id
        },
    )
    .await;
    for _ in 0..50 {
        let reply = client.echo(EchoRequest::default()).await.unwrap();
        assert_eq!(reply.into_inner().instance_id, second.id);
    }
}
