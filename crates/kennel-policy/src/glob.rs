//! Wildcards in a repository's hidden paths (`.env*`, `*.pem`, `config/*.key`), expanded
//! against the workspace once, at start.
//!
//! A hidden pattern must hide every match, or kennel must refuse to start (issue 17, item
//! 9): the sandbox writes the workspace, so an earlier session may have left a deep tree,
//! a folder named like a skipped one, or enough names to exhaust a budget, with the user's
//! `.env` moved inside. The walk therefore skips nothing: every folder at every depth,
//! `.git`, `target` and `node_modules` included, never through symlinks. What bounds it is
//! a budget of [`MAX_ENTRIES`] entries and [`MAX_MATCHES`] matches (each match becomes a
//! mount over it); past either, or at a folder that cannot be listed but can be entered,
//! expansion fails and kennel refuses to start, saying why.
//!
//! A pattern without `/` matches a name at any depth; one with `/` is anchored at the
//! workspace root, one component per level. Files created after the start are not hidden.
//! Workspaces without wildcard patterns pay nothing; one walk serves every pattern.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Entries (files, folders, links) the walk looks at before it gives up. About 0.1 s on a
/// warm cache at the limit; a workspace bigger than that is mostly build output, which the
/// user can remove or anchor the pattern away from.
pub const MAX_ENTRIES: usize = 200_000;
/// Matches of one pattern: each is a mount (and a Landlock-free hole) in the sandbox.
pub const MAX_MATCHES: usize = 1_000;

/// Why a pattern could not be expanded completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// The workspace holds more than [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// The pattern matches more than [`MAX_MATCHES`] paths.
    TooManyMatches(usize),
    /// A folder the user can enter (so the sandbox can reach what it holds by name) could
    /// not be listed: the folder and the system's reason.
    Unlistable(PathBuf, String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::TooManyEntries => write!(
                f,
                "the workspace holds more than {MAX_ENTRIES} files and folders, and kennel \
                 must look at every one to hide every match; name the files without \
                 wildcards (`.env`, `config/.env.local`), anchor the pattern to a folder \
                 (`config/*.env`), or remove what the workspace does not need (build output)"
            ),
            ExpandError::TooManyMatches(n) => write!(
                f,
                "it matches {n} paths, more than the {MAX_MATCHES} kennel hides one by \
                 one; hide their folder instead, or make the pattern narrower"
            ),
            ExpandError::Unlistable(dir, why) => write!(
                f,
                "cannot list {} ({why}) to look for matches, though what it holds can be \
                 opened by name; make it readable (`chmod u+r`) or remove it",
                dir.display()
            ),
        }
    }
}

pub fn has_wildcard(pattern: &Path) -> bool {
    pattern.to_string_lossy().contains(['*', '?'])
}

/// Every entry of a workspace (but the root), listed once and shared by the patterns that
/// match names at any depth.
#[derive(Debug)]
pub struct Listing {
    entries: Option<Result<Vec<PathBuf>, ExpandError>>,
    /// [`MAX_ENTRIES`] but in tests.
    budget: usize,
    /// The user the sandbox runs as: a folder of theirs that cannot be listed is never
    /// skipped (they can `chmod` it back inside). None: no folder is skipped.
    user: Option<u32>,
}

impl Default for Listing {
    fn default() -> Self {
        Listing {
            entries: None,
            budget: MAX_ENTRIES,
            user: None,
        }
    }
}

impl Listing {
    /// For a sandbox that runs as `uid`.
    pub fn for_user(uid: u32) -> Listing {
        Listing {
            user: Some(uid),
            ..Listing::default()
        }
    }

    fn all(&mut self, workspace: &Path) -> Result<&[PathBuf], ExpandError> {
        let (budget, user) = (self.budget, self.user);
        match self
            .entries
            .get_or_insert_with(|| walk_all(workspace, budget, user))
        {
            Ok(entries) => Ok(entries),
            Err(e) => Err(e.clone()),
        }
    }
}

/// The paths of `workspace` that `pattern` (relative) names, sorted, a matched folder
/// standing for what it holds.
pub fn expand(
    workspace: &Path,
    pattern: &Path,
    listing: &mut Listing,
) -> Result<Vec<PathBuf>, ExpandError> {
    if !has_wildcard(pattern) {
        return Ok(vec![workspace.join(pattern)]);
    }
    let parts: Vec<String> = pattern
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut found = Vec::new();
    if let [name] = parts.as_slice() {
        for path in listing.all(workspace)? {
            if path
                .file_name()
                .is_some_and(|n| matches(name, &n.to_string_lossy()))
            {
                found.push(path.clone());
            }
        }
    } else {
        let mut budget = listing.budget;
        walk_anchored(workspace, &parts, &mut budget, listing.user, &mut found)?;
    }
    found.sort();
    // A matched folder hides what it holds: one mount for it (sorted, a folder comes just
    // before what it holds).
    found.dedup_by(|inner, outer| inner.starts_with(&*outer));
    if found.len() > MAX_MATCHES {
        return Err(ExpandError::TooManyMatches(found.len()));
    }
    Ok(found)
}

