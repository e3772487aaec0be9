//! The sandbox's own home, whose writes are listed at exit, never dropped silently; or, with
//! `home = "persistent"`, kept for the workspace.
//!
//! On the native backend the ephemeral home is a tmpfs of the sandbox's (bounded by
//! `tmpfs-size`): nothing is made on the host's disk to start it or removed to end it. The
//! sandbox hands kennel a descriptor of it, through which the files are copied back and the
//! rest listed once the sandbox is gone; dropping that descriptor frees it. A kennel killed
//! by SIGKILL takes it along: nothing is left behind, and what was written there is gone.
//!
//! The other backends cannot hand one over: their ephemeral home is a private host
//! directory bound as the home.
//! The ephemeral one is created 0700 in a private folder of the user's in the temporary
//! folder (`$TMPDIR/kennel-UID`, else `/tmp/kennel-UID`) and removed after the listing;
//! only kennel's own directory is ever removed. Not under
//! `$XDG_RUNTIME_DIR`: that is a small tmpfs (10% of memory by default) that the user's
//! session needs, and a tool filling the sandbox's home must not break the desktop.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kennel_policy::{shown_path, Access, HomeMode, Policy};
use nix::fcntl::{Flock, FlockArg};
use rustix::fd::OwnedFd;
use rustix::fs::{chmodat, openat, statat, AtFlags, Dir, FileType, Mode, OFlags};

use crate::files::ReadError;

mod suggest;

/// How many files the exit report names.
const SHOWN: usize = 5;
/// The listing at exit is bounded, like every walk kennel makes.
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 10_000;
/// The largest file copied into the sandbox's home or back out of it.
const MAX_COPIED: u64 = 64 << 20;

pub struct SandboxHome {
    /// The home's folder on the host (none for a home in memory).
    dir: PathBuf,
    /// In memory: the descriptor of the sandbox's home, once received.
    memory: Option<Option<std::os::fd::OwnedFd>>,
    /// Held while the sandbox runs: an ephemeral home nobody holds is one that an earlier
    /// kennel, killed, left behind (see [`stale_homes`]).
    _lock: Option<Flock<File>>,
    /// Removed on drop.
    ephemeral: bool,
    mode: HomeMode,
    /// The copied-in files, to copy back only what changed.
    copied: Vec<Copied>,
}

/// A file of the user's copied into the sandbox's home at the start (`copy-back`).
struct Copied {
    /// The user's file, as the policy names it (it may be a link of the user's).
    real: PathBuf,
    /// Its place in the sandbox's home.
    rel: PathBuf,
    /// What it held when it was copied in: copied back only when the sandbox changed it,
    /// and only when nobody else did meanwhile.
    original: Original,
}

#[derive(PartialEq, Eq)]
enum Original {
    Absent,
    Bytes(Vec<u8>),
    /// Not a file kennel copies (too large, a FIFO, unreadable): not copied back either.
    NotCopied,
}

impl Original {
    fn from_read(read: Result<Vec<u8>, ReadError>) -> Result<Original, ReadError> {
        match read {
            Ok(bytes) => Ok(Original::Bytes(bytes)),
            Err(ReadError::NotFound) => Ok(Original::Absent),
            Err(e) => Err(e),
        }
    }
}

