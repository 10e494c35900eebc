//! What can go wrong talking to the orchestrator, and how a refusal reads: the gRPC status code
//! and message, then one line per rich error detail (google.rpc.PreconditionFailure, BadRequest,
//! ResourceInfo, ErrorInfo), since those say which gate, field or rollout it was about.

use std::{fmt, io};

use tonic::{Code, Status};
use tonic_types::StatusExt;

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Arguments that parse but do not fit together, e.g. `--steps` with `--strategy rolling`.
    #[error("{0}")]
    Usage(String),

    #[error("{url:?} is not an orchestrator address (e.g. http://127.0.0.1:50061)")]
    BadUrl {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },

    #[error("cannot reach the orchestrator at {url}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },

    /// The orchestrator answered with an error status.
    #[error("{rpc} failed: {}", StatusText(.status))]
    Rpc { rpc: &'static str, status: Status },

    /// The watch stream closed while the rollout was still going (or before its first update).
    #[error("the watch of rollout {id} ended before the rollout did ({last_seen})")]
    StreamEnded { id: String, last_seen: String },

    #[error("ListRollouts answered a page token with the same token; stopped paging")]
    PagingLoop,

    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),

    #[error("writing the output")]
    Output(#[source] io::Error),
}

impl RolloutError {
    /// Every error is 2, as usage errors and bad inputs are: a script tells "the rollout was
    /// aborted" (1) from "we do not know how it went" (2).
    pub fn exit_code(&self) -> u8 {
        crate::EXIT_BAD_INPUT
    }
}

/// A status as people read it: `CODE: message`, then one indented line per detail.
pub fn status_text(status: &Status) -> String {
    StatusText(status).to_string()
}

struct StatusText<'a>(&'a Status);

impl fmt::Display for StatusText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.0;
        write!(f, "{}", code_name(status.code()))?;
        if !status.message().is_empty() {
            write!(f, ": {}", status.message())?;
        }
        // Details that do not decode are left out: the code and message still stand.
        let details = status.get_error_details();
        if let Some(failure) = details.precondition_failure() {
            for v in &failure.violations {
                write!(f, "\n  {} {}: {}", v.r#type, v.subject, v.description)?;
            }
        }
        if let Some(bad_request) = details.bad_request() {
            for v in &bad_request.field_violations {
                write!(f, "\n  field {}: {}", v.field, v.description)?;
            }
        }
        if let Some(resource) = details.resource_info() {
            write!(
                f,
                "\n  {} {:?}",
                resource.resource_type, resource.resource_name
            )?;
            if !resource.owner.is_empty() {
                write!(f, " (owner {})", resource.owner)?;
            }
            if !resource.description.is_empty() {
                write!(f, ": {}", resource.description)?;
            }
        }
        if let Some(info) = details.error_info() {
            write!(f, "\n  reason {}", info.reason)?;
            if !info.domain.is_empty() {
                write!(f, " ({})", info.domain)?;
            }
            // HashMap order changes from run to run; sorted, the line is stable.
            let mut metadata: Vec<_> = info.metadata.iter().collect();
            metadata.sort();
            for (key, value) in metadata {
                write!(f, " {key}={value}")?;
            }
        }
        Ok(())
    }
}

/// The code as gRPC spells it (`FAILED_PRECONDITION`), which is what grpcurl, the docs and the
/// orchestrator's own comments use; tonic's Debug form is `FailedPrecondition`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn a_refused_start_lists_every_violation() {
        let mut details = ErrorDetails::new();
        details
            .add_precondition_failure_violation(
                "CONSUMER",
                "frontend@1.0.0",
                "requires greeter ^1.1; 2.0.0 does not satisfy it",
            )
            .add_precondition_failure_violation(
                "COMPATIBILITY",
                "greeter@1.1.0",
                "2 breaking changes against 2.0.0",
            );
        let status = Status::with_error_details(
            Code::FailedPrecondition,
            "rollout of greeter 2.0.0 refused by 2 gates",
            details,
        );
        assert_eq!(
            status_text(&status),
            "FAILED_PRECONDITION: rollout of greeter 2.0.0 refused by 2 gates\n\
             \x20 CONSUMER frontend@1.0.0: requires greeter ^1.1; 2.0.0 does not satisfy it\n\
             \x20 COMPATIBILITY greeter@1.1.0: 2 breaking changes against 2.0.0"
        );
        let error = RolloutError::Rpc {
            rpc: "StartRollout",
            status,
        };
        assert!(
            error
                .to_string()
                .starts_with("StartRollout failed: FAILED_PRECONDITION: rollout of greeter"),
            "{error}"
        );
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn field_violations_resource_and_error_info() {
        let mut details = ErrorDetails::new();
        details
            .add_bad_request_violation("strategy.canary.steps[1]", "a weight is 1 to 100")
            .set_resource_info(
                "flotilla.rollout.v1.Rollout",
                "0f8fad5b-d9cb-469f-a165-70867728950e",
                "orchestrator-a",
                "not found",
            )
            .set_error_info(
                "ROLLOUT_IN_PROGRESS",
                "orchestrator.flotilla.dev",
                [
                    ("service".to_owned(), "greeter".to_owned()),
                    ("rollout".to_owned(), "abc".to_owned()),
                ],
            );
        let status = Status::with_error_details(Code::InvalidArgument, "bad", details);
        assert_eq!(
            status_text(&status),
            "INVALID_ARGUMENT: bad\n\
             \x20 field strategy.canary.steps[1]: a weight is 1 to 100\n\
             \x20 flotilla.rollout.v1.Rollout \"0f8fad5b-d9cb-469f-a165-70867728950e\" (owner orchestrator-a): not found\n\
             \x20 reason ROLLOUT_IN_PROGRESS (orchestrator.flotilla.dev) rollout=abc service=greeter"
        );
    }

    #[test]
    fn a_plain_status_is_its_code_and_message() {
        assert_eq!(
            status_text(&Status::unavailable("connection refused")),
            "UNAVAILABLE: connection refused"
        );
        assert_eq!(status_text(&Status::new(Code::Internal, "")), "INTERNAL");
    }
}
