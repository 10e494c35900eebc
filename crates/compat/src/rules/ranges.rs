//! Reserved ranges and names, and extension ranges: what a previous range covered must stay
//! covered by the current ranges taken together (they may be split, merged or widened).

use std::collections::BTreeSet;

use prost_reflect::{EnumDescriptor, MessageDescriptor};

use super::pairs::{Diff, Finding};

/// The highest field number, and the highest for messages with the message-set wire format.
const MESSAGE_MAX: i64 = 536_870_911;
const MESSAGE_SET_MAX: i64 = i32::MAX as i64 - 1;
const ENUM_MAX: i64 = i32::MAX as i64;

/// An inclusive range of numbers. `i64` so that no end ± 1 can overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Span {
    pub start: i64,
    pub end: i64,
}

impl Span {
    /// `[5]`, `[5,10]` or `[5,max]`, as buf prints ranges.
    fn display(self, max: i64) -> String {
        if self.start == self.end {
            format!("[{}]", self.start)
        } else if self.end == max {
            format!("[{},max]", self.start)
        } else {
            format!("[{},{}]", self.start, self.end)
        }
    }
}

/// Sorts ranges and merges those that overlap or touch.
pub(crate) fn collapse(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.start <= last.end + 1 => last.end = last.end.max(span.end),
            _ => out.push(span),
        }
    }
    out
}

/// The parts of `wanted` that the collapsed `have` does not cover.
pub(crate) fn missing(wanted: Span, have: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut cursor = wanted.start;
    for span in have {
        if span.end < cursor {
            continue;
        }
        if cursor > wanted.end || span.start > wanted.end {
            break;
        }
        if span.start > cursor {
            out.push(Span {
                start: cursor,
                end: span.start - 1,
            });
        }
        cursor = cursor.max(span.end + 1);
    }
    if cursor <= wanted.end {
        out.push(Span {
            start: cursor,
            end: wanted.end,
        });
    }
    out
}

/// A message or enum with the ranges a rule compares.
struct Ranged {
    kind: &'static str,
    name: String,
    full_name: String,
    file: String,
    max: i64,
}

impl Ranged {
    fn message(m: &MessageDescriptor) -> Self {
        let message_set = m
            .descriptor_proto()
            .options
            .as_ref()
            .is_some_and(|o| o.message_set_wire_format());
        Self {
            kind: "message",
            name: m.name().to_owned(),
            full_name: m.full_name().to_owned(),
            file: m.parent_file().name().to_owned(),
            max: if message_set {
                MESSAGE_SET_MAX
            } else {
                MESSAGE_MAX
            },
        }
    }

    fn enumeration(e: &EnumDescriptor) -> Self {
        Self {
            kind: "enum",
            name: e.name().to_owned(),
            full_name: e.full_name().to_owned(),
            file: e.parent_file().name().to_owned(),
            max: ENUM_MAX,
        }
    }

    fn finding(&self, text: String) -> Finding {
        Finding::new(&self.file, &self.full_name, None, text)
    }
}

/// Reports each previous range of `range_kind` not fully covered by the current ranges.
fn check_ranges(
    element: &Ranged,
    range_kind: &str,
    previous: Vec<Span>,
    current: Vec<Span>,
) -> Vec<Finding> {
    let have = collapse(current);
    previous
        .into_iter()
        .filter_map(|range| {
            let gone = missing(range, &have);
            (!gone.is_empty()).then(|| {
                let gone: Vec<_> = gone.iter().map(|s| s.display(element.max)).collect();
                element.finding(format!(
                    "Previously present {range_kind} range {:?} on {} {:?} is missing values: {} were removed.",
                    range.display(element.max),
                    element.kind,
                    element.name,
                    gone.join(", ")
                ))
            })
        })
        .collect()
}

fn check_names<'a>(
    element: &Ranged,
    previous: impl Iterator<Item = &'a str>,
    current: BTreeSet<&str>,
) -> Vec<Finding> {
    previous
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|name| !current.contains(name))
        .map(|name| {
            element.finding(format!(
                "Previously present reserved name {name:?} on {} {:?} was deleted.",
                element.kind, element.name
            ))
        })
        .collect()
}

/// Message ranges end exclusively in descriptors.
fn message_spans<'a>(ranges: impl Iterator<Item = (i32, i32)> + 'a) -> Vec<Span> {
    ranges
        .map(|(start, end)| Span {
            start: i64::from(start),
            end: i64::from(end) - 1,
        })
        .collect()
}

fn reserved_of_message(m: &MessageDescriptor) -> Vec<Span> {
    message_spans(
        m.descriptor_proto()
            .reserved_range
            .iter()
            .map(|r| (r.start(), r.end())),
    )
}

