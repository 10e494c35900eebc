//! Calls per second to one echo instance through a plain `tonic::transport::Channel` and through
//! a `FleetChannel` (endpoint table, weighted pick, health watch, body buffering for retries),
//! with the same concurrency, alternating which side runs first each round, so that drift on the
//! machine hits both alike.
//!
//! `cargo bench -p flotilla-client --bench fleet_vs_plain`. The goal is fleet/plain ≥ 0.9.
//! `FLOTILLA_BENCH_ROUNDS` (default 2) sets how many plain/fleet pairs run per method; on a
//! machine shared with other work, more rounds even out the noise.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use flotilla_proto::testing::v1::{EchoRequest, echo_client::EchoClient};
use support::{AttemptLog, EchoInstance, InstanceOptions, TestRegistry, echo_channel};
use tonic::{
    body::Body,
    client::GrpcService,
    codegen::{Bytes, StdError},
};

const CALLERS: usize = 64;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURED: Duration = Duration::from_secs(3);
const DEFAULT_ROUNDS: usize = 2;

#[derive(Clone, Copy)]
enum Method {
    /// NO_SIDE_EFFECTS: the fleet channel buffers its body so it can retry.
    Echo,
    /// Not idempotent: streamed through as is.
    Record,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let instance = EchoInstance::start_with(
        &registry.url,
        "1.0.0",
        &AttemptLog::default(),
        InstanceOptions {
            worker_threads: 2,
            ..Default::default()
        },
    )
    .await;
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", instance.address))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let fleet = echo_channel(&registry, "", 1).await;
    let rounds = std::env::var("FLOTILLA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    println!("{}", fleet.snapshot());
    println!(
        "{CALLERS} concurrent callers, {WARM_UP:?} warm-up then {MEASURED:?} per run, one instance"
    );

    for (method, name) in [
        (Method::Echo, "Echo (idempotent)"),
        (Method::Record, "Record (not idempotent)"),
    ] {
        let (mut plain_total, mut fleet_total) = (0.0, 0.0);
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let (p, f) = if round % 2 == 1 {
                let p = calls_per_second(&plain, method).await;
                (p, calls_per_second(&fleet, method).await)
            } else {
                let f = calls_per_second(&fleet, method).await;
                (calls_per_second(&plain, method).await, f)
            };
            println!(
                "  {name:<24} round {round}  plain {p:>7.0} calls/s  fleet {f:>7.0} calls/s  ({:.3})",
                f / p
            );
            plain_total += p;
            fleet_total += f;
            ratios.push(f / p);
        }
        println!(
            "{name}: plain {:.0} calls/s, fleet {:.0} calls/s, fleet/plain {:.3} (median of rounds {:.3})",
            plain_total / rounds as f64,
            fleet_total / rounds as f64,
            fleet_total / plain_total,
            median(ratios)
        );
    }
}

/// The middle value, or the mean of the two middle ones for an even count.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() % 2 {
        0 => (values[middle - 1] + values[middle]) / 2.0,
        _ => values[middle],
    }
}

/// Runs `CALLERS` loops of calls for the warm-up and the measured time; counts those completed
/// in the measured time.
async fn calls_per_second<C>(channel: &C, method: Method) -> f64
where
    C: GrpcService<Body> + Clone + Send + 'static,
    C::Error: Into<StdError>,
    C::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <C::ResponseBody as http_body::Body>::Error: Into<StdError> + Send,
    C::Future: Send,
{
    let start = Instant::now();
    let (measure_from, end) = (start + WARM_UP, start + WARM_UP + MEASURED);
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let mut client = EchoClient::new(channel.clone());
            tokio::spawn(async move {
                let mut counted = 0u64;
                loop {
                    let request = EchoRequest {
                        message: "hello".into(),
                        ..Default::default()
                    };
                    match method {
                        Method::Echo => client.echo(request).await.unwrap(),
                        Method::Record => client.record(request).await.unwrap(),
                    };
                    let now = Instant::now();
                    if now >= end {
                        return counted;
                    }
                    counted += u64::from(now >= measure_from);
                }
            })
        })
        .collect();
    let mut total = 0;
    for caller in callers {
        total += caller.await.unwrap();
    }
    total as f64 / MEASURED.as_secs_f64()
}
