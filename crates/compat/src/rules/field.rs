//! Fields and extensions behind one type, with the properties buf's field rules compare: kind,
//! cardinality, and the words buf describes a field with.

use std::fmt;

use prost_reflect::{
    Cardinality as Label, ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind,
    OneofDescriptor, Value,
};
use prost_types::FieldDescriptorProto;

use super::features::{FieldPresence, Syntax};
use super::schema::Schema;

/// A message field or an extension. buf pairs both with the same field rules.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Regular(FieldDescriptor),
    Extension(ExtensionDescriptor),
}

impl Field {
    pub(crate) fn proto(&self) -> &FieldDescriptorProto {
        match self {
            Self::Regular(f) => f.field_descriptor_proto(),
            Self::Extension(x) => x.field_descriptor_proto(),
        }
    }

    /// Field numbers are at most 2^29 - 1 once validated, so they always fit.
    pub(crate) fn number(&self) -> i32 {
        let number = match self {
            Self::Regular(f) => f.number(),
            Self::Extension(x) => x.number(),
        };
        i32::try_from(number).unwrap_or(i32::MAX)
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Regular(f) => f.name(),
            Self::Extension(x) => x.name(),
        }
    }

    pub(crate) fn full_name(&self) -> String {
        match self {
            Self::Regular(f) => f.full_name().to_owned(),
            Self::Extension(x) => x.full_name().to_owned(),
        }
    }

    pub(crate) fn json_name(&self) -> &str {
        match self {
            Self::Regular(f) => f.json_name(),
            Self::Extension(x) => x.json_name(),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Self::Regular(f) => f.kind(),
            Self::Extension(x) => x.kind(),
        }
    }

    fn label(&self) -> Label {
        match self {
            Self::Regular(f) => f.cardinality(),
            Self::Extension(x) => x.cardinality(),
        }
    }

    pub(crate) fn is_list(&self) -> bool {
        match self {
            Self::Regular(f) => f.is_list(),
            Self::Extension(x) => x.is_list(),
        }
    }

    pub(crate) fn is_map(&self) -> bool {
        match self {
            Self::Regular(f) => f.is_map(),
            Self::Extension(x) => x.is_map(),
        }
    }

    fn is_group(&self) -> bool {
        match self {
            Self::Regular(f) => f.is_group(),
            Self::Extension(x) => x.is_group(),
        }
    }

    pub(crate) fn default_value(&self) -> Value {
        match self {
            Self::Regular(f) => f.default_value(),
            Self::Extension(x) => x.default_value(),
        }
    }

    /// The oneof holding the field, synthetic (proto3 `optional`) ones included.
    pub(crate) fn oneof(&self) -> Option<OneofDescriptor> {
        match self {
            Self::Regular(f) => f.containing_oneof(),
            Self::Extension(_) => None,
        }
    }

    pub(crate) fn file(&self) -> FileDescriptor {
        match self {
            Self::Regular(f) => f.parent_file(),
            Self::Extension(x) => x.parent_file(),
        }
    }

    pub(crate) fn is_extension(&self) -> bool {
        matches!(self, Self::Extension(_))
    }

    /// Whether the field belongs to a map's generated entry message.
    pub(crate) fn in_map_entry(&self) -> bool {
        match self {
            Self::Regular(f) => f.parent_message().is_map_entry(),
            Self::Extension(_) => false,
        }
    }

    /// The message a field is on (short name) or an extension extends (full name), as buf
    /// names it in its messages.
    pub(crate) fn owner(&self) -> String {
        match self {
            Self::Regular(f) => f.parent_message().name().to_owned(),
            Self::Extension(x) => x.containing_message().full_name().to_owned(),
        }
    }

    /// The full name of the message or enum the field refers to, if any.
    pub(crate) fn type_name(&self) -> Option<String> {
        match self.kind() {
            Kind::Message(m) => Some(m.full_name().to_owned()),
            Kind::Enum(e) => Some(e.full_name().to_owned()),
            _ => None,
        }
    }

    /// Extensions are known by full name, fields by their short name.
    pub(crate) fn display_name(&self) -> String {
        if self.is_extension() {
            self.full_name()
        } else {
            self.name().to_owned()
        }
    }

    /// `Field "1" with name "a" on message "Foo"`, buf's way of naming a field.
    pub(crate) fn describe(&self) -> String {
        self.describe_with_name(Some(&self.display_name()))
    }

    /// [`Field::describe`] with another name, or without one.
    pub(crate) fn describe_with_name(&self, name: Option<&str>) -> String {
        let what = if self.is_extension() {
            "Extension"
        } else {
            "Field"
        };
        let name = name
            .map(|n| format!(" with name {n:?}"))
            .unwrap_or_default();
        format!(
            "{what} \"{}\"{name} on message {:?}",
            self.number(),
            self.owner()
        )
    }
}

