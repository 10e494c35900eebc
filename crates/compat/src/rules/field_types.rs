//! FIELD_SAME_TYPE and its wire and wire+JSON relaxations, with buf's compatibility groups.

use super::field::{Field, FieldKind};
use super::fields::field_changes;
use super::pairs::{Diff, Finding};

const WIRE_NOTE: &str = "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules.";
const BYTES_TO_STRING_NOTE: &str = "Note that while string and bytes are compatible if the data is valid UTF-8, there is no way to enforce that a bytes field is UTF-8, so these fields may be incompatible.";
const WIRE_JSON_NOTE: &str = "See https://developers.google.com/protocol-buffers/docs/proto3#updating for wire compatibility rules and https://developers.google.com/protocol-buffers/docs/proto3#json for JSON compatibility rules.";

/// Kinds whose encodings can be read as one another. string and bytes are apart because a
/// bytes field may hold invalid UTF-8; messages, groups and enums each stand alone.
fn wire_group(kind: FieldKind) -> u8 {
    use FieldKind::*;
    match kind {
        Int32 | Int64 | Uint32 | Uint64 | Bool => 1,
        Sint32 | Sint64 => 2,
        String => 3,
        Bytes => 4,
        Fixed32 | Sfixed32 => 5,
        Fixed64 | Sfixed64 => 6,
        Double => 7,
        Float => 8,
        Group => 9,
        Message => 10,
        Enum => 11,
    }
}

/// The intersection of wire and JSON compatibility: JSON writes 64-bit integers as strings and
/// 32-bit ones as numbers, and names booleans.
fn wire_json_group(kind: FieldKind) -> u8 {
    use FieldKind::*;
    match kind {
        Int32 | Uint32 => 1,
        Int64 | Uint64 => 2,
        Fixed32 | Sfixed32 => 3,
        Fixed64 | Sfixed64 => 4,
        Bool => 5,
        Sint32 => 6,
        Sint64 => 7,
        String => 8,
        Bytes => 9,
        Double => 10,
        Float => 11,
        Group => 12,
        Message => 13,
        Enum => 14,
    }
}

/// The two kinds of a field pair, as the rules compare them.
struct Kinds {
    before: FieldKind,
    after: FieldKind,
}

fn kinds(diff: &Diff<'_>, previous: &Field, current: &Field) -> Kinds {
    Kinds {
        before: FieldKind::of(diff.previous, previous),
        after: FieldKind::of(diff.current, current),
    }
}

fn changed_kind(
    diff: &Diff<'_>,
    previous: &Field,
    current: &Field,
    kinds: &Kinds,
    notes: &[&str],
) -> String {
    let notes: String = notes.iter().map(|n| format!(" {n}")).collect();
    format!(
        "{} changed type from {:?} to {:?}.{notes}",
        current.describe(),
        kinds.before.pretty(diff.previous, previous),
        kinds.after.pretty(diff.current, current),
    )
}

fn changed_type_name(previous: &Field, current: &Field) -> Option<String> {
    let (before, after) = (previous.type_name()?, current.type_name()?);
    (before != after).then(|| {
        format!(
            "{} changed type from {before:?} to {after:?}.",
            current.describe()
        )
    })
}

/// FIELD_SAME_TYPE: same kind, and the same message or enum.
pub(crate) fn same_type(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        let kinds = kinds(diff, previous, current);
        if kinds.before != kinds.after {
            return Some(changed_kind(diff, previous, current, &kinds, &[]));
        }
        changed_type_name(previous, current)
    })
}

/// FIELD_WIRE_COMPATIBLE_TYPE: string may become bytes; an enum may be replaced by one of the
/// same short name that keeps every previous value.
pub(crate) fn wire_compatible_type(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        let kinds = kinds(diff, previous, current);
        if wire_group(kinds.before) != wire_group(kinds.after) {
            return match (kinds.before, kinds.after) {
                (FieldKind::String, FieldKind::Bytes) => None,
                (FieldKind::Bytes, FieldKind::String) => Some(changed_kind(
                    diff,
                    previous,
                    current,
                    &kinds,
                    &[WIRE_NOTE, BYTES_TO_STRING_NOTE],
                )),
                _ => Some(changed_kind(diff, previous, current, &kinds, &[WIRE_NOTE])),
            };
        }
        same_named_type(diff, previous, current, kinds.after)
    })
}

/// FIELD_WIRE_JSON_COMPATIBLE_TYPE.
pub(crate) fn wire_json_compatible_type(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        let kinds = kinds(diff, previous, current);
        if wire_json_group(kinds.before) != wire_json_group(kinds.after) {
            return Some(changed_kind(
                diff,
                previous,
                current,
                &kinds,
                &[WIRE_JSON_NOTE],
            ));
        }
        same_named_type(diff, previous, current, kinds.after)
    })
}

/// Within one group: messages and groups must keep their type; enums must stay compatible.
fn same_named_type(
    diff: &Diff<'_>,
    previous: &Field,
    current: &Field,
    kind: FieldKind,
) -> Option<String> {
    match kind {
        FieldKind::Enum if !enum_compatible(diff, previous, current) => {
            changed_type_name(previous, current)
        }
        FieldKind::Message | FieldKind::Group => changed_type_name(previous, current),
        _ => None,
    }
}

