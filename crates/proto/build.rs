//! Compiles every API under `proto/flotilla` with protox (no protoc needed) and writes one encoded
//! FileDescriptorSet per API, with source info, so reflection serves the doc comments.

use std::{env, fs, path::PathBuf};

use prost::Message;

/// Each API: its package and the files that make it up, relative to `proto/`.
const APIS: &[(&str, &[&str])] = &[
    (
        "flotilla.registry.v1",
        &["flotilla/registry/v1/registry.proto"],
    ),
    // For tests and benchmarks only: an echo service whose replies name the instance that
    // answered, with one idempotent and one non-idempotent rpc (the fleet client's tests).
    ("flotilla.testing.v1", &["flotilla/testing/v1/echo.proto"]),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    for (package, files) in APIS {
        let descriptor_set = protox::Compiler::new([&proto_root])?
            .include_imports(true)
            .include_source_info(true)
            .open_files(files.iter().copied())?
            .file_descriptor_set();
        fs::write(
            out_dir.join(format!("{package}.descriptor.binpb")),
            descriptor_set.encode_to_vec(),
        )?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .compile_fds(descriptor_set)?;
    }
    Ok(())
}
