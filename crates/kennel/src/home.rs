//! The sandbox's own home: a private host directory bound as the home (instead of a tmpfs
//! that nobody outside can read), so that what a tool wrote there is listed at exit, never
//! dropped silently; or, with `home = "persistent"`, kept for the workspace.
//!
//! The ephemeral one is created 0700 in a private folder of the user's in the temporary
//! folder (`$TMPDIR/kennel-UID`, else `/tmp/kennel-UID`) and removed after the listing;
//! only kennel's own directory is ever removed. Not under
//! `$XDG_RUNTIME_DIR`: that is a small tmpfs (10% of memory by default) that the user's
//! session needs, and a tool filling the sandbox's home must not break the desktop.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kennel_policy::{shown_path, Access, HomeMode, Policy};
use nix::fcntl::{Flock, FlockArg};

use crate::files::ReadError;

/// How many files the exit report names.
const SHOWN: usize = 5;
/// The listing at exit is bounded, like every walk kennel makes.
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 10_000;
/// The largest file copied into the sandbox's home or back out of it.
const MAX_COPIED: u64 = 64 << 20;

pub struct SandboxHome {
    dir: PathBuf,
    /// Held while the sandbox runs: an ephemeral home nobody holds is one that an earlier
    /// kennel, killed, left behind (see [`stale_homes`]).
    _lock: Option<Flock<File>>,
    /// Removed on drop when ephemeral.
    temp: Option<tempfile::TempDir>,
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
pub fn prepare(
    policy: &mut Policy,
    state_home: Option<PathBuf>,
    temp: PathBuf,
) -> io::Result<Option<SandboxHome>> {
    let home_is_tmpfs = policy
        .paths
        .iter()
        .any(|r| r.path == policy.home && r.access == Access::Tmpfs);
    if !home_is_tmpfs {
        return Ok(None);
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
            let t = tempfile::Builder::new()
                .prefix(EPHEMERAL_PREFIX)
                .permissions(fs::Permissions::from_mode(0o700))
                .tempdir_in(&base)?;
            (t.path().to_path_buf(), Some(t))
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
    let lock = match policy.home_mode {
        HomeMode::Ephemeral => Some(lock(&dir, FlockArg::LockExclusiveNonblock)?),
        HomeMode::Persistent => None,
    };
    let mut home = SandboxHome {
        dir,
        _lock: lock,
        temp: temp_dir,
        mode: policy.home_mode,
        copied: Vec::new(),
    };
    let root = crate::files::open_dir(&home.dir)
        .map_err(|e| io::Error::other(format!("cannot open {}: {e}", shown_path(&home.dir))))?;
    for c in &policy.copy_back {
        let Ok(rel) = c.path.strip_prefix(&policy.home) else {
            continue;
        };
        let original = match crate::files::read_users_file(&c.path, MAX_COPIED) {
            Ok(bytes) => {
                // Into the kept home, the sandbox may have left a link, a dangling link or
                // a FIFO at this name at an earlier run: replaced, never written through.
                crate::files::write_below(&root, rel, &bytes).map_err(|e| {
                    io::Error::other(format!(
                        "cannot copy {} into the sandbox's home {}: {e}",
                        shown_path(&c.path),
                        shown_path(&home.dir)
                    ))
                })?;
                Original::Bytes(bytes)
            }
            Err(ReadError::NotFound) => Original::Absent,
            Err(e) => {
                eprintln!(
                    "kennel: warning: {} is not copied into the sandbox, nor back at exit: {e}",
                    shown_path(&c.path)
                );
                Original::NotCopied
            }
        };
        home.copied.push(Copied {
            real: c.path.clone(),
            rel: rel.to_path_buf(),
            original,
        });
    }
    policy.home_source = Some(home.dir.clone());
    Ok(Some(home))
}

const EPHEMERAL_PREFIX: &str = "kennel-home-";

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
    /// that still cannot be removed is named, never left silently.
    fn drop(&mut self) {
        let Some(temp) = self.temp.take() else {
            return;
        };
        let dir = temp.path().to_path_buf();
        if temp.close().is_ok() {
            return;
        }
        make_removable(&dir, 0);
        if let Err(e) = fs::remove_dir_all(&dir) {
            eprintln!(
                "kennel: cannot remove the sandbox's home {}: {e}; look, then remove it",
                shown_path(&dir)
            );
        }
    }
}

/// Makes every folder below `dir` (kennel's own) readable and writable by its owner,
/// following no link, so that it can be removed.
fn make_removable(dir: &Path, depth: usize) {
    // Deeper than any listing: a bound on the recursion, not on what is removed in practice.
    if depth > 4 * MAX_DEPTH * MAX_DEPTH {
        return;
    }
    let _ = crate::files::make_readable(dir);
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            make_removable(&entry.path(), depth + 1);
        }
    }
}

