//! Every RPC of the registry, sent arbitrary field values and arbitrary descriptor bytes by an
//! in-process client: no reply is UNKNOWN, CANCELLED (a reset stream) or INTERNAL, every error
//! reply's metadata is under 8 KiB, and the registry still answers health afterwards.

use std::{collections::HashMap, sync::Arc, time::Duration};

use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use flotilla_shell::testing::{check_reply, descriptor_bytes, text};
use flotilla_store::SqliteStore;
use flotilla_version_registry::{Config, serve};
use proptest::{prelude::*, test_runner::TestRunner};
use tokio::sync::oneshot;
use tonic::{Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A registry on an ephemeral port with greeter 1.0.0 and 1.1.0 and one live instance.
struct Harness {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    instance_id: String,
    _stop: oneshot::Sender<()>,
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (channel, instance_id, stop) = runtime.block_on(async {
            let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            tokio::spawn(async move {
                serve(&Config::for_tests(), store, listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            let channel = Channel::from_shared(format!("http://{address}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut client = client(&channel);
            client
                .create_service(pb::CreateServiceRequest {
                    name: "greeter".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            for (version, fields) in [("1.0.0", 1), ("1.1.0", 2)] {
                client
                    .publish_version(pb::PublishVersionRequest {
                        service: "greeter".into(),
                        version: version.into(),
                        file_descriptor_set: greeter_schema_bytes(fields),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            let instance = client
                .register_instance(pb::RegisterInstanceRequest {
                    service: "greeter".into(),
                    version: "1.1.0".into(),
                    address: "127.0.0.1:7000".into(),
                    lease_ttl_ms: 300_000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (channel, instance.id, stop)
        });
        Self {
            runtime,
            channel,
            instance_id,
            _stop: stop,
        }
    }

    /// Runs `call` on every value of `strategy` and checks each reply.
    fn check<S, F, Fut>(&self, rpc: &str, strategy: S, call: F)
    where
        S: Strategy,
        F: Fn(RegistryClient<Channel>, S::Value) -> Fut,
        Fut: Future<Output = Result<(), Status>>,
    {
        let mut runner = TestRunner::new(ProptestConfig {
            // PROPTEST_CASES raises it for a longer hunt.
            cases: std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(48),
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&strategy, |value| {
                let reply = self.runtime.block_on(call(client(&self.channel), value));
                check_reply(rpc, &reply)
            })
            .unwrap();
        self.runtime.block_on(async {
            let mut health = HealthClient::new(self.channel.clone());
            let status = health
                .check(HealthCheckRequest::default())
                .await
                .expect("the registry still answers health")
                .into_inner()
                .status;
            assert_eq!(status, 1, "SERVING after {rpc}");
        });
    }
}

fn client(channel: &Channel) -> RegistryClient<Channel> {
    RegistryClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn schemas() -> impl Strategy<Value = Vec<u8>> {
    descriptor_bytes((0..4).map(greeter_schema_bytes).collect())
}

fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![3 => -1i32..10, 1 => any::<i32>()]
}

fn map() -> impl Strategy<Value = HashMap<String, String>> {
    prop::collection::hash_map(text(), text(), 0..4)
}

fn policy() -> impl Strategy<Value = Option<pb::CompatibilityPolicy>> {
    proptest::option::of(
        (enum_value(), enum_value())
            .prop_map(|(mode, category)| pb::CompatibilityPolicy { mode, category }),
    )
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![Just("greeter".to_owned()), text()]
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![Just("1.1.0".to_owned()), text()]
}

fn dependencies() -> impl Strategy<Value = Vec<pb::Dependency>> {
    prop::collection::vec(
        (service(), text()).prop_map(|(service, requirement)| pb::Dependency {
            service,
            requirement,
        }),
        0..3,
    )
}

fn artifact() -> impl Strategy<Value = Option<pb::Artifact>> {
    proptest::option::of(
        (text(), prop::collection::vec(text(), 0..4))
            .prop_map(|(image, command)| pb::Artifact { image, command }),
    )
}

#[test]
fn create_service() {
    Harness::start().check(
        "CreateService",
        (text(), text(), text(), policy()),
        |mut c, (name, owner, description, policy)| async move {
            c.create_service(pb::CreateServiceRequest {
                name,
                owner,
                description,
                policy,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn get_service() {
    Harness::start().check("GetService", service(), |mut c, name| async move {
        c.get_service(pb::GetServiceRequest { name })
            .await
            .map(drop)
    });
}

#[test]
fn list_services() {
    Harness::start().check(
        "ListServices",
        (any::<u32>(), text()),
        |mut c, (page_size, page_token)| async move {
            c.list_services(pb::ListServicesRequest {
                page_size,
                page_token,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn set_compatibility_policy() {
    Harness::start().check(
        "SetCompatibilityPolicy",
        (service(), policy()),
        |mut c, (name, policy)| async move {
            c.set_compatibility_policy(pb::SetCompatibilityPolicyRequest { name, policy })
                .await
                .map(drop)
        },
    );
}

#[test]
fn publish_version() {
    Harness::start().check(
        "PublishVersion",
        (service(), version(), schemas(), artifact(), dependencies(), map()),
        |mut c, (service, version, file_descriptor_set, artifact, dependencies, labels)| async move {
            c.publish_version(pb::PublishVersionRequest {
                service,
                version,
                file_descriptor_set,
                artifact,
                dependencies,
                labels,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn get_version() {
    Harness::start().check(
        "GetVersion",
        (service(), version()),
        |mut c, (service, version)| async move {
            c.get_version(pb::GetVersionRequest { service, version })
                .await
                .map(drop)
        },
    );
}

#[test]
fn list_versions() {
    Harness::start().check(
        "ListVersions",
        (service(), any::<bool>()),
        |mut c, (service, include_schema)| async move {
            c.list_versions(pb::ListVersionsRequest {
                service,
                include_schema,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn transition_version() {
    Harness::start().check(
        "TransitionVersion",
        (service(), version(), enum_value(), text()),
        |mut c, (service, version, state, reason)| async move {
            c.transition_version(pb::TransitionVersionRequest {
                service,
                version,
                state,
                reason,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn check_compatibility() {
    Harness::start().check(
        "CheckCompatibility",
        (service(), schemas(), version(), enum_value(), version(), policy()),
        |mut c, (service, file_descriptor_set, version, against, against_version, policy)| async move {
            c.check_compatibility(pb::CheckCompatibilityRequest {
                service,
                file_descriptor_set,
                version,
                against,
                against_version,
                policy,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn resolve() {
    Harness::start().check(
        "Resolve",
        (service(), text(), schemas()),
        |mut c, (service, requirement, client_schema)| async move {
            c.resolve(pb::ResolveRequest {
                service,
                requirement,
                client_schema,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn register_instance() {
    Harness::start().check(
        "RegisterInstance",
        (
            service(),
            version(),
            text(),
            map(),
            any::<u32>(),
            enum_value(),
        ),
        |mut c, (service, version, address, metadata, lease_ttl_ms, status)| async move {
            c.register_instance(pb::RegisterInstanceRequest {
                service,
                version,
                address,
                metadata,
                lease_ttl_ms,
                status,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn heartbeat() {
    let harness = Harness::start();
    let id = harness.instance_id.clone();
    harness.check(
        "Heartbeat",
        (prop_oneof![Just(id), text()], enum_value()),
        |mut c, (instance_id, status)| async move {
            c.heartbeat(pb::HeartbeatRequest {
                instance_id,
                status,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn deregister_instance() {
    let harness = Harness::start();
    let id = harness.instance_id.clone();
    harness.check(
        "DeregisterInstance",
        prop_oneof![Just(id), text()],
        |mut c, instance_id| async move {
            c.deregister_instance(pb::DeregisterInstanceRequest { instance_id })
                .await
                .map(drop)
        },
    );
}

#[test]
fn list_instances() {
    Harness::start().check(
        "ListInstances",
        (service(), prop_oneof![Just(String::new()), version()]),
        |mut c, (service, version)| async move {
            c.list_instances(pb::ListInstancesRequest { service, version })
                .await
                .map(drop)
        },
    );
}

#[test]
fn set_route() {
    let weights = prop::collection::vec(
        (version(), prop_oneof![0u32..20_000, any::<u32>()])
            .prop_map(|(version, weight)| pb::VersionWeight { version, weight }),
        0..4,
    );
    Harness::start().check(
        "SetRoute",
        (service(), weights),
        |mut c, (service, weights)| async move {
            c.set_route(pb::SetRouteRequest { service, weights })
                .await
                .map(drop)
        },
    );
}

#[test]
fn get_route() {
    Harness::start().check("GetRoute", service(), |mut c, service| async move {
        c.get_route(pb::GetRouteRequest { service }).await.map(drop)
    });
}

#[test]
fn watch_endpoints() {
    Harness::start().check(
        "WatchEndpoints",
        (service(), text(), schemas()),
        |mut c, (service, requirement, client_schema)| async move {
            let mut stream = c
                .watch_endpoints(pb::WatchEndpointsRequest {
                    service,
                    requirement,
                    client_schema,
                })
                .await?
                .into_inner();
            // The first endpoint set comes at once; an error in the stream is a reply too.
            match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
                Ok(message) => message.map(drop),
                // A watch that never answers is a defect: UNKNOWN fails the check.
                Err(_) => Err(Status::unknown("no first endpoint set in 5 s")),
            }
        },
    );
}

#[test]
fn list_audit_events() {
    Harness::start().check(
        "ListAuditEvents",
        (
            prop_oneof![Just(String::new()), service()],
            any::<u32>(),
            text(),
        ),
        |mut c, (service, page_size, page_token)| async move {
            c.list_audit_events(pb::ListAuditEventsRequest {
                service,
                page_size,
                page_token,
            })
            .await
            .map(drop)
        },
    );
}
