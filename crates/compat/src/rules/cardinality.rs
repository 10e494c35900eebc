//! FIELD_SAME_CARDINALITY and its wire and wire+JSON relaxations (buf's cardinality.go).

use super::field::{Cardinality, Field};
use super::fields::field_changes;
use super::pairs::{Diff, Finding};

/// On the wire presence does not matter, and a map is a repeated message.
fn wire_group(c: Cardinality) -> u8 {
    match c {
        Cardinality::OptionalExplicit | Cardinality::OptionalImplicit => 1,
        Cardinality::Required => 2,
        Cardinality::Repeated | Cardinality::Map => 3,
    }
}

/// JSON writes maps as objects and repeated fields as arrays.
fn wire_json_group(c: Cardinality) -> u8 {
    match c {
        Cardinality::Map => 4,
        other => wire_group(other),
    }
}

/// Reports pairs whose cardinalities fall in different groups. Map entry fields are skipped:
/// they are generated and their apparent presence means nothing.
fn changes(diff: &Diff<'_>, group: fn(Cardinality) -> u8) -> Vec<Finding> {
    field_changes(diff, |previous: &Field, current: &Field| {
        if previous.in_map_entry() && current.in_map_entry() {
            return None;
        }
        let before = Cardinality::of(diff.previous, previous);
        let after = Cardinality::of(diff.current, current);
        (group(before) != group(after)).then(|| {
            format!(
                "{} changed cardinality from \"{before}\" to \"{after}\".",
                current.describe()
            )
        })
    })
}

/// FIELD_SAME_CARDINALITY.
pub(crate) fn same(diff: &Diff<'_>) -> Vec<Finding> {
    changes(diff, |c| c as u8)
}

/// FIELD_WIRE_COMPATIBLE_CARDINALITY.
pub(crate) fn wire_compatible(diff: &Diff<'_>) -> Vec<Finding> {
    changes(diff, wire_group)
}

/// FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY.
pub(crate) fn wire_json_compatible(diff: &Diff<'_>) -> Vec<Finding> {
    changes(diff, wire_json_group)
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    fn pair(
        syntax_before: &str,
        before: &str,
        syntax_after: &str,
        after: &str,
        category: Category,
    ) -> Vec<String> {
        let file = |syntax: &str, t: &str| {
            [(
                "a.proto",
                format!(
                    "syntax = \"{syntax}\"; package p; message M {{ {t} = 1; }} message N {{}}"
                ),
            )]
        };
        let report = check(
            &file(syntax_before, before),
            &file(syntax_after, after),
            category,
        );
        report
            .violations
            .iter()
            .filter(|v| v.rule.contains("CARDINALITY"))
            .map(|v| v.message.clone())
            .collect()
    }

    #[test]
    fn presence_changes_break_source_only() {
        let found = pair(
            "proto3",
            "int32 f",
            "proto3",
            "optional int32 f",
            Category::File,
        );
        assert_eq!(
            found,
            [
                "Field \"1\" with name \"f\" on message \"M\" changed cardinality from \"optional with implicit presence\" to \"optional with explicit presence\"."
            ]
        );
        assert!(
            pair(
                "proto3",
                "int32 f",
                "proto3",
                "optional int32 f",
                Category::Wire
            )
            .is_empty()
        );
        assert!(
            pair(
                "proto3",
                "int32 f",
                "proto3",
                "optional int32 f",
                Category::WireJson
            )
            .is_empty()
        );
    }

    #[test]
    fn repeated_and_maps_differ_in_json_only() {
        let before = "repeated N f";
        let after = "map<string, N> f";
        assert!(pair("proto3", before, "proto3", after, Category::Wire).is_empty());
        assert_eq!(
            pair("proto3", before, "proto3", after, Category::WireJson).len(),
            1
        );
        assert_eq!(
            pair("proto3", "N f", "proto3", "repeated N f", Category::Wire).len(),
            1
        );
    }

    #[test]
    fn required_stands_alone() {
        assert_eq!(
            pair(
                "proto2",
                "required int32 f",
                "proto2",
                "optional int32 f",
                Category::Wire
            ),
            [
                "Field \"1\" with name \"f\" on message \"M\" changed cardinality from \"required\" to \"optional with explicit presence\"."
            ]
        );
    }

    #[test]
    fn map_entry_fields_are_skipped() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; message M { map<string, int32> m = 1; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; message M { map<string, int32> m = 1; }",
        )];
        assert!(
            messages_of(&check(&old, &new, Category::File), "FIELD_SAME_CARDINALITY").is_empty()
        );
    }
}
