//! FILE_SAME_* rules on file options: each compares one option's effective value (its default
//! when unset), so setting an option to its default is not a change.

use prost_reflect::FileDescriptor;
use prost_types::FileOptions;

use super::files::same_value;
use super::pairs::{Diff, Finding};

/// Compares one option, read by `value`, across every pair of files.
fn same_option(diff: &Diff<'_>, option: &str, value: fn(&FileOptions) -> String) -> Vec<Finding> {
    let read = |file: &FileDescriptor| {
        let options = file
            .file_descriptor_proto()
            .options
            .clone()
            .unwrap_or_default();
        value(&options)
    };
    diff.files()
        .into_iter()
        .filter_map(|(previous, current)| {
            let what = format!("option {option:?}");
            same_value(current.name(), &what, &read(&previous), &read(&current))
        })
        .collect()
}

/// FILE_SAME_CC_ENABLE_ARENAS.
pub(crate) fn cc_enable_arenas(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "cc_enable_arenas", |o| {
        o.cc_enable_arenas().to_string()
    })
}

/// FILE_SAME_CC_GENERIC_SERVICES.
pub(crate) fn cc_generic_services(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "cc_generic_services", |o| {
        o.cc_generic_services().to_string()
    })
}

/// FILE_SAME_CSHARP_NAMESPACE.
pub(crate) fn csharp_namespace(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "csharp_namespace", |o| {
        o.csharp_namespace().to_owned()
    })
}

/// FILE_SAME_GO_PACKAGE.
pub(crate) fn go_package(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "go_package", |o| o.go_package().to_owned())
}

/// FILE_SAME_JAVA_GENERIC_SERVICES.
pub(crate) fn java_generic_services(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "java_generic_services", |o| {
        o.java_generic_services().to_string()
    })
}

/// FILE_SAME_JAVA_MULTIPLE_FILES.
pub(crate) fn java_multiple_files(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "java_multiple_files", |o| {
        o.java_multiple_files().to_string()
    })
}

/// FILE_SAME_JAVA_OUTER_CLASSNAME.
pub(crate) fn java_outer_classname(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "java_outer_classname", |o| {
        o.java_outer_classname().to_owned()
    })
}

/// FILE_SAME_JAVA_PACKAGE.
pub(crate) fn java_package(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "java_package", |o| o.java_package().to_owned())
}

/// FILE_SAME_OBJC_CLASS_PREFIX.
pub(crate) fn objc_class_prefix(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "objc_class_prefix", |o| {
        o.objc_class_prefix().to_owned()
    })
}

/// FILE_SAME_OPTIMIZE_FOR.
pub(crate) fn optimize_for(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "optimize_for", |o| {
        o.optimize_for().as_str_name().to_owned()
    })
}

/// FILE_SAME_PHP_CLASS_PREFIX.
pub(crate) fn php_class_prefix(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "php_class_prefix", |o| {
        o.php_class_prefix().to_owned()
    })
}

/// FILE_SAME_PHP_METADATA_NAMESPACE.
pub(crate) fn php_metadata_namespace(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "php_metadata_namespace", |o| {
        o.php_metadata_namespace().to_owned()
    })
}

/// FILE_SAME_PHP_NAMESPACE.
pub(crate) fn php_namespace(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "php_namespace", |o| o.php_namespace().to_owned())
}

/// FILE_SAME_PY_GENERIC_SERVICES.
pub(crate) fn py_generic_services(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "py_generic_services", |o| {
        o.py_generic_services().to_string()
    })
}

/// FILE_SAME_RUBY_PACKAGE.
pub(crate) fn ruby_package(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "ruby_package", |o| o.ruby_package().to_owned())
}

/// FILE_SAME_SWIFT_PREFIX.
pub(crate) fn swift_prefix(diff: &Diff<'_>) -> Vec<Finding> {
    same_option(diff, "swift_prefix", |o| o.swift_prefix().to_owned())
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    fn file(options: &str) -> [(&'static str, String); 1] {
        [(
            "a.proto",
            format!("syntax = \"proto3\"; package a; {options}"),
        )]
    }

    #[test]
    fn changed_options_are_reported_with_their_values() {
        let old = file("option go_package = \"x/a\"; option optimize_for = SPEED;");
        let new = file(
            "option go_package = \"x/b\"; option optimize_for = LITE_RUNTIME; option cc_enable_arenas = false;",
        );
        let report = check(&old, &new, Category::Package);
        assert_eq!(
            messages_of(&report, "FILE_SAME_GO_PACKAGE"),
            ["File option \"go_package\" changed from \"x/a\" to \"x/b\"."]
        );
        assert_eq!(
            messages_of(&report, "FILE_SAME_OPTIMIZE_FOR"),
            ["File option \"optimize_for\" changed from \"SPEED\" to \"LITE_RUNTIME\"."]
        );
        assert_eq!(
            messages_of(&report, "FILE_SAME_CC_ENABLE_ARENAS"),
            ["File option \"cc_enable_arenas\" changed from \"true\" to \"false\"."]
        );
        assert!(check(&old, &new, Category::WireJson).violations.is_empty());
    }

    #[test]
    fn setting_an_option_to_its_default_is_no_change() {
        let old = file("");
        let new = file(
            "option java_multiple_files = false; option java_package = \"\"; option cc_enable_arenas = true;",
        );
        assert!(check(&old, &new, Category::File).violations.is_empty());
    }

    #[test]
    fn every_string_option_is_compared() {
        let names = [
            ("csharp_namespace", "FILE_SAME_CSHARP_NAMESPACE"),
            ("java_outer_classname", "FILE_SAME_JAVA_OUTER_CLASSNAME"),
            ("java_package", "FILE_SAME_JAVA_PACKAGE"),
            ("objc_class_prefix", "FILE_SAME_OBJC_CLASS_PREFIX"),
            ("php_class_prefix", "FILE_SAME_PHP_CLASS_PREFIX"),
            ("php_metadata_namespace", "FILE_SAME_PHP_METADATA_NAMESPACE"),
            ("php_namespace", "FILE_SAME_PHP_NAMESPACE"),
            ("ruby_package", "FILE_SAME_RUBY_PACKAGE"),
            ("swift_prefix", "FILE_SAME_SWIFT_PREFIX"),
        ];
        for (option, rule) in names {
            let report = check(
                &file(""),
                &file(&format!("option {option} = \"X\";")),
                Category::File,
            );
            assert_eq!(messages_of(&report, rule).len(), 1, "{rule}");
        }
        let bools = [
            ("cc_generic_services", "FILE_SAME_CC_GENERIC_SERVICES"),
            ("java_generic_services", "FILE_SAME_JAVA_GENERIC_SERVICES"),
            ("java_multiple_files", "FILE_SAME_JAVA_MULTIPLE_FILES"),
            ("py_generic_services", "FILE_SAME_PY_GENERIC_SERVICES"),
        ];
        for (option, rule) in bools {
            let report = check(
                &file(""),
                &file(&format!("option {option} = true;")),
                Category::File,
            );
            assert_eq!(messages_of(&report, rule).len(), 1, "{rule}");
        }
    }
}
