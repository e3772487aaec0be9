//! What the user's git would run, checked when the sandbox ends (issue 16).
//!
//! Mounts keep `.git/config` and the hooks read-only on the native backend, but a sandbox
//! can still create what git reads that did not exist at start (a `commondir`, a nested
//! repository with its own `core.fsmonitor`, a hook in a `core.hooksPath` folder), and the
//! landlock backend cannot make a folder of the workspace read-only at all. So once the
//! command has ended, before kennel returns to the user's shell, kennel walks the workspace
//! and looks at everything git reads to decide what to run: every git directory (the
//! repository's, nested repositories', submodules', linked worktrees'), their configs and
//! pointer files, hooks folders, `info/attributes`, `.git` files and links, and the configs
//! they include. What the session changed is told by its ctime: the kernel sets it on every
//! change and an unprivileged process cannot set it back, so "ctime at or after the start"
//! marks what the session touched, at no cost at start.
//!
//! What the session changed and would make git run a command or look elsewhere is moved
//! into a quarantine folder (`kennel-quarantine/` in the repository's git directory, where
//! git never looks), and each move is printed with the way back. A repository config that
//! existed at start is put back as it was (the changed one is kept in the quarantine). The
//! walk is bounded; when it cannot look everywhere, kennel says so instead of staying quiet.
//!
//! A session whose kennel was killed never reaches this check: a small record of each
//! session (its start time and workspace) is kept in kennel's state folder and removed when
//! the check ran; the next session in the same workspace finds a record whose kennel is
//! gone and runs the check for it first.

use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kennel_policy::{
    command_settings, module_git_dirs, parse_gitfile, read_config, read_small, shown, shown_path,
    Context, GitDirs, GitSurface,
};

/// How many entries of the workspace the end check looks at before it gives up (and says so).
const MAX_ENTRIES: usize = 2_000_000;
/// How deep it goes.
const MAX_DEPTH: usize = 64;
/// The kernel stamps ctime from a clock that may lag the one kennel reads by a tick: a
/// change made just after the start must not look older than it.
const CLOCK_MARGIN: Duration = Duration::from_secs(1);
/// The largest config file kennel reads (and keeps a copy of).
const CONFIG_LIMIT: u64 = 1 << 20;
/// The folder of the repository's git directory that holds what kennel moved away.
pub const QUARANTINE: &str = "kennel-quarantine";

/// A nanosecond timestamp, as ctime is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp(i128);

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp(i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()))
    }

    fn from_time(t: SystemTime) -> Stamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Stamp(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX)),
            Err(e) => Stamp(-i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX)),
        }
    }
}

/// Before a session: the checks of earlier sessions here whose kennel was killed, printed,
/// then this session's watch (none for a dry run, which runs nothing).
pub fn begin(ctx: &Context, dry_run: bool) -> Option<GitWatch> {
    if dry_run {
        return None;
    }
    let state = ctx.var("XDG_STATE_HOME").map(PathBuf::from);
    for line in check_killed_sessions(ctx, state.as_deref()) {
        eprintln!("kennel: {line}");
    }
    GitWatch::start(ctx, state.as_deref())
}

/// After a session, before kennel returns: the end check, printed.
pub fn end(watch: Option<GitWatch>) {
    if let Some(watch) = watch {
        for line in watch.finish() {
            eprintln!("kennel: {line}");
        }
    }
}

/// One session's watch: what the end check compares with.
pub struct GitWatch {
    root: PathBuf,
    git: GitDirs,
    home: PathBuf,
    start: Stamp,
    /// The workspace's `.git` folder at start (device, inode): it must be the same at the end.
    dot_git: Option<(u64, u64)>,
    /// The repository's configs as they were at start, to put back if the session changed
    /// what they run (a killed session's check has none).
    configs: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// The record that lets the next session check this one if kennel is killed.
    record: Option<PathBuf>,
}

