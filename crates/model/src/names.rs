//! Validated identifiers.

use std::fmt;

use crate::validate::{InvalidField, quote};

/// A service name: a DNS label (RFC 1123) that starts with a letter, so it can be a hostname, a
/// Kubernetes object name and a container name as it is.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl TryFrom<String> for ServiceName {
    type Error = InvalidField;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse("service", &text)
    }
}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> Self {
        name.0
    }
}

/// Debug prints the quoted name, as messages that use `{:?}` want it.
impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl ServiceName {
    pub const MAX_LEN: usize = 63;

    /// Checks `text` and names `field` in the error.
    pub fn parse(field: &str, text: &str) -> Result<Self, InvalidField> {
        if text.is_empty() {
            return Err(InvalidField::new(field, "is required"));
        }
        let valid = text.len() <= Self::MAX_LEN
            && text.starts_with(|c: char| c.is_ascii_lowercase())
            && !text.ends_with('-')
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(InvalidField::new(
                field,
                format!(
                    "{} is not a service name: use 1 to 63 lowercase letters, digits and '-', \
                     starting with a letter and not ending with '-'",
                    quote(text)
                ),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// For values read back from storage, which were validated when written.
    pub fn from_trusted(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An instance id: a UUID assigned by the registry at registration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(field: &str, text: &str) -> Result<Self, InvalidField> {
        if text.is_empty() {
            return Err(InvalidField::new(field, "is required"));
        }
        if !is_lowercase_uuid(text) {
            return Err(InvalidField::new(
                field,
                format!("{} is not an instance id (a lowercase UUID)", quote(text)),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn from_trusted(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for a UUID in its canonical lowercase text form.
pub(crate) fn is_lowercase_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels() {
        for good in ["greeter", "demo-frontend", "a", "x1", &"a".repeat(63)] {
            assert!(ServiceName::parse("name", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Greeter",
            "1greeter",
            "greeter-",
            "greet_er",
            "greeter.v1",
            &"a".repeat(64),
        ] {
            let err = ServiceName::parse("name", bad).unwrap_err();
            assert_eq!(err.field, "name");
        }
    }

    #[test]
    fn instance_ids_are_lowercase_uuids() {
        assert!(InstanceId::parse("id", "67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        for bad in [
            "",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e55044",
            "67e55044x10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert!(InstanceId::parse("id", bad).is_err(), "{bad}");
        }
    }
}
