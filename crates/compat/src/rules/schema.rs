//! One side of a comparison: the validated descriptor pool, the files buf would check, and the
//! indexes the rules look elements up in.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::{
    DescriptorPool, EnumDescriptor, ExtensionDescriptor, FileDescriptor, MessageDescriptor,
    ServiceDescriptor,
};
use prost_types::FileDescriptorSet;

use super::features::{self, ExplicitFeatures, FeatureTable, Resolved, Syntax};
use super::field::Field;
use super::validation::{Validated, validated_pool};
use crate::{CompatError, Side};

/// Files under this prefix are the well-known types: always imports, never checked.
const WELL_KNOWN_PREFIX: &str = "google/protobuf/";

/// Whether buf would check this file (rather than treat it as an import).
pub(crate) fn is_checked_file(name: &str) -> bool {
    !name.starts_with(WELL_KNOWN_PREFIX)
}

/// One validated schema and its indexes. Maps are ordered so every rule runs deterministically.
#[derive(Debug)]
pub(crate) struct Schema {
    pub pool: DescriptorPool,
    /// The checked files, by name.
    pub files: BTreeMap<String, FileDescriptor>,
    /// Every message of the checked files, nested ones and map entries included, by full name.
    pub messages: BTreeMap<String, MessageDescriptor>,
    /// Every enum of the checked files, by full name.
    pub enums: BTreeMap<String, EnumDescriptor>,
    pub services: BTreeMap<String, ServiceDescriptor>,
    /// Every extension declared in the checked files, by full name.
    pub extensions: BTreeMap<String, ExtensionDescriptor>,
    /// The syntax each file declared (the pool may hold a rewritten copy, see [`Schema::build`]).
    syntax: HashMap<String, Syntax>,
    features: FeatureTable,
    /// The real JSON names of the fields the pool holds a stand-in for (see [`validated_pool`]).
    json_names: HashMap<String, String>,
}

impl Schema {
    /// Validates `set` (see [`validated_pool`]) and indexes it. The syntax each file declares
    /// is kept aside, as the pool may hold a rewritten copy.
    pub(crate) fn build(
        set: &FileDescriptorSet,
        features: FeatureTable,
        which: Side,
    ) -> Result<Self, CompatError> {
        let syntax = set
            .file
            .iter()
            .map(|f| (f.name().to_owned(), Syntax::parse(f.syntax.as_deref())))
            .collect::<HashMap<_, _>>();
        let invalid = |reason: String| CompatError::InvalidSchema { which, reason };
        let Validated { pool, json_names } = validated_pool(set, &features).map_err(invalid)?;
        let files: BTreeMap<_, _> = pool
            .files()
            .filter(|f| is_checked_file(f.name()))
            .map(|f| (f.name().to_owned(), f))
            .collect();
        let mut schema = Self {
            pool,
            files,
            messages: BTreeMap::new(),
            enums: BTreeMap::new(),
            services: BTreeMap::new(),
            extensions: BTreeMap::new(),
            syntax,
            features,
            json_names,
        };
        schema.index();
        Ok(schema)
    }

    /// Indexes through the pool's own lists. prost-reflect's per-file and per-message child
    /// iterators look children up by name and panic when an odd (yet accepted) name does not
    /// resolve, so they are never used.
    fn index(&mut self) {
        let checked = |file: &FileDescriptor| is_checked_file(file.name());
        for m in self
            .pool
            .all_messages()
            .filter(|m| checked(&m.parent_file()))
        {
            self.messages.insert(m.full_name().to_owned(), m);
        }
        for e in self.pool.all_enums().filter(|e| checked(&e.parent_file())) {
            self.enums.insert(e.full_name().to_owned(), e);
        }
        for x in self
            .pool
            .all_extensions()
            .filter(|x| checked(&x.parent_file()))
        {
            self.extensions.insert(x.full_name().to_owned(), x);
        }
        for s in self.pool.services().filter(|s| checked(&s.parent_file())) {
            self.services.insert(s.full_name().to_owned(), s);
        }
    }

    pub(crate) fn syntax(&self, file: &FileDescriptor) -> Syntax {
        self.syntax
            .get(file.name())
            .copied()
            .unwrap_or(Syntax::Proto2)
    }

    /// The field's JSON name as its schema gives it.
    pub(crate) fn json_name<'a>(&'a self, field: &'a Field) -> &'a str {
        match self.json_names.get(&field.full_name()) {
            Some(real) => real,
            None => field.json_name(),
        }
    }

    /// The file's edition; only meaningful for editions files.
    pub(crate) fn edition(&self, file: &FileDescriptor) -> i32 {
        self.features.edition(file.name())
    }

