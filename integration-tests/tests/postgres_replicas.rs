//! Two registry processes on one PostgreSQL database serve one view: a watcher on one sees a
//! route change and an instance registration made through the other (the time it took is
//! printed; the bound is only for liveness). And a fleet given
//! both replicas' URLs outlives either: instances keep their leases and callers their endpoint
//! sets through the other.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    SuiteProcess,
    postgres::{TestDatabase, admin_url},
    rollout::{Load, tally},
};
use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient};
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tokio_stream::StreamExt;

/// A liveness bound: the change reaches the other replica at all (a lost NOTIFY never does).
/// How fast it does is printed, and timed by the registry benchmark's fan-out.
const PROPAGATION_BOUND: Duration = Duration::from_secs(10);

async fn next_set(watch: &mut tonic::Streaming<pb::EndpointSet>) -> (pb::EndpointSet, Duration) {
    let started = Instant::now();
    let set = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a set arrives within 5 s")
        .expect("the stream is open")
        .expect("no stream error");
    (set, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_one_replica_sees_changes_made_through_the_other() {
    let Some(admin) = admin_url() else { return };
    let db = TestDatabase::create(&admin).await.unwrap();
    let a = SuiteProcess::registry(&["--database-url", &db.url]).unwrap();
    let b = SuiteProcess::registry(&["--database-url", &db.url]).unwrap();
    let mut through_a = RegistryClient::connect(a.endpoint()).await.unwrap();
    let mut through_b = RegistryClient::connect(b.endpoint()).await.unwrap();

    through_a
        .create_service(pb::CreateServiceRequest {
            name: "greeter".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for (fields, version) in [(0, "1.0.0"), (1, "1.1.0")] {
        through_a
            .publish_version(pb::PublishVersionRequest {
                service: "greeter".into(),
                version: version.into(),
                file_descriptor_set: greeter_schema_bytes(fields),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // One consistent view: B reads what A wrote.
    let resolved = through_b
        .resolve(pb::ResolveRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: "^1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.selected.unwrap().version, "1.1.0");

    let mut watch = through_b
        .watch_endpoints(pb::WatchEndpointsRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let (initial, _) = next_set(&mut watch).await;
    assert!(initial.endpoints.is_empty());

    let started = Instant::now();
    let registered = through_a
        .register_instance(pb::RegisterInstanceRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            address: "127.0.0.1:7001".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let (set, _) = next_set(&mut watch).await;
    let instance_latency = started.elapsed();
    assert_eq!(set.endpoints[0].instance_id, registered.id);

    through_a
        .register_instance(pb::RegisterInstanceRequest {
            service: "greeter".into(),
            version: "1.1.0".into(),
            address: "127.0.0.1:7002".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    next_set(&mut watch).await;

    let started = Instant::now();
    through_a
        .set_route(pb::SetRouteRequest {
            service: "greeter".into(),
            weights: vec![
                pb::VersionWeight {
                    version: "1.0.0".into(),
                    weight: 75,
                },
                pb::VersionWeight {
                    version: "1.1.0".into(),
                    weight: 25,
                },
            ],
        })
        .await
        .unwrap();
    let (set, _) = next_set(&mut watch).await;
    let route_latency = started.elapsed();
    assert!(set.route_applied);
    let weights: Vec<_> = set
        .endpoints
        .iter()
        .map(|e| (e.version.as_str(), e.version_weight))
        .collect();
    assert_eq!(weights, [("1.1.0", 25), ("1.0.0", 75)]);

    eprintln!(
        "propagation across replicas: instance {instance_latency:?}, route {route_latency:?}"
    );
    assert!(
        instance_latency < PROPAGATION_BOUND,
        "instance took {instance_latency:?}"
    );
    assert!(
        route_latency < PROPAGATION_BOUND,
        "route took {route_latency:?}"
    );

    drop((a, b));
    db.drop_database().await.unwrap();
}

/// Live greeter instances as registry `client` lists them.
async fn live_greeters(
    client: &mut RegistryClient<tonic::transport::Channel>,
) -> Vec<pb::Instance> {
    client
        .list_instances(pb::ListInstancesRequest {
            service: "greeter".into(),
            version: String::new(),
        })
        .await
        .expect("ListInstances answers")
        .into_inner()
        .instances
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_given_both_replicas_outlives_the_death_of_the_one_it_used() {
    let Some(admin) = admin_url() else { return };
    let db = TestDatabase::create(&admin).await.unwrap();
    let mut a = SuiteProcess::registry(&["--database-url", &db.url]).unwrap();
    let b = SuiteProcess::registry(&["--database-url", &db.url]).unwrap();
    // A first, so every process starts out talking to the replica about to die.
    let both = format!("{},{}", a.endpoint(), b.endpoint());
    let lease = "1500";
    let greeter = |version: &str| {
        SuiteProcess::start(
            "demo-greeter",
            &[
                "--registry",
                &both,
                "--release",
                "1.0.0",
                "--version",
                version,
                "--lease-ttl-ms",
                lease,
            ],
        )
        .unwrap()
    };
    let _first = greeter("1.0.0");
    let frontend = SuiteProcess::start(
        "demo-frontend",
        &[
            "--registry",
            &both,
            "--version",
            "1.0.0",
            "--greeter-requirement",
            "^1.0",
            "--lease-ttl-ms",
            lease,
        ],
    )
    .unwrap();
    let mut through_b = RegistryClient::connect(b.endpoint()).await.unwrap();
    let load = Load::start(
        FrontendClient::connect(frontend.endpoint()).await.unwrap(),
        2,
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    a.kill().unwrap();
    // Three lease lengths: a lease renewed only through A would have lapsed twice over.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let live = live_greeters(&mut through_b).await;
    assert_eq!(
        live.len(),
        1,
        "the greeter kept its lease through B: {live:?}"
    );

    // A greeter started after A died registers through B, and the frontend's endpoint watch
    // (moved to B) brings it calls.
    let _second = greeter("1.0.1");
    let mut frontend_client = FrontendClient::connect(frontend.endpoint()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen_new = false;
    while !seen_new && Instant::now() < deadline {
        let reply = frontend_client
            .greet(GreetRequest {
                name: "after the failover".into(),
                locale: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        seen_new = reply.greeter_version == "1.0.1";
    }
    assert!(
        seen_new,
        "the frontend never called the greeter registered through B"
    );
    let answers = load.stop().await;
    let counts = tally(&answers);
    eprintln!("calls through the frontend while replica A died: {counts:?}");
    let failed: usize = answers.iter().filter(|a| a.outcome.is_err()).count();
    assert_eq!(failed, 0, "{counts:?}");
    assert!(answers.len() > 100, "the load ran: {counts:?}");

    drop((a, b, frontend));
    db.drop_database().await.unwrap();
}
