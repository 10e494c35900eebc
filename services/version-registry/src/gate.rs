//! The publish gate the registry runs inside every publish transaction.

use flotilla_model::{NewVersion, Service, VersionRecord};
use flotilla_store::{GateRejection, PublishGate};

/// Accepts every version. This is the seam the compatibility checker (buf's breaking rules under
/// the service's policy, and the semver verdict) plugs into; until then the registry enforces
/// immutability, references and lifecycle, but not schema compatibility.
#[derive(Debug, Default)]
pub struct AcceptAll;

impl PublishGate for AcceptAll {
    fn check(&self, _: &Service, _: &[VersionRecord], _: &NewVersion) -> Result<(), GateRejection> {
        Ok(())
    }
}
