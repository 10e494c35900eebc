//! Confluent-style compatibility policies over a candidate and its earlier versions, with the
//! semver verdict that decides whether a publish is accepted.
//!
//! What the modes mean for a gRPC service:
//! - BACKWARD: the new server can serve clients built against the previous version (callers may
//!   upgrade after the server). The new schema is checked with the previous one as the baseline.
//! - FORWARD: clients built against the new version can call servers of the previous version
//!   (callers may upgrade first, e.g. during a rollout where old servers still take traffic).
//!   The previous schema is checked with the new one as the baseline, without buf's deletion
//!   rules: seen backwards, a deletion is an addition, and an old server skips fields it does
//!   not know. Type, name, cardinality and rpc changes count both ways.
//! - FULL: both, so servers and clients may upgrade in any order.
//! - *_TRANSITIVE: against every earlier version instead of the latest one.
//! - NONE: no check.
//!
//! A violation is tolerated only against an earlier version the candidate leaves by a major bump
//! (semver caret rules: `1.x → 2.0`, `0.2.x → 0.3.0`, `0.0.3 → 0.0.4`): that is what a major
//! version announces.

use std::fmt;

use ::semver::Version;
use prost_types::FileDescriptorSet;

use crate::{Category, CompatError, Report, semver::Bump};

/// Confluent Schema Registry's compatibility modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Mode {
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

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(text))
    }

    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// The directions this mode checks.
    pub fn directions(self) -> &'static [Direction] {
        match self {
            Self::None => &[],
            Self::Backward | Self::BackwardTransitive => &[Direction::Backward],
            Self::Forward | Self::ForwardTransitive => &[Direction::Forward],
            Self::Full | Self::FullTransitive => &[Direction::Backward, Direction::Forward],
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service's compatibility policy: a mode and the rule category that defines "breaking".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Policy {
    pub mode: Mode,
    pub category: Category,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mode: Mode::Backward,
            category: Category::WireJson,
        }
    }
}

/// Which schema is the baseline of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// The candidate checked against the earlier version: old clients, new server.
    Backward,
    /// The earlier version checked against the candidate: new clients, old server.
    Forward,
}

/// An earlier version to compare with.
#[derive(Debug, Clone, Copy)]
pub struct Earlier<'a> {
    pub version: &'a Version,
    pub schema: &'a FileDescriptorSet,
}

/// Which earlier versions a check compares with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    /// The mode decides: the latest earlier version, or all of them when transitive.
    Policy,
    /// Every earlier version.
    All,
    /// One version, whatever its place.
    Version(Version),
}

/// One comparison of the candidate with one earlier version in one direction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    pub against: Version,
    pub direction: Direction,
    pub report: Report,
    /// True when the candidate leaves `against` by a major bump, so violations are allowed.
    pub major_bump: bool,
}

/// The outcome of a policy check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evaluation {
    pub comparisons: Vec<Comparison>,
    /// The latest earlier version (the candidate's predecessor), if any.
    pub predecessor: Option<Version>,
    /// The smallest bump the changes since the predecessor allow.
    pub required: Bump,
    /// The bump the publisher chose, from the predecessor.
    pub chosen: Bump,
}

impl Evaluation {
    /// Whether the candidate may be published: no violation against a version it does not leave
    /// by a major bump.
    pub fn accepted(&self) -> bool {
        self.refusing().next().is_none()
    }

    /// The comparisons whose violations refuse the candidate.
    pub fn refusing(&self) -> impl Iterator<Item = &Comparison> {
        self.comparisons
            .iter()
            .filter(|c| !c.major_bump && !c.report.violations.is_empty())
    }

    /// One sentence for a person.
    pub fn summary(&self, candidate: &Version) -> String {
        let refusing: Vec<_> = self.refusing().collect();
        if refusing.is_empty() {
            return match &self.predecessor {
                None => format!("{candidate} is the first version: nothing to compare"),
                Some(p) if self.chosen < self.required => format!(
                    "{candidate} is compatible, but its changes since {p} call for a {} bump \
                     (chosen: {})",
                    self.required, self.chosen
                ),
                Some(p) => format!(
                    "{candidate} is compatible with {p} (bump: {}, required: {})",
                    self.chosen, self.required
                ),
            };
        }
        let violations: usize = refusing.iter().map(|c| c.report.violations.len()).sum();
        let against: Vec<String> = refusing
            .iter()
            .map(|c| format!("{} ({:?})", c.against, c.direction).to_lowercase())
            .collect();
        format!(
            "{candidate} has {violations} breaking change(s) against {}; a breaking change needs \
             a major version bump (chosen: {})",
            against.join(", "),
            self.chosen
        )
    }
}

/// The forward comparison: `earlier` checked with `candidate` as its baseline, keeping what breaks
/// an old server called by a new client. Additions are not reported: they are the backward
/// comparison's business.
fn forward(
    earlier: &FileDescriptorSet,
    candidate: &FileDescriptorSet,
    category: Category,
) -> Result<Report, CompatError> {
    let mut report = crate::check(candidate, earlier, category)?;
    report.violations.retain(|v| !is_deletion_rule(v.rule));
    report.additions.clear();
    Ok(report)
}

