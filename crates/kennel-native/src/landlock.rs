//! The second wall: a Landlock ruleset derived from the same plan as the mount view. A path
//! must pass both; a mistake in one is caught by the other.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    ABI,
};
use serde::Serialize;

use crate::error::NativeError;

/// The ABI kennel asks for: file access rights up to device ioctls (ABI 5) and the scoping
/// of abstract unix sockets and signals (ABI 6) at least; on kernels that have it (ABI 9),
/// also connecting to unix sockets by path, so that a socket the mount view leaves visible
/// cannot be reached either.
fn target_abi() -> ABI {
    match crate::sys::landlock_abi() {
        Some(v) if v >= 9 => ABI::V9,
        _ => ABI::V6,
    }
}

/// What `kennel doctor` says about Landlock on this kernel.
pub fn kernel_abi() -> Option<i32> {
    crate::sys::landlock_abi()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandlockAccess {
    /// Listing directories only (given to `/` so that `ls /` works).
    ListOnly,
    /// Read, list and execute.
    Read,
    /// Read, and write files (for `/proc/self/...`).
    ReadWriteFiles,
    /// Everything, device ioctls included.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandlockRule {
    pub path: PathBuf,
    pub access: LandlockAccess,
}

/// Whether a kernel that cannot enforce Landlock stops kennel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// Fail closed: refuse to run without the full protection.
    #[default]
    Required,
    /// Run with what the kernel gives, and say what is missing.
    BestEffort,
}

impl LandlockAccess {
    /// Whether a rule with this access allows everything that one with `other` allows.
    fn includes(self, other: LandlockAccess) -> bool {
        let rank = |a| match a {
            LandlockAccess::ListOnly => 0,
            LandlockAccess::Read => 1,
            LandlockAccess::ReadWriteFiles => 2,
            LandlockAccess::Full => 3,
        };
        rank(self) >= rank(other)
    }
}

/// Whether a rule for `path` with `access` would add nothing to the rules already added:
/// Landlock allows what the rules on a path and on every folder above it allow together,
/// so a rule that allows no more than one above it (read-only git settings inside the
/// writable workspace, whose read-only-ness is their mount's) is only a few system calls
/// more at every start.
fn is_covered(added: &HashMap<&Path, LandlockAccess>, path: &Path, access: LandlockAccess) -> bool {
    path.ancestors()
        .skip(1)
        .any(|above| added.get(above).is_some_and(|a| a.includes(access)))
}

/// What the mount executor learned of a rule's path while it built the root, so that the
/// rule needs no lookup of its own (an open, two stats and a close, at every start).
pub(crate) enum Known {
    /// The path is the root of a bind of the file this O_PATH descriptor was opened on:
    /// the same inode, and Landlock's rules belong to inodes, not to names.
    Bound { fd: OwnedFd, is_dir: bool },
    /// An empty folder of the root stands there for an empty folder of the host: nothing
    /// below it to allow.
    Empty,
    /// An optional bind whose source the host does not have: nothing is there to allow.
    Missing,
}

/// The rules in the order [`restrict`] adds them (parents first), without those another
/// one covers. `restrict` decides again on what exists; this tells the mount executor
/// which paths it may be asked about ([`Known`]).
pub(crate) fn wanted(rules: &[LandlockRule]) -> Vec<&LandlockRule> {
    let mut ordered = parents_first(rules);
    let mut added = HashMap::with_capacity(ordered.len());
    ordered.retain(|r| {
        let keep = !is_covered(&added, &r.path, r.access);
        if keep {
            note(&mut added, r);
        }
        keep
    });
    ordered
}

/// The rules, shallower paths first (in their order otherwise).
fn parents_first(rules: &[LandlockRule]) -> Vec<&LandlockRule> {
    let mut ordered: Vec<&LandlockRule> = rules.iter().collect();
    // Each depth counted once, not in every comparison.
    ordered.sort_by_cached_key(|r| r.path.components().count());
    ordered
}

/// Remembers that `rule` was added.
fn note<'a>(added: &mut HashMap<&'a Path, LandlockAccess>, rule: &'a LandlockRule) {
    added
        .entry(rule.path.as_path())
        .and_modify(|a| {
            if rule.access.includes(*a) {
                *a = rule.access;
            }
        })
        .or_insert(rule.access);
}

