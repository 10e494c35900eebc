//! Every RPC of the orchestrator, sent arbitrary field values by an in-process client (with an
//! in-process registry behind it): no reply is UNKNOWN, CANCELLED (a reset stream) or INTERNAL,
//! every error reply's metadata is under 8 KiB, and the orchestrator still answers health
//! afterwards. The only program it may run is `true`, which exits at once: a rollout the
//! hunt starts never leaves a process behind.

use std::{sync::Arc, time::Duration};

use clap::Parser;
use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::{
    registry::v1::{self as registry_pb, registry_client::RegistryClient},
    rollout::v1::{self as pb, orchestrator_client::OrchestratorClient},
};
use flotilla_rollout_orchestrator::{Config, open_store, serve};
use flotilla_shell::testing::{check_reply, text};
use flotilla_store::SqliteStore;
use proptest::{prelude::*, test_runner::TestRunner};
use tokio::sync::oneshot;
use tonic::{Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct Harness {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    rollout_id: String,
    _dir: tempfile::TempDir,
    _stops: Vec<oneshot::Sender<()>>,
}

async fn channel(address: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (channel, rollout_id, stops) = runtime.block_on(async {
            let mut stops = Vec::new();
            // The registry, with greeter 1.0.0 and 1.1.0 whose artifact runs `true`.
            let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let registry_address = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            tokio::spawn(async move {
                let config = flotilla_version_registry::Config::for_tests();
                flotilla_version_registry::serve(&config, store, listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            let mut registry = RegistryClient::new(channel(registry_address).await);
            registry
                .create_service(registry_pb::CreateServiceRequest {
                    name: "greeter".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            for (version, fields) in [("1.0.0", 1), ("1.1.0", 2)] {
                registry
                    .publish_version(registry_pb::PublishVersionRequest {
                        service: "greeter".into(),
                        version: version.into(),
                        file_descriptor_set: greeter_schema_bytes(fields),
                        artifact: Some(registry_pb::Artifact {
                            image: String::new(),
                            command: vec!["true".into()],
                        }),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }

            let state = dir.path().join("instances");
            let config = Config::try_parse_from([
                "rollout-orchestrator",
                "--listen",
                "127.0.0.1:0",
                "--registry",
                &format!("http://{registry_address}"),
                "--data-file",
                ":memory:",
                "--state-dir",
                state.to_str().unwrap(),
                "--allow-program",
                "/bin/true",
                "--lease-ttl-ms",
                "1000",
            ])
            .unwrap();
            let store = open_store(&config).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            tokio::spawn(async move {
                serve(&config, store, listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            let channel = channel(address).await;
            // One rollout, so that the commands have a real id to act on.
            let rollout = OrchestratorClient::new(channel.clone())
                .start_rollout(pb::StartRolloutRequest {
                    service: "greeter".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            (channel, rollout.id, stops)
        });
        Self {
            runtime,
            channel,
            rollout_id,
            _dir: dir,
            _stops: stops,
        }
    }

    fn check<S, F, Fut>(&self, rpc: &str, strategy: S, call: F)
    where
        S: Strategy,
        F: Fn(OrchestratorClient<Channel>, S::Value) -> Fut,
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
                let client = OrchestratorClient::new(self.channel.clone())
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20);
                let reply = self.runtime.block_on(call(client, value));
                check_reply(rpc, &reply)
            })
            .unwrap();
        self.runtime.block_on(async {
            let status = HealthClient::new(self.channel.clone())
                .check(HealthCheckRequest::default())
                .await
                .expect("the orchestrator still answers health")
                .into_inner()
                .status;
            assert_eq!(status, 1, "SERVING after {rpc}");
        });
    }

    fn id(&self) -> impl Strategy<Value = String> + use<> {
        prop_oneof![Just(self.rollout_id.clone()), text()]
    }
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![Just("greeter".to_owned()), text()]
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![Just("1.1.0".to_owned()), text()]
}

fn duration() -> impl Strategy<Value = Option<prost_types::Duration>> {
    proptest::option::of(
        prop_oneof![
            3 => (0i64..120, 0i32..1_000_000_000),
            1 => (any::<i64>(), any::<i32>()),
        ]
        .prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
    )
}

fn ratio() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(prop_oneof![
        3 => 0.0f64..10.0,
        1 => any::<f64>(),
        1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, -1.0, 0.0]),
    ])
}

fn small_or_any() -> impl Strategy<Value = u32> {
    prop_oneof![3 => 0u32..12, 1 => any::<u32>()]
}

fn strategy() -> impl Strategy<Value = Option<pb::Strategy>> {
    let step = prop_oneof![
        small_or_any().prop_map(pb::canary_step::Step::SetWeight),
        duration().prop_map(|duration| pb::canary_step::Step::Pause(pb::PauseStep { duration })),
        small_or_any().prop_map(|intervals| {
            pb::canary_step::Step::Analysis(pb::AnalysisStep { intervals })
        }),
    ];
    let kind = prop_oneof![
        (small_or_any(), small_or_any()).prop_map(|(max_surge, max_unavailable)| {
            pb::strategy::Kind::Rolling(pb::Rolling {
                max_surge,
                max_unavailable,
            })
        }),
        prop::collection::vec(proptest::option::of(step), 0..5).prop_map(|steps| {
            pb::strategy::Kind::Canary(pb::Canary {
                steps: steps
                    .into_iter()
                    .map(|step| pb::CanaryStep { step })
                    .collect(),
            })
        }),
        (duration(), duration()).prop_map(|(auto_promote_after, rollback_window)| {
            pb::strategy::Kind::BlueGreen(pb::BlueGreen {
                auto_promote_after,
                rollback_window,
            })
        }),
    ];
    proptest::option::of(proptest::option::of(kind).prop_map(|kind| pb::Strategy { kind }))
}

fn analysis() -> impl Strategy<Value = Option<pb::Analysis>> {
    proptest::option::of(
        (
            duration(),
            ratio(),
            ratio(),
            duration(),
            small_or_any(),
            small_or_any(),
            proptest::option::of(small_or_any()),
        )
            .prop_map(
                |(interval, error, p99, p99_floor, min_requests, failure_limit, inconclusive)| {
                    pb::Analysis {
                        interval,
                        max_error_ratio_increase: error,
                        max_p99_ratio: p99,
                        p99_floor,
                        min_requests,
                        failure_limit,
                        inconclusive_limit: inconclusive,
                    }
                },
            ),
    )
}

#[test]
fn start_rollout() {
    Harness::start().check(
        "StartRollout",
        (
            (service(), version(), strategy(), small_or_any()),
            (analysis(), duration(), duration(), any::<bool>()),
        ),
        |mut c, ((service, version, strategy, replicas), (analysis, health, progress, force))| async move {
            c.start_rollout(pb::StartRolloutRequest {
                service,
                version,
                strategy,
                replicas,
                analysis,
                health_deadline: health,
                progress_deadline: progress,
                force,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn get_rollout() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check("GetRollout", id, |mut c, id| async move {
        c.get_rollout(pb::GetRolloutRequest { id }).await.map(drop)
    });
}

#[test]
fn list_rollouts() {
    Harness::start().check(
        "ListRollouts",
        (service(), any::<bool>(), any::<u32>(), text()),
        |mut c, (service, active_only, page_size, page_token)| async move {
            c.list_rollouts(pb::ListRolloutsRequest {
                service,
                active_only,
                page_size,
                page_token,
            })
            .await
            .map(drop)
        },
    );
}

#[test]
fn watch_rollout() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check("WatchRollout", id, |mut c, id| async move {
        let mut stream = c
            .watch_rollout(pb::WatchRolloutRequest { id })
            .await?
            .into_inner();
        // The rollout as it is comes first; a watch that never answers is a defect.
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(message) => message.map(drop),
            Err(_) => Err(Status::unknown("no first update in 5 s")),
        }
    });
}

#[test]
fn pause() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check("Pause", (id, text()), |mut c, (id, reason)| async move {
        c.pause(pb::PauseRequest { id, reason }).await.map(drop)
    });
}

#[test]
fn resume() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check("Resume", id, |mut c, id| async move {
        c.resume(pb::ResumeRequest { id }).await.map(drop)
    });
}

#[test]
fn promote() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check(
        "Promote",
        (id, any::<bool>()),
        |mut c, (id, full)| async move { c.promote(pb::PromoteRequest { id, full }).await.map(drop) },
    );
}

#[test]
fn abort() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check("Abort", (id, text()), |mut c, (id, reason)| async move {
        c.abort(pb::AbortRequest { id, reason }).await.map(drop)
    });
}

#[test]
fn rollback() {
    Harness::start().check(
        "Rollback",
        (service(), prop_oneof![0u64..4, any::<u64>()]),
        |mut c, (service, revision)| async move {
            c.rollback(pb::RollbackRequest { service, revision })
                .await
                .map(drop)
        },
    );
}

#[test]
fn list_revisions() {
    Harness::start().check("ListRevisions", service(), |mut c, service| async move {
        c.list_revisions(pb::ListRevisionsRequest { service })
            .await
            .map(drop)
    });
}

#[test]
fn explain_rollout() {
    let harness = Harness::start();
    let id = harness.id();
    harness.check(
        "ExplainRollout",
        (id, any::<u32>()),
        |mut c, (id, event_limit)| async move {
            c.explain_rollout(pb::ExplainRolloutRequest { id, event_limit })
                .await
                .map(drop)
        },
    );
}
