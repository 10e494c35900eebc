//! The greeter's settings: flags, each with a `FLOTILLA_GREETER_*` environment fallback.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, ValueEnum};

/// The demo greeter: serves one release of `demo.greeter.v1` through FleetServer.
#[derive(Debug, Clone, Parser)]
// `--version` names the version to publish, so clap's own version flag is off.
#[command(name = "demo-greeter", about, disable_version_flag = true)]
pub struct Config {
    /// Which API release to serve (its schema and implementation).
    #[arg(long, env = "FLOTILLA_GREETER_RELEASE", value_enum, default_value_t = Release::V1_0_0)]
    pub release: Release,

    /// The version to publish; defaults to the release's own. A faulty 1.2.0 is
    /// `--release 1.1.0 --version 1.2.0 --error-ratio 0.5`.
    #[arg(long, env = "FLOTILLA_GREETER_VERSION")]
    pub version: Option<semver::Version>,

    /// The registry's service name.
    #[arg(long, env = "FLOTILLA_GREETER_SERVICE", default_value = "greeter")]
    pub service: String,

    /// Address to serve gRPC on; port 0 picks a free port (the chosen one is printed).
    #[arg(long, env = "FLOTILLA_GREETER_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The version registry's URL, or several replicas' URLs separated by commas.
    #[arg(
        long,
        env = "FLOTILLA_GREETER_REGISTRY",
        default_value = "http://127.0.0.1:50051"
    )]
    pub registry: String,

    /// The `host:port` callers should dial; defaults to the listening address.
    #[arg(long, env = "FLOTILLA_GREETER_ADVERTISE")]
    pub advertise: Option<String>,

    /// The instance's lease in milliseconds (1,000 to 300,000), renewed every third of it.
    #[arg(long, env = "FLOTILLA_GREETER_LEASE_TTL_MS", default_value_t = 3_000,
          value_parser = clap::value_parser!(u64).range(1_000..=300_000))]
    pub lease_ttl_ms: u64,

    /// Fault: health turns NOT_SERVING this many seconds after the instance registered.
    #[arg(long, env = "FLOTILLA_GREETER_UNHEALTHY_AFTER", value_name = "SECS", value_parser = parse_seconds)]
    pub unhealthy_after: Option<Duration>,

    /// Fault: this fraction of calls (0 to 1) fail with INTERNAL, so callers do not retry them
    /// as connectivity failures.
    #[arg(long, env = "FLOTILLA_GREETER_ERROR_RATIO", value_name = "R", default_value_t = 0.0,
          value_parser = parse_ratio)]
    pub error_ratio: f64,

    /// Fault: milliseconds added to every call.
    #[arg(
        long,
        env = "FLOTILLA_GREETER_LATENCY_MS",
        value_name = "N",
        default_value_t = 0
    )]
    pub latency_ms: u64,

    /// Fault: the process exits with status 1 this many seconds after the instance registered,
    /// abruptly, without deregistering (its lease then expires).
    #[arg(long, env = "FLOTILLA_GREETER_CRASH_AFTER", value_name = "SECS", value_parser = parse_seconds)]
    pub crash_after: Option<Duration>,

    /// Seed for the injected errors, for a reproducible sequence; random when unset.
    #[arg(long, env = "FLOTILLA_GREETER_FAULT_SEED")]
    pub fault_seed: Option<u64>,

    /// The container image in the published artifact, for the orchestrator's Docker platform
    /// (which runs the artifact command in it); empty for local processes only.
    #[arg(long, env = "FLOTILLA_GREETER_IMAGE", default_value = "")]
    pub image: String,

    /// Publish the version (schema, and an artifact command that starts it with these flags)
    /// and exit without serving: how a release is announced for the orchestrator to run.
    #[arg(long)]
    pub publish_only: bool,
}

impl Config {
    /// The version published: `--version`, or the release's own.
    pub fn published_version(&self) -> semver::Version {
        self.version
            .clone()
            .unwrap_or_else(|| self.release.version())
    }

