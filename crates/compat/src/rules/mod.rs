//! buf's breaking-change rules. The table is buf's (`buf config ls-breaking-rules --version v2`),
//! without buf's CSR category, which Flotilla does not offer; each rule's check lives in the
//! module for the element it is about.

mod cardinality;
mod enums;
pub(crate) mod features;
mod field;
mod field_defaults;
mod field_strings;
mod field_types;
mod fields;
mod file_options;
mod files;
mod messages;
mod packages;
mod pairs;
mod ranges;
pub(crate) mod raw_features;
pub(crate) mod schema;
mod services;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod validation;

use prost_types::FileDescriptorSet;

use self::features::FeatureTable;
use self::pairs::{Diff, Finding};
use self::schema::Schema;
use crate::{Category, CompatError, Report, Side, Violation};

/// A rule: its buf id, the categories it belongs to, and what it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    pub id: &'static str,
    pub categories: &'static [Category],
    pub purpose: &'static str,
}

impl RuleInfo {
    /// The rule with this id.
    pub fn by_id(id: &str) -> Option<&'static RuleInfo> {
        RULES.iter().find(|r| r.id == id)
    }
}

/// Every rule, in buf's order.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: "EXTENSION_NO_DELETE",
        categories: &[Category::File],
        purpose: "Checks that extensions are not deleted from a given file.",
    },
    RuleInfo {
        id: "SERVICE_NO_DELETE",
        categories: &[Category::File],
        purpose: "Checks that services are not deleted from a given file.",
    },
    RuleInfo {
        id: "ENUM_NO_DELETE",
        categories: &[Category::File],
        purpose: "Checks that enums are not deleted from a given file.",
    },
    RuleInfo {
        id: "FILE_NO_DELETE",
        categories: &[Category::File],
        purpose: "Checks that files are not deleted.",
    },
    RuleInfo {
        id: "MESSAGE_NO_DELETE",
        categories: &[Category::File],
        purpose: "Checks that messages are not deleted from a given file.",
    },
    RuleInfo {
        id: "ENUM_SAME_TYPE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that enums have the same type (open vs closed).",
    },
    RuleInfo {
        id: "FIELD_SAME_CARDINALITY",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that fields have the same cardinalities in a given message.",
    },
    RuleInfo {
        id: "FIELD_SAME_CPP_STRING_TYPE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that fields have the same C++ string type, based on ctype field option or (pb.cpp).string_type feature.",
    },
    RuleInfo {
        id: "FIELD_SAME_JAVA_UTF8_VALIDATION",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that fields have the same Java string UTF8 validation, based on java_string_check_utf8 file option or (pb.java).utf8_validation feature.",
    },
    RuleInfo {
        id: "FIELD_SAME_JSTYPE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that fields have the same value for the jstype option.",
    },
    RuleInfo {
        id: "FIELD_SAME_UTF8_VALIDATION",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that string fields have the same UTF8 validation mode.",
    },
    RuleInfo {
        id: "FILE_SAME_CC_ENABLE_ARENAS",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the cc_enable_arenas option.",
    },
    RuleInfo {
        id: "FILE_SAME_CC_GENERIC_SERVICES",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the cc_generic_services option.",
    },
    RuleInfo {
        id: "FILE_SAME_CSHARP_NAMESPACE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the csharp_namespace option.",
    },
    RuleInfo {
        id: "FILE_SAME_GO_PACKAGE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the go_package option.",
    },
    RuleInfo {
        id: "FILE_SAME_JAVA_GENERIC_SERVICES",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the java_generic_services option.",
    },
    RuleInfo {
        id: "FILE_SAME_JAVA_MULTIPLE_FILES",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the java_multiple_files option.",
    },
    RuleInfo {
        id: "FILE_SAME_JAVA_OUTER_CLASSNAME",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the java_outer_classname option.",
    },
    RuleInfo {
        id: "FILE_SAME_JAVA_PACKAGE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the java_package option.",
    },
    RuleInfo {
        id: "FILE_SAME_OBJC_CLASS_PREFIX",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the objc_class_prefix option.",
    },
    RuleInfo {
        id: "FILE_SAME_OPTIMIZE_FOR",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the optimize_for option.",
    },
    RuleInfo {
        id: "FILE_SAME_PHP_CLASS_PREFIX",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the php_class_prefix option.",
    },
    RuleInfo {
        id: "FILE_SAME_PHP_METADATA_NAMESPACE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the php_metadata_namespace option.",
    },
    RuleInfo {
        id: "FILE_SAME_PHP_NAMESPACE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the php_namespace option.",
    },
    RuleInfo {
        id: "FILE_SAME_PY_GENERIC_SERVICES",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the py_generic_services option.",
    },
    RuleInfo {
        id: "FILE_SAME_RUBY_PACKAGE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the ruby_package option.",
    },
    RuleInfo {
        id: "FILE_SAME_SWIFT_PREFIX",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same value for the swift_prefix option.",
    },
    RuleInfo {
        id: "RPC_NO_DELETE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that rpcs are not deleted from a given service.",
    },
    RuleInfo {
        id: "ENUM_VALUE_NO_DELETE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that enum values are not deleted from a given enum.",
    },
    RuleInfo {
        id: "EXTENSION_MESSAGE_NO_DELETE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that extension ranges are not deleted from a given message.",
    },
    RuleInfo {
        id: "FIELD_NO_DELETE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that fields are not deleted from a given message.",
    },
    RuleInfo {
        id: "FIELD_SAME_TYPE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that fields have the same types in a given message.",
    },
    RuleInfo {
        id: "FILE_SAME_SYNTAX",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that files have the same syntax.",
    },
    RuleInfo {
        id: "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that messages do not change the no_standard_descriptor_accessor option from false or unset to true.",
    },
    RuleInfo {
        id: "ONEOF_NO_DELETE",
        categories: &[Category::File, Category::Package],
        purpose: "Checks that oneofs are not deleted from a given message.",
    },
    RuleInfo {
        id: "ENUM_SAME_JSON_FORMAT",
        categories: &[Category::File, Category::Package, Category::WireJson],
        purpose: "Checks that enums have the same JSON format support.",
    },
    RuleInfo {
        id: "ENUM_VALUE_SAME_NAME",
        categories: &[Category::File, Category::Package, Category::WireJson],
        purpose: "Checks that enum values have the same name.",
    },
    RuleInfo {
        id: "FIELD_SAME_JSON_NAME",
        categories: &[Category::File, Category::Package, Category::WireJson],
        purpose: "Checks that fields have the same value for the json_name option.",
    },
    RuleInfo {
        id: "FIELD_SAME_NAME",
        categories: &[Category::File, Category::Package, Category::WireJson],
        purpose: "Checks that fields have the same names in a given message.",
    },
    RuleInfo {
        id: "MESSAGE_SAME_JSON_FORMAT",
        categories: &[Category::File, Category::Package, Category::WireJson],
        purpose: "Checks that messages have the same JSON format support.",
    },
    RuleInfo {
        id: "FIELD_SAME_DEFAULT",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that fields have the same default value, if a default is specified.",
    },
    RuleInfo {
        id: "FIELD_SAME_ONEOF",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that fields have the same oneofs in a given message.",
    },
    RuleInfo {
        id: "FILE_SAME_PACKAGE",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that files have the same package.",
    },
    RuleInfo {
        id: "MESSAGE_SAME_REQUIRED_FIELDS",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that messages have no added or deleted required fields.",
    },
    RuleInfo {
        id: "RESERVED_ENUM_NO_DELETE",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that reserved ranges and names are not deleted from a given enum.",
    },
    RuleInfo {
        id: "RESERVED_MESSAGE_NO_DELETE",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that reserved ranges and names are not deleted from a given message.",
    },
    RuleInfo {
        id: "RPC_SAME_CLIENT_STREAMING",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that rpcs have the same client streaming value.",
    },
    RuleInfo {
        id: "RPC_SAME_IDEMPOTENCY_LEVEL",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that rpcs have the same value for the idempotency_level option.",
    },
    RuleInfo {
        id: "RPC_SAME_REQUEST_TYPE",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that rpcs are have the same request type.",
    },
    RuleInfo {
        id: "RPC_SAME_RESPONSE_TYPE",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that rpcs are have the same response type.",
    },
    RuleInfo {
        id: "RPC_SAME_SERVER_STREAMING",
        categories: &[
            Category::File,
            Category::Package,
            Category::WireJson,
            Category::Wire,
        ],
        purpose: "Checks that rpcs have the same server streaming value.",
    },
    RuleInfo {
        id: "PACKAGE_ENUM_NO_DELETE",
        categories: &[Category::Package],
        purpose: "Checks that enums are not deleted from a given package.",
    },
    RuleInfo {
        id: "PACKAGE_EXTENSION_NO_DELETE",
        categories: &[Category::Package],
        purpose: "Checks that extensions are not deleted from a given package.",
    },
    RuleInfo {
        id: "PACKAGE_MESSAGE_NO_DELETE",
        categories: &[Category::Package],
        purpose: "Checks that messages are not deleted from a given package.",
    },
    RuleInfo {
        id: "PACKAGE_NO_DELETE",
        categories: &[Category::Package],
        purpose: "Checks that packages are not deleted.",
    },
    RuleInfo {
        id: "PACKAGE_SERVICE_NO_DELETE",
        categories: &[Category::Package],
        purpose: "Checks that services are not deleted from a given package.",
    },
    RuleInfo {
        id: "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
        categories: &[Category::WireJson],
        purpose: "Checks that enum values are not deleted from a given enum unless the name is reserved.",
    },
    RuleInfo {
        id: "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
        categories: &[Category::WireJson],
        purpose: "Checks that fields are not deleted from a given message unless the name is reserved.",
    },
    RuleInfo {
        id: "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
        categories: &[Category::WireJson],
        purpose: "Checks that fields have wire and JSON compatible cardinalities in a given message.",
    },
    RuleInfo {
        id: "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        categories: &[Category::WireJson],
        purpose: "Checks that fields have wire and JSON compatible types in a given message.",
    },
    RuleInfo {
        id: "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
        categories: &[Category::WireJson, Category::Wire],
        purpose: "Checks that enum values are not deleted from a given enum unless the number is reserved.",
    },
    RuleInfo {
        id: "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
        categories: &[Category::WireJson, Category::Wire],
        purpose: "Checks that fields are not deleted from a given message unless the number is reserved.",
    },
    RuleInfo {
        id: "FIELD_WIRE_COMPATIBLE_CARDINALITY",
        categories: &[Category::Wire],
        purpose: "Checks that fields have wire-compatible cardinalities in a given message.",
    },
    RuleInfo {
        id: "FIELD_WIRE_COMPATIBLE_TYPE",
        categories: &[Category::Wire],
        purpose: "Checks that fields have wire-compatible types in a given message.",
    },
];

