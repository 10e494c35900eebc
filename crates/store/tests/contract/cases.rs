//! The cases of the store contract. Each takes a fresh, empty store.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use flotilla_model::{
    Artifact, CompatibilityMode, CompatibilityPolicy, Dependency, LifecycleState, NewInstance,
    NewService, NewVersion, RuleCategory, ServiceName, ServingStatus, Timestamp, Version,
    VersionRecord, VersionReq, VersionWeight, fixtures::greeter_schema,
};
use flotilla_store::{Change, GateRejection, GateViolation, Mutation, PublishGate, StoreError};

use crate::support::Store;

pub const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(offset_ms: i64) -> Mutation {
    Mutation {
        actor: "tester".into(),
        now: Timestamp(T0.0 + offset_ms),
    }
}

pub fn name(text: &str) -> ServiceName {
    ServiceName::parse("name", text).unwrap()
}

pub fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn new_service(text: &str) -> NewService {
    NewService {
        name: name(text),
        owner: "team-a".into(),
        description: "says hello".into(),
        policy: CompatibilityPolicy::default(),
    }
}

fn new_version(service: &str, version: &str, fields: u32) -> NewVersion {
    NewVersion {
        service: name(service),
        version: v(version),
        schema: greeter_schema(fields),
        artifact: Artifact {
            image: format!("flotilla/{service}:{version}"),
            command: vec![service.into(), "--port".into(), "0".into()],
        },
        dependencies: vec![],
        labels: BTreeMap::from([("git_sha".into(), "4f1c2e9".into())]),
    }
}

pub fn new_instance(service: &str, version: &str, port: u16, ttl_ms: u32) -> NewInstance {
    NewInstance {
        service: name(service),
        version: v(version),
        address: format!("127.0.0.1:{port}"),
        metadata: BTreeMap::from([("zone".into(), "a".into())]),
        status: ServingStatus::Serving,
        lease_ttl_ms: ttl_ms,
    }
}

/// Accepts everything.
struct Open;
impl PublishGate for Open {
    fn check(
        &self,
        _: &flotilla_model::Service,
        _: &[VersionRecord],
        _: &NewVersion,
    ) -> Result<(), GateRejection> {
        Ok(())
    }
}

/// Refuses every version whose major is 9, and records what it was shown.
#[derive(Default)]
struct RefuseMajorNine {
    shown: std::sync::Mutex<Vec<Vec<String>>>,
}
impl PublishGate for RefuseMajorNine {
    fn check(
        &self,
        _: &flotilla_model::Service,
        earlier: &[VersionRecord],
        candidate: &NewVersion,
    ) -> Result<(), GateRejection> {
        self.shown
            .lock()
            .unwrap()
            .push(earlier.iter().map(|v| v.version.to_string()).collect());
        if candidate.version.major == 9 {
            return Err(GateRejection {
                summary: "major 9 is refused".into(),
                violations: vec![GateViolation {
                    rule: "NO_NINES".into(),
                    subject: candidate.version.to_string(),
                    description: "nine".into(),
                }],
            });
        }
        Ok(())
    }
}

fn open() -> Arc<dyn PublishGate> {
    Arc::new(Open)
}

pub async fn seed_greeter(store: &dyn flotilla_store::RegistryStore) {
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    store
        .publish_version(new_version("greeter", "1.0.0", 0), open(), &at(1))
        .await
        .unwrap();
}

pub async fn assert_greeter_seeded(store: &dyn flotilla_store::RegistryStore) {
    let version = store
        .get_version(&name("greeter"), &v("1.0.0"))
        .await
        .unwrap();
    assert_eq!(version.schema, greeter_schema(0));
    assert_eq!(version.state, LifecycleState::Released);
}

pub async fn services_are_created_once_and_listed_in_pages(store: &Store) {
    let created = store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    assert_eq!(created.name.as_str(), "greeter");
    assert_eq!(created.owner, "team-a");
    assert_eq!(created.created, T0);
    assert_eq!(store.get_service(&name("greeter")).await.unwrap(), created);

    let again = store.create_service(new_service("greeter"), &at(5)).await;
    assert!(
        matches!(again, Err(StoreError::ServiceExists(_))),
        "{again:?}"
    );
    assert!(matches!(
        store.get_service(&name("nobody")).await,
        Err(StoreError::ServiceNotFound(_))
    ));

    for n in ["delta", "alpha", "charlie", "bravo"] {
        store.create_service(new_service(n), &at(1)).await.unwrap();
    }
    let first = store.list_services(None, 2).await.unwrap();
    let names: Vec<_> = first.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["alpha", "bravo"]);
    let rest = store.list_services(Some(&first[1].name), 10).await.unwrap();
    let names: Vec<_> = rest.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["charlie", "delta", "greeter"]);
}

