//! The second wall: a Landlock ruleset derived from the same plan as the mount view. A path
//! must pass both; a mistake in one is caught by the other.

use std::path::PathBuf;

use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
};
use serde::Serialize;

use crate::error::NativeError;

/// The ABI kennel asks for: file access rights up to device ioctls (ABI 5), and the scoping
/// of abstract unix sockets and signals (ABI 6).
const TARGET_ABI: ABI = ABI::V6;

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

fn rights(access: LandlockAccess) -> landlock::BitFlags<AccessFs> {
    let read = AccessFs::from_read(TARGET_ABI);
    match access {
        LandlockAccess::ListOnly => AccessFs::ReadDir.into(),
        LandlockAccess::Read => read,
        LandlockAccess::ReadWriteFiles => read | AccessFs::WriteFile,
        LandlockAccess::Full => AccessFs::from_all(TARGET_ABI),
    }
}

fn err(e: impl std::fmt::Display) -> NativeError {
    NativeError::Setup(format!("Landlock: {e}"))
}

/// Restricts the calling thread (and what it starts) to `rules`. Paths that do not exist
/// in the sandbox (optional binds that were skipped) get no rule.
pub fn restrict(rules: &[LandlockRule], enforcement: Enforcement) -> Result<(), NativeError> {
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .map_err(err)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(err)?
        .create()
        .map_err(err)?;
    for rule in rules {
        let Ok(meta) = std::fs::metadata(&rule.path) else {
            continue;
        };
        let Ok(fd) = PathFd::new(&rule.path) else {
            continue;
        };
        // Rights that only make sense on directories would make the ruleset "partial".
        let mut access = rights(rule.access);
        if !meta.is_dir() {
            access &= AccessFs::from_file(TARGET_ABI);
        }
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(err)?;
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