/// What a rule's check looks like: it reads both schemas and says what it found.
type Check = fn(&Diff<'_>) -> Vec<Finding>;

/// Each rule id with its check. [`check_of`] looks rules up here; a test makes sure every rule
/// of [`RULES`] has exactly one entry.
const CHECKS: &[(&str, Check)] = &[
    ("EXTENSION_NO_DELETE", fields::extension_no_delete),
    ("SERVICE_NO_DELETE", services::no_delete),
    ("ENUM_NO_DELETE", enums::no_delete),
    ("FILE_NO_DELETE", files::no_delete),
    ("MESSAGE_NO_DELETE", messages::no_delete),
    ("ENUM_SAME_TYPE", enums::same_type),
    ("FIELD_SAME_CARDINALITY", cardinality::same),
    (
        "FIELD_SAME_CPP_STRING_TYPE",
        field_strings::same_cpp_string_type,
    ),
    (
        "FIELD_SAME_JAVA_UTF8_VALIDATION",
        field_strings::same_java_utf8_validation,
    ),
    ("FIELD_SAME_JSTYPE", fields::same_jstype),
    (
        "FIELD_SAME_UTF8_VALIDATION",
        field_strings::same_utf8_validation,
    ),
    ("FILE_SAME_CC_ENABLE_ARENAS", file_options::cc_enable_arenas),
    (
        "FILE_SAME_CC_GENERIC_SERVICES",
        file_options::cc_generic_services,
    ),
    ("FILE_SAME_CSHARP_NAMESPACE", file_options::csharp_namespace),
    ("FILE_SAME_GO_PACKAGE", file_options::go_package),
    (
        "FILE_SAME_JAVA_GENERIC_SERVICES",
        file_options::java_generic_services,
    ),
    (
        "FILE_SAME_JAVA_MULTIPLE_FILES",
        file_options::java_multiple_files,
    ),
    (
        "FILE_SAME_JAVA_OUTER_CLASSNAME",
        file_options::java_outer_classname,
    ),
    ("FILE_SAME_JAVA_PACKAGE", file_options::java_package),
    (
        "FILE_SAME_OBJC_CLASS_PREFIX",
        file_options::objc_class_prefix,
    ),
    ("FILE_SAME_OPTIMIZE_FOR", file_options::optimize_for),
    ("FILE_SAME_PHP_CLASS_PREFIX", file_options::php_class_prefix),
    (
        "FILE_SAME_PHP_METADATA_NAMESPACE",
        file_options::php_metadata_namespace,
    ),
    ("FILE_SAME_PHP_NAMESPACE", file_options::php_namespace),
    (
        "FILE_SAME_PY_GENERIC_SERVICES",
        file_options::py_generic_services,
    ),
    ("FILE_SAME_RUBY_PACKAGE", file_options::ruby_package),
    ("FILE_SAME_SWIFT_PREFIX", file_options::swift_prefix),
    ("RPC_NO_DELETE", services::rpc_no_delete),
    ("ENUM_VALUE_NO_DELETE", enums::value_no_delete_any),
    (
        "EXTENSION_MESSAGE_NO_DELETE",
        ranges::extension_message_no_delete,
    ),
    ("FIELD_NO_DELETE", fields::no_delete),
    ("FIELD_SAME_TYPE", field_types::same_type),
    ("FILE_SAME_SYNTAX", files::same_syntax),
    (
        "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR",
        messages::no_remove_standard_descriptor_accessor,
    ),
    ("ONEOF_NO_DELETE", messages::oneof_no_delete),
    ("ENUM_SAME_JSON_FORMAT", enums::same_json_format),
    ("ENUM_VALUE_SAME_NAME", enums::value_same_name),
    ("FIELD_SAME_JSON_NAME", fields::same_json_name),
    ("FIELD_SAME_NAME", fields::same_name),
    ("MESSAGE_SAME_JSON_FORMAT", messages::same_json_format),
    ("FIELD_SAME_DEFAULT", field_defaults::same_default_rule),
    ("FIELD_SAME_ONEOF", fields::same_oneof),
    ("FILE_SAME_PACKAGE", files::same_package),
    (
        "MESSAGE_SAME_REQUIRED_FIELDS",
        messages::same_required_fields,
    ),
    ("RESERVED_ENUM_NO_DELETE", ranges::reserved_enum_no_delete),
    (
        "RESERVED_MESSAGE_NO_DELETE",
        ranges::reserved_message_no_delete,
    ),
    ("RPC_SAME_CLIENT_STREAMING", services::same_client_streaming),
    (
        "RPC_SAME_IDEMPOTENCY_LEVEL",
        services::same_idempotency_level,
    ),
    ("RPC_SAME_REQUEST_TYPE", services::same_request_type),
    ("RPC_SAME_RESPONSE_TYPE", services::same_response_type),
    ("RPC_SAME_SERVER_STREAMING", services::same_server_streaming),
    ("PACKAGE_ENUM_NO_DELETE", packages::enum_no_delete),
    ("PACKAGE_EXTENSION_NO_DELETE", packages::extension_no_delete),
    ("PACKAGE_MESSAGE_NO_DELETE", packages::message_no_delete),
    ("PACKAGE_NO_DELETE", packages::no_delete),
    ("PACKAGE_SERVICE_NO_DELETE", packages::service_no_delete),
    (
        "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
        enums::value_no_delete_unless_name_reserved,
    ),
    (
        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
        fields::no_delete_unless_name_reserved,
    ),
    (
        "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
        cardinality::wire_json_compatible,
    ),
    (
        "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        field_types::wire_json_compatible_type,
    ),
    (
        "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
        enums::value_no_delete_unless_number_reserved,
    ),
    (
        "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
        fields::no_delete_unless_number_reserved,
    ),
    (
        "FIELD_WIRE_COMPATIBLE_CARDINALITY",
        cardinality::wire_compatible,
    ),
    (
        "FIELD_WIRE_COMPATIBLE_TYPE",
        field_types::wire_compatible_type,
    ),
];

fn check_of(id: &str) -> Option<Check> {
    CHECKS
        .iter()
        .find(|(rule, _)| *rule == id)
        .map(|(_, check)| *check)
}

/// Compares two schemas under `category`, knowing nothing of their explicit editions features.
pub(crate) fn check(
    previous: &FileDescriptorSet,
    current: &FileDescriptorSet,
    category: Category,
) -> Result<Report, CompatError> {
    check_with_features(
        (previous, FeatureTable::default()),
        (current, FeatureTable::default()),
        category,
    )
}

/// Compares two schemas under `category`, each with the editions features read from its
/// encoding (see [`raw_features`]).
pub(crate) fn check_with_features(
    previous: (&FileDescriptorSet, FeatureTable),
    current: (&FileDescriptorSet, FeatureTable),
    category: Category,
) -> Result<Report, CompatError> {
    let previous = Schema::build(previous.0, previous.1, Side::Previous)?;
    let current = Schema::build(current.0, current.1, Side::Current)?;
    let diff = Diff {
        previous: &previous,
        current: &current,
    };
    let mut violations: Vec<Violation> = RULES
        .iter()
        .filter(|rule| rule.categories.contains(&category))
        .flat_map(|rule| {
            let findings = check_of(rule.id)
                .map(|check| check(&diff))
                .unwrap_or_default();
            findings.into_iter().map(move |finding| Violation {
                rule: rule.id,
                categories: rule.categories,
                location: finding.location,
                message: finding.message,
            })
        })
        .collect();
    violations.sort();
    violations.dedup();
    Ok(Report {
        violations,
        additions: crate::additions::additions(&previous, &current),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_every_rule_has_a_category() {
        let mut ids: Vec<_> = RULES.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        assert!(RULES.iter().all(|r| !r.categories.is_empty()));
        assert_eq!(RULES.len(), 64);
    }

    #[test]
    fn every_rule_has_exactly_one_check() {
        for rule in RULES {
            let count = CHECKS.iter().filter(|(id, _)| *id == rule.id).count();
            assert_eq!(count, 1, "{}", rule.id);
        }
        assert_eq!(CHECKS.len(), RULES.len());
    }

    #[test]
    fn wire_json_holds_the_wire_rules_except_the_wire_compatibility_ones() {
        // WIRE_JSON replaces the wire-compatibility rules with stricter wire+JSON ones.
        let ids = |c: Category| -> Vec<&str> {
            RULES
                .iter()
                .filter(|r| r.categories.contains(&c))
                .map(|r| r.id)
                .collect()
        };
        for id in ids(Category::Wire) {
            assert!(
                ids(Category::WireJson).contains(&id) || id.starts_with("FIELD_WIRE_COMPATIBLE"),
                "{id}"
            );
        }
    }
}
