//! The registry's gRPC behaviour, against an in-process server on an ephemeral port.

use std::{sync::Arc, time::Duration};

use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use flotilla_store::SqliteStore;
use flotilla_telemetry::{metrics::HANDLED_TOTAL, scrape::fetch};
use flotilla_version_registry::{Config, serve};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

struct Registry {
    client: RegistryClient<Channel>,
    address: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Registry {
    async fn start() -> Self {
        let config = Config::for_tests();
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve(&config, store, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let client = RegistryClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        Self {
            client,
            address,
            stop: Some(stop),
            server,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), self.server)
            .await
            .expect("the server drains within 5 s")
            .unwrap();
    }

    async fn seed(&mut self) {
        self.client
            .create_service(pb::CreateServiceRequest {
                name: "greeter".into(),
                owner: "team-a".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for (i, version) in ["1.0.0", "1.1.0", "2.0.0"].iter().enumerate() {
            self.client
                .publish_version(publish(version, i as u32))
                .await
                .unwrap();
        }
    }

    async fn register(&mut self, version: &str, port: u16, ttl_ms: u32) -> pb::Instance {
        self.client
            .register_instance(pb::RegisterInstanceRequest {
                service: "greeter".into(),
                version: version.into(),
                address: format!("127.0.0.1:{port}"),
                lease_ttl_ms: ttl_ms,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }
}

fn publish(version: &str, fields: u32) -> pb::PublishVersionRequest {
    pb::PublishVersionRequest {
        service: "greeter".into(),
        version: version.into(),
        file_descriptor_set: greeter_schema_bytes(fields),
        artifact: Some(pb::Artifact {
            image: format!("flotilla/greeter:{version}"),
            command: vec![],
        }),
        ..Default::default()
    }
}

fn bad_field(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .bad_request()
        .expect("bad request details")
        .field_violations[0]
        .field
        .clone()
}

#[tokio::test]
async fn bad_inputs_get_the_right_code_and_name_the_field() {
    let mut r = Registry::start().await;
    r.seed().await;
    let c = &mut r.client;

    let s = c
        .create_service(pb::CreateServiceRequest {
            name: "Bad_Name".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "name")
    );

    let s = c.publish_version(publish("1.0", 0)).await.unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "version")
    );

    let mut garbage = publish("3.0.0", 0);
    garbage.file_descriptor_set = b"\x0a\x05hello-not-a-descriptor".to_vec();
    let s = c.publish_version(garbage).await.unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "file_descriptor_set")
    );

    let s = c
        .resolve(pb::ResolveRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: "^^1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "requirement")
    );

    let s = c
        .get_version(pb::GetVersionRequest {
            service: "nobody".into(),
            version: "1.0.0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert!(s.message().contains("nobody"), "{}", s.message());

    let s = c.publish_version(publish("1.0.0", 7)).await.unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists);
    assert!(
        s.message().contains("file_descriptor_set"),
        "{}",
        s.message()
    );

    let s = c
        .transition_version(pb::TransitionVersionRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            state: pb::LifecycleState::Retired as i32,
            reason: "skip deprecation".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition);
    let details = s.get_error_details();
    assert_eq!(
        details.precondition_failure().unwrap().violations[0].subject,
        "greeter@1.0.0"
    );

    let s = c
        .heartbeat(pb::HeartbeatRequest {
            instance_id: "67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
            status: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(
        s.get_error_details().error_info().unwrap().reason,
        "INSTANCE_NOT_FOUND"
    );

    let s = c
        .heartbeat(pb::HeartbeatRequest {
            instance_id: "not-a-uuid".into(),
            status: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "instance_id")
    );

    let mut actor = Request::new(pb::CreateServiceRequest {
        name: "x".into(),
        ..Default::default()
    });
    actor
        .metadata_mut()
        .insert("x-flotilla-actor", "".parse().unwrap());
    let s = c.create_service(actor).await.unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "x-flotilla-actor")
    );
    r.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_before_they_are_read() {
    let r = Registry::start().await;
    let mut huge = publish("1.0.0", 0);
    huge.file_descriptor_set =
        vec![0; flotilla_version_registry::config::DEFAULT_MAX_MESSAGE_BYTES + 1];
    let s = r
        .client
        .clone()
        .max_encoding_message_size(usize::MAX)
        .publish_version(huge)
        .await
        .unwrap_err();
    assert!(
        matches!(s.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{:?}: {}",
        s.code(),
        s.message()
    );
    r.stop().await;
}

#[tokio::test]
async fn resolve_picks_the_highest_eligible_version_and_explains_the_rest() {
    let mut r = Registry::start().await;
    r.seed().await;
    let c = &mut r.client;
    c.transition_version(pb::TransitionVersionRequest {
        service: "greeter".into(),
        version: "1.1.0".into(),
        state: pb::LifecycleState::Yanked as i32,
        reason: "faulty".into(),
    })
    .await
    .unwrap();
    let resolved = c
        .resolve(pb::ResolveRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: "^1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.selected.unwrap().version, "1.0.0");
    let reasons: Vec<_> = resolved
        .rejected
        .iter()
        .map(|r| (r.version.as_str(), r.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("2.0.0", pb::RejectionReason::RequirementMismatch as i32),
            ("1.1.0", pb::RejectionReason::Yanked as i32),
        ]
    );
    let s = c
        .resolve(pb::ResolveRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: "^3".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(
        s.get_error_details()
            .precondition_failure()
            .unwrap()
            .violations
            .len(),
        3
    );
    r.stop().await;
}

async fn next_set(stream: &mut tonic::Streaming<pb::EndpointSet>) -> pb::EndpointSet {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an endpoint set arrives within 5 s")
        .expect("the stream is open")
        .expect("the stream has no error")
}

fn versions_and_weights(set: &pb::EndpointSet) -> Vec<(String, u32)> {
    set.endpoints
        .iter()
        .map(|e| (e.version.clone(), e.version_weight))
        .collect()
}

#[tokio::test]
async fn watchers_are_pushed_instances_routes_expiries_and_shutdown() {
    let mut r = Registry::start().await;
    r.seed().await;
    let mut watch = r
        .client
        .watch_endpoints(pb::WatchEndpointsRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: "^1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = next_set(&mut watch).await;
    assert_eq!((first.revision, first.endpoints.len()), (1, 0));

    let a = r.register("1.0.0", 7001, 10_000).await;
    assert_eq!(
        versions_and_weights(&next_set(&mut watch).await),
        [("1.0.0".into(), 1)]
    );
    r.register("2.0.0", 7003, 10_000).await; // not accepted by ^1: no push
    let short = r.register("1.1.0", 7002, 1_000).await;
    let set = next_set(&mut watch).await;
    assert_eq!(
        set.revision, 3,
        "the 2.0.0 registration was not sent to a ^1 watcher"
    );
    assert_eq!(
        versions_and_weights(&set),
        [("1.1.0".into(), 1), ("1.0.0".into(), 1)]
    );

    r.client
        .set_route(pb::SetRouteRequest {
            service: "greeter".into(),
            weights: vec![
                pb::VersionWeight {
                    version: "1.0.0".into(),
                    weight: 90,
                },
                pb::VersionWeight {
                    version: "1.1.0".into(),
                    weight: 10,
                },
            ],
        })
        .await
        .unwrap();
    let set = next_set(&mut watch).await;
    assert!(set.route_applied);
    assert_eq!(
        versions_and_weights(&set),
        [("1.1.0".into(), 10), ("1.0.0".into(), 90)]
    );

    // The 1 s lease of 1.1.0 runs out with no heartbeat: the reaper pushes its removal.
    let set = next_set(&mut watch).await;
    assert_eq!(versions_and_weights(&set), [("1.0.0".into(), 90)]);
    let s = r
        .client
        .heartbeat(pb::HeartbeatRequest {
            instance_id: short.id.clone(),
            status: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    assert_eq!(
        s.get_error_details().error_info().unwrap().reason,
        "LEASE_EXPIRED"
    );

    r.client
        .heartbeat(pb::HeartbeatRequest {
            instance_id: a.id.clone(),
            status: pb::ServingStatus::NotServing as i32,
        })
        .await
        .unwrap();
    let set = next_set(&mut watch).await;
    assert_eq!(
        set.endpoints[0].status,
        pb::ServingStatus::NotServing as i32
    );

    let address = r.address;
    r.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    match end {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{address}"),
        None => {}
        other => panic!("expected the stream to end, got {other:?}"),
    }
}

#[tokio::test]
async fn the_audit_log_records_who_did_what() {
    let mut r = Registry::start().await;
    let mut request = Request::new(pb::CreateServiceRequest {
        name: "greeter".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-flotilla-actor", "alice@ci".parse().unwrap());
    r.client.create_service(request).await.unwrap();
    r.client.publish_version(publish("1.0.0", 0)).await.unwrap();
    let page = r
        .client
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events[0].action, "version.publish");
    assert_eq!(page.events[0].actor, "anonymous");
    let next = r
        .client
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            next.events[0].action.as_str(),
            next.events[0].actor.as_str()
        ),
        ("service.create", "alice@ci")
    );
    r.stop().await;
}

#[tokio::test]
async fn a_breaking_change_without_a_major_bump_is_refused_with_every_violation() {
    let mut r = Registry::start().await;
    r.seed().await; // 1.0.0, 1.1.0, 2.0.0 with 0, 1, 2 extra fields
    // 1.2.0 with the fields of 1.0.0 deletes extra_0 from 1.1.0 without reserving it.
    let s = r
        .client
        .publish_version(publish("1.2.0", 0))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{}", s.message());
    assert!(
        s.message().contains("needs a major version bump"),
        "{}",
        s.message()
    );
    let details = s.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "INCOMPATIBLE_VERSION");
    let violations = &details.precondition_failure().unwrap().violations;
    assert!(!violations.is_empty());
    assert!(
        violations
            .iter()
            .all(|v| v.subject.contains("against 1.1.0")),
        "{violations:?}"
    );
    assert!(
        violations
            .iter()
            .any(|v| v.r#type.starts_with("FIELD_NO_DELETE")),
        "{violations:?}"
    );
    let listed = r
        .client
        .list_versions(pb::ListVersionsRequest {
            service: "greeter".into(),
            include_schema: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.versions.len(), 3, "nothing was written");

    // The same schema as a major version is accepted.
    r.client.publish_version(publish("3.0.0", 0)).await.unwrap();
    r.stop().await;
}

#[tokio::test]
async fn check_compatibility_dry_runs_the_publish_gate() {
    let mut r = Registry::start().await;
    r.seed().await;
    let check = |version: &str, fields: u32, against: pb::Against, against_version: &str| {
        pb::CheckCompatibilityRequest {
            service: "greeter".into(),
            file_descriptor_set: greeter_schema_bytes(fields),
            version: version.into(),
            against: against as i32,
            against_version: against_version.into(),
            policy: None,
        }
    };
    let additive = r
        .client
        .check_compatibility(check("2.1.0", 3, pb::Against::Unspecified, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(additive.compatible, "{}", additive.summary);
    assert_eq!(additive.predecessor, "2.0.0");
    assert_eq!(additive.required_bump, pb::SemverBump::Minor as i32);
    assert_eq!(additive.chosen_bump, pb::SemverBump::Minor as i32);
    assert_eq!(additive.comparisons.len(), 1);
    assert!(
        additive.comparisons[0]
            .additions
            .iter()
            .any(|a| a.ends_with("extra_2"))
    );

    let breaking = r
        .client
        .check_compatibility(check("2.0.1", 0, pb::Against::Unspecified, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(!breaking.compatible);
    assert_eq!(breaking.required_bump, pb::SemverBump::Major as i32);
    assert!(!breaking.comparisons[0].violations.is_empty());

    let all = r
        .client
        .check_compatibility(check("", 3, pb::Against::All, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.comparisons.len(), 3, "against 1.0.0, 1.1.0 and 2.0.0");
    assert!(all.compatible, "{}", all.summary);

    let one = r
        .client
        .check_compatibility(check("", 0, pb::Against::Version, "1.1.0"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.comparisons[0].against_version, "1.1.0");
    assert!(!one.compatible);

    let s = r
        .client
        .check_compatibility(check("", 0, pb::Against::Version, "9.9.9"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    let mut garbage = check("", 0, pb::Against::Unspecified, "");
    garbage.file_descriptor_set = b"\xff\xff".to_vec();
    let s = r.client.check_compatibility(garbage).await.unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "file_descriptor_set")
    );
    r.stop().await;
}

#[tokio::test]
async fn a_caller_schema_keeps_callers_off_versions_that_would_misread_it() {
    let mut r = Registry::start().await;
    r.seed().await; // 1.0.0, 1.1.0, 2.0.0 with 0, 1, 2 extra fields: all wire-compatible
    let mut retyped = publish("3.0.0", 0);
    retyped.file_descriptor_set = flotilla_model::fixtures::greeter_schema_bytes_retyped();
    r.client.publish_version(retyped).await.unwrap();
    let caller = greeter_schema_bytes(1);

    let resolved = r
        .client
        .resolve(pb::ResolveRequest {
            service: "greeter".into(),
            requirement: String::new(),
            client_schema: caller.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.selected.unwrap().version, "2.0.0");
    let incompatible = &resolved.rejected[0];
    assert_eq!(
        (incompatible.version.as_str(), incompatible.reason),
        ("3.0.0", pb::RejectionReason::SchemaIncompatible as i32)
    );
    assert!(
        incompatible.detail.contains("FIELD_WIRE_COMPATIBLE_TYPE"),
        "{}",
        incompatible.detail
    );

    let mut watch = r
        .client
        .watch_endpoints(pb::WatchEndpointsRequest {
            service: "greeter".into(),
            requirement: String::new(),
            client_schema: caller,
        })
        .await
        .unwrap()
        .into_inner();
    next_set(&mut watch).await;
    r.register("3.0.0", 7030, 10_000).await;
    r.register("1.1.0", 7011, 10_000).await;
    let set = next_set(&mut watch).await;
    assert_eq!(
        versions_and_weights(&set),
        [("1.1.0".into(), 1)],
        "3.0.0 is never offered"
    );

    let s = r
        .client
        .resolve(pb::ResolveRequest {
            service: "greeter".into(),
            requirement: String::new(),
            client_schema: b"\xff".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (s.code(), bad_field(&s).as_str()),
        (Code::InvalidArgument, "client_schema")
    );
    r.stop().await;
}

#[tokio::test]
async fn metrics_are_served_on_the_grpc_port_with_the_registrys_version() {
    let mut r = Registry::start().await;
    r.seed().await;
    let missing = r
        .client
        .get_service(pb::GetServiceRequest {
            name: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A watch is a stream: it counts when it ends, here when the caller drops it.
    let mut watch = r
        .client
        .watch_endpoints(pb::WatchEndpointsRequest {
            service: "greeter".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    next_set(&mut watch).await;
    drop(watch);

    let version = env!("CARGO_PKG_VERSION");
    let handled = |samples: &[flotilla_telemetry::scrape::Sample], method: &str, code: &str| {
        samples
            .iter()
            .find(|s| {
                s.name == HANDLED_TOTAL
                    && s.label("grpc_service") == Some("flotilla.registry.v1.Registry")
                    && s.label("grpc_method") == Some(method)
                    && s.label("grpc_code") == Some(code)
                    && s.label("version") == Some(version)
            })
            .map(|s| s.value)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let samples = fetch(&r.address.to_string(), Duration::from_secs(5))
            .await
            .unwrap();
        // The server learns of the dropped watch a moment after the client let go.
        if handled(&samples, "WatchEndpoints", "CANCELLED").is_some()
            || std::time::Instant::now() > deadline
        {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(handled(&samples, "CreateService", "OK"), Some(1.0));
    assert_eq!(handled(&samples, "PublishVersion", "OK"), Some(3.0));
    assert_eq!(handled(&samples, "GetService", "NOT_FOUND"), Some(1.0));
    assert_eq!(handled(&samples, "WatchEndpoints", "CANCELLED"), Some(1.0));
    assert!(
        samples
            .iter()
            .filter(|s| s.name == HANDLED_TOTAL)
            .all(|s| s.label("version") == Some(version))
    );
    r.stop().await;
}

/// `GET path` over HTTP/1.1, as Prometheus's service discovery asks: the status and the body.
async fn http_get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("the server answers within 5 s")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
            || status != 200,
        "{head}"
    );
    (status, body.to_owned())
}

#[tokio::test]
async fn prometheus_discovers_every_live_instance_with_its_service_and_version() {
    let mut r = Registry::start().await;
    let (status, body) = http_get(r.address, "/prometheus/targets").await;
    assert_eq!((status, body.as_str()), (200, "[]"), "no instance yet");

    r.seed().await;
    let a = r.register("1.0.0", 7001, 60_000).await;
    let b = r.register("1.1.0", 7002, 60_000).await;
    let short = r.register("1.1.0", 7003, 1_000).await;
    // A second service, so discovery is not limited to one.
    r.client
        .create_service(pb::CreateServiceRequest {
            name: "clock".into(),
            owner: "team-b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut clock = publish("2.0.0", 1);
    clock.service = "clock".into();
    r.client.publish_version(clock).await.unwrap();
    let c = r
        .client
        .register_instance(pb::RegisterInstanceRequest {
            service: "clock".into(),
            version: "2.0.0".into(),
            address: "clock-1.internal:9000".into(),
            lease_ttl_ms: 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let groups = |body: &str| -> Vec<(String, String, String, String)> {
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        let mut groups: Vec<_> = value
            .as_array()
            .expect("an array of target groups")
            .iter()
            .map(|group| {
                let targets = group["targets"].as_array().unwrap();
                assert_eq!(targets.len(), 1, "one instance per group: {group}");
                let labels = &group["labels"];
                (
                    targets[0].as_str().unwrap().to_owned(),
                    labels["flotilla_service"].as_str().unwrap().to_owned(),
                    labels["flotilla_version"].as_str().unwrap().to_owned(),
                    labels["flotilla_instance"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        groups.sort();
        groups
    };
    let (status, body) = http_get(r.address, "/prometheus/targets").await;
    assert_eq!(status, 200);
    let expected = |with_short: bool| {
        let mut expected = vec![
            (
                "127.0.0.1:7001".into(),
                "greeter".into(),
                "1.0.0".into(),
                a.id.clone(),
            ),
            (
                "127.0.0.1:7002".into(),
                "greeter".into(),
                "1.1.0".into(),
                b.id.clone(),
            ),
            (
                "clock-1.internal:9000".into(),
                "clock".into(),
                "2.0.0".into(),
                c.id.clone(),
            ),
        ];
        if with_short {
            expected.push((
                "127.0.0.1:7003".into(),
                "greeter".into(),
                "1.1.0".into(),
                short.id.clone(),
            ));
        }
        expected.sort();
        expected
    };
    assert_eq!(groups(&body), expected(true));

    // A lease that ran out leaves discovery, as it leaves endpoint sets.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let (_, body) = http_get(r.address, "/prometheus/targets").await;
    assert_eq!(groups(&body), expected(false));

    // gRPC on the same port is untouched.
    r.client
        .get_service(pb::GetServiceRequest {
            name: "greeter".into(),
        })
        .await
        .unwrap();
    r.stop().await;
}

/// The value of the gauge `name` with these labels in a fresh scrape, once it equals `expected`
/// (the census is read a moment after a change); panics with the last scrape after 5 s.
async fn gauge_becomes(
    address: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    expected: Option<f64>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let samples = fetch(&address.to_string(), Duration::from_secs(5))
            .await
            .unwrap();
        let value = samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
            .map(|s| s.value);
        if value == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} is {value:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_versions_by_state_live_instances_and_watchers() {
    use flotilla_version_registry::metrics::{INSTANCES, VERSIONS, WATCHERS};
    let mut r = Registry::start().await;
    r.seed().await;
    let a = r.address;
    gauge_becomes(
        a,
        VERSIONS,
        &[("service", "greeter"), ("state", "RELEASED")],
        Some(3.0),
    )
    .await;
    r.client
        .transition_version(pb::TransitionVersionRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            state: pb::LifecycleState::Deprecated as i32,
            reason: "superseded by 1.1.0".into(),
        })
        .await
        .unwrap();
    gauge_becomes(
        a,
        VERSIONS,
        &[("service", "greeter"), ("state", "RELEASED")],
        Some(2.0),
    )
    .await;
    gauge_becomes(
        a,
        VERSIONS,
        &[("service", "greeter"), ("state", "DEPRECATED")],
        Some(1.0),
    )
    .await;

    let instance = r.register("1.1.0", 7001, 30_000).await;
    r.register("1.1.0", 7002, 30_000).await;
    r.register("2.0.0", 7003, 30_000).await;
    gauge_becomes(
        a,
        INSTANCES,
        &[("service", "greeter"), ("version", "1.1.0")],
        Some(2.0),
    )
    .await;
    gauge_becomes(
        a,
        INSTANCES,
        &[("service", "greeter"), ("version", "2.0.0")],
        Some(1.0),
    )
    .await;
    r.client
        .deregister_instance(pb::DeregisterInstanceRequest {
            instance_id: instance.id.clone(),
        })
        .await
        .unwrap();
    gauge_becomes(
        a,
        INSTANCES,
        &[("service", "greeter"), ("version", "1.1.0")],
        Some(1.0),
    )
    .await;

    let watch = |client: &mut RegistryClient<Channel>| {
        let mut client = client.clone();
        async move {
            client
                .watch_endpoints(pb::WatchEndpointsRequest {
                    service: "greeter".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut first = watch(&mut r.client).await;
    let mut second = watch(&mut r.client).await;
    next_set(&mut first).await;
    next_set(&mut second).await;
    gauge_becomes(a, WATCHERS, &[("service", "greeter")], Some(2.0)).await;
    drop(first);
    gauge_becomes(a, WATCHERS, &[("service", "greeter")], Some(1.0)).await;
    drop(second);
    gauge_becomes(a, WATCHERS, &[("service", "greeter")], Some(0.0)).await;
    r.stop().await;
}
