//! A copy of what a fleet channel balances over, for tests, demos and debugging.

use std::fmt;

/// The endpoints a [`crate::FleetChannel`] currently balances over.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The service called.
    pub service: String,
    /// The semver requirement its versions must satisfy (`*` for any).
    pub requirement: String,
    /// How many endpoint sets this channel has applied (1 after connecting).
    pub revision: u64,
    /// Whether the registry weighted the last set by the service's route.
    pub route_applied: bool,
    /// Every known endpoint, highest version first.
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint as the channel sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointView {
    /// The registry instance id.
    pub instance_id: String,
    /// `host:port`.
    pub address: String,
    /// The version it runs.
    pub version: String,
    /// Its version's weight, as the registry sent it.
    pub version_weight: u32,
    /// Whether the registry reports it SERVING (from its heartbeats).
    pub serving: bool,
    /// Whether the channel considers it healthy (its health watch, and the errors of calls).
    pub healthy: bool,
    /// The probability that the next call goes to it, from 0 to 1.
    pub share: f64,
}

impl Snapshot {
    /// The endpoint with this instance id.
    pub fn endpoint(&self, instance_id: &str) -> Option<&EndpointView> {
        self.endpoints.iter().find(|e| e.instance_id == instance_id)
    }

    /// The probability that the next call goes to some instance of `version`.
    pub fn version_share(&self, version: &str) -> f64 {
        self.endpoints
            .iter()
            .filter(|e| e.version == version)
            .map(|e| e.share)
            .sum()
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} (revision {}, {}):",
            self.service,
            self.requirement,
            self.revision,
            if self.route_applied {
                "route applied"
            } else {
                "no route: equal shares"
            }
        )?;
        if self.endpoints.is_empty() {
            return writeln!(f, "  no endpoints");
        }
        for e in &self.endpoints {
            writeln!(
                f,
                "  {:<10} {:<22} {:<38} weight {:>5}  {:<11} {:<9} {:>5.1}%",
                e.version,
                e.address,
                e.instance_id,
                e.version_weight,
                if e.serving { "SERVING" } else { "NOT_SERVING" },
                if e.healthy { "healthy" } else { "unhealthy" },
                e.share * 100.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, version: &str, share: f64) -> EndpointView {
        EndpointView {
            instance_id: id.into(),
            address: "127.0.0.1:1".into(),
            version: version.into(),
            version_weight: 1,
            serving: true,
            healthy: share > 0.0,
            share,
        }
    }

    #[test]
    fn sums_shares_by_version_and_prints_a_line_per_endpoint() {
        let snapshot = Snapshot {
            service: "greeter".into(),
            requirement: "^1".into(),
            revision: 3,
            route_applied: true,
            endpoints: vec![
                view("a", "1.1.0", 0.6),
                view("b", "1.0.0", 0.2),
                view("c", "1.0.0", 0.2),
            ],
        };
        assert!((snapshot.version_share("1.0.0") - 0.4).abs() < 1e-9);
        assert_eq!(snapshot.endpoint("b").unwrap().version, "1.0.0");
        assert!(snapshot.endpoint("z").is_none());
        let text = snapshot.to_string();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("60.0%"), "{text}");
    }
}
