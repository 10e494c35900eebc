//! The semver verdict: the smallest bump a diff allows, against the bump the publisher chose.
