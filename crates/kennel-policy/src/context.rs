//! Where kennel was started: the working directory, the workspace it belongs to, the user.
//!
//! Built from explicit inputs ([`ContextInputs`]) so that tests can use any home; the only
//! disk access is reading `.git` files and canonicalizing paths.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
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
        let workspace = find_workspace(&cwd, &home)?;
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
///
/// The pointers (`.git` files, `commondir`) are files a sandbox could have written in an
/// earlier session, so they are read exactly as git reads them and believed only when they
/// lead to this worktree's or submodule's own git directory ([`check_git_dirs`]).
pub(crate) fn find_workspace(cwd: &Path, home: &Path) -> Result<Workspace, PolicyError> {
    for dir in cwd.ancestors() {
        let dot_git = dir.join(".git");
        let Ok(meta) = fs::symlink_metadata(&dot_git) else {
            continue;
        };
        let git_dir = if meta.is_dir() {
            dot_git.clone()
        } else if meta.is_file() {
            read_gitdir_file(&dot_git)?
        } else {
            continue;
        };
        let common_dir = read_commondir(&git_dir)?;
        let git = GitDirs {
            git_dir,
            common_dir,
        };
        check_git_dirs(dir, &dot_git, &git, home)?;
        return Ok(Workspace {
            root: dir.to_path_buf(),
            git: Some(git),
        });
    }
    Ok(Workspace {
        root: cwd.to_path_buf(),
        git: None,
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, PolicyError> {
    // git's own limit for a `.git` file is 1 MiB; never read without bound, nor block on
    // a FIFO, what a sandbox may have left.
    crate::git::read_small(path, 1 << 20).map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidData => PolicyError::BadGitFile {
            path: path.to_path_buf(),
            message: format!(
                "{source}, so not a pointer git would follow; look at it, then move it away"
            ),
        },
        _ => PolicyError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// The path a pointer file holds, as git reads it: the text ends at the first NUL, and only
/// trailing line ends (`\n`, `\r`) are stripped; a leading or trailing space is part of
/// the path (setup.c: `read_gitfile_gently`, `get_common_dir_noenv`).
fn pointer_text(bytes: &[u8]) -> &[u8] {
    let mut text = bytes.split(|b| *b == 0).next().unwrap_or_default();
    while let [rest @ .., b'\n' | b'\r'] = text {
        text = rest;
    }
    text
}

/// A `.git` file: `gitdir: PATH` (exactly one space), PATH absolute or relative to the
/// folder holding the file; everything after the prefix is the path, newlines inside too.
pub fn parse_gitfile(bytes: &[u8]) -> Option<PathBuf> {
    let rest = bytes.strip_prefix(b"gitdir: ")?;
    let path = pointer_text(rest);
    (!path.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(path)))
}

/// A `commondir` file: a path, absolute or relative to the git dir holding it.
pub fn parse_commondir(bytes: &[u8]) -> Option<PathBuf> {
    let path = pointer_text(bytes);
    (!path.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(path)))
}

fn read_gitdir_file(dot_git: &Path) -> Result<PathBuf, PolicyError> {
    let bytes = read_bytes(dot_git)?;
    let target = parse_gitfile(&bytes).ok_or_else(|| PolicyError::BadGitFile {
        path: dot_git.to_path_buf(),
        message: "expected `gitdir: PATH`; is this a broken worktree or submodule?".into(),
    })?;
    let folder = dot_git.parent().unwrap_or(Path::new("/"));
    followed(dot_git, &folder.join(target))
}

/// Where a pointer leads, as git would resolve it; a pointer to nothing is refused: git
/// would not take that repository either.
fn followed(pointer: &Path, target: &Path) -> Result<PathBuf, PolicyError> {
    fs::canonicalize(target).map_err(|e| {
        untrusted(
            pointer,
            format!(
                "points to {}, which cannot be reached ({e}); git itself would not use it. \
                 Repair it (`git worktree repair`) or remove it",
                crate::shown_path(target)
            ),
        )
    })
}

/// A linked worktree's git dir has a `commondir` file naming the main `.git`.
fn read_commondir(git_dir: &Path) -> Result<PathBuf, PolicyError> {
    let file = git_dir.join("commondir");
    if fs::symlink_metadata(&file).is_err() {
        return Ok(git_dir.to_path_buf());
    }
    let bytes = read_bytes(&file)?;
    let target = parse_commondir(&bytes).ok_or_else(|| PolicyError::BadGitFile {
        path: file.clone(),
        message: "empty; git itself refuses this repository: remove the file".into(),
    })?;
    followed(&file, &git_dir.join(target))
}

fn untrusted(path: &Path, why: String) -> PolicyError {
    PolicyError::UntrustedGitDir {
        path: path.to_path_buf(),
        why,
    }
}

/// Places that are never a git directory kennel binds, whatever a pointer says: the home,
/// a folder above it, a hidden folder of the home (`~/.ssh`, `~/.aws`; `.git` itself aside),
/// and the kernel's and the session's folders.
fn forbidden_place(dir: &Path, home: &Path) -> Option<String> {
    if dir.starts_with(home) && dir != home {
        let rel = dir.strip_prefix(home).unwrap_or(dir);
        let hidden = rel.components().any(|c| {
            let name = c.as_os_str().as_bytes();
            name.starts_with(b".") && name != b".git"
        });
        return hidden
            .then(|| "it is inside a hidden folder of your home, where secrets live".to_string());
    }
    if home.starts_with(dir) {
        return Some("it is your home or a folder above it".into());
    }
    for system in ["/run", "/proc", "/sys", "/dev"] {
        if dir.starts_with(system) {
            return Some(format!("it is under {system}"));
        }
    }
    None
}

/// Whether `dir` has what git requires of a git directory (setup.c: `is_git_directory`):
/// a `HEAD`, and `objects` and `refs` folders in its common dir.
fn looks_like_git_dir(git_dir: &Path, common_dir: &Path) -> bool {
    let is = |p: PathBuf, dir: bool| {
        fs::symlink_metadata(&p).is_ok_and(|m| if dir { m.is_dir() } else { !m.is_dir() })
    };
    is(git_dir.join("HEAD"), false)
        && is(common_dir.join("objects"), true)
        && is(common_dir.join("refs"), true)
}

/// Believes the pointers only when they lead where git itself put them: a linked worktree's
/// git dir is `COMMON/worktrees/NAME` and its `gitdir` file points back to this `.git` file;
/// a submodule's is below `SUPER/.git/modules/`, SUPER a folder above the workspace. The
/// git dirs of the workspace's own `.git` folder need no more: they are in the workspace.
pub(crate) fn check_git_dirs(
    worktree: &Path,
    dot_git: &Path,
    git: &GitDirs,
    home: &Path,
) -> Result<(), PolicyError> {
    let inside = |p: &Path| p.starts_with(worktree);
    if git.git_dir == *dot_git {
        if git.common_dir != git.git_dir {
            return Err(untrusted(
                &git.git_dir.join("commondir"),
                format!(
                    "a repository's own .git has a `commondir`, which sends git to {} for its \
                     config and hooks; git never writes one there (a sandbox may have): look at \
                     it, then move it away",
                    crate::shown_path(&git.common_dir)
                ),
            ));
        }
        return Ok(());
    }
    for dir in [&git.git_dir, &git.common_dir] {
        if inside(dir) {
            continue;
        }
        if let Some(why) = forbidden_place(dir, home) {
            return Err(untrusted(
                dot_git,
                format!(
                    "points git to {}, and {why}; kennel would not give a sandbox that folder. \
                     Look at {}, then repair it (`git worktree repair`) or remove it",
                    crate::shown_path(dir),
                    crate::shown_path(dot_git)
                ),
            ));
        }
    }
    if !looks_like_git_dir(&git.git_dir, &git.common_dir) {
        return Err(untrusted(
            dot_git,
            format!(
                "points to {}, which is not a git directory (no HEAD, objects and refs); look \
                 at it, then repair or remove it",
                crate::shown_path(&git.git_dir)
            ),
        ));
    }
    if git.common_dir != git.git_dir {
        // A linked worktree: `COMMON/worktrees/NAME`, whose `gitdir` names this `.git` file.
        let expected = git.common_dir.join("worktrees");
        if git.git_dir.parent() != Some(expected.as_path()) {
            return Err(untrusted(
                &git.git_dir.join("commondir"),
                format!(
                    "names {} as the main repository, but {} is not one of its worktrees; \
                     look at it, then repair it (`git worktree repair`) or remove it",
                    crate::shown_path(&git.common_dir),
                    crate::shown_path(&git.git_dir)
                ),
            ));
        }
        let back = git.git_dir.join("gitdir");
        let points_back = read_bytes(&back)
            .ok()
            .and_then(|b| parse_commondir(&b))
            .and_then(|p| fs::canonicalize(git.git_dir.join(p)).ok())
            .is_some_and(|p| fs::canonicalize(dot_git).is_ok_and(|d| d == p));
        if !points_back {
            return Err(untrusted(
                &back,
                format!(
                    "does not point back to {}, so {} is not this worktree's git directory; \
                     repair it (`git worktree repair`) or remove the .git file",
                    crate::shown_path(dot_git),
                    crate::shown_path(&git.git_dir)
                ),
            ));
        }
        return Ok(());
    }
    if inside(&git.git_dir) {
        return Ok(());
    }
    // A submodule: `SUPER/.git/modules/NAME[/modules/NAME...]`, SUPER above the workspace.
    let is_module_of = |git_dir: &Path| {
        let mut dir = git_dir;
        while let Some(parent) = dir.parent() {
            if parent.file_name() == Some(std::ffi::OsStr::new("modules")) {
                if let Some(dot) = parent.parent() {
                    if dot.file_name() == Some(std::ffi::OsStr::new(".git")) {
                        if let Some(sup) = dot.parent() {
                            if worktree.starts_with(sup) && worktree != sup {
                                return true;
                            }
                        }
                    }
                }
            }
            dir = parent;
        }
        false
    };
    if !is_module_of(&git.git_dir) {
        return Err(untrusted(
            dot_git,
            format!(
                "points to {}, outside the workspace, which is neither a linked worktree's git \
                 directory nor a submodule's (`.git/modules/` of a repository above it); \
                 kennel does not bind it. Look at it, then repair or remove it",
                crate::shown_path(&git.git_dir)
            ),
        ));
    }
    Ok(())
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
        let ws = find_workspace(&cwd, Path::new("/nonexistent-home"))?;
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
        let ws = find_workspace(&root.join("a/b"), Path::new("/nonexistent-home"))?;
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
        let (main_git, wt_git) = worktree(&base)?;
        let ws = find_workspace(&base.join("wt"), Path::new("/nonexistent-home"))?;
        let git = ws.git.ok_or("no git dirs")?;
        assert_eq!(git.git_dir, wt_git);
        assert_eq!(git.common_dir, main_git);
        Ok(())
    }

    /// `BASE/main` with a linked worktree `BASE/wt`, laid out as git does.
    fn worktree(base: &Path) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
        let main_git = base.join("main/.git");
        let wt_git = main_git.join("worktrees/wt");
        fs::create_dir_all(&wt_git)?;
        fs::create_dir_all(main_git.join("objects"))?;
        fs::create_dir_all(main_git.join("refs"))?;
        fs::write(wt_git.join("HEAD"), "ref: refs/heads/wt\n")?;
        fs::write(wt_git.join("commondir"), "../..\n")?;
        fs::create_dir_all(base.join("wt"))?;
        fs::write(
            wt_git.join("gitdir"),
            format!("{}\n", base.join("wt/.git").display()),
        )?;
        fs::write(
            base.join("wt/.git"),
            format!("gitdir: {}\n", wt_git.display()),
        )?;
        Ok((main_git, wt_git))
    }

    #[test]
    fn pointers_are_read_as_git_reads_them() {
        // Only trailing line ends go; a leading space is part of the path, as is the rest.
        assert_eq!(
            parse_gitfile(b"gitdir: /a/b\r\n\n"),
            Some(PathBuf::from("/a/b"))
        );
        assert_eq!(
            parse_gitfile(b"gitdir:  /h/u/.ssh\n"),
            Some(PathBuf::from(" /h/u/.ssh"))
        );
        assert_eq!(parse_gitfile(b"gitdir:/a\n"), None);
        assert_eq!(parse_gitfile(b"gitdir: \n"), None);
        assert_eq!(
            parse_gitfile(b"gitdir: /a\nmore\n"),
            Some(PathBuf::from("/a\nmore"))
        );
        assert_eq!(
            parse_gitfile(b"gitdir: /a\0/b\n"),
            Some(PathBuf::from("/a"))
        );
        assert_eq!(
            parse_commondir(b" /h/u/.ssh \n"),
            Some(PathBuf::from(" /h/u/.ssh "))
        );
        assert_eq!(parse_commondir(b"\n"), None);
    }

    #[test]
    fn a_pointer_to_a_secret_folder_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let base = fs::canonicalize(dir.path())?;
        let home = base.join("home");
        let ssh = home.join(".ssh");
        // Even shaped like a git directory.
        for d in ["objects", "refs"] {
            fs::create_dir_all(ssh.join(d))?;
        }
        fs::write(ssh.join("HEAD"), "ref: refs/heads/main\n")?;
        let repo = home.join("repo");
        fs::create_dir_all(&repo)?;
        fs::write(repo.join(".git"), format!("gitdir: {}\n", ssh.display()))?;
        let err = find_workspace(&repo, &home)
            .err()
            .ok_or("expected a refusal")?;
        assert!(err.is_refusal(), "{err}");
        assert!(err.to_string().contains("hidden folder"), "{err}");
        // The home itself, and /run.
        fs::write(repo.join(".git"), format!("gitdir: {}\n", home.display()))?;
        assert!(find_workspace(&repo, &home).is_err());
        Ok(())
    }

    #[test]
    fn commondir_in_a_plain_repository_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let base = fs::canonicalize(dir.path())?;
        let (_, _) = worktree(&base)?;
        let repo = base.join("repo");
        for d in ["objects", "refs"] {
            fs::create_dir_all(repo.join(".git").join(d))?;
        }
        fs::write(repo.join(".git/HEAD"), "ref: refs/heads/main\n")?;
        fs::write(
            repo.join(".git/commondir"),
            format!("{}\n", base.join("main/.git").display()),
        )?;
        let err = find_workspace(&repo, Path::new("/nonexistent-home"))
            .err()
            .ok_or("expected a refusal")?;
        assert!(err.to_string().contains("commondir"), "{err}");
        Ok(())
    }

    #[test]
    fn a_worktree_whose_git_dir_does_not_point_back_is_refused(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let base = fs::canonicalize(dir.path())?;
        let (_, wt_git) = worktree(&base)?;
        // A second work tree claiming the same git dir.
        fs::create_dir_all(base.join("other"))?;
        fs::write(
            base.join("other/.git"),
            format!("gitdir: {}\n", wt_git.display()),
        )?;
        let err = find_workspace(&base.join("other"), Path::new("/nonexistent-home"))
            .err()
            .ok_or("expected a refusal")?;
        assert!(err.to_string().contains("point back"), "{err}");
        Ok(())
    }

    #[test]
    fn broken_gitdir_file_is_a_clear_error() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tmp();
        let base = fs::canonicalize(dir.path())?;
        fs::write(base.join(".git"), "nonsense\n")?;
        let err = find_workspace(&base, Path::new("/nonexistent-home"))
            .err()
            .ok_or("expected an error")?;
        assert!(err.to_string().contains("gitdir: PATH"), "{err}");
        Ok(())
    }
}
