//! Why a Flotilla server could not start or stopped serving.

use std::time::Duration;

use flotilla_model::SchemaError;

/// Why [`FleetServerBuilder::serve`](crate::FleetServerBuilder::serve) failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A builder setting is unusable (a bad service name, address, lease or endpoint).
    #[error("invalid {field}: {reason}")]
    InvalidSetting {
        /// The builder setting, e.g. `advertise`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The service's descriptor set is missing or not a valid, self-contained schema.
    #[error("the descriptor set {0}")]
    Schema(#[from] SchemaError),

    /// The registry did not answer within the startup wait.
    #[error("the registry at {endpoint} is unreachable (waited {waited:?}): {reason}")]
    RegistryUnreachable {
        /// The registry endpoint dialled.
        endpoint: String,
        /// How long the server kept trying.
        waited: Duration,
        /// The last error seen.
        reason: String,
    },

    /// The registry refused the version: the compatibility gate (FAILED_PRECONDITION), different
    /// content under the same version (ALREADY_EXISTS), or a field it rejects (INVALID_ARGUMENT).
    #[error(
        "the registry refused to publish {service} {version} ({code:?}): {message}{}",
        list_violations(violations)
    )]
    PublishRefused {
        /// The service name.
        service: String,
        /// The version refused.
        version: String,
        /// The registry's status code.
        code: tonic::Code,
        /// The registry's status message, which says why.
        message: String,
        /// Each breaking change the gate found, as `RULE: subject` (from the status's
        /// PreconditionFailure details); empty for other refusals.
        violations: Vec<String>,
    },

    /// The registry answered a startup call (create the service, register the instance) with an
    /// error.
    #[error("the registry failed to {action} ({code:?}): {message}")]
    Registry {
        /// What the server asked for, e.g. `register the instance`.
        action: &'static str,
        /// The registry's status code.
        code: tonic::Code,
        /// The registry's status message.
        message: String,
    },

    /// Reflection could not be built from the descriptor set, or serving gRPC failed.
    #[error(transparent)]
    Shell(#[from] flotilla_shell::ShellError),

    /// The listener's local address could not be read.
    #[error("reading the listener's address: {0}")]
    Listener(#[source] std::io::Error),
}

fn list_violations(violations: &[String]) -> String {
    if violations.is_empty() {
        String::new()
    } else {
        format!(" [{}]", violations.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_status_message_and_each_violation() {
        let error = ServerError::PublishRefused {
            service: "greeter".into(),
            version: "1.1.0".into(),
            code: tonic::Code::FailedPrecondition,
            message: "publish refused: 1 breaking change(s)".into(),
            violations: vec!["FIELD_NO_DELETE: demo.HelloRequest.name".into()],
        };
        assert_eq!(
            error.to_string(),
            "the registry refused to publish greeter 1.1.0 (FailedPrecondition): publish \
             refused: 1 breaking change(s) [FIELD_NO_DELETE: demo.HelloRequest.name]"
        );
    }

    #[test]
    fn a_refusal_without_violations_ends_at_the_message() {
        let error = ServerError::PublishRefused {
            service: "greeter".into(),
            version: "1.0.0".into(),
            code: tonic::Code::AlreadyExists,
            message: "artifact differs".into(),
            violations: vec![],
        };
        assert!(
            error
                .to_string()
                .ends_with("(AlreadyExists): artifact differs")
        );
    }
}
