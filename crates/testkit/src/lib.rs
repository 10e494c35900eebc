//! What the suite's tests share, whatever crate they are in.
//!
//! Many tests need a real peer: PostgreSQL, buf, grpcurl, Python's grpcio, a Docker engine.
//! `deploy/local/test.sh` installs every one, so under CI (`CI` set) a missing peer is a
//! failure — CI must never pass by skipping; run by hand without it, the test is skipped with
//! a line saying what to install. [`missing`] is that rule, in one place.

use std::path::PathBuf;

/// Whether the tests run under CI, where every peer must be present.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `what` a test needs is missing: panics under CI; otherwise says the test is skipped and how
/// to get it (`hint`), and returns, so the test can return too.
pub fn missing(what: &str, hint: &str) {
    if under_ci() {
        panic!("{what} is missing under CI ({hint}); deploy/local/test.sh installs it");
    }
    eprintln!("skipped: {what} is missing ({hint})");
}

/// `name` on PATH, or `None` after [`missing`] said so.
pub fn tool(name: &str, hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        missing(&format!("{name} (not on PATH)"), hint);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_on_path_is_found_and_one_that_is_not_is_missing() {
        assert!(tool("sh", "it is everywhere").is_some());
        if !under_ci() {
            assert!(tool("flotilla-no-such-tool", "none").is_none());
        }
    }

    #[test]
    fn under_ci_a_missing_peer_fails() {
        if under_ci() {
            let failed = std::panic::catch_unwind(|| missing("a peer", "install it"));
            assert!(failed.is_err());
        }
    }
}
