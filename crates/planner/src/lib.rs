//! Release plans: how several services of a fleet reach their target versions together, in an
//! order that never leaves a live caller without a version it accepts.
//!
//! [`derive`] takes the fleet as it runs ([`Fleet`]: each service's live versions, every
//! version's requirements, where a caller schema would misread a provider) and the targets,
//! and returns a [`Plan`] — steps that add each target and retire each old version, in waves,
//! every dependency with the edge that caused it — or a [`Refusal`] naming what cannot be
//! satisfied (a cycle of constraints, a requirement nothing meets) with what would break it.
//! Every state the plan can pass through, steps of a wave in any order, is safe by
//! construction ([`derive`]'s module says why). Pure: no I/O, no clock.

mod derive;
mod fleet;
mod plan;

pub use derive::{Options, derive};
pub use fleet::{Fleet, Requirement, VersionId};
pub use plan::{Action, Beside, Constraint, Plan, Refusal, Step};

#[cfg(test)]
mod tests;
