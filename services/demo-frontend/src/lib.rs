//! The sample fleet's frontend: a consumer whose published version requires greeter `^1.1` and
//! that calls greeter through the fleet client on each of its own requests, reporting which
//! greeter version answered.

mod app;
mod config;
mod frontend;

pub use app::{AppError, PROGRAM, SERVICE, run};
pub use config::Config;
pub use frontend::FrontendService;