fn extension_ranges_of(m: &MessageDescriptor) -> Vec<Span> {
    message_spans(
        m.descriptor_proto()
            .extension_range
            .iter()
            .map(|r| (r.start(), r.end())),
    )
}

/// Enum ranges end inclusively.
fn reserved_of_enum(e: &EnumDescriptor) -> Vec<Span> {
    e.enum_descriptor_proto()
        .reserved_range
        .iter()
        .map(|r| Span {
            start: i64::from(r.start()),
            end: i64::from(r.end()),
        })
        .collect()
}

/// RESERVED_MESSAGE_NO_DELETE.
pub(crate) fn reserved_message_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.messages() {
        let element = Ranged::message(&current);
        out.extend(check_ranges(
            &element,
            "reserved",
            reserved_of_message(&previous),
            reserved_of_message(&current),
        ));
        out.extend(check_names(
            &element,
            previous.reserved_names(),
            current.reserved_names().collect(),
        ));
    }
    out
}

/// RESERVED_ENUM_NO_DELETE.
pub(crate) fn reserved_enum_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.enums() {
        let element = Ranged::enumeration(&current);
        out.extend(check_ranges(
            &element,
            "reserved",
            reserved_of_enum(&previous),
            reserved_of_enum(&current),
        ));
        out.extend(check_names(
            &element,
            previous.reserved_names(),
            current.reserved_names().collect(),
        ));
    }
    out
}

/// EXTENSION_MESSAGE_NO_DELETE: extension ranges of a message.
pub(crate) fn extension_message_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    diff.messages()
        .into_iter()
        .flat_map(|(previous, current)| {
            let element = Ranged::message(&current);
            check_ranges(
                &element,
                "extension",
                extension_ranges_of(&previous),
                extension_ranges_of(&current),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    fn span(start: i64, end: i64) -> Span {
        Span { start, end }
    }

    #[test]
    fn collapsing_merges_touching_and_overlapping_ranges() {
        let spans = vec![
            span(10, 12),
            span(1, 3),
            span(4, 5),
            span(11, 20),
            span(30, 30),
        ];
        assert_eq!(collapse(spans), [span(1, 5), span(10, 20), span(30, 30)]);
    }

    #[test]
    fn missing_finds_every_gap() {
        let have = collapse(vec![span(100, 104), span(107, 107)]);
        assert_eq!(
            missing(span(100, 110), &have),
            [span(105, 106), span(108, 110)]
        );
        assert_eq!(missing(span(1, 5), &[]), [span(1, 5)]);
        assert!(missing(span(101, 103), &have).is_empty());
        assert_eq!(missing(span(90, 100), &have), [span(90, 99)]);
    }

    #[test]
    fn shrinking_reserved_ranges_and_names_breaks() {
        let old = [("a.proto", "syntax = \"proto3\"; message Foo { reserved 100 to 110, 200 to max; reserved \"x\", \"y\"; }
            enum E { E_0 = 0; reserved 5 to 10; reserved \"Q\"; }")];
        let new = [("a.proto", "syntax = \"proto3\"; message Foo { reserved 100 to 104, 107, 300 to max; reserved \"x\"; }
            enum E { E_0 = 0; reserved 5 to 7; }")];
        let report = check(&old, &new, Category::Wire);
        assert_eq!(
            messages_of(&report, "RESERVED_MESSAGE_NO_DELETE"),
            [
                "Previously present reserved name \"y\" on message \"Foo\" was deleted.",
                "Previously present reserved range \"[100,110]\" on message \"Foo\" is missing values: [105,106], [108,110] were removed.",
                "Previously present reserved range \"[200,max]\" on message \"Foo\" is missing values: [200,299] were removed.",
            ]
        );
        assert_eq!(
            messages_of(&report, "RESERVED_ENUM_NO_DELETE"),
            [
                "Previously present reserved name \"Q\" on enum \"E\" was deleted.",
                "Previously present reserved range \"[5,10]\" on enum \"E\" is missing values: [8,10] were removed.",
            ]
        );
    }

    #[test]
    fn splitting_a_reserved_range_is_fine() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; message Foo { reserved 1 to 10; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto3\"; message Foo { reserved 1 to 4, 5 to 10, 20; }",
        )];
        assert!(check(&old, &new, Category::File).violations.is_empty());
    }

    #[test]
    fn shrinking_extension_ranges_breaks_source_compatibility() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; message Foo { extensions 100 to 200; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; message Foo { extensions 100 to 150; }",
        )];
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::File),
                "EXTENSION_MESSAGE_NO_DELETE"
            ),
            [
                "Previously present extension range \"[100,200]\" on message \"Foo\" is missing values: [151,200] were removed."
            ]
        );
        assert!(check(&old, &new, Category::Wire).violations.is_empty());
    }
}
