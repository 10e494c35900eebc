//! The store contract: every case runs against the embedded SQLite store and against PostgreSQL.
//!
//! PostgreSQL cases need `FLOTILLA_TEST_DATABASE_URL` (a role that may create databases); each
//! case gets a database of its own. Without it they are skipped with a message, except under
//! CI (`CI` set), where a missing database is a failure.

mod cases;
mod rollouts;
mod support;

use std::time::Duration;

use flotilla_model::{CompatibilityPolicy, NewService, ServiceName, Timestamp};
use flotilla_store::{
    Change, Mutation, PostgresConfig, PostgresStore, RegistryStore, RolloutChange, RolloutStore,
};

/// Declares one test per backend for each case of each module of cases.
macro_rules! contract {
    ($($module:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        mod sqlite {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = crate::support::sqlite().await;
                    crate::$module::$case(&store).await;
                }
            )*)*
        }
        mod postgres {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(db) = crate::support::postgres().await else { return };
                    crate::$module::$case(&db.store).await;
                    db.drop_database().await;
                }
            )*)*
        }
    };
}

contract!(
    cases: [
    services_are_created_once_and_listed_in_pages,
    policies_change_and_are_audited,
    publishing_is_immutable_and_idempotent,
    publish_references_and_gate_are_checked_before_anything_is_written,
    concurrent_publishes_of_one_version_have_one_winner,
    lifecycle_follows_the_state_machine,
    versions_are_listed_and_resolved_highest_first,
    instances_need_a_resolvable_version,
    leases_are_renewed_and_expire,
    deregistering_removes_an_instance,
    routes_name_published_versions,
    endpoint_snapshots_hold_versions_instances_and_route,
    committed_changes_are_announced_and_failed_ones_are_not,
    audit_log_pages_newest_first,
    a_reaped_lease_is_not_renewed_by_a_slower_clock,
    the_census_counts_versions_by_state_and_live_instances_by_version,
    ],
    rollouts: [
    a_rollout_is_stored_whole,
    a_rollout_that_would_not_read_back_is_refused,
    a_service_has_one_active_rollout,
    concurrent_creates_for_one_service_have_one_winner,
    updates_are_compare_and_set,
    concurrent_updates_of_one_generation_have_one_winner,
    fenced_updates_need_the_holders_unexpired_lease,
    events_are_numbered_per_rollout,
    success_records_the_next_revision,
    rollouts_are_listed_newest_first_in_pages,
    leases_are_taken_renewed_and_released,
    concurrent_lease_takers_have_one_winner,
    committed_rollout_changes_are_announced_and_failed_ones_are_not,
    rollouts_are_counted_by_state,
    ],
);

/// State survives closing and reopening the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.sqlite");
    {
        let store = flotilla_store::SqliteStore::open(&path).await.unwrap();
        cases::seed_greeter(&store).await;
    }
    let store = flotilla_store::SqliteStore::open(&path).await.unwrap();
    cases::assert_greeter_seeded(&store).await;
}

/// State survives closing and reopening the PostgreSQL store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_state_survives_a_reopen() {
    let Some(db) = support::postgres().await else {
        return;
    };
    cases::seed_greeter(&*db.store).await;
    let reopened = connect(&db.url).await;
    cases::assert_greeter_seeded(&reopened).await;
    drop(reopened);
    db.drop_database().await;
}

/// Two stores on one database (two registry processes) hear each other's changes, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_announces_changes_across_store_instances() {
    let Some(db) = support::postgres().await else {
        return;
    };
    let a = &db.store;
    let b = connect(&db.url).await;
    let mut heard_by_a = a.subscribe();
    let mut heard_by_b = b.subscribe();
    let greeter = ServiceName::parse("name", "greeter").unwrap();
    let m = Mutation {
        actor: "tester".into(),
        now: Timestamp(1_700_000_000_000),
    };

    a.create_service(
        NewService {
            name: greeter.clone(),
            owner: "team-a".into(),
            description: "says hello".into(),
            policy: CompatibilityPolicy::default(),
        },
        &m,
    )
    .await
    .unwrap();
    assert_eq!(
        announced(&mut heard_by_b).await,
        Change::Service(greeter.clone())
    );
    a.set_route(&greeter, vec![], &m).await.unwrap();
    assert_eq!(
        announced(&mut heard_by_b).await,
        Change::Service(greeter.clone())
    );

    // Give a duplicate time to arrive before checking there is none.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        drain(&mut heard_by_a),
        [Change::Service(greeter.clone()), Change::Service(greeter)],
        "A hears its own changes once each, through the database"
    );
    assert_eq!(drain(&mut heard_by_b), [], "B heard each change once");
    drop(b);
    db.drop_database().await;
}

