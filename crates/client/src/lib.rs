//! The fleet client: how a service calls another service run by Flotilla.
//!
//! A [`FleetChannel`] asks the version registry for the live instances of the versions the
//! caller accepts (a semver requirement), follows the endpoint sets the registry pushes as
//! instances come and go and routes change, and sends each call to an instance picked by the
//! route's traffic weights. Any tonic-generated client takes it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use flotilla_client::FleetClient;
//! use flotilla_proto::testing::v1::{EchoRequest, echo_client::EchoClient};
//!
//! let channel = FleetClient::builder("http://127.0.0.1:50051", "echo")
//!     .requirement("^1.1")?
//!     .caller_schema(flotilla_proto::testing::v1::DESCRIPTOR_SET)
//!     .connect()
//!     .await?;
//! let mut echo = EchoClient::new(channel.clone());
//! let reply = echo.echo(EchoRequest { message: "hi".into(), ..Default::default() }).await?;
//! println!("{:?}", flotilla_client::answered_by(&reply));
//! println!("{}", channel.snapshot());
//! # Ok(()) }
//! ```
//!
//! Instances that crash or report NOT_SERVING stop getting calls within moments: each is
//! watched with `grpc.health.v1.Health/Watch`, and a call that cannot reach one marks it
//! unhealthy at once. Idempotent calls (by the caller's schema, or named) that fail with
//! UNAVAILABLE or cannot reach their instance are retried on another one.

mod answered_by;
mod backoff;
mod body;
mod builder;
mod channel;
mod error;
mod fleet;
mod follow;
mod future;
mod health;
mod picker;
mod registry_channel;
mod snapshot;

pub use answered_by::{AnsweredBy, INSTANCE_HEADER, SCHEMA_HEADER, VERSION_HEADER, answered_by};
pub use builder::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES, FleetClient, FleetClientBuilder};
pub use channel::FleetChannel;
pub use error::{ClientError, with_causes};
pub use future::{BoxError, ResponseFuture};
pub use registry_channel::{RegistryChannel, RegistryUrlError};
pub use snapshot::{EndpointView, Snapshot};
