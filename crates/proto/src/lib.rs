//! Generated code for Flotilla's gRPC APIs, and their encoded descriptor sets.
//!
//! Each API module re-exports what tonic-prost-build generated from `proto/`; the
//! `*_DESCRIPTOR_SET` constants are FileDescriptorSets with source info (doc comments) and imports,
//! ready for tonic-reflection.

/// `flotilla.registry.v1`: the version registry.
pub mod registry {
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        tonic::include_proto!("flotilla.registry.v1");

        /// The registry API's FileDescriptorSet, with imports and source info.
        pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
            env!("OUT_DIR"),
            "/flotilla.registry.v1.descriptor.binpb"
        ));
    }
}

/// `flotilla.testing.v1`: an echo service for tests and benchmarks, not a product API.
pub mod testing {
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        tonic::include_proto!("flotilla.testing.v1");

        /// The echo API's FileDescriptorSet, with source info: what a caller of it was compiled
        /// against (its `Echo` rpc is marked NO_SIDE_EFFECTS).
        pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
            env!("OUT_DIR"),
            "/flotilla.testing.v1.descriptor.binpb"
        ));
    }
}

pub use prost_types;
