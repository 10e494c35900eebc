//! A tiny greeter served through `FleetServer` against an in-process registry: what it publishes,
//! registers, answers and reports, and how it stops.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use flotilla_model::Schema;
use flotilla_proto::{
    demo::greeter::{v1_0_0, v2_0_0},
    registry::v1::{self as pb, registry_client::RegistryClient},
};
use flotilla_server::{
    FleetServer, FleetServerBuilder, HealthHandle, INSTANCE_HEADER, Ready, SCHEMA_HEADER,
    ServerError, VERSION_HEADER,
};
use flotilla_store::SqliteStore;
use flotilla_telemetry::{
    metrics::HANDLED_TOTAL,
    scrape::{CallStats, fetch},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, service::Routes, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client};

const GREETER: &str = "demo.greeter.v1.Greeter";

/// A registry on an ephemeral port with an in-memory store.
struct Registry {
    client: RegistryClient<Channel>,
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Registry {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener).await
    }

    async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let config = flotilla_version_registry::Config::for_tests();
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            flotilla_version_registry::serve(&config, store, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let endpoint = format!("http://{address}");
        let client = RegistryClient::connect(endpoint.clone()).await.unwrap();
        Self {
            client,
            endpoint,
            stop: Some(stop),
        }
    }

    async fn create(&mut self, service: &str) {
        self.client
            .create_service(pb::CreateServiceRequest {
                name: service.into(),
                owner: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    async fn instances(&mut self, service: &str) -> Vec<pb::Instance> {
        self.client
            .list_instances(pb::ListInstancesRequest {
                service: service.into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .instances
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Release 1.0.0 of the demo greeter, as small as it gets.
#[derive(Debug, Default)]
struct Greeter;

#[tonic::async_trait]
impl v1_0_0::greeter_server::Greeter for Greeter {
    async fn say_hello(
        &self,
        request: Request<v1_0_0::HelloRequest>,
    ) -> Result<Response<v1_0_0::HelloReply>, Status> {
        Ok(Response::new(v1_0_0::HelloReply {
            message: format!("Hello, {}!", request.into_inner().name),
        }))
    }
}

fn greeter_routes() -> Routes {
    Routes::new(v1_0_0::greeter_server::GreeterServer::new(Greeter))
}

/// A greeter served through `FleetServer`, registered and ready.
struct Served {
    ready: Ready,
    health: HealthHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Served {
    fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.ready.local_addr))
            .unwrap()
            .connect_lazy()
    }

    async fn stop(mut self) -> Result<(), ServerError> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
    }
}

/// The greeter's builder: version 1.0.0 of "greeter" with a 1 s lease, so heartbeats come every
/// third of a second.
fn greeter(registry: &Registry, version: &str) -> FleetServerBuilder {
    FleetServer::builder(&registry.endpoint, "greeter", version.parse().unwrap())
        .descriptor_set(v1_0_0::DESCRIPTOR_SET)
        .lease_ttl(Duration::from_secs(1))
        .shutdown_grace(Duration::from_secs(2))
}

/// Serves `builder` with the greeter's routes until stopped, waiting until it is ready.
async fn serve(builder: FleetServerBuilder) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (ready_tx, ready_rx) = oneshot::channel();
    let health = builder.health_handle();
    let builder = builder.on_ready(move |ready| {
        let _ = ready_tx.send(ready.clone());
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(builder.serve(listener, greeter_routes(), async {
        let _ = stopped.await;
    }));
    let ready = tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .expect("ready within 10 s")
        .expect("ready is reported before serve returns");
    Served {
        ready,
        health,
        stop: Some(stop),
        task,
    }
}

/// Polls `check` every 50 ms until it holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The live instances of "greeter".
async fn greeter_instances(mut registry: RegistryClient<Channel>) -> Vec<pb::Instance> {
    registry
        .list_instances(pb::ListInstancesRequest {
            service: "greeter".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .instances
}

async fn health_of(channel: Channel, service: &str) -> ServingStatus {
    health_client::HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test]
async fn publishes_the_version_with_its_descriptor_artifact_dependencies_and_labels() {
    let mut registry = Registry::start().await;
    registry.create("clock").await;
    let served = serve(
        greeter(&registry, "1.0.0")
            .owner("team-greet")
            .artifact(
                "flotilla/greeter:1.0.0",
                vec!["greeter".into(), "--fast".into()],
            )
            .dependency("clock", "^2.1")
            .label("git_sha", "4f1c2e9"),
    )
    .await;

    let service = registry
        .client
        .get_service(pb::GetServiceRequest {
            name: "greeter".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(service.owner, "team-greet");

    let version = registry
        .client
        .get_version(pb::GetVersionRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let schema = Schema::from_bytes(v1_0_0::DESCRIPTOR_SET).unwrap();
    assert_eq!(version.schema_fingerprint, schema.fingerprint());
    assert_eq!(version.file_descriptor_set, schema.bytes());
    assert_eq!(served.ready.schema_fingerprint, schema.fingerprint());
    let artifact = version.artifact.unwrap();
    assert_eq!(artifact.image, "flotilla/greeter:1.0.0");
    assert_eq!(artifact.command, ["greeter", "--fast"]);
    assert_eq!(
        version.dependencies,
        [pb::Dependency {
            service: "clock".into(),
            requirement: "^2.1".into()
        }]
    );
    assert_eq!(version.labels["git_sha"], "4f1c2e9");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn the_instance_is_registered_at_the_advertised_address_and_deregistered_on_shutdown() {
    let mut registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0").advertise("greeter.internal:7443")).await;

    let instances = registry.instances("greeter").await;
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].id, served.ready.instance_id);
    assert_eq!(instances[0].address, "greeter.internal:7443");
    assert_eq!(instances[0].version, "1.0.0");
    assert_eq!(instances[0].status(), pb::ServingStatus::Serving);

    // Heartbeats keep a 1 s lease alive well past its ttl.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(registry.instances("greeter").await.len(), 1);

    served.stop().await.unwrap();
    assert!(registry.instances("greeter").await.is_empty());
}

#[tokio::test]
async fn the_listener_address_is_registered_by_default() {
    let mut registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0")).await;
    let instances = registry.instances("greeter").await;
    assert_eq!(instances[0].address, served.ready.local_addr.to_string());
    assert_eq!(served.ready.advertised, served.ready.local_addr.to_string());
    served.stop().await.unwrap();
}

#[tokio::test]
async fn responses_carry_the_version_schema_and_instance_headers() {
    let registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0")).await;
    let mut client = v1_0_0::greeter_client::GreeterClient::new(served.channel());

    let reply = client
        .say_hello(v1_0_0::HelloRequest { name: "Ada".into() })
        .await
        .unwrap();
    assert_eq!(reply.get_ref().message, "Hello, Ada!");
    let metadata = reply.metadata();
    assert_eq!(metadata.get(VERSION_HEADER).unwrap(), "1.0.0");
    let fingerprint = Schema::from_bytes(v1_0_0::DESCRIPTOR_SET)
        .unwrap()
        .fingerprint()
        .to_owned();
    assert_eq!(metadata.get(SCHEMA_HEADER).unwrap(), fingerprint.as_str());
    assert_eq!(
        metadata.get(INSTANCE_HEADER).unwrap(),
        served.ready.instance_id.as_str()
    );

    // Errors carry them too: a method this server does not have.
    let mut health = health_client::HealthClient::new(served.channel());
    let missing = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(missing.metadata().get(VERSION_HEADER).unwrap(), "1.0.0");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_are_served_on_the_grpc_port_labelled_with_the_version() {
    let registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0")).await;
    let mut client = v1_0_0::greeter_client::GreeterClient::new(served.channel());
    for name in ["Ada", "Grace", "Edsger"] {
        client
            .say_hello(v1_0_0::HelloRequest { name: name.into() })
            .await
            .unwrap();
    }
    // A health check on the same port is not one of the app's calls.
    assert_eq!(
        health_of(served.channel(), GREETER).await,
        ServingStatus::Serving
    );

    let address = served.ready.local_addr.to_string();
    let samples = fetch(&address, Duration::from_secs(5)).await.unwrap();
    let handled: Vec<_> = samples
        .iter()
        .filter(|s| s.name == HANDLED_TOTAL)
        .map(|s| {
            (
                s.label("grpc_service").unwrap(),
                s.label("grpc_method").unwrap(),
                s.label("grpc_code").unwrap(),
                s.label("version").unwrap(),
                s.value,
            )
        })
        .collect();
    assert_eq!(handled, [(GREETER, "SayHello", "OK", "1.0.0", 3.0)]);
    let stats = CallStats::from_samples(&samples, "1.0.0");
    assert_eq!((stats.requests, stats.errors), (3.0, 0.0));
    assert_eq!(stats.buckets.last(), Some(&(f64::INFINITY, 3.0)));

    // gRPC on the same connection-accepting port still works after the HTTP/1.1 scrape.
    client
        .say_hello(v1_0_0::HelloRequest {
            name: "Barbara".into(),
        })
        .await
        .unwrap();
    let stats = CallStats::from_samples(
        &fetch(&address, Duration::from_secs(5)).await.unwrap(),
        "1.0.0",
    );
    assert_eq!(stats.requests, 4.0);
    served.stop().await.unwrap();
}

#[tokio::test]
async fn health_is_per_service_and_per_version_and_flows_into_heartbeats() {
    let mut registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0")).await;
    let names = ["", GREETER, "demo.greeter.v1.Greeter@1.0.0"];
    for name in names {
        assert_eq!(
            health_of(served.channel(), name).await,
            ServingStatus::Serving,
            "{name:?}"
        );
    }
    // Another version's name is not this server's.
    let other = health_client::HealthClient::new(served.channel())
        .check(HealthCheckRequest {
            service: "demo.greeter.v1.Greeter@2.0.0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::NotFound);

    served.health.set_not_serving();
    for name in names {
        let channel = served.channel();
        eventually(Duration::from_secs(2), "health turns NOT_SERVING", || {
            let channel = channel.clone();
            async move { health_of(channel, name).await == ServingStatus::NotServing }
        })
        .await;
    }
    eventually(Duration::from_secs(2), "the registry sees NOT_SERVING", || {
        let registry = registry.client.clone();
        async move {
            greeter_instances(registry).await[0].status() == pb::ServingStatus::NotServing
        }
    })
    .await;

    served.health.set_serving();
    eventually(Duration::from_secs(2), "the registry sees SERVING", || {
        let registry = registry.client.clone();
        async move { greeter_instances(registry).await[0].status() == pb::ServingStatus::Serving }
    })
    .await;
    assert_eq!(
        health_of(served.channel(), GREETER).await,
        ServingStatus::Serving
    );
    assert_eq!(registry.instances("greeter").await.len(), 1);
    served.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_service_in_v1_and_v1alpha() {
    let registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0")).await;

    use tonic_reflection::pb::{v1, v1alpha};
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(served.channel())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&GREETER.to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                GREETER.into(),
            ),
        ),
    };
    let mut responses =
        v1alpha::server_reflection_client::ServerReflectionClient::new(served.channel())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    assert!(
        matches!(
            response.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(
                ref files
            )) if !files.file_descriptor_proto.is_empty()
        ),
        "{response:?}"
    );
    served.stop().await.unwrap();
}

#[tokio::test]
async fn a_version_the_compatibility_gate_refuses_fails_serve_naming_the_refusal() {
    let registry = Registry::start().await;
    serve(greeter(&registry, "1.0.0"))
        .await
        .stop()
        .await
        .unwrap();

    // 2.0.0's schema under a minor bump breaks 1.0.0.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = greeter(&registry, "1.1.0")
        .descriptor_set(v2_0_0::DESCRIPTOR_SET)
        .serve(listener, greeter_routes(), std::future::pending())
        .await
        .unwrap_err();
    match &error {
        ServerError::PublishRefused {
            version,
            code,
            message,
            violations,
            ..
        } => {
            assert_eq!(version, "1.1.0");
            assert_eq!(*code, tonic::Code::FailedPrecondition);
            assert!(message.contains("breaking change"), "{message}");
            assert!(
                violations
                    .iter()
                    .any(|v| v.starts_with("FIELD_WIRE_JSON_COMPATIBLE_TYPE")),
                "{violations:?}"
            );
        }
        other => panic!("not a refusal: {other:?}"),
    }
    assert!(error.to_string().contains("major version bump"), "{error}");
}

#[tokio::test]
async fn an_identical_republish_is_fine_and_different_content_is_refused() {
    let mut registry = Registry::start().await;
    serve(greeter(&registry, "1.0.0"))
        .await
        .stop()
        .await
        .unwrap();
    let again = serve(greeter(&registry, "1.0.0")).await;
    assert_eq!(registry.instances("greeter").await.len(), 1);
    again.stop().await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = greeter(&registry, "1.0.0")
        .label("changed", "yes")
        .serve(listener, greeter_routes(), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ServerError::PublishRefused {
                code: tonic::Code::AlreadyExists,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_lost_lease_is_replaced_by_a_new_registration() {
    let mut registry = Registry::start().await;
    let served = serve(greeter(&registry, "1.0.0")).await;
    let first = served.ready.instance_id.clone();
    registry
        .client
        .deregister_instance(pb::DeregisterInstanceRequest {
            instance_id: first.clone(),
        })
        .await
        .unwrap();

    // The next heartbeat is NOT_FOUND, so the server registers again under a new id.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let ids = loop {
        let ids: Vec<_> = greeter_instances(registry.client.clone())
            .await
            .into_iter()
            .map(|i| i.id)
            .collect();
        if ids.len() == 1 {
            break ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new registration"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(ids[0], first);
    let reply = v1_0_0::greeter_client::GreeterClient::new(served.channel())
        .say_hello(v1_0_0::HelloRequest { name: "Bo".into() })
        .await
        .unwrap();
    assert_eq!(
        reply.metadata().get(INSTANCE_HEADER).unwrap(),
        ids[0].as_str()
    );
    served.stop().await.unwrap();
    assert!(registry.instances("greeter").await.is_empty());
}

#[tokio::test]
async fn a_registry_that_starts_late_is_waited_for() {
    // Reserve a port, release it, and start the registry there after the server began trying.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address: SocketAddr = reserved.local_addr().unwrap();
    drop(reserved);
    let endpoint = format!("http://{address}");
    let builder = FleetServer::builder(&endpoint, "greeter", "1.0.0".parse().unwrap())
        .descriptor_set(v1_0_0::DESCRIPTOR_SET)
        .lease_ttl(Duration::from_secs(1));
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        Registry::start_on(listener).await
    });
    let served = serve(builder).await;
    let mut registry = late.await.unwrap();
    assert_eq!(registry.instances("greeter").await.len(), 1);
    served.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_registry_fails_serve_after_the_wait() {
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = reserved.local_addr().unwrap();
    drop(reserved);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = FleetServer::builder(
        &format!("http://{address}"),
        "greeter",
        "1.0.0".parse().unwrap(),
    )
    .descriptor_set(v1_0_0::DESCRIPTOR_SET)
    .registry_wait(Duration::from_millis(400))
    .serve(listener, greeter_routes(), std::future::pending())
    .await
    .unwrap_err();
    assert!(
        matches!(error, ServerError::RegistryUnreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn settings_are_checked_before_the_registry_is_called() {
    let registry = Registry::start().await;
    let cases: Vec<(FleetServerBuilder, &str)> = vec![
        (
            FleetServer::builder(&registry.endpoint, "greeter", "1.0.0".parse().unwrap()),
            "descriptor_set",
        ),
        (
            greeter(&registry, "1.0.0").lease_ttl(Duration::from_millis(10)),
            "lease_ttl",
        ),
        (
            greeter(&registry, "1.0.0").advertise("no port"),
            "advertise",
        ),
        (
            FleetServer::builder(&registry.endpoint, "Not_A_Name", "1.0.0".parse().unwrap())
                .descriptor_set(v1_0_0::DESCRIPTOR_SET),
            "service",
        ),
    ];
    for (builder, expected) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        match builder
            .serve(listener, greeter_routes(), std::future::pending())
            .await
        {
            Err(ServerError::InvalidSetting { field, .. }) => assert_eq!(field, expected),
            other => panic!("{expected}: {other:?}"),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = greeter(&registry, "1.0.0")
        .descriptor_set(b"\x0a\x02zz".to_vec())
        .serve(listener, greeter_routes(), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(error, ServerError::Schema(_)), "{error:?}");
}

#[tokio::test]
async fn an_app_not_serving_before_it_starts_registers_not_serving() {
    let mut registry = Registry::start().await;
    let builder = greeter(&registry, "1.0.0");
    builder.health_handle().set_not_serving();
    let served = serve(builder).await;
    assert_eq!(
        registry.instances("greeter").await[0].status(),
        pb::ServingStatus::NotServing
    );
    assert_eq!(
        health_of(served.channel(), "").await,
        ServingStatus::NotServing
    );
    // Heartbeats keep reporting it: still NOT_SERVING after a few of them.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        registry.instances("greeter").await[0].status(),
        pb::ServingStatus::NotServing
    );
    served.stop().await.unwrap();
}
