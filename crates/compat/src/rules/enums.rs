//! Enum and enum value rules.

use prost_reflect::EnumDescriptor;

use super::features::JsonFormat;
use super::files::deleted_from_file;
use super::pairs::{Diff, Finding, quoted_list, value_element, values_by_number};
use super::schema::all_enums;

/// ENUM_NO_DELETE.
pub(crate) fn no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_file(diff, "enum", |file| {
        all_enums(file)
            .iter()
            .map(|e| e.full_name().to_owned())
            .collect()
    })
}

fn finding(e: &EnumDescriptor, text: String) -> Finding {
    Finding::new(e.parent_file().name(), e.full_name(), None, text)
}

/// ENUM_SAME_TYPE: open and closed enums treat unknown values differently.
pub(crate) fn same_type(diff: &Diff<'_>) -> Vec<Finding> {
    let state = |closed: bool| if closed { "closed" } else { "open" };
    diff.enums()
        .into_iter()
        .filter_map(|(previous, current)| {
            let before = diff.previous.enum_features(&previous).closed_enum;
            let after = diff.current.enum_features(&current).closed_enum;
            (before != after).then(|| {
                finding(
                    &current,
                    format!(
                        "Enum {:?} changed from {} to {}.",
                        current.name(),
                        state(before),
                        state(after)
                    ),
                )
            })
        })
        .collect()
}

/// ENUM_SAME_JSON_FORMAT: losing full JSON support breaks; gaining it does not.
pub(crate) fn same_json_format(diff: &Diff<'_>) -> Vec<Finding> {
    diff.enums()
        .into_iter()
        .filter_map(|(previous, current)| {
            let before = diff.previous.enum_features(&previous).json_format;
            let after = diff.current.enum_features(&current).json_format;
            (before == JsonFormat::Allow && after != JsonFormat::Allow).then(|| {
                finding(
                    &current,
                    format!(
                        "Enum {:?} JSON format support changed from {} to {}.",
                        current.name(),
                        before.as_str(),
                        after.as_str()
                    ),
                )
            })
        })
        .collect()
}

/// When a deleted value is still allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unless {
    Never,
    NumberReserved,
    NameReserved,
}

/// The ENUM_VALUE_NO_DELETE family: values are identified by number.
fn value_no_delete(diff: &Diff<'_>, unless: Unless) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.enums() {
        let kept = values_by_number(&current);
        for (number, values) in values_by_number(&previous) {
            if kept.contains_key(&number) {
                continue;
            }
            let names: Vec<&str> = values.iter().map(|v| v.name()).collect();
            let suffix = match unless {
                Unless::Never => String::new(),
                Unless::NumberReserved if number_reserved(&current, number) => continue,
                Unless::NumberReserved => format!(" without reserving the number \"{number}\""),
                Unless::NameReserved if names.iter().all(|n| name_reserved(&current, n)) => {
                    continue;
                }
                Unless::NameReserved => {
                    let s = if names.len() > 1 { "s" } else { "" };
                    format!(" without reserving the name{s} {}", quoted_list(&names))
                }
            };
            out.push(Finding::new(
                current.parent_file().name(),
                &value_element(&current, names.first().copied().unwrap_or_default()),
                Some(number),
                format!(
                    "Previously present enum value \"{number}\" on enum {:?} was deleted{suffix}.",
                    current.name()
                ),
            ));
        }
    }
    out
}

fn number_reserved(e: &EnumDescriptor, number: i32) -> bool {
    e.reserved_ranges().any(|r| r.contains(&number))
}

fn name_reserved(e: &EnumDescriptor, name: &str) -> bool {
    e.reserved_names().any(|n| n == name)
}

/// ENUM_VALUE_NO_DELETE.
pub(crate) fn value_no_delete_any(diff: &Diff<'_>) -> Vec<Finding> {
    value_no_delete(diff, Unless::Never)
}

/// ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED.
pub(crate) fn value_no_delete_unless_number_reserved(diff: &Diff<'_>) -> Vec<Finding> {
    value_no_delete(diff, Unless::NumberReserved)
}

/// ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED.
pub(crate) fn value_no_delete_unless_name_reserved(diff: &Diff<'_>) -> Vec<Finding> {
    value_no_delete(diff, Unless::NameReserved)
}

/// ENUM_VALUE_SAME_NAME: every name a number had must remain (JSON carries enum values by
/// name); new aliases may be added. One finding per current value of the number, as in buf.
pub(crate) fn value_same_name(diff: &Diff<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for pair in diff.enum_numbers() {
        let before: Vec<&str> = pair.previous.iter().map(|v| v.name()).collect();
        let after: Vec<&str> = pair.current.iter().map(|v| v.name()).collect();
        if before.iter().all(|name| after.contains(name)) {
            continue;
        }
        let s = if before.len() > 1 && after.len() > 1 {
            "s"
        } else {
            ""
        };
        for value in &pair.current {
            out.push(Finding::new(
                pair.current_enum.parent_file().name(),
                &value_element(&pair.current_enum, value.name()),
                Some(pair.number),
                format!(
                    "Enum value \"{}\" on enum {:?} changed name{s} from {} to {}.",
                    pair.number,
                    pair.current_enum.name(),
                    quoted_list(&before),
                    quoted_list(&after)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    const OLD: &str = "syntax = \"proto3\"; package p; enum E { E_0 = 0; E_1 = 1; E_2 = 2; }";

    #[test]
    fn deleted_values_break_unless_reserved_as_the_category_asks() {
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; package p; enum E { E_0 = 0; reserved 1; reserved \"E_2\"; }",
        )];
        let old = [("a.proto", OLD)];
        assert_eq!(
            messages_of(&check(&old, &new, Category::File), "ENUM_VALUE_NO_DELETE"),
            [
                "Previously present enum value \"1\" on enum \"E\" was deleted.",
                "Previously present enum value \"2\" on enum \"E\" was deleted.",
            ]
        );
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::Wire),
                "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED"
            ),
            [
                "Previously present enum value \"2\" on enum \"E\" was deleted without reserving the number \"2\"."
            ]
        );
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::WireJson),
                "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED"
            ),
            [
                "Previously present enum value \"1\" on enum \"E\" was deleted without reserving the name \"E_1\"."
            ]
        );
    }

    #[test]
    fn a_deleted_enum_is_reported_with_its_nested_name() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; package p; message M { enum N { N_0 = 0; } }",
        )];
        let new = [("a.proto", "syntax = \"proto3\"; package p; message M {}")];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "ENUM_NO_DELETE"),
            ["Previously present enum \"M.N\" was deleted from file."]
        );
        assert_eq!(report.violations[0].location.element, "p.M.N");
    }

    #[test]
    fn renaming_a_value_breaks_json_but_adding_an_alias_does_not() {
        let renamed = [(
            "a.proto",
            "syntax = \"proto3\"; package p; enum E { E_0 = 0; E_ONE = 1; E_2 = 2; }",
        )];
        let old = [("a.proto", OLD)];
        assert_eq!(
            messages_of(
                &check(&old, &renamed, Category::WireJson),
                "ENUM_VALUE_SAME_NAME"
            ),
            ["Enum value \"1\" on enum \"E\" changed name from \"E_1\" to \"E_ONE\"."]
        );
        assert!(check(&old, &renamed, Category::Wire).violations.is_empty());
        let aliased = [(
            "a.proto",
            "syntax = \"proto3\"; package p; enum E { option allow_alias = true; E_0 = 0; E_1 = 1; E_ONE = 1; E_2 = 2; }",
        )];
        assert!(check(&old, &aliased, Category::File).violations.is_empty());
    }

    #[test]
    fn open_and_closed_enums_differ() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; package p; enum E { E_0 = 0; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; package p; enum E { E_0 = 0; }",
        )];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "ENUM_SAME_TYPE"),
            ["Enum \"E\" changed from open to closed."]
        );
        assert_eq!(
            messages_of(&report, "ENUM_SAME_JSON_FORMAT"),
            ["Enum \"E\" JSON format support changed from ALLOW to LEGACY_BEST_EFFORT."]
        );
    }
}
