//! The Flotilla rollout orchestrator as a library: `main.rs` only parses flags and calls
//! [`server::serve`], and tests start the same server in-process.
//!
//! - [`server`]: assembles it all: store, registry client, platform, supervisor, webhooks, API.
//! - [`config`]: the flags, each with an environment fallback and a default ([`Config`]).
//! - [`context`]: what the API, the supervisor and every controller share.
//! - [`api`]: the flotilla.rollout.v1 service: requests decoded, the model's rules applied,
//!   replies encoded; commands are recorded on the rollout.
//! - [`launch`]: starting a rollout (and a rollback): the gates, the plan, the first record.
//! - [`error`]: every error the API returns, mapped to one gRPC code, with rich details.
//! - [`preflight`]: the gates before start (lifecycle, compatibility, consumers).
//! - [`plan`]: strategies expanded into idempotent steps.
//! - [`supervisor`]: runs a controller for each rollout whose service's lease it can take.
//! - [`controller`]: drives one rollout, step by step, level-triggered, while holding the lease.
//! - [`health`]: the health gate's eyes: one grpc.health.v1 Watch stream per instance.
//! - [`analysis`]: the analysis gate: both versions' calls compared every interval.
//! - [`prometheus`]: the analysis figures read from a Prometheus server by PromQL instead.
//! - [`platform`]: where versions run: local processes or Docker containers, and allow-lists.
//! - [`registry`]: what the orchestrator asks of the registry, as a trait in model types, and
//!   the gRPC client behind it.
//! - [`alerts`]: rollout events posted to webhooks: signed, in order, never in the rollout's way.
//! - [`explain`]: why a rollout is where it is, judged from the stored rollout.
//! - [`metrics`]: the orchestrator's own metrics, served at `/metrics` beside its call metrics.

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
pub mod launch;
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
