//! Reading and writing files that the sandbox, or anyone who can commit to a repository,
//! may have left in kennel's way (DESIGN.md, "The seams"): a symbolic link to a secret or to
//! `/dev/zero`, a FIFO that blocks a reader forever, a file of gigabytes. Every read here is
//! bounded and never blocks; what the sandbox controls is opened without following links,
//! one component at a time below a folder kennel opened itself.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// The largest config file kennel reads (the user's, a repository's `.kennel.toml`).
pub const MAX_CONFIG: u64 = 1 << 20;

/// Why a file was not read.
#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// A symbolic link where kennel follows none.
    Link,
    /// Not a regular file: `kind` says what it is ("a FIFO", "a folder", ...).
    NotRegular(&'static str),
    /// Larger than `limit` bytes.
    TooLarge {
        limit: u64,
    },
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("it does not exist"),
            ReadError::Link => {
                f.write_str("it is a symbolic link, which kennel does not follow here")
            }
            ReadError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge { limit } => {
                write!(
                    f,
                    "it is larger than {} MiB, the most kennel reads",
                    limit >> 20
                )
            }
            ReadError::Io(e) => e.fmt(f),
        }
    }
}

impl From<Errno> for ReadError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::ENOENT => ReadError::NotFound,
            Errno::ELOOP => ReadError::Link,
            e => ReadError::Io(e.into()),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => ReadError::NotFound,
            _ => match e.raw_os_error().map(Errno::from_raw) {
                Some(Errno::ELOOP) => ReadError::Link,
                _ => ReadError::Io(e),
            },
        }
    }
}

fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => "a folder",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFREG => "a regular file",
        _ => "not a regular file",
    }
}

fn is_regular(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG
}

/// Reads at most `limit` bytes of an open regular file, or says it is larger.
fn read_bounded(file: File, limit: u64) -> Result<Vec<u8>, ReadError> {
    let st = fstat(&file)?;
    if !is_regular(&st) {
        return Err(ReadError::NotRegular(kind_of(st.st_mode)));
    }
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut bytes = Vec::new();
    // One byte more than the limit: a file that grows while it is read is still caught.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

/// A file of the user's own (their config, their real `~/.claude.json`): links are followed
/// (a config may live in the Nix store, a dotfile in a repository), but it must be a
/// regular file of at most `limit` bytes. Checked before opening, so that a device is never
/// opened, and again on the open file, so that a swap in between is caught.
pub fn read_users_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.mode())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)?;
    let st = fstat(&file)?;
    if st.st_dev != meta.dev() || st.st_ino != meta.ino() {
        return Err(ReadError::Io(io::Error::other(
            "it was replaced while kennel opened it; try again",
        )));
    }
    read_bounded(file, limit)
}

/// A file that someone else may have placed (the repository's `.kennel.toml`): never
/// through a symbolic link, a regular file of at most `limit` bytes.
pub fn read_file_no_link(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)?;
    read_bounded(file, limit)
}

/// Opens the folder `dir` (kennel's own, e.g. the sandbox's home on the host).
pub fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
        .open(dir)?;
    Ok(file.into())
}

/// The names of `rel`, which must be plain names (no `..`, no root).
fn names(rel: &Path) -> Result<Vec<&std::ffi::OsStr>, ReadError> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(ReadError::Io(io::Error::other(format!(
                "{} is not a plain relative path",
                kennel_policy::shown_path(rel)
            )))),
        })
        .collect()
}

const DIR_FLAGS: OFlag = OFlag::O_DIRECTORY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_RDONLY);

/// Reads `rel` below the folder `root` without following any link on the way (the sandbox
/// controls everything below `root`), a regular file of at most `limit` bytes.
pub fn read_below(root: &impl AsFd, rel: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let names = names(rel)?;
    let Some((last, parents)) = names.split_last() else {
        return Err(ReadError::NotRegular("a folder"));
    };
    let mut dir: Option<OwnedFd> = None;
    for name in parents {
        let at = dir.as_ref().map_or(root.as_fd(), AsFd::as_fd);
        let next = openat(at, *name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            // A link or a file where a folder should be: what is below is not there.
            Errno::ENOTDIR => ReadError::NotFound,
            e => e.into(),
        })?;
        dir = Some(next);
    }
    let at = dir.as_ref().map_or(root.as_fd(), AsFd::as_fd);
    let fd = openat(
        at,
        *last,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    read_bounded(File::from(fd), limit)
}

