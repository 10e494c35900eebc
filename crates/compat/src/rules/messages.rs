//! Message rules: deletion from a file, oneofs, required fields and message options.

use std::collections::BTreeMap;

use prost_reflect::MessageDescriptor;
use prost_types::field_descriptor_proto::Label;

use super::features::JsonFormat;
use super::files::deleted_from_file;
use super::pairs::{Diff, Finding};
use super::schema::all_messages;

/// MESSAGE_NO_DELETE: map entries count, as buf counts them.
pub(crate) fn no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    deleted_from_file(diff, "message", |file| {
        all_messages(file)
            .iter()
            .map(|m| m.full_name().to_owned())
            .collect()
    })
}

fn finding(message: &MessageDescriptor, text: String) -> Finding {
    Finding::new(
        message.parent_file().name(),
        message.full_name(),
        None,
        text,
    )
}

/// MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR: only turning the option on breaks.
pub(crate) fn no_remove_standard_descriptor_accessor(diff: &Diff<'_>) -> Vec<Finding> {
    let accessor_removed = |m: &MessageDescriptor| {
        m.descriptor_proto()
            .options
            .as_ref()
            .is_some_and(|o| o.no_standard_descriptor_accessor())
    };
    diff.messages()
        .into_iter()
        .filter(|(previous, current)| !accessor_removed(previous) && accessor_removed(current))
        .map(|(_, current)| {
            finding(
                &current,
                "Message option \"no_standard_descriptor_accessor\" changed from \"false\" to \"true\"."
                    .to_owned(),
            )
        })
        .collect()
}

/// ONEOF_NO_DELETE: synthetic oneofs (proto3 `optional`) are left to the cardinality rules.
pub(crate) fn oneof_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.messages() {
        for oneof in previous.oneofs().filter(|o| !o.is_synthetic()) {
            if current.oneofs().all(|o| o.name() != oneof.name()) {
                out.push(Finding::new(
                    current.parent_file().name(),
                    &format!("{}.{}", current.full_name(), oneof.name()),
                    None,
                    format!(
                        "Previously present oneof {:?} on message {:?} was deleted.",
                        oneof.name(),
                        current.name()
                    ),
                ));
            }
        }
    }
    out
}

/// The numbers and full names of a message's fields declared `required`.
fn required_fields(message: &MessageDescriptor) -> BTreeMap<i32, String> {
    message
        .fields()
        .filter(|f| f.field_descriptor_proto().label() == Label::Required)
        .map(|f| {
            (
                f.field_descriptor_proto().number(),
                f.full_name().to_owned(),
            )
        })
        .collect()
}

const REQUIRED_WHY: &str = "Required fields must always be sent, so if one side does not know about the required field, this will result in a breakage.";

/// MESSAGE_SAME_REQUIRED_FIELDS: required fields may be neither added nor deleted. Only the
/// `required` label counts (as in buf), not the editions `LEGACY_REQUIRED` feature.
pub(crate) fn same_required_fields(diff: &Diff<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.messages() {
        let before = required_fields(&previous);
        let after = required_fields(&current);
        let file = current.parent_file();
        for number in before.keys().filter(|n| !after.contains_key(n)) {
            out.push(Finding::new(
                file.name(),
                current.full_name(),
                Some(*number),
                format!(
                    "Message {:?} had required field \"{number}\" deleted. {REQUIRED_WHY}",
                    previous.name()
                ),
            ));
        }
        for (number, name) in after.iter().filter(|(n, _)| !before.contains_key(n)) {
            out.push(Finding::new(
                file.name(),
                name,
                Some(*number),
                format!(
                    "Message {:?} had required field \"{number}\" added. {REQUIRED_WHY}",
                    current.name()
                ),
            ));
        }
    }
    out
}

/// MESSAGE_SAME_JSON_FORMAT: losing full JSON support breaks; gaining it does not.
pub(crate) fn same_json_format(diff: &Diff<'_>) -> Vec<Finding> {
    diff.messages()
        .into_iter()
        .filter_map(|(previous, current)| {
            let before = diff.previous.message_features(&previous).json_format;
            let after = diff.current.message_features(&current).json_format;
            (before == JsonFormat::Allow && after != JsonFormat::Allow).then(|| {
                finding(
                    &current,
                    format!(
                        "Message {:?} JSON format support changed from {} to {}.",
                        current.name(),
                        before.as_str(),
                        after.as_str()
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    #[test]
    fn deleted_messages_include_nested_ones_and_map_entries() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; package p; message A { message B {} map<string, int32> m = 1; } message C {}",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; package p; message A { reserved 1; }",
        )];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "MESSAGE_NO_DELETE"),
            [
                "Previously present message \"A.B\" was deleted from file.",
                "Previously present message \"A.MEntry\" was deleted from file.",
                "Previously present message \"C\" was deleted from file.",
            ]
        );
        assert!(
            check(&old, &new, Category::Package)
                .violations
                .iter()
                .all(|v| v.rule != "MESSAGE_NO_DELETE")
        );
    }

    #[test]
    fn deleting_a_real_oneof_breaks_but_not_a_synthetic_one() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; message A { oneof o { int32 x = 1; } optional int32 y = 2; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; message A { int32 x = 1; int32 y = 2; }",
        )];
        let report = check(&old, &new, Category::File);
        assert_eq!(
            messages_of(&report, "ONEOF_NO_DELETE"),
            ["Previously present oneof \"o\" on message \"A\" was deleted."]
        );
        assert_eq!(
            report
                .violations
                .iter()
                .find(|v| v.rule == "ONEOF_NO_DELETE")
                .map(|v| v.location.element.as_str()),
            Some("A.o")
        );
    }

    #[test]
    fn required_fields_may_be_neither_added_nor_deleted() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; message A { required int32 x = 1; optional int32 y = 2; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; message A { optional int32 x = 1; required int32 y = 2; }",
        )];
        let report = check(&old, &new, Category::Wire);
        let found = messages_of(&report, "MESSAGE_SAME_REQUIRED_FIELDS");
        assert_eq!(found.len(), 2);
        assert!(found[0].starts_with("Message \"A\" had required field \"1\" deleted."));
        assert!(found[1].starts_with("Message \"A\" had required field \"2\" added."));
    }

    #[test]
    fn turning_off_the_standard_descriptor_accessor_breaks() {
        let old = [("a.proto", "syntax = \"proto3\"; message A {}")];
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; message A { option no_standard_descriptor_accessor = true; }",
        )];
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::File),
                "MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR"
            )
            .len(),
            1
        );
        assert!(check(&new, &old, Category::File).violations.is_empty());
    }

    #[test]
    fn losing_json_support_breaks_under_wire_json() {
        let old = [("a.proto", "syntax = \"proto3\"; message A {}")];
        let new = [("a.proto", "syntax = \"proto2\"; message A {}")];
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::WireJson),
                "MESSAGE_SAME_JSON_FORMAT"
            ),
            ["Message \"A\" JSON format support changed from ALLOW to LEGACY_BEST_EFFORT."]
        );
        assert!(
            messages_of(
                &check(&new, &old, Category::WireJson),
                "MESSAGE_SAME_JSON_FORMAT"
            )
            .is_empty()
        );
    }
}
