//! The server side of a Flotilla fleet: one builder every Flotilla-built service uses to publish
//! its version, serve its API with health and reflection, and keep its instance registered.
//!
//! ```no_run
//! # async fn run(routes: tonic::service::Routes, descriptor_set: &'static [u8]) -> Result<(), flotilla_server::ServerError> {
//! use flotilla_server::FleetServer;
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let builder = FleetServer::builder("http://127.0.0.1:50051", "greeter", "1.1.0".parse().unwrap())
//!     .descriptor_set(descriptor_set)
//!     .artifact("", vec!["demo-greeter".into()]);
//! let health = builder.health_handle(); // health.set_not_serving() takes the instance out
//! builder.serve(listener, routes, std::future::pending()).await
//! # }
//! ```
//!
//! What [`FleetServerBuilder::serve`] does, in order: reach the registry (retrying for up to
//! 10 s), create the service if it does not exist, publish the version (an identical republish
//! is fine; a refusal is an error naming why), serve the app's routes plus `grpc.health.v1` and
//! reflection (v1 and v1alpha), register the instance and renew its lease every ttl/3 with the
//! current health; on shutdown turn health NOT_SERVING, deregister, and drain.
//!
//! Every response carries [`VERSION_HEADER`], [`SCHEMA_HEADER`] and [`INSTANCE_HEADER`]. Health
//! is reported under `""`, each service's full name (`demo.greeter.v1.Greeter`) and
//! `<full name>@<version>` (`demo.greeter.v1.Greeter@1.1.0`).
//!
//! The server also answers `GET /metrics` on the same port, over HTTP/1.1: the app's calls
//! counted by code and timed, labelled with the version (`flotilla_telemetry::metrics`).

mod builder;
mod error;
mod health;
mod lease;
mod metadata;
mod registry;
mod serve;

pub use builder::{
    DEFAULT_LEASE_TTL, DEFAULT_REGISTRY_WAIT, DEFAULT_SHUTDOWN_GRACE, FleetServer,
    FleetServerBuilder, Ready,
};
pub use error::ServerError;
/// The stop signal every server of the suite obeys (from the server shell).
pub use flotilla_shell::shutdown_signal;
pub use health::HealthHandle;
pub use metadata::{INSTANCE_HEADER, SCHEMA_HEADER, VERSION_HEADER};
