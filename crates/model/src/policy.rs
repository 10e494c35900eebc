//! Compatibility policies: which earlier versions a new one is compared with, and by which rules.

/// Confluent Schema Registry's compatibility modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityMode {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// buf's breaking-change rule categories, strictest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RuleCategory {
    File,
    Package,
    #[default]
    WireJson,
    Wire,
}

/// A service's compatibility policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CompatibilityPolicy {
    pub mode: CompatibilityMode,
    pub category: RuleCategory,
}

impl CompatibilityMode {
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn from_str_trusted(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

impl RuleCategory {
    pub const ALL: [Self; 4] = [Self::File, Self::Package, Self::WireJson, Self::Wire];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "FILE",
            Self::Package => "PACKAGE",
            Self::WireJson => "WIRE_JSON",
            Self::Wire => "WIRE",
        }
    }

    pub fn from_str_trusted(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in CompatibilityMode::ALL {
            assert_eq!(CompatibilityMode::from_str_trusted(m.as_str()), Some(m));
        }
        for c in RuleCategory::ALL {
            assert_eq!(RuleCategory::from_str_trusted(c.as_str()), Some(c));
        }
    }

    #[test]
    fn the_default_is_backward_by_wire_json() {
        let p = CompatibilityPolicy::default();
        assert_eq!(
            (p.mode, p.category),
            (CompatibilityMode::Backward, RuleCategory::WireJson)
        );
    }
}
