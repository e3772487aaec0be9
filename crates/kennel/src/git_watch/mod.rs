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
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kennel_policy::{read_small, shown, shown_path, Context, GitDirs};
use nix::sys::signal::{SigSet, SigmaskHow};

mod check;
mod quarantine;
mod walk;

use check::{check, Check, Outcome};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
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

/// Before a session, first of all (with the launch note): the checks of earlier sessions in
/// this workspace whose kennel was killed, and what the nested repositories the last check
/// found run (the launch note itself does not walk the workspace: that would cost every
/// start). Nothing for a dry run, which runs nothing.
pub fn before_session(ctx: &Context, dry_run: bool) {
    if dry_run {
        return;
    }
    let state = state_home(ctx);
    for line in check_killed_sessions(ctx, state.as_deref()) {
        eprintln!("kennel: {line}");
    }
    for found in nested_notes(ctx, state.as_deref()) {
        let value = if found.value.is_empty() {
            String::new()
        } else {
            format!(" = {}", shown(&found.value))
        };
        eprintln!(
            "kennel: note: {}{value} ({}, a nested repository) runs a command when git works \
             in it (`git status` of this repository does, once it is staged)",
            shown(&found.what),
            shown_path(&found.file)
        );
    }
}

/// Where the nested repositories the last check of this workspace found are listed.
fn nested_list(ctx: &Context, state_home: Option<&Path>) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let dir = records_dir(ctx, state_home)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ctx.workspace.root.hash(&mut h);
    Some(dir.join(format!("nested-{:016x}", h.finish())))
}

/// What the nested repositories listed by the last check run (those still in the workspace).
fn nested_notes(ctx: &Context, state_home: Option<&Path>) -> Vec<kennel_policy::GitRunsCommand> {
    let mut found = Vec::new();
    let Some(bytes) = nested_list(ctx, state_home).and_then(|f| read_small(&f, 1 << 20).ok())
    else {
        return found;
    };
    let mut lines = bytes.split(|b| *b == b'\n');
    let root = ctx.workspace.root.as_os_str().as_encoded_bytes();
    if lines.next() != Some(root) {
        return found;
    }
    for line in lines.filter(|l| !l.is_empty()).take(1000) {
        let dir =
            PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(line));
        if !dir.starts_with(&ctx.workspace.root) || !dir.is_dir() {
            continue;
        }
        if let Some(text) = kennel_policy::read_config(&dir.join("config")) {
            for (what, value) in kennel_policy::command_settings(&text) {
                found.push(kennel_policy::GitRunsCommand {
                    file: dir.join("config"),
                    what,
                    value,
                });
            }
        }
        kennel_policy::hooks_in(&dir.join("hooks"), &mut found);
    }
    found
}

/// Lists the nested repositories a check found, for the next launch note.
fn write_nested_list(file: &Path, root: &Path, nested: &[PathBuf]) {
    if nested.is_empty() {
        let _ = fs::remove_file(file);
        return;
    }
    let mut text = root.as_os_str().as_encoded_bytes().to_vec();
    for dir in nested {
        text.push(b'\n');
        text.extend_from_slice(dir.as_os_str().as_encoded_bytes());
    }
    // Usually the same as last time: a read costs less than a new file and a rename.
    if read_small(file, 1 << 20).is_ok_and(|old| old == text) {
        return;
    }
    let tmp = file.with_extension("new");
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&text))
        .and_then(|()| fs::rename(&tmp, file));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

/// Just before a session: its watch.
pub fn begin(ctx: &Context, dry_run: bool) -> Option<GitWatch> {
    if dry_run {
        return None;
    }
    GitWatch::start(ctx, state_home(ctx).as_deref())
}

