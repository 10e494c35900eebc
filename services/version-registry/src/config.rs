//! The registry's settings: flags, each with an environment fallback and a default that works on
//! a laptop.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
pub use flotilla_telemetry::traces::LogFormat;

pub const ENV_LISTEN: &str = "FLOTILLA_REGISTRY_LISTEN";
pub const ENV_DATABASE_URL: &str = "FLOTILLA_DATABASE_URL";
pub const ENV_DATA_FILE: &str = "FLOTILLA_REGISTRY_DATA_FILE";
pub const ENV_MAX_MESSAGE_BYTES: &str = "FLOTILLA_MAX_MESSAGE_BYTES";
pub const ENV_REAP_INTERVAL_MS: &str = "FLOTILLA_REAP_INTERVAL_MS";
pub const ENV_LOG_FORMAT: &str = "FLOTILLA_LOG_FORMAT";
pub const ENV_SHUTDOWN_GRACE_MS: &str = "FLOTILLA_SHUTDOWN_GRACE_MS";

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_DATA_FILE: &str = "flotilla-registry.sqlite";
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
pub const DEFAULT_REAP_INTERVAL_MS: u64 = 250;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;

/// The Flotilla version registry.
#[derive(Debug, Clone, Parser)]
#[command(name = "version-registry", version, about)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = ENV_LISTEN, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// PostgreSQL URL (postgres://user:password@host:port/db). When unset, the embedded store is
    /// used.
    #[arg(long, env = ENV_DATABASE_URL, hide_env_values = true)]
    pub database_url: Option<String>,

    /// The embedded store's file, used when no database URL is given; ":memory:" keeps nothing.
    #[arg(long, env = ENV_DATA_FILE, default_value = DEFAULT_DATA_FILE)]
    pub data_file: PathBuf,

    /// Largest request or response message, in bytes. Larger requests get RESOURCE_EXHAUSTED
    /// or OUT_OF_RANGE, per tonic.
    #[arg(long, env = ENV_MAX_MESSAGE_BYTES, default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// How often expired leases are looked for, in milliseconds: the longest an expired instance
    /// stays in endpoint sets beyond its lease.
    #[arg(long, env = ENV_REAP_INTERVAL_MS, default_value_t = DEFAULT_REAP_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub reap_interval_ms: u64,

    /// After SIGTERM/SIGINT, how long open calls may finish before their connections are closed,
    /// in milliseconds.
    #[arg(long, env = ENV_SHUTDOWN_GRACE_MS, default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,

    /// Log format on stderr.
    #[arg(long, env = ENV_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// Settings for a registry on an ephemeral loopback port with an in-memory store: for tests.
    pub fn for_tests() -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("a literal address parses"),
            database_url: None,
            data_file: PathBuf::from(":memory:"),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            reap_interval_ms: 50,
            shutdown_grace_ms: 2_000,
            log_format: LogFormat::Text,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn reap_interval(&self) -> Duration {
        Duration::from_millis(self.reap_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_defaults_hold() {
        let config = Config::try_parse_from(["version-registry"]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_file, PathBuf::from(DEFAULT_DATA_FILE));
        let config = Config::try_parse_from([
            "version-registry",
            "--listen",
            "0.0.0.0:7000",
            "--database-url",
            "postgres://x@y/z",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.log_format, LogFormat::Json);
        assert!(Config::try_parse_from(["version-registry", "--reap-interval-ms", "1"]).is_err());
        assert!(Config::try_parse_from(["version-registry", "--listen", "nowhere"]).is_err());
    }
}
