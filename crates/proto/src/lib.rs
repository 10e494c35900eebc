//! Generated code for Flotilla's gRPC APIs and the demo fleet's, and their encoded descriptor
//! sets.
//!
//! Each API module re-exports what tonic-prost-build generated from `proto/`; the
//! `DESCRIPTOR_SET` constants are FileDescriptorSets with source info (doc comments) and imports,
//! ready for tonic-reflection and for publishing to the registry.

pub mod methods;

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

/// `flotilla.rollout.v1`: the rollout orchestrator.
pub mod rollout {
    pub mod v1 {
        #![allow(missing_docs, clippy::all, missing_debug_implementations)]
        tonic::include_proto!("flotilla.rollout.v1");

        /// The orchestrator API's FileDescriptorSet, with imports and source info.
        pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
            env!("OUT_DIR"),
            "/flotilla.rollout.v1.descriptor.binpb"
        ));
    }
}

/// The sample fleet's APIs.
pub mod demo {
    /// `demo.frontend.v1`: the sample fleet's consumer of the greeter.
    pub mod frontend {
        pub mod v1 {
            #![allow(missing_docs, clippy::all, missing_debug_implementations)]
            tonic::include_proto!("demo.frontend.v1");

            /// The frontend API's FileDescriptorSet, with source info.
            pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
                env!("OUT_DIR"),
                "/demo.frontend.v1.descriptor.binpb"
            ));
        }
    }

    /// `demo.greeter.v1`, one module per release snapshot under `proto/demo/greeter/<release>/`.
    /// All three declare the same package, so a process can link every release and serve the one
    /// it is told to.
    pub mod greeter {
        /// Release 1.0.0: `SayHello(name) -> message`.
        pub mod v1_0_0 {
            #![allow(missing_docs, clippy::all, missing_debug_implementations)]
            include!(concat!(
                env!("OUT_DIR"),
                "/demo-greeter-1.0.0/demo.greeter.v1.rs"
            ));

            /// Release 1.0.0's FileDescriptorSet, with source info.
            pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
                env!("OUT_DIR"),
                "/demo-greeter-1.0.0/demo.greeter.v1.descriptor.binpb"
            ));
        }

        /// Release 1.1.0: compatible additions to 1.0.0 (`locale`, `served_by`, `SayGoodbye`).
        pub mod v1_1_0 {
            #![allow(missing_docs, clippy::all, missing_debug_implementations)]
            include!(concat!(
                env!("OUT_DIR"),
                "/demo-greeter-1.1.0/demo.greeter.v1.rs"
            ));

            /// Release 1.1.0's FileDescriptorSet, with source info.
            pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
                env!("OUT_DIR"),
                "/demo-greeter-1.1.0/demo.greeter.v1.descriptor.binpb"
            ));
        }

        /// Release 2.0.0: breaks 1.x (`HelloReply.message` becomes a `Greeting` message).
        pub mod v2_0_0 {
            #![allow(missing_docs, clippy::all, missing_debug_implementations)]
            include!(concat!(
                env!("OUT_DIR"),
                "/demo-greeter-2.0.0/demo.greeter.v1.rs"
            ));

            /// Release 2.0.0's FileDescriptorSet, with source info.
            pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(
                env!("OUT_DIR"),
                "/demo-greeter-2.0.0/demo.greeter.v1.descriptor.binpb"
            ));
        }
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

/// The request and response headers of the fleet protocol, shared by every server and client.
pub mod headers {
    /// Response header: the version of the instance that answered, e.g. `1.1.0`.
    pub const VERSION_HEADER: &str = "x-flotilla-version";
    /// Response header: the lowercase hex SHA-256 fingerprint of that version's schema.
    pub const SCHEMA_HEADER: &str = "x-flotilla-schema";
    /// Response header: the registry instance id of the instance that answered.
    pub const INSTANCE_HEADER: &str = "x-flotilla-instance";
    /// Request header: who a mutation of the registry is recorded as done by in the audit log.
    pub const ACTOR_HEADER: &str = "x-flotilla-actor";
}

pub use prost_types;