/// `$XDG_STATE_HOME`, when set to an absolute path. A relative one is invalid (the XDG base
/// directory specification says to ignore it), and could name a folder of the workspace,
/// where the sandbox writes.
fn state_home(ctx: &Context) -> Option<PathBuf> {
    ctx.var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// After a session, before kennel returns: the end check, printed.
pub fn end(watch: Option<GitWatch>) {
    if let Some(watch) = watch {
        let lines = watch.finish();
        if !lines.is_empty() {
            kennel_native::plain_attributes();
        }
        for line in lines {
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
    /// Where the nested repositories found at the end are listed for the next launch note.
    nested_list: Option<PathBuf>,
    /// The work tree being listed during the session, for the end check to list only what
    /// changed: a flag that stops it, and its thread.
    survey: Option<(Arc<AtomicBool>, thread::JoinHandle<walk::Survey>)>,
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
        let record = records_dir(ctx, state_home).and_then(|d| write_record(&d, &root, start));
        let nested_list = nested_list(ctx, state_home);
        Some(GitWatch {
            root,
            git,
            home: ctx.home.clone(),
            start,
            dot_git,
            configs,
            record,
            nested_list,
            survey: None,
        })
    }

    /// Lists the work tree on a thread of its own while the session runs (see
    /// [`walk::Survey`]): called once the command is about to start, so that it takes the
    /// core kennel's own thread leaves while it waits.
    ///
    /// The thread starts with every signal blocked: kennel takes the signals it forwards to
    /// the command from a descriptor (signalfd), which sees only those no thread takes, and
    /// one that ends kennel must end it only while the command has not started.
    pub fn survey(&mut self) {
        if self.survey.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (root, start, flag) = (self.root.clone(), self.start, Arc::clone(&stop));
        let Ok(mask) = SigSet::all().thread_swap_mask(SigmaskHow::SIG_BLOCK) else {
            return;
        };
        let spawned = thread::Builder::new()
            .name("kennel-survey".into())
            .spawn(move || walk::survey(&root, start, &flag));
        let _ = mask.thread_set_mask();
        self.survey = spawned.ok().map(|handle| (stop, handle));
    }

    /// Ends the survey's thread, if one runs, and forgets what it listed: a later
    /// [`GitWatch::survey`] starts it again. For a fork that needs kennel single-threaded.
    pub fn stop_survey(&mut self) {
        if let Some((stop, handle)) = self.survey.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }

    /// The end check: lines for the user (each to be printed after `kennel: `), empty when
    /// git would run nothing new.
    pub fn finish(self) -> Vec<String> {
        let survey = self.survey.and_then(|(stop, handle)| {
            stop.store(true, Ordering::Relaxed);
            handle.join().ok()
        });
        let Outcome { lines, nested } = check(&Check {
            root: &self.root,
            git: &self.git,
            home: &self.home,
            start: self.start,
            dot_git: self.dot_git,
            configs: &self.configs,
            survey: survey.as_ref(),
        });
        let mut lines = lines;
        // The files the repository's hook manager runs from (pre-commit, lefthook): read-only
        // where the backend can make them so; where it cannot (landlock), a change the
        // session made is named before the user's next commit runs it.
        let hooks_dirs =
            kennel_policy::GitSurface::read(&self.root, &self.git, &self.home).hooks_dirs;
        for file in kennel_policy::hook_manager_files(&self.root, &self.git, &hooks_dirs) {
            let changed = fs::symlink_metadata(&file).is_ok_and(|m| Stamp::of(&m) >= self.start);
            if changed {
                let rel = file.strip_prefix(&self.root).unwrap_or(&file);
                lines.push(format!(
                    "warning: {} changed in this session, and your git hooks run what it lists \
                     at your next commit: look at `git diff -- {}` first",
                    kennel_policy::shown_path(&file),
                    quarantine::sh_quoted(rel),
                ));
            }
        }
        if let Some(file) = &self.nested_list {
            write_nested_list(file, &self.root, &nested);
        }
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
    let Some(dir) = records_dir(ctx, state_home) else {
        return Vec::new();
    };
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
            survey: None,
        })
        .lines;
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

/// Where session records are kept; never in the workspace, where the sandbox could write
/// one (a folder of kennel's state inside the workspace gets none: no killed-session check).
fn records_dir(ctx: &Context, state_home: Option<&Path>) -> Option<PathBuf> {
    let dir = state_home
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ctx.home.join(".local/state"))
        .join("kennel/sessions");
    (!dir.starts_with(&ctx.workspace.root)).then_some(dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Stamp {
        Stamp::from_time(SystemTime::now())
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let start = Stamp(now().0 - 1_000_000_000);
        let path = write_record(dir.path(), Path::new("/w/a b"), start).unwrap();
        let record = Record::read(&path).unwrap();
        assert_eq!(record.pid, std::process::id());
        assert_eq!(record.start, start);
        assert_eq!(record.workspace, Path::new("/w/a b"));
    }

    /// A record claiming a start long before it was written was not written by kennel at
    /// that start: believing it would make kennel move what the user changed since.
    #[test]
    fn a_record_claiming_an_older_start_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let start = Stamp(now().0 - 3600 * 1_000_000_000);
        let path = write_record(dir.path(), Path::new("/w"), start).unwrap();
        assert!(Record::read(&path).is_none());
    }
}
