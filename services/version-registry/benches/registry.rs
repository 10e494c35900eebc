//! Registry throughput against a baseline measured in the same run, and endpoint fan-out time.
//!
//! - Resolve calls/s against a bare tonic unary server (tonic-health's Check: no store, no
//!   logic) under the same concurrent load, measured right before each store's run so both
//!   meet the same machine; the figure is the ratio.
//! - WatchEndpoints fan-out: with N watchers connected, the time from sending a SetRoute until
//!   every watcher has received an endpoint set carrying the new weights (write, commit,
//!   announcement and push).
//!
//! Both stores: the embedded SQLite file always; PostgreSQL when `FLOTILLA_BENCH_DATABASE_URL`
//! (or `FLOTILLA_TEST_DATABASE_URL`) names a server where a database may be created.
//!
//! `cargo bench -p flotilla-version-registry --bench registry -- [--seconds 3] [--watchers 1000]`

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use flotilla_store::{
    PostgresConfig, PostgresStore, RegistryStore, SqliteStore, testing::TestDatabase,
};
use flotilla_version_registry::{Config, serve};
use tokio::sync::{Notify, oneshot};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const CONNECTIONS: usize = 8;
const CONCURRENCY: usize = 64;
const FANOUT_ROUNDS: usize = 5;
const WATCHERS_PER_CONNECTION: usize = 50;

struct Options {
    seconds: u64,
    watchers: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        seconds: value("--seconds", 3),
        watchers: value("--watchers", 1000) as usize,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    println!(
        "load: {CONCURRENCY} concurrent callers over {CONNECTIONS} connections, {} s per figure; \
         fan-out: {} watchers, {FANOUT_ROUNDS} rounds",
        options.seconds, options.watchers
    );

    let dir = tempfile::tempdir()?;
    let sqlite: Arc<dyn RegistryStore> =
        Arc::new(SqliteStore::open(dir.path().join("bench.sqlite")).await?);
    report("embedded (SQLite file)", sqlite, &options).await?;