pub async fn policies_change_and_are_audited(store: &Store) {
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    let policy = CompatibilityPolicy {
        mode: CompatibilityMode::FullTransitive,
        category: RuleCategory::Wire,
    };
    let updated = store
        .set_policy(&name("greeter"), policy, &at(1))
        .await
        .unwrap();
    assert_eq!(updated.policy, policy);
    assert_eq!(
        store.get_service(&name("greeter")).await.unwrap().policy,
        policy
    );
    let audit = store
        .list_audit(Some(&name("greeter")), None, 10)
        .await
        .unwrap();
    assert_eq!(audit[0].action, "service.set_policy");
    assert!(
        audit[0].detail_json.contains("FULL_TRANSITIVE"),
        "{}",
        audit[0].detail_json
    );
    assert!(matches!(
        store.set_policy(&name("nobody"), policy, &at(2)).await,
        Err(StoreError::ServiceNotFound(_))
    ));
}

pub async fn publishing_is_immutable_and_idempotent(store: &Store) {
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    let first = store
        .publish_version(new_version("greeter", "1.0.0", 0), open(), &at(1))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.version.state, LifecycleState::Released);
    assert_eq!(first.version.history.len(), 1);
    assert_eq!(first.version.history[0].state, LifecycleState::Released);
    assert_eq!(first.version.history[0].actor, "tester");
    assert_eq!(first.version.schema, greeter_schema(0));
    assert_eq!(first.version.labels["git_sha"], "4f1c2e9");

    let again = store
        .publish_version(new_version("greeter", "1.0.0", 0), open(), &at(2))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.version, first.version, "the first publication stands");

    let mut different = new_version("greeter", "1.0.0", 1);
    different.artifact.image = "other:1".into();
    match store.publish_version(different, open(), &at(3)).await {
        Err(StoreError::VersionConflict { differences, .. }) => {
            assert_eq!(differences, "file_descriptor_set, artifact");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let build_only = new_version("greeter", "1.0.0+build.7", 0);
    assert!(matches!(
        store.publish_version(build_only, open(), &at(4)).await,
        Err(StoreError::VersionConflict { .. })
    ));
    let publishes = store
        .list_audit(Some(&name("greeter")), None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "version.publish")
        .count();
    assert_eq!(
        publishes, 1,
        "idempotent and refused publishes are not audited"
    );
}

pub async fn publish_references_and_gate_are_checked_before_anything_is_written(store: &Store) {
    assert!(matches!(
        store
            .publish_version(new_version("greeter", "1.0.0", 0), open(), &at(0))
            .await,
        Err(StoreError::ServiceNotFound(_))
    ));
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    store
        .create_service(new_service("frontend"), &at(0))
        .await
        .unwrap();

    let mut dependent = new_version("frontend", "1.0.0", 0);
    dependent.dependencies = vec![
        Dependency {
            service: name("greeter"),
            requirement: VersionReq::parse("^1.1").unwrap(),
        },
        Dependency {
            service: name("ghost"),
            requirement: VersionReq::STAR,
        },
    ];
    match store
        .publish_version(dependent.clone(), open(), &at(1))
        .await
    {
        Err(StoreError::Precondition { field, message }) => {
            assert_eq!(field, "dependencies[1].service");
            assert!(message.contains("ghost"), "{message}");
        }
        other => panic!("expected a precondition failure, got {other:?}"),
    }
    dependent.dependencies.pop();
    let published = store
        .publish_version(dependent, open(), &at(2))
        .await
        .unwrap();
    assert_eq!(
        published.version.dependencies[0].requirement.to_string(),
        "^1.1"
    );

    let gate = Arc::new(RefuseMajorNine::default());
    store
        .publish_version(new_version("greeter", "1.0.0", 0), gate.clone(), &at(3))
        .await
        .unwrap();
    store
        .publish_version(new_version("greeter", "1.1.0", 1), gate.clone(), &at(4))
        .await
        .unwrap();
    match store
        .publish_version(new_version("greeter", "9.0.0", 2), gate.clone(), &at(5))
        .await
    {
        Err(StoreError::Rejected(rejection)) => {
            assert_eq!(rejection.violations[0].rule, "NO_NINES")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(
        *gate.shown.lock().unwrap(),
        [
            vec![],
            vec!["1.0.0".to_string()],
            vec!["1.1.0".to_string(), "1.0.0".to_string()]
        ],
        "the gate sees every earlier version, highest first"
    );
    let versions = store.list_versions(&name("greeter")).await.unwrap();
    assert_eq!(versions.len(), 2, "the refused version was not written");
}

pub async fn concurrent_publishes_of_one_version_have_one_winner(store: &Store) {
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .publish_version(new_version("greeter", "1.0.0", i % 2), open(), &at(1))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let mut winners = Vec::new();
    for result in results {
        match result.unwrap() {
            Ok(p) => winners.push(p.version.schema.fingerprint().to_owned()),
            Err(StoreError::VersionConflict { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    winners.dedup();
    assert_eq!(
        winners.len(),
        1,
        "every success returns the one stored content"
    );
    let stored = store
        .get_version(&name("greeter"), &v("1.0.0"))
        .await
        .unwrap();
    assert_eq!(stored.schema.fingerprint(), winners[0]);
    assert_eq!(stored.history.len(), 1);
}

pub async fn lifecycle_follows_the_state_machine(store: &Store) {
    seed_greeter(&**store).await;
    let (svc, ver) = (name("greeter"), v("1.0.0"));
    let illegal = store
        .transition_version(&svc, &ver, LifecycleState::Retired, "too soon", &at(2))
        .await;
    assert!(
        matches!(illegal, Err(StoreError::IllegalTransition { .. })),
        "{illegal:?}"
    );

    let deprecated = store
        .transition_version(&svc, &ver, LifecycleState::Deprecated, "use 2.x", &at(3))
        .await
        .unwrap();
    assert_eq!(deprecated.state, LifecycleState::Deprecated);
    let again = store
        .transition_version(&svc, &ver, LifecycleState::Deprecated, "use 2.x", &at(4))
        .await
        .unwrap();
    assert_eq!(
        again.history.len(),
        2,
        "a move to the current state is a no-op"
    );
    store
        .transition_version(&svc, &ver, LifecycleState::Retired, "unused", &at(5))
        .await
        .unwrap();
    let yanked = store
        .transition_version(&svc, &ver, LifecycleState::Yanked, "CVE-1", &at(6))
        .await
        .unwrap();
    let history: Vec<_> = yanked
        .history
        .iter()
        .map(|e| (e.state, e.reason.as_str(), e.at))
        .collect();
    assert_eq!(
        history,
        [
            (LifecycleState::Released, "published", Timestamp(T0.0 + 1)),
            (LifecycleState::Deprecated, "use 2.x", Timestamp(T0.0 + 3)),
            (LifecycleState::Retired, "unused", Timestamp(T0.0 + 5)),
            (LifecycleState::Yanked, "CVE-1", Timestamp(T0.0 + 6)),
        ]
    );
    assert!(matches!(
        store
            .transition_version(&svc, &ver, LifecycleState::Deprecated, "undo", &at(7))
            .await,
        Err(StoreError::IllegalTransition { .. })
    ));
    assert!(matches!(
        store
            .transition_version(&svc, &v("3.0.0"), LifecycleState::Yanked, "x", &at(8))
            .await,
        Err(StoreError::VersionNotFound { .. })
    ));
}

pub async fn versions_are_listed_and_resolved_highest_first(store: &Store) {
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    for (i, version) in ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "2.0.0"]
        .iter()
        .enumerate()
    {
        store
            .publish_version(new_version("greeter", version, i as u32), open(), &at(1))
            .await
            .unwrap();
    }
    let listed: Vec<_> = store
        .list_versions(&name("greeter"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.version.to_string())
        .collect();
    assert_eq!(listed, ["2.0.0", "2.0.0-rc.1", "1.10.0", "1.2.0", "1.0.0"]);
    let (resolution, record) = store
        .resolve(&name("greeter"), &VersionReq::parse("^1").unwrap())
        .await
        .unwrap();
    assert_eq!(record.unwrap().version, v("1.10.0"));
    let rejected: Vec<_> = resolution
        .rejected
        .iter()
        .map(|r| r.version.to_string())
        .collect();
    assert_eq!(rejected, ["2.0.0", "2.0.0-rc.1", "1.2.0", "1.0.0"]);
    store
        .transition_version(
            &name("greeter"),
            &v("1.10.0"),
            LifecycleState::Yanked,
            "bad",
            &at(2),
        )
        .await
        .unwrap();
    let (_, record) = store
        .resolve(&name("greeter"), &VersionReq::parse("^1").unwrap())
        .await
        .unwrap();
    let record = record.unwrap();
    assert_eq!(
        (record.version, record.state),
        (v("1.2.0"), LifecycleState::Released)
    );
    assert!(matches!(
        store.resolve(&name("nobody"), &VersionReq::STAR).await,
        Err(StoreError::ServiceNotFound(_))
    ));
    assert!(matches!(
        store.list_versions(&name("nobody")).await,
        Err(StoreError::ServiceNotFound(_))
    ));
}

pub async fn instances_need_a_resolvable_version(store: &Store) {
    seed_greeter(&**store).await;
    match store
        .register_instance(new_instance("greeter", "1.5.0", 7001, 10_000), &at(2))
        .await
    {
        Err(StoreError::Precondition { field, .. }) => assert_eq!(field, "version"),
        other => panic!("expected a precondition failure, got {other:?}"),
    }
    let instance = store
        .register_instance(new_instance("greeter", "1.0.0", 7001, 10_000), &at(2))
        .await
        .unwrap();
    assert_eq!(instance.expires, Timestamp(T0.0 + 2 + 10_000));
    assert_eq!(instance.metadata["zone"], "a");
    assert_eq!(instance.id.as_str().len(), 36);
    let live = store
        .list_instances(&name("greeter"), None, Timestamp(T0.0 + 3))
        .await
        .unwrap();
    assert_eq!(live, [instance]);

    store
        .transition_version(
            &name("greeter"),
            &v("1.0.0"),
            LifecycleState::Yanked,
            "bad",
            &at(3),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .register_instance(new_instance("greeter", "1.0.0", 7002, 10_000), &at(4))
            .await,
        Err(StoreError::Precondition { .. })
    ));
}

pub async fn leases_are_renewed_and_expire(store: &Store) {
    seed_greeter(&**store).await;
    let instance = store
        .register_instance(new_instance("greeter", "1.0.0", 7001, 1_000), &at(0))
        .await
        .unwrap();
    let renewed = store
        .heartbeat(
            &instance.id,
            Some(ServingStatus::NotServing),
            Timestamp(T0.0 + 900),
        )
        .await
        .unwrap();
    assert_eq!(renewed.expires, Timestamp(T0.0 + 1_900));
    assert_eq!(renewed.status, ServingStatus::NotServing);
    let kept = store
        .heartbeat(&instance.id, None, Timestamp(T0.0 + 1_000))
        .await
        .unwrap();
    assert_eq!(
        kept.status,
        ServingStatus::NotServing,
        "no status keeps the last one"
    );

    let mut changes = store.subscribe();
    assert!(
        store
            .expire_instances(Timestamp(T0.0 + 1_999))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_instances(&name("greeter"), None, Timestamp(T0.0 + 2_000))
            .await
            .unwrap()
            .is_empty(),
        "an expired lease is not live even before the reaper runs"
    );
    let expired = store
        .expire_instances(Timestamp(T0.0 + 2_000))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        next_change(&mut changes).await,
        Change::Service(name("greeter"))
    );
    assert!(
        store
            .expire_instances(Timestamp(T0.0 + 2_001))
            .await
            .unwrap()
            .is_empty()
    );
    match store
        .heartbeat(&instance.id, None, Timestamp(T0.0 + 2_500))
        .await
    {
        Err(StoreError::LeaseExpired { expired, .. }) => {
            assert_eq!(expired, Timestamp(T0.0 + 2_000))
        }
        other => panic!("expected an expired lease, got {other:?}"),
    }
    let audit = store
        .list_audit(Some(&name("greeter")), None, 1)
        .await
        .unwrap();
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("instance.expire", "registry")
    );

    let much_later =
        Timestamp(T0.0 + 2_000 + flotilla_store::EXPIRED_INSTANCE_RETENTION_MS as i64 + 1);
    store.expire_instances(much_later).await.unwrap();
    assert!(
        matches!(
            store.heartbeat(&instance.id, None, much_later).await,
            Err(StoreError::InstanceNotFound(_))
        ),
        "expired instances are forgotten after the retention"
    );
}

pub async fn deregistering_removes_an_instance(store: &Store) {
    seed_greeter(&**store).await;
    let instance = store
        .register_instance(new_instance("greeter", "1.0.0", 7001, 10_000), &at(0))
        .await
        .unwrap();
    store
        .deregister_instance(&instance.id, &at(1))
        .await
        .unwrap();
    assert!(
        store
            .list_instances(&name("greeter"), None, Timestamp(T0.0 + 2))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.deregister_instance(&instance.id, &at(2)).await,
        Err(StoreError::InstanceNotFound(_))
    ));
    assert!(matches!(
        store
            .heartbeat(&instance.id, None, Timestamp(T0.0 + 3))
            .await,
        Err(StoreError::InstanceNotFound(_))
    ));
}

pub async fn routes_name_published_versions(store: &Store) {
    seed_greeter(&**store).await;
    let svc = name("greeter");
    assert_eq!(store.get_route(&svc).await.unwrap(), None);
    store
        .publish_version(new_version("greeter", "1.1.0", 1), open(), &at(1))
        .await
        .unwrap();
    let weights = vec![
        VersionWeight {
            version: v("1.0.0"),
            weight: 90,
        },
        VersionWeight {
            version: v("1.1.0"),
            weight: 10,
        },
    ];
    let route = store
        .set_route(&svc, weights.clone(), &at(2))
        .await
        .unwrap();
    assert_eq!(route.weights, weights);
    assert_eq!(store.get_route(&svc).await.unwrap(), Some(route));

    match store
        .set_route(
            &svc,
            vec![VersionWeight {
                version: v("3.0.0"),
                weight: 1,
            }],
            &at(3),
        )
        .await
    {
        Err(StoreError::Precondition { field, .. }) => assert_eq!(field, "weights[0].version"),
        other => panic!("expected a precondition failure, got {other:?}"),
    }
    store
        .transition_version(&svc, &v("1.1.0"), LifecycleState::Yanked, "bad", &at(4))
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_route(
                &svc,
                vec![VersionWeight {
                    version: v("1.1.0"),
                    weight: 5
                }],
                &at(5)
            )
            .await,
        Err(StoreError::Precondition { .. })
    ));
    let zeroed = store
        .set_route(
            &svc,
            vec![
                VersionWeight {
                    version: v("1.0.0"),
                    weight: 100,
                },
                VersionWeight {
                    version: v("1.1.0"),
                    weight: 0,
                },
            ],
            &at(6),
        )
        .await
        .unwrap();
    assert_eq!(
        zeroed.weights[1].weight, 0,
        "a yanked version may be given weight 0"
    );
}

pub async fn endpoint_snapshots_hold_versions_instances_and_route(store: &Store) {
    seed_greeter(&**store).await;
    let svc = name("greeter");
    let a = store
        .register_instance(new_instance("greeter", "1.0.0", 7001, 1_000), &at(0))
        .await
        .unwrap();
    store
        .register_instance(new_instance("greeter", "1.0.0", 7002, 5_000), &at(0))
        .await
        .unwrap();
    store
        .set_route(
            &svc,
            vec![VersionWeight {
                version: v("1.0.0"),
                weight: 100,
            }],
            &at(1),
        )
        .await
        .unwrap();
    let snapshot = store
        .endpoint_snapshot(&svc, Timestamp(T0.0 + 1_500))
        .await
        .unwrap();
    assert_eq!(snapshot.versions, [(v("1.0.0"), LifecycleState::Released)]);
    let addresses: Vec<_> = snapshot
        .instances
        .iter()
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(addresses, ["127.0.0.1:7002"], "{} has expired", a.address);
    assert_eq!(snapshot.route.unwrap().weights.len(), 1);
    assert!(matches!(
        store.endpoint_snapshot(&name("nobody"), T0).await,
        Err(StoreError::ServiceNotFound(_))
    ));
}

async fn next_change(changes: &mut tokio::sync::broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a change is announced within 5 s")
        .expect("the change channel is open")
}

pub async fn committed_changes_are_announced_and_failed_ones_are_not(store: &Store) {
    let mut changes = store.subscribe();
    let svc = name("greeter");
    store
        .create_service(new_service("greeter"), &at(0))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Service(svc.clone())
    );
    store
        .publish_version(new_version("greeter", "1.0.0", 0), open(), &at(1))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Service(svc.clone())
    );

    // Failures announce nothing: the next announcement is the route set after them.
    let _ = store
        .create_service(new_service("greeter"), &at(2))
        .await
        .unwrap_err();
    let _ = store
        .transition_version(&svc, &v("1.0.0"), LifecycleState::Retired, "x", &at(3))
        .await
        .unwrap_err();
    let instance = store
        .register_instance(new_instance("greeter", "1.0.0", 7001, 10_000), &at(4))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Service(svc.clone())
    );
    store
        .heartbeat(&instance.id, None, Timestamp(T0.0 + 5))
        .await
        .unwrap();
    store
        .set_route(
            &svc,
            vec![VersionWeight {
                version: v("1.0.0"),
                weight: 1,
            }],
            &at(6),
        )
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Service(svc.clone()),
        "a heartbeat that changes nothing visible is not announced"
    );
    assert!(changes.try_recv().is_err(), "nothing else was announced");
    store
        .heartbeat(
            &instance.id,
            Some(ServingStatus::NotServing),
            Timestamp(T0.0 + 7),
        )
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Service(svc.clone())
    );
}

