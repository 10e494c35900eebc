//! What can go wrong building or connecting a fleet client.

use std::time::Duration;

/// An error from [`crate::FleetClientBuilder`]: a bad setting, or a registry that could not give
/// a first endpoint set. Failed calls are `tonic::Status`es, not this.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The requirement does not parse as a semver requirement.
    #[error("{requirement:?} is not a semver requirement: {source}")]
    InvalidRequirement {
        requirement: String,
        #[source]
        source: semver::Error,
    },
    /// The registry URL list does not parse.
    #[error("bad registry URL list {url:?}: {source}")]
    InvalidRegistryUrl {
        url: String,
        #[source]
        source: crate::RegistryUrlError,
    },
    /// The caller schema is not an encoded FileDescriptorSet.
    #[error("the caller schema is not an encoded FileDescriptorSet: {0}")]
    InvalidCallerSchema(#[source] prost::DecodeError),
    /// The registry could not be reached, or broke off before sending a first endpoint set.
    #[error("registry {url} unreachable: {reason}")]
    RegistryUnreachable { url: String, reason: String },
    /// The registry answered, but refused to watch the service (an unknown service, say).
    #[error("the registry refused to watch {service}: {status}")]
    Refused {
        service: String,
        status: Box<tonic::Status>,
    },
    /// No endpoint set arrived within the connect deadline.
    #[error("no endpoint set for {service} from registry {url} within {deadline:?}")]
    NoEndpointSet {
        service: String,
        url: String,
        deadline: Duration,
    },
    /// With `wait_for_endpoints`: no serving instance appeared within the connect deadline.
    #[error(
        "no serving instance of {service} satisfying {requirement} within {deadline:?} ({known} known)"
    )]
    NoEndpoints {
        service: String,
        requirement: String,
        deadline: Duration,
        known: usize,
    },
}

/// `head` followed by each cause beneath it, as "head: cause: cause". A transport error's own
/// text is only "transport error"; what went wrong is in its sources.
pub fn with_causes(head: &str, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut text = head.to_owned();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
