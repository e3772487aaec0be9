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

use kennel_policy::{Access, HomeMode, Policy};
use nix::fcntl::{Flock, FlockArg};

/// How many files the exit report names.
const SHOWN: usize = 5;
/// The listing at exit is bounded, like every walk kennel makes.
const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 10_000;

pub struct SandboxHome {
    dir: PathBuf,
    /// Held while the sandbox runs: an ephemeral home nobody holds is one that an earlier
    /// kennel, killed, left behind (see [`stale_homes`]).
    _lock: Option<Flock<File>>,
    /// Removed on drop when ephemeral.
    _temp: Option<tempfile::TempDir>,
    mode: HomeMode,
    /// Contents of the copied-in files, to copy back only what changed.
    copied: Vec<(PathBuf, Option<Vec<u8>>)>,
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
        _temp: temp_dir,
        mode: policy.home_mode,
        copied: Vec::new(),
    };
    for c in &policy.copy_back {
        let Ok(rel) = c.path.strip_prefix(&policy.home) else {
            continue;
        };
        let inside = home.dir.join(rel);
        let original = fs::read(&c.path).ok();
        if let Some(bytes) = &original {
            if let Some(parent) = inside.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&inside, bytes)?;
        }
        home.copied.push((c.path.clone(), original));
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

impl SandboxHome {
    /// Copies changed files back, then reports (ephemeral) what else was written. Returns
    /// the lines to print.
    pub fn finish(&self, policy: &Policy, config_name: &str) -> Vec<String> {
        let mut lines = Vec::new();
        for (real, original) in &self.copied {
            let Ok(rel) = real.strip_prefix(&policy.home) else {
                continue;
            };
            let inside = self.dir.join(rel);
            let Ok(now) = fs::read(&inside) else {
                continue; // deleted inside: the user's file stays as it is
            };
            if original.as_ref() == Some(&now) {
                continue;
            }
            if let Err(e) = replace_file(real, &now) {
                lines.push(format!("cannot copy {} back: {e}", real.display()));
            }
        }
        if self.mode == HomeMode::Persistent {
            return lines;
        }
        let skip = bound_paths(policy, &self.dir);
        let mut files = Vec::new();
        let mut budget = MAX_ENTRIES;
        walk(&self.dir, &self.dir, 0, &skip, &mut budget, &mut files);
        if files.is_empty() {
            return lines;
        }
        files.sort();
        lines.push(format!(
            "{} file{} written to the sandbox's temporary home {} discarded:",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if files.len() == 1 { "was" } else { "were" },
        ));
        for f in files.iter().take(SHOWN) {
            lines.push(format!("  ~/{}", f.display()));
        }
        if files.len() > SHOWN {
            lines.push(format!("  ... and {} more", files.len() - SHOWN));
        }
        // Folders are kept by binding them; a file directly in the home by copying it back
        // (an agent may replace it by rename, which a bound file does not allow).
        let mut dirs = BTreeSet::new();
        let mut loose = BTreeSet::new();
        for f in &files {
            if f.components().count() > 1 {
                dirs.insert(keep_root(f));
            } else {
                loose.insert(keep_root(f));
            }
        }
        lines.push(format!(
            "to keep them, add to [profile.{}] in {config_name}:",
            policy.profile
        ));
        if !dirs.is_empty() {
            let entries: Vec<String> = dirs
                .iter()
                .map(|k| format!("{{ path = \"~/{k}\", create = true }}"))
                .collect();
            lines.push(format!("  read-write = [{}]", entries.join(", ")));
        }
        if !loose.is_empty() {
            let entries: Vec<String> = loose.iter().map(|k| format!("\"~/{k}\"")).collect();
            lines.push(format!("  copy-back = [{}]", entries.join(", ")));
        }
        lines
    }
}

/// Writes `bytes` beside `real` and renames it over, so that a reader never sees half a file.
/// A symlink (dotfiles managed elsewhere) stays a symlink: its target is replaced.
fn replace_file(real: &Path, bytes: &[u8]) -> io::Result<()> {
    let resolved = fs::canonicalize(real).ok();
    let real = resolved.as_deref().unwrap_or(real);
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = real.with_file_name(format!(".{name}.kennel-{}", std::process::id()));
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, real)
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

fn walk(
    dir: &Path,
    root: &Path,
    depth: usize,
    skip: &BTreeSet<PathBuf>,
    budget: &mut usize,
    out: &mut Vec<PathBuf>,
) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = entry.path();
        if skip.contains(&path) {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            if depth + 1 < MAX_DEPTH {
                walk(&path, root, depth + 1, skip, budget, out);
            }
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
}

/// The folder to suggest keeping for a file: `~/.tool` for `~/.tool/x`, one level deeper
/// under `.cache`, `.config`, `.local/share` and `.local/state`.
fn keep_root(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let n = match parts.first().map(String::as_str) {
        Some(".cache" | ".config") => 2,
        Some(".local") => 3,
        _ => 1,
    };
    let n = n.min(parts.len().saturating_sub(1)).max(1);
    parts[..n.min(parts.len())].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_roots_name_the_tools_folder() {
        assert_eq!(keep_root(Path::new(".tool/state/x.json")), ".tool");
        assert_eq!(keep_root(Path::new(".cache/pip/http/a")), ".cache/pip");
        assert_eq!(
            keep_root(Path::new(".local/share/app/db")),
            ".local/share/app"
        );
        assert_eq!(keep_root(Path::new("notes.txt")), "notes.txt");
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