/// Lists `dir`. A folder that cannot be listed is an error, unless it cannot be entered
/// either and belongs to someone else than `user`: then nothing in it is reachable by the
/// sandbox either (it runs as `user`, without privileges, and cannot `chmod` it). A folder
/// of the user's own, an earlier session may have closed (`chmod 000`) to be skipped here
/// and opened again inside.
fn list(
    dir: &Path,
    budget: &mut usize,
    user: Option<u32>,
) -> Result<Vec<(PathBuf, bool)>, ExpandError> {
    use std::os::unix::fs::MetadataExt;
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            let someone_elses =
                user.is_some_and(|uid| fs::symlink_metadata(dir).is_ok_and(|m| m.uid() != uid));
            if someone_elses && fs::symlink_metadata(dir.join(".")).is_err() {
                return Ok(Vec::new());
            }
            return Err(ExpandError::Unlistable(dir.to_path_buf(), e.to_string()));
        }
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| ExpandError::Unlistable(dir.to_path_buf(), e.to_string()))?;
        if *budget == 0 {
            return Err(ExpandError::TooManyEntries);
        }
        *budget -= 1;
        // d_type, no stat; never true for a symlink, so links are not followed.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.path(), is_dir));
    }
    Ok(out)
}

/// Every entry under `root`, breadth-first without recursion (the depth is the sandbox's
/// to choose).
fn walk_all(
    root: &Path,
    mut budget: usize,
    user: Option<u32>,
) -> Result<Vec<PathBuf>, ExpandError> {
    let mut all = Vec::new();
    let mut queue = VecDeque::from([root.to_path_buf()]);
    while let Some(dir) = queue.pop_front() {
        for (path, is_dir) in list(&dir, &mut budget, user)? {
            if is_dir {
                queue.push_back(path.clone());
            }
            all.push(path);
        }
    }
    Ok(all)
}

fn walk_anchored(
    dir: &Path,
    parts: &[String],
    budget: &mut usize,
    user: Option<u32>,
    found: &mut Vec<PathBuf>,
) -> Result<(), ExpandError> {
    let Some((first, rest)) = parts.split_first() else {
        return Ok(());
    };
    if !has_wildcard(Path::new(first)) {
        let next = dir.join(first);
        return if rest.is_empty() {
            found.push(next);
            Ok(())
        } else {
            walk_anchored(&next, rest, budget, user, found)
        };
    }
    for (path, is_dir) in list(dir, budget, user)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !matches(first, &name) {
            continue;
        }
        if rest.is_empty() {
            found.push(path);
        } else if is_dir {
            walk_anchored(&path, rest, budget, user, found)?;
        }
    }
    Ok(())
}

