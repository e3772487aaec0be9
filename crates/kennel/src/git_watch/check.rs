//! The end check itself: what git would now run in the workspace, against the start.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kennel_policy::{
    command_settings, module_git_dirs, parse_gitfile, read_config, read_small, shown, shown_path,
    GitDirs, GitSurface,
};

use super::quarantine::{make_quarantine, quarantine, sh_quoted, write_new};
use super::walk::{walk, Survey};
use super::{Stamp, CONFIG_LIMIT, QUARANTINE};

/// What one check compares with: the workspace, its git dirs, the session's start, and
/// what was kept at start (nothing, for a killed session's check).
pub(super) struct Check<'a> {
    pub(super) root: &'a Path,
    pub(super) git: &'a GitDirs,
    pub(super) home: &'a Path,
    pub(super) start: Stamp,
    pub(super) dot_git: Option<(u64, u64)>,
    pub(super) configs: &'a [(PathBuf, Option<Vec<u8>>)],
    /// The work tree as listed during the session, if it was (see [`Survey`]).
    pub(super) survey: Option<&'a Survey>,
}

/// What the check found and did, for the user.
#[derive(Default)]
pub(super) struct Report {
    pub(super) found: Vec<String>,
    /// A place the walk could not look into.
    pub(super) blind: Vec<String>,
    pub(super) quarantine: Option<PathBuf>,
    /// The repository's `.git` is not the one the session started with: nothing is moved
    /// into it.
    pub(super) no_moves: bool,
}

/// What one check says, and the nested repositories it found (for the next launch note).
pub(super) struct Outcome {
    pub(super) lines: Vec<String>,
    pub(super) nested: Vec<PathBuf>,
}

