//! Every error the API returns, mapped to one gRPC code in one place, with rich details.

use flotilla_model::InvalidField;
use flotilla_store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{platform::PlatformError, preflight::Refusal, registry::RegistryError};

const ERROR_DOMAIN: &str = "flotilla.rollout.v1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The gates before start refused the rollout.
    #[error("rollout of {service} {version} refused: {}", describe(.refusals))]
    Refused {
        service: String,
        version: String,
        refusals: Vec<Refusal>,
    },
    /// The rollout is not in a state the command applies to; nothing was changed.
    #[error("{0}")]
    WrongState(String),
    /// The same, as the rollout's rules refused it.
    #[error(transparent)]
    Transition(#[from] flotilla_model::TransitionError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| format!("{} {}: {}", r.gate, r.subject, r.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        let mut details = ErrorDetails::new();
        let code = match error {
            ApiError::Invalid(field) => {
                details.add_bad_request_violation(field.field, field.message);
                Code::InvalidArgument
            }
            ApiError::Refused { refusals, .. } => {
                for refusal in refusals {
                    details.add_precondition_failure_violation(
                        refusal.gate.as_str(),
                        refusal.subject,
                        refusal.description,
                    );
                }
                details.set_error_info("ROLLOUT_REFUSED", ERROR_DOMAIN, []);
                Code::FailedPrecondition
            }
            ApiError::WrongState(_) | ApiError::Transition(_) => Code::FailedPrecondition,
            // NOT_FOUND for an unknown service or version reads right as it is.
            ApiError::Registry(error) => match error.code {
                Code::NotFound | Code::InvalidArgument => error.code,
                _ => Code::Unavailable,
            },
            ApiError::Platform(_) => {
                details.add_precondition_failure_violation("PLATFORM", "artifact", message.clone());
                Code::FailedPrecondition
            }
            ApiError::Store(store) => match store {
                StoreError::RolloutNotFound(id) => {
                    details.set_resource_info(
                        "flotilla.rollout.v1.Rollout",
                        id.as_str(),
                        "",
                        "not found",
                    );
                    Code::NotFound
                }
                StoreError::RolloutActive { active, .. } => {
                    details.set_resource_info(
                        "flotilla.rollout.v1.Rollout",
                        active.as_str(),
                        "",
                        "in progress for this service",
                    );
                    Code::AlreadyExists
                }
                StoreError::RolloutConflict { .. } => Code::Aborted,
                StoreError::Unavailable(_) => Code::Unavailable,
                _ => {
                    tracing::error!(error = %message, "store failure");
                    Code::Internal
                }
            },
        };
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use flotilla_model::Gate;

    use super::*;

    #[test]
    fn a_refusal_lists_every_gate_in_the_message_and_the_details() {
        let status: Status = ApiError::Refused {
            service: "greeter".into(),
            version: "2.0.0".into(),
            refusals: vec![Refusal {
                gate: Gate::Consumer,
                subject: "frontend@1.0.0".into(),
                description: "requires greeter ^1.1; 2.0.0 does not satisfy it".into(),
            }],
        }
        .into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "rollout of greeter 2.0.0 refused: CONSUMER frontend@1.0.0: requires greeter ^1.1; \
             2.0.0 does not satisfy it"
        );
        let violations = status
            .get_details_precondition_failure()
            .unwrap()
            .violations;
        assert_eq!(violations[0].r#type, "CONSUMER");
        assert_eq!(violations[0].subject, "frontend@1.0.0");
    }

    #[test]
    fn a_bad_field_is_invalid_argument_naming_it() {
        let status: Status = ApiError::Invalid(InvalidField::new("replicas", "too many")).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "replicas");
    }
}
