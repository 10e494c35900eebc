//! File rules: deletion, syntax and package.

use std::collections::BTreeSet;

use prost_reflect::FileDescriptor;

use super::pairs::{Diff, Finding};
use super::schema::nested_name;

/// FILE_NO_DELETE: every previous file still exists, by path.
pub(crate) fn no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    diff.previous
        .files
        .keys()
        .filter(|name| !diff.current.files.contains_key(*name))
        .map(|name| {
            Finding::new(
                name,
                "",
                None,
                format!("Previously present file {name:?} was deleted."),
            )
        })
        .collect()
}

/// FILE_SAME_SYNTAX: an unset syntax counts as proto2.
pub(crate) fn same_syntax(diff: &Diff<'_>) -> Vec<Finding> {
    diff.files()
        .into_iter()
        .filter_map(|(previous, current)| {
            let before = diff.previous.syntax(&previous).as_str();
            let after = diff.current.syntax(&current).as_str();
            same_value(current.name(), "syntax", before, after)
        })
        .collect()
}

/// FILE_SAME_PACKAGE.
pub(crate) fn same_package(diff: &Diff<'_>) -> Vec<Finding> {
    diff.files()
        .into_iter()
        .filter_map(|(previous, current)| {
            same_value(
                current.name(),
                "package",
                previous.package_name(),
                current.package_name(),
            )
        })
        .collect()
}

/// The finding for a file-level value that changed, in buf's words.
pub(crate) fn same_value(file: &str, what: &str, before: &str, after: &str) -> Option<Finding> {
    (before != after).then(|| {
        Finding::new(
            file,
            "",
            None,
            format!("File {what} changed from {before:?} to {after:?}."),
        )
    })
}

/// Reports every element of `kind` that a file held and no longer does, by its name nested in
/// the package (`Outer.Inner`). `elements` lists a file's elements by full name.
pub(crate) fn deleted_from_file(
    diff: &Diff<'_>,
    kind: &str,
    elements: fn(&FileDescriptor) -> Vec<String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.files() {
        let nested =
            |file: &FileDescriptor, name: &str| nested_name(name, file.package_name()).to_owned();
        let kept: BTreeSet<_> = elements(&current)
            .iter()
            .map(|n| nested(&current, n))
            .collect();
        for name in elements(&previous) {
            let short = nested(&previous, &name);
            if !kept.contains(&short) {
                out.push(Finding::new(
                    current.name(),
                    &name,
                    None,
                    format!("Previously present {kind} {short:?} was deleted from file."),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    #[test]
    fn a_deleted_file_is_reported_by_path() {
        let old = [
            ("a.proto", "syntax = \"proto3\";"),
            ("b.proto", "syntax = \"proto3\";"),
        ];
        let new = [("a.proto", "syntax = \"proto3\";")];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "FILE_NO_DELETE"),
            ["Previously present file \"b.proto\" was deleted."]
        );
        assert_eq!(report.violations[0].location.file, "b.proto");
        assert!(check(&old, &new, Category::Wire).violations.is_empty());
    }

    #[test]
    fn syntax_and_package_changes_are_reported() {
        let old = [("a.proto", "syntax = \"proto3\"; package a;")];
        let new = [("a.proto", "syntax = \"proto2\"; package b;")];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "FILE_SAME_SYNTAX"),
            ["File syntax changed from \"proto3\" to \"proto2\"."]
        );
        assert_eq!(
            messages_of(&report, "FILE_SAME_PACKAGE"),
            ["File package changed from \"a\" to \"b\"."]
        );
        let wire = check(&old, &new, Category::Wire);
        assert!(messages_of(&wire, "FILE_SAME_SYNTAX").is_empty());
        assert_eq!(messages_of(&wire, "FILE_SAME_PACKAGE").len(), 1);
    }

    #[test]
    fn an_unset_syntax_is_proto2() {
        let old = [("a.proto", "package a;")];
        let new = [("a.proto", "syntax = \"proto2\"; package a;")];
        assert!(check(&old, &new, Category::File).violations.is_empty());
    }
}
