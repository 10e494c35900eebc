//! Parsing of the free-form strings that arrive on the wire.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};

pub use flotilla_compat::quote::{Quoted, quote};

/// The longest version or requirement accepted, in characters.
pub const MAX_VERSION_CHARS: usize = 256;

/// A field of a request that failed validation, named as the wire names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field's path in the request, e.g. `dependencies[2].requirement`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Parses a semver 2.0 version such as `1.4.0` or `2.0.0-rc.1`.
pub fn parse_version(field: &str, text: &str) -> Result<Version, InvalidField> {
    if text.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    too_long(field, text, MAX_VERSION_CHARS)?;
    Version::parse(text).map_err(|e| {
        InvalidField::new(
            field,
            format!("{} is not a semver 2.0 version: {e}", quote(text)),
        )
    })
}

/// Parses a semver requirement such as `^1.1` or `>=1.2, <3`; an empty string means any version.
pub fn parse_requirement(field: &str, text: &str) -> Result<VersionReq, InvalidField> {
    if text.trim().is_empty() {
        return Ok(VersionReq::STAR);
    }
    too_long(field, text, MAX_VERSION_CHARS)?;
    VersionReq::parse(text).map_err(|e| {
        InvalidField::new(
            field,
            format!("{} is not a semver requirement: {e}", quote(text)),
        )
    })
}

/// Refuses `text` when it has more than `max_chars` characters, quoting it short.
fn too_long(field: &str, text: &str, max_chars: usize) -> Result<(), InvalidField> {
    if text.chars().nth(max_chars).is_some() {
        return Err(InvalidField::new(
            field,
            format!("{} is longer than {max_chars} characters", quote(text)),
        ));
    }
    Ok(())
}

/// Checks a `host:port` address: a DNS name, an IPv4 address or a bracketed IPv6 address, and a
/// port from 1 to 65535.
pub fn parse_address(field: &str, text: &str) -> Result<String, InvalidField> {
    let bad =
        |why: &str| InvalidField::new(field, format!("{} is not host:port: {why}", quote(text)));
    let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(bad("the port must be a number from 1 to 65535")),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("the bracketed host is not an IPv6 address"))?;
    } else if host.parse::<std::net::Ipv4Addr>().is_err() && !is_dns_name(host) {
        return Err(bad("the host is not a DNS name or an IP address"));
    }
    Ok(text.to_owned())
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks a label or metadata map: keys of 1 to 63 characters from `[A-Za-z0-9._/-]`, values of at
/// most 256 characters, at most 64 entries.
pub fn validate_labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), InvalidField> {
    if labels.len() > 64 {
        return Err(InvalidField::new(field, "has more than 64 entries"));
    }
    for (key, value) in labels {
        let key_ok = (1..=63).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'));
        if !key_ok {
            return Err(InvalidField::new(
                format!("{field}[{}]", quote(key)),
                "keys have 1 to 63 characters from [A-Za-z0-9._/-]",
            ));
        }
        if value.len() > 256 {
            return Err(InvalidField::new(
                format!("{field}[{}]", quote(key)),
                "values have at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// Checks free text against a length limit, and optionally that it is not blank.
pub fn validate_text(
    field: &str,
    text: &str,
    max_chars: usize,
    required: bool,
) -> Result<(), InvalidField> {
    if required && text.trim().is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    if text.chars().nth(max_chars).is_some() {
        return Err(InvalidField::new(
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_semver_two() {
        assert_eq!(
            parse_version("v", "2.0.0-rc.1").unwrap().pre.as_str(),
            "rc.1"
        );
        for bad in ["", "1.0", "v1.0.0", "01.0.0", "1.0.0-"] {
            let err = parse_version("version", bad).unwrap_err();
            assert_eq!(err.field, "version", "{bad:?}");
        }
    }

    #[test]
    fn empty_requirement_means_any_version() {
        let req = parse_requirement("r", " ").unwrap();
        assert!(req.matches(&Version::new(0, 0, 1)));
        assert!(parse_requirement("r", "^1.x.y").is_err());
        assert!(parse_requirement("r", ">=1.2, <3").is_ok());
    }

    #[test]
    fn addresses_need_a_host_and_a_port() {
        for good in [
            "127.0.0.1:50051",
            "greeter-1.svc:80",
            "[::1]:8080",
            "localhost:1",
        ] {
            assert!(parse_address("a", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "host",
            "host:0",
            "host:65536",
            ":80",
            "::1:80",
            "bad_host:80",
            "[zz]:1",
        ] {
            assert!(parse_address("a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        let mut labels = BTreeMap::from([("git_sha".to_owned(), "4f1c".to_owned())]);
        assert!(validate_labels("labels", &labels).is_ok());
        labels.insert("bad key".into(), String::new());
        assert_eq!(
            validate_labels("labels", &labels).unwrap_err().field,
            "labels[\"bad key\"]"
        );
    }
}
