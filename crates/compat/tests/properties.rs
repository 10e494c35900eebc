//! Properties of the rule engine over generated schemas: a schema never breaks itself, pure
//! additions never break, and no input makes the engine panic.

use flotilla_compat::{Category, check, check_encoded};
use proptest::prelude::*;
use prost::Message;
use prost_types::FileDescriptorSet;

const SCALARS: &[&str] = &[
    "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32",
    "sfixed64", "bool", "string", "bytes", "float", "double",
];
const MAP_KEYS: &[&str] = &["int32", "string", "bool", "uint64"];

/// What a field holds.
#[derive(Debug, Clone)]
enum FieldType {
    Scalar(usize),
    Message(usize),
    Enum(usize),
    Map(usize, usize),
}

/// How a field is labelled; `Required` is rendered only in proto2.
#[derive(Debug, Clone, Copy)]
enum Label {
    Plain,
    Optional,
    Repeated,
    Required,
}

#[derive(Debug, Clone)]
struct Field {
    label: Label,
    ty: FieldType,
}

#[derive(Debug, Clone)]
struct Rpc {
    request: usize,
    response: usize,
    client_streaming: bool,
    server_streaming: bool,
}

/// A generated single-file schema. Names come from positions, so they never collide.
#[derive(Debug, Clone)]
struct Schema {
    proto3: bool,
    messages: Vec<Vec<Field>>,
    /// Values per enum.
    enums: Vec<usize>,
    services: Vec<Vec<Rpc>>,
}

fn field_strategy() -> impl Strategy<Value = Field> {
    let label = prop_oneof![
        Just(Label::Plain),
        Just(Label::Optional),
        Just(Label::Repeated),
        Just(Label::Required),
    ];
    let ty = prop_oneof![
        4 => (0..SCALARS.len()).prop_map(FieldType::Scalar),
        1 => (0..8usize).prop_map(FieldType::Message),
        1 => (0..8usize).prop_map(FieldType::Enum),
        1 => (0..MAP_KEYS.len(), 0..SCALARS.len()).prop_map(|(k, v)| FieldType::Map(k, v)),
    ];
    (label, ty).prop_map(|(label, ty)| Field { label, ty })
}

fn rpc_strategy() -> impl Strategy<Value = Rpc> {
    (0..8usize, 0..8usize, any::<bool>(), any::<bool>()).prop_map(|(request, response, c, s)| Rpc {
        request,
        response,
        client_streaming: c,
        server_streaming: s,
    })
}

fn schema_strategy() -> impl Strategy<Value = Schema> {
    (
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(field_strategy(), 0..6), 1..5),
        prop::collection::vec(1..5usize, 0..3),
        prop::collection::vec(prop::collection::vec(rpc_strategy(), 0..3), 0..2),
    )
        .prop_map(|(proto3, messages, enums, services)| Schema {
            proto3,
            messages,
            enums,
            services,
        })
}

impl Schema {
    fn render(&self) -> String {
        let mut out = format!(
            "syntax = \"{}\";\npackage gen;\n",
            if self.proto3 { "proto3" } else { "proto2" }
        );
        for (i, fields) in self.messages.iter().enumerate() {
            out.push_str(&format!("message M{i} {{\n"));
            for (j, field) in fields.iter().enumerate() {
                out.push_str(&format!(
                    "  {} f{j} = {};\n",
                    self.render_type(field),
                    j + 1
                ));
            }
            out.push_str("}\n");
        }
        for (i, values) in self.enums.iter().enumerate() {
            out.push_str(&format!("enum E{i} {{\n"));
            for k in 0..*values {
                out.push_str(&format!("  E{i}_V{k} = {k};\n"));
            }
            out.push_str("}\n");
        }
        for (i, rpcs) in self.services.iter().enumerate() {
            out.push_str(&format!("service S{i} {{\n"));
            for (k, rpc) in rpcs.iter().enumerate() {
                let stream = |on: bool| if on { "stream " } else { "" };
                out.push_str(&format!(
                    "  rpc R{k}({}M{}) returns ({}M{});\n",
                    stream(rpc.client_streaming),
                    rpc.request % self.messages.len(),
                    stream(rpc.server_streaming),
                    rpc.response % self.messages.len()
                ));
            }
            out.push_str("}\n");
        }
        out
    }

    /// `label type`, with references folded onto existing types and labels fitted to the
    /// syntax and the type (maps take no label).
    fn render_type(&self, field: &Field) -> String {
        let ty = match &field.ty {
            FieldType::Scalar(s) => SCALARS[*s].to_owned(),
            FieldType::Message(m) => format!("M{}", m % self.messages.len()),
            FieldType::Enum(e) if !self.enums.is_empty() => format!("E{}", e % self.enums.len()),
            FieldType::Enum(_) => "int32".to_owned(),
            FieldType::Map(k, v) => return format!("map<{}, {}>", MAP_KEYS[*k], SCALARS[*v]),
        };
        let label = match (field.label, self.proto3) {
            (Label::Repeated, _) => "repeated ",
            (Label::Optional, _) | (Label::Plain, false) => "optional ",
            (Label::Required, false) => "required ",
            (Label::Plain | Label::Required, true) => "",
        };
        format!("{label}{ty}")
    }

    fn compile(&self) -> FileDescriptorSet {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("gen.proto"), self.render()).expect("the schema written");
        protox::Compiler::new([dir.path()])
            .expect("a compiler")
            .include_imports(true)
            .open_files(["gen.proto"])
            .unwrap_or_else(|e| panic!("generated schema compiles: {e}\n{}", self.render()))
            .file_descriptor_set()
    }
}