impl SandboxHome {
    /// Copies changed files back, then reports (ephemeral) what else was written. Returns
    /// the lines to print.
    pub fn finish(&self, policy: &Policy, config_name: &str) -> Vec<String> {
        let mut lines = Vec::new();
        match crate::files::open_dir(&self.dir) {
            Ok(root) => {
                for c in &self.copied {
                    lines.extend(copy_back(&root, c, &policy.home));
                }
            }
            Err(e) if !self.copied.is_empty() => lines.push(format!(
                "cannot open the sandbox's home {} to copy files back: {e}",
                shown_path(&self.dir)
            )),
            Err(_) => {}
        }
        if self.mode == HomeMode::Persistent {
            return lines;
        }
        let skip = bound_paths(policy, &self.dir);
        let mut listing = Listing {
            files: Vec::new(),
            budget: MAX_ENTRIES,
            incomplete: false,
        };
        listing.walk(&self.dir, &self.dir, 0, &skip);
        let Listing {
            mut files,
            incomplete,
            ..
        } = listing;
        if files.is_empty() && !incomplete {
            return lines;
        }
        files.sort();
        lines.push(format!(
            "{}{} file{} written to the sandbox's temporary home {} discarded:",
            if incomplete { "at least " } else { "" },
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if files.len() == 1 { "was" } else { "were" },
        ));
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
        lines.extend(suggestions(policy, config_name, &files));
        lines
    }
}

/// The lines telling how to keep `files` (relative to the home): a config to paste, made by
/// the TOML library from narrow paths only (see [`keep_root`]).
fn suggestions(policy: &Policy, config_name: &str, files: &[PathBuf]) -> Vec<String> {
    let workspace = policy.workspace.strip_prefix(&policy.home).ok();
    let bound: Vec<&Path> = policy
        .paths
        .iter()
        .filter(|r| r.path != policy.home)
        .filter_map(|r| r.path.strip_prefix(&policy.home).ok())
        .collect();
    // Folders are kept by binding them; a file directly in the home by copying it back
    // (an agent may replace it by rename, which a bound file does not allow).
    let mut dirs = BTreeSet::new();
    let mut loose = BTreeSet::new();
    let mut beside = 0;
    let mut trusted = 0;
    let mut unnamed = 0;
    for f in files {
        match keep_root(f, workspace, &bound) {
            Keep::Folder(k) => {
                dirs.insert(k);
            }
            Keep::File(k) => {
                loose.insert(k);
            }
            Keep::BesideWorkspace => beside += 1,
            Keep::Trusted => trusted += 1,
            Keep::Unsuitable => unnamed += 1,
        }
    }
    let mut lines = Vec::new();
    if !dirs.is_empty() || !loose.is_empty() {
        lines.push(format!(
            "to keep them, add to [profile.{}] in {config_name}:",
            policy.profile
        ));
    }
    if !dirs.is_empty() {
        let entries: Vec<String> = dirs
            .iter()
            .map(|k| format!("{{ path = {}, create = true }}", toml_string(k)))
            .collect();
        lines.push(format!("  read-write = [{}]", entries.join(", ")));
    }
    if !loose.is_empty() {
        let entries: Vec<String> = loose.iter().map(|k| toml_string(k)).collect();
        lines.push(format!("  copy-back = [{}]", entries.join(", ")));
    }
    if beside > 0 {
        lines.push(format!(
            "{beside} of them {} beside the workspace, outside it: kennel suggests no \
             folder around the workspace (it would open the neighbouring projects); write \
             what to keep inside the workspace",
            if beside == 1 { "is" } else { "are" }
        ));
    }
    if trusted > 0 {
        lines.push(format!(
            "{trusted} of them {} where your shell, your desktop, your credentials or kennel's \
             own config live (such as ~/.bashrc, ~/.ssh, ~/.config/kennel): kennel suggests \
             keeping none of it, since it would run or be trusted outside the sandbox",
            if trusted == 1 { "is" } else { "are" }
        ));
    }
    if unnamed > 0 {
        lines.push(format!(
            "{unnamed} of them {} not suggested: {} name holds control characters or \
             bytes that are not UTF-8",
            if unnamed == 1 { "is" } else { "are" },
            if unnamed == 1 { "its" } else { "each" }
        ));
    }
    lines
}

