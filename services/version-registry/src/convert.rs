//! Between the wire (flotilla.registry.v1) and the model: requests are validated here, once;
//! replies are built in [`responses`].

use std::collections::BTreeMap;

use flotilla_compat::policy::Against;
use flotilla_model::{
    self as model, Artifact, CompatibilityMode, CompatibilityPolicy, Dependency, InvalidField,
    LifecycleState, RuleCategory, Schema, ServiceName, ServingStatus, VersionReq,
};
use flotilla_proto::registry::v1 as pb;

pub fn service_name(field: &str, text: &str) -> Result<ServiceName, InvalidField> {
    ServiceName::parse(field, text)
}

pub fn policy(
    field: &str,
    policy: Option<&pb::CompatibilityPolicy>,
) -> Result<CompatibilityPolicy, InvalidField> {
    let Some(policy) = policy else {
        return Ok(CompatibilityPolicy::default());
    };
    let mode = match pb::CompatibilityMode::try_from(policy.mode) {
        Ok(pb::CompatibilityMode::Unspecified) => CompatibilityMode::default(),
        Ok(pb::CompatibilityMode::None) => CompatibilityMode::None,
        Ok(pb::CompatibilityMode::Backward) => CompatibilityMode::Backward,
        Ok(pb::CompatibilityMode::BackwardTransitive) => CompatibilityMode::BackwardTransitive,
        Ok(pb::CompatibilityMode::Forward) => CompatibilityMode::Forward,
        Ok(pb::CompatibilityMode::ForwardTransitive) => CompatibilityMode::ForwardTransitive,
        Ok(pb::CompatibilityMode::Full) => CompatibilityMode::Full,
        Ok(pb::CompatibilityMode::FullTransitive) => CompatibilityMode::FullTransitive,
        Err(_) => return Err(unknown_enum(&format!("{field}.mode"), policy.mode)),
    };
    let category = match pb::RuleCategory::try_from(policy.category) {
        Ok(pb::RuleCategory::Unspecified) => CompatibilityPolicy::default().category,
        Ok(pb::RuleCategory::File) => RuleCategory::File,
        Ok(pb::RuleCategory::Package) => RuleCategory::Package,
        Ok(pb::RuleCategory::WireJson) => RuleCategory::WireJson,
        Ok(pb::RuleCategory::Wire) => RuleCategory::Wire,
        Err(_) => return Err(unknown_enum(&format!("{field}.category"), policy.category)),
    };
    Ok(CompatibilityPolicy { mode, category })
}

fn unknown_enum(field: &str, value: i32) -> InvalidField {
    InvalidField::new(field, format!("{value} is not a known value"))
}

pub fn new_service(req: pb::CreateServiceRequest) -> Result<model::NewService, InvalidField> {
    model::validate_text("owner", &req.owner, 256, false)?;
    model::validate_text("description", &req.description, 4096, false)?;
    Ok(model::NewService {
        name: service_name("name", &req.name)?,
        owner: req.owner,
        description: req.description,
        policy: policy("policy", req.policy.as_ref())?,
    })
}

/// A schema from FileDescriptorSet bytes.
pub fn schema(field: &str, bytes: &[u8]) -> Result<Schema, InvalidField> {
    if bytes.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    Schema::from_bytes(bytes).map_err(|e| InvalidField::new(field, e.to_string()))
}

pub fn new_version(req: pb::PublishVersionRequest) -> Result<model::NewVersion, InvalidField> {
    let service = service_name("service", &req.service)?;
    let version = model::parse_version("version", &req.version)?;
    let schema = schema("file_descriptor_set", &req.file_descriptor_set)?;
    let artifact = req.artifact.unwrap_or_default();
    model::validate_text("artifact.image", &artifact.image, 512, false)?;
    if artifact.command.len() > 256 || artifact.command.iter().any(|a| a.len() > 4096) {
        return Err(InvalidField::new(
            "artifact.command",
            "has at most 256 arguments of at most 4096 characters",
        ));
    }
    if artifact
        .command
        .first()
        .is_some_and(|program| program.trim().is_empty())
    {
        return Err(InvalidField::new(
            "artifact.command[0]",
            "the program must not be blank",
        ));
    }
    let mut dependencies = Vec::with_capacity(req.dependencies.len());
    for (i, dependency) in req.dependencies.iter().enumerate() {
        let dependency = Dependency {
            service: service_name(&format!("dependencies[{i}].service"), &dependency.service)?,
            requirement: model::parse_requirement(
                &format!("dependencies[{i}].requirement"),
                &dependency.requirement,
            )?,
        };
        if dependency.service == service {
            return Err(InvalidField::new(
                format!("dependencies[{i}].service"),
                "a version cannot depend on its own service",
            ));
        }
        if dependencies
            .iter()
            .any(|d: &Dependency| d.service == dependency.service)
        {
            return Err(InvalidField::new(
                format!("dependencies[{i}].service"),
                format!("{} is listed twice", dependency.service),
            ));
        }
        dependencies.push(dependency);
    }
    let labels: BTreeMap<String, String> = req.labels.into_iter().collect();
    model::validate_labels("labels", &labels)?;
    Ok(model::NewVersion {
        service,
        version,
        schema,
        artifact: Artifact {
            image: artifact.image,
            command: artifact.command,
        },
        dependencies,
        labels,
    })
}