    fn resolve(&self, file: &FileDescriptor, chain: Vec<ExplicitFeatures>) -> Resolved {
        let mut chain = chain;
        chain.push(self.features.file(file.name()));
        features::resolve(self.syntax(file), self.features.edition(file.name()), chain)
    }

    /// The explicit features of a message and of the messages it is nested in, nearest first.
    fn message_chain(&self, message: Option<MessageDescriptor>) -> Vec<ExplicitFeatures> {
        let mut chain = Vec::new();
        let mut next = message;
        while let Some(m) = next {
            chain.push(self.features.element(m.full_name()));
            next = m.parent_message();
        }
        chain
    }

    pub(crate) fn message_features(&self, message: &MessageDescriptor) -> Resolved {
        let chain = self.message_chain(Some(message.clone()));
        self.resolve(&message.parent_file(), chain)
    }

    pub(crate) fn enum_features(&self, e: &EnumDescriptor) -> Resolved {
        let mut chain = vec![self.features.element(e.full_name())];
        chain.extend(self.message_chain(e.parent_message()));
        self.resolve(&e.parent_file(), chain)
    }

    /// A field inherits from its oneof, then its message; an extension from the message it is
    /// declared in (not the one it extends), then its file.
    pub(crate) fn field_features(&self, field: &Field) -> Resolved {
        let mut chain = vec![self.features.element(&field.full_name())];
        match field {
            Field::Regular(f) => {
                if let Some(oneof) = f.containing_oneof() {
                    chain.push(self.features.element(oneof.full_name()));
                }
                chain.extend(self.message_chain(Some(f.parent_message().clone())));
            }
            Field::Extension(x) => chain.extend(self.message_chain(x.parent_message())),
        }
        self.resolve(&field.file(), chain)
    }

    /// The enum with this full name anywhere in the pool, imports included: a field may use an
    /// enum of a file that is not checked.
    pub(crate) fn any_enum(&self, full_name: &str) -> Option<EnumDescriptor> {
        self.pool.get_enum_by_name(full_name)
    }
}

fn in_file(file: &FileDescriptor, other: &FileDescriptor) -> bool {
    file.index() == other.index()
}

/// Every message of a file, nested ones and map entries included.
pub(crate) fn all_messages(file: &FileDescriptor) -> Vec<MessageDescriptor> {
    let pool = file.parent_pool();
    pool.all_messages()
        .filter(|m| in_file(file, &m.parent_file()))
        .collect()
}

/// Every enum of a file, nested ones included.
pub(crate) fn all_enums(file: &FileDescriptor) -> Vec<EnumDescriptor> {
    let pool = file.parent_pool();
    pool.all_enums()
        .filter(|e| in_file(file, &e.parent_file()))
        .collect()
}

/// Every extension declared in a file, nested ones included.
pub(crate) fn all_extensions(file: &FileDescriptor) -> Vec<ExtensionDescriptor> {
    let pool = file.parent_pool();
    pool.all_extensions()
        .filter(|x| in_file(file, &x.parent_file()))
        .collect()
}

/// The services of a file.
pub(crate) fn all_services(file: &FileDescriptor) -> Vec<ServiceDescriptor> {
    let pool = file.parent_pool();
    pool.services()
        .filter(|s| in_file(file, &s.parent_file()))
        .collect()
}

/// A full name without its package: `pkg.Outer.Inner` → `Outer.Inner`.
pub(crate) fn nested_name<'a>(full_name: &'a str, package: &str) -> &'a str {
    if package.is_empty() {
        return full_name;
    }
    full_name
        .strip_prefix(package)
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or(full_name)
}

#[cfg(test)]
mod tests {
    use prost_types::FileDescriptorProto;

    use super::*;

    fn set_with_syntax(syntax: &str) -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("a.proto".into()),
                syntax: Some(syntax.into()),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn an_unknown_syntax_is_an_error_not_a_panic() {
        let result = Schema::build(
            &set_with_syntax("proto4"),
            FeatureTable::default(),
            Side::Current,
        );
        assert!(matches!(
            result,
            Err(CompatError::InvalidSchema {
                which: Side::Current,
                ..
            })
        ));
    }

    #[test]
    fn an_empty_syntax_is_proto2() {
        let schema = Schema::build(
            &set_with_syntax(""),
            FeatureTable::default(),
            Side::Previous,
        )
        .expect("a valid schema");
        let file = schema.files.values().next().expect("one file");
        assert_eq!(schema.syntax(file), Syntax::Proto2);
    }
}