/// Writes `bytes` as a new file `rel` below the folder `root` (kennel's own: the sandbox's
/// home), mode 0600, never through a link: whatever the sandbox left at that name, or in
/// place of a folder on the way, is removed first when it is a link or a file (kennel's own
/// folder, and the copy it replaces is the sandbox's); a folder in the way is an error.
pub fn write_below(root: &impl AsFd, rel: &Path, bytes: &[u8]) -> io::Result<()> {
    let names = names(rel).map_err(|e| io::Error::other(e.to_string()))?;
    let Some((last, parents)) = names.split_last() else {
        return Err(io::Error::other("no file name"));
    };
    let mut dir: Option<OwnedFd> = None;
    for name in parents {
        let at = dir.as_ref().map_or(root.as_fd(), AsFd::as_fd);
        let next = match openat(at, *name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                mkdirat(at, *name, Mode::from_bits_truncate(0o700))?;
                openat(at, *name, DIR_FLAGS, Mode::empty())?
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                unlinkat(at, *name, UnlinkatFlags::NoRemoveDir)?;
                mkdirat(at, *name, Mode::from_bits_truncate(0o700))?;
                openat(at, *name, DIR_FLAGS, Mode::empty())?
            }
            Err(e) => return Err(e.into()),
        };
        dir = Some(next);
    }
    let at = dir.as_ref().map_or(root.as_fd(), AsFd::as_fd);
    match fstatat(at, *last, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st)
            if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR =>
        {
            return Err(io::Error::other(
                "a folder is in its place in the sandbox's home: remove that folder",
            ));
        }
        Ok(_) => unlinkat(at, *last, UnlinkatFlags::NoRemoveDir)?,
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = openat(
        at,
        *last,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    File::from(fd).write_all(bytes)
}

/// A new file `path` (it must not exist, and a link there is not followed) with `mode`
/// exactly (whatever the umask), holding `bytes`.
pub fn create_new(path: &Path, mode: u32, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)?;
    nix::sys::stat::fchmod(&file, Mode::from_bits_truncate(mode))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn links_fifos_and_large_files_below_a_folder_are_not_read() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let secret = t.path().join("secret");
        std::fs::write(&secret, "key")?;
        let home = t.path().join("home");
        std::fs::create_dir_all(home.join("sub"))?;
        std::fs::write(home.join("sub/ok"), "fine")?;
        symlink(&secret, home.join("link"))?;
        symlink(t.path(), home.join("dirlink"))?;
        nix::unistd::mkfifo(&home.join("fifo"), Mode::from_bits_truncate(0o600))?;
        std::fs::write(home.join("big"), vec![b'x'; 100])?;
        let root = open_dir(&home)?;
        assert_eq!(
            read_below(&root, Path::new("sub/ok"), 10).ok(),
            Some(b"fine".to_vec())
        );
        assert!(matches!(
            read_below(&root, Path::new("link"), 10),
            Err(ReadError::Link)
        ));
        assert!(read_below(&root, Path::new("dirlink/secret"), 10).is_err());
        assert!(matches!(
            read_below(&root, Path::new("fifo"), 10),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            read_below(&root, Path::new("big"), 10),
            Err(ReadError::TooLarge { limit: 10 })
        ));
        assert!(matches!(
            read_below(&root, Path::new("none"), 10),
            Err(ReadError::NotFound)
        ));
        assert!(read_below(&root, Path::new("../secret"), 10).is_err());
        Ok(())
    }

    #[test]
    fn writing_below_a_folder_replaces_links_and_never_writes_through_them() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let outside = t.path().join("outside");
        let home = t.path().join("home");
        std::fs::create_dir_all(&home)?;
        symlink(&outside, home.join("dangling"))?;
        symlink(t.path(), home.join("dir"))?;
        let root = open_dir(&home)?;
        write_below(&root, Path::new("dangling"), b"a")?;
        write_below(&root, Path::new("dir/outside"), b"b")?;
        assert!(!outside.exists(), "written through a link");
        assert_eq!(std::fs::read(home.join("dangling"))?, b"a");
        assert_eq!(std::fs::read(home.join("dir/outside"))?, b"b");
        let meta = std::fs::symlink_metadata(home.join("dangling"))?;
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        std::fs::create_dir(home.join("folder"))?;
        assert!(write_below(&root, Path::new("folder"), b"c").is_err());
        Ok(())
    }

    #[test]
    fn a_users_file_may_be_a_link_but_must_be_a_bounded_regular_file() -> io::Result<()> {
        let t = tempfile::tempdir()?;
        let real = t.path().join("real");
        std::fs::write(&real, "x = 1")?;
        let link = t.path().join("link");
        symlink(&real, &link)?;
        assert_eq!(read_users_file(&link, 10).ok(), Some(b"x = 1".to_vec()));
        assert!(matches!(read_file_no_link(&link, 10), Err(ReadError::Link)));
        let zero = t.path().join("zero");
        symlink("/dev/zero", &zero)?;
        assert!(matches!(
            read_users_file(&zero, 10),
            Err(ReadError::NotRegular("a character device"))
        ));
        let fifo = t.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))?;
        assert!(matches!(
            read_users_file(&fifo, 10),
            Err(ReadError::NotRegular(_))
        ));
        assert!(matches!(
            read_file_no_link(&fifo, 10),
            Err(ReadError::NotRegular(_))
        ));
        assert!(matches!(
            read_users_file(&real, 2),
            Err(ReadError::TooLarge { .. })
        ));
        Ok(())
    }
}
