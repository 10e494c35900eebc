//! The shared harness of the whole-system tests: start the suite's binaries as real processes on
//! ephemeral ports, find the real peers (grpcurl, PostgreSQL), and clean up even when a test fails.

pub mod compose;
pub mod fleet;
pub mod otlp;
pub mod peers;
pub mod process;
pub mod rollout;
pub mod webhook;

/// PostgreSQL test databases, shared with the store's contract suite.
pub use flotilla_store::testing as postgres;

pub use process::SuiteProcess;
