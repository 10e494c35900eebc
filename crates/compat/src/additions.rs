//! What the current schema adds: the fully-qualified names of elements it has and the previous
//! schema lacks. Any addition makes a release at least a minor one.
//!
//! Map entry messages and synthetic oneofs are generated from a field, so they are not counted
//! apart from it.

use std::collections::BTreeSet;

use prost_reflect::MessageDescriptor;

use crate::rules::schema::Schema;

/// Names present in `current` and not in `previous`, sorted.
pub(crate) fn additions(previous: &Schema, current: &Schema) -> Vec<String> {
    let before = names(previous);
    names(current).difference(&before).cloned().collect()
}

/// Every named element of a schema's checked files: files by name, the rest fully qualified.
fn names(schema: &Schema) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = schema.files.keys().cloned().collect();
    for message in schema.messages.values().filter(|m| !m.is_map_entry()) {
        out.extend(message_members(message));
    }
    for e in schema.enums.values() {
        out.insert(e.full_name().to_owned());
        out.extend(
            e.values()
                .map(|v| format!("{}.{}", e.full_name(), v.name())),
        );
    }
    for service in schema.services.values() {
        out.insert(service.full_name().to_owned());
        out.extend(service.methods().map(|m| m.full_name().to_owned()));
    }
    out.extend(schema.extensions.keys().cloned());
    out
}

/// A message, its fields and its real oneofs.
fn message_members(message: &MessageDescriptor) -> Vec<String> {
    let mut out = vec![message.full_name().to_owned()];
    out.extend(message.fields().map(|f| f.full_name().to_owned()));
    out.extend(
        message
            .oneofs()
            .filter(|o| !o.is_synthetic())
            .map(|o| o.full_name().to_owned()),
    );
    out
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::check;

    #[test]
    fn additions_are_listed_by_full_name_regardless_of_category() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; package p; message A { optional int32 x = 1; extensions 100 to 200; } enum E { E_0 = 0; }",
        )];
        let new = [
            ("a.proto", "syntax = \"proto2\"; package p; message A { optional int32 x = 1; extensions 100 to 200; oneof o { string y = 2; } map<string, int32> m = 3; optional int32 z = 4; }
                enum E { E_0 = 0; E_1 = 1; } service S { rpc Do(A) returns (A); }"),
            ("b.proto", "syntax = \"proto2\"; package q; import \"a.proto\"; extend p.A { optional int32 ext = 100; }"),
        ];
        let expected = [
            "b.proto", "p.A.m", "p.A.o", "p.A.y", "p.A.z", "p.E.E_1", "p.S", "p.S.Do", "q.ext",
        ];
        for category in Category::ALL {
            let report = check(&old, &new, category);
            assert_eq!(report.additions, expected, "{category}");
        }
    }

    #[test]
    fn nothing_is_added_to_an_unchanged_schema() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; package p; message A { int32 x = 1; }",
        )];
        assert!(check(&old, &old, Category::Wire).additions.is_empty());
    }
}