pub async fn audit_log_pages_newest_first(store: &Store) {
    seed_greeter(&**store).await;
    store
        .create_service(new_service("other"), &at(2))
        .await
        .unwrap();
    store
        .transition_version(
            &name("greeter"),
            &v("1.0.0"),
            LifecycleState::Deprecated,
            "old",
            &at(3),
        )
        .await
        .unwrap();
    let all = store.list_audit(None, None, 100).await.unwrap();
    let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "version.transition",
            "service.create",
            "version.publish",
            "service.create"
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all[0].version, "1.0.0");
    assert_eq!(all[0].at, Timestamp(T0.0 + 3));
    let page = store
        .list_audit(Some(&name("greeter")), Some(all[0].id), 1)
        .await
        .unwrap();
    assert_eq!(page[0].action, "version.publish");
    let serde_ok: serde_json::Value = serde_json::from_str(&all[0].detail_json).unwrap();
    assert_eq!(serde_ok["reason"], "old");
}

/// Registry processes' clocks differ: once one has expired a lease, a heartbeat stamped earlier by
/// another cannot renew it (the instance would stay unlisted while its heartbeats succeed).
pub async fn a_reaped_lease_is_not_renewed_by_a_slower_clock(store: &Store) {
    seed_greeter(&**store).await;
    let instance = store
        .register_instance(new_instance("greeter", "1.0.0", 7001, 1_000), &at(0))
        .await
        .unwrap();
    let reaped = store
        .expire_instances(Timestamp(T0.0 + 1_500))
        .await
        .unwrap();
    assert_eq!(reaped.len(), 1);
    let lagging = store
        .heartbeat(&instance.id, None, Timestamp(T0.0 + 900))
        .await;
    assert!(
        matches!(lagging, Err(StoreError::LeaseExpired { .. })),
        "{lagging:?}"
    );
}

