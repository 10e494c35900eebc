//! PACKAGE rules: deletions judged per package, so elements may move between the files of a
//! package without breaking anything.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::FileDescriptor;

use super::pairs::{Diff, Finding};
use super::schema::{Schema, nested_name};

/// An element as the package rules see it: where it lives and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Placed {
    package: String,
    nested: String,
    full_name: String,
    file: String,
}

impl Placed {
    fn new(file: &FileDescriptor, full_name: &str) -> Self {
        Self {
            package: file.package_name().to_owned(),
            nested: nested_name(full_name, file.package_name()).to_owned(),
            full_name: full_name.to_owned(),
            file: file.name().to_owned(),
        }
    }
}

fn packages(schema: &Schema) -> BTreeSet<String> {
    schema
        .files
        .values()
        .map(|f| f.package_name().to_owned())
        .collect()
}

/// Which current packages a deletion is judged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every package of the current files.
    AnyPackage,
    /// Only packages that still hold an element of the kind. buf indexes messages, enums and
    /// extensions by package only where there is one, so a package that lost all of them is
    /// not examined (the FILE rules and PACKAGE_NO_DELETE still see such deletions).
    PackagesHoldingKind,
}

/// Reports each element of `kind` that was in a package still examined (see [`Scope`]) and
/// is gone from it.
fn deleted_from_package(
    diff: &Diff<'_>,
    kind: &str,
    scope: Scope,
    elements: fn(&Schema) -> Vec<Placed>,
) -> Vec<Finding> {
    let current: BTreeSet<_> = elements(diff.current)
        .into_iter()
        .map(|p| (p.package, p.nested))
        .collect();
    let current_packages: BTreeSet<String> = match scope {
        Scope::AnyPackage => packages(diff.current),
        Scope::PackagesHoldingKind => current.iter().map(|(package, _)| package.clone()).collect(),
    };
    elements(diff.previous)
        .into_iter()
        .filter(|p| current_packages.contains(&p.package))
        .filter(|p| !current.contains(&(p.package.clone(), p.nested.clone())))
        .map(|p| {
            // Shown in the file that held the element: buf does the same whether or not that
            // file remains.
            Finding::new(
                &p.file,
                &p.full_name,
                None,
                format!(
                    "Previously present {kind} {:?} was deleted from package {:?}.",
                    p.nested, p.package
                ),
            )
        })
        .collect()
}

fn placed<T>(map: &BTreeMap<String, T>, file: fn(&T) -> FileDescriptor) -> Vec<Placed> {
    map.iter()
        .map(|(name, item)| Placed::new(&file(item), name))
        .collect()
}

/// PACKAGE_MESSAGE_NO_DELETE.
pub(crate) fn message_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_package(diff, "message", Scope::PackagesHoldingKind, |s| {
        placed(&s.messages, |m| m.parent_file())
    })
}

/// PACKAGE_ENUM_NO_DELETE.
pub(crate) fn enum_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_package(diff, "enum", Scope::PackagesHoldingKind, |s| {
        placed(&s.enums, |e| e.parent_file())
    })
}

/// PACKAGE_SERVICE_NO_DELETE.
pub(crate) fn service_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_package(diff, "service", Scope::AnyPackage, |s| {
        placed(&s.services, |x| x.parent_file())
    })
}

/// PACKAGE_EXTENSION_NO_DELETE.
pub(crate) fn extension_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_package(diff, "extension", Scope::PackagesHoldingKind, |s| {
        placed(&s.extensions, |x| x.parent_file())
    })
}

/// PACKAGE_NO_DELETE: reported against the first file, by name, that held the package.
pub(crate) fn no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    let current = packages(diff.current);
    let mut first_file: BTreeMap<String, String> = BTreeMap::new();
    for (name, file) in &diff.previous.files {
        first_file
            .entry(file.package_name().to_owned())
            .or_insert_with(|| name.clone());
    }
    first_file
        .into_iter()
        .filter(|(package, _)| !current.contains(package))
        .map(|(package, file)| {
            Finding::new(
                &file,
                &package,
                None,
                format!("Previously present package {package:?} was deleted."),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of, rules_of};

    #[test]
    fn moving_a_message_between_files_of_a_package_is_allowed() {
        let old = [
            (
                "a.proto",
                "syntax = \"proto3\"; package p; message A {} enum E { E_0 = 0; }",
            ),
            ("b.proto", "syntax = \"proto3\"; package p;"),
        ];
        let new = [
            ("a.proto", "syntax = \"proto3\"; package p;"),
            (
                "b.proto",
                "syntax = \"proto3\"; package p; message A {} enum E { E_0 = 0; }",
            ),
        ];
        let package = check(&old, &new, Category::Package);
        assert!(package.violations.is_empty(), "{:?}", package.violations);
        let file = check(&old, &new, Category::File);
        assert_eq!(rules_of(&file), ["ENUM_NO_DELETE", "MESSAGE_NO_DELETE"]);
    }

    #[test]
    fn deletions_from_a_remaining_package_are_reported() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; package p; message A { message B {} extensions 10 to 20; } \
             enum E { E_0 = 0; } enum F { F_0 = 0; } service S {} \
             extend A { optional int32 x = 10; optional int32 y = 11; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; package p; message A { extensions 10 to 20; } \
             enum F { F_0 = 0; } extend A { optional int32 y = 11; }",
        )];
        let report = check(&old, &new, Category::Package);
        assert_eq!(
            messages_of(&report, "PACKAGE_MESSAGE_NO_DELETE"),
            ["Previously present message \"A.B\" was deleted from package \"p\"."]
        );
        assert_eq!(
            messages_of(&report, "PACKAGE_ENUM_NO_DELETE"),
            ["Previously present enum \"E\" was deleted from package \"p\"."]
        );
        assert_eq!(
            messages_of(&report, "PACKAGE_SERVICE_NO_DELETE"),
            ["Previously present service \"S\" was deleted from package \"p\"."]
        );
        assert_eq!(
            messages_of(&report, "PACKAGE_EXTENSION_NO_DELETE"),
            ["Previously present extension \"x\" was deleted from package \"p\"."]
        );
    }

    #[test]
    fn a_package_without_any_enum_left_is_not_examined_for_enums() {
        // As in buf: only the FILE rule sees this deletion.
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; package p; message A {} enum E { E_0 = 0; }",
        )];
        let new = [("a.proto", "syntax = \"proto3\"; package p; message A {}")];
        assert!(check(&old, &new, Category::Package).violations.is_empty());
        assert_eq!(
            rules_of(&check(&old, &new, Category::File)),
            ["ENUM_NO_DELETE"]
        );
    }

    #[test]
    fn a_deleted_package_is_reported_once() {
        let old = [
            ("a.proto", "syntax = \"proto3\"; package gone; message A {}"),
            ("b.proto", "syntax = \"proto3\"; package gone;"),
            ("c.proto", "syntax = \"proto3\"; package kept;"),
        ];
        let new = [("c.proto", "syntax = \"proto3\"; package kept;")];
        let report = check(&old, &new, Category::Package);
        assert_eq!(
            messages_of(&report, "PACKAGE_NO_DELETE"),
            ["Previously present package \"gone\" was deleted."]
        );
        assert!(messages_of(&report, "PACKAGE_MESSAGE_NO_DELETE").is_empty());
    }
}