/// Where the sandbox's home lives on the host: `state_home` is `$XDG_STATE_HOME` (for a
/// persistent home), `temp` the temporary folder (for an ephemeral one).
/// With `in_memory` (the native backend), an ephemeral home is a tmpfs of the sandbox's:
/// the files to copy in are then given by [`SandboxHome::memory_files`].
pub fn prepare(
    policy: &mut Policy,
    state_home: Option<PathBuf>,
    temp: PathBuf,
    in_memory: bool,
) -> io::Result<Option<SandboxHome>> {
    let home_is_tmpfs = policy
        .paths
        .iter()
        .any(|r| r.path == policy.home && r.access == Access::Tmpfs);
    if !home_is_tmpfs {
        return Ok(None);
    }
    if in_memory && policy.home_mode == HomeMode::Ephemeral {
        let mut home = SandboxHome {
            dir: PathBuf::new(),
            memory: Some(None),
            _lock: None,
            ephemeral: true,
            mode: policy.home_mode,
            copied: Vec::new(),
        };
        for c in &policy.copy_back {
            let Ok(rel) = c.path.strip_prefix(&policy.home) else {
                continue;
            };
            home.copied.push(Copied {
                real: c.path.clone(),
                rel: rel.to_path_buf(),
                original: read_to_copy_in(&c.path),
            });
        }
        return Ok(Some(home));
    }
    let (dir, temp_dir) = match policy.home_mode {
        HomeMode::Ephemeral => {
            let base = homes_dir(&temp, policy.uid);
            let base = match own_private_dir(&base, policy.uid) {
                Ok(()) => base,
                // Someone else's folder in its place: the home goes in the temporary folder
                // itself, as safe (a new private directory) but not found again if left.
                Err(e) => {
                    eprintln!(
                        "kennel: notice: {e}; the sandbox's home goes directly in {}",
                        temp.display()
                    );
                    temp
                }
            };
            let (dir, held) = new_ephemeral_home(&base)?;
            (dir, Some(held))
        }
        HomeMode::Persistent => {
            let state = state_home
                .filter(|d| d.is_absolute())
                .unwrap_or_else(|| policy.home.join(".local/state"));
            let dir = state
                .join("kennel/homes")
                .join(workspace_key(&policy.workspace));
            private_dir(&dir)?;
            (dir, None)
        }
    };
    let ephemeral = temp_dir.is_some();
    let mut home = SandboxHome {
        dir,
        memory: None,
        _lock: temp_dir,
        ephemeral,
        mode: policy.home_mode,
        copied: Vec::new(),
    };
    let root = crate::files::open_dir(&home.dir)
        .map_err(|e| io::Error::other(format!("cannot open {}: {e}", shown_path(&home.dir))))?;
    for c in &policy.copy_back {
        let Ok(rel) = c.path.strip_prefix(&policy.home) else {
            continue;
        };
        let original = read_to_copy_in(&c.path);
        if let Original::Bytes(bytes) = &original {
            // Into the kept home, the sandbox may have left a link, a dangling link or a
            // FIFO at this name at an earlier run: replaced, never written through.
            crate::files::write_below(&root, rel, bytes).map_err(|e| {
                io::Error::other(format!(
                    "cannot copy {} into the sandbox's home {}: {e}",
                    shown_path(&c.path),
                    shown_path(&home.dir)
                ))
            })?;
        }
        home.copied.push(Copied {
            real: c.path.clone(),
            rel: rel.to_path_buf(),
            original,
        });
    }
    policy.home_source = Some(home.dir.clone());
    Ok(Some(home))
}

/// A file of the user's to copy into the sandbox's home, read now (never following a link
/// to a FIFO or a device, bounded): its bytes, absent, or not copied (said why).
fn read_to_copy_in(real: &Path) -> Original {
    match crate::files::read_users_file(real, MAX_COPIED) {
        Ok(bytes) => Original::Bytes(bytes),
        Err(ReadError::NotFound) => Original::Absent,
        Err(e) => {
            eprintln!(
                "kennel: warning: {} is not copied into the sandbox, nor back at exit: {e}",
                shown_path(real)
            );
            Original::NotCopied
        }
    }
}

const EPHEMERAL_PREFIX: &str = "kennel-home-";
/// A home being made: not yet locked, so not yet named as a home (see [`new_ephemeral_home`]).
const NEW_PREFIX: &str = ".kennel-new-";

/// Makes a new ephemeral home in `base` and locks it. It is made under a name that
/// [`stale_homes`] does not look at, locked, and only then renamed to its home's name
/// (without replacing anything): a kennel starting at the same moment never takes a home
/// that a living kennel has made but not yet locked for one left by a killed kennel.
fn new_ephemeral_home(base: &Path) -> io::Result<(PathBuf, Flock<File>)> {
    let made = tempfile::Builder::new()
        .prefix(NEW_PREFIX)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(base)?;
    let held = lock(made.path(), FlockArg::LockExclusiveNonblock)?;
    let suffix = made
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(NEW_PREFIX))
        .unwrap_or_default()
        .to_string();
    let dir = base.join(format!("{EPHEMERAL_PREFIX}{suffix}"));
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        made.path(),
        nix::fcntl::AT_FDCWD,
        &dir,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(io::Error::from)?;
    // Renamed: the folder is ours to remove now (SandboxHome's drop), not `made`'s.
    let _ = made.keep();
    Ok((dir, held))
}

