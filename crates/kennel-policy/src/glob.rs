//! Wildcards in a repository's hidden paths (`.env*`, `*.pem`, `config/*.key`), expanded
//! against the workspace once, at start.
//!
//! Listing a workspace costs time on every start, and startup overhead matters, so the walk
//! is bounded: at most [`MAX_DEPTH`] levels and [`MAX_ENTRIES`] entries, never into `.git`,
//! `target` or `node_modules` (big, and not where secrets are kept), never through symlinks.
//! A pattern without `/` matches a name at any depth; one with `/` is anchored at the
//! workspace root, one component per level. Files created after the start are not hidden.

use std::fs;
use std::path::{Path, PathBuf};

pub const MAX_DEPTH: usize = 6;
pub const MAX_ENTRIES: usize = 20_000;
pub const SKIPPED_DIRS: &[&str] = &[".git", "target", "node_modules"];

pub fn has_wildcard(pattern: &Path) -> bool {
    pattern.to_string_lossy().contains(['*', '?'])
}

/// The paths of `workspace` that `pattern` (relative) names.
pub fn expand(workspace: &Path, pattern: &Path) -> Vec<PathBuf> {
    if !has_wildcard(pattern) {
        return vec![workspace.join(pattern)];
    }
    let parts: Vec<String> = pattern
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut found = Vec::new();
    let mut budget = MAX_ENTRIES;
    if parts.len() == 1 {
        walk_any_depth(workspace, &parts[0], 0, &mut budget, &mut found);
    } else {
        walk_anchored(workspace, &parts, &mut budget, &mut found);
    }
    found.sort();
    found
}

fn entries(dir: &Path, budget: &mut usize) -> Vec<(String, PathBuf, bool)> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in read.flatten() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
            is_dir,
        ));
    }
    out
}

fn walk_any_depth(
    dir: &Path,
    pat: &str,
    depth: usize,
    budget: &mut usize,
    found: &mut Vec<PathBuf>,
) {
    for (name, path, is_dir) in entries(dir, budget) {
        if matches(pat, &name) {
            found.push(path);
        } else if is_dir && depth + 1 < MAX_DEPTH && !SKIPPED_DIRS.contains(&name.as_str()) {
            walk_any_depth(&path, pat, depth + 1, budget, found);
        }
    }
}

fn walk_anchored(dir: &Path, parts: &[String], budget: &mut usize, found: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    if !has_wildcard(Path::new(first)) {
        let next = dir.join(first);
        if rest.is_empty() {
            found.push(next);
        } else {
            walk_anchored(&next, rest, budget, found);
        }
        return;
    }
    for (name, path, is_dir) in entries(dir, budget) {
        if !matches(first, &name) {
            continue;
        }
        if rest.is_empty() {
            found.push(path);
        } else if is_dir {
            walk_anchored(&path, rest, budget, found);
        }
    }
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

    #[test]
    fn expansion_is_bounded_and_skips_big_dirs() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ws = dir.path();
        fs::create_dir_all(ws.join("a/b"))?;
        fs::create_dir_all(ws.join("node_modules/x"))?;
        fs::create_dir_all(ws.join("config"))?;
        fs::write(ws.join(".env"), "")?;
        fs::write(ws.join("a/b/.env.local"), "")?;
        fs::write(ws.join("node_modules/x/.env"), "")?;
        fs::write(ws.join("config/k.key"), "")?;
        fs::write(ws.join("a/k.key"), "")?;
        let mut deep = ws.to_path_buf();
        for i in 0..MAX_DEPTH + 1 {
            deep.push(format!("d{i}"));
        }
        fs::create_dir_all(&deep)?;
        fs::write(deep.join(".env"), "")?;
        assert_eq!(
            expand(ws, Path::new(".env*")),
            vec![ws.join(".env"), ws.join("a/b/.env.local")]
        );
        assert_eq!(
            expand(ws, Path::new("config/*.key")),
            vec![ws.join("config/k.key")]
        );
        assert_eq!(expand(ws, Path::new("secrets")), vec![ws.join("secrets")]);
        Ok(())
    }
}
