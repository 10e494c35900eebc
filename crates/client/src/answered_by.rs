//! Who answered a call, from the `x-flotilla-*` response headers a Flotilla server adds.

pub use flotilla_proto::headers::{INSTANCE_HEADER, SCHEMA_HEADER, VERSION_HEADER};

use tonic::metadata::MetadataMap;

/// The instance that answered a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnsweredBy {
    /// Its version, e.g. `1.1.0`.
    pub version: String,
    /// Its registry instance id.
    pub instance_id: String,
    /// The fingerprint of its version's schema, when the server sends one.
    pub schema_fingerprint: Option<String>,
}

impl AnsweredBy {
    /// Reads the headers from response metadata (also found on a failed call's `Status`).
    /// `None` unless both the version and the instance are there.
    pub fn from_metadata(metadata: &MetadataMap) -> Option<Self> {
        let text = |name: &str| {
            metadata
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Some(Self {
            version: text(VERSION_HEADER)?,
            instance_id: text(INSTANCE_HEADER)?,
            schema_fingerprint: text(SCHEMA_HEADER),
        })
    }
}

/// Who answered `response`, from its `x-flotilla-*` headers; `None` when the server sent none.
pub fn answered_by<T>(response: &tonic::Response<T>) -> Option<AnsweredBy> {
    AnsweredBy::from_metadata(response.metadata())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_headers_and_needs_version_and_instance() {
        let mut response = tonic::Response::new(());
        response
            .metadata_mut()
            .insert(VERSION_HEADER, "1.1.0".parse().unwrap());
        assert_eq!(answered_by(&response), None);
        response
            .metadata_mut()
            .insert(INSTANCE_HEADER, "i-1".parse().unwrap());
        assert_eq!(
            answered_by(&response),
            Some(AnsweredBy {
                version: "1.1.0".into(),
                instance_id: "i-1".into(),
                schema_fingerprint: None,
            })
        );
        response
            .metadata_mut()
            .insert(SCHEMA_HEADER, "abc".parse().unwrap());
        assert_eq!(
            answered_by(&response)
                .unwrap()
                .schema_fingerprint
                .as_deref(),
            Some("abc")
        );
    }
}
