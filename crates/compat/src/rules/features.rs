//! Protobuf features, resolved the way protoc and buf resolve them: proto2 and proto3 files behave
//! as the editions `PROTO2` and `PROTO3`, editions files start from their edition's defaults, and
//! a value set explicitly on an element overrides the one it inherits from its parent.
//!
//! `prost-types` does not keep `FileDescriptorProto.edition` nor the `features` field of the
//! options (both are unknown to it), so explicit features and the edition only reach the engine
//! through [`FeatureTable`], which [`super::raw_features`] fills from the encoded descriptors.
//! Without it an editions file is taken as edition 2023 with no explicit features.

use std::collections::HashMap;

/// A file's syntax, as buf names it in `FILE_SAME_SYNTAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Proto2,
    Proto3,
    Editions,
}

impl Syntax {
    /// An unset syntax is proto2, as protoc has it.
    pub(crate) fn parse(syntax: Option<&str>) -> Self {
        match syntax {
            Some("proto3") => Self::Proto3,
            Some("editions") => Self::Editions,
            _ => Self::Proto2,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Proto2 => "proto2",
            Self::Proto3 => "proto3",
            Self::Editions => "editions",
        }
    }
}

/// `google.protobuf.Edition` numbers that change a default the rules look at.
pub(crate) const EDITION_2023: i32 = 1000;
pub(crate) const EDITION_2024: i32 = 1001;

/// Feature values as `google.protobuf.FeatureSet` numbers them; `None` where not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ExplicitFeatures {
    pub field_presence: Option<i32>,
    pub enum_type: Option<i32>,
    pub utf8_validation: Option<i32>,
    pub message_encoding: Option<i32>,
    pub json_format: Option<i32>,
    /// `(pb.cpp).string_type`.
    pub cpp_string_type: Option<i32>,
    /// `(pb.java).utf8_validation`.
    pub java_utf8_validation: Option<i32>,
}

impl ExplicitFeatures {
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Fills what `self` leaves unset from `parent`.
    fn inherit(self, parent: Self) -> Self {
        Self {
            field_presence: self.field_presence.or(parent.field_presence),
            enum_type: self.enum_type.or(parent.enum_type),
            utf8_validation: self.utf8_validation.or(parent.utf8_validation),
            message_encoding: self.message_encoding.or(parent.message_encoding),
            json_format: self.json_format.or(parent.json_format),
            cpp_string_type: self.cpp_string_type.or(parent.cpp_string_type),
            java_utf8_validation: self.java_utf8_validation.or(parent.java_utf8_validation),
        }
    }
}

/// Explicit features and editions read from encoded descriptors, keyed by file name and by the
/// element's fully-qualified name (enum values as `Enum.VALUE`).
#[derive(Debug, Clone, Default)]
pub(crate) struct FeatureTable {
    pub editions: HashMap<String, i32>,
    pub files: HashMap<String, ExplicitFeatures>,
    pub elements: HashMap<String, ExplicitFeatures>,
}

impl FeatureTable {
    pub(crate) fn file(&self, name: &str) -> ExplicitFeatures {
        self.files.get(name).copied().unwrap_or_default()
    }

    pub(crate) fn element(&self, full_name: &str) -> ExplicitFeatures {
        self.elements.get(full_name).copied().unwrap_or_default()
    }

    pub(crate) fn edition(&self, file: &str) -> i32 {
        self.editions.get(file).copied().unwrap_or(EDITION_2023)
    }
}

/// `FeatureSet.FieldPresence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldPresence {
    Explicit,
    Implicit,
    LegacyRequired,
}

/// `FeatureSet.Utf8Validation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Utf8Validation {
    Verify,
    None,
}

impl Utf8Validation {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "VERIFY",
            Self::None => "NONE",
        }
    }
}

/// `FeatureSet.JsonFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonFormat {
    Allow,
    LegacyBestEffort,
}

impl JsonFormat {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "ALLOW",
            Self::LegacyBestEffort => "LEGACY_BEST_EFFORT",
        }
    }
}

/// `pb.CppFeatures.StringType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CppStringType {
    View,
    Cord,
    String,
}

impl CppStringType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::View => "VIEW",
            Self::Cord => "CORD",
            Self::String => "STRING",
        }
    }
}

/// Every feature a rule looks at, resolved for one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub field_presence: FieldPresence,
    pub closed_enum: bool,
    pub utf8_validation: Utf8Validation,
    pub delimited: bool,
    pub json_format: JsonFormat,
    pub cpp_string_type: CppStringType,
    pub java_utf8_verify: bool,
}