/// An enum swapped for another is compatible when both have the same short name and every
/// previous value exists in the new enum with the same number.
fn enum_compatible(diff: &Diff<'_>, previous: &Field, current: &Field) -> bool {
    let (Some(before), Some(after)) = (previous.type_name(), current.type_name()) else {
        return true;
    };
    if before == after {
        return true;
    }
    let (Some(before), Some(after)) = (
        diff.previous.any_enum(&before),
        diff.current.any_enum(&after),
    ) else {
        return false;
    };
    before.name() == after.name()
        && before.values().all(|v| {
            after
                .get_value_by_name(v.name())
                .is_some_and(|w| w.number() == v.number())
        })
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    fn pair(before: &str, after: &str, category: Category) -> Vec<String> {
        let file = |t: &str| {
            [(
                "a.proto",
                format!(
                    "syntax = \"proto3\"; package p; message M {{ {t} f = 1; }} message N {{}} message O {{}} enum E {{ E_0 = 0; }} enum F {{ F_0 = 0; }}"
                ),
            )]
        };
        let report = check(&file(before), &file(after), category);
        report
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.rule, v.message))
            .collect()
    }

    #[test]
    fn any_kind_change_breaks_source() {
        assert_eq!(
            pair("int32", "int64", Category::File),
            [
                "FIELD_SAME_TYPE: Field \"1\" with name \"f\" on message \"M\" changed type from \"int32\" to \"int64\"."
            ]
        );
        assert_eq!(
            pair("N", "O", Category::File),
            [
                "FIELD_SAME_TYPE: Field \"1\" with name \"f\" on message \"M\" changed type from \"p.N\" to \"p.O\"."
            ]
        );
    }

    #[test]
    fn the_wire_groups_follow_buf() {
        for (before, after) in [
            ("int32", "uint64"),
            ("bool", "int64"),
            ("sint32", "sint64"),
            ("fixed32", "sfixed32"),
            ("fixed64", "sfixed64"),
            ("string", "bytes"),
        ] {
            assert!(
                pair(before, after, Category::Wire).is_empty(),
                "{before} -> {after}"
            );
        }
        for (before, after) in [
            ("int32", "sint32"),
            ("bytes", "string"),
            ("fixed32", "fixed64"),
            ("float", "double"),
            ("E", "int32"),
            ("N", "O"),
            ("E", "F"),
        ] {
            assert_eq!(
                pair(before, after, Category::Wire).len(),
                1,
                "{before} -> {after}"
            );
        }
        let notes = pair("bytes", "string", Category::Wire);
        assert!(
            notes[0].ends_with("so these fields may be incompatible."),
            "{notes:?}"
        );
    }

    #[test]
    fn the_wire_json_groups_are_narrower() {
        for (before, after) in [
            ("int32", "uint32"),
            ("int64", "uint64"),
            ("fixed32", "sfixed32"),
        ] {
            assert!(
                pair(before, after, Category::WireJson).is_empty(),
                "{before} -> {after}"
            );
        }
        for (before, after) in [
            ("int32", "int64"),
            ("bool", "int32"),
            ("string", "bytes"),
            ("sint32", "sint64"),
        ] {
            let found = pair(before, after, Category::WireJson);
            assert_eq!(found.len(), 1, "{before} -> {after}");
            assert!(found[0].starts_with("FIELD_WIRE_JSON_COMPATIBLE_TYPE"));
        }
    }

    #[test]
    fn an_enum_may_move_if_it_keeps_its_name_and_values() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; package p; enum E { E_0 = 0; E_1 = 1; } message M { E e = 1; }",
        )];
        let moved = [
            (
                "a.proto",
                "syntax = \"proto3\"; package p; import \"b.proto\"; message M { q.E e = 1; }",
            ),
            (
                "b.proto",
                "syntax = \"proto3\"; package q; enum E { E_0 = 0; E_1 = 1; E_2 = 2; }",
            ),
        ];
        let report = check(&old, &moved, Category::Wire);
        assert!(
            messages_of(&report, "FIELD_WIRE_COMPATIBLE_TYPE").is_empty(),
            "{report:?}"
        );
        let file = check(&old, &moved, Category::File);
        assert_eq!(
            messages_of(&file, "FIELD_SAME_TYPE"),
            ["Field \"1\" with name \"e\" on message \"M\" changed type from \"p.E\" to \"q.E\"."]
        );
        let shrunk = [
            (
                "a.proto",
                "syntax = \"proto3\"; package p; import \"b.proto\"; message M { q.E e = 1; }",
            ),
            (
                "b.proto",
                "syntax = \"proto3\"; package q; enum E { E_0 = 0; }",
            ),
        ];
        assert_eq!(
            messages_of(
                &check(&old, &shrunk, Category::Wire),
                "FIELD_WIRE_COMPATIBLE_TYPE"
            )
            .len(),
            1
        );
    }
}