/// What a pure addition adds to a schema.
#[derive(Debug, Clone)]
struct Additions {
    fields: Vec<(usize, Field)>,
    messages: Vec<Vec<Field>>,
    enum_values: Vec<usize>,
    enums: Vec<usize>,
    rpcs: Vec<(usize, Rpc)>,
    services: Vec<Vec<Rpc>>,
}

fn additions_strategy() -> impl Strategy<Value = Additions> {
    // A new required field breaks by design (MESSAGE_SAME_REQUIRED_FIELDS).
    let optional_field = || {
        field_strategy().prop_map(|mut f| {
            if matches!(f.label, Label::Required) {
                f.label = Label::Optional;
            }
            f
        })
    };
    (
        prop::collection::vec((0..8usize, optional_field()), 0..4),
        prop::collection::vec(prop::collection::vec(optional_field(), 0..3), 0..2),
        prop::collection::vec(0..3usize, 0..3),
        prop::collection::vec(1..3usize, 0..2),
        prop::collection::vec((0..2usize, rpc_strategy()), 0..3),
        prop::collection::vec(prop::collection::vec(rpc_strategy(), 0..2), 0..2),
    )
        .prop_map(
            |(fields, messages, enum_values, enums, rpcs, services)| Additions {
                fields,
                messages,
                enum_values,
                enums,
                rpcs,
                services,
            },
        )
}

impl Schema {
    /// This schema with `more` appended: new fields take fresh numbers at the end of their
    /// message, new values fresh numbers at the end of their enum, and so on.
    fn extended(&self, more: &Additions) -> Schema {
        let mut next = self.clone();
        for (message, field) in &more.fields {
            let count = next.messages.len();
            next.messages[message % count].push(field.clone());
        }
        next.messages.extend(more.messages.iter().cloned());
        for e in &more.enum_values {
            if !next.enums.is_empty() {
                let count = next.enums.len();
                next.enums[e % count] += 1;
            }
        }
        next.enums.extend(more.enums.iter().copied());
        for (service, rpc) in &more.rpcs {
            if !next.services.is_empty() {
                let count = next.services.len();
                next.services[service % count].push(rpc.clone());
            }
        }
        next.services.extend(more.services.iter().cloned());
        next
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_schema_never_breaks_itself(schema in schema_strategy()) {
        let set = schema.compile();
        for category in Category::ALL {
            let report = check(&set, &set, category).expect("a valid schema");
            prop_assert!(report.violations.is_empty(), "{category}: {:?}", report.violations);
            prop_assert!(report.additions.is_empty());
        }
    }

    #[test]
    fn pure_additions_never_break(schema in schema_strategy(), more in additions_strategy()) {
        let extended = stable_extension(&schema, &schema.extended(&more));
        let (before, after) = (schema.compile(), extended.compile());
        for category in Category::ALL {
            let report = check(&before, &after, category).expect("valid schemas");
            prop_assert!(
                report.violations.is_empty(),
                "{category}: {:?}\n{}\n{}",
                report.violations,
                schema.render(),
                extended.render()
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(previous in prop::collection::vec(any::<u8>(), 0..256), current in prop::collection::vec(any::<u8>(), 0..256)) {
        for category in Category::ALL {
            let _ = check_encoded(&previous, &current, category);
        }
    }

    #[test]
    fn corrupted_schemas_never_panic(schema in schema_strategy(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let good = schema.compile().encode_to_vec();
        let mut bad = good.clone();
        for (at, byte) in flips {
            let i = at.index(bad.len());
            bad[i] = byte;
        }
        for category in Category::ALL {
            let _ = check_encoded(&good, &bad, category);
            let _ = check_encoded(&bad, &good, category);
        }
    }
}

/// `extended` with every reference of the original fields and RPCs pinned to what it meant in
/// `original` (references are taken modulo the number of types, which grows with additions).
fn stable_extension(original: &Schema, extended: &Schema) -> Schema {
    let pin = |ty: &FieldType| match ty {
        FieldType::Message(m) => FieldType::Message(m % original.messages.len()),
        FieldType::Enum(e) if !original.enums.is_empty() => {
            FieldType::Enum(e % original.enums.len())
        }
        // An enum reference rendered as int32 for lack of enums stays int32.
        FieldType::Enum(_) => FieldType::Scalar(0),
        other => other.clone(),
    };
    let mut out = extended.clone();
    for (i, fields) in original.messages.iter().enumerate() {
        for (j, field) in fields.iter().enumerate() {
            out.messages[i][j].ty = pin(&field.ty);
        }
    }
    for (i, rpcs) in original.services.iter().enumerate() {
        for (k, rpc) in rpcs.iter().enumerate() {
            out.services[i][k].request = rpc.request % original.messages.len();
            out.services[i][k].response = rpc.response % original.messages.len();
        }
    }
    out
}

#[test]
fn an_addition_is_reported_as_one() {
    let schema = Schema {
        proto3: true,
        messages: vec![vec![]],
        enums: vec![1],
        services: vec![],
    };
    let more = Additions {
        fields: vec![(
            0,
            Field {
                label: Label::Plain,
                ty: FieldType::Scalar(0),
            },
        )],
        messages: vec![],
        enum_values: vec![0],
        enums: vec![],
        rpcs: vec![],
        services: vec![vec![]],
    };
    let report = check(
        &schema.compile(),
        &schema.extended(&more).compile(),
        Category::Wire,
    )
    .expect("valid schemas");
    assert!(report.violations.is_empty());
    assert_eq!(report.additions, ["gen.E0.E0_V1", "gen.M0.f0", "gen.S0"]);
}