/// A lost LISTEN connection is re-established, and subscribers are told to reload, since
/// announcements may have been missed meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listen_reconnects_and_asks_for_a_reload() {
    let Some(db) = support::postgres().await else {
        return;
    };
    let mut changes = db.store.subscribe();
    let mut rollout_changes = db.store.subscribe_rollouts();
    let admin = sql_client(&db.url).await;
    let terminated = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN %'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(terminated.len(), 1, "the store holds one LISTEN session");
    let reload = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a reload is asked for within 5 s")
        .unwrap();
    assert_eq!(reload, Change::All);
    assert_eq!(
        announced(&mut rollout_changes).await,
        RolloutChange::All,
        "rollout subscribers are told to reload too"
    );

    cases::seed_greeter(&*db.store).await;
    let greeter = ServiceName::parse("name", "greeter").unwrap();
    assert_eq!(
        announced(&mut changes).await,
        Change::Service(greeter),
        "announcements flow again"
    );
    let rollout = db
        .store
        .create_rollout(&rollouts::rollout(1, "greeter", "1.1.0", cases::T0), &[])
        .await
        .unwrap();
    assert_eq!(
        announced(&mut rollout_changes).await,
        RolloutChange::Rollout(rollout.id),
        "rollout announcements flow again"
    );
    db.drop_database().await;
}

/// Two stores on one database (two orchestrators) hear each other's rollout changes, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_announces_rollout_changes_across_store_instances() {
    let Some(db) = support::postgres().await else {
        return;
    };
    let a = &db.store;
    let b = connect(&db.url).await;
    let mut heard_by_a = a.subscribe_rollouts();
    let mut heard_by_b = b.subscribe_rollouts();
    let mut registry_heard_by_a = a.subscribe();

    let created = a
        .create_rollout(&rollouts::rollout(1, "greeter", "1.1.0", cases::T0), &[])
        .await
        .unwrap();
    let id = created.id.clone();
    assert_eq!(
        announced(&mut heard_by_b).await,
        RolloutChange::Rollout(id.clone())
    );
    b.update_rollout(&created, &[], None, cases::T0)
        .await
        .unwrap();
    assert_eq!(
        announced(&mut heard_by_a).await,
        RolloutChange::Rollout(id.clone())
    );

    // Give a duplicate time to arrive before checking there is none.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        drain(&mut heard_by_a),
        [RolloutChange::Rollout(id.clone())],
        "A heard its create, then B's update, once each"
    );
    assert_eq!(
        drain(&mut heard_by_b),
        [RolloutChange::Rollout(id)],
        "B heard A's create and its own update once each"
    );
    assert!(
        drain(&mut registry_heard_by_a).is_empty(),
        "nothing reaches registry subscribers"
    );
    drop(b);
    db.drop_database().await;
}

/// Dropping the last clone of a store closes its LISTEN session: tests and reloads that open
/// many stores leak no connections or tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stops_listening_when_the_store_is_dropped() {
    let Some(db) = support::postgres().await else {
        return;
    };
    let admin = sql_client(&db.url).await;
    let second = connect(&db.url).await;
    let clone = second.clone();
    assert_eq!(listen_sessions(&admin).await, 2);
    drop(second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listen_sessions(&admin).await, 2, "a clone keeps listening");
    drop(clone);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listen_sessions(&admin).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped store still listens"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.drop_database().await;
}

/// Registry processes that start together on a new database migrate it once, without errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_starting_together_migrate_once() {
    let Some(admin_url) = flotilla_store::testing::admin_url() else {
        return;
    };
    let database = flotilla_store::testing::TestDatabase::create(&admin_url)
        .await
        .unwrap();
    let url = database.url.clone();
    let stores = futures::future::join_all(
        (0..4).map(|_| PostgresStore::connect(PostgresConfig::new(&url))),
    )
    .await;
    for store in &stores {
        assert!(store.is_ok(), "{store:?}");
    }
    let db = sql_client(&url).await;
    let applied: i64 = db
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 2, "V1 and V2 are recorded once each");
    drop((stores, db));
    database.drop_database().await.unwrap();
}

