//! Compiles every API under `proto/` with protox (no protoc needed) and writes one encoded
//! FileDescriptorSet per API, with source info, so reflection serves the doc comments.
//!
//! Flotilla's own APIs share `proto/` as their include root. The demo greeter keeps one snapshot
//! per release, each its own include root (`proto/demo/greeter/<release>/`) declaring the same
//! package; each is compiled into its own directory under `OUT_DIR`, since tonic-prost-build
//! names its output after the package and the snapshots would overwrite one another.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

use prost::Message;

/// Each API: its package and the files that make it up, relative to `proto/`.
const APIS: &[(&str, &[&str])] = &[
    (
        "flotilla.registry.v1",
        &["flotilla/registry/v1/registry.proto"],
    ),
    (
        "flotilla.rollout.v1",
        &["flotilla/rollout/v1/rollout.proto"],
    ),
    // For tests and benchmarks only: an echo service whose replies name the instance that
    // answered, with one idempotent and one non-idempotent rpc (the fleet client's tests).
    ("flotilla.testing.v1", &["flotilla/testing/v1/echo.proto"]),
    // The sample fleet's frontend (the greeter's releases are compiled below, one per snapshot).
    ("demo.frontend.v1", &["demo/frontend/v1/frontend.proto"]),
];

/// The demo greeter's releases, each a directory under `proto/demo/greeter/`.
const GREETER_RELEASES: &[&str] = &["1.0.0", "1.1.0", "2.0.0"];

/// The greeter's file inside each release directory.
const GREETER_FILE: &str = "demo/greeter/v1/greeter.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    for (package, files) in APIS {
        compile(&proto_root, files, &out_dir, package)?;
    }
    for release in GREETER_RELEASES {
        let include_root = proto_root.join("demo/greeter").join(release);
        let release_out = out_dir.join(format!("demo-greeter-{release}"));
        fs::create_dir_all(&release_out)?;
        compile(
            &include_root,
            &[GREETER_FILE],
            &release_out,
            "demo.greeter.v1",
        )?;
    }
    Ok(())
}

/// Compiles `files` under `include_root`, writing `<package>.descriptor.binpb` and the generated
/// code into `out`.
fn compile(
    include_root: &Path,
    files: &[&str],
    out: &Path,
    package: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let descriptor_set = protox::Compiler::new([include_root])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(files.iter().copied())?
        .file_descriptor_set();
    fs::write(
        out.join(format!("{package}.descriptor.binpb")),
        descriptor_set.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .out_dir(out)
        .compile_fds(descriptor_set)?;
    Ok(())
}
