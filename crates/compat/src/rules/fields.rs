//! Field rules about identity: deletion, name, JSON name, oneof membership and `jstype`; and
//! deletion of extensions.

use prost_reflect::MessageDescriptor;
use prost_types::field_descriptor_proto::Type;

use super::field::Field;
use super::files::deleted_from_file;
use super::pairs::{Diff, Finding, fields_by_number};
use super::schema::all_extensions;

/// When a deleted field is still allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unless {
    Never,
    NumberReserved,
    NameReserved,
}

fn number_reserved(message: &MessageDescriptor, number: i32) -> bool {
    message
        .descriptor_proto()
        .reserved_range
        .iter()
        .any(|r| r.start() <= number && number < r.end())
}

fn name_reserved(message: &MessageDescriptor, name: &str) -> bool {
    message.reserved_names().any(|n| n == name)
}

/// The FIELD_NO_DELETE family: fields of paired messages, by number.
fn no_delete_unless(diff: &Diff<'_>, unless: Unless) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.messages() {
        let kept = fields_by_number(&current);
        for (number, field) in fields_by_number(&previous) {
            if kept.contains_key(&number) {
                continue;
            }
            let suffix = match unless {
                Unless::Never => String::new(),
                Unless::NumberReserved if number_reserved(&current, number) => continue,
                Unless::NumberReserved => format!(" without reserving the number \"{number}\""),
                Unless::NameReserved if name_reserved(&current, field.name()) => continue,
                Unless::NameReserved => format!(" without reserving the name {:?}", field.name()),
            };
            out.push(Finding::new(
                current.parent_file().name(),
                &field.full_name(),
                Some(number),
                format!(
                    "Previously present {} was deleted{suffix}.",
                    lowercase_first(&field.describe())
                ),
            ));
        }
    }
    out
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

/// FIELD_NO_DELETE.
pub(crate) fn no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    no_delete_unless(diff, Unless::Never)
}

/// FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED.
pub(crate) fn no_delete_unless_number_reserved(diff: &Diff<'_>) -> Vec<Finding> {
    no_delete_unless(diff, Unless::NumberReserved)
}

/// FIELD_NO_DELETE_UNLESS_NAME_RESERVED.
pub(crate) fn no_delete_unless_name_reserved(diff: &Diff<'_>) -> Vec<Finding> {
    no_delete_unless(diff, Unless::NameReserved)
}

/// EXTENSION_NO_DELETE: extensions declared in a file, by nested name.
pub(crate) fn extension_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_file(diff, "extension", |file| {
        all_extensions(file)
            .iter()
            .map(|x| x.full_name().to_owned())
            .collect()
    })
}

/// Reports each paired field (or extension) for which `changed` says what changed.
pub(crate) fn field_changes(
    diff: &Diff<'_>,
    changed: impl Fn(&Field, &Field) -> Option<String>,
) -> Vec<Finding> {
    diff.fields()
        .into_iter()
        .filter_map(|(previous, current)| {
            let text = changed(&previous, &current)?;
            Some(Finding::on_field(&current, text))
        })
        .collect()
}

/// FIELD_SAME_NAME: extensions are compared by full name.
pub(crate) fn same_name(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        let (before, after) = (previous.display_name(), current.display_name());
        (before != after).then(|| {
            format!(
                "{} changed name from {before:?} to {after:?}.",
                current.describe_with_name(None)
            )
        })
    })
}

/// FIELD_SAME_JSON_NAME: extensions cannot set a JSON name, so they are skipped.
pub(crate) fn same_json_name(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        let (before, after) = (
            diff.previous.json_name(previous),
            diff.current.json_name(current),
        );
        (!previous.is_extension() && before != after).then(|| {
            format!(
                "{} changed option \"json_name\" from {before:?} to {after:?}.",
                current.describe()
            )
        })
    })
}

/// The real oneof holding a field: synthetic ones only model proto3 `optional`, which the
/// cardinality rules judge.
fn real_oneof(field: &Field) -> Option<String> {
    field
        .oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}

/// FIELD_SAME_ONEOF.
pub(crate) fn same_oneof(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        let description = current.describe();
        match (real_oneof(previous), real_oneof(current)) {
            (None, None) => None,
            (Some(before), Some(after)) => (before != after)
                .then(|| format!("{description} moved from oneof {before:?} to oneof {after:?}.")),
            (Some(_), None) => Some(format!(
                "{description} moved from inside to outside a oneof."
            )),
            (None, Some(_)) => Some(format!(
                "{description} moved from outside to inside a oneof."
            )),
        }
    })
}

fn is_64_bit_integer(field: &Field) -> bool {
    matches!(
        field.proto().r#type(),
        Type::Int64 | Type::Sint64 | Type::Uint64 | Type::Fixed64 | Type::Sfixed64
    )
}

fn jstype(field: &Field) -> &'static str {
    let options = field.proto().options.clone().unwrap_or_default();
    options.jstype().as_str_name()
}