pub(super) fn check(c: &Check) -> Outcome {
    let mut r = Report::default();
    let changed = |path: &Path| fs::symlink_metadata(path).is_ok_and(|m| Stamp::of(&m) >= c.start);
    let mut walk = walk(c.root, c.dot_git, c.start, c.survey);
    r.blind.extend(walk.blind.iter().cloned());
    // In the folders the walk did not enter, the repositories the index stages.
    if !walk.pruned.is_empty() {
        let config = kennel_policy::read_small(&c.git.common_dir.join("config"), 1 << 20)
            .unwrap_or_default();
        let sha256 = String::from_utf8_lossy(&config)
            .to_ascii_lowercase()
            .contains("sha256");
        let index =
            kennel_policy::read_small(&c.git.git_dir.join("index"), 256 << 20).unwrap_or_default();
        for link in super::walk::gitlinks(&index, if sha256 { 32 } else { 20 }) {
            let repo = c.root.join(&link);
            if walk.pruned.iter().any(|p| repo.starts_with(p)) {
                let dot_git = repo.join(".git");
                if fs::symlink_metadata(&dot_git).is_ok() {
                    walk.dot_gits.push((dot_git.clone(), changed(&dot_git)));
                }
            }
        }
    }

    // The workspace's `.git` itself, replaced.
    let dot_git = c.root.join(".git");
    if let Some((dev, ino)) = c.dot_git {
        let now = fs::symlink_metadata(&dot_git)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now != Some((dev, ino)) {
            r.found.push(format!(
                "the repository's .git folder was moved, removed or replaced during the \
                 session{}",
                match &walk.original_dot_git {
                    Some(p) => format!(" (the original is now at {})", shown_path(p)),
                    None => String::new(),
                }
            ));
            match &walk.original_dot_git {
                Some(original) => restore_dot_git(&mut r, original, &dot_git),
                None => r.no_moves = true,
            }
        }
    }

    // The repository's own git dirs: configs put back as they were at start.
    for (file, before) in c.configs {
        check_repo_config(c, &mut r, file, before.as_deref());
    }
    let mut git_dirs: Vec<(PathBuf, &str, bool)> =
        vec![(c.git.common_dir.clone(), "the repository", false)];
    if c.git.git_dir != c.git.common_dir {
        git_dirs.push((c.git.git_dir.clone(), "this worktree", false));
    }
    for module in module_git_dirs(&c.git.common_dir) {
        git_dirs.push((module, "a submodule", false));
    }
    if let Ok(entries) = fs::read_dir(c.git.common_dir.join("worktrees")) {
        for entry in entries.flatten().take(1000) {
            git_dirs.push((entry.path(), "a linked worktree", false));
        }
    }
    // `.git` entries found in the work tree, the top one included.
    for (found, arrived) in &walk.dot_gits {
        let arrived = *arrived;
        let meta = match fs::symlink_metadata(found) {
            Ok(m) => m,
            // Moved away by the check itself (restoring `.git`).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // A path too long to name (deeper than PATH_MAX), or unreadable: say so.
            Err(e) => {
                r.blind
                    .push(format!("cannot look at {}: {e}", shown_path(found)));
                continue;
            }
        };
        let top = found == &dot_git;
        if meta.is_dir() {
            if !top {
                git_dirs.push((found.clone(), "a nested repository", arrived));
            }
            continue;
        }
        // A `.git` file or link names a git directory elsewhere: git follows it. One that
        // `git worktree add` or `git submodule` wrote (to this repository's own worktrees
        // or modules, checked above) is normal work.
        if Stamp::of(&meta) >= c.start {
            let target = if meta.is_symlink() {
                fs::read_link(found).ok()
            } else {
                read_small(found, 1 << 20)
                    .ok()
                    .and_then(|b| parse_gitfile(&b))
            };
            let folder = found.parent().unwrap_or(c.root);
            if !meta.is_symlink()
                && target
                    .as_deref()
                    .is_some_and(|t| is_own_git_dir(c, found, &folder.join(t)))
            {
                continue;
            }
            r.found.push(format!(
                "{} was {} during the session: it sends git to {}",
                shown_path(found),
                if meta.is_symlink() {
                    "made a link"
                } else {
                    "written"
                },
                target.as_deref().map_or("?".into(), shown_path)
            ));
            if top {
                r.found.push(
                    "  it is this workspace's own: repair it with `git worktree repair` from \
                     the main checkout, or restore it from the quarantine"
                        .into(),
                );
            }
            quarantine(c, &mut r, found, "a .git pointer");
        } else if arrived && !top {
            let target = read_small(found, 1 << 20)
                .ok()
                .and_then(|b| parse_gitfile(&b))
                .or_else(|| fs::read_link(found).ok());
            let folder = found.parent().unwrap_or(c.root);
            if !target
                .as_deref()
                .is_some_and(|t| is_own_git_dir(c, found, &folder.join(t)))
            {
                r.found.push(format!(
                    "{} is in a folder that changed during the session (moved in?) and sends \
                     git to {}: if you did not put it there, remove it before you use git",
                    shown_path(found),
                    target.as_deref().map_or("?".into(), shown_path)
                ));
            }
        }
    }
    add_pointed_git_dirs(c, &walk.dot_gits, &mut git_dirs);
    let main_configs: Vec<&Path> = c.configs.iter().map(|(f, _)| f.as_path()).collect();
    for (dir, what, arrived) in &git_dirs {
        check_git_dir(c, &mut r, dir, what, *arrived, &main_configs, &changed);
    }

    // Hooks folders (core.hooksPath) and configs included from the workspace.
    let surface = GitSurface::read(c.root, c.git, c.home);
    for hooks in surface
        .hooks_dirs
        .iter()
        .filter(|d| !is_git_dir_hooks(d, &git_dirs))
    {
        check_hooks(c, &mut r, hooks, "core.hooksPath");
    }
    for file in &surface.config_files {
        // What the sandbox could write: the workspace and the git dirs bound into it.
        let reachable = file.starts_with(c.root)
            || file.starts_with(&c.git.common_dir)
            || file.starts_with(&c.git.git_dir);
        if !reachable || main_configs.contains(&file.as_path()) || !changed(file) {
            continue;
        }
        check_changed_config(
            c,
            &mut r,
            file,
            "a config file the repository includes",
            true,
        );
    }

    let mut lines = Vec::new();
    if !r.found.is_empty() {
        lines.push(
            "WARNING: the session changed what git runs in this repository; read this before \
             you use git here:"
                .to_string(),
        );
        lines.extend(r.found.into_iter().map(|l| format!("  {l}")));
        if let Some(q) = &r.quarantine {
            lines.push(format!(
                "  what was moved away is in {}; look at it, then delete it",
                shown_path(q)
            ));
        }
    }
    if !r.blind.is_empty() {
        lines.push(format!(
            "WARNING: kennel could not look everywhere git might read in {} ({}); a nested \
             repository there could run commands at your next git command: look before you \
             use git here",
            shown_path(c.root),
            r.blind.join("; ")
        ));
    }
    let nested = git_dirs
        .iter()
        .filter(|(d, what, _)| {
            d.starts_with(c.root) && (what.starts_with("a nested") || what.starts_with("the git"))
        })
        .map(|(d, _, _)| d.clone())
        .filter(|d| d.is_dir())
        .take(1000)
        .collect();
    Outcome { lines, nested }
}