    let url = std::env::var("FLOTILLA_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("FLOTILLA_TEST_DATABASE_URL"))
        .ok();
    match url {
        Some(admin_url) => {
            let database = TestDatabase::create(&admin_url).await?;
            let postgres: Arc<dyn RegistryStore> =
                Arc::new(PostgresStore::connect(PostgresConfig::new(&database.url)).await?);
            report("PostgreSQL", postgres, &options).await?;
            database.drop_database().await?;
        }
        None => println!("\nPostgreSQL: skipped (set FLOTILLA_BENCH_DATABASE_URL)"),
    }
    Ok(())
}

async fn report(
    name: &str,
    store: Arc<dyn RegistryStore>,
    options: &Options,
) -> anyhow::Result<()> {
    let baseline = bare_unary_calls_per_second(options.seconds).await?;
    let server = RunningRegistry::start(store).await?;
    let mut client = server.client().await?;
    seed(&mut client).await?;
    let resolve = calls_per_second(&server.endpoint, options.seconds, |channel| async move {
        RegistryClient::new(channel)
            .resolve(pb::ResolveRequest {
                client_schema: Vec::new(),
                service: "greeter".into(),
                requirement: "^1".into(),
            })
            .await
            .map(|_| ())
    })
    .await?;
    let fanout = fan_out(&server.endpoint, &mut client, options.watchers).await?;
    println!("\n{name}");
    println!("  bare tonic unary:    {baseline:>9.0} calls/s  (grpc.health.v1 Check, just before)");
    println!(
        "  Resolve:             {resolve:>9.0} calls/s  = {:.3} of bare tonic unary",
        resolve / baseline
    );
    println!(
        "  WatchEndpoints fan-out to {} watchers: median {:.1} ms, max {:.1} ms over {FANOUT_ROUNDS} changes",
        options.watchers,
        fanout.median().as_secs_f64() * 1e3,
        fanout.max().as_secs_f64() * 1e3,
    );
    server.stop().await;
    Ok(())
}

struct RunningRegistry {
    endpoint: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRegistry {
    async fn start(store: Arc<dyn RegistryStore>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let config = Config::for_tests();
        let task = tokio::spawn(async move {
            let _ = serve(&config, store, listener, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(Self {
            endpoint,
            stop,
            task,
        })
    }

    async fn client(&self) -> anyhow::Result<RegistryClient<Channel>> {
        Ok(RegistryClient::connect(self.endpoint.clone()).await?)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn seed(client: &mut RegistryClient<Channel>) -> anyhow::Result<()> {
    client
        .create_service(pb::CreateServiceRequest {
            name: "greeter".into(),
            ..Default::default()
        })
        .await?;
    // Twenty versions, so Resolve has candidates to weigh and reject.
    for minor in 0..20u32 {
        client
            .publish_version(pb::PublishVersionRequest {
                service: "greeter".into(),
                version: format!("1.{minor}.0"),
                file_descriptor_set: greeter_schema_bytes(minor),
                ..Default::default()
            })
            .await?;
    }
    for (port, version) in [(7001, "1.18.0"), (7002, "1.19.0")] {
        client
            .register_instance(pb::RegisterInstanceRequest {
                service: "greeter".into(),
                version: version.into(),
                address: format!("127.0.0.1:{port}"),
                lease_ttl_ms: 300_000,
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

async fn bare_unary_calls_per_second(seconds: u64) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (health, service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    let rate = calls_per_second(&endpoint, seconds, |channel| async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ())
    })
    .await?;
    let _ = stop.send(());
    let _ = task.await;
    Ok(rate)
}

/// Runs `call` from CONCURRENCY tasks over CONNECTIONS connections for `seconds` (after a 0.5 s
/// warm-up) and returns successful calls per second. Any failed call aborts the measurement.
async fn calls_per_second<F, Fut>(endpoint: &str, seconds: u64, call: F) -> anyhow::Result<f64>
where
    F: Fn(Channel) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send,
{
    let mut channels = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        channels.push(
            Endpoint::from_shared(endpoint.to_owned())?
                .connect()
                .await?,
        );
    }
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_millis(500) + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for i in 0..CONCURRENCY {
        let (channel, call, calls, counting) = (
            channels[i % CONNECTIONS].clone(),
            call.clone(),
            calls.clone(),
            counting.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                call(channel.clone()).await?;
                if counting.load(Ordering::Relaxed) {
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(calls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

struct FanOut(Vec<Duration>);

impl FanOut {
    /// The middle value, or the mean of the two middle ones for an even count.
    fn median(&self) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        let middle = sorted.len() / 2;
        match sorted.len() % 2 {
            0 => (sorted[middle - 1] + sorted[middle]) / 2,
            _ => sorted[middle],
        }
    }

    fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }
}

/// Connects `watchers` WatchEndpoints streams, then changes the route FANOUT_ROUNDS times and
/// times each change until every watcher has seen it.
async fn fan_out(
    endpoint: &str,
    client: &mut RegistryClient<Channel>,
    watchers: usize,
) -> anyhow::Result<FanOut> {
    let received = Arc::new(AtomicUsize::new(0));
    // The canary weight of the round being timed: a watcher counts once, when it sees it.
    let expected = Arc::new(AtomicU32::new(u32::MAX));
    let all_received = Arc::new(Notify::new());
    let ready = Arc::new(AtomicUsize::new(0));
    let all_ready = Arc::new(Notify::new());
    let connections = watchers.div_ceil(WATCHERS_PER_CONNECTION).max(1);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            Endpoint::from_shared(endpoint.to_owned())?
                .connect()
                .await?,
        );
    }
    let mut tasks = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let mut watcher = RegistryClient::new(channels[i % connections].clone());
        let (received, all_received, ready, all_ready, expected) = (
            received.clone(),
            all_received.clone(),
            ready.clone(),
            all_ready.clone(),
            expected.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stream = watcher
                .watch_endpoints(pb::WatchEndpointsRequest {
                    client_schema: Vec::new(),
                    service: "greeter".into(),
                    requirement: "^1".into(),
                })
                .await?
                .into_inner();
            stream.next().await.transpose()?;
            if ready.fetch_add(1, Ordering::AcqRel) + 1 == watchers {
                all_ready.notify_one();
            }
            let mut counted = u32::MAX;
            while let Some(set) = stream.next().await.transpose()? {
                let canary = expected.load(Ordering::Acquire);
                let shows_it = set
                    .endpoints
                    .iter()
                    .any(|e| e.version == "1.19.0" && e.version_weight == canary);
                if shows_it && counted != canary {
                    counted = canary;
                    if received.fetch_add(1, Ordering::AcqRel) + 1 == watchers {
                        all_received.notify_one();
                    }
                }
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), all_ready.notified()).await?;

    let mut times = Vec::with_capacity(FANOUT_ROUNDS);
    for round in 0..FANOUT_ROUNDS {
        received.store(0, Ordering::Release);
        let canary = 10 + round as u32;
        expected.store(canary, Ordering::Release);
        let started = Instant::now();
        let notified = all_received.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        client
            .set_route(pb::SetRouteRequest {
                service: "greeter".into(),
                weights: vec![
                    pb::VersionWeight {
                        version: "1.18.0".into(),
                        weight: 100 - canary,
                    },
                    pb::VersionWeight {
                        version: "1.19.0".into(),
                        weight: canary,
                    },
                ],
            })
            .await?;
        tokio::time::timeout(Duration::from_secs(30), notified).await?;
        times.push(started.elapsed());
    }
    for task in tasks {
        task.abort();
    }
    Ok(FanOut(times))
}