/// FIELD_SAME_JSTYPE: only 64-bit integers have a JavaScript type.
pub(crate) fn same_jstype(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        if !is_64_bit_integer(previous) || !is_64_bit_integer(current) {
            return None;
        }
        let (before, after) = (jstype(previous), jstype(current));
        (before != after).then(|| {
            format!(
                "{} changed option \"jstype\" from {before:?} to {after:?}.",
                current.describe()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    const OLD: &str = "syntax = \"proto3\"; package p; message Hello { string name = 3; int32 id = 4; int32 gone = 5; }";

    #[test]
    fn deleting_a_field_is_judged_by_reservations_per_category() {
        let new =
            "syntax = \"proto3\"; package p; message Hello { reserved 4; reserved \"gone\"; }";
        let old = [("a.proto", OLD)];
        let new = [("a.proto", new)];
        assert_eq!(
            messages_of(&check(&old, &new, Category::File), "FIELD_NO_DELETE"),
            [
                "Previously present field \"5\" with name \"gone\" on message \"Hello\" was deleted.",
                "Previously present field \"4\" with name \"id\" on message \"Hello\" was deleted.",
                "Previously present field \"3\" with name \"name\" on message \"Hello\" was deleted.",
            ]
        );
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::Wire),
                "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED"
            ),
            [
                "Previously present field \"5\" with name \"gone\" on message \"Hello\" was deleted without reserving the number \"5\".",
                "Previously present field \"3\" with name \"name\" on message \"Hello\" was deleted without reserving the number \"3\".",
            ]
        );
        let wire_json = check(&old, &new, Category::WireJson);
        assert_eq!(
            messages_of(&wire_json, "FIELD_NO_DELETE_UNLESS_NAME_RESERVED"),
            [
                "Previously present field \"4\" with name \"id\" on message \"Hello\" was deleted without reserving the name \"id\".",
                "Previously present field \"3\" with name \"name\" on message \"Hello\" was deleted without reserving the name \"name\".",
            ]
        );
        let located = &wire_json
            .violations
            .iter()
            .find(|v| v.rule == "FIELD_NO_DELETE_UNLESS_NAME_RESERVED")
            .map(|v| v.location.clone());
        assert_eq!(
            located
                .as_ref()
                .map(|l| (l.file.as_str(), l.element.as_str(), l.number)),
            Some(("a.proto", "p.Hello.id", Some(4)))
        );
    }

    #[test]
    fn renames_break_json_and_source() {
        let new = "syntax = \"proto3\"; package p; message Hello { string title = 3; int32 id = 4 [json_name = \"ident\"]; int32 gone = 5; }";
        let report = check(&[("a.proto", OLD)], &[("a.proto", new)], Category::WireJson);
        assert_eq!(
            messages_of(&report, "FIELD_SAME_NAME"),
            ["Field \"3\" on message \"Hello\" changed name from \"name\" to \"title\"."]
        );
        assert_eq!(
            messages_of(&report, "FIELD_SAME_JSON_NAME"),
            [
                "Field \"4\" with name \"id\" on message \"Hello\" changed option \"json_name\" from \"id\" to \"ident\".",
                "Field \"3\" with name \"title\" on message \"Hello\" changed option \"json_name\" from \"name\" to \"title\".",
            ]
        );
        assert!(
            check(&[("a.proto", OLD)], &[("a.proto", new)], Category::Wire)
                .violations
                .is_empty()
        );
    }

    #[test]
    fn moving_fields_in_and_out_of_oneofs_breaks_the_wire() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; message A { oneof o { int32 b = 2; } int32 c = 3; optional int32 d = 4; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; message A { oneof o2 { int32 b = 2; } oneof o3 { int32 c = 3; } int32 d = 4; }",
        )];
        assert_eq!(
            messages_of(&check(&old, &new, Category::Wire), "FIELD_SAME_ONEOF"),
            [
                "Field \"2\" with name \"b\" on message \"A\" moved from oneof \"o\" to oneof \"o2\".",
                "Field \"3\" with name \"c\" on message \"A\" moved from outside to inside a oneof.",
            ]
        );
    }

    #[test]
    fn extensions_are_deleted_and_renamed_by_full_name() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; package p; message Foo { extensions 100 to 200; }
            extend Foo { optional int32 ext = 100; optional int32 other = 101; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; package p; message Foo { extensions 100 to 200; }
            extend Foo { optional int32 ext2 = 100; }",
        )];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "EXTENSION_NO_DELETE"),
            [
                "Previously present extension \"ext\" was deleted from file.",
                "Previously present extension \"other\" was deleted from file.",
            ]
        );
        assert_eq!(
            messages_of(&report, "FIELD_SAME_NAME"),
            ["Extension \"100\" on message \"p.Foo\" changed name from \"p.ext\" to \"p.ext2\"."]
        );
        assert!(messages_of(&report, "FIELD_SAME_JSON_NAME").is_empty());
    }

    #[test]
    fn jstype_matters_for_64_bit_integers_only() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; message A { int64 a = 1; int32 b = 2; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; message A { int64 a = 1 [jstype = JS_STRING]; int32 b = 2 [jstype = JS_STRING]; }",
        )];
        assert_eq!(
            messages_of(&check(&old, &new, Category::File), "FIELD_SAME_JSTYPE"),
            [
                "Field \"1\" with name \"a\" on message \"A\" changed option \"jstype\" from \"JS_NORMAL\" to \"JS_STRING\"."
            ]
        );
    }
}