/// `*` matches any run of characters, `?` one character; nothing else is special.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matcher against a plain recursive one, on seeded random patterns and names of
    /// a small alphabet (issue 17, item 12: the hand-written parsers are tested by mutation).
    #[test]
    fn matcher_agrees_with_a_reference_on_random_cases() {
        fn reference(p: &[char], n: &[char]) -> bool {
            match p.split_first() {
                None => n.is_empty(),
                Some(('*', rest)) => (0..=n.len()).any(|i| reference(rest, &n[i..])),
                Some((&c, rest)) => n
                    .split_first()
                    .is_some_and(|(&m, tail)| (c == '?' || c == m) && reference(rest, tail)),
            }
        }
        let mut state: u64 = 0x6b65_6e6e_656c;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let alphabet = ['a', 'b', '.', 'é', '*', '?'];
        for _ in 0..20_000 {
            let pattern: String = (0..next(8)).map(|_| alphabet[next(6)]).collect();
            let name: String = (0..next(10)).map(|_| alphabet[next(4)]).collect();
            let p: Vec<char> = pattern.chars().collect();
            let n: Vec<char> = name.chars().collect();
            assert_eq!(
                matches(&pattern, &name),
                reference(&p, &n),
                "{pattern} {name}"
            );
        }
    }

    #[test]
    fn wildcards_match_names() {
        assert!(matches(".env*", ".env"));
        assert!(matches(".env*", ".env.local"));
        assert!(!matches(".env*", "x.env"));
        assert!(matches("*.pem", "server.pem"));
        assert!(!matches("*.pem", "server.pem.txt"));
        assert!(matches("a?c", "abc"));
        assert!(matches("*", ""));
    }

    fn expand(ws: &Path, pattern: &str) -> Result<Vec<PathBuf>, ExpandError> {
        super::expand(ws, Path::new(pattern), &mut Listing::default())
    }

    #[test]
    fn expansion_walks_every_folder_at_every_depth() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ws = dir.path();
        fs::create_dir_all(ws.join("a/b"))?;
        fs::create_dir_all(ws.join("node_modules/x"))?;
        fs::create_dir_all(ws.join("config"))?;
        fs::create_dir_all(ws.join(".env.d/inner"))?;
        fs::write(ws.join(".env"), "")?;
        fs::write(ws.join("a/b/.env.local"), "")?;
        fs::write(ws.join("node_modules/x/.env"), "")?;
        fs::write(ws.join(".env.d/inner/.env"), "")?;
        fs::write(ws.join("config/k.key"), "")?;
        fs::write(ws.join("a/k.key"), "")?;
        let mut deep = ws.to_path_buf();
        for i in 0..40 {
            deep.push(format!("d{i}"));
        }
        fs::create_dir_all(&deep)?;
        fs::write(deep.join(".env"), "")?;
        std::os::unix::fs::symlink(ws.join("a"), ws.join("link"))?;
        assert_eq!(
            expand(ws, ".env*"),
            Ok(vec![
                ws.join(".env"),
                ws.join(".env.d"),
                ws.join("a/b/.env.local"),
                deep.join(".env"),
                ws.join("node_modules/x/.env"),
            ])
        );
        assert_eq!(
            expand(ws, "config/*.key"),
            Ok(vec![ws.join("config/k.key")])
        );
        assert_eq!(expand(ws, "secrets"), Ok(vec![ws.join("secrets")]));
        Ok(())
    }

    #[test]
    fn one_walk_serves_every_pattern() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ws = dir.path();
        fs::write(ws.join(".env"), "")?;
        let mut listing = Listing::default();
        assert_eq!(
            super::expand(ws, Path::new(".env*"), &mut listing),
            Ok(vec![ws.join(".env")])
        );
        fs::write(ws.join("x.pem"), "")?;
        // Listed at the first pattern: the start's view, the same for every pattern.
        assert_eq!(
            super::expand(ws, Path::new("*.pem"), &mut listing),
            Ok(vec![])
        );
        Ok(())
    }

    #[test]
    fn too_many_entries_fail_rather_than_hide_less() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ws = dir.path();
        for d in 0..10 {
            let folder = ws.join(format!("f{d}"));
            fs::create_dir(&folder)?;
            for f in 0..10 {
                fs::File::create(folder.join(format!("x{f}")))?;
            }
        }
        fs::write(ws.join(".env"), "")?;
        let mut small = Listing {
            budget: 110,
            ..Listing::default()
        };
        assert_eq!(
            super::expand(ws, Path::new(".env*"), &mut small),
            Err(ExpandError::TooManyEntries)
        );
        // The same error for every later pattern.
        assert_eq!(
            super::expand(ws, Path::new("*.pem"), &mut small),
            Err(ExpandError::TooManyEntries)
        );
        let mut enough = Listing {
            budget: 111,
            ..Listing::default()
        };
        assert_eq!(
            super::expand(ws, Path::new(".env*"), &mut enough),
            Ok(vec![ws.join(".env")])
        );
        // An anchored pattern looks at its folders only.
        let mut small = Listing {
            budget: 20,
            ..Listing::default()
        };
        assert_eq!(
            super::expand(ws, Path::new("f3/x?"), &mut small).map(|v| v.len()),
            Ok(10)
        );
        Ok(())
    }

    #[test]
    fn too_many_matches_fail() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ws = dir.path();
        for f in 0..=MAX_MATCHES {
            fs::File::create(ws.join(format!("{f}.pem")))?;
        }
        assert_eq!(
            expand(ws, "*.pem"),
            Err(ExpandError::TooManyMatches(MAX_MATCHES + 1))
        );
        Ok(())
    }

    #[test]
    fn a_folder_that_can_be_entered_but_not_listed_fails() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let ws = dir.path();
        let closed = ws.join("closed");
        fs::create_dir(&closed)?;
        fs::write(closed.join(".env"), "")?;
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o311))?;
        let result = expand(ws, ".env*");
        let entered_anyway = fs::read_dir(&closed).is_ok(); // root reads every folder
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700))?;
        if entered_anyway {
            assert_eq!(result, Ok(vec![closed.join(".env")]));
        } else {
            assert!(
                matches!(result, Err(ExpandError::Unlistable(ref d, _)) if *d == closed),
                "{result:?}"
            );
        }
        Ok(())
    }
}