/// The folder of `uid`'s ephemeral homes in `temp`: kennel's own, so that looking for homes
/// left behind reads a few entries at each start, not the whole temporary folder.
pub fn homes_dir(temp: &Path, uid: u32) -> PathBuf {
    temp.join(format!("kennel-{uid}"))
}

/// Creates `dir` private to `uid`, or checks that the one already there is: a directory
/// (not a link) of `uid` that nobody else may enter.
fn own_private_dir(dir: &Path, uid: u32) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = fs::symlink_metadata(dir)?;
    if meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} is not a private folder of yours (made by another user?)",
        dir.display()
    )))
}

fn lock(dir: &Path, how: FlockArg) -> io::Result<Flock<File>> {
    let file = File::open(dir)?;
    Flock::lock(file, how).map_err(|(_, errno)| io::Error::from(errno))
}

/// Ephemeral homes of `uid` (in its folder in `temp`) that no running kennel holds: left
/// behind by a kennel that was killed before it could list and remove them. They are
/// reported, never removed: they hold what the command wrote. Newest first.
pub fn stale_homes(temp: &Path, uid: u32) -> Vec<PathBuf> {
    let dir = homes_dir(temp, uid);
    let ours = fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir() && m.uid() == uid);
    let Some(entries) = ours.then(|| fs::read_dir(&dir).ok()).flatten() else {
        return Vec::new();
    };
    let mut stale: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(EPHEMERAL_PREFIX)
        })
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_dir() && !m.file_type().is_symlink() && m.uid() == uid)
        })
        .map(|e| e.path())
        .filter(|p| lock(p, FlockArg::LockSharedNonblock).is_ok())
        .collect();
    // Newest first: the one the user just lost is the one to name.
    stale.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).and_then(|m| m.modified()).ok()));
    stale
}

/// kennel's private folder of `uid` in `temp` (`kennel-UID`), made when missing; None when
/// something else is in its place (another user's folder, a link): then nothing goes there.
pub fn scratch_dir(temp: &Path, uid: u32) -> Option<PathBuf> {
    let dir = homes_dir(temp, uid);
    own_private_dir(&dir, uid).ok().map(|()| dir)
}

/// Removes the network sessions' and the landlock backend's temporary folders that killed
/// kennels left in kennel's private folder (`kennel-net-PID-*`, `kennel-tmp-PID-*`, whose
/// PID is gone). They hold a socket and a scratch `/tmp`, nothing the user keeps.
pub fn remove_left_scratch(scratch: &Path) {
    let Ok(entries) = fs::read_dir(scratch) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| {
            n.strip_prefix("kennel-net-")
                .or_else(|| n.strip_prefix("kennel-tmp-"))
        }) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// `kennel homes`: the homes that killed kennels left (see [`stale_homes`]), one line each
/// with what it holds; with `remove`, each is removed while kennel holds its lock (a kennel
/// that started meanwhile and took it is left alone).
pub fn left_homes(temp: &Path, uid: u32, remove: bool) -> Vec<String> {
    let stale = stale_homes(temp, uid);
    if stale.is_empty() {
        return vec!["no home of a killed sandbox is left".into()];
    }
    let mut lines = Vec::new();
    for dir in stale {
        let mut files = 0;
        let mut budget = MAX_ENTRIES;
        walk_counting(&dir, 0, &mut budget, &mut files);
        let what = if budget == 0 {
            format!("at least {files} files")
        } else {
            format!("{files} files")
        };
        if !remove {
            lines.push(format!("{}  ({what})", shown_path(&dir)));
            continue;
        }
        let Ok(_held) = lock(&dir, FlockArg::LockExclusiveNonblock) else {
            lines.push(format!("{}: in use now, left alone", shown_path(&dir)));
            continue;
        };
        match remove_tree(&dir) {
            Ok(()) => lines.push(format!("removed {} ({what})", shown_path(&dir))),
            Err(e) => lines.push(format!("cannot remove {}: {e}", shown_path(&dir))),
        }
    }
    if !remove {
        lines.push("remove them with `kennel homes --remove`".into());
    }
    lines
}