/// A descriptor that only names `path` (O_PATH), as Landlock's rules take.
pub(crate) fn open_path(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

fn rights(access: LandlockAccess, abi: ABI) -> landlock::BitFlags<AccessFs> {
    let read = AccessFs::from_read(abi);
    match access {
        LandlockAccess::ListOnly => AccessFs::ReadDir.into(),
        LandlockAccess::Read => read,
        LandlockAccess::ReadWriteFiles => read | AccessFs::WriteFile,
        LandlockAccess::Full => AccessFs::from_all(abi),
    }
}

/// For the systemd backend's step inside the unit, whose mount view is the unit's:
/// Landlock's scopes (no signal to a process outside this domain, no abstract unix socket
/// made outside it: X11, some D-Bus setups), and of `/dev` only `devices` (every other top-level folder
/// keeps all its rights: the mount view decides there). The unit otherwise sees the host's
/// whole `/dev`: the user's other terminals under `/dev/pts` could be read and written.
/// Returns whether the kernel enforces it all (Landlock ABI 6).
pub fn scope_and_devices(devices: &[PathBuf]) -> Result<bool, NativeError> {
    let abi = target_abi();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(err)?
        .create()
        .map_err(err)?;
    let top = std::fs::read_dir("/").map_err(|e| NativeError::Setup(format!("listing /: {e}")))?;
    let paths = top
        .flatten()
        .filter(|entry| entry.file_name() != "dev")
        .map(|entry| entry.path())
        .chain(devices.iter().cloned());
    for path in paths {
        let Ok(fd) = open_path(&path) else {
            continue;
        };
        // All rights: the mount view decides; a file gets only those a file can have.
        let is_dir = nix::sys::stat::fstat(fd.as_fd())
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        let access = if is_dir {
            AccessFs::from_all(abi)
        } else {
            AccessFs::from_file(abi)
        };
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(err)?;
    }
    let status = ruleset.restrict_self().map_err(err)?;
    Ok(status.ruleset == RulesetStatus::FullyEnforced)
}

fn err(e: impl std::fmt::Display) -> NativeError {
    NativeError::Setup(format!("Landlock: {e}"))
}

/// Restricts the calling thread (and what it starts) to `rules`. Paths that do not exist
/// in the sandbox (optional binds that were skipped) get no rule; what the mount executor
/// already knows of a path (`known`) spares looking it up again.
pub(crate) fn restrict(
    rules: &[LandlockRule],
    mut known: HashMap<PathBuf, Known>,
    enforcement: Enforcement,
) -> Result<(), NativeError> {
    let abi = target_abi();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(err)?
        .create()
        .map_err(err)?;
    // Parents first, so that a rule is only left out for one that was added.
    let ordered = parents_first(rules);
    let mut added = HashMap::with_capacity(ordered.len());
    for rule in ordered {
        if is_covered(&added, &rule.path, rule.access) {
            continue;
        }
        let (fd, is_dir) = match known.remove(&rule.path) {
            Some(Known::Bound { fd, is_dir }) => (fd, is_dir),
            Some(Known::Empty | Known::Missing) => continue,
            None => {
                let Ok(fd) = open_path(&rule.path) else {
                    continue;
                };
                // The type from the descriptor just opened: no second lookup of the path.
                let Ok(stat) = nix::sys::stat::fstat(fd.as_fd()) else {
                    continue;
                };
                (fd, stat.st_mode & libc::S_IFMT == libc::S_IFDIR)
            }
        };
        // Rights that only make sense on directories would make the ruleset "partial".
        let mut access = rights(rule.access, abi);
        if !is_dir {
            access &= AccessFs::from_file(abi);
        }
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(err)?;
        note(&mut added, rule);
    }
    let status = ruleset.restrict_self().map_err(err)?;
    match (status.ruleset, enforcement) {
        (RulesetStatus::FullyEnforced, _) => Ok(()),
        (RulesetStatus::PartiallyEnforced, _) => {
            eprintln!(
                "kennel: notice: this kernel enforces only part of the Landlock rules \
                 (it predates Landlock ABI 6); the mount view still applies"
            );
            Ok(())
        }
        (RulesetStatus::NotEnforced, Enforcement::BestEffort) => {
            eprintln!(
                "kennel: warning: Landlock is not enforced on this kernel (--best-effort): \
                 only the mount view protects your files"
            );
            Ok(())
        }
        (RulesetStatus::NotEnforced, Enforcement::Required) => Err(NativeError::Setup(
            "this kernel does not enforce Landlock (needs Linux 5.13+ with `landlock` in the \
             lsm= boot parameter); kennel refuses to run with one wall missing. Run \
             `kennel doctor` for details, or pass --best-effort to run without it"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_left_out_only_below_one_that_allows_as_much() {
        let added: HashMap<&Path, LandlockAccess> = [
            (Path::new("/"), LandlockAccess::ListOnly),
            (Path::new("/usr"), LandlockAccess::Read),
            (Path::new("/home/u/p"), LandlockAccess::Full),
        ]
        .into_iter()
        .collect();
        let covered = |path: &str, access| is_covered(&added, Path::new(path), access);
        // The git settings inside the writable workspace.
        assert!(covered("/home/u/p/.git/hooks", LandlockAccess::Read));
        assert!(covered("/home/u/p/a/b", LandlockAccess::Full));
        assert!(covered("/usr/lib", LandlockAccess::Read));
        // More than the rule above allows.
        assert!(!covered("/usr/lib", LandlockAccess::ReadWriteFiles));
        // `/` only lets its own listing be read.
        assert!(!covered("/etc", LandlockAccess::Read));
        // A sibling whose name starts with the same letters is not below it.
        assert!(!covered("/home/u/pp", LandlockAccess::Read));
        // Nor is the path itself: two rules on one path are both added.
        assert!(!covered("/home/u/p", LandlockAccess::Read));
    }
}
