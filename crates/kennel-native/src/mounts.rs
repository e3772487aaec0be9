//! Carries out a [`Plan`] inside the new mount namespace: a tmpfs becomes the root, the old
//! root is reachable at [`OLD_ROOT`] while the plan's binds are made, then it is detached.
//!
//! Mount calls are the larger part of a sandbox's start-up, so the executor makes as few as
//! the view allows: an empty read-only directory at the top level is a directory of the root
//! tmpfs rather than a tmpfs of its own, and read-only is set once, recursively, on the whole
//! tree at the end, then lifted again only where a writable mount differs from the one it
//! sits in ([`Executor::finish`]).

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use kennel_policy::Placeholder;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd::{chdir, pivot_root};

use crate::error::NativeError;
use crate::landlock::{self, Known};
use crate::plan::{is_top_level, MountOp, Plan};
use crate::sys::{mount_setattr, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Where the host's root stays reachable while the plan is carried out.
const OLD_ROOT: &str = "/.kennel-oldroot";
/// An empty read-only file, bound over hidden files.
const EMPTY_FILE: &str = "/.kennel-empty";
/// Device nodes bound from the host into the minimal `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

// What failed is described only when something does: formatting a message for each of the
// dozens of steps of every start, to throw it away, is time and memory for nothing.
fn setup(what: impl FnOnce() -> String) -> impl FnOnce(nix::Error) -> NativeError {
    move |e| NativeError::Setup(format!("{}: {e}", what()))
}

fn io(what: impl FnOnce() -> String) -> impl FnOnce(std::io::Error) -> NativeError {
    move |e| NativeError::Setup(format!("{}: {e}", what()))
}

fn cstring(path: &Path) -> Result<CString, NativeError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| NativeError::Setup(format!("{} contains a NUL byte", path.display())))
}

/// The host path `source`, as seen through the old root.
fn host(source: &Path) -> PathBuf {
    Path::new(OLD_ROOT).join(source.strip_prefix("/").unwrap_or(source))
}

pub struct Executor<'p> {
    /// Every mount made, parents before children, and whether it is to be writable.
    made: Vec<(PathBuf, bool)>,
    /// Targets whose Landlock rule will be added ([`landlock::wanted`]).
    wanted: HashSet<&'p Path>,
    /// What the Landlock step may take from here instead of looking paths up again.
    known: HashMap<PathBuf, Known>,
    /// `size=...,nr_inodes=...` for every writable tmpfs.
    tmpfs_options: &'p str,
}

/// A bind's source, looked up once.
struct Source {
    /// An O_PATH descriptor, kept for the Landlock rule of the target (the same inode).
    fd: Option<OwnedFd>,
    is_dir: bool,
    /// Links to a folder: 2 when it has no subfolder.
    links: u64,
    mode: u32,
}

impl Source {
    /// The file at `path`, symlinks followed; with a descriptor when `keep`.
    fn look_up(path: &Path, keep: bool) -> Option<Source> {
        if keep {
            let fd = landlock::open_path(path).ok()?;
            let stat = nix::sys::stat::fstat(&fd).ok()?;
            Some(Source {
                is_dir: stat.st_mode & libc::S_IFMT == libc::S_IFDIR,
                links: stat.st_nlink,
                mode: stat.st_mode & 0o7777,
                fd: Some(fd),
            })
        } else {
            let meta = fs::metadata(path).ok()?;
            Some(Source {
                fd: None,
                is_dir: meta.is_dir(),
                links: meta.nlink(),
                mode: meta.mode() & 0o7777,
            })
        }
    }

    /// A folder of the host with nothing in it (one that cannot be read is not).
    fn is_empty_dir(&self, path: &Path) -> bool {
        // A folder with a subfolder has more than two links; only the others are read.
        if !self.is_dir || self.links != 2 {
            return false;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(dir) = nix::fcntl::open(path, flags, Mode::empty()) else {
            return false;
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); 256];
        let mut entries = rustix::fs::RawDir::new(&dir, &mut buf);
        while let Some(entry) = entries.next() {
            match entry {
                Ok(e) if matches!(e.file_name().to_bytes(), b"." | b"..") => {}
                _ => return false,
            }
        }
        true
    }
}