/// The git dirs that `.git` files and links name, and that `commondir` files name (where
/// git takes config and hooks), when they are not in the list yet: a pointer the session
/// did not touch may lead to a git dir it did (a `--separate-git-dir` in the work tree).
fn add_pointed_git_dirs(
    c: &Check,
    dot_gits: &[(PathBuf, bool)],
    git_dirs: &mut Vec<(PathBuf, &str, bool)>,
) {
    let known = |dirs: &[(PathBuf, &str, bool)], p: &Path| dirs.iter().any(|(d, _, _)| d == p);
    for (found, arrived) in dot_gits {
        let Ok(meta) = fs::symlink_metadata(found) else {
            continue;
        };
        if meta.is_dir() {
            continue;
        }
        let target = if meta.is_symlink() {
            fs::read_link(found).ok()
        } else {
            read_small(found, 1 << 20)
                .ok()
                .and_then(|b| parse_gitfile(&b))
        };
        let folder = found.parent().unwrap_or(c.root);
        if let Some(dir) = target.and_then(|t| fs::canonicalize(folder.join(t)).ok()) {
            if dir.is_dir() && !known(git_dirs, &dir) {
                git_dirs.push((dir, "the git directory a .git file names", *arrived));
            }
        }
    }
    // Each git dir's `commondir`, those just added included (bounded).
    let mut i = 0;
    while i < git_dirs.len() && git_dirs.len() < 10_000 {
        let (dir, _, arrived) = &git_dirs[i];
        let arrived = *arrived;
        let common = read_small(&dir.join("commondir"), 1 << 20)
            .ok()
            .and_then(|b| kennel_policy::parse_commondir(&b))
            .and_then(|p| fs::canonicalize(dir.join(p)).ok());
        if let Some(common) = common {
            if common.is_dir() && !known(git_dirs, &common) {
                git_dirs.push((common, "the git directory a commondir names", arrived));
            }
        }
        i += 1;
    }
}

/// Whether `target` (what a `.git` file at `dot_git` names) is one of this repository's
/// linked worktrees whose `gitdir` points back to it, or one of its submodules.
fn is_own_git_dir(c: &Check, dot_git: &Path, target: &Path) -> bool {
    let Ok(target) = fs::canonicalize(target) else {
        return false;
    };
    let Ok(parent) = fs::canonicalize(c.git.common_dir.join("worktrees")) else {
        return target.starts_with(c.git.common_dir.join("modules"));
    };
    if target.parent() == Some(parent.as_path()) {
        let back = read_small(&target.join("gitdir"), 1 << 20)
            .ok()
            .and_then(|b| kennel_policy::parse_commondir(&b))
            .and_then(|p| fs::canonicalize(target.join(p)).ok());
        return back.is_some() && back == fs::canonicalize(dot_git).ok();
    }
    target.starts_with(c.git.common_dir.join("modules"))
}

/// The workspace's `.git` replaced and the original found at `original`: the one in its
/// place goes to a quarantine inside the original, and the original back to `.git`.
fn restore_dot_git(r: &mut Report, original: &Path, dot_git: &Path) {
    let put_back = make_quarantine(&original.join(QUARANTINE)).and_then(|folder| {
        if fs::symlink_metadata(dot_git).is_ok() {
            fs::rename(dot_git, folder.join(".git"))?;
        }
        fs::rename(original, dot_git)?;
        Ok(folder)
    });
    match put_back {
        Ok(folder) => {
            let name = folder.file_name().map(PathBuf::from).unwrap_or_default();
            let q = dot_git.join(QUARANTINE).join(name);
            r.found.push(format!(
                "  put the original back at {}; the .git that took its place is in {}",
                shown_path(dot_git),
                shown_path(&q.join(".git"))
            ));
            r.quarantine = Some(q);
        }
        Err(e) => {
            r.no_moves = true;
            r.found.push(format!(
                "  could not put the original back ({e}): move {} to {} yourself before you \
                 use git",
                shown_path(original),
                shown_path(dot_git)
            ));
        }
    }
}

