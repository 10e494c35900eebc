//! How to reach the database: [`PostgresConfig`], and the password redaction that lets a
//! configuration (or a store) be logged.

use std::{fmt, str::FromStr, time::Duration};

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://` URL or a libpq `key=value` connection string.
    pub url: String,
    /// The most pooled connections the store opens; the LISTEN connection comes on top.
    pub pool_size: usize,
    /// How long to wait for a new connection, or for a free pooled one, before the store reports
    /// itself unavailable.
    pub connect_timeout: Duration,
    /// What the connections call themselves in `pg_stat_activity`, unless the URL says.
    pub application_name: String,
    /// After failing to reach the database, give the leases that were live before a fresh term
    /// once it is reached again (see `postgres/outage.rs`). The registry's store does; the
    /// orchestrator's, which renews no instance, does not.
    pub renew_leases_after_outage: bool,
}

impl PostgresConfig {
    /// The database at `url`, with 16 pooled connections and a 5 s connect timeout.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            application_name: "flotilla".to_owned(),
            renew_leases_after_outage: false,
        }
    }

    /// Whether leases live before an outage of the database get a fresh term after it.
    pub fn renew_leases_after_outage(mut self, renew: bool) -> Self {
        self.renew_leases_after_outage = renew;
        self
    }

    /// How long to wait for a connection before the store reports itself unavailable.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Names the connections (the registry's and the orchestrator's are told apart this way).
    pub fn application_name(mut self, name: &str) -> Self {
        self.application_name = name.to_owned();
        self
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .field("renew_leases_after_outage", &self.renew_leases_after_outage)
            .finish()
    }
}

/// `url` with any password replaced by `***`, so configurations can be logged.
pub(super) fn redact_password(url: &str) -> String {
    let shown = redact_by_position(url);
    // A malformed URL (say, an unescaped '?' in the password) can defeat the positional pass;
    // whatever the driver would send as the password is hidden all the same.
    match tokio_postgres::Config::from_str(url)
        .ok()
        .and_then(|config| config.get_password().map(<[u8]>::to_vec))
        .and_then(|password| String::from_utf8(password).ok())
    {
        Some(password) if !password.is_empty() && shown.contains(&password) => {
            shown.replace(&password, "***")
        }
        _ => shown,
    }
}

/// `url` with the password of its user info and any `password` parameter replaced by `***`.
fn redact_by_position(url: &str) -> String {
    let Some(scheme_end) = ["postgres://", "postgresql://"]
        .iter()
        .find(|scheme| url.starts_with(*scheme))
        .map(|scheme| scheme.len())
    else {
        return redact_parameter(url, "password", char::is_whitespace);
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // The last '@' rather than the first: a password with an unescaped '@' must not half-leak.
    let base = match base[scheme_end..].rfind('@') {
        Some(at) => {
            let userinfo = &base[scheme_end..scheme_end + at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    &base[..scheme_end],
                    &base[scheme_end + at..]
                ),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match query {
        Some(query) => format!(
            "{base}?{}",
            redact_parameter(query, "password", |c| c == '&')
        ),
        None => base,
    }
}

/// `text` with the value of every `key=value` parameter named `key` replaced by `***`. Values
/// end at a character matching `ends`, or (quoted, libpq style) at the closing quote.
fn redact_parameter(text: &str, key: &str, ends: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(key) {
        let starts_parameter = rest[..found]
            .chars()
            .next_back()
            .is_none_or(|c| ends(c) || c.is_whitespace());
        out.push_str(&rest[..found + key.len()]);
        rest = &rest[found + key.len()..];
        let after_key = rest.trim_start();
        if !starts_parameter || !after_key.starts_with('=') {
            continue;
        }
        out.push_str(&rest[..rest.len() - after_key.len() + 1]);
        let value = after_key[1..].trim_start();
        out.push_str(&after_key[1..after_key.len() - value.len()]);
        out.push_str("***");
        rest = &value[value_length(value, ends)..];
    }
    out.push_str(rest);
    out
}

/// The length of a parameter value at the start of `text`: quoted, or up to a character matching
/// `ends`.
fn value_length(text: &str, ends: fn(char) -> bool) -> usize {
    if let Some(quoted) = text.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        return text.len();
    }
    text.find(ends).unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password_of_a_url() {
        let config = PostgresConfig::new("postgres://registry:s3cr@t@db.internal:5432/flotilla");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("postgres://registry:***@db.internal:5432/flotilla"),
            "{shown}"
        );
        assert!(shown.contains("pool_size: 16"), "{shown}");
    }

    #[test]
    fn passwords_in_query_strings_and_key_value_strings_are_hidden() {
        assert_eq!(
            redact_password("postgresql://db/flotilla?sslmode=disable&password=hunter2&x=1"),
            "postgresql://db/flotilla?sslmode=disable&password=***&x=1"
        );
        assert_eq!(
            redact_password("host=db user=registry password = 'a b\\' c' dbname=flotilla"),
            "host=db user=registry password = *** dbname=flotilla"
        );
        assert_eq!(
            redact_password("host=db password=hunter2"),
            "host=db password=***"
        );
        assert_eq!(
            redact_password("postgres://registry@db/flotilla"),
            "postgres://registry@db/flotilla"
        );
        assert_eq!(
            redact_password("postgres://registry:pa?ss@db/flotilla"),
            "postgres://registry:***@db/flotilla"
        );
        assert_eq!(
            redact_password("host=db user=no_password_here"),
            "host=db user=no_password_here"
        );
    }
}
