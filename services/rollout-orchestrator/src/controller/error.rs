//! Why a controller stopped, and why one tick could not do its work.

use flotilla_model::Halt;
use flotilla_store::StoreError;

use crate::{platform::PlatformError, registry::RegistryError};

/// Why a controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("lost the lease on service {0}")]
    LeaseLost(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why one tick could not do its work; the next tick tries again.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error("the platform: {0}")]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A part of the abort failed, as the halt it would have caused says.
    #[error("{}", .0.message)]
    Halted(Halt),
}

impl From<Halt> for TickError {
    fn from(halt: Halt) -> Self {
        Self::Halted(halt)
    }
}