/// A field's kind as protobuf-go's `protoreflect.Kind` has it: delimited messages are groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FieldKind {
    Double,
    Float,
    Int64,
    Uint64,
    Int32,
    Fixed64,
    Fixed32,
    Bool,
    String,
    Group,
    Message,
    Bytes,
    Uint32,
    Enum,
    Sfixed32,
    Sfixed64,
    Sint32,
    Sint64,
}

impl FieldKind {
    pub(crate) fn of(schema: &Schema, field: &Field) -> Self {
        match field.kind() {
            Kind::Double => Self::Double,
            Kind::Float => Self::Float,
            Kind::Int64 => Self::Int64,
            Kind::Uint64 => Self::Uint64,
            Kind::Int32 => Self::Int32,
            Kind::Fixed64 => Self::Fixed64,
            Kind::Fixed32 => Self::Fixed32,
            Kind::Bool => Self::Bool,
            Kind::String => Self::String,
            Kind::Bytes => Self::Bytes,
            Kind::Uint32 => Self::Uint32,
            Kind::Sfixed32 => Self::Sfixed32,
            Kind::Sfixed64 => Self::Sfixed64,
            Kind::Sint32 => Self::Sint32,
            Kind::Sint64 => Self::Sint64,
            Kind::Enum(_) => Self::Enum,
            Kind::Message(m) => {
                let delimited = schema.syntax(&field.file()) == Syntax::Editions
                    && !m.is_map_entry()
                    && schema.field_features(field).delimited;
                if field.is_group() || delimited {
                    Self::Group
                } else {
                    Self::Message
                }
            }
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Double => "double",
            Self::Float => "float",
            Self::Int64 => "int64",
            Self::Uint64 => "uint64",
            Self::Int32 => "int32",
            Self::Fixed64 => "fixed64",
            Self::Fixed32 => "fixed32",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Group => "group",
            Self::Message => "message",
            Self::Bytes => "bytes",
            Self::Uint32 => "uint32",
            Self::Enum => "enum",
            Self::Sfixed32 => "sfixed32",
            Self::Sfixed64 => "sfixed64",
            Self::Sint32 => "sint32",
            Self::Sint64 => "sint64",
        }
    }

    /// How buf prints a kind: a group outside proto2 is a delimited message.
    pub(crate) fn pretty(self, schema: &Schema, field: &Field) -> &'static str {
        if self == Self::Group && schema.syntax(&field.file()) != Syntax::Proto2 {
            "message (delimited encoding)"
        } else {
            self.as_str()
        }
    }
}

/// buf's field cardinalities (cardinality.go): presence matters, and maps are not lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Cardinality {
    OptionalExplicit,
    OptionalImplicit,
    Required,
    Repeated,
    Map,
}

impl Cardinality {
    pub(crate) fn of(schema: &Schema, field: &Field) -> Self {
        if field.is_list() {
            return Self::Repeated;
        }
        if field.is_map() {
            return Self::Map;
        }
        if field.label() == Label::Required {
            return Self::Required;
        }
        let presence = schema.field_features(field).field_presence;
        let editions = schema.syntax(&field.file()) == Syntax::Editions;
        if editions && presence == FieldPresence::LegacyRequired {
            return Self::Required;
        }
        let explicit = field.is_extension()
            || presence != FieldPresence::Implicit
            || matches!(field.kind(), Kind::Message(_))
            || field.oneof().is_some();
        if explicit {
            Self::OptionalExplicit
        } else {
            Self::OptionalImplicit
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::OptionalExplicit => "optional with explicit presence",
            Self::OptionalImplicit => "optional with implicit presence",
            Self::Required => "required",
            Self::Repeated => "repeated",
            Self::Map => "map",
        }
    }
}

impl fmt::Display for Cardinality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