pub fn target_state(field: &str, value: i32) -> Result<LifecycleState, InvalidField> {
    match pb::LifecycleState::try_from(value) {
        Ok(pb::LifecycleState::Deprecated) => Ok(LifecycleState::Deprecated),
        Ok(pb::LifecycleState::Retired) => Ok(LifecycleState::Retired),
        Ok(pb::LifecycleState::Yanked) => Ok(LifecycleState::Yanked),
        Ok(pb::LifecycleState::Released) => Err(InvalidField::new(
            field,
            "RELEASED is reached only by publishing; choose DEPRECATED, RETIRED or YANKED",
        )),
        Ok(pb::LifecycleState::Unspecified) => Err(InvalidField::new(field, "is required")),
        Err(_) => Err(unknown_enum(field, value)),
    }
}

pub fn serving_status(field: &str, value: i32) -> Result<Option<ServingStatus>, InvalidField> {
    match pb::ServingStatus::try_from(value) {
        Ok(pb::ServingStatus::Unspecified) => Ok(None),
        Ok(pb::ServingStatus::Serving) => Ok(Some(ServingStatus::Serving)),
        Ok(pb::ServingStatus::NotServing) => Ok(Some(ServingStatus::NotServing)),
        Err(_) => Err(unknown_enum(field, value)),
    }
}

pub const DEFAULT_LEASE_TTL_MS: u32 = 10_000;
const LEASE_TTL_RANGE_MS: std::ops::RangeInclusive<u32> = 1_000..=300_000;

pub fn new_instance(req: pb::RegisterInstanceRequest) -> Result<model::NewInstance, InvalidField> {
    let lease_ttl_ms = match req.lease_ttl_ms {
        0 => DEFAULT_LEASE_TTL_MS,
        ttl if LEASE_TTL_RANGE_MS.contains(&ttl) => ttl,
        ttl => {
            return Err(InvalidField::new(
                "lease_ttl_ms",
                format!("{ttl} is outside 1000..=300000"),
            ));
        }
    };
    let metadata: BTreeMap<String, String> = req.metadata.into_iter().collect();
    model::validate_labels("metadata", &metadata)?;
    Ok(model::NewInstance {
        service: service_name("service", &req.service)?,
        version: model::parse_version("version", &req.version)?,
        address: model::parse_address("address", &req.address)?,
        metadata,
        status: serving_status("status", req.status)?.unwrap_or_default(),
        lease_ttl_ms,
    })
}

pub fn weights(weights: &[pb::VersionWeight]) -> Result<Vec<model::VersionWeight>, InvalidField> {
    if weights.is_empty() {
        return Err(InvalidField::new("weights", "needs at least one version"));
    }
    let mut parsed: Vec<model::VersionWeight> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let version = model::parse_version(&format!("weights[{i}].version"), &w.version)?;
        if w.weight > model::Route::MAX_WEIGHT {
            return Err(InvalidField::new(
                format!("weights[{i}].weight"),
                format!(
                    "{} is above the maximum of {}",
                    w.weight,
                    model::Route::MAX_WEIGHT
                ),
            ));
        }
        if parsed.iter().any(|p| p.version == version) {
            return Err(InvalidField::new(
                format!("weights[{i}].version"),
                format!("{version} is listed twice"),
            ));
        }
        parsed.push(model::VersionWeight {
            version,
            weight: w.weight,
        });
    }
    if parsed.iter().all(|w| w.weight == 0) {
        return Err(InvalidField::new(
            "weights",
            "at least one weight must be above 0",
        ));
    }
    Ok(parsed)
}

pub fn requirement(field: &str, text: &str) -> Result<VersionReq, InvalidField> {
    model::parse_requirement(field, text)
}

pub const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

pub fn page_size(value: u32) -> Result<u32, InvalidField> {
    match value {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n <= MAX_PAGE_SIZE => Ok(n),
        n => Err(InvalidField::new(
            "page_size",
            format!("{n} is above {MAX_PAGE_SIZE}"),
        )),
    }
}

