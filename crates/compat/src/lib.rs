//! Protobuf compatibility: which changes between two schemas break their users.
//!
//! [`check`] compares two `FileDescriptorSet`s with buf's breaking-change rules ([`RULES`], with
//! buf's own ids and categories) and returns every [`Violation`] of the chosen [`Category`].
//! [`policy`] applies a Confluent-style compatibility mode to a candidate and its earlier
//! versions, and [`semver`] turns a diff into the smallest semver bump it allows.
//!
//! [`validate_encoded`] is the one rule for what a valid schema is (see
//! [`rules::validation`]'s documentation): the registry applies it on publish, and the
//! comparisons apply it to both sides, so a schema accepted once is always readable later.
//!
//! Pure: no I/O, no clock. Inputs that are not valid schemas give an error, never a panic.

mod additions;
pub mod policy;
pub mod quote;
mod rules;
pub mod semver;

use std::{fmt, panic::AssertUnwindSafe};

pub use quote::{bounded, quote};
pub use rules::validation::{default_json_name, default_json_name_collisions};
pub use rules::{RULES, RuleInfo};

/// buf's rule categories, strictest first. Categories overlap but do not nest: each rule lists
/// its own (see [`RULES`]); e.g. `FIELD_NO_DELETE_UNLESS_NAME_RESERVED` is in WIRE_JSON, not FILE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    /// Source compatibility of generated code, per file.
    File,
    /// Source compatibility of generated code, per package: elements may move between files.
    Package,
    /// Compatibility of the binary and JSON encodings.
    WireJson,
    /// Compatibility of the binary encoding.
    Wire,
}

impl Category {
    pub const ALL: [Category; 4] = [Self::File, Self::Package, Self::WireJson, Self::Wire];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "FILE",
            Self::Package => "PACKAGE",
            Self::WireJson => "WIRE_JSON",
            Self::Wire => "WIRE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(text))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a violation is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Location {
    /// The file, in the current schema when the element still exists there, else in the previous.
    pub file: String,
    /// The fully-qualified element, without a leading dot: `pkg.Message.field`, `pkg.Service.Rpc`,
    /// `pkg.Enum.VALUE`; empty for a whole file.
    pub element: String,
    /// The field or enum value number, when the rule is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<i32>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if !self.element.is_empty() {
            write!(f, ":{}", self.element)?;
        }
        if let Some(number) = self.number {
            write!(f, " (#{number})")?;
        }
        Ok(())
    }
}

/// One breaking change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Violation {
    /// buf's rule id, e.g. `FIELD_NO_DELETE`.
    pub rule: &'static str,
    /// The categories the rule belongs to.
    pub categories: &'static [Category],
    pub location: Location,
    /// What changed, in words.
    pub message: String,
}

/// What a comparison found: the violations of the chosen category, and whether the current
/// schema adds anything the previous one lacked (what decides a minor against a patch bump).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Elements present in the current schema and not in the previous one, fully qualified
    /// (files by name), sorted.
    pub additions: Vec<String>,
}

/// Why a comparison could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompatError {
    #[error("the {which} schema is not a serialized FileDescriptorSet: {reason}")]
    Decode { which: Side, reason: String },
    #[error("the {which} schema is not a valid, self-contained FileDescriptorSet: {reason}")]
    InvalidSchema { which: Side, reason: String },
    /// The engine failed on schemas that validated: a defect of the engine, never the input's.
    #[error("the comparison failed unexpectedly on valid schemas")]
    Internal,
}

/// Why bytes are not a valid schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSchema {
    #[error("is not a serialized google.protobuf.FileDescriptorSet: {0}")]
    Decode(String),
    #[error("is not a valid, self-contained FileDescriptorSet: {0}")]
    Invalid(String),
}

/// Checks that `bytes` are a valid schema: an encoded `FileDescriptorSet` whose files declare a
/// known syntax (and, for editions, a supported edition), import only files of the set and
/// never themselves, and whose references all resolve. What this accepts, [`check_encoded`],
/// [`check`] and [`policy::caller_compatibility`] accept as either side.
pub fn validate_encoded(bytes: &[u8]) -> Result<(), InvalidSchema> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(bytes)
        .map_err(|e| InvalidSchema::Decode(e.to_string()))?;
    rules::validation::validated_pool(&set, &rules::raw_features::read(bytes))
        .map(drop)
        .map_err(InvalidSchema::Invalid)
}

/// Runs a comparison, turning a panic of the engine into [`CompatError::Internal`]: a request
/// that reaches a defect fails alone, and whoever holds a lock around the call keeps it sound.
fn guarded<T>(compare: impl FnOnce() -> Result<T, CompatError>) -> Result<T, CompatError> {
    std::panic::catch_unwind(AssertUnwindSafe(compare)).unwrap_or(Err(CompatError::Internal))
}

/// Which of the two schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Previous,
    Current,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Previous => "previous",
            Self::Current => "current",
        })
    }
}

/// Compares `current` with `previous` under every rule of `category`, as
/// `buf breaking current --against previous` does with `breaking: use: [category]`.
///
/// Files under `google/protobuf/` (the well-known types, which every compiler ships) are not
/// checked: they are imports, as `buf breaking --exclude-imports` treats them.
///
/// `prost-types` descriptors carry neither the edition of an editions file nor the features set
/// in it, so here an editions file counts as edition 2023 with default features; use
/// [`check_encoded`] to judge editions schemas fully.
pub fn check(
    previous: &prost_types::FileDescriptorSet,
    current: &prost_types::FileDescriptorSet,
    category: Category,
) -> Result<Report, CompatError> {
    guarded(|| rules::check(previous, current, category))
}

/// [`check`] on serialized `FileDescriptorSet`s.
///
/// Unlike [`check`], this also sees what `prost-types` cannot hold: the edition of editions
/// files and the features set explicitly in them (`features.field_presence`, `(pb.cpp)` …), so
/// prefer it for editions schemas.
pub fn check_encoded(
    previous: &[u8],
    current: &[u8],
    category: Category,
) -> Result<Report, CompatError> {
    use prost::Message;
    let decode = |which, bytes: &[u8]| {
        prost_types::FileDescriptorSet::decode(bytes).map_err(|e| CompatError::Decode {
            which,
            reason: e.to_string(),
        })
    };
    // The bytes are read a second time for the editions features prost-types drops.
    guarded(|| {
        rules::check_with_features(
            (
                &decode(Side::Previous, previous)?,
                rules::raw_features::read(previous),
            ),
            (
                &decode(Side::Current, current)?,
                rules::raw_features::read(current),
            ),
            category,
        )
    })
}
