//! The Flotilla version registry as a library: `main.rs` only parses flags and calls
//! [`server::serve`], and tests start the same server in-process.

pub mod api;
pub mod config;
mod convert;
mod endpoint_stream;
pub mod error;
pub mod gate;
pub mod hub;
pub mod metrics;
pub mod server;
mod stop;
pub mod targets;

pub use config::Config;
pub use server::{ServeError, open_store, serve, serve_with_gate};
