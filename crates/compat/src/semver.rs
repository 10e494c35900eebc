//! The semver verdict: the smallest bump a diff allows, against the bump the publisher chose.
//!
//! Bumps follow the semver crate's caret rules, as Cargo applies them: for `1.y.z` a major change
//! breaks; for `0.y.z` (y ≥ 1) a change of `y` breaks and a change of `z` may add; for `0.0.z`
//! every change breaks.

use std::fmt;

use ::semver::Version;

use crate::Report;

/// How far a version moves from another, in semver's terms of compatibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Bump {
    /// Nothing visible may change.
    Patch,
    /// Additions only.
    Minor,
    /// Anything may change: callers of the old version may break.
    Major,
}

impl Bump {
    /// The bump from `from` to `to` (`to` being later).
    pub fn between(from: &Version, to: &Version) -> Self {
        match (from.major, to.major) {
            (a, b) if a != b => Self::Major,
            (0, 0) if from.minor != to.minor || from.minor == 0 && from.patch != to.patch => {
                Self::Major
            }
            (0, 0) if from.patch != to.patch => Self::Minor,
            _ if from.minor != to.minor => Self::Minor,
            _ => Self::Patch,
        }
    }

    /// The smallest bump a comparison allows: any violation needs a major bump, any addition a
    /// minor one.
    pub fn required_by(report: &Report) -> Self {
        if !report.violations.is_empty() {
            Self::Major
        } else if !report.additions.is_empty() {
            Self::Minor
        } else {
            Self::Patch
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patch => "PATCH",
            Self::Minor => "MINOR",
            Self::Major => "MAJOR",
        }
    }
}

impl fmt::Display for Bump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bump(from: &str, to: &str) -> Bump {
        Bump::between(&Version::parse(from).unwrap(), &Version::parse(to).unwrap())
    }

    #[test]
    fn stable_versions_bump_by_their_first_changed_part() {
        assert_eq!(bump("1.4.2", "2.0.0"), Bump::Major);
        assert_eq!(bump("1.4.2", "1.5.0"), Bump::Minor);
        assert_eq!(bump("1.4.2", "1.4.3"), Bump::Patch);
        assert_eq!(bump("1.4.2", "1.4.2+build.5"), Bump::Patch);
        assert_eq!(bump("1.4.2", "1.5.0-rc.1"), Bump::Minor);
    }

    #[test]
    fn zero_versions_follow_caret_rules() {
        assert_eq!(bump("0.2.3", "0.3.0"), Bump::Major, "^0.2 excludes 0.3");
        assert_eq!(bump("0.2.3", "0.2.4"), Bump::Minor, "^0.2.3 includes 0.2.4");
        assert_eq!(bump("0.0.3", "0.0.4"), Bump::Major, "^0.0.3 is exact");
        assert_eq!(bump("0.9.0", "1.0.0"), Bump::Major);
    }

    #[test]
    fn the_required_bump_follows_the_report() {
        let mut report = Report::default();
        assert_eq!(Bump::required_by(&report), Bump::Patch);
        report.additions.push("demo.Hello.extra".into());
        assert_eq!(Bump::required_by(&report), Bump::Minor);
        report.violations.push(crate::Violation {
            rule: "FIELD_NO_DELETE",
            categories: &[crate::Category::Wire],
            location: crate::Location {
                file: "a.proto".into(),
                element: "demo.Hello".into(),
                number: Some(1),
            },
            message: "deleted".into(),
        });
        assert_eq!(Bump::required_by(&report), Bump::Major);
    }
}