fn is_git_dir_hooks(dir: &Path, git_dirs: &[(PathBuf, &str, bool)]) -> bool {
    git_dirs.iter().any(|(g, _, _)| dir == g.join("hooks"))
}

/// One git directory: its config, pointers, hooks and attributes.
///
/// `arrived`: the repository's folder changed during the session, so it may have been
/// moved in whole with files older than the session: what it runs is named (not moved: it
/// may be the user's own).
fn check_git_dir(
    c: &Check,
    r: &mut Report,
    dir: &Path,
    what: &str,
    arrived: bool,
    main_configs: &[&Path],
    changed: &dyn Fn(&Path) -> bool,
) {
    if arrived {
        report_arrived(r, dir, what, changed);
    }
    for name in ["config", "config.worktree"] {
        let file = dir.join(name);
        if !main_configs.contains(&file.as_path()) && changed(&file) {
            // Without a copy from the start (a killed session's check), the repository's
            // own config is moved only if the session created it: one the user had (and may
            // have changed since) is named, not taken away.
            let own = file == c.git.common_dir.join("config")
                || file.starts_with(&c.git.git_dir) && name == "config.worktree";
            let may_move = !own || born_since(&file, c.start);
            check_changed_config(c, r, &file, what, may_move);
        }
    }
    // Only a linked worktree's git dir has a `commondir`, naming the repository's.
    let commondir = dir.join("commondir");
    let is_worktree = dir.parent().and_then(Path::file_name) == Some("worktrees".as_ref());
    let points_home = is_worktree
        && read_small(&commondir, 1 << 20)
            .ok()
            .and_then(|b| kennel_policy::parse_commondir(&b))
            .and_then(|p| fs::canonicalize(dir.join(p)).ok())
            .zip(fs::canonicalize(&c.git.common_dir).ok())
            .is_some_and(|(a, b)| a == b);
    if changed(&commondir) && !points_home {
        r.found.push(format!(
            "{} (of {what}) was written during the session: git would take config and hooks \
             from where it points",
            shown_path(&commondir)
        ));
        quarantine(c, r, &commondir, "a commondir pointer");
    }
    check_hooks(c, r, &dir.join("hooks"), what);
    let attributes = dir.join("info/attributes");
    if changed(&attributes) {
        r.found.push(format!(
            "{} (of {what}) was written during the session: it chooses filter and diff \
             drivers that run commands",
            shown_path(&attributes)
        ));
        quarantine(c, r, &attributes, "attributes");
    }
}

/// What a repository that may have arrived during the session runs, from files the session
/// did not change itself (those are checked, and moved, apart).
fn report_arrived(r: &mut Report, dir: &Path, what: &str, changed: &dyn Fn(&Path) -> bool) {
    let mut runs = Vec::new();
    for name in ["config", "config.worktree"] {
        let file = dir.join(name);
        if changed(&file) {
            continue;
        }
        if let Some(text) = read_config(&file) {
            for (key, value) in command_settings(&text) {
                runs.push(format!("{} = {}", shown(&key), shown(&value)));
            }
        }
    }
    let mut hooks = Vec::new();
    kennel_policy::hooks_in(&dir.join("hooks"), &mut hooks);
    runs.extend(
        hooks
            .into_iter()
            .filter(|h| !changed(&h.file))
            .map(|h| h.what),
    );
    if !runs.is_empty() {
        r.found.push(format!(
            "{} ({what}) is in a folder that changed during the session (moved in?), and git \
             runs from it: {}; if you did not put it there, remove it before you use git",
            shown_path(dir),
            runs.join(", ")
        ));
    }
}

