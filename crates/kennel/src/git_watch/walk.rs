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