/// Whether a caller compiled against `caller` can call a server of `server` on the wire: buf's
/// WIRE rules from the caller's schema to the server's, without the deletion rules — a field or
/// rpc one side lacks is skipped or answered UNIMPLEMENTED, not misread — so what remains are the
/// changes that make bytes mean something else (types, cardinality, oneofs, rpc signatures).
pub fn caller_compatibility(
    caller: &FileDescriptorSet,
    server: &FileDescriptorSet,
) -> Result<Report, CompatError> {
    forward(server, caller, Category::Wire)
}

/// buf's rules about elements that disappear (`*_NO_DELETE*`).
fn is_deletion_rule(rule: &str) -> bool {
    rule.contains("_NO_DELETE")
}

/// Checks `candidate` at `version` against `earlier` versions under `policy`.
///
/// `earlier` should hold the versions that can still be running or called: the registry leaves
/// out yanked versions. Only versions below `version` are compared (except with
/// [`Against::Version`]), so a patch to an old line is not compared with a newer major.
pub fn evaluate(
    policy: Policy,
    against: &Against,
    version: &Version,
    candidate: &FileDescriptorSet,
    earlier: &[Earlier<'_>],
) -> Result<Evaluation, CompatError> {
    let mut below: Vec<&Earlier<'_>> = earlier.iter().filter(|e| e.version < version).collect();
    below.sort_by(|a, b| b.version.cmp(a.version));
    let predecessor = below.first().map(|e| e.version.clone());

    let compared: Vec<&Earlier<'_>> = match against {
        Against::Version(v) => earlier.iter().filter(|e| e.version == v).collect(),
        Against::All => below.clone(),
        Against::Policy if policy.mode.is_transitive() => below.clone(),
        Against::Policy => below.iter().take(1).copied().collect(),
    };

    let mut comparisons = Vec::new();
    for e in &compared {
        for &direction in policy.mode.directions() {
            let report = match direction {
                Direction::Backward => crate::check(e.schema, candidate, policy.category)?,
                Direction::Forward => forward(e.schema, candidate, policy.category)?,
            };
            comparisons.push(Comparison {
                against: e.version.clone(),
                direction,
                report,
                major_bump: Bump::between(e.version, version) == Bump::Major,
            });
        }
    }

    let (required, chosen) = match below.first() {
        None => (Bump::Patch, Bump::Major),
        Some(p) => {
            let from_predecessor = comparisons
                .iter()
                .find(|c| c.against == *p.version && c.direction == Direction::Backward);
            let report = match from_predecessor {
                Some(c) => c.report.clone(),
                None => crate::check(p.schema, candidate, policy.category)?,
            };
            (
                Bump::required_by(&report),
                Bump::between(p.version, version),
            )
        }
    };
    Ok(Evaluation {
        comparisons,
        predecessor,
        required,
        chosen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A greeter schema compiled from `.proto` text by protox.
    fn schema(body: &str) -> FileDescriptorSet {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("syntax = \"proto3\";\npackage demo;\n{body}");
        std::fs::write(dir.path().join("greeter.proto"), text).unwrap();
        protox::Compiler::new([dir.path()])
            .unwrap()
            .include_imports(true)
            .open_files(["greeter.proto"])
            .unwrap()
            .file_descriptor_set()
    }

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    const V1: &str = "message Hello { string name = 1; }";
    const V1_ADDITIVE: &str = "message Hello { string name = 1; string locale = 2; }";
    const V1_BREAKING: &str = "message Hello { int64 name = 1; }";

    fn run(
        mode: Mode,
        against: Against,
        version: &str,
        candidate: &str,
        earlier: &[(&str, &FileDescriptorSet)],
    ) -> Evaluation {
        let earlier_versions: Vec<(Version, &FileDescriptorSet)> =
            earlier.iter().map(|(ver, s)| (v(ver), *s)).collect();
        let earlier: Vec<Earlier<'_>> = earlier_versions
            .iter()
            .map(|(version, schema)| Earlier { version, schema })
            .collect();
        let policy = Policy {
            mode,
            category: Category::WireJson,
        };
        evaluate(policy, &against, &v(version), &schema(candidate), &earlier).unwrap()
    }

    #[test]
    fn additions_need_a_minor_bump_and_are_accepted() {
        let old = schema(V1);
        let e = run(
            Mode::Backward,
            Against::Policy,
            "1.1.0",
            V1_ADDITIVE,
            &[("1.0.0", &old)],
        );
        assert!(e.accepted());
        assert_eq!((e.required, e.chosen), (Bump::Minor, Bump::Minor));
        let patch = run(
            Mode::Backward,
            Against::Policy,
            "1.0.1",
            V1_ADDITIVE,
            &[("1.0.0", &old)],
        );
        assert!(
            patch.accepted(),
            "an under-bumped addition is reported, not refused"
        );
        assert!(patch.summary(&v("1.0.1")).contains("call for a MINOR bump"));
    }

    #[test]
    fn a_breaking_change_needs_a_major_bump() {
        let old = schema(V1);
        let minor = run(
            Mode::Backward,
            Against::Policy,
            "1.1.0",
            V1_BREAKING,
            &[("1.0.0", &old)],
        );
        assert!(!minor.accepted());
        assert_eq!(minor.required, Bump::Major);
        assert!(
            minor
                .summary(&v("1.1.0"))
                .contains("needs a major version bump")
        );
        let major = run(
            Mode::Backward,
            Against::Policy,
            "2.0.0",
            V1_BREAKING,
            &[("1.0.0", &old)],
        );
        assert!(major.accepted());
        assert_eq!(major.comparisons.len(), 1);
        assert!(
            !major.comparisons[0].report.violations.is_empty(),
            "still reported"
        );
        let zero = run(
            Mode::Backward,
            Against::Policy,
            "0.3.0",
            V1_BREAKING,
            &[("0.2.9", &old)],
        );
        assert!(
            zero.accepted(),
            "0.2 -> 0.3 is a major bump under caret rules"
        );
    }

    #[test]
    fn forward_checks_the_other_way_round() {
        // Deleting a field breaks old clients of a new server only as a reserved-less deletion;
        // adding a field is invisible backward but, forward, the old server lacks it.
        let old = schema(V1_ADDITIVE);
        let new = V1;
        let backward = run(
            Mode::Backward,
            Against::Policy,
            "1.1.0",
            new,
            &[("1.0.0", &old)],
        );
        let forward = run(
            Mode::Forward,
            Against::Policy,
            "1.1.0",
            new,
            &[("1.0.0", &old)],
        );
        assert!(!backward.accepted(), "a deleted field breaks backward");
        assert!(
            forward.accepted(),
            "the old schema against the new one only adds"
        );
        let full = run(
            Mode::Full,
            Against::Policy,
            "1.1.0",
            new,
            &[("1.0.0", &old)],
        );
        assert_eq!(full.comparisons.len(), 2);
        assert!(!full.accepted());

        // Additions are safe for an old server: it skips fields it does not know.
        let v1 = schema(V1);
        let added = run(
            Mode::Forward,
            Against::Policy,
            "1.1.0",
            V1_ADDITIVE,
            &[("1.0.0", &v1)],
        );
        assert!(added.accepted(), "{:?}", added.comparisons);
        // A type change breaks both ways.
        let retyped = run(
            Mode::Forward,
            Against::Policy,
            "1.1.0",
            V1_BREAKING,
            &[("1.0.0", &v1)],
        );
        assert!(!retyped.accepted());
    }

    #[test]
    fn transitive_modes_compare_with_every_earlier_version() {
        let v0 = schema("message Hello { string name = 1; string gone = 2; }");
        let v1 = schema(V1);
        let earlier = [("1.0.0", &v0), ("1.1.0", &v1)];
        let latest = run(
            Mode::Backward,
            Against::Policy,
            "1.2.0",
            V1_ADDITIVE,
            &earlier,
        );
        assert_eq!(latest.comparisons.len(), 1);
        assert!(latest.accepted());
        let transitive = run(
            Mode::BackwardTransitive,
            Against::Policy,
            "1.2.0",
            V1_ADDITIVE,
            &earlier,
        );
        assert_eq!(transitive.comparisons.len(), 2);
        assert!(
            !transitive.accepted(),
            "1.2.0 reuses number 2 with another name than 1.0.0 had"
        );
        let one = run(
            Mode::Backward,
            Against::Version(v("1.0.0")),
            "1.2.0",
            V1_ADDITIVE,
            &earlier,
        );
        assert_eq!(one.comparisons[0].against, v("1.0.0"));
    }

    #[test]
    fn none_checks_nothing_and_newer_lines_are_not_compared() {
        let old = schema(V1);
        let none = run(
            Mode::None,
            Against::Policy,
            "1.1.0",
            V1_BREAKING,
            &[("1.0.0", &old)],
        );
        assert!(none.accepted());
        assert!(none.comparisons.is_empty());
        let newer = schema(V1_BREAKING);
        let patch_on_old_line = run(
            Mode::Backward,
            Against::Policy,
            "1.0.1",
            V1,
            &[("1.0.0", &old), ("2.0.0", &newer)],
        );
        assert_eq!(patch_on_old_line.predecessor, Some(v("1.0.0")));
        assert!(patch_on_old_line.accepted());
    }

    #[test]
    fn callers_are_compatible_unless_the_bytes_change_meaning() {
        let caller = schema(V1_ADDITIVE);
        assert!(
            caller_compatibility(&caller, &schema(V1))
                .unwrap()
                .violations
                .is_empty()
        );
        assert!(
            caller_compatibility(&schema(V1), &caller)
                .unwrap()
                .violations
                .is_empty()
        );
        let retyped = caller_compatibility(&caller, &schema(V1_BREAKING)).unwrap();
        assert!(
            !retyped.violations.is_empty(),
            "string -> int64 changes the bytes' meaning"
        );
    }

    #[test]
    fn modes_round_trip_through_their_names() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("full_transitive"), Some(Mode::FullTransitive));
        assert_eq!(Mode::parse("sideways"), None);
    }
}