/// Hooks of `dir` changed during the session (a hooks folder replaced by a link included).
fn check_hooks(c: &Check, r: &mut Report, dir: &Path, what: &str) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if meta.is_symlink() {
        if Stamp::of(&meta) >= c.start {
            r.found.push(format!(
                "{} (hooks of {what}) was made a link during the session",
                shown_path(dir)
            ));
            quarantine(c, r, dir, "a hooks link");
        }
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(10_000) {
        let path = entry.path();
        if path.as_os_str().as_encoded_bytes().ends_with(b".sample") {
            // git never runs `*.sample`.
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if Stamp::of(&meta) >= c.start {
            r.found.push(format!(
                "hook {} (of {what}) was written during the session: git runs it",
                shown_path(&path)
            ));
            quarantine(c, r, &path, "a hook");
        } else if meta.is_symlink() {
            // A hook that is a link to a script of the work tree runs what the script now
            // says.
            let Ok(target) = fs::canonicalize(&path) else {
                continue;
            };
            if target.starts_with(c.root)
                && fs::symlink_metadata(&target).is_ok_and(|m| Stamp::of(&m) >= c.start)
            {
                r.found.push(format!(
                    "{} was changed during the session, and the hook {} (of {what}) is a link \
                     to it: git runs it",
                    shown_path(&target),
                    shown_path(&path)
                ));
                quarantine(c, r, &target, "the script the hook runs");
            }
        }
    }
}

/// A config changed during the session: quarantined when it now runs anything.
fn check_changed_config(c: &Check, r: &mut Report, file: &Path, what: &str, may_move: bool) {
    // A config made a link during the session: git would read where it leads, and a later
    // kennel would bind it read-only into the sandbox; it is not read through.
    if fs::symlink_metadata(file).is_ok_and(|m| m.is_symlink()) {
        r.found.push(format!(
            "{} (of {what}) was made a link to {} during the session",
            shown_path(file),
            fs::read_link(file)
                .as_deref()
                .map_or("?".into(), shown_path)
        ));
        if may_move {
            quarantine(c, r, file, "a config link");
        }
        return;
    }
    let Some(text) = read_config(file) else {
        if fs::symlink_metadata(file).is_ok() {
            r.found.push(format!(
                "{} (of {what}) was changed during the session and is not a plain config file",
                shown_path(file)
            ));
            quarantine(c, r, file, "a config");
        }
        return;
    };
    let runs = command_settings(&text);
    if runs.is_empty() {
        return;
    }
    for (key, value) in &runs {
        r.found.push(format!(
            "{} = {} in {} (of {what}), written during the session",
            shown(key),
            shown(value),
            shown_path(file)
        ));
    }
    if may_move {
        quarantine(c, r, file, "a config");
    } else {
        r.found.push(format!(
            "  kennel has no copy of it from the start, so it stays: look at it \
             (`git config --file {} --list`) and remove what you did not set, before you use \
             git",
            sh_quoted(file)
        ));
    }
}

/// Whether `path` was created at or after `start` (its birth time, where the file system
/// keeps one; never, where it does not).
fn born_since(path: &Path, start: Stamp) -> bool {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME).is_ok_and(|st| {
        StatxFlags::from_bits_retain(st.stx_mask).contains(StatxFlags::BTIME)
            && Stamp(
                i128::from(st.stx_btime.tv_sec) * 1_000_000_000 + i128::from(st.stx_btime.tv_nsec),
            ) >= start
    })
}

/// The repository's own config (or config.worktree): put back as it was at start when the
/// session made it run something it did not.
fn check_repo_config(c: &Check, r: &mut Report, file: &Path, before: Option<&[u8]>) {
    let after = read_small(file, CONFIG_LIMIT).ok();
    let exists = fs::symlink_metadata(file).is_ok();
    if after.as_deref() == before || (!exists && after.is_none()) {
        // Unchanged, or removed (git runs nothing from a config that is not there).
        return;
    }
    let settings = |b: &[u8]| command_settings(&String::from_utf8_lossy(b));
    let old = before.map(settings).unwrap_or_default();
    let new = after.as_deref().map(settings).unwrap_or_default();
    let added: Vec<_> = new.iter().filter(|s| !old.contains(s)).collect();
    // Not a readable config any more (a link to a folder, a FIFO, a huge file).
    let odd = exists && after.is_none();
    if added.is_empty() && !odd {
        // What git runs is what it was: the session's other changes stay.
        return;
    }
    for (key, value) in &added {
        r.found.push(format!(
            "{} = {} was added to {} during the session",
            shown(key),
            shown(value),
            shown_path(file)
        ));
    }
    if odd {
        r.found.push(format!(
            "{} was replaced during the session by something that is not a config file",
            shown_path(file)
        ));
    }
    quarantine(c, r, file, "the changed config");
    if let Some(before) = before {
        match write_new(file, before) {
            Ok(()) => r.found.push(format!(
                "  put {} back as it was when the session started",
                shown_path(file)
            )),
            Err(e) => r.found.push(format!(
                "  could not put {} back ({e}): restore it before you use git",
                shown_path(file)
            )),
        }
    }
}
