//! Real servers for the fleet client's tests and benchmark, on 127.0.0.1 ports the OS picks: an
//! in-process registry, and echo instances registered in it. Each echo instance runs in a
//! runtime of its own, so killing one drops its listener, its connections and its heartbeats
//! at once, as a crash would.

// Each test binary (and the benchmark) uses a different part of this module.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use flotilla_proto::{
    registry::v1::{self as pb, registry_client::RegistryClient},
    testing::v1::{
        DESCRIPTOR_SET, EchoReply, EchoRequest,
        echo_server::{Echo, EchoServer},
    },
};
use flotilla_store::SqliteStore;
use flotilla_version_registry::{Config, serve};
use http::HeaderValue;
use tokio::{net::TcpListener, runtime::Runtime, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Response, Status,
    transport::{Channel, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::util::MapResponseLayer;

/// The service every test registers.
pub const SERVICE: &str = "echo";
/// How long instances' leases last; heartbeats renew them three times as often.
const LEASE_TTL: Duration = Duration::from_secs(10);

/// An in-process registry on an ephemeral port, with the embedded store in memory.
pub struct TestRegistry {
    pub url: String,
    pub address: SocketAddr,
    pub client: RegistryClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl TestRegistry {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on a given address: a test restarts a registry where its clients expect it.
    pub async fn start_on(address: SocketAddr) -> Self {
        let config = Config::for_tests();
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(&config, store, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let url = format!("http://{address}");
        let client = RegistryClient::connect(url.clone()).await.unwrap();
        Self {
            url,
            address,
            client,
            stop: Some(stop),
            server,
        }
    }

    /// Stops the registry the way SIGTERM does: watch streams end with UNAVAILABLE.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("the registry drains within 10 s")
            .unwrap();
    }

    /// Creates the echo service and publishes `versions` of it, all with the echo schema.
    pub async fn create_echo_service(&mut self, versions: &[&str]) {
        self.client
            .create_service(pb::CreateServiceRequest {
                name: SERVICE.into(),
                owner: "team-test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for version in versions {
            self.client
                .publish_version(pb::PublishVersionRequest {
                    service: SERVICE.into(),
                    version: (*version).into(),
                    file_descriptor_set: DESCRIPTOR_SET.to_vec(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }

    pub async fn set_route(&mut self, weights: &[(&str, u32)]) {
        self.client
            .set_route(pb::SetRouteRequest {
                service: SERVICE.into(),
                weights: weights
                    .iter()
                    .map(|(version, weight)| pb::VersionWeight {
                        version: (*version).into(),
                        weight: *weight,
                    })
                    .collect(),
            })
            .await
            .unwrap();
    }
}

/// One attempt an echo instance received, for calls that carry a `call_id`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub call_id: String,
    pub method: &'static str,
    pub instance_id: String,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// Every attempt with a `call_id` that any instance of a test received.
#[derive(Debug, Clone, Default)]
pub struct AttemptLog(Arc<Mutex<Vec<Attempt>>>);

impl AttemptLog {
    pub fn of(&self, call_id: &str) -> Vec<Attempt> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.call_id == call_id)
            .cloned()
            .collect()
    }

    fn push(&self, attempt: Attempt) {
        self.0.lock().unwrap().push(attempt);
    }
}

/// How an echo instance starts.
#[derive(Debug, Clone)]
pub struct InstanceOptions {
    /// The status it registers with and heartbeats.
    pub registry_status: pb::ServingStatus,
    /// Worker threads of its runtime.
    pub worker_threads: usize,
}

impl Default for InstanceOptions {
    fn default() -> Self {
        Self {
            registry_status: pb::ServingStatus::Serving,
            worker_threads: 1,
        }
    }
}

/// An echo server with tonic-health and the `x-flotilla-*` response headers, registered in a
/// registry and heartbeating, in a runtime of its own.
pub struct EchoInstance {
    pub id: String,
    pub version: String,
    pub address: SocketAddr,
    health: HealthReporter,
    served: Arc<AtomicU64>,
    runtime: Option<Runtime>,
}

impl EchoInstance {
    pub async fn start(registry_url: &str, version: &str, log: &AttemptLog) -> Self {
        Self::start_with(registry_url, version, log, InstanceOptions::default()).await
    }

    pub async fn start_with(
        registry_url: &str,
        version: &str,
        log: &AttemptLog,
        options: InstanceOptions,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();

        let instance_id = Arc::new(OnceLock::<String>::new());
        let served = Arc::new(AtomicU64::new(0));
        let (health, health_service) = tonic_health::server::health_reporter();
        let echo = EchoService {
            instance_id: instance_id.clone(),
            version: version.to_owned(),
            served: served.clone(),
            log: log.clone(),
        };
        let headers = ResponseHeaders::new(version, instance_id.clone());
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            // Nagle off, as the registry does: a unary reply is several small frames.
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            tonic::transport::Server::builder()
                .layer(MapResponseLayer::new(move |response| headers.add(response)))
                .add_service(health_service)
                .add_service(EchoServer::new(echo))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });

        let (registered, id) = oneshot::channel();
        runtime.spawn(register_and_heartbeat(
            registry_url.to_owned(),
            version.to_owned(),
            address,
            options.registry_status,
            instance_id,
            registered,
        ));
        let id = id.await.expect("the instance registers");
        Self {
            id,
            version: version.to_owned(),
            address,
            health,
            served,
            runtime: Some(runtime),
        }
    }

    /// Calls this instance has answered (or is answering).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Sets the status its health service reports for the whole server (service `""`).
    pub async fn set_health(&self, serving: bool) {
        let status = match serving {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        };
        self.health.set_service_status("", status).await;
    }

    /// Kills the instance: its runtime is shut down, which drops its listener, every open
    /// connection (held calls included) and its heartbeats. Returns when all is gone.
    pub async fn kill(&mut self) {
        let runtime = self.runtime.take().expect("not killed yet");
        tokio::task::spawn_blocking(move || drop(runtime))
            .await
            .unwrap();
    }
}

impl Drop for EchoInstance {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks, which a test's own runtime does not allow.
            runtime.shutdown_background();
        }
    }
}

async fn register_and_heartbeat(
    registry_url: String,
    version: String,
    address: SocketAddr,
    status: pb::ServingStatus,
    instance_id: Arc<OnceLock<String>>,
    registered: oneshot::Sender<String>,
) {
    let mut client = RegistryClient::connect(registry_url).await.unwrap();
    let instance = client
        .register_instance(pb::RegisterInstanceRequest {
            service: SERVICE.into(),
            version,
            address: address.to_string(),
            lease_ttl_ms: LEASE_TTL.as_millis() as u32,
            status: status as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    instance_id.set(instance.id.clone()).unwrap();
    let _ = registered.send(instance.id.clone());
    loop {
        tokio::time::sleep(LEASE_TTL / 3).await;
        // A registry that went away (a test restarting it) just misses these beats.
        let _ = client
            .heartbeat(pb::HeartbeatRequest {
                instance_id: instance.id.clone(),
                status: status as i32,
            })
            .await;
    }
}

/// The `x-flotilla-*` headers on every response, as Flotilla servers send them.
#[derive(Clone)]
struct ResponseHeaders {
    version: HeaderValue,
    schema: HeaderValue,
    instance_id: Arc<OnceLock<String>>,
    instance_value: Arc<OnceLock<HeaderValue>>,
}

impl ResponseHeaders {
    fn new(version: &str, instance_id: Arc<OnceLock<String>>) -> Self {
        let schema = flotilla_model::Schema::from_bytes(DESCRIPTOR_SET).unwrap();
        Self {
            version: HeaderValue::from_str(version).unwrap(),
            schema: HeaderValue::from_str(schema.fingerprint()).unwrap(),
            instance_id,
            instance_value: Arc::new(OnceLock::new()),
        }
    }

    fn add(
        &self,
        mut response: http::Response<tonic::body::Body>,
    ) -> http::Response<tonic::body::Body> {
        let headers = response.headers_mut();
        headers.insert(flotilla_client::VERSION_HEADER, self.version.clone());
        headers.insert(flotilla_client::SCHEMA_HEADER, self.schema.clone());
        if let Some(id) = self.instance_id.get() {
            let value = self
                .instance_value
                .get_or_init(|| HeaderValue::from_str(id).unwrap());
            headers.insert(flotilla_client::INSTANCE_HEADER, value.clone());
        }
        response
    }
}

/// The schema fingerprint the echo instances send.
pub fn echo_fingerprint() -> String {
    flotilla_model::Schema::from_bytes(DESCRIPTOR_SET)
        .unwrap()
        .fingerprint()
        .to_owned()
}

struct EchoService {
    instance_id: Arc<OnceLock<String>>,
    version: String,
    served: Arc<AtomicU64>,
    log: AttemptLog,
}

impl EchoService {
    async fn answer(
        &self,
        method: &'static str,
        request: Request<EchoRequest>,
    ) -> Result<Response<EchoReply>, Status> {
        self.served.fetch_add(1, Ordering::SeqCst);
        let instance_id = self.instance_id.get().cloned().unwrap_or_default();
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (traceparent, tracestate) = (header("traceparent"), header("tracestate"));
        let request = request.into_inner();
        if !request.call_id.is_empty() {
            self.log.push(Attempt {
                call_id: request.call_id.clone(),
                method,
                instance_id: instance_id.clone(),
                traceparent,
                tracestate,
            });
        }
        if request.hold_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(request.hold_ms))).await;
        }
        if request.fail_unavailable {
            return Err(Status::unavailable("asked to fail"));
        }
        Ok(Response::new(EchoReply {
            message: request.message,
            instance_id,
            version: self.version.clone(),
        }))
    }
}

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.answer("Echo", request).await
    }

    async fn record(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.answer("Record", request).await
    }
}

/// Waits until `condition` holds, checking every 5 ms; panics with `what` after `limit`.
pub async fn eventually(
    limit: Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if condition() {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A fleet channel to the echo service with the echo schema (so `Echo` is retried and
/// `Record` is not), once it knows `instances` endpoints.
pub async fn echo_channel(
    registry: &TestRegistry,
    requirement: &str,
    instances: usize,
) -> flotilla_client::FleetChannel {
    let channel = flotilla_client::FleetClient::builder(registry.url.clone(), SERVICE)
        .requirement(requirement)
        .unwrap()
        .caller_schema(DESCRIPTOR_SET)
        .connect()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the client knows every instance",
        || channel.snapshot().endpoints.len() == instances,
    )
    .await;
    channel
}

/// An echo request with a `call_id`, a `traceparent` and a `tracestate`.
pub fn traced(call_id: &str, request: EchoRequest) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        call_id: call_id.to_owned(),
        ..request
    });
    let metadata = request.metadata_mut();
    metadata.insert("traceparent", TRACEPARENT.parse().unwrap());
    metadata.insert("tracestate", TRACESTATE.parse().unwrap());
    request
}

/// The W3C trace context `traced` requests carry.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TRACESTATE: &str = "flotilla=test";
