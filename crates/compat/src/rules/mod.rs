//! buf's breaking-change rules. The table is buf's (`buf config ls-breaking-rules --version v2`),
//! without buf's CSR category, which Flotilla does not offer; each rule's check lives in the
//! module for the element it is about.

use prost_types::FileDescriptorSet;

use crate::{Category, CompatError, Report};

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

pub(crate) fn check(
    previous: &FileDescriptorSet,
    current: &FileDescriptorSet,
    category: Category,
) -> Result<Report, CompatError> {
    let _ = (previous, current, category);
    Err(CompatError::InvalidSchema {
        which: crate::Side::Current,
        reason: "the rule engine is being written".into(),
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
}