/// Counts the files below `dir` until `budget` entries were seen, 64 folders deep at most
/// (a bound on the recursion); `budget` left at 0 means there were more.
fn walk_counting(dir: &Path, depth: usize, budget: &mut usize, files: &mut usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth < 64 => {
                walk_counting(&entry.path(), depth + 1, budget, files)
            }
            Ok(t) if t.is_dir() => *budget = 0,
            _ => *files += 1,
        }
    }
}

/// A persistent home's folder, and the folders above it, private to the user.
fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// `NAME-HASH` of the workspace: readable, and distinct for two folders of the same name.
fn workspace_key(workspace: &Path) -> String {
    // FNV-1a: stable across Rust versions, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in workspace.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let name = workspace
        .file_name()
        .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned());
    format!("{name}-{hash:016x}")
}

impl Drop for SandboxHome {
    /// Removes an ephemeral home (while still holding its lock). A folder the command made
    /// unreadable (`chmod 000`) beyond what the listing opened is made readable first; a home
    /// that still cannot be removed is named, never left silently. A home in memory goes
    /// with its descriptor.
    fn drop(&mut self) {
        if !self.ephemeral || self.memory.is_some() {
            return;
        }
        let dir = self.dir.clone();
        if let Err(e) = remove_tree(&dir) {
            eprintln!(
                "kennel: cannot remove the sandbox's home {}: {e}; look, then remove it",
                shown_path(&dir)
            );
        }
    }
}

/// Removes `dir` (kennel's own folder) and everything in it, following no link, with at
/// most [`REMOVE_DEPTH`] folders open at once: the sandbox may have left a chain of
/// thousands of nested folders, and a removal that holds a descriptor per level (the
/// standard library's) fails with EMFILE. Folders deeper than that are moved up to `dir`
/// itself and removed on the next pass; folders made unreadable are made readable first.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = openat(CWD, dir, flags, Mode::empty())?;
    let mut moved = 0u64;
    // Each pass empties what it can reach and moves up what lies deeper.
    for _ in 0..10_000 {
        if empty_below(&root, &root, 0, &mut moved)? {
            return fs::remove_dir(dir);
        }
    }
    Err(io::Error::other(format!(
        "{} keeps filling up while it is removed",
        shown_path(dir)
    )))
}

/// How many folders deep [`remove_tree`] goes in one pass.
const REMOVE_DEPTH: usize = 64;

