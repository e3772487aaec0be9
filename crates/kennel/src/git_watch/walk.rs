//! The walk of the work tree: every `.git` in it, bounded, and where it could not look.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use kennel_policy::shown_path;
use rustix::fd::OwnedFd;
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
    /// How many folders were listed (the others came from the survey).
    pub(super) listed: usize,
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
///
/// With a [`Survey`] made during the session, a folder the session did not change is not
/// listed again: one `stat` of it by name tells its inode and ctime, and the survey's
/// listing of that inode stands for its entries (see [`Survey::listing`]).
pub(super) fn walk(
    root: &Path,
    dot_git: Option<(u64, u64)>,
    start: Stamp,
    survey: Option<&Survey>,
) -> Walk {
    let mut w = Walk::default();
    match rustix::fs::open(root, LIST, Mode::empty()) {
        Ok(fd) => {
            let mut path = root.to_path_buf();
            let mut state = WalkState {
                dot_git,
                start,
                seen: 0,
                bufs: Vec::new(),
                survey: survey.filter(|s| !s.folders.is_empty()),
            };
            walk_dir(&fd, None, &mut path, 0, false, &mut state, &mut w);
        }
        Err(e) => w.blind.push(format!(
            "cannot read {}: {}",
            shown_path(root),
            std::io::Error::from(e)
        )),
    }
    w
}

/// How a folder is opened to be listed.
const LIST: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What [`walk_dir`] carries from folder to folder.
struct WalkState<'s> {
    dot_git: Option<(u64, u64)>,
    start: Stamp,
    seen: usize,
    /// Listing buffers of the levels below, reused.
    bufs: Vec<Vec<std::mem::MaybeUninit<u8>>>,
    survey: Option<&'s Survey>,
}

/// What the walk acts on in a folder: its `.git` (whatever its type) and its folders.
struct Entry {
    name: Box<OsStr>,
    dir: bool,
    ino: u64,
}

/// A folder's entries the walk acts on, and how many it has in all.
#[derive(Default)]
pub(super) struct Listing {
    entries: Vec<Entry>,
    count: usize,
    /// The folder's ctime when it was listed.
    ctime: Stamp,
}

/// Lists the folder open at `fd` (`path`), counting its entries against [`MAX_ENTRIES`]
/// in `seen`: the listing, and what stopped it early, if anything.
fn list(
    fd: &OwnedFd,
    path: &Path,
    seen: &mut usize,
    bufs: &mut Vec<Vec<std::mem::MaybeUninit<u8>>>,
) -> (Listing, Option<String>) {
    let mut listing = Listing::default();
    let mut stopped = None;
    let mut buf = bufs
        .pop()
        .unwrap_or_else(|| vec![std::mem::MaybeUninit::uninit(); 16 * 1024]);
    {
        let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
        while let Some(entry) = dir.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    stopped = Some(format!(
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
            *seen += 1;
            listing.count += 1;
            if *seen > MAX_ENTRIES {
                stopped = Some(format!(
                    "the work tree has more than {MAX_ENTRIES} entries; kennel stopped looking"
                ));
                break;
            }
            let dot_git = is_dot_git(name);
            let mut kind = entry.file_type();
            if kind == FileType::Unknown && !dot_git {
                kind = rustix::fs::statat(
                    fd,
                    entry.file_name(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode));
            }
            if dot_git || kind == FileType::Directory {
                listing.entries.push(Entry {
                    name: OsStr::from_bytes(name).into(),
                    dir: kind == FileType::Directory,
                    ino: entry.ino(),
                });
            }
        }
    }
    bufs.push(buf);
    (listing, stopped)
}

/// A name git may read as `.git`: in a case-insensitive folder (ext4's and F2FS's
/// `casefold`, `chattr +F`) `.GIT` is `.git` to git, so the walk takes any case.
fn is_dot_git(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b".git")
}

fn stamp_of(st: &rustix::fs::Stat) -> Stamp {
    Stamp(i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec))
}

