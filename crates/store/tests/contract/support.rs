//! Store factories for the contract cases.

use std::sync::Arc;

use flotilla_store::{RegistryStore, SqliteStore};

pub type Store = Arc<dyn RegistryStore>;

pub async fn sqlite() -> Store {
    Arc::new(
        SqliteStore::open_in_memory()
            .await
            .expect("an in-memory store opens"),
    )
}

/// A PostgreSQL database made for one case.
pub struct TestDatabase {
    pub store: Store,
    pub url: String,
    admin_url: String,
    name: String,
}

/// The URL of a PostgreSQL server for tests, or None (after saying so) when there is none and
/// this is not CI.
pub fn admin_url() -> Option<String> {
    match std::env::var("FLOTILLA_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "CI is set but FLOTILLA_TEST_DATABASE_URL is not: the PostgreSQL contract must run in CI"
            )
        }
        _ => {
            eprintln!("skipped: set FLOTILLA_TEST_DATABASE_URL to run the PostgreSQL contract");
            None
        }
    }
}

pub async fn postgres() -> Option<TestDatabase> {
    let admin_url = admin_url()?;
    let name = format!("flotilla_test_{}", uuid::Uuid::new_v4().simple());
    let (client, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL server accepts connections");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("the test role may create databases");
    let url = with_database(&admin_url, &name);
    let store = flotilla_store::PostgresStore::connect(flotilla_store::PostgresConfig::new(&url))
        .await
        .expect("the store connects and migrates");
    Some(TestDatabase {
        store: Arc::new(store),
        url,
        admin_url,
        name,
    })
}

impl TestDatabase {
    pub async fn drop_database(self) {
        drop(self.store);
        let (client, connection) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
            .await
            .expect("the test PostgreSQL server accepts connections");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("the test database drops");
    }
}

/// Replaces the database name of a `postgres://` URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    format!("{}/{database}{query}", &base[..authority_end])
}