/// Removes what `at` holds; a folder deeper than [`REMOVE_DEPTH`] is moved to `root`
/// instead. Whether `at` is empty now.
fn empty_below(
    at: &rustix::fd::OwnedFd,
    root: &rustix::fd::OwnedFd,
    depth: usize,
    moved: &mut u64,
) -> io::Result<bool> {
    use rustix::fs::{fchmod, openat, renameat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut left = false;
    let names: Vec<(std::ffi::CString, FileType)> = Dir::read_from(at)?
        .filter_map(Result::ok)
        .filter(|e| !matches!(e.file_name().to_bytes(), b"." | b".."))
        .map(|e| (e.file_name().to_owned(), e.file_type()))
        .collect();
    for (name, kind) in names {
        let kind = if kind == FileType::Unknown {
            rustix::fs::statat(at, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map(|st| FileType::from_raw_mode(st.st_mode))
                .unwrap_or(FileType::Unknown)
        } else {
            kind
        };
        if kind != FileType::Directory {
            unlinkat(at, name.as_c_str(), AtFlags::empty())?;
            continue;
        }
        if depth >= REMOVE_DEPTH {
            *moved += 1;
            let up = format!(".kennel-deep-{moved}");
            renameat(at, name.as_c_str(), root, up.as_str())?;
            left = true;
            continue;
        }
        let sub = match openat(at, name.as_c_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            // Made unreadable by the command: its owner may open it again.
            Err(rustix::io::Errno::ACCESS) => {
                // chmodat follows no link here: `kind` said a folder, not a link.
                rustix::fs::chmodat(
                    at,
                    name.as_c_str(),
                    Mode::from_raw_mode(0o700),
                    AtFlags::empty(),
                )?;
                openat(at, name.as_c_str(), flags, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
        let _ = fchmod(&sub, Mode::from_raw_mode(0o700));
        if empty_below(&sub, root, depth + 1, moved)? {
            unlinkat(at, name.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            left = true;
        }
    }
    if left || depth > 0 {
        return Ok(!left);
    }
    // The top: what was moved up to it during this pass is there now.
    Ok(Dir::read_from(at)?
        .filter_map(Result::ok)
        .all(|e| matches!(e.file_name().to_bytes(), b"." | b"..")))
}

impl SandboxHome {
    /// Whether the home is a tmpfs of the sandbox's (see [`prepare`]'s `in_memory`).
    pub fn in_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// For a home in memory: the user's files to copy in, relative to the home.
    pub fn memory_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        self.copied
            .iter()
            .filter_map(|c| match &c.original {
                Original::Bytes(bytes) => Some((c.rel.clone(), bytes.clone())),
                _ => None,
            })
            .collect()
    }

    /// The sandbox's descriptor of its home in memory, received once it was mounted: what
    /// is listed and copied back is read through it.
    pub fn attach(&mut self, fd: std::os::fd::OwnedFd) {
        self.memory = Some(Some(fd));
    }

    /// Copies changed files back, then reports (ephemeral) what else was written. Returns
    /// the lines to print.
    pub fn finish(&self, policy: &Policy, config_name: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let root = match &self.memory {
            Some(Some(fd)) => fd.try_clone(),
            // In memory and never handed over: the sandbox never started.
            Some(None) => return lines,
            None => crate::files::open_dir(&self.dir),
        };
        let root = match root {
            Ok(root) => root,
            Err(e) => {
                lines.push(format!(
                    "cannot open the sandbox's home {} to copy files back and list what was \
                     written there: {e}",
                    shown_path(&self.dir)
                ));
                return lines;
            }
        };
        // The command may have made its home unreadable (`chmod 000 ~`): it is kennel's own
        // folder, private to the user, so it is made readable again before anything is read.
        let _ = rustix::fs::fchmod(&root, Mode::from_raw_mode(0o700));
        for c in &self.copied {
            lines.extend(copy_back(&root, c, &policy.home));
        }
        if self.mode == HomeMode::Persistent {
            return lines;
        }
        let skip = bound_paths(policy);
        let mut listing = Listing {
            files: Vec::new(),
            budget: MAX_ENTRIES,
            incomplete: false,
            device: rustix::fs::fstat(&root).map_or(0, |st| st.st_dev),
        };
        listing.walk(&root, Path::new(""), 0, &skip);
        let Listing {
            mut files,
            incomplete,
            ..
        } = listing;
        if files.is_empty() && !incomplete {
            return lines;
        }
        files.sort();
        lines.push(if files.is_empty() {
            // Only folders that could not be opened, or too deep: never "at least 0 files".
            "files written to the sandbox's temporary home were discarded, where kennel could \
             not list them:"
                .to_string()
        } else {
            format!(
                "{}{} file{} written to the sandbox's temporary home {} discarded:",
                if incomplete { "at least " } else { "" },
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                if files.len() == 1 { "was" } else { "were" },
            )
        });
        for f in files.iter().take(SHOWN) {
            lines.push(format!("  ~/{}", shown_path(f)));
        }
        if files.len() > SHOWN {
            lines.push(format!("  ... and {} more", files.len() - SHOWN));
        }
        if incomplete {
            lines.push(format!(
                "  ... and more not listed: the listing stops at {MAX_ENTRIES} entries and \
                 {MAX_DEPTH} levels of folders"
            ));
        }
        lines.extend(suggest::suggestions(policy, config_name, &files));
        lines
    }
}

/// Copies one file back from the sandbox's home (opened as `root`) when the sandbox changed
/// it, and nobody changed the user's file meanwhile. Returns what to tell the user.
fn copy_back(root: &std::os::fd::OwnedFd, c: &Copied, home: &Path) -> Option<String> {
    if c.original == Original::NotCopied {
        return None;
    }
    let name = tilde(&c.real, home);
    let now = match crate::files::read_below(root, &c.rel, MAX_COPIED) {
        Ok(now) => now,
        Err(ReadError::NotFound) => return None, // deleted inside: the user's file stays
        Err(e) => {
            return Some(format!(
                "{name} was not copied back: in the sandbox's home, {e}; yours is unchanged"
            ))
        }
    };
    if matches!(&c.original, Original::Bytes(before) if *before == now) {
        return None;
    }
    // The user's file as it is now: another session, or the user, may have changed it.
    let current = match Original::from_read(crate::files::read_users_file(&c.real, MAX_COPIED)) {
        Ok(current) => current,
        Err(e) => return Some(format!("cannot copy {name} back: {e}")),
    };
    if current != c.original {
        let beside = conflict_path(&c.real);
        let shown_beside = tilde(&beside, home);
        return Some(match crate::files::create_new(&beside, 0o600, &now) {
            Ok(()) => format!(
                "{name} changed outside the sandbox while it ran (another session, or an \
                 edit): it is kept as it is, and the sandbox's version is in {shown_beside}; \
                 merge what you need, then remove that file"
            ),
            Err(e) => format!(
                "{name} changed outside the sandbox while it ran: it is kept as it is, and \
                 the sandbox's version is lost (cannot write {shown_beside}: {e})"
            ),
        });
    }
    replace_file(&c.real, &now)
        .err()
        .map(|e| format!("cannot copy {name} back: {e}"))
}

/// `~/REST` for a path under the home, escaped for the terminal.
fn tilde(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) => format!("~/{}", shown_path(rest)),
        Err(_) => shown_path(path),
    }
}

/// Where the sandbox's version of `real` goes when the user's changed meanwhile:
/// `NAME.kennel-conflict-PID` beside it.
fn conflict_path(real: &Path) -> PathBuf {
    let mut name = real.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".kennel-conflict-{}", std::process::id()));
    real.with_file_name(name)
}

/// Writes `bytes` beside `real` and renames it over, so that a reader never sees half a file.
/// A symlink of the user's (dotfiles managed elsewhere) stays a symlink: its target is
/// replaced. The file keeps its mode (a 0600 file of login tokens stays 0600); a new file is
/// 0600.
fn replace_file(real: &Path, bytes: &[u8]) -> io::Result<()> {
    let resolved = fs::canonicalize(real).ok();
    let real = resolved.as_deref().unwrap_or(real);
    let mode = fs::metadata(real).map_or(0o600, |m| m.mode() & 0o7777);
    let mut name = std::ffi::OsString::from(".");
    name.push(real.file_name().unwrap_or_default());
    name.push(format!(".kennel-{}", std::process::id()));
    let tmp = real.with_file_name(name);
    crate::files::create_new(&tmp, mode, bytes)?;
    fs::rename(&tmp, real).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Paths of the home, relative to it, that are mount points of the policy's rules (and the
/// copied-in files): created by the sandbox's setup, not by the command.
fn bound_paths(policy: &Policy) -> BTreeSet<PathBuf> {
    let mut skip = BTreeSet::new();
    for r in &policy.paths {
        if r.path != policy.home {
            if let Ok(rel) = r.path.strip_prefix(&policy.home) {
                skip.insert(rel.to_path_buf());
            }
        }
    }
    for c in &policy.copy_back {
        if let Ok(rel) = c.path.strip_prefix(&policy.home) {
            skip.insert(rel.to_path_buf());
        }
    }
    skip
}

/// The files of the ephemeral home, within budgets; `incomplete` when a budget was hit.
struct Listing {
    files: Vec<PathBuf>,
    budget: usize,
    incomplete: bool,
    /// The home's own file system: what lies on another is mounted there, not written.
    device: u64,
}

impl Listing {
    /// Lists the folder `at` (`rel` in the home) through descriptors, never following a
    /// link: the sandbox, gone by now, wrote what is there.
    fn walk(&mut self, at: &OwnedFd, rel: &Path, depth: usize, skip: &BTreeSet<PathBuf>) {
        let Ok(dir) = Dir::read_from(at) else {
            self.incomplete = true;
            return;
        };
        for entry in dir {
            let Ok(entry) = entry else {
                self.incomplete = true;
                continue;
            };
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            if self.budget == 0 {
                self.incomplete = true;
                return;
            }
            self.budget -= 1;
            let path = rel.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            if skip.contains(&path) {
                continue;
            }
            // The entry's own type: a link is listed, never followed. A home in memory is
            // listed while the sandbox's mounts are still there (its init ends after kennel),
            // and the command may have renamed a folder holding one of them (`mv ~/src ~/x`
            // moves the workspace bound at ~/src/proj): an entry of another file system is
            // a host folder or file bound there, neither listed as written nor entered
            // (nor made readable).
            let Ok(st) = statat(at, name, AtFlags::SYMLINK_NOFOLLOW) else {
                self.incomplete = true;
                continue;
            };
            if st.st_dev != self.device {
                continue;
            }
            let kind = FileType::from_raw_mode(st.st_mode);
            if kind != FileType::Directory {
                self.files.push(path);
                continue;
            }
            match open_below(at, name) {
                Some(sub) if depth + 1 < MAX_DEPTH => self.walk(&sub, &path, depth + 1, skip),
                Some(sub) => {
                    let empty = Dir::read_from(&sub).is_ok_and(|d| {
                        d.filter_map(Result::ok)
                            .all(|e| matches!(e.file_name().to_bytes(), b"." | b".."))
                    });
                    self.incomplete |= !empty;
                }
                None => self.incomplete = true,
            }
        }
    }
}

/// The folder `name` of `at`, not through a link; one the command made unreadable
/// (`chmod 000`) is made readable again first: it is kennel's own home.
fn open_below(at: &OwnedFd, name: &std::ffi::CStr) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match openat(at, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::ACCESS) => {
            // A folder, not a link (its entry said so), in a home nobody else writes now.
            chmodat(at, name, Mode::from_raw_mode(0o700), AtFlags::empty()).ok()?;
            openat(at, name, flags, Mode::empty()).ok()?
        }
        Err(_) => return None,
    };
    // Readable but not searchable (`chmod 400`): its entries could not be looked at.
    if rustix::fs::fstat(&fd).is_ok_and(|st| st.st_mode & 0o100 == 0) {
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700));
    }
    Some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_in_use_is_not_stale_and_one_left_behind_is() -> io::Result<()> {
        let temp = tempfile::tempdir()?;
        let uid = nix::unistd::getuid().as_raw();
        let dir = homes_dir(temp.path(), uid);
        own_private_dir(&dir, uid)?;
        let used = dir.join(format!("{EPHEMERAL_PREFIX}used"));
        let left = dir.join(format!("{EPHEMERAL_PREFIX}left"));
        fs::create_dir(&used)?;
        fs::create_dir(&left)?;
        fs::create_dir(dir.join("unrelated"))?;
        // One directly in the temporary folder is not looked at: only kennel's own folder is.
        fs::create_dir(temp.path().join(format!("{EPHEMERAL_PREFIX}elsewhere")))?;
        let _held = lock(&used, FlockArg::LockExclusiveNonblock)?;
        assert_eq!(stale_homes(temp.path(), uid), vec![left]);
        Ok(())
    }

    #[test]
    fn a_homes_folder_that_is_not_private_or_not_ours_is_refused() -> io::Result<()> {
        let temp = tempfile::tempdir()?;
        let uid = nix::unistd::getuid().as_raw();
        let open = temp.path().join("open");
        fs::create_dir(&open)?;
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755))?;
        assert!(own_private_dir(&open, uid).is_err());
        let link = temp.path().join("link");
        std::os::unix::fs::symlink(temp.path(), &link)?;
        assert!(own_private_dir(&link, uid).is_err());
        assert!(own_private_dir(&temp.path().join("mine"), uid).is_ok());
        assert!(own_private_dir(&temp.path().join("mine"), uid + 1).is_err());
        Ok(())
    }

    #[test]
    fn workspace_keys_are_stable_and_distinct() {
        let a = workspace_key(Path::new("/home/u/src/p"));
        assert_eq!(a, workspace_key(Path::new("/home/u/src/p")));
        assert!(a.starts_with("p-"));
        assert_ne!(a, workspace_key(Path::new("/home/u/other/p")));
    }
}
