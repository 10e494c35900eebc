//! The cost of tracing on the registry's hottest call: Resolve calls/s of registry processes
//! with tracing in four settings, in the same run, rounds alternating so that drift of the
//! machine falls on all of them. The figure is each one's ratio to the registry with
//! OpenTelemetry switched off (`OTEL_SDK_DISABLED=true`) in the same round, goal ≥ 0.9, as
//! throughput and as CPU time per call (the inverse ratio: untraced CPU per call over traced),
//! which does not move with other work on the machine's cores as throughput does:
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

const CONNECTIONS: usize = 8;
/// A pause before each run.
const SETTLE: Duration = Duration::from_millis(1000);
const CONCURRENCY: usize = 64;

/// `--NAME VALUE` from the command line, or `default`.
fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

/// One run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    calls_per_second: f64,
    /// CPU time (user + system) the registry process spent per call: unlike throughput, it does
    /// not move with what else the machine's cores are doing.
    cpu_micros_per_call: f64,
}

/// CPU seconds (user + system) process `pid` has used, from /proc (clock ticks of 10 ms).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(index)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat is short: {stat}"))?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of stat(5); 11 and 12 after the command name.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// Resolve calls from CONCURRENCY tasks over CONNECTIONS connections for `seconds`, after a
/// 0.5 s warm-up, against the registry process `registry`. A failed call fails the measurement.
async fn measure(registry: &SuiteProcess, seconds: u64) -> anyhow::Result<Run> {
    let endpoint = registry.endpoint();
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
    let cpu_before = cpu_seconds(registry.pid())?;
    for task in tasks {
        task.await??;
    }
    let cpu = cpu_seconds(registry.pid())? - cpu_before;
    let calls = calls.load(Ordering::Relaxed) as f64;
    Ok(Run {
        calls_per_second: calls / started.elapsed().as_secs_f64(),
        cpu_micros_per_call: cpu * 1e6 / calls,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = arg("--seconds", 3);
    let rounds = arg("--rounds", 5) as usize;
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

    // The four registries, in the order of the round's results below.
    let registries = [&untraced, &traced, &unexported, &sampled];
    println!(
        "registry pids: untraced {}, all exported {}, not exported {}, default sampling {}",
        untraced.pid(),
        traced.pid(),
        unexported.pid(),
        sampled.pid()
    );
    let mut throughput: [Vec<f64>; 4] = Default::default();
    let mut cpu: [Vec<f64>; 4] = Default::default();
    for round in 1..=rounds {
        // Each round starts with a different registry, so that no setting always runs first
        // (or right after the exporting one, whose exporter and receiver are still busy).
        let mut runs = [Run::default(); 4];
        for offset in 0..registries.len() {
            let which = (round + offset) % registries.len();
            // Lets the last run's batch exporter and the receiver finish their work.
            tokio::time::sleep(SETTLE).await;
            runs[which] = measure(registries[which], seconds).await?;
        }
        println!(
            "round {round}: Resolve/s (CPU µs per call): untraced {:.0} ({:.1}), all exported {:.0} ({:.1}), not exported {:.0} ({:.1}), default sampling {:.0} ({:.1})",
            runs[0].calls_per_second,
            runs[0].cpu_micros_per_call,
            runs[1].calls_per_second,
            runs[1].cpu_micros_per_call,
            runs[2].calls_per_second,
            runs[2].cpu_micros_per_call,
            runs[3].calls_per_second,
            runs[3].cpu_micros_per_call,
        );
        // Each against the untraced run of its own round: drift between rounds cancels out.
        for (which, run) in runs.iter().enumerate() {
            throughput[which].push(run.calls_per_second / runs[0].calls_per_second);
            cpu[which].push(runs[0].cpu_micros_per_call / run.cpu_micros_per_call);
        }
    }
    // Whatever the batch processor still holds arrives within its 100 ms delay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exported = receiver
        .spans()
        .iter()
        .filter(|s| s.name == "flotilla.registry.v1.Registry/Resolve")
        .count();
    println!(
        "each setting against the untraced registry of its round, median of {rounds} rounds (goal >= 0.9):"
    );
    println!("  setting                                 throughput ratio   CPU-per-call ratio");
    for (which, name) in [
        (2, "spans made, not exported"),
        (3, "default sampling (1 in 10 root traces)"),
        (1, "every span exported"),
    ] {
        println!(
            "  {name:<39} {:>16.3}   {:>18.3}",
            median(throughput[which].clone()),
            median(cpu[which].clone())
        );
    }
    println!("  ({exported} Resolve spans received in all)");
    Ok(())
}
