//! The `flotilla` command line. The binary only parses and dispatches; each command lives in its
//! own module, with the inputs it loads and the reports it prints in modules of their own.

pub mod cli;
pub mod compat;
pub mod health;
pub mod report;
pub mod rollout;
pub mod schema_input;

/// The exit status when an input cannot be used: a path that does not exist, .proto files that do
/// not compile, bytes that are not a descriptor set. clap uses the same status for usage errors,
/// and `flotilla rollout` for every error (an RPC refused, an orchestrator out of reach).
pub const EXIT_BAD_INPUT: u8 = 2;
