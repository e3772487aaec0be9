//! Where kennel was started: the working directory, the workspace it belongs to, the user.
//!
//! Built from explicit inputs ([`ContextInputs`]) so that tests can use any home; the only
//! disk access is reading `.git` files and canonicalizing paths.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::PolicyError;
use crate::paths::normalize;

/// What the caller knows about the process: nothing here is read from `std::env`.
#[derive(Debug, Clone)]
pub struct ContextInputs {
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub uid: u32,
    pub gid: u32,
    /// The home from the password database, used when `HOME` is unset.
    pub passwd_home: Option<PathBuf>,
    pub stdin_is_tty: bool,
    pub stdout_is_tty: bool,
}

/// The git directories of a workspace. In a linked worktree or a submodule they live
/// outside the work tree and must be reachable for `git status` and `git commit` to work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitDirs {
    /// `$GIT_DIR`: `.git` of a plain repository, `.git/worktrees/NAME` of a linked worktree,
    /// `.git/modules/NAME` of a submodule.
    pub git_dir: PathBuf,
    /// Where objects and refs live (the main repository's `.git` for a linked worktree).
    pub common_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workspace {
    /// The git top-level, or the working directory outside any repository.
    pub root: PathBuf,
    pub git: Option<GitDirs>,
}

#[derive(Debug, Clone)]
pub struct Context {
    pub cwd: PathBuf,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub workspace: Workspace,
    pub env: Vec<(OsString, OsString)>,
    pub stdin_is_tty: bool,
    pub stdout_is_tty: bool,
}

impl Context {
    pub fn discover(inputs: ContextInputs) -> Result<Context, PolicyError> {
        let home = home_from(&inputs)?;
        let cwd = canonical(&inputs.cwd)?;
        let workspace = find_workspace(&cwd)?;
        Ok(Context {
            cwd,
            home,
            uid: inputs.uid,
            gid: inputs.gid,
            workspace,
            env: inputs.env,
            stdin_is_tty: inputs.stdin_is_tty,
            stdout_is_tty: inputs.stdout_is_tty,
        })
    }

    /// The value of an environment variable of the caller, if set and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.to_str())
    }
}

fn home_from(inputs: &ContextInputs) -> Result<PathBuf, PolicyError> {
    let from_env = inputs
        .env
        .iter()
        .find(|(k, v)| k == "HOME" && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v));
    let home = from_env
        .or_else(|| inputs.passwd_home.clone())
        .ok_or(PolicyError::NoHome { uid: inputs.uid })?;
    if !home.is_absolute() {
        return Err(PolicyError::RelativeHome(home));
    }
    // A home that does not exist is still a home to hide; compare it lexically then.
    Ok(fs::canonicalize(&home).unwrap_or_else(|_| normalize(&home)))
}

fn canonical(path: &Path) -> Result<PathBuf, PolicyError> {
    fs::canonicalize(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Walks up from `cwd` to the nearest `.git` (a directory, or a file pointing to the git dir
/// as in linked worktrees and submodules). Outside any repository the workspace is `cwd`.
pub(crate) fn find_workspace(cwd: &Path) -> Result<Workspace, PolicyError> {
    for dir in cwd.ancestors() {
        let dot_git = dir.join(".git");
        let Ok(meta) = fs::symlink_metadata(&dot_git) else {
            continue;
        };
        let git_dir = if meta.is_dir() {
            dot_git
        } else if meta.is_file() {
            read_gitdir_file(&dot_git, dir)?
        } else {
            continue;
        };
        let common_dir = read_commondir(&git_dir)?;
        return Ok(Workspace {
            root: dir.to_path_buf(),
            git: Some(GitDirs {
                git_dir,
                common_dir,
            }),
        });
    }
    Ok(Workspace {
        root: cwd.to_path_buf(),
        git: None,
    })
}

fn read_text(path: &Path) -> Result<String, PolicyError> {
    fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A `.git` file holds `gitdir: PATH`, PATH relative to the work tree or absolute.
fn read_gitdir_file(dot_git: &Path, worktree: &Path) -> Result<PathBuf, PolicyError> {
    let text = read_text(dot_git)?;
    let target = text
        .lines()
        .find_map(|l| l.strip_prefix("gitdir:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| PolicyError::BadGitFile {
            path: dot_git.to_path_buf(),
            message: "expected a line `gitdir: PATH`; is this a broken worktree or submodule?"
                .into(),
        })?;
    canonical(&worktree.join(target))
}

/// A linked worktree's git dir has a `commondir` file naming the main `.git`.
fn read_commondir(git_dir: &Path) -> Result<PathBuf, PolicyError> {
    let file = git_dir.join("commondir");
    if !file.exists() {
        return Ok(git_dir.to_path_buf());
    }
    let text = read_text(&file)?;
    canonical(&git_dir.join(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| unreachable!("tempdir: {e}"))
    }

    #[test]
    fn outside_a_repository_the_workspace_is_cwd() -> Result<(), PolicyError> {
        let dir = tmp();
        let cwd = fs::canonicalize(dir.path()).map_err(|e| PolicyError::Io {
            path: dir.path().into(),
            source: e,
        })?;
        let ws = find_workspace(&cwd)?;
        assert_eq!(ws.root, cwd);
        assert!(ws.git.is_none());
        Ok(())
    }

    #[test]
    fn finds_toplevel_from_a_subdirectory() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let root = fs::canonicalize(dir.path())?;
        fs::create_dir_all(root.join(".git"))?;
        fs::create_dir_all(root.join("a/b"))?;
        let ws = find_workspace(&root.join("a/b"))?;
        assert_eq!(ws.root, root);
        let git = ws.git.ok_or("no git dirs")?;
        assert_eq!(git.git_dir, root.join(".git"));
        assert_eq!(git.common_dir, root.join(".git"));
        Ok(())
    }

    #[test]
    fn linked_worktree_points_to_main_git_dir() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let base = fs::canonicalize(dir.path())?;
        let main_git = base.join("main/.git");
        let wt_git = main_git.join("worktrees/wt");
        fs::create_dir_all(&wt_git)?;
        fs::write(wt_git.join("commondir"), "../..\n")?;
        fs::create_dir_all(base.join("wt"))?;
        fs::write(
            base.join("wt/.git"),
            format!("gitdir: {}\n", wt_git.display()),
        )?;
        let ws = find_workspace(&base.join("wt"))?;
        let git = ws.git.ok_or("no git dirs")?;
        assert_eq!(git.git_dir, wt_git);
        assert_eq!(git.common_dir, main_git);
        Ok(())
    }

    #[test]
    fn broken_gitdir_file_is_a_clear_error() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let base = fs::canonicalize(dir.path())?;
        fs::write(base.join(".git"), "nonsense\n")?;
        let err = find_workspace(&base).err().ok_or("expected an error")?;
        assert!(err.to_string().contains("gitdir: PATH"), "{err}");
        Ok(())
    }
}
