//! PostgreSQL databases for tests and benchmarks of every crate (feature `testing`).
//!
//! Tests find the server in `FLOTILLA_TEST_DATABASE_URL` (a role that may create databases) and
//! get a database of their own. Without it they are skipped with a message, except under CI
//! (`CI` set), where a missing server is a failure: CI must not pass by skipping.

/// The environment variable naming the test server.
pub const ENV_TEST_DATABASE_URL: &str = "FLOTILLA_TEST_DATABASE_URL";

/// The test server's URL, or None (after saying so) when there is none and this is not CI.
pub fn admin_url() -> Option<String> {
    match std::env::var(ENV_TEST_DATABASE_URL) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            flotilla_testkit::missing(
                "a PostgreSQL server for the tests",
                &format!("set {ENV_TEST_DATABASE_URL}"),
            );
            None
        }
    }
}

/// A database created for one test; drop it with [`TestDatabase::drop_database`].
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a database with a unique name on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> Result<Self, tokio_postgres::Error> {
        let name = format!("flotilla_test_{}", uuid::Uuid::new_v4().simple());
        execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// Drops the database, closing any connection still open to it.
    pub async fn drop_database(self) -> Result<(), tokio_postgres::Error> {
        execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
    }
}

async fn execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    let _ = connection.await;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
