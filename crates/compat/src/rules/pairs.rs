//! Pairing the two schemas as buf does: files by path; messages, enums, services and extensions
//! by fully-qualified name across all files; fields by number within a paired message;
//! extensions by extended message and number; enum values by number; RPCs by name within a
//! paired service. Every list comes out in a fixed order.

use std::collections::BTreeMap;

use prost_reflect::{
    EnumDescriptor, EnumValueDescriptor, FileDescriptor, MessageDescriptor, MethodDescriptor,
    ServiceDescriptor,
};

use super::field::Field;
use super::schema::Schema;
use crate::Location;

/// The two schemas being compared.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Diff<'a> {
    pub previous: &'a Schema,
    pub current: &'a Schema,
}

/// Two versions of one element: `.0` previous, `.1` current.
pub(crate) type Pair<T> = (T, T);

/// A number of an enum with the values that carry it (several under `allow_alias`).
#[derive(Debug, Clone)]
pub(crate) struct EnumNumber {
    pub current_enum: EnumDescriptor,
    pub number: i32,
    pub previous: Vec<EnumValueDescriptor>,
    pub current: Vec<EnumValueDescriptor>,
}

impl Diff<'_> {
    pub(crate) fn files(&self) -> Vec<Pair<FileDescriptor>> {
        pair_maps(&self.previous.files, &self.current.files)
    }

    pub(crate) fn messages(&self) -> Vec<Pair<MessageDescriptor>> {
        pair_maps(&self.previous.messages, &self.current.messages)
    }

    pub(crate) fn enums(&self) -> Vec<Pair<EnumDescriptor>> {
        pair_maps(&self.previous.enums, &self.current.enums)
    }

    pub(crate) fn services(&self) -> Vec<Pair<ServiceDescriptor>> {
        pair_maps(&self.previous.services, &self.current.services)
    }

    pub(crate) fn methods(&self) -> Vec<Pair<MethodDescriptor>> {
        self.services()
            .into_iter()
            .flat_map(|(previous, current)| {
                pair_maps(&methods_by_name(&previous), &methods_by_name(&current))
            })
            .collect()
    }

    /// Fields of paired messages by number, then extensions by extended message and number.
    pub(crate) fn fields(&self) -> Vec<Pair<Field>> {
        let mut pairs: Vec<_> = self
            .messages()
            .into_iter()
            .flat_map(|(previous, current)| {
                pair_maps(&fields_by_number(&previous), &fields_by_number(&current))
            })
            .collect();
        pairs.extend(pair_maps(
            &extensions_by_target(self.previous),
            &extensions_by_target(self.current),
        ));
        pairs
    }

    /// The numbers present in both versions of each paired enum.
    pub(crate) fn enum_numbers(&self) -> Vec<EnumNumber> {
        let mut out = Vec::new();
        for (previous_enum, current_enum) in self.enums() {
            let current_values = values_by_number(&current_enum);
            for (number, previous) in values_by_number(&previous_enum) {
                if let Some(current) = current_values.get(&number) {
                    out.push(EnumNumber {
                        current_enum: current_enum.clone(),
                        number,
                        previous,
                        current: current.clone(),
                    });
                }
            }
        }
        out
    }
}

/// The values of both maps under keys present in both.
pub(crate) fn pair_maps<K: Ord, T: Clone>(
    previous: &BTreeMap<K, T>,
    current: &BTreeMap<K, T>,
) -> Vec<Pair<T>> {
    previous
        .iter()
        .filter_map(|(key, p)| current.get(key).map(|c| (p.clone(), c.clone())))
        .collect()
}

pub(crate) fn methods_by_name(service: &ServiceDescriptor) -> BTreeMap<String, MethodDescriptor> {
    service
        .methods()
        .map(|m| (m.name().to_owned(), m))
        .collect()
}

pub(crate) fn fields_by_number(message: &MessageDescriptor) -> BTreeMap<i32, Field> {
    message
        .fields()
        .map(Field::Regular)
        .map(|f| (f.number(), f))
        .collect()
}

fn extensions_by_target(schema: &Schema) -> BTreeMap<(String, i32), Field> {
    schema
        .extensions
        .values()
        .map(|x| {
            let field = Field::Extension(x.clone());
            (
                (
                    x.containing_message().full_name().to_owned(),
                    field.number(),
                ),
                field,
            )
        })
        .collect()
}

pub(crate) fn values_by_number(e: &EnumDescriptor) -> BTreeMap<i32, Vec<EnumValueDescriptor>> {
    let mut out: BTreeMap<i32, Vec<EnumValueDescriptor>> = BTreeMap::new();
    for value in e.values() {
        out.entry(value.number()).or_default().push(value);
    }
    for values in out.values_mut() {
        values.sort_by(|a, b| a.name().cmp(b.name()));
    }
    out
}

/// What one rule found at one place; the engine adds the rule's id and categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub location: Location,
    pub message: String,
}

impl Finding {
    pub(crate) fn new(file: &str, element: &str, number: Option<i32>, message: String) -> Self {
        Self {
            location: Location {
                file: file.to_owned(),
                element: element.to_owned(),
                number,
            },
            message,
        }
    }

    /// A finding about a field, placed in the current file.
    pub(crate) fn on_field(field: &Field, message: String) -> Self {
        Self::new(
            field.file().name(),
            &field.full_name(),
            Some(field.number()),
            message,
        )
    }
}

/// `"A", "B"`: names quoted and joined as buf lists them.
pub(crate) fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The name buf's messages use for an enum value: `Enum.VALUE` scoped like the enum itself.
pub(crate) fn value_element(e: &EnumDescriptor, value: &str) -> String {
    format!("{}.{value}", e.full_name())
}