/// `~/REL` as a TOML string, written by the TOML library: whatever the name holds, it
/// parses back as that one string.
fn toml_string(rel: &str) -> String {
    toml::Value::String(format!("~/{rel}")).to_string()
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

/// Paths in the backing directory that are mount points of the policy's rules (and the
/// copied-in files): created by the sandbox's setup, not by the command.
fn bound_paths(policy: &Policy, dir: &Path) -> BTreeSet<PathBuf> {
    let mut skip = BTreeSet::new();
    for r in &policy.paths {
        if r.path != policy.home {
            if let Ok(rel) = r.path.strip_prefix(&policy.home) {
                skip.insert(dir.join(rel));
            }
        }
    }
    for c in &policy.copy_back {
        if let Ok(rel) = c.path.strip_prefix(&policy.home) {
            skip.insert(dir.join(rel));
        }
    }
    skip
}

/// The files of the ephemeral home, within budgets; `incomplete` when a budget was hit.
struct Listing {
    files: Vec<PathBuf>,
    budget: usize,
    incomplete: bool,
}

impl Listing {
    fn walk(&mut self, dir: &Path, root: &Path, depth: usize, skip: &BTreeSet<PathBuf>) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // A folder the command made unreadable (`chmod 000`): kennel's own home, made
            // readable again to list it (and so that it can be removed).
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                let _ = crate::files::make_readable(dir);
                match fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(_) => {
                        self.incomplete = true;
                        return;
                    }
                }
            }
            Err(_) => {
                self.incomplete = true;
                return;
            }
        };
        for entry in entries {
            let Ok(entry) = entry else {
                self.incomplete = true;
                continue;
            };
            if self.budget == 0 {
                self.incomplete = true;
                return;
            }
            self.budget -= 1;
            let path = entry.path();
            if skip.contains(&path) {
                continue;
            }
            // The entry's own type: a link is listed, never followed.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                if depth + 1 < MAX_DEPTH {
                    self.walk(&path, root, depth + 1, skip);
                } else if fs::read_dir(&path).map_or(true, |mut d| d.next().is_some()) {
                    self.incomplete = true;
                }
            } else if let Ok(rel) = path.strip_prefix(root) {
                self.files.push(rel.to_path_buf());
            }
        }
    }
}

/// What to suggest for keeping a file of the home.
#[derive(Debug, PartialEq, Eq)]
enum Keep {
    /// A folder to bind read-write (relative to the home).
    Folder(String),
    /// The file itself, to copy back.
    File(String),
    /// Under a folder that holds the workspace: nothing is suggested.
    BesideWorkspace,
    /// Where what is written runs or is trusted outside the sandbox: nothing is suggested.
    Trusted,
    /// A name that kennel does not put in a suggestion.
    Unsuitable,
}

/// Files and folders of the home that run, or are trusted, outside the sandbox (shell
/// start-up files, desktop autostart, credentials, kennel's own config): what the sandbox
/// wrote there is never suggested for keeping.
const TRUSTED: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".login",
    ".logout",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".mkshrc",
    ".inputrc",
    ".xinitrc",
    ".xprofile",
    ".xsession",
    ".xsessionrc",
    ".Xresources",
    ".pam_environment",
    ".ssh",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".gitconfig",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".password-store",
    ".pki",
    ".mozilla",
    ".config/autostart",
    ".config/systemd",
    ".config/environment.d",
    ".config/fish",
    ".config/git",
    ".config/gh",
    ".config/gcloud",
    ".config/kennel",
    ".config/chromium",
    ".config/google-chrome",
    ".local/bin",
    ".local/share/applications",
    ".local/share/keyrings",
    ".local/share/systemd",
    ".local/state/kennel",
];

/// Folders shared by every tool: never suggested whole.
const SHARED: &[&str] = &[
    ".cache",
    ".config",
    ".local",
    ".local/share",
    ".local/state",
];

