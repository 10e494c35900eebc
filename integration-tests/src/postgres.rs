//! Databases for tests that need PostgreSQL.

use anyhow::Context;

/// The test server's URL from `FLOTILLA_TEST_DATABASE_URL` (`.ci/run` sets it). Under CI a missing
/// URL fails the test; elsewhere the test is skipped with a message.
pub fn admin_url() -> Option<String> {
    match std::env::var("FLOTILLA_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but FLOTILLA_TEST_DATABASE_URL is not")
        }
        _ => {
            eprintln!("skipped: set FLOTILLA_TEST_DATABASE_URL to run PostgreSQL tests");
            None
        }
    }
}

/// A database created for one test and dropped with [`TestDatabase::drop_database`].
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("flotilla_it_{}", uuid::Uuid::new_v4().simple());
        admin_execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        admin_execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
    }
}

async fn admin_execute(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the test PostgreSQL server")?;
    tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .with_context(|| sql.to_owned())?;
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
