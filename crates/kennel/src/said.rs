//! What kennel has told the user about a workspace already. A note that would be the same
//! at every start (what the repository's git runs, the variables a profile drops, the files
//! an interactive shell leaves in the sandbox's home) is said once per workspace, and again
//! when it changes: a warning repeated at every start is one nobody reads.
//!
//! Kept in `$XDG_STATE_HOME/kennel/said/NAME-HASH` (one hash of each note a line), outside
//! the sandbox's reach; written only when something new was said.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use kennel_policy::Context;

/// The most hashes kept for one workspace; past it the file starts again.
const MAX_KEPT: usize = 4096;

pub struct Said {
    file: Option<PathBuf>,
    known: HashSet<u64>,
    new: Vec<u64>,
}

/// FNV-1a: stable across Rust versions, unlike the standard library's hasher.
fn hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// kennel's state about `ctx`'s workspace in `kind` (`said`, `checkpoints`):
/// `$XDG_STATE_HOME/kennel/KIND/NAME-HASH` (`~/.local/state` when unset or relative), the
/// workspace's folder name and a hash of its path.
pub fn workspace_state(ctx: &Context, kind: &str) -> PathBuf {
    let state = ctx
        .var("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| ctx.home.join(".local/state"));
    let root = &ctx.workspace.root;
    let name = root
        .file_name()
        .map_or_else(|| "root".into(), |n| n.to_string_lossy().into_owned());
    state
        .join("kennel")
        .join(kind)
        .join(format!("{name}-{:016x}", hash(&root.to_string_lossy())))
}

impl Said {
    /// What was said about `ctx`'s workspace before (nothing, when it cannot be read).
    pub fn load(ctx: &Context) -> Said {
        let file = workspace_state(ctx, "said");
        let known = crate::files::read_users_file(&file, 256 << 10)
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter_map(|l| u64::from_str_radix(l, 16).ok())
                    .collect()
            })
            .unwrap_or_default();
        Said {
            file: Some(file),
            known,
            new: Vec::new(),
        }
    }

    /// Whether `text` is new for this workspace (and from now on, it is not).
    pub fn first_time(&mut self, text: &str) -> bool {
        let h = hash(text);
        let new = self.known.insert(h);
        if new {
            self.new.push(h);
        }
        new
    }

    /// Keeps what was said for the next start; silently nothing when it cannot.
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if self.new.is_empty() {
            return;
        }
        let _ = write(file, &self.new, self.known.len() > MAX_KEPT);
    }
}

fn write(file: &Path, hashes: &[u64], restart: bool) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(!restart)
        .write(true)
        .truncate(restart)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(file)?;
    let text: String = hashes.iter().map(|h| format!("{h:016x}\n")).collect();
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_new_once() {
        let mut said = Said {
            file: None,
            known: HashSet::new(),
            new: Vec::new(),
        };
        assert!(said.first_time("a"));
        assert!(!said.first_time("a"));
        assert!(said.first_time("b"));
        assert_eq!(said.new.len(), 2);
    }
}
