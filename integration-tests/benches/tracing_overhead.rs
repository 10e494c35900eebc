//! The cost of tracing on the registry's hottest call: Resolve calls/s of registry processes
//! with tracing in four settings, in the same run, rounds alternating so that drift of the
//! machine falls on all of them. The figure is each one's ratio to the registry with
//! OpenTelemetry switched off (`OTEL_SDK_DISABLED=true`), goal ≥ 0.9:
//! - spans made (trace context kept, ids in logs) but not exported: no OTLP endpoint set;
//! - every span exported over OTLP (`OTEL_TRACES_SAMPLER=always_on`; to a receiver in this
//!   process, on the same two cores);
//! - exported with the registry's default sampling: calls that arrive with a trace (a rollout's,
//!   a traced caller's) are all exported with it, and one in ten of those that start a trace at
//!   the registry, as these untraced Resolve calls do.
//!
//! `cargo build --release --bins && cargo bench -p flotilla-integration-tests --bench tracing_overhead -- [--seconds 3]`

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use flotilla_integration_tests::{SuiteProcess, otlp::OtlpReceiver};
use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tonic::transport::Channel;

const ROUNDS: usize = 3;
const CONNECTIONS: usize = 8;
const CONCURRENCY: usize = 64;

fn seconds() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A registry on the embedded in-memory store with greeter 1.0.0 to 1.9.0 published.
async fn registry(env: &[(&str, &str)]) -> anyhow::Result<SuiteProcess> {
    let mut env = env.to_vec();
    // Logs would cost the same on both sides; leave them out of the figure.
    env.push(("RUST_LOG", "warn"));
    let process = SuiteProcess::start_with_env(
        "version-registry",
        &["--listen", "127.0.0.1:0", "--data-file", ":memory:"],
        &env,
    )?;
    let mut client = RegistryClient::connect(process.endpoint()).await?;
    client
        .create_service(pb::CreateServiceRequest {
            name: "greeter".into(),
            ..Default::default()
        })
        .await?;
    for minor in 0..10u32 {
        client
            .publish_version(pb::PublishVersionRequest {
                service: "greeter".into(),
                version: format!("1.{minor}.0"),
                file_descriptor_set: greeter_schema_bytes(minor),
                ..Default::default()
            })
            .await?;
    }
    Ok(process)
}

/// Resolve calls/s from CONCURRENCY tasks over CONNECTIONS connections for `seconds`, after a
/// 0.5 s warm-up. A failed call fails the measurement.
async fn resolves_per_second(endpoint: String, seconds: u64) -> anyhow::Result<f64> {
    let mut channels = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        channels.push(Channel::from_shared(endpoint.clone())?.connect().await?);
    }
    let counting = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(500) + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let mut client = RegistryClient::new(channels[i % CONNECTIONS].clone());
            let (counting, calls) = (counting.clone(), calls.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    client
                        .resolve(pb::ResolveRequest {
                            service: "greeter".into(),
                            requirement: "^1.2".into(),
                            client_schema: Vec::new(),
                        })
                        .await?;
                    if counting.load(Ordering::Relaxed) {
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, tonic::Status>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(calls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = seconds();
    let receiver = OtlpReceiver::start().await?;
    let export = receiver.env();
    let export: Vec<(&str, &str)> = export.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut every_span = export.clone();
    every_span.push(("OTEL_TRACES_SAMPLER", "always_on"));
    let traced = registry(&every_span).await?;
    let sampled = registry(&export).await?;
    let untraced = registry(&[("OTEL_SDK_DISABLED", "true")]).await?;
    // Spans made (and trace context kept) but not exported: where the cost lies.
    let unexported = registry(&[]).await?;

    let (mut with, mut without, mut local, mut tenth) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let off = resolves_per_second(untraced.endpoint(), seconds).await?;
        let on = resolves_per_second(traced.endpoint(), seconds).await?;
        let kept = resolves_per_second(unexported.endpoint(), seconds).await?;
        let some = resolves_per_second(sampled.endpoint(), seconds).await?;
        println!(
            "round {round}: {off:.0} Resolve/s untraced, {on:.0} traced and all exported, {kept:.0} traced, not exported, {some:.0} traced, 1 in 10 exported"
        );
        without.push(off);
        with.push(on);
        local.push(kept);
        tenth.push(some);
    }
    // Whatever the batch processor still holds arrives within its 100 ms delay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exported = receiver
        .spans()
        .iter()
        .filter(|s| s.name == "flotilla.registry.v1.Registry/Resolve")
        .count();
    let (on, off, kept, some) = (median(with), median(without), median(local), median(tenth));
    println!(
        "tracing overhead on Resolve: {on:.0}/s traced, every span exported, vs {off:.0}/s untraced (median of {ROUNDS}): ratio {:.3} (goal >= 0.9); {exported} Resolve spans exported in all",
        on / off
    );
    println!(
        "without export: {kept:.0}/s, ratio {:.3} to untraced",
        kept / off
    );
    println!(
        "default sampling (1 in 10 traces starting at the registry): {some:.0}/s, ratio {:.3} to untraced",
        some / off
    );
    Ok(())
}
