//! Compiling what protoc compiles: two fields whose default JSON names collide (`ownerId` and
//! `owner_id`) are allowed in proto2, but prost-reflect, which protox links with, refuses them
//! everywhere. (Editions allow them under `features.json_format = LEGACY_BEST_EFFORT`, but
//! protox 0.10 does not parse editions files at all.) [`TolerantResolver`] gives such fields a stand-in JSON name before
//! protox links a file, and [`restore`] puts protoc's names back in the compiled set. Where
//! JSON names must be unique, it refuses a collision itself, naming both fields and the name
//! (prost-reflect's own message prints the name empty).

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use flotilla_compat::{default_json_name, default_json_name_collisions};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

/// A field given a stand-in: its file, the path of message indexes to it, its index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StandIn {
    file: String,
    messages: Vec<usize>,
    field: usize,
}

/// The stand-ins a resolver gave, for [`restore`].
#[derive(Debug, Clone, Default)]
pub(super) struct StandIns(Arc<Mutex<Vec<StandIn>>>);

/// protox's resolver for one include directory (and the well-known types), with the stand-ins
/// described above.
pub(super) struct TolerantResolver {
    inner: ChainFileResolver,
    stand_ins: StandIns,
}

impl fmt::Debug for TolerantResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TolerantResolver").finish_non_exhaustive()
    }
}

impl TolerantResolver {
    pub(super) fn new(dir: &Path) -> Self {
        let mut inner = ChainFileResolver::new();
        inner.add(IncludeFileResolver::new(dir.to_owned()));
        inner.add(GoogleFileResolver::new());
        Self {
            inner,
            stand_ins: StandIns::default(),
        }
    }

    pub(super) fn stand_ins(&self) -> StandIns {
        self.stand_ins.clone()
    }
}

impl FileResolver for TolerantResolver {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.inner.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let file = self.inner.open_file(name)?;
        let mut proto = file.file_descriptor_proto().clone();
        let lenient = matches!(proto.syntax(), "" | "proto2");
        let mut given = Vec::new();
        for (index, message) in proto.message_type.iter().enumerate() {
            let mut path = vec![index];
            visit(message, &mut path, lenient, &mut given).map_err(|refusal| {
                refusal.into_error(name, file.path(), &proto_locations(&file))
            })?;
        }
        if given.is_empty() {
            return Ok(file);
        }
        let mut stand_ins = self.stand_ins.0.lock().expect("not poisoned");
        stand_ins.extend(given.into_iter().map(|(messages, field)| StandIn {
            file: name.to_owned(),
            messages,
            field,
        }));
        // Without its source, protox reports later errors in this file without a line; only files
        // that need a stand-in pay that.
        for stand_in in stand_ins.iter().filter(|s| s.file == name) {
            if let Some(field) = field_mut(&mut proto, stand_in) {
                field.json_name = Some(format!("\u{0}{}", stand_in.field));
            }
        }
        Ok(File::from_file_descriptor_proto(proto))
    }
}

/// A collision where JSON names must be unique.
struct Refusal {
    message: String,
    first: String,
    second: String,
    json: String,
    path: Vec<i32>,
}

impl Refusal {
    fn into_error(
        self,
        name: &str,
        path: Option<&Path>,
        locations: &[prost_types::source_code_info::Location],
    ) -> protox::Error {
        let shown = path.map_or_else(|| PathBuf::from(name), Path::to_owned);
        let at = locations
            .iter()
            .find(|l| l.path == self.path)
            .and_then(|l| Some((l.span.first()? + 1, l.span.get(1)? + 1)))
            .map_or(String::new(), |(line, column)| format!(":{line}:{column}"));
        protox::Error::new(format!(
            "{}{at}: fields {:?} and {:?} of {} have the same JSON name '{}'; JSON names must \
             be unique in proto3 (give one a json_name option of its own)",
            shown.display(),
            self.first,
            self.second,
            self.message,
            self.json
        ))
    }
}

fn proto_locations(file: &File) -> Vec<prost_types::source_code_info::Location> {
    file.file_descriptor_proto()
        .source_code_info
        .as_ref()
        .map(|info| info.location.clone())
        .unwrap_or_default()
}

/// Records the collisions of `message` and its nested messages that may get a stand-in, or
/// refuses the first one that may not.
fn visit(
    message: &DescriptorProto,
    path: &mut Vec<usize>,
    lenient: bool,
    given: &mut Vec<(Vec<usize>, usize)>,
) -> Result<(), Refusal> {
    for index in default_json_name_collisions(message) {
        if !lenient {
            let second = &message.field[index];
            let json = default_json_name(second.name());
            let first = message
                .field
                .iter()
                .find(|f| {
                    f.json_name
                        .clone()
                        .unwrap_or_else(|| default_json_name(f.name()))
                        == json
                })
                .map_or("", |f| f.name());
            return Err(Refusal {
                message: message.name().to_owned(),
                first: first.to_owned(),
                second: second.name().to_owned(),
                json,
                path: source_path(path, index),
            });
        }
        given.push((path.clone(), index));
    }
    for (index, nested) in message.nested_type.iter().enumerate() {
        path.push(index);
        visit(nested, path, lenient, given)?;
        path.pop();
    }
    Ok(())
}

/// The source-info path of a field: `4, m` then `3, n` per nesting level, then `2, field`.
fn source_path(messages: &[usize], field: usize) -> Vec<i32> {
    let mut path = Vec::new();
    for (depth, index) in messages.iter().enumerate() {
        path.push(if depth == 0 { 4 } else { 3 });
        path.push(*index as i32);
    }
    path.extend([2, field as i32]);
    path
}

fn field_mut<'a>(
    file: &'a mut FileDescriptorProto,
    stand_in: &StandIn,
) -> Option<&'a mut prost_types::FieldDescriptorProto> {
    let (first, rest) = stand_in.messages.split_first()?;
    let mut message = file.message_type.get_mut(*first)?;
    for index in rest {
        message = message.nested_type.get_mut(*index)?;
    }
    message.field.get_mut(stand_in.field)
}

/// Gives every field that got a stand-in protoc's JSON name back.
pub(super) fn restore(set: &mut FileDescriptorSet, stand_ins: &StandIns) {
    let stand_ins = stand_ins.0.lock().expect("not poisoned");
    for stand_in in stand_ins.iter() {
        let Some(file) = set.file.iter_mut().find(|f| f.name() == stand_in.file) else {
            continue;
        };
        if let Some(field) = field_mut(file, stand_in) {
            field.json_name = Some(default_json_name(field.name()));
        }
    }
}
