//! A narrated tour of a running registry with no greeter of its own yet: create a service,
//! publish releases, run instances, shift traffic, yank a release, and watch endpoint sets follow.
//!
//! `cargo run --example walkthrough -- http://127.0.0.1:50051`

use std::time::Duration;

use anyhow::Context;
use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let mut registry = RegistryClient::connect(endpoint.clone())
        .await
        .with_context(|| format!("connecting to {endpoint}"))?;

    step("create the service `greeter` (policy: BACKWARD by WIRE_JSON)");
    match registry
        .create_service(pb::CreateServiceRequest {
            name: "greeter".into(),
            owner: "team-hello".into(),
            description: "says hello".into(),
            policy: None,
        })
        .await
    {
        Ok(_) => println!("  created"),
        Err(status) if status.code() == tonic::Code::AlreadyExists => println!("  already there"),
        Err(status) => return Err(status.into()),
    }

    step("publish 1.0.0, 1.1.0 (adds fields) and 2.0.0");
    for (fields, version) in [(0, "1.0.0"), (1, "1.1.0"), (2, "2.0.0")] {
        let published = registry
            .publish_version(pb::PublishVersionRequest {
                service: "greeter".into(),
                version: version.into(),
                file_descriptor_set: greeter_schema_bytes(fields),
                artifact: Some(pb::Artifact {
                    image: format!("flotilla/demo-greeter:{version}"),
                    command: vec![],
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        let v = published.version.unwrap_or_default();
        println!(
            "  {version}: {} (schema {})",
            if published.created {
                "published"
            } else {
                "already published, identical"
            },
            &v.schema_fingerprint[..12]
        );
    }
    let conflict = registry
        .publish_version(pb::PublishVersionRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            file_descriptor_set: greeter_schema_bytes(9),
            ..Default::default()
        })
        .await
        .expect_err("published versions are immutable");
    println!(
        "  1.0.0 again with another schema: {:?}: {}",
        conflict.code(),
        conflict.message()
    );

    step("watch greeter endpoints for callers requiring ^1");
    let mut watch = registry
        .watch_endpoints(pb::WatchEndpointsRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: "^1".into(),
        })
        .await?
        .into_inner();
    show(&next(&mut watch).await?);

    step("register two 1.0.0 instances and one 1.1.0 instance");
    let mut ids = Vec::new();
    for (version, port) in [("1.0.0", 7101), ("1.0.0", 7102), ("1.1.0", 7111)] {
        let instance = register(&mut registry, version, port).await?;
        ids.push(instance.id);
        show(&next(&mut watch).await?);
    }

    step("route 90% of traffic to 1.0.0 and 10% to 1.1.0");
    registry
        .set_route(pb::SetRouteRequest {
            service: "greeter".into(),
            weights: vec![weight("1.0.0", 90), weight("1.1.0", 10)],
        })
        .await?;
    show(&next(&mut watch).await?);

    step("resolve ^1");
    resolve(&mut registry, "^1").await?;

    step("yank 1.1.0: it leaves resolution and endpoint sets at once");
    registry
        .transition_version(pb::TransitionVersionRequest {
            service: "greeter".into(),
            version: "1.1.0".into(),
            state: pb::LifecycleState::Yanked as i32,
            reason: "returns errors under load".into(),
        })
        .await?;
    show(&next(&mut watch).await?);
    resolve(&mut registry, "^1").await?;

    step("one 1.0.0 instance stops heartbeating: its 1 s lease expires");
    let short = registry
        .register_instance(pb::RegisterInstanceRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            address: "127.0.0.1:7103".into(),
            lease_ttl_ms: 1_000,
            ..Default::default()
        })
        .await?
        .into_inner();
    show(&next(&mut watch).await?);
    let expired = next(&mut watch).await?;
    println!("  instance {} expired", &short.id[..8]);
    show(&expired);

    step("clean up: deregister the remaining instances");
    for id in ids {
        match registry
            .deregister_instance(pb::DeregisterInstanceRequest { instance_id: id })
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
    }
    loop {
        let set = next(&mut watch).await?;
        if set.endpoints.is_empty() {
            show(&set);
            break;
        }
    }
    println!("\nwalkthrough complete");
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn weight(version: &str, weight: u32) -> pb::VersionWeight {
    pb::VersionWeight {
        version: version.into(),
        weight,
    }
}

async fn register(
    registry: &mut RegistryClient<Channel>,
    version: &str,
    port: u16,
) -> anyhow::Result<pb::Instance> {
    Ok(registry
        .register_instance(pb::RegisterInstanceRequest {
            service: "greeter".into(),
            version: version.into(),
            address: format!("127.0.0.1:{port}"),
            ..Default::default()
        })
        .await?
        .into_inner())
}

async fn resolve(registry: &mut RegistryClient<Channel>, requirement: &str) -> anyhow::Result<()> {
    let resolved = registry
        .resolve(pb::ResolveRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: requirement.into(),
        })
        .await?
        .into_inner();
    println!(
        "  {requirement} -> {}",
        resolved.selected.unwrap_or_default().version
    );
    for rejected in resolved.rejected {
        println!("     passed over: {}", rejected.detail);
    }
    Ok(())
}

async fn next(watch: &mut tonic::Streaming<pb::EndpointSet>) -> anyhow::Result<pb::EndpointSet> {
    let set = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .context("no endpoint set within 5 s")?
        .context("the watch ended")??;
    Ok(set)
}

/// Prints each instance with the share of calls it should get: its version's weight over the
/// total, split equally among the version's instances.
fn show(set: &pb::EndpointSet) {
    let mut versions: Vec<(&str, u32, usize)> = Vec::new();
    for e in &set.endpoints {
        match versions.iter_mut().find(|(v, _, _)| *v == e.version) {
            Some(entry) => entry.2 += 1,
            None => versions.push((&e.version, e.version_weight, 1)),
        }
    }
    let total: u32 = versions.iter().map(|(_, w, _)| w).sum::<u32>().max(1);
    println!(
        "  endpoint set #{} ({}):",
        set.revision,
        if set.route_applied {
            "route weights"
        } else {
            "no route: equal shares"
        }
    );
    if set.endpoints.is_empty() {
        println!("     (no instances)");
    }
    for e in &set.endpoints {
        let (_, weight, count) = versions
            .iter()
            .find(|(v, _, _)| *v == e.version)
            .copied()
            .unwrap_or_default();
        println!(
            "     {} {:<6} version weight {:>3}  -> {:>5.1}% of calls",
            e.address,
            e.version,
            weight,
            100.0 * f64::from(weight) / f64::from(total) / count as f64
        );
    }
}