/// Builds the sandbox's root from `plan` and changes into its working directory. Returns
/// what it learned of the paths of the plan's Landlock rules.
pub fn build_root(plan: &Plan) -> Result<HashMap<PathBuf, Known>, NativeError> {
    // Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| match e {
        // Ubuntu's AppArmor lets the namespace be created, then refuses what it is for.
        nix::Error::EPERM => NativeError::UserNamespacesDenied {
            cause: "the kernel refused to mount inside the new user namespace (EPERM)".into(),
            fix: String::new(),
        },
        e => NativeError::Setup(format!("making mounts private: {e}")),
    })?;
    // The new root is a tmpfs mounted on the host's /tmp (any existing directory would do:
    // pivot_root moves it away, and the host's /tmp stays reachable under the old root).
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(setup(|| "mounting the new root".into()))?;
    let put_old = Path::new("/tmp").join(&OLD_ROOT[1..]);
    fs::create_dir(&put_old).map_err(io(|| format!("creating {}", put_old.display())))?;
    pivot_root("/tmp", &put_old).map_err(setup(|| "pivot_root".into()))?;
    chdir("/").map_err(setup(|| "chdir /".into()))?;
    // What the root's own files and folders are made with is their exact mode: no chmod
    // after each. The user's umask is given back before the command starts.
    let umask = nix::sys::stat::umask(Mode::empty());
    write_empty_file()?;

    let mut exec = Executor {
        made: Vec::new(),
        wanted: landlock::wanted(&plan.landlock)
            .into_iter()
            .map(|r| r.path.as_path())
            .collect(),
        known: HashMap::new(),
        tmpfs_options: &plan.tmpfs_options,
    };
    for op in &plan.ops {
        exec.apply(op)?;
    }

    umount2(OLD_ROOT, MntFlags::MNT_DETACH)
        .map_err(setup(|| "detaching the host's root".into()))?;
    fs::remove_dir(OLD_ROOT).map_err(io(|| format!("removing {OLD_ROOT}")))?;
    let known = exec.finish()?;
    nix::sys::stat::umask(umask);
    chdir(&plan.cwd).map_err(setup(|| {
        format!("changing to the working directory {}", plan.cwd.display())
    }))?;
    Ok(known)
}

/// Gives the directory `path` of the root tmpfs exactly `mode`, creating it if needed
/// (with the umask cleared by [`build_root`], the mode it is made with is its mode).
fn make_dir(path: &Path, mode: u32) -> Result<(), NativeError> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io(|| format!("chmod {}", path.display())))
        }
        // A parent is missing: made as any mount point's.
        Err(_) => {
            mount_point(path, true)?;
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io(|| format!("chmod {}", path.display())))
        }
    }
}

/// A new file `target` of the new root holding `bytes`, made with `mode` (the umask is
/// cleared while the root is built), its missing folders with `dir_mode`.
fn write_new(
    target: &Path,
    bytes: &[u8],
    dir_mode: u32,
    mode: u32,
    what: &str,
) -> Result<(), NativeError> {
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(dir_mode)
            .create(parent)
            .map_err(io(|| format!("creating {}", parent.display())))?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(target)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
        .map_err(io(|| format!("{what} {}", target.display())))
}

fn write_empty_file() -> Result<(), NativeError> {
    mknod(
        EMPTY_FILE,
        SFlag::S_IFREG,
        Mode::from_bits_truncate(0o444),
        0,
    )
    .map_err(setup(|| format!("creating {EMPTY_FILE}")))
}

/// Creates an empty directory or file on the host, so that it can be bound (a read-only git
/// hooks folder, an agent's settings folder on its first run). Missing parents are created
/// too, private to the user, as `~/.local/share/opencode` may need.
pub(crate) fn create_placeholder(path: &Path, kind: Placeholder) -> Result<(), NativeError> {
    let what = || format!("creating an empty {}", path.display());
    match kind {
        Placeholder::Dir => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io(what)),
        // Private to the user, as the folders are: an agent keeps its settings and tokens
        // there. (The umask is cleared while the root is built: the mode is exact.)
        Placeholder::File => fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map(drop)
            .map_err(io(what)),
    }
}

