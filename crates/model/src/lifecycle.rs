//! The lifecycle of a published version.

use std::fmt;

/// Where a version is in its life. RELEASED -> DEPRECATED -> RETIRED, or YANKED from any state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LifecycleState {
    Released,
    Deprecated,
    Retired,
    Yanked,
}

/// A lifecycle move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} version cannot become {to}{hint}")]
pub struct IllegalTransition {
    pub from: LifecycleState,
    pub to: LifecycleState,
    hint: &'static str,
}

impl LifecycleState {
    /// Whether Resolve may choose a version in this state.
    pub fn is_resolvable(self) -> bool {
        matches!(self, Self::Released | Self::Deprecated)
    }

    /// Checks a move to `to`. `Ok(false)` means the version is already there: a no-op, so that a
    /// retried request succeeds.
    pub fn check_transition(self, to: LifecycleState) -> Result<bool, IllegalTransition> {
        use LifecycleState::*;
        let illegal = |hint| {
            Err(IllegalTransition {
                from: self,
                to,
                hint,
            })
        };
        match (self, to) {
            (from, to) if from == to => Ok(false),
            (_, Yanked) => Ok(true),
            (Released, Deprecated) | (Deprecated, Retired) => Ok(true),
            (Released, Retired) => illegal(" (deprecate it first)"),
            (Yanked, _) => illegal(" (yanking is final)"),
            (_, Released) => illegal(" (a version is released only by publishing it)"),
            _ => illegal(""),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Released => "RELEASED",
            Self::Deprecated => "DEPRECATED",
            Self::Retired => "RETIRED",
            Self::Yanked => "YANKED",
        }
    }

    pub fn from_str_trusted(text: &str) -> Option<Self> {
        [
            Self::Released,
            Self::Deprecated,
            Self::Retired,
            Self::Yanked,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleState::{self, *};

    const ALL: [LifecycleState; 4] = [Released, Deprecated, Retired, Yanked];

    #[test]
    fn the_state_machine_allows_exactly_its_edges() {
        let allowed = [
            (Released, Deprecated),
            (Deprecated, Retired),
            (Released, Yanked),
            (Deprecated, Yanked),
            (Retired, Yanked),
        ];
        for from in ALL {
            for to in ALL {
                let result = from.check_transition(to);
                if from == to {
                    assert_eq!(result, Ok(false), "{from} -> {to}");
                } else if allowed.contains(&(from, to)) {
                    assert_eq!(result, Ok(true), "{from} -> {to}");
                } else {
                    assert!(result.is_err(), "{from} -> {to}");
                }
            }
        }
    }

    #[test]
    fn only_released_and_deprecated_resolve() {
        let resolvable: Vec<_> = ALL.into_iter().filter(|s| s.is_resolvable()).collect();
        assert_eq!(resolvable, [Released, Deprecated]);
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in ALL {
            assert_eq!(LifecycleState::from_str_trusted(s.as_str()), Some(s));
        }
    }
}
