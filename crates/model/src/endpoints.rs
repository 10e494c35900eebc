//! Which instances a caller should send calls to, and with what weight.

use semver::{Version, VersionReq};

use crate::{Instance, LifecycleState, Route, ServiceName, ServingStatus};

/// Everything about a service that decides its endpoint sets, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSnapshot {
    pub service: ServiceName,
    /// Every version of the service with its state.
    pub versions: Vec<(Version, LifecycleState)>,
    /// The live (unexpired) instances.
    pub instances: Vec<Instance>,
    pub route: Option<Route>,
}

/// An instance a caller may use, with its version's weight.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedEndpoint {
    pub instance: Instance,
    pub version_weight: u32,
}

/// The endpoint set one watcher sees.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedEndpoints {
    pub endpoints: Vec<SelectedEndpoint>,
    pub route_applied: bool,
}

/// Selects the live instances of resolvable versions that satisfy `requirement`, weighted by the
/// route. When the route gives no weight to any accepted version that has a serving instance
/// (or there is no route), every accepted version is weighted by its count of serving instances,
/// so each serving instance gets an equal share: a caller that accepts only a version the route
/// starves still reaches it, as a plain load balancer would.
pub fn select_endpoints(
    snapshot: &EndpointSnapshot,
    requirement: &VersionReq,
) -> SelectedEndpoints {
    let accepted = |version: &Version| {
        requirement.matches(version)
            && snapshot
                .versions
                .iter()
                .any(|(v, state)| v == version && state.is_resolvable())
    };
    let mut instances: Vec<&Instance> = snapshot
        .instances
        .iter()
        .filter(|i| accepted(&i.version))
        .collect();
    instances.sort_by(|a, b| b.version.cmp(&a.version).then(a.address.cmp(&b.address)));

    let serving_count = |version: &Version| {
        instances
            .iter()
            .filter(|i| &i.version == version && i.status == ServingStatus::Serving)
            .count() as u32
    };
    let route_weight = |version: &Version| {
        snapshot
            .route
            .as_ref()
            .and_then(|r| r.weight_of(version))
            .unwrap_or(0)
    };
    let mut versions_with_serving: Vec<&Version> = instances
        .iter()
        .filter(|i| i.status == ServingStatus::Serving)
        .map(|i| &i.version)
        .collect();
    versions_with_serving.dedup();
    let route_applied = versions_with_serving
        .iter()
        .map(|v| u64::from(route_weight(v)))
        .sum::<u64>()
        > 0;

    let endpoints = instances
        .iter()
        .map(|instance| SelectedEndpoint {
            version_weight: if route_applied {
                route_weight(&instance.version)
            } else {
                serving_count(&instance.version)
            },
            instance: (*instance).clone(),
        })
        .collect();
    SelectedEndpoints {
        endpoints,
        route_applied,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{InstanceId, Timestamp, VersionWeight};

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn instance(n: u8, version: &str, status: ServingStatus) -> Instance {
        Instance {
            id: InstanceId::from_trusted(format!("00000000-0000-0000-0000-0000000000{n:02}")),
            service: ServiceName::from_trusted("greeter".into()),
            version: v(version),
            address: format!("127.0.0.1:{}", 7000 + u16::from(n)),
            metadata: BTreeMap::new(),
            status,
            lease_ttl_ms: 10_000,
            registered: Timestamp(0),
            expires: Timestamp(10_000),
        }
    }

    fn snapshot(route: Option<&[(&str, u32)]>) -> EndpointSnapshot {
        use LifecycleState::*;
        use ServingStatus::*;
        EndpointSnapshot {
            service: ServiceName::from_trusted("greeter".into()),
            versions: vec![
                (v("1.0.0"), Released),
                (v("1.1.0"), Released),
                (v("1.2.0"), Yanked),
                (v("2.0.0"), Released),
            ],
            instances: vec![
                instance(1, "1.0.0", Serving),
                instance(2, "1.0.0", Serving),
                instance(3, "1.1.0", Serving),
                instance(4, "1.1.0", NotServing),
                instance(5, "1.2.0", Serving),
                instance(6, "2.0.0", Serving),
            ],
            route: route.map(|weights| Route {
                service: ServiceName::from_trusted("greeter".into()),
                weights: weights
                    .iter()
                    .map(|(version, weight)| VersionWeight {
                        version: v(version),
                        weight: *weight,
                    })
                    .collect(),
                updated: Timestamp(0),
            }),
        }
    }

    fn weights(selected: &SelectedEndpoints) -> Vec<(String, u32)> {
        selected
            .endpoints
            .iter()
            .map(|e| (e.instance.address.clone(), e.version_weight))
            .collect()
    }

    #[test]
    fn the_route_weights_versions_the_caller_accepts() {
        let s = select_endpoints(
            &snapshot(Some(&[("1.0.0", 90), ("1.1.0", 10)])),
            &VersionReq::parse("^1").unwrap(),
        );
        assert!(s.route_applied);
        assert_eq!(
            weights(&s),
            [
                ("127.0.0.1:7003".into(), 10),
                ("127.0.0.1:7004".into(), 10),
                ("127.0.0.1:7001".into(), 90),
                ("127.0.0.1:7002".into(), 90),
            ],
            "the yanked 1.2.0 and the unaccepted 2.0.0 are left out"
        );
    }

    #[test]
    fn without_a_route_every_serving_instance_gets_an_equal_share() {
        let s = select_endpoints(&snapshot(None), &VersionReq::STAR);
        assert!(!s.route_applied);
        let by_version: BTreeMap<String, u32> = s
            .endpoints
            .iter()
            .map(|e| (e.instance.version.to_string(), e.version_weight))
            .collect();
        assert_eq!(
            by_version,
            BTreeMap::from([
                ("1.0.0".into(), 2),
                ("1.1.0".into(), 1),
                ("2.0.0".into(), 1)
            ])
        );
    }

    #[test]
    fn a_route_that_starves_every_accepted_version_falls_back_to_equal_shares() {
        let s = select_endpoints(
            &snapshot(Some(&[("1.0.0", 100), ("1.1.0", 0)])),
            &VersionReq::parse("^1.1").unwrap(),
        );
        assert!(!s.route_applied);
        assert_eq!(
            weights(&s),
            [("127.0.0.1:7003".into(), 1), ("127.0.0.1:7004".into(), 1)]
        );
    }
}