impl GitWatch {
    /// Starts watching the workspace's repository: a clock read, one `stat` of `.git`, the
    /// repository's config (already in the page cache: the launch note read it) and a small
    /// record in kennel's state folder.
    pub fn start(ctx: &Context, state_home: Option<&Path>) -> Option<GitWatch> {
        let git = git_dirs_of(ctx);
        let start = Stamp::from_time(SystemTime::now().checked_sub(CLOCK_MARGIN)?);
        let root = ctx.workspace.root.clone();
        let dot_git = fs::symlink_metadata(root.join(".git"))
            .ok()
            .filter(fs::Metadata::is_dir)
            .map(|m| (m.dev(), m.ino()));
        // `config.worktree` is read when `extensions.worktreeConfig` is set: usually absent,
        // so this is one failed open.
        let configs = [
            git.common_dir.join("config"),
            git.git_dir.join("config.worktree"),
        ]
        .into_iter()
        .map(|file| {
            let bytes = read_small(&file, CONFIG_LIMIT).ok();
            (file, bytes)
        })
        .collect();
        let record = write_record(&records_dir(ctx, state_home), &root, start);
        Some(GitWatch {
            root,
            git,
            home: ctx.home.clone(),
            start,
            dot_git,
            configs,
            record,
        })
    }

    /// The end check: lines for the user (each to be printed after `kennel: `), empty when
    /// git would run nothing new.
    pub fn finish(self) -> Vec<String> {
        let lines = check(&Check {
            root: &self.root,
            git: &self.git,
            home: &self.home,
            start: self.start,
            dot_git: self.dot_git,
            configs: &self.configs,
        });
        if let Some(record) = &self.record {
            let _ = fs::remove_file(record);
        }
        lines
    }
}

/// The workspace's git dirs; outside a repository, the `.git` a session could create in
/// the workspace (where the user's git would find it later).
fn git_dirs_of(ctx: &Context) -> GitDirs {
    ctx.workspace.git.clone().unwrap_or_else(|| GitDirs {
        git_dir: ctx.workspace.root.join(".git"),
        common_dir: ctx.workspace.root.join(".git"),
    })
}

/// Records of sessions in this workspace whose kennel is gone: their checks, run now.
pub fn check_killed_sessions(ctx: &Context, state_home: Option<&Path>) -> Vec<String> {
    let git = &git_dirs_of(ctx);
    let dir = records_dir(ctx, state_home);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(record) = Record::read(&path) else {
            continue;
        };
        if record.workspace != ctx.workspace.root
            || Path::new("/proc").join(record.pid.to_string()).exists()
        {
            continue;
        }
        let found = check(&Check {
            root: &ctx.workspace.root,
            git,
            home: &ctx.home,
            start: record.start,
            dot_git: None,
            configs: &[],
        });
        if !found.is_empty() {
            lines.push(
                "an earlier session in this workspace ended without kennel's check (its kennel \
                 was killed); checking what it left for git now:"
                    .to_string(),
            );
            lines.extend(found);
        }
        let _ = fs::remove_file(&path);
    }
    lines
}

fn records_dir(ctx: &Context, state_home: Option<&Path>) -> PathBuf {
    state_home
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.home.join(".local/state"))
        .join("kennel/sessions")
}

/// A session's record: `pid`, start in nanoseconds, workspace path, one per line.
struct Record {
    pid: u32,
    start: Stamp,
    workspace: PathBuf,
}

impl Record {
    fn read(path: &Path) -> Option<Record> {
        let meta = fs::symlink_metadata(path).ok()?;
        if !meta.is_file() || meta.len() > 8192 || meta.uid() != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let bytes = read_small(path, 8192).ok()?;
        let mut parts = bytes.splitn(3, |b| *b == b'\n');
        let pid = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let start: i128 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let workspace = std::os::unix::ffi::OsStrExt::from_bytes(parts.next()?);
        let workspace: &std::ffi::OsStr = workspace;
        // The record was written at the start it names: a record claiming an older start
        // (written by anything but kennel) would make kennel move the user's own files.
        let written = Stamp::of(&meta);
        let margin = 10 * 1_000_000_000;
        if written.0 < start || written.0 - start > margin {
            return None;
        }
        Some(Record {
            pid,
            start: Stamp(start),
            workspace: PathBuf::from(workspace),
        })
    }
}

