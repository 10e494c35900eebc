//! Validation of one side by prost-reflect, with the guards prost-reflect 0.16 needs: it does
//! not know editions, panics while reporting an unknown syntax, and recurses without end on a
//! cycle of public imports. Inputs it would choke on are refused here first.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;
use prost_types::FileDescriptorSet;

/// The descriptor pool of `set`, or why `set` is not a valid, self-contained schema.
pub(crate) fn validated_pool(set: &FileDescriptorSet) -> Result<DescriptorPool, String> {
    let copy = for_validation(set)?;
    refuse_import_cycles(&copy)?;
    build_pool(copy)
}

/// A copy of `set` that prost-reflect accepts: editions files, and files whose syntax is the
/// empty string (proto2 for protoc and buf), declared proto2. Any other unknown syntax is
/// refused here, because prost-reflect 0.16 panics while reporting one.
fn for_validation(set: &FileDescriptorSet) -> Result<FileDescriptorSet, String> {
    let mut copy = set.clone();
    for file in &mut copy.file {
        match file.syntax.as_deref() {
            None | Some("proto2" | "proto3") => {}
            Some("editions" | "") => file.syntax = Some("proto2".to_owned()),
            Some(other) => {
                return Err(format!("{:?} has an unknown syntax {other:?}", file.name()));
            }
        }
    }
    Ok(copy)
}

/// Refuses a set whose files import one another in a cycle (protoc refuses those too).
fn refuse_import_cycles(set: &FileDescriptorSet) -> Result<(), String> {
    let imports: HashMap<&str, Vec<&str>> = set
        .file
        .iter()
        .map(|f| (f.name(), f.dependency.iter().map(String::as_str).collect()))
        .collect();
    // Iterative depth-first search, so that a long import chain cannot overflow the stack.
    let mut done: HashMap<&str, bool> = HashMap::new(); // false: on the current path
    for start in imports.keys() {
        if done.contains_key(start) {
            continue;
        }
        let mut stack = vec![(*start, 0usize)];
        done.insert(start, false);
        while let Some((file, next)) = stack.pop() {
            let deps = imports.get(file).map(Vec::as_slice).unwrap_or_default();
            let Some(dep) = deps.get(next) else {
                done.insert(file, true);
                continue;
            };
            stack.push((file, next + 1));
            match done.get(dep) {
                Some(false) => {
                    return Err(format!("{file:?} imports {dep:?}, which imports it back"));
                }
                Some(true) => {}
                None => {
                    done.insert(dep, false);
                    stack.push((dep, 0));
                }
            }
        }
    }
    Ok(())
}

/// Builds the pool, turning a panic inside prost-reflect into an error: the engine promises
/// `Ok` or `Err` for any decoded input, whatever the library does with odd descriptors.
fn build_pool(set: FileDescriptorSet) -> Result<DescriptorPool, String> {
    let built = std::panic::catch_unwind(|| DescriptorPool::from_file_descriptor_set(set));
    match built {
        Ok(pool) => pool.map_err(|e| e.to_string()),
        Err(_) => Err("the descriptors could not be validated".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use prost_types::FileDescriptorProto;

    use super::*;

    fn file(name: &str, imports: &[&str], public: bool) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            dependency: imports.iter().map(|i| (*i).to_owned()).collect(),
            public_dependency: if public { vec![0] } else { vec![] },
            ..Default::default()
        }
    }

    #[test]
    fn a_cycle_of_public_imports_is_refused() {
        let set = FileDescriptorSet {
            file: vec![
                file("a.proto", &["b.proto"], true),
                file("b.proto", &["c.proto"], true),
                file("c.proto", &["a.proto"], true),
            ],
        };
        assert!(validated_pool(&set).is_err_and(|e| e.contains("imports it back")));
    }

    #[test]
    fn shared_imports_are_no_cycle() {
        let set = FileDescriptorSet {
            file: vec![
                file("c.proto", &[], false),
                file("b.proto", &["c.proto"], false),
                file("a.proto", &["b.proto", "c.proto"], false),
            ],
        };
        assert!(validated_pool(&set).is_ok());
    }

    #[test]
    fn unknown_syntaxes_are_refused_and_empty_is_proto2() {
        let with_syntax = |syntax: &str| FileDescriptorSet {
            file: vec![FileDescriptorProto {
                syntax: Some(syntax.into()),
                ..file("a.proto", &[], false)
            }],
        };
        assert!(validated_pool(&with_syntax("proto4")).is_err());
        assert!(validated_pool(&with_syntax("")).is_ok());
        assert!(validated_pool(&with_syntax("editions")).is_ok());
    }
}