impl Resolved {
    /// The defaults of a syntax (and, for editions, of an edition).
    fn defaults(syntax: Syntax, edition: i32) -> Self {
        let proto2 = syntax == Syntax::Proto2;
        Self {
            field_presence: match syntax {
                Syntax::Proto3 => FieldPresence::Implicit,
                _ => FieldPresence::Explicit,
            },
            closed_enum: proto2,
            utf8_validation: if proto2 {
                Utf8Validation::None
            } else {
                Utf8Validation::Verify
            },
            delimited: false,
            json_format: if proto2 {
                JsonFormat::LegacyBestEffort
            } else {
                JsonFormat::Allow
            },
            cpp_string_type: if syntax == Syntax::Editions && edition >= EDITION_2024 {
                CppStringType::View
            } else {
                CppStringType::String
            },
            java_utf8_verify: false,
        }
    }

    /// Applies explicit values; values outside the known enum numbers are ignored, as an
    /// unknown enum number cannot be resolved to anything a rule could compare.
    fn apply(mut self, explicit: ExplicitFeatures) -> Self {
        match explicit.field_presence {
            Some(1) => self.field_presence = FieldPresence::Explicit,
            Some(2) => self.field_presence = FieldPresence::Implicit,
            Some(3) => self.field_presence = FieldPresence::LegacyRequired,
            _ => {}
        }
        match explicit.enum_type {
            Some(1) => self.closed_enum = false,
            Some(2) => self.closed_enum = true,
            _ => {}
        }
        match explicit.utf8_validation {
            Some(2) => self.utf8_validation = Utf8Validation::Verify,
            Some(3) => self.utf8_validation = Utf8Validation::None,
            _ => {}
        }
        match explicit.message_encoding {
            Some(1) => self.delimited = false,
            Some(2) => self.delimited = true,
            _ => {}
        }
        match explicit.json_format {
            Some(1) => self.json_format = JsonFormat::Allow,
            Some(2) => self.json_format = JsonFormat::LegacyBestEffort,
            _ => {}
        }
        match explicit.cpp_string_type {
            Some(1) => self.cpp_string_type = CppStringType::View,
            Some(2) => self.cpp_string_type = CppStringType::Cord,
            Some(3) => self.cpp_string_type = CppStringType::String,
            _ => {}
        }
        match explicit.java_utf8_validation {
            Some(1) => self.java_utf8_verify = false,
            Some(2) => self.java_utf8_verify = true,
            _ => {}
        }
        self
    }
}

/// Resolves an element's features from its own explicit features and its ancestors', nearest
/// first (the element itself, then its oneof or message, up to the file).
pub(crate) fn resolve(
    syntax: Syntax,
    edition: i32,
    chain: impl IntoIterator<Item = ExplicitFeatures>,
) -> Resolved {
    let merged = chain
        .into_iter()
        .fold(ExplicitFeatures::default(), ExplicitFeatures::inherit);
    let defaults = Resolved::defaults(syntax, edition);
    if syntax == Syntax::Editions {
        defaults.apply(merged)
    } else {
        // protoc rejects features outside editions; buf resolves such files by their syntax.
        defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_defaults_follow_protoc() {
        let proto2 = resolve(Syntax::Proto2, 0, []);
        assert_eq!(proto2.field_presence, FieldPresence::Explicit);
        assert!(proto2.closed_enum);
        assert_eq!(proto2.json_format, JsonFormat::LegacyBestEffort);
        let proto3 = resolve(Syntax::Proto3, 0, []);
        assert_eq!(proto3.field_presence, FieldPresence::Implicit);
        assert!(!proto3.closed_enum);
        assert_eq!(proto3.utf8_validation, Utf8Validation::Verify);
    }

    #[test]
    fn the_nearest_explicit_feature_wins_in_editions_only() {
        let field = ExplicitFeatures {
            field_presence: Some(2),
            ..Default::default()
        };
        let file = ExplicitFeatures {
            field_presence: Some(3),
            json_format: Some(2),
            ..Default::default()
        };
        let resolved = resolve(Syntax::Editions, EDITION_2023, [field, file]);
        assert_eq!(resolved.field_presence, FieldPresence::Implicit);
        assert_eq!(resolved.json_format, JsonFormat::LegacyBestEffort);
        let ignored = resolve(Syntax::Proto3, 0, [file]);
        assert_eq!(ignored.json_format, JsonFormat::Allow);
    }

    #[test]
    fn edition_2024_views_strings_in_cpp() {
        assert_eq!(
            resolve(Syntax::Editions, EDITION_2024, []).cpp_string_type,
            CppStringType::View
        );
        assert_eq!(
            resolve(Syntax::Editions, EDITION_2023, []).cpp_string_type,
            CppStringType::String
        );
    }
}