/// One folder of [`walk`], open at `fd`: `path` is its path (restored on return); `fresh`
/// whether it or a folder above it (the top aside) changed during the session. `listing`:
/// its entries from the survey (then `fd` may be an `O_PATH` descriptor), or None to list
/// it now.
fn walk_dir(
    fd: &OwnedFd,
    listing: Option<&Listing>,
    path: &mut PathBuf,
    depth: usize,
    fresh: bool,
    st: &mut WalkState,
    w: &mut Walk,
) {
    let live;
    let (listing, fresh) = match listing {
        // Unchanged since before the start: not fresh by itself.
        Some(listing) => {
            st.seen += listing.count;
            (listing, fresh)
        }
        None => {
            let fresh = fresh
                || (depth > 0 && rustix::fs::fstat(fd).is_ok_and(|m| stamp_of(&m) >= st.start));
            w.listed += 1;
            let (listed, stopped) = list(fd, path, &mut st.seen, &mut st.bufs);
            if let Some(why) = stopped {
                if !w.blind.contains(&why) {
                    w.blind.push(why);
                }
            }
            live = listed;
            (&live, fresh)
        }
    };
    let mut subdirs: Vec<&OsStr> = Vec::new();
    for entry in &listing.entries {
        let name = &*entry.name;
        if is_dot_git(name.as_bytes()) {
            w.dot_gits.push((path.join(name), fresh));
            continue;
        }
        if !entry.dir {
            continue;
        }
        if PRUNED.iter().any(|p| name == *p) {
            // A repository in there matters only staged as a gitlink (git status does
            // not enter an ignored folder, nor `git add -A` add it): the index says
            // where those are (see `gitlinks`).
            w.pruned.push(path.join(name));
            continue;
        }
        if let Some((dev, ino)) = st.dot_git {
            if entry.ino == ino
                && rustix::fs::statat(fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| st.st_dev == dev)
            {
                // The workspace's own `.git`, moved: a git directory, not work tree.
                w.original_dot_git = Some(path.join(name));
                continue;
            }
        }
        subdirs.push(name);
    }
    for name in subdirs {
        if st.seen > MAX_ENTRIES {
            return;
        }
        path.push(name);
        if depth + 1 > MAX_DEPTH {
            w.blind.push(format!(
                "{} is more than {MAX_DEPTH} folders deep",
                shown_path(path)
            ));
        } else if !walk_unchanged(fd, name, path, depth + 1, fresh, st, w) {
            match rustix::fs::openat(fd, name, LIST, Mode::empty()) {
                Ok(child) => walk_dir(&child, None, path, depth + 1, fresh, st, w),
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

/// The folder `name` of the folder open at `parent`, walked with its survey listing if it
/// has one that still holds: false when it must be listed now.
fn walk_unchanged(
    parent: &OwnedFd,
    name: &OsStr,
    path: &mut PathBuf,
    depth: usize,
    fresh: bool,
    st: &mut WalkState,
    w: &mut Walk,
) -> bool {
    let Some(survey) = st.survey else {
        return false;
    };
    let Ok(meta) = rustix::fs::statat(parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    if FileType::from_raw_mode(meta.st_mode) != FileType::Directory {
        return false;
    }
    let ctime = stamp_of(&meta);
    let Some(listing) = survey.listing(meta.st_dev, meta.st_ino, ctime, st.dot_git) else {
        if ctime < survey.start && !survey.complete {
            // An old folder the survey did not reach: it stopped about here, and the walk
            // goes in its order, so the rest is listed without asking it first.
            st.survey = None;
        }
        return false;
    };
    if st.seen + listing.count > MAX_ENTRIES {
        // Listed now, to stop where the limit falls and say so.
        return false;
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if listing
        .entries
        .iter()
        .all(|e| !e.dir || is_dot_git(e.name.as_bytes()))
    {
        // Nothing to enter (a `.git` folder is not entered): no descriptor needed. `fresh`
        // stays as it is: the folder's own ctime is older than the start.
        st.seen += listing.count;
        for entry in &listing.entries {
            w.dot_gits.push((path.join(&*entry.name), fresh));
        }
        return true;
    }
    match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(child)
            if rustix::fs::fstat(&child)
                .is_ok_and(|m| m.st_dev == meta.st_dev && m.st_ino == meta.st_ino) =>
        {
            walk_dir(&child, Some(listing), path, depth, fresh, st, w);
            true
        }
        _ => false,
    }
}

/// The folders of the work tree as they were listed during the session, by inode: the end
/// walk takes a folder's entries from here instead of listing it again when the folder's
/// ctime shows it has not changed since before the session started.
///
/// Sound because ctime cannot be set back: a folder gains, loses or renames an entry only
/// by a change that stamps its ctime with the time of the change, so a folder whose ctime
/// at the end is still older than the start (with [`super::CLOCK_MARGIN`]) has had the same
/// entries since before the start, and so had them whenever the survey listed it. A folder
/// removed and another made with its inode number has a new ctime. Whatever the sandbox
/// did while the survey ran is in a folder whose ctime is newer: listed again at the end.
/// Not an encrypted folder, whose names change with its key and not its ctime (see
/// [`encrypted`]).
#[derive(Default)]
pub(super) struct Survey {
    folders: HashMap<(u64, u64), Listing>,
    start: Stamp,
    /// Whether it listed the whole work tree (it did not stop early, nor run out of room).
    complete: bool,
    /// The work tree's file system: listings of folders on another (a mount inside the
    /// work tree) are not used.
    dev: u64,
}

/// The file systems whose folders are known to get a new ctime at every change of their
/// entries, as the kernel's own local file systems do: ext2/3/4, XFS, Btrfs, tmpfs, F2FS,
/// bcachefs and ZFS. On others (FUSE, network file systems, whose attributes can be cached
/// or made up by a server), the end walk lists every folder.
const CTIME_KEPT: &[i64] = &[
    0xEF53,
    0x5846_5342,
    0x9123_683E,
    0x0102_1994,
    0xF2F5_2010,
    0xCA45_1A4E,
    0x2FC1_2FC1,
];

/// How many folders and entries the survey keeps in all, and entries of one folder: beyond,
/// folders are listed again at the end. About 130 bytes a folder and 50 an entry with short
/// names: 4 MB for a work tree of 20,000 folders, 35 MB at most (70 MB were every name 255
/// bytes long). Only folders older than the session count: the sandbox cannot add any.
const SURVEY_ENTRIES: usize = 250_000;
const SURVEY_FOLDER_ENTRIES: usize = 20_000;

impl Survey {
    /// The listing of the folder (`dev`, `ino`) whose ctime is now `ctime`, if the survey
    /// has one that still holds: the folder unchanged since before the start, and listed
    /// with the same ctime. None for a folder holding an entry with the inode of the
    /// workspace's `.git` (the walk tells that one by its device, read live).
    fn listing(
        &self,
        dev: u64,
        ino: u64,
        ctime: Stamp,
        dot_git: Option<(u64, u64)>,
    ) -> Option<&Listing> {
        if ctime >= self.start || dev != self.dev {
            return None;
        }
        let listing = self.folders.get(&(dev, ino))?;
        let holds_dot_git =
            dot_git.is_some_and(|(_, i)| listing.entries.iter().any(|e| e.ino == i));
        (listing.ctime == ctime && !holds_dot_git).then_some(listing)
    }
}

/// Lists the work tree as [`walk`] would, keeping the listing of each folder whose ctime is
/// older than `start`: made during the session, on a thread of its own, so that the walk
/// at the end lists only what the session changed. Stops early when `stop` is set; what it
/// kept until then serves as well.
pub(super) fn survey(root: &Path, start: Stamp, stop: &AtomicBool) -> Survey {
    let mut survey = Survey {
        folders: HashMap::new(),
        start,
        complete: false,
        dev: 0,
    };
    let Ok(fd) = rustix::fs::open(root, LIST, Mode::empty()) else {
        return survey;
    };
    let kept_ctime = rustix::fs::fstatfs(&fd).is_ok_and(|fs| {
        #[allow(clippy::useless_conversion)] // the field's type differs between targets
        let kind = i64::from(fs.f_type);
        CTIME_KEPT.contains(&kind)
    });
    match rustix::fs::fstat(&fd) {
        Ok(meta) if kept_ctime => survey.dev = meta.st_dev,
        _ => return survey,
    }
    let mut seen = 0;
    let mut kept = 0;
    let mut bufs = Vec::new();
    let mut path = root.to_path_buf();
    survey.complete = survey_dir(
        &fd,
        &mut path,
        0,
        stop,
        &mut seen,
        &mut kept,
        &mut bufs,
        &mut survey,
    );
    survey
}

#[allow(clippy::too_many_arguments)]
fn survey_dir(
    fd: &OwnedFd,
    path: &mut PathBuf,
    depth: usize,
    stop: &AtomicBool,
    seen: &mut usize,
    kept: &mut usize,
    bufs: &mut Vec<Vec<std::mem::MaybeUninit<u8>>>,
    survey: &mut Survey,
) -> bool {
    if stop.load(Ordering::Relaxed) {
        return false;
    }
    let Ok(meta) = rustix::fs::fstat(fd) else {
        return true;
    };
    let (mut listing, stopped) = list(fd, path, seen, bufs);
    listing.ctime = stamp_of(&meta);
    let subdirs: Vec<Box<OsStr>> = listing
        .entries
        .iter()
        .filter(|e| {
            e.dir && !is_dot_git(e.name.as_bytes()) && !PRUNED.iter().any(|p| e.name.as_ref() == *p)
        })
        .map(|e| e.name.clone())
        .collect();
    if *kept + 1 + listing.entries.len() > SURVEY_ENTRIES {
        return false;
    }
    let keep = stopped.is_none()
        && listing.ctime < survey.start
        && listing.entries.len() <= SURVEY_FOLDER_ENTRIES
        && !encrypted(fd);
    if keep {
        *kept += 1 + listing.entries.len();
        survey.folders.insert((meta.st_dev, meta.st_ino), listing);
    }
    if *seen > MAX_ENTRIES {
        return false;
    }
    if stopped.is_some() || depth + 1 > MAX_DEPTH {
        return true;
    }
    for name in subdirs {
        if let Ok(child) = rustix::fs::openat(fd, &*name, LIST, Mode::empty()) {
            path.push(&*name);
            let went_through = survey_dir(&child, path, depth + 1, stop, seen, kept, bufs, survey);
            path.pop();
            if !went_through {
                return false;
            }
        }
    }
    true
}

/// Whether the folder open at `fd` is encrypted (fscrypt: ext4, F2FS, Btrfs): its entries
/// are listed under other names while its key is missing, and adding the key (an ioctl any
/// user may make) changes no ctime, so that a `.git` the survey saw as a string of random
/// letters would be `.git` at the end, and to git. Such a folder is listed at the end;
/// where statx cannot tell, as well.
fn encrypted(fd: &OwnedFd) -> bool {
    rustix::fs::statx(
        fd,
        "",
        rustix::fs::AtFlags::EMPTY_PATH,
        rustix::fs::StatxFlags::empty(),
    )
    .map_or(true, |s| {
        s.stx_attributes
            .contains(rustix::fs::StatxAttributes::ENCRYPTED)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::fs;
    use std::time::SystemTime;

    fn sorted(mut found: Vec<(PathBuf, bool)>) -> Vec<(PathBuf, bool)> {
        found.sort();
        found
    }

    /// What the session does after the survey listed the tree is found at the end exactly
    /// as a walk that lists everything finds it, and the folders it did not touch are not
    /// listed again.
    #[test]
    fn the_end_walk_with_a_survey_finds_what_a_full_walk_finds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |p: &str| fs::create_dir_all(root.join(p)).unwrap();
        for p in [
            "src/a/b/leaf",
            "src/a/c",
            "docs/x/y",
            "old/inner/.git/hooks",
            "node_modules/pkg/.git",
            "replaced/sub",
            "gone/deep/er",
            "moved/from/here",
            "keep/repo/.git/hooks",
            "keep/file",
        ] {
            mk(p);
        }
        fs::write(root.join("src/a/file"), "x").unwrap();
        fs::write(root.join("keep/file/.git"), "gitdir: /elsewhere\n").unwrap();
        // The session starts: every folder above is older than the start (the kernel's
        // clock ticks coarsely: wait until the next tick is surely past).
        std::thread::sleep(std::time::Duration::from_millis(30));
        let start = Stamp::from_time(SystemTime::now());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let survey = survey(root, start, &AtomicBool::new(false));
        assert!(survey.complete);
        assert!(survey.folders.len() >= 14, "{}", survey.folders.len());

        // After the survey: a repository in an old leaf folder, a `.git` file in an old
        // folder with folders, a repository from a folder the walk does not enter moved into
        // an old folder, a folder replaced by another of the same name holding a `.git`, a
        // folder removed and made again, a folder of the tree moved below another.
        mk("src/a/b/leaf/.git");
        fs::write(root.join("docs/.git"), "gitdir: /elsewhere\n").unwrap();
        fs::rename(root.join("node_modules/pkg"), root.join("src/a/c/pkg")).unwrap();
        fs::remove_dir_all(root.join("replaced")).unwrap();
        mk("replaced/sub/.git");
        fs::remove_dir_all(root.join("gone/deep")).unwrap();
        mk("gone/deep/.git");
        fs::rename(root.join("moved/from"), root.join("docs/x/y/from")).unwrap();
        mk("docs/x/y/from/here/.git");
        // As git reads it in a case-insensitive folder.
        mk("old/inner/other/.GIT");

        let full = walk(root, None, start, None);
        let quick = walk(root, None, start, Some(&survey));
        let expected = sorted(full.dot_gits.clone());
        for want in [
            "src/a/b/leaf/.git",
            "docs/.git",
            "src/a/c/pkg/.git",
            "replaced/sub/.git",
            "gone/deep/.git",
            "docs/x/y/from/here/.git",
            "old/inner/.git",
            "old/inner/other/.GIT",
            "keep/repo/.git",
            "keep/file/.git",
        ] {
            assert!(
                expected.iter().any(|(p, _)| *p == root.join(want)),
                "{want}: {expected:?}"
            );
        }
        assert_eq!(sorted(quick.dot_gits), expected);
        assert_eq!(quick.pruned, full.pruned);
        assert_eq!(quick.blind, full.blind);
        // Listed again: the top and the 14 folders the session made or changed (`leaf`,
        // `docs`, `c`, `pkg`, `replaced` and `sub`, `gone` and `deep`, `moved`, `y`, `from`
        // and `here`, `inner` and `other`); not the 8 it left alone (`src`, `a`, `b`, `x`,
        // `old`, `keep`, `repo`, `file`).
        assert!(quick.listed <= 15, "{} listed", quick.listed);
        assert!(
            full.listed >= quick.listed + 8,
            "{} listed, {} by a full walk",
            quick.listed,
            full.listed
        );
    }

    /// A survey stopped early serves for what it listed, and the walk still finds all.
    #[test]
    fn a_survey_stopped_early_serves_for_what_it_listed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..20 {
            fs::create_dir_all(root.join(format!("d{i}/e"))).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        let start = Stamp::from_time(SystemTime::now());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let stopped = survey(root, start, &AtomicBool::new(true));
        assert!(!stopped.complete);
        assert!(stopped.folders.is_empty());
        fs::create_dir_all(root.join("d7/e/.git")).unwrap();
        let quick = walk(root, None, start, Some(&stopped));
        // `e` changed (fresh): a `.git` made in it during the session.
        assert_eq!(quick.dot_gits, vec![(root.join("d7/e/.git"), true)]);
        assert_eq!(quick.listed, 41);
    }

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