/// Creates the directory (or empty file) on which something will be mounted, unless
/// something (even a dangling symlink) is already there.
///
/// Tries to create it first and looks at the parent only when that fails with ENOENT: most
/// targets are new entries of an existing directory, so this is one system call where a
/// check of the target and of its parent took three.
fn mount_point(target: &Path, is_dir: bool) -> Result<(), NativeError> {
    let what = || format!("creating the mount point {}", target.display());
    let create = || {
        let made = if is_dir {
            fs::DirBuilder::new().mode(0o755).create(target)
        } else {
            // An empty file without opening it: one system call, not two.
            mknod(target, SFlag::S_IFREG, Mode::from_bits_truncate(0o644), 0)
                .map_err(std::io::Error::from)
        };
        match made {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    };
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = target.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(io(what))?;
            }
            create().map_err(io(what))
        }
        other => other.map_err(io(what)),
    }
}

/// Binds `source` (a directory when `is_dir`) at `target`, with everything mounted below it.
fn bind(source: &Path, target: &Path, is_dir: bool) -> Result<(), NativeError> {
    mount_point(target, is_dir)?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(setup(|| format!("binding {}", target.display())))
}

/// A tmpfs at `target`, bounded by `limits` (`size=...,nr_inodes=...`: without them each
/// tmpfs may take half the host's RAM).
fn tmpfs(target: &Path, mode: u32, limits: &str) -> Result<(), NativeError> {
    mount_point(target, true)?;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("mode={mode:o},{limits}").as_str()),
    )
    .map_err(setup(|| {
        format!("mounting a tmpfs on {}", target.display())
    }))
}

/// Why a new proc or sysfs could not be mounted.
enum KernelFs {
    /// EPERM: the kernel refuses a new instance where the host's is partly covered.
    Refused,
    Failed(NativeError),
}

impl From<KernelFs> for NativeError {
    fn from(e: KernelFs) -> NativeError {
        match e {
            KernelFs::Refused => NativeError::Setup(
                "the kernel refused to mount a /proc of the sandbox's own (EPERM; part of the \
                 host's /proc is covered, as in a container); use --backend landlock there"
                    .into(),
            ),
            KernelFs::Failed(e) => e,
        }
    }
}

/// A line for the user while the sandbox is built. The supervisor may have made the user's
/// terminal raw already, where a line needs its carriage return.
fn notice(text: &str) {
    use std::io::{IsTerminal, Write};
    let end = if std::io::stderr().is_terminal() {
        "\r\n"
    } else {
        "\n"
    };
    let _ = write!(std::io::stderr(), "kennel: notice: {text}{end}");
}

