//! Choosing a version for a semver requirement.

use semver::{Version, VersionReq};

use crate::LifecycleState;

/// Why a version was not chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionReason {
    RequirementMismatch,
    Yanked,
    Retired,
    Superseded,
    SchemaIncompatible,
}

impl RejectionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequirementMismatch => "REQUIREMENT_MISMATCH",
            Self::Yanked => "YANKED",
            Self::Retired => "RETIRED",
            Self::Superseded => "SUPERSEDED",
            Self::SchemaIncompatible => "SCHEMA_INCOMPATIBLE",
        }
    }
}

/// A version passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub version: Version,
    pub reason: RejectionReason,
    pub detail: String,
}

/// The outcome of a resolution: the chosen version, if any, and every other version with its
/// reason, highest version first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub selected: Option<Version>,
    pub rejected: Vec<Rejection>,
}

/// Picks the highest version that satisfies `requirement` and is resolvable (RELEASED or
/// DEPRECATED). Pre-releases match only as the semver crate's rules allow (a requirement must
/// name a pre-release of the same major.minor.patch).
pub fn resolve<'a>(
    versions: impl IntoIterator<Item = (&'a Version, LifecycleState)>,
    requirement: &VersionReq,
) -> Resolution {
    resolve_for_caller(versions, requirement, |_| None)
}

/// [`resolve`], also passing over versions for which `incompatible` gives a reason (the caller's
/// schema cannot talk to theirs). It is asked only about versions that would otherwise qualify.
pub fn resolve_for_caller<'a>(
    versions: impl IntoIterator<Item = (&'a Version, LifecycleState)>,
    requirement: &VersionReq,
    mut incompatible: impl FnMut(&Version) -> Option<String>,
) -> Resolution {
    let mut versions: Vec<_> = versions.into_iter().collect();
    versions.sort_by(|a, b| b.0.cmp(a.0));
    let mut selected: Option<Version> = None;
    let mut rejected = Vec::new();
    for (version, state) in versions {
        let rejection = |reason, detail: String| Rejection {
            version: version.clone(),
            reason,
            detail,
        };
        if !requirement.matches(version) {
            rejected.push(rejection(
                RejectionReason::RequirementMismatch,
                format!("{version} does not satisfy {requirement}"),
            ));
        } else if state == LifecycleState::Yanked {
            rejected.push(rejection(
                RejectionReason::Yanked,
                format!("{version} is yanked"),
            ));
        } else if state == LifecycleState::Retired {
            rejected.push(rejection(
                RejectionReason::Retired,
                format!("{version} is retired"),
            ));
        } else if let Some(reason) = selected.is_none().then(|| incompatible(version)).flatten() {
            rejected.push(rejection(
                RejectionReason::SchemaIncompatible,
                format!("{version} cannot serve the caller's schema: {reason}"),
            ));
        } else if let Some(chosen) = &selected {
            rejected.push(rejection(
                RejectionReason::Superseded,
                format!("{version} is eligible, but {chosen} is higher"),
            ));
        } else {
            selected = Some(version.clone());
        }
    }
    Resolution { selected, rejected }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleState::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn run(versions: &[(Version, LifecycleState)], req: &str) -> Resolution {
        resolve(
            versions.iter().map(|(v, s)| (v, *s)),
            &VersionReq::parse(req).unwrap(),
        )
    }

    #[test]
    fn picks_the_highest_resolvable_match_and_explains_the_rest() {
        let versions = [
            (v("1.0.0"), Released),
            (v("1.2.0"), Yanked),
            (v("1.1.0"), Deprecated),
            (v("2.0.0"), Released),
            (v("1.0.5"), Retired),
        ];
        let r = run(&versions, "^1");
        assert_eq!(r.selected, Some(v("1.1.0")));
        let reasons: Vec<_> = r
            .rejected
            .iter()
            .map(|x| (x.version.to_string(), x.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("2.0.0".into(), RejectionReason::RequirementMismatch),
                ("1.2.0".into(), RejectionReason::Yanked),
                ("1.0.5".into(), RejectionReason::Retired),
                ("1.0.0".into(), RejectionReason::Superseded),
            ]
        );
    }

    #[test]
    fn nothing_eligible_selects_nothing_but_explains_everything() {
        let versions = [(v("1.0.0"), Yanked), (v("0.9.0"), Released)];
        let r = run(&versions, "^1");
        assert_eq!(r.selected, None);
        assert_eq!(r.rejected.len(), 2);
    }

    #[test]
    fn pre_releases_need_an_explicit_requirement() {
        let versions = [(v("2.0.0-rc.1"), Released), (v("1.4.0"), Released)];
        assert_eq!(run(&versions, "*").selected, Some(v("1.4.0")));
        assert_eq!(
            run(&versions, ">=2.0.0-rc.1").selected,
            Some(v("2.0.0-rc.1"))
        );
    }

    #[test]
    fn a_caller_schema_passes_over_versions_it_cannot_talk_to() {
        let versions = [
            (v("2.0.0"), Released),
            (v("1.1.0"), Released),
            (v("1.0.0"), Released),
        ];
        let mut asked = Vec::new();
        let r = resolve_for_caller(
            versions.iter().map(|(v, s)| (v, *s)),
            &VersionReq::STAR,
            |version| {
                asked.push(version.to_string());
                (version.major == 2).then(|| "HelloReply.message changed type".to_owned())
            },
        );
        assert_eq!(r.selected, Some(v("1.1.0")));
        assert_eq!(r.rejected[0].reason, RejectionReason::SchemaIncompatible);
        assert_eq!(
            asked,
            ["2.0.0", "1.1.0"],
            "versions below the chosen one are not checked"
        );
    }

    #[test]
    fn zero_major_versions_follow_caret_rules() {
        let versions = [(v("0.2.5"), Released), (v("0.3.0"), Released)];
        assert_eq!(run(&versions, "^0.2").selected, Some(v("0.2.5")));
    }
}
