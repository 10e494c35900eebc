//! The registry's errors, and the one place that decides their gRPC codes and details.

use flotilla_model::{InvalidField, Rejection, ServiceName, VersionReq};
use flotilla_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The domain of every `google.rpc.ErrorInfo` the registry sends.
pub const ERROR_DOMAIN: &str = "registry.flotilla.dev";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidField),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no version of service {:?} is eligible for requirement {requirement}{}",
        .service.as_str(), rejections_summary(.rejected))]
    NoEligibleVersion {
        service: ServiceName,
        requirement: VersionReq,
        rejected: Vec<Rejection>,
    },
    /// A dry run could not compare with the stored versions (one's stored schema is invalid),
    /// or the engine failed (`internal`).
    #[error("{summary}")]
    Comparison { summary: String, internal: bool },
    #[error("the registry is shutting down")]
    ShuttingDown,
}

fn rejections_summary(rejected: &[Rejection]) -> String {
    if rejected.is_empty() {
        return " (it has no versions)".to_owned();
    }
    // The details list every rejection; the message names the first few.
    const SHOWN: usize = 5;
    let details: Vec<&str> = rejected
        .iter()
        .take(SHOWN)
        .map(|r| r.detail.as_str())
        .collect();
    let more = match rejected.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!("; and {n} more"),
    };
    format!(": {}{more}", details.join("; "))
}

impl From<RegistryError> for Status {
    fn from(error: RegistryError) -> Self {
        let message = error.to_string();
        let mut details = ErrorDetails::new();
        let code = match error {
            RegistryError::InvalidArgument(field) => {
                details.add_bad_request_violation(field.field, field.message);
                Code::InvalidArgument
            }
            RegistryError::NoEligibleVersion {
                service, rejected, ..
            } => {
                for rejection in rejected {
                    details.add_precondition_failure_violation(
                        rejection.reason.as_str(),
                        format!("{service}@{}", rejection.version),
                        rejection.detail,
                    );
                }
                details.set_error_info(
                    "NO_ELIGIBLE_VERSION",
                    ERROR_DOMAIN,
                    [("service".to_owned(), service.to_string())],
                );
                Code::NotFound
            }
            RegistryError::Comparison { internal: true, .. } => {
                tracing::error!(error = %message, "the compatibility engine failed");
                Code::Internal
            }
            RegistryError::Comparison { .. } => {
                details.add_precondition_failure_violation(
                    "STORED_SCHEMA",
                    "versions",
                    message.clone(),
                );
                Code::FailedPrecondition
            }
            RegistryError::ShuttingDown => Code::Unavailable,
            RegistryError::Store(store) => return store_status(store, message, details),
        };
        Status::with_error_details(code, message, details)
    }
}

fn store_status(error: StoreError, message: String, mut details: ErrorDetails) -> Status {
    let code = match error {
        StoreError::ServiceNotFound(service) => {
            details.set_resource_info(
                "flotilla.registry.v1.Service",
                service.as_str(),
                "",
                "not found",
            );
            Code::NotFound
        }
        StoreError::VersionNotFound { service, version } => {
            details.set_resource_info(
                "flotilla.registry.v1.Version",
                format!("{service}@{version}"),
                "",
                "not found",
            );
            Code::NotFound
        }
        StoreError::InstanceNotFound(id) => {
            details.set_error_info(
                "INSTANCE_NOT_FOUND",
                ERROR_DOMAIN,
                [("instance_id".to_owned(), id.to_string())],
            );
            Code::NotFound
        }
        StoreError::LeaseExpired { id, expired } => {
            details.set_error_info(
                "LEASE_EXPIRED",
                ERROR_DOMAIN,
                [
                    ("instance_id".to_owned(), id.to_string()),
                    ("expired_at_ms".to_owned(), expired.millis().to_string()),
                ],
            );
            Code::NotFound
        }
        StoreError::ServiceExists(service) => {
            details.set_resource_info(
                "flotilla.registry.v1.Service",
                service.as_str(),
                "",
                "exists",
            );
            Code::AlreadyExists
        }
        StoreError::VersionConflict {
            service, version, ..
        } => {
            details.set_resource_info(
                "flotilla.registry.v1.Version",
                format!("{service}@{version}"),
                "",
                "exists with other content",
            );
            Code::AlreadyExists
        }
        StoreError::IllegalTransition {
            service,
            version,
            source,
        } => {
            details.add_precondition_failure_violation(
                "LIFECYCLE",
                format!("{service}@{version}"),
                source.to_string(),
            );
            Code::FailedPrecondition
        }
        StoreError::Precondition { field, message } => {
            details.add_precondition_failure_violation("REFERENCE", field, message);
            Code::FailedPrecondition
        }
        StoreError::Rejected(rejection) => {
            for violation in rejection.violations {
                details.add_precondition_failure_violation(
                    violation.rule,
                    violation.subject,
                    violation.description,
                );
            }
            details.set_error_info("INCOMPATIBLE_VERSION", ERROR_DOMAIN, []);
            Code::FailedPrecondition
        }
        StoreError::Unavailable(_) => Code::Unavailable,
        // The registry never touches the orchestrator's tables.
        StoreError::RolloutNotFound(_)
        | StoreError::RolloutActive { .. }
        | StoreError::RolloutConflict { .. }
        | StoreError::LeaseLost { .. }
        | StoreError::Internal(_) => {
            tracing::error!(error = %message, "store failure");
            Code::Internal
        }
    };
    Status::with_error_details(code, message, details)
}

#[cfg(test)]
mod tests {
    use flotilla_model::{InstanceId, Timestamp};

    use super::*;

    #[test]
    fn invalid_fields_are_named_in_bad_request_details() {
        let status = Status::from(RegistryError::from(InvalidField::new("version", "bad")));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(
            (violation.field.as_str(), violation.description.as_str()),
            ("version", "bad")
        );
    }

    #[test]
    fn an_expired_lease_is_not_found_with_its_reason() {
        let id = InstanceId::from_trusted("67e55044-10b1-426f-9247-bb680e5fe0c8".into());
        let status = Status::from(RegistryError::from(StoreError::LeaseExpired {
            id,
            expired: Timestamp(5),
        }));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "LEASE_EXPIRED"
        );
    }

    #[test]
    fn unavailable_stores_say_so() {
        let status = Status::from(RegistryError::from(StoreError::Unavailable("down".into())));
        assert_eq!(status.code(), Code::Unavailable);
    }
}
