//! What every gRPC server of the suite runs inside — the registry, the orchestrator and every
//! `FleetServer` — whatever its handlers do:
//!
//! - [`ServerShell`]: routes in, a served port out, with reflection, TCP_NODELAY, `/metrics`
//!   over HTTP/1.1, one stack of request layers and a grace period on shutdown;
//! - [`GuardLayer`]: a panic while a call is handled, or while its response streams, ends that
//!   call alone with INTERNAL (logged with the call's trace id), never with a reset stream, and
//!   every error reply leaves with metadata a client can read;
//! - [`status::bounded`]: the bound itself — a `grpc-message` of at most
//!   [`status::MAX_MESSAGE_BYTES`] and `grpc-status-details-bin` of at most
//!   [`status::MAX_DETAILS_BYTES`] before base64, so an error reply's metadata stays under the
//!   8 KiB a grpc-core client accepts whatever a caller sent.

mod guard;
mod serve;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;

pub use guard::{GuardBody, GuardLayer, GuardService};
pub use serve::{DEFAULT_GRACE, ResponseHeaders, ServerShell, ShellError, shutdown_signal};
