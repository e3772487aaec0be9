//! The walk of the work tree: every `.git` in it, bounded, and where it could not look.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kennel_policy::shown_path;
use rustix::fs::{FileType, Mode, OFlags};

use super::{Stamp, MAX_DEPTH, MAX_ENTRIES};

/// What the walk of the work tree found.
#[derive(Default)]
pub(super) struct Walk {
    /// Each `.git`, and whether a folder above it (below the workspace's top) changed
    /// during the session: a repository that may have arrived whole, its files older than
    /// the session (moved in from a place the check does not look).
    pub(super) dot_gits: Vec<(PathBuf, bool)>,
    pub(super) original_dot_git: Option<PathBuf>,
    pub(super) blind: Vec<String>,
    /// Dependency and build folders not entered ([`PRUNED`]).
    pub(super) pruned: Vec<PathBuf>,
}

/// Folders of dependencies and build output, each often tens of thousands of folders that
/// the user's git ignores: the walk does not enter them, which keeps the check at the end
/// of every session to the project's own folders (node_modules made it take 100 ms and
/// more). A repository the session made in one of them is found through the index instead,
/// when it is staged: only then does `git status` enter it.
pub(super) const PRUNED: &[&str] = &[
    "node_modules",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradle",
    ".next",
    ".terraform",
];

/// The paths (relative to the work tree) of the gitlinks in the index `bytes`: submodules
/// and nested repositories staged in the outer repository (mode 160000). Index versions 2,
/// 3 and 4; `oid_len` is 20 (SHA-1) or 32 (SHA-256). Bounded by the bytes; what does not
/// parse ends the list.
pub(super) fn gitlinks(bytes: &[u8], oid_len: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let u32_at = |at: usize| -> Option<u32> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    if bytes.get(..4) != Some(b"DIRC") {
        return out;
    }
    let (Some(version), Some(count)) = (u32_at(4), u32_at(8)) else {
        return out;
    };
    let mut at = 12;
    let mut previous: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = at;
        let Some(mode) = u32_at(at + 24) else { break };
        let flags_at = at + 40 + oid_len;
        let Some(flags) = bytes
            .get(flags_at..flags_at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
        else {
            break;
        };
        at = flags_at + 2;
        if version >= 3 && flags & 0x4000 != 0 {
            at += 2;
        }
        let name = if version == 4 {
            // Prefix compression: how much of the previous name to drop, then the rest.
            let Some(mut c) = bytes.get(at).copied() else {
                break;
            };
            at += 1;
            let mut drop = usize::from(c & 0x7f);
            while c & 0x80 != 0 {
                let Some(next) = bytes.get(at).copied() else {
                    return out;
                };
                at += 1;
                c = next;
                drop = ((drop + 1) << 7) | usize::from(c & 0x7f);
            }
            let Some(len) = bytes.get(at..).and_then(|b| b.iter().position(|b| *b == 0)) else {
                break;
            };
            let keep = previous.len().saturating_sub(drop);
            let mut name = previous[..keep].to_vec();
            name.extend_from_slice(&bytes[at..at + len]);
            at += len + 1;
            name
        } else {
            let Some(len) = bytes.get(at..).and_then(|b| b.iter().position(|b| *b == 0)) else {
                break;
            };
            let name = bytes[at..at + len].to_vec();
            // NUL-padded to a multiple of eight bytes from the entry's start.
            let entry_len = at + len - start;
            at = start + (entry_len + 8) / 8 * 8;
            name
        };
        if mode & 0o170000 == 0o160000 {
            out.push(PathBuf::from(std::ffi::OsStr::from_bytes(&name)));
        }
        previous = name;
    }
    out
}

/// Every `.git` (folder, file or link) in the work tree, without entering git directories
/// or following links; bounded, and each place it could not read is named.
///
/// Each folder is opened relative to its parent's descriptor and listed into a reused
/// buffer: the kernel's work (open, getdents, close) is then nearly all there is, about
/// 4 µs a folder on an ext4 here, where listing by path cost a tenth more (bench/README.md).
pub(super) fn walk(root: &Path, dot_git: Option<(u64, u64)>, start: Stamp) -> Walk {
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
            if PRUNED.iter().any(|p| name == *p) {
                // A repository in there matters only staged as a gitlink (git status does
                // not enter an ignored folder, nor `git add -A` add it): the index says
                // where those are (see `gitlinks`).
                w.pruned.push(path.join(name));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The index as git writes it, versions 2, 3 and 4: the gitlinks and nothing else.
    #[test]
    fn gitlinks_are_read_from_every_index_version() {
        for version in ["2", "3", "4"] {
            let dir = tempfile::tempdir().unwrap();
            let git = |args: &[&str]| {
                let out = std::process::Command::new("git")
                    .args(args)
                    .current_dir(dir.path())
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{args:?}: {out:?}");
            };
            git(&["init", "-q", "."]);
            std::fs::write(dir.path().join("file"), "x").unwrap();
            git(&["add", "file"]);
            let oid = "1234567890123456789012345678901234567890";
            for path in ["a/node_modules/inner", "a/node_modules/other", "z"] {
                git(&[
                    "update-index",
                    "--add",
                    "--cacheinfo",
                    &format!("160000,{oid},{path}"),
                ]);
            }
            if version == "3" {
                git(&["update-index", "--skip-worktree", "file"]);
            }
            git(&["update-index", "--index-version", version]);
            let bytes = std::fs::read(dir.path().join(".git/index")).unwrap();
            let links = gitlinks(&bytes, 20);
            assert_eq!(
                links,
                ["a/node_modules/inner", "a/node_modules/other", "z"]
                    .map(PathBuf::from)
                    .to_vec(),
                "index version {version}"
            );
        }
        assert!(gitlinks(b"DIRC\0\0\0\x02\xff\xff\xff\xff", 20).is_empty());
        assert!(gitlinks(b"nonsense", 20).is_empty());
    }
}
