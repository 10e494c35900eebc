//! The shared harness of the whole-system tests: start the suite's binaries as real processes on
//! ephemeral ports, find the real peers (grpcurl, PostgreSQL), and clean up even when a test fails.

pub mod peers;
pub mod postgres;
pub mod process;

pub use process::RegistryProcess;