    /// The instance's lease.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    /// The latency added to every call.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// The API releases of `demo.greeter.v1`, one per snapshot under `proto/demo/greeter/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Release {
    /// `SayHello(name) -> message`.
    #[value(name = "1.0.0")]
    V1_0_0,
    /// Adds `locale`, `served_by` and `SayGoodbye`: compatible with 1.0.0.
    #[value(name = "1.1.0")]
    V1_1_0,
    /// `HelloReply.message` becomes a `Greeting`: breaks 1.x.
    #[value(name = "2.0.0")]
    V2_0_0,
}

impl Release {
    /// The release's name, as `--release` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
            Self::V2_0_0 => "2.0.0",
        }
    }

    /// The version a release is published as unless `--version` says otherwise.
    pub fn version(self) -> semver::Version {
        match self {
            Self::V1_0_0 => semver::Version::new(1, 0, 0),
            Self::V1_1_0 => semver::Version::new(1, 1, 0),
            Self::V2_0_0 => semver::Version::new(2, 0, 0),
        }
    }

    /// The release's FileDescriptorSet, as compiled by flotilla-proto.
    pub fn descriptor_set(self) -> &'static [u8] {
        use flotilla_proto::demo::greeter::{v1_0_0, v1_1_0, v2_0_0};
        match self {
            Self::V1_0_0 => v1_0_0::DESCRIPTOR_SET,
            Self::V1_1_0 => v1_1_0::DESCRIPTOR_SET,
            Self::V2_0_0 => v2_0_0::DESCRIPTOR_SET,
        }
    }
}

/// A non-negative number of seconds, fractions allowed (`1`, `0.5`).
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is not a non-negative number of seconds"))
}

/// A fraction from 0 to 1.
fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio from 0 to 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold() {
        let config = Config::try_parse_from(["demo-greeter"]).unwrap();
        assert_eq!(config.release, Release::V1_0_0);
        assert_eq!(config.published_version(), semver::Version::new(1, 0, 0));
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.registry, "http://127.0.0.1:50051");
        assert_eq!(config.service, "greeter");
        assert_eq!(config.lease_ttl(), Duration::from_secs(3));
        assert_eq!(config.error_ratio, 0.0);
        assert_eq!(config.latency(), Duration::ZERO);
        assert!(config.unhealthy_after.is_none() && config.crash_after.is_none());
    }

    #[test]
    fn a_faulty_version_is_made_from_a_release() {
        let config = Config::try_parse_from([
            "demo-greeter",
            "--release",
            "1.1.0",
            "--version",
            "1.2.0",
            "--error-ratio",
            "0.5",
            "--latency-ms",
            "20",
            "--unhealthy-after",
            "1.5",
            "--crash-after",
            "2",
        ])
        .unwrap();
        assert_eq!(config.release, Release::V1_1_0);
        assert_eq!(config.published_version(), semver::Version::new(1, 2, 0));
        assert_eq!(config.error_ratio, 0.5);
        assert_eq!(config.latency(), Duration::from_millis(20));
        assert_eq!(config.unhealthy_after, Some(Duration::from_millis(1500)));
        assert_eq!(config.crash_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            ["--release", "1.2.0"],
            ["--version", "1.2"],
            ["--error-ratio", "1.5"],
            ["--error-ratio", "-0.1"],
            ["--unhealthy-after", "-1"],
            ["--crash-after", "soon"],
            ["--lease-ttl-ms", "10"],
        ] {
            let parsed = Config::try_parse_from(std::iter::once("demo-greeter").chain(args));
            assert!(parsed.is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn each_release_names_its_version_and_schema() {
        for release in [Release::V1_0_0, Release::V1_1_0, Release::V2_0_0] {
            assert_eq!(release.version().to_string(), release.as_str());
            assert!(!release.descriptor_set().is_empty());
        }
        assert_ne!(
            Release::V1_0_0.descriptor_set(),
            Release::V1_1_0.descriptor_set()
        );
    }
}
