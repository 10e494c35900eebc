//! The frontend's settings: flags with environment fallbacks.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;

/// The sample fleet's frontend: greets through a greeter chosen by the fleet client.
#[derive(Debug, Clone, Parser)]
#[command(name = "demo-frontend", about, disable_version_flag = true)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port (printed on stdout).
    #[arg(long, env = "FLOTILLA_FRONTEND_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The version registry's URL, or several replicas' URLs separated by commas.
    #[arg(
        long,
        env = "FLOTILLA_REGISTRY",
        default_value = "http://127.0.0.1:50051"
    )]
    pub registry: String,

    /// The address other services dial; defaults to the listening address.
    #[arg(long, env = "FLOTILLA_FRONTEND_ADVERTISE")]
    pub advertise: Option<String>,

    /// The version this frontend publishes itself as.
    #[arg(long, env = "FLOTILLA_FRONTEND_VERSION", default_value = "1.0.0")]
    pub version: semver::Version,

    /// The greeter versions this frontend accepts, published as its dependency. 1.0.0 of the
    /// frontend needs greeter's `locale`, added in 1.1.
    #[arg(
        long,
        env = "FLOTILLA_FRONTEND_GREETER_REQUIREMENT",
        default_value = "^1.1"
    )]
    pub greeter_requirement: String,

    /// The name the greeter publishes under.
    #[arg(
        long,
        env = "FLOTILLA_FRONTEND_GREETER_SERVICE",
        default_value = "greeter"
    )]
    pub greeter_service: String,

    /// The lease time to live in milliseconds.
    #[arg(long, env = "FLOTILLA_FRONTEND_LEASE_TTL_MS", default_value_t = 3_000)]
    pub lease_ttl_ms: u64,
}

impl Config {
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_require_greeter_1_1() {
        let config = Config::try_parse_from(["demo-frontend"]).unwrap();
        assert_eq!(config.greeter_requirement, "^1.1");
        assert_eq!(config.version, semver::Version::new(1, 0, 0));
        let legacy = Config::try_parse_from([
            "demo-frontend",
            "--version",
            "0.9.0",
            "--greeter-requirement",
            "^1.0",
        ])
        .unwrap();
        assert_eq!(legacy.version.minor, 9);
    }
}