/// Makes the test database refuse connections and ends those it has (or lets it accept them
/// again): to the stores on it, an outage of the database.
async fn set_outage(db_url: &str, out: bool) {
    let admin_url = flotilla_store::testing::admin_url().expect("the admin URL is set");
    let admin = sql_client(&admin_url).await;
    let database = db_url.rsplit('/').next().expect("a database in the URL");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS {}",
            !out
        ))
        .await
        .unwrap();
    if out {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&database],
            )
            .await
            .unwrap();
    }
}

/// Leases that were live when the database went away are not lost with it: the registry's
/// store renews them once it reaches the database again, before it serves anything. A store
/// without the setting finds them lapsed, and a lease that ran out before the outage stays out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_leases_live_before_an_outage_are_renewed_after_it() {
    let Some(db) = support::postgres().await else {
        return;
    };
    let forgiving = PostgresStore::connect(
        PostgresConfig::new(&db.url)
            .renew_leases_after_outage(true)
            .connect_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    let strict = PostgresStore::connect(
        PostgresConfig::new(&db.url).connect_timeout(Duration::from_secs(1)),
    )
    .await
    .unwrap();
    cases::seed_greeter(&forgiving).await;
    let greeter = ServiceName::parse("name", "greeter").unwrap();
    let registered_at = |now: Timestamp| Mutation {
        actor: "tester".into(),
        now,
    };
    let now = Timestamp::now();
    let live = forgiving
        .register_instance(
            cases::new_instance("greeter", "1.0.0", 7001, 1_000),
            &registered_at(now),
        )
        .await
        .unwrap();
    // Ran out three seconds ago: not the outage's doing.
    forgiving
        .register_instance(
            cases::new_instance("greeter", "1.0.0", 7002, 1_000),
            &registered_at(Timestamp(now.0 - 4_000)),
        )
        .await
        .unwrap();

    set_outage(&db.url, true).await;
    for store in [&forgiving, &strict] {
        let error = store
            .list_instances(&greeter, None, Timestamp::now())
            .await
            .expect_err("the database is out");
        assert!(
            matches!(error, flotilla_store::StoreError::Unavailable(_)),
            "{error}"
        );
    }
    // Longer than the lease: no heartbeat could have renewed it.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    set_outage(&db.url, false).await;

    let after = Timestamp::now();
    assert!(
        strict
            .list_instances(&greeter, None, after)
            .await
            .unwrap()
            .is_empty(),
        "without renewal the lease has lapsed"
    );
    let listed = forgiving
        .list_instances(&greeter, None, after)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&live.id],
        "the lease live before the outage was renewed, the one that had lapsed was not"
    );
    assert!(
        listed[0].expires.0 >= after.0 + 900,
        "{:?}",
        listed[0].expires
    );
    // The instance's next heartbeat renews it as usual, and the reaper has nothing to do.
    forgiving
        .heartbeat(&live.id, None, Timestamp::now())
        .await
        .unwrap();
    let reaped = forgiving.expire_instances(Timestamp::now()).await.unwrap();
    assert_eq!(
        reaped.len(),
        1,
        "only the lease that lapsed before: {reaped:?}"
    );
    assert_ne!(reaped[0].id, live.id);
    drop((forgiving, strict));
    db.drop_database().await;
}

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(PostgresConfig::new(url))
        .await
        .expect("a second store connects to the test database")
}

/// The next announcement. The bound is for liveness, not speed: a busy machine may take a
/// while, a lost announcement never comes (the benchmark times the fan-out).
async fn announced<T: Clone>(changes: &mut tokio::sync::broadcast::Receiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a change is announced within 10 s")
        .expect("the change channel is open")
}

fn drain<T: Clone>(changes: &mut tokio::sync::broadcast::Receiver<T>) -> Vec<T> {
    std::iter::from_fn(|| changes.try_recv().ok()).collect()
}

async fn sql_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test database accepts connections");
    tokio::spawn(connection);
    client
}

async fn listen_sessions(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN %'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}