impl Executor<'_> {
    fn bind(
        &mut self,
        source: &Path,
        target: &Path,
        is_dir: bool,
        writable: bool,
    ) -> Result<(), NativeError> {
        // What was learned of an earlier step on this path no longer holds.
        self.known.remove(target);
        bind(source, target, is_dir)?;
        self.made.push((target.to_path_buf(), writable));
        Ok(())
    }

    fn tmpfs(&mut self, target: &Path, mode: u32, writable: bool) -> Result<(), NativeError> {
        self.known.remove(target);
        if !writable && is_top_level(target) {
            // An empty directory of the root tmpfs, read-only with it: the same view as a
            // tmpfs of its own, without a file system to create and tear down.
            return make_dir(target, mode);
        }
        // Read-only ones too: nothing is written there, and the bound costs nothing.
        tmpfs(target, mode, self.tmpfs_options)?;
        self.made.push((target.to_path_buf(), writable));
        Ok(())
    }

    /// A new instance of the kernel's file system `fstype` (proc, sysfs) at `target`: one
    /// of the sandbox's own namespaces, nothing to run from it.
    fn kernel_fs(&mut self, fstype: &str, target: &Path, writable: bool) -> Result<(), KernelFs> {
        self.known.remove(target);
        mount_point(target, true).map_err(KernelFs::Failed)?;
        mount(
            Some(fstype),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| match e {
            nix::Error::EPERM => KernelFs::Refused,
            e => KernelFs::Failed(setup(|| format!("mounting {}", target.display()))(e)),
        })?;
        self.made.push((target.to_path_buf(), writable));
        Ok(())
    }

    fn apply(&mut self, op: &MountOp) -> Result<(), NativeError> {
        match op {
            MountOp::Bind {
                source,
                target,
                writable,
                optional,
                placeholder,
            } => {
                let source = host(source);
                let keep = self.wanted.contains(target.as_path());
                // One lookup when the source is there (the usual case); the placeholder is
                // made only when nothing, not even a dangling symlink, is in its place.
                let mut found = Source::look_up(&source, keep);
                if let (None, Some(kind)) = (&found, placeholder) {
                    if fs::symlink_metadata(&source).is_err() {
                        create_placeholder(&source, *kind)?;
                        found = Source::look_up(&source, keep);
                    }
                }
                let Some(found) = found else {
                    if *optional {
                        if keep {
                            self.known.insert(target.clone(), Known::Missing);
                        }
                        return Ok(());
                    }
                    return Err(NativeError::Setup(format!(
                        "{} does not exist; the policy needs it",
                        target.display()
                    )));
                };
                // An empty folder of the host's `/` (/srv, /media, /boot in a virtual
                // machine): an empty folder of the root, read-only with it, shows the same
                // without a mount to make and tear down, or a Landlock rule to add. (Only
                // what the host adds there while the sandbox runs is not seen.)
                if !*writable && is_top_level(target) && found.is_empty_dir(&source) {
                    make_dir(target, found.mode)?;
                    self.known.insert(target.clone(), Known::Empty);
                    return Ok(());
                }
                self.bind(&source, target, found.is_dir, *writable)?;
                if let Some(fd) = found.fd {
                    let is_dir = found.is_dir;
                    self.known
                        .insert(target.clone(), Known::Bound { fd, is_dir });
                }
                Ok(())
            }
            MountOp::Tmpfs {
                target,
                writable,
                mode,
            } => self.tmpfs(target, *mode, *writable),
            MountOp::Hide { target } => match fs::metadata(target) {
                Err(_) => Ok(()),
                // A tmpfs of its own (or a directory of the root): something may still be
                // mounted inside it, and its mount point must not appear anywhere else.
                Ok(meta) if meta.is_dir() => self.tmpfs(target, 0o755, false),
                Ok(_) => self.bind(Path::new(EMPTY_FILE), target, false, false),
            },
            MountOp::Symlink { target, points_to } => symlink(points_to, target)
                .map_err(io(|| format!("creating the symlink {}", target.display()))),
            // Writable: tools write /proc/self/... (oom_score_adj, comm).
            MountOp::Proc { target } => {
                self.kernel_fs("proc", target, true).map_err(KernelFs::into)
            }
            MountOp::Sysfs { target } => match self.kernel_fs("sysfs", target, false) {
                // The kernel lets a new sysfs be mounted only where the host's own /sys is
                // fully visible; a container that covers part of it (/sys/firmware, as
                // Docker does) refuses. Then the host's /sys, as without an isolated
                // network, and the user is told what that shows.
                Err(KernelFs::Refused) => {
                    notice(
                        "this host does not let the sandbox mount a /sys of its own (part of \
                         its /sys is covered, as in a container): /sys inside lists the \
                         host's network interfaces",
                    );
                    self.bind(&host(Path::new("/sys")), target, true, false)
                }
                Err(KernelFs::Failed(e)) => Err(e),
                Ok(()) => Ok(()),
            },
            MountOp::Dev { target } => self.dev(target),
            MountOp::File { target, contents } => {
                write_new(target, contents.as_bytes(), 0o755, 0o644, "writing")
            }
            MountOp::Copied { target, bytes } => {
                write_new(target, bytes, 0o700, 0o600, "copying into")
            }
        }
    }

    fn dev(&mut self, dev: &Path) -> Result<(), NativeError> {
        self.tmpfs(dev, 0o755, false)?;
        for name in DEVICES {
            let source = host(&Path::new("/dev").join(name));
            let target = dev.join(name);
            // Read-only like the rest of /dev: a device node stays writable on a read-only
            // mount (only regular files, directories and links are not). No lookup first:
            // the host has these; one it lacks (a container without /dev/tty) fails the
            // bind, and its empty mount point goes again.
            match self.bind(&source, &target, false, false) {
                Err(_) if fs::metadata(&source).is_err() => {
                    fs::remove_file(&target)
                        .map_err(io(|| format!("removing {}", target.display())))?;
                }
                other => other?,
            }
        }
        let pts = dev.join("pts");
        mount_point(&pts, true)?;
        mount(
            Some("devpts"),
            &pts,
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=620"),
        )
        .map_err(setup(|| format!("mounting {}", pts.display())))?;
        self.made.push((pts, true));
        self.tmpfs(&dev.join("shm"), 0o1777, true)?;
        for (link, to) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            let path = dev.join(link);
            symlink(to, &path).map_err(io(|| format!("creating {}", path.display())))?;
        }
        Ok(())
    }

    /// Makes the whole tree read-only and nosuid in one call, then writable again where a
    /// writable mount sits in a read-only one (and read-only again where a read-only mount
    /// sits in a writable one, such as a repository's `.git/hooks`). Parents come before
    /// their children in `made`, so each mount only differs from the nearest mount above it
    /// in what that mount left to the mounts below it.
    fn finish(self) -> Result<HashMap<PathBuf, Known>, NativeError> {
        mount_setattr(c"/", true, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)
            .map_err(setup(|| "making the root read-only".into()))?;
        // Each mount done, with whether the mounts below it are now writable. The nearest
        // mount above a target is its deepest folder (or itself) found here: parents are
        // mounted before their children.
        let mut done: HashMap<&Path, bool> = HashMap::with_capacity(self.made.len());
        for (target, writable) in &self.made {
            let above = target
                .ancestors()
                .find_map(|p| done.get(p))
                .is_some_and(|w| *w);
            let below = if *writable == above {
                above
            } else {
                set_writable(target, *writable)?
            };
            done.insert(target, below);
        }
        Ok(self.known)
    }
}

