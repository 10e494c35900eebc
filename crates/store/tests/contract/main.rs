//! The store contract: every case runs against the embedded SQLite store and against PostgreSQL.
//!
//! PostgreSQL cases need `FLOTILLA_TEST_DATABASE_URL` (a role that may create databases); each
//! case gets a database of its own. Without it they are skipped with a message, except under
//! CI (`CI` set), where a missing database is a failure.

mod cases;
mod support;

/// Declares one test per backend for each case in `cases`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = crate::support::sqlite().await;
                    crate::cases::$case(&store).await;
                }
            )*
        }
    };
}

contract!(
    services_are_created_once_and_listed_in_pages,
    policies_change_and_are_audited,
    publishing_is_immutable_and_idempotent,
    publish_references_and_gate_are_checked_before_anything_is_written,
    concurrent_publishes_of_one_version_have_one_winner,
    lifecycle_follows_the_state_machine,
    versions_are_listed_highest_first,
    instances_need_a_resolvable_version,
    leases_are_renewed_and_expire,
    deregistering_removes_an_instance,
    routes_name_published_versions,
    endpoint_snapshots_hold_versions_instances_and_route,
    committed_changes_are_announced_and_failed_ones_are_not,
    audit_log_pages_newest_first,
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
