//! The Flotilla rollout orchestrator as a library: `main.rs` only parses flags and calls
//! [`server::serve`], and tests start the same server in-process.
//!
//! - [`api`]: the flotilla.rollout.v1 service; commands are recorded on the rollout.
//! - [`preflight`]: the gates before start (lifecycle, compatibility, consumers).
//! - [`plan`]: strategies expanded into idempotent steps.
//! - [`supervisor`] and [`controller`]: who acts on which rollout (leases), and how.
//! - [`health`] and [`analysis`]: the gates while a rollout runs; [`prometheus`]: analysis
//!   figures read from a Prometheus server.
//! - [`platform`]: where versions run (the local-process driver).
//! - [`registry`]: versions, instances, consumers and route weights, from the registry.

pub mod alerts;
pub mod analysis;
pub mod api;
pub mod config;
pub mod context;
pub mod controller;
mod convert;
pub mod error;
pub mod explain;
pub mod health;
pub mod metrics;
pub mod plan;
pub mod platform;
pub mod preflight;
pub mod prometheus;
pub mod registry;
pub mod server;
mod stop;
pub mod supervisor;

pub use config::Config;
pub use server::{ServeError, open_store, serve};
