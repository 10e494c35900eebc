//! The sample fleet's greeter as a library: `main.rs` only parses flags, sets up logging and
//! calls [`run`].
//!
//! One binary serves any release of `demo.greeter.v1` (`--release 1.0.0|1.1.0|2.0.0`), publishes
//! it through FleetServer under the release's version or `--version`, and has fault knobs
//! (`--error-ratio`, `--latency-ms`, `--unhealthy-after`, `--crash-after`) for testing
//! rollouts against a misbehaving version.

pub mod app;
pub mod config;
pub mod faults;
pub mod greeter;

pub use app::{AppError, run};
pub use config::{Config, Release};