fn write_record(dir: &Path, workspace: &Path, start: Stamp) -> Option<PathBuf> {
    fs::create_dir_all(dir).ok()?;
    let path = dir.join(format!("{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .ok()?;
    let mut text = format!("{}\n{}\n", std::process::id(), start.0).into_bytes();
    text.extend_from_slice(workspace.as_os_str().as_encoded_bytes());
    file.write_all(&text).ok()?;
    Some(path)
}

struct Check<'a> {
    root: &'a Path,
    git: &'a GitDirs,
    home: &'a Path,
    start: Stamp,
    dot_git: Option<(u64, u64)>,
    configs: &'a [(PathBuf, Option<Vec<u8>>)],
}

/// What the check found and did, for the user.
#[derive(Default)]
struct Report {
    found: Vec<String>,
    /// A place the walk could not look into.
    blind: Vec<String>,
    quarantine: Option<PathBuf>,
    /// The repository's `.git` is not the one the session started with: nothing is moved
    /// into it.
    no_moves: bool,
}

fn check(c: &Check) -> Vec<String> {
    let mut r = Report::default();
    let changed = |path: &Path| fs::symlink_metadata(path).is_ok_and(|m| Stamp::of(&m) >= c.start);
    let walk = walk(c.root, c.dot_git, c.start);
    r.blind.extend(walk.blind.iter().cloned());

    // The workspace's `.git` itself, replaced.
    let dot_git = c.root.join(".git");
    if let Some((dev, ino)) = c.dot_git {
        let now = fs::symlink_metadata(&dot_git)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if now != Some((dev, ino)) {
            r.found.push(format!(
                "the repository's .git folder was replaced during the session{}",
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
            Err(_) => continue,
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
    lines
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
             (`git config --file '{}' --list`) and remove what you did not set, before you use \
             git",
            shown_path(file)
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

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)
}

/// This check's own folder in a quarantine, created here: named after the time and
/// kennel's process, and new (`mkdir` fails on anything already there, a link included), in
/// a `kennel-quarantine` that is a real folder, never a link the sandbox left to send what
/// kennel moves somewhere else.
fn make_quarantine(base: &Path) -> std::io::Result<PathBuf> {
    match fs::symlink_metadata(base) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} is not a folder", shown_path(base)),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(base)?,
        Err(e) => return Err(e),
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let folder = base.join(format!("{stamp}-{}", std::process::id()));
    fs::create_dir(&folder)?;
    Ok(folder)
}

/// Moves `path` into the quarantine, keeping its path below it, and says so.
fn quarantine(c: &Check, r: &mut Report, path: &Path, what: &str) {
    if r.no_moves {
        r.found.push(format!(
            "  remove {} yourself before you use git (kennel moves nothing while the \
             repository's .git is not the one it started with)",
            shown_path(path)
        ));
        return;
    }
    let folder = match &r.quarantine {
        Some(q) => Ok(q.clone()),
        None => make_quarantine(&c.git.common_dir.join(QUARANTINE)),
    };
    let folder = match folder {
        Ok(q) => {
            r.quarantine = Some(q.clone());
            q
        }
        Err(e) => {
            r.found.push(format!(
                "  could not make a quarantine folder in {} ({e}): remove {} yourself before \
                 you use git",
                shown_path(&c.git.common_dir),
                shown_path(path)
            ));
            return;
        }
    };
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let dest = folder.join(rel);
    let moved = dest
        .parent()
        .map_or(Ok(()), fs::create_dir_all)
        .and_then(|()| fs::rename(path, &dest));
    match moved {
        Ok(()) => r.found.push(format!(
            "  moved {what} to {} (to undo: mv '{}' '{}')",
            shown_path(&dest),
            shown_path(&dest),
            shown_path(path)
        )),
        Err(e) => r.found.push(format!(
            "  could not move {what} {} away ({e}): remove it yourself before you use git",
            shown_path(path)
        )),
    }
}

/// What the walk of the work tree found.
#[derive(Default)]
struct Walk {
    /// Each `.git`, and whether a folder above it (below the workspace's top) changed
    /// during the session: a repository that may have arrived whole, its files older than
    /// the session (moved in from a place the check does not look).
    dot_gits: Vec<(PathBuf, bool)>,
    original_dot_git: Option<PathBuf>,
    blind: Vec<String>,
}

/// Every `.git` (folder, file or link) in the work tree, without entering git directories
/// or following links; bounded, and each place it could not read is named.
///
/// Each folder is opened relative to its parent's descriptor and listed into a reused
/// buffer: the kernel's work (open, getdents, close) is then all there is, about 3 µs a
/// folder, where listing by path cost half as much again (bench/README.md).
fn walk(root: &Path, dot_git: Option<(u64, u64)>, start: Stamp) -> Walk {
    let mut w = Walk::default();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::open(root, flags, Mode::empty()) {
        Ok(fd) => {
            let mut path = root.to_path_buf();
            let mut state = WalkState {
                dot_git,
                start,
                seen: 0,
                bufs: Vec::new(),
            };
            walk_dir(&fd, &mut path, 0, false, &mut state, &mut w);
        }
        Err(e) => w.blind.push(format!(
            "cannot read {}: {}",
            shown_path(root),
            std::io::Error::from(e)
        )),
    }
    w
}

use rustix::fs::{FileType, Mode, OFlags};

/// What [`walk_dir`] carries from folder to folder.
struct WalkState {
    dot_git: Option<(u64, u64)>,
    start: Stamp,
    seen: usize,
    /// Listing buffers of the levels below, reused.
    bufs: Vec<Vec<std::mem::MaybeUninit<u8>>>,
}

/// One folder of [`walk`]: `path` is its path (restored on return); `fresh` whether it or
/// a folder above it (the top aside) changed during the session.
fn walk_dir(
    fd: &rustix::fd::OwnedFd,
    path: &mut PathBuf,
    depth: usize,
    fresh: bool,
    st: &mut WalkState,
    w: &mut Walk,
) {
    let dot_git = st.dot_git;
    let fresh = fresh
        || (depth > 0
            && rustix::fs::fstat(fd).is_ok_and(|m| {
                Stamp(i128::from(m.st_ctime) * 1_000_000_000 + i128::from(m.st_ctime_nsec))
                    >= st.start
            }));
    let mut buf = st
        .bufs
        .pop()
        .unwrap_or_else(|| vec![std::mem::MaybeUninit::uninit(); 16 * 1024]);
    let mut subdirs: Vec<std::ffi::OsString> = Vec::new();
    {
        let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
        while let Some(entry) = dir.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    w.blind.push(format!(
                        "cannot list {}: {}",
                        shown_path(path),
                        std::io::Error::from(e)
                    ));
                    break;
                }
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            st.seen += 1;
            if st.seen > MAX_ENTRIES {
                if !w.blind.iter().any(|b| b.contains("entries")) {
                    w.blind.push(format!(
                        "the work tree has more than {MAX_ENTRIES} entries; kennel stopped \
                         looking"
                    ));
                }
                break;
            }
            let name = std::ffi::OsStr::from_bytes(name);
            if name == ".git" {
                w.dot_gits.push((path.join(name), fresh));
                continue;
            }
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                kind = rustix::fs::statat(
                    fd,
                    entry.file_name(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode));
            }
            if kind != FileType::Directory {
                continue;
            }
            if let Some((dev, ino)) = dot_git {
                if entry.ino() == ino
                    && rustix::fs::statat(
                        fd,
                        entry.file_name(),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .is_ok_and(|st| st.st_dev == dev)
                {
                    // The workspace's own `.git`, moved: a git directory, not work tree.
                    w.original_dot_git = Some(path.join(name));
                    continue;
                }
            }
            subdirs.push(name.to_os_string());
        }
    }
    st.bufs.push(buf);
    for name in subdirs {
        if st.seen > MAX_ENTRIES {
            return;
        }
        path.push(&name);
        if depth + 1 > MAX_DEPTH {
            w.blind.push(format!(
                "{} is more than {MAX_DEPTH} folders deep",
                shown_path(path)
            ));
        } else {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(fd, name.as_os_str(), flags, Mode::empty()) {
                Ok(child) => walk_dir(&child, path, depth + 1, fresh, st, w),
                Err(e) => w.blind.push(format!(
                    "cannot read {}: {}",
                    shown_path(path),
                    std::io::Error::from(e)
                )),
            }
        }
        path.pop();
    }
}