pub async fn the_census_counts_versions_by_state_and_live_instances_by_version(store: &Store) {
    assert_eq!(store.census(T0).await.unwrap(), Default::default());
    seed_greeter(&**store).await;
    for version in ["1.10.0", "1.2.0"] {
        store
            .publish_version(new_version("greeter", version, 0), open(), &at(2))
            .await
            .unwrap();
    }
    store
        .transition_version(
            &name("greeter"),
            &v("1.0.0"),
            LifecycleState::Deprecated,
            "superseded",
            &at(3),
        )
        .await
        .unwrap();
    store
        .create_service(new_service("ledger"), &at(4))
        .await
        .unwrap();
    store
        .publish_version(new_version("ledger", "0.1.0", 0), open(), &at(5))
        .await
        .unwrap();
    for (version, port, ttl_ms) in [("1.10.0", 7001, 1_000), ("1.10.0", 7002, 5_000)] {
        store
            .register_instance(new_instance("greeter", version, port, ttl_ms), &at(6))
            .await
            .unwrap();
    }
    store
        .register_instance(new_instance("greeter", "1.2.0", 7003, 5_000), &at(6))
        .await
        .unwrap();

    let census = store.census(Timestamp(T0.0 + 500)).await.unwrap();
    assert_eq!(
        census.versions,
        [
            (name("greeter"), LifecycleState::Deprecated, 1),
            (name("greeter"), LifecycleState::Released, 2),
            (name("ledger"), LifecycleState::Released, 1),
        ]
    );
    assert_eq!(
        census.instances,
        [
            (name("greeter"), v("1.2.0"), 1),
            (name("greeter"), v("1.10.0"), 2)
        ],
        "versions in semver order"
    );
    // The 1 s lease has run out at 1.5 s, though no reaper marked it.
    let later = store.census(Timestamp(T0.0 + 1_500)).await.unwrap();
    assert_eq!(
        later.instances,
        [
            (name("greeter"), v("1.2.0"), 1),
            (name("greeter"), v("1.10.0"), 1)
        ]
    );
}
