//! What the operator allows the platforms to run. A publisher decides a version's artifact, and
//! a publisher is not the orchestrator host's administrator: without these lists, an artifact
//! whose command is `/bin/sh -c '…'` would run anything on the orchestrator's machine. So the
//! local platform runs only programs the operator named (`--allow-program`, a file or a
//! directory of them), and the Docker platform only images matching a pattern the operator
//! named (`--allow-image`). Nothing is allowed by default.

use std::path::{Path, PathBuf};

/// Programs the local platform may run: files, or every file under a directory, compared by
/// their canonical paths, so neither `..` nor a symbolic link leads out of what was allowed.
#[derive(Debug, Clone, Default)]
pub struct ProgramAllowList {
    /// Canonical paths, each with whether it is a directory.
    entries: Vec<(PathBuf, bool)>,
}

/// An `--allow-program` entry that names nothing.
#[derive(Debug, thiserror::Error)]
#[error("--allow-program {}: {source}", path.display())]
pub struct AllowListError {
    path: PathBuf,
    source: std::io::Error,
}

impl ProgramAllowList {
    /// The list of `paths`, each a program or a directory that must exist now.
    pub fn new(paths: &[PathBuf]) -> Result<Self, AllowListError> {
        let entries = paths
            .iter()
            .map(|path| {
                let error = |source| AllowListError {
                    path: path.clone(),
                    source,
                };
                let canonical = path.canonicalize().map_err(error)?;
                let is_dir = canonical.is_dir();
                Ok((canonical, is_dir))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The canonical path of `program` (a path to an existing file) if it is allowed.
    pub fn permits(&self, program: &Path) -> Option<PathBuf> {
        let canonical = program.canonicalize().ok()?;
        if !canonical.is_file() {
            return None;
        }
        self.entries
            .iter()
            .any(|(entry, is_dir)| match is_dir {
                true => canonical.starts_with(entry),
                false => canonical == *entry,
            })
            .then_some(canonical)
    }
}

/// Images the Docker platform may run: patterns in which `*` stands for any run of characters
/// (`flotilla/*`, `registry.example.com/team/*:*`); any other character stands for itself.
#[derive(Debug, Clone, Default)]
pub struct ImageAllowList {
    patterns: Vec<String>,
}

impl ImageAllowList {
    pub fn new(patterns: &[String]) -> Self {
        Self {
            patterns: patterns
                .iter()
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn permits(&self, image: &str) -> bool {
        self.patterns.iter().any(|p| glob_matches(p, image))
    }
}

/// Whether `text` matches `pattern`, `*` matching any run of characters (greedy with
/// backtracking to the last star, linear in practice).
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_allowed_by_its_file_or_its_directory_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let greeter = bin.join("demo-greeter");
        let other = dir.path().join("other");
        std::fs::write(&greeter, "").unwrap();
        std::fs::write(&other, "").unwrap();

        let by_dir = ProgramAllowList::new(std::slice::from_ref(&bin)).unwrap();
        assert!(by_dir.permits(&greeter).is_some());
        assert!(by_dir.permits(&other).is_none());
        // `..` out of the directory is seen through.
        assert!(by_dir.permits(&bin.join("../other")).is_none());
        // So is a symbolic link inside it that leads out.
        std::os::unix::fs::symlink(&other, bin.join("escape")).unwrap();
        assert!(by_dir.permits(&bin.join("escape")).is_none());
        // A directory is not a program.
        assert!(by_dir.permits(&bin).is_none());

        let by_file = ProgramAllowList::new(std::slice::from_ref(&greeter)).unwrap();
        assert!(by_file.permits(&greeter).is_some());
        assert!(by_file.permits(&other).is_none());

        assert!(ProgramAllowList::default().permits(&greeter).is_none());
        assert!(ProgramAllowList::new(&[dir.path().join("missing")]).is_err());
    }

    #[test]
    fn images_match_their_patterns() {
        let list = ImageAllowList::new(&[
            "flotilla/*".into(),
            "registry.example.com/team/app:1.*".into(),
        ]);
        assert!(list.permits("flotilla/demo-greeter:1.1.0"));
        assert!(list.permits("registry.example.com/team/app:1.2"));
        assert!(!list.permits("registry.example.com/team/app:2.0"));
        assert!(!list.permits("busybox:latest"));
        assert!(!list.permits("evil/flotilla/x"));
        assert!(!ImageAllowList::default().permits("flotilla/x"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXbYbZc"));
        assert!(!glob_matches("a*b", "aXbY"));
    }
}
