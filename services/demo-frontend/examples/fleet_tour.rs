//! The README's main job, after `deploy/local/run.sh` has started the fleet: send requests through
//! the two frontends while the greeter route changes, and print which greeter versions answered.
//!
//! `fleet_tour REGISTRY_URL LEGACY_FRONTEND_URL FRONTEND_URL`

use std::collections::BTreeMap;

use anyhow::Context;
use flotilla_proto::{
    demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient},
    registry::v1::{self as pb, registry_client::RegistryClient},
};
use tonic::transport::Channel;

const CALLS: usize = 1_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [registry, legacy, current] = args.as_slice() else {
        anyhow::bail!("usage: fleet_tour REGISTRY_URL LEGACY_FRONTEND_URL FRONTEND_URL");
    };
    let mut registry = RegistryClient::connect(registry.clone())
        .await
        .context("connecting to the registry")?;
    let frontends = [
        (
            "frontend 0.9.0 (greeter ^1.0)",
            FrontendClient::connect(legacy.clone()).await?,
        ),
        (
            "frontend 1.0.0 (greeter ^1.1)",
            FrontendClient::connect(current.clone()).await?,
        ),
    ];

    let reply = frontends[1]
        .1
        .clone()
        .greet(GreetRequest {
            name: "Ada".into(),
            locale: "fr".into(),
        })
        .await?
        .into_inner();
    println!(
        "\none call through frontend 1.0.0: {:?}, answered by greeter {} (instance {})",
        reply.message,
        reply.greeter_version,
        &reply.greeter_instance[..8.min(reply.greeter_instance.len())]
    );

    let steps: [(&str, &[(&str, u32)]); 3] = [
        ("no route: every serving instance gets an equal share", &[]),
        (
            "route greeter 1.0.0:90 / 1.1.0:10",
            &[("1.0.0", 90), ("1.1.0", 10)],
        ),
        (
            "route greeter 1.1.0:100 (the canary is promoted)",
            &[("1.0.0", 0), ("1.1.0", 100)],
        ),
    ];
    for (title, weights) in steps {
        println!("\n== {title}");
        if !weights.is_empty() {
            registry
                .set_route(pb::SetRouteRequest {
                    service: "greeter".into(),
                    weights: weights
                        .iter()
                        .map(|(version, weight)| pb::VersionWeight {
                            version: (*version).into(),
                            weight: *weight,
                        })
                        .collect(),
                })
                .await?;
            // Pushed to the frontends' fleet clients within milliseconds.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        for (name, client) in &frontends {
            let counts = answers(client, CALLS).await;
            let shown: Vec<String> = counts
                .iter()
                .map(|(version, n)| {
                    format!("{version}: {n} ({:.1}%)", 100.0 * *n as f64 / CALLS as f64)
                })
                .collect();
            println!(
                "  {name:<30} {CALLS} calls answered by greeter {}",
                shown.join(", ")
            );
        }
    }
    println!("\nfleet tour complete");
    Ok(())
}

/// Sends `calls` requests from 8 concurrent callers and counts the answering greeter versions.
async fn answers(client: &FrontendClient<Channel>, calls: usize) -> BTreeMap<String, usize> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut counts = BTreeMap::<String, usize>::new();
                for _ in 0..calls / 8 {
                    let key = match client
                        .greet(GreetRequest {
                            name: "tour".into(),
                            locale: String::new(),
                        })
                        .await
                    {
                        Ok(reply) => reply.into_inner().greeter_version,
                        Err(status) => format!("failed ({:?})", status.code()),
                    };
                    *counts.entry(key).or_default() += 1;
                }
                counts
            })
        })
        .collect();
    let mut total = BTreeMap::new();
    for task in tasks {
        if let Ok(counts) = task.await {
            for (key, n) in counts {
                *total.entry(key).or_default() += n;
            }
        }
    }
    total
}