/// The narrowest useful thing to keep for the file `rel` of the home: `~/.tool` for
/// `~/.tool/x`, one level deeper under `.cache`, `.config`, `.local/share` and
/// `.local/state`; never the home, a folder shared by every tool, a folder holding the
/// workspace (`workspace`, relative to the home) or one of the policy's own paths
/// (`bound`), nor anything around the workspace: that would open the user's other projects.
fn keep_root(rel: &Path, workspace: Option<&Path>, bound: &[&Path]) -> Keep {
    let mut parts = Vec::new();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Keep::Unsuitable;
        };
        match name.to_str() {
            // Nothing the terminal would act on (a backslash is fine: the TOML library
            // escapes it, and it is shown doubled).
            Some(n) if !n.is_empty() && kennel_policy::shown(n) == n.replace('\\', "\\\\") => {
                parts.push(n);
            }
            _ => return Keep::Unsuitable,
        }
    }
    if parts.is_empty() {
        return Keep::Unsuitable;
    }
    if let Some(ws) = workspace {
        let mut ws_parts = ws.components();
        if ws.components().count() > 1
            && ws_parts.next().map(|c| c.as_os_str()) == Some(std::ffi::OsStr::new(parts[0]))
        {
            return Keep::BesideWorkspace;
        }
    }
    if TRUSTED.iter().any(|t| rel.starts_with(t)) {
        return Keep::Trusted;
    }
    let mut n = match parts[0] {
        ".cache" | ".config" => 2,
        ".local" => 3,
        _ => 1,
    };
    let too_wide = |n: usize| {
        let prefix = parts[..n].join("/");
        SHARED.contains(&prefix.as_str())
            || workspace.is_some_and(|w| w.starts_with(&prefix))
            || bound.iter().any(|b| b.starts_with(&prefix))
    };
    while n < parts.len() && too_wide(n) {
        n += 1;
    }
    if n >= parts.len() {
        Keep::File(parts.join("/"))
    } else {
        Keep::Folder(parts[..n].join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(rel: &str) -> Keep {
        keep_root(
            Path::new(rel),
            Some(Path::new("src/project")),
            &[Path::new(".claude")],
        )
    }

    #[test]
    fn keep_roots_name_the_tools_folder() {
        assert_eq!(keep(".tool/state/x.json"), Keep::Folder(".tool".into()));
        assert_eq!(keep(".cache/pip/http/a"), Keep::Folder(".cache/pip".into()));
        assert_eq!(
            keep(".local/share/app/db"),
            Keep::Folder(".local/share/app".into())
        );
        assert_eq!(keep("notes.txt"), Keep::File("notes.txt".into()));
    }

    #[test]
    fn nothing_that_runs_or_is_trusted_outside_is_suggested() {
        for rel in [
            ".bashrc",
            ".ssh/known_hosts",
            ".config/kennel/config.toml",
            ".config/autostart/x.desktop",
            ".local/bin/git",
            ".local/share/applications/a.desktop",
        ] {
            assert_eq!(keep(rel), Keep::Trusted, "{rel}");
        }
        assert_eq!(keep(".bashrc-notes"), Keep::File(".bashrc-notes".into()));
        assert_eq!(
            keep(".config/kennelx/f"),
            Keep::Folder(".config/kennelx".into())
        );
    }

    #[test]
    fn keep_roots_are_never_wide() {
        // Beside the workspace (`../x` from it): never `~/src`, nor a sibling tree.
        assert_eq!(keep("src/x"), Keep::BesideWorkspace);
        assert_eq!(keep("src/other/deep/file"), Keep::BesideWorkspace);
        // Directly in a folder every tool shares: the file, not the folder.
        assert_eq!(keep(".cache/x"), Keep::File(".cache/x".into()));
        assert_eq!(keep(".config/x"), Keep::File(".config/x".into()));
        assert_eq!(keep(".local/x"), Keep::File(".local/x".into()));
        assert_eq!(keep(".local/share/x"), Keep::File(".local/share/x".into()));
        // Around one of the policy's own paths: deeper than it.
        let bound = [Path::new(".tool/bound")];
        assert_eq!(
            keep_root(Path::new(".tool/other/f"), None, &bound),
            Keep::Folder(".tool/other".into())
        );
        assert_eq!(
            keep_root(Path::new(".tool/f"), None, &bound),
            Keep::File(".tool/f".into())
        );
        // Names kennel does not put in a suggestion.
        assert_eq!(keep(".t\u{1b}]0;x\u{7}/f"), Keep::Unsuitable);
        assert_eq!(keep("a\nb"), Keep::Unsuitable);
        assert_eq!(keep("../x"), Keep::Unsuitable);
        use std::os::unix::ffi::OsStrExt;
        let bytes = Path::new(std::ffi::OsStr::from_bytes(b"\xff/f"));
        assert_eq!(keep_root(bytes, None, &[]), Keep::Unsuitable);
    }

    #[test]
    fn suggested_paths_parse_back_as_exactly_the_name() {
        for name in [
            r#"x"}, { path = "~/.ssh" }, {"#,
            "x'''y\"\"\"z",
            "a\"b'c",
            "x\\u002F.ssh",
            "é = [1]",
            "#comment",
        ] {
            let line = format!(
                "read-write = [{{ path = {}, create = true }}]",
                toml_string(name)
            );
            let parsed: toml::Table =
                toml::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let entries = parsed["read-write"].as_array().unwrap();
            assert_eq!(entries.len(), 1, "{line}");
            assert_eq!(
                entries[0]["path"].as_str(),
                Some(format!("~/{name}").as_str()),
                "{line}"
            );
            let line = format!("copy-back = [{}]", toml_string(name));
            let parsed: toml::Table =
                toml::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let entries = parsed["copy-back"].as_array().unwrap();
            assert_eq!(entries.len(), 1, "{line}");
            assert_eq!(
                entries[0].as_str(),
                Some(format!("~/{name}").as_str()),
                "{line}"
            );
        }
    }

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