/// Makes the mount at `target`, and those below it, writable or read-only; returns whether
/// the mounts below it are writable now.
fn set_writable(target: &Path, writable: bool) -> Result<bool, NativeError> {
    let path = cstring(target)?;
    let what = || {
        let state = if writable { "writable" } else { "read-only" };
        format!("making {} {state}", target.display())
    };
    if !writable {
        mount_setattr(&path, true, MOUNT_ATTR_RDONLY, 0).map_err(setup(what))?;
        return Ok(false);
    }
    match mount_setattr(&path, true, 0, MOUNT_ATTR_RDONLY) {
        Ok(()) => Ok(true),
        // A mount below it that the host made read-only stays so (the kernel locks it, and
        // refuses the whole call): lift read-only on this mount alone, as far as the host
        // allows; the mounts below it stay read-only.
        Err(nix::Error::EPERM) => match mount_setattr(&path, false, 0, MOUNT_ATTR_RDONLY) {
            Ok(()) | Err(nix::Error::EPERM) => Ok(false),
            Err(e) => Err(setup(what)(e)),
        },
        Err(e) => Err(setup(what)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_folder_with_nothing_in_it_is_empty() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let empty = |path: &Path| {
            Source::look_up(path, false).is_some_and(|found| found.is_empty_dir(path))
        };
        let folder = dir.path().join("empty");
        fs::create_dir(&folder)?;
        assert!(empty(&folder));
        // Two links, as an empty folder has, but a file inside.
        let with_file = dir.path().join("with-file");
        fs::create_dir(&with_file)?;
        fs::write(with_file.join("f"), "")?;
        assert!(!empty(&with_file));
        let with_folder = dir.path().join("with-folder");
        fs::create_dir_all(with_folder.join("sub"))?;
        assert!(!empty(&with_folder));
        assert!(!empty(&with_file.join("f")), "a file is no empty folder");
        assert!(!empty(&dir.path().join("missing")));
        // The descriptor kept for Landlock names the same file.
        let kept = Source::look_up(&folder, true).and_then(|found| found.fd);
        let kept = kept.map(|fd| nix::sys::stat::fstat(&fd).map(|s| s.st_ino));
        assert_eq!(
            kept.transpose()?,
            Some(std::os::unix::fs::MetadataExt::ino(&fs::metadata(&folder)?))
        );
        Ok(())
    }
}