/// Why a CheckCompatibility request's `against` cannot be followed.
#[derive(Debug)]
pub enum AgainstError {
    Invalid(InvalidField),
    Unknown(model::Version),
}

/// Which stored versions a dry run compares with.
pub fn against(
    value: i32,
    version_text: &str,
    candidate: &model::Version,
    stored: &[model::VersionRecord],
) -> Result<Against, AgainstError> {
    match pb::Against::try_from(value) {
        Ok(pb::Against::Unspecified) => Ok(Against::Policy),
        Ok(pb::Against::All) => Ok(Against::All),
        Ok(pb::Against::Latest) => Ok(stored
            .iter()
            .filter(|r| r.state != LifecycleState::Yanked && &r.version < candidate)
            .map(|r| r.version.clone())
            .max()
            .map_or(Against::All, Against::Version)),
        Ok(pb::Against::Version) => {
            let version = model::parse_version("against_version", version_text)
                .map_err(AgainstError::Invalid)?;
            if stored.iter().any(|r| r.version == version) {
                Ok(Against::Version(version))
            } else {
                Err(AgainstError::Unknown(version))
            }
        }
        Err(_) => Err(AgainstError::Invalid(unknown_enum("against", value))),
    }
}

mod responses;

pub use responses::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_request() -> pb::PublishVersionRequest {
        pb::PublishVersionRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            file_descriptor_set: flotilla_model::fixtures::greeter_schema_bytes(0),
            artifact: None,
            dependencies: vec![pb::Dependency {
                service: "store".into(),
                requirement: "^2".into(),
            }],
            labels: Default::default(),
        }
    }

    fn field_of(result: Result<model::NewVersion, InvalidField>) -> String {
        result.unwrap_err().field
    }

    #[test]
    fn publish_requests_name_the_bad_field() {
        assert!(new_version(publish_request()).is_ok());
        let mut r = publish_request();
        r.version = "1.0".into();
        assert_eq!(field_of(new_version(r)), "version");
        let mut r = publish_request();
        r.file_descriptor_set = vec![0xff, 0xff, 0xff];
        assert_eq!(field_of(new_version(r)), "file_descriptor_set");
        let mut r = publish_request();
        r.dependencies[0].requirement = "^^2".into();
        assert_eq!(field_of(new_version(r)), "dependencies[0].requirement");
        let mut r = publish_request();
        r.dependencies[0].service = "greeter".into();
        assert_eq!(field_of(new_version(r)), "dependencies[0].service");
        let mut r = publish_request();
        r.labels.insert("bad key".into(), "x".into());
        assert_eq!(field_of(new_version(r)), "labels[\"bad key\"]");
    }

    #[test]
    fn route_weights_are_bounded_and_unique() {
        let w = |version: &str, weight| pb::VersionWeight {
            version: version.into(),
            weight,
        };
        assert!(weights(&[w("1.0.0", 90), w("1.1.0", 10)]).is_ok());
        assert_eq!(weights(&[]).unwrap_err().field, "weights");
        assert_eq!(weights(&[w("1.0.0", 0)]).unwrap_err().field, "weights");
        assert_eq!(
            weights(&[w("1.0.0", 10_001)]).unwrap_err().field,
            "weights[0].weight"
        );
        assert_eq!(
            weights(&[w("1.0.0", 1), w("1.0.0", 2)]).unwrap_err().field,
            "weights[1].version"
        );
    }

    #[test]
    fn unknown_enum_values_are_invalid() {
        let bad = pb::CompatibilityPolicy {
            mode: 42,
            category: 0,
        };
        assert_eq!(
            policy("policy", Some(&bad)).unwrap_err().field,
            "policy.mode"
        );
        assert_eq!(target_state("state", 0).unwrap_err().field, "state");
        assert!(target_state("state", pb::LifecycleState::Released as i32).is_err());
        assert_eq!(serving_status("status", 9).unwrap_err().field, "status");
    }

    #[test]
    fn lease_ttls_have_a_default_and_bounds() {
        let req = |ttl| pb::RegisterInstanceRequest {
            service: "greeter".into(),
            version: "1.0.0".into(),
            address: "127.0.0.1:7000".into(),
            lease_ttl_ms: ttl,
            ..Default::default()
        };
        assert_eq!(
            new_instance(req(0)).unwrap().lease_ttl_ms,
            DEFAULT_LEASE_TTL_MS
        );
        assert_eq!(new_instance(req(999)).unwrap_err().field, "lease_ttl_ms");
        assert_eq!(
            new_instance(req(300_001)).unwrap_err().field,
            "lease_ttl_ms"
        );
    }
}
