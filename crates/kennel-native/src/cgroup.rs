//! `--memory` on the native backend: a memory cgroup of the sandbox's own, made in a cgroup
//! the user was given (delegated), never anywhere else.
//!
//! - cgroup v1 (a `memory` hierarchy): a child of kennel's own memory cgroup, when the user
//!   may write it (v1 lets a cgroup with processes have children).
//! - cgroup v2: kennel's own cgroup when it is delegated to the user and kennel is alone in
//!   it (`systemd-run --user --scope -p Delegate=yes kennel ...`): kennel moves itself into
//!   a leaf `supervisor`, enables the memory controller for the children, and makes the
//!   sandbox's cgroup beside it. (v2 forbids processes in a cgroup whose children have
//!   controllers, so a cgroup shared with the user's shell cannot be used.)
//!
//! Anything else is refused, with what would work: nothing is ever left unlimited silently.
//! The sandbox's init is moved in before the command starts, and kennel reads back both its
//! membership and the limit. The cgroup is removed when the sandbox is gone.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::error::NativeError;

/// Which cgroup interface the memory controller has here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

impl Version {
    fn limit_file(self) -> &'static str {
        match self {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        }
    }
}

/// The sandbox's memory cgroup; removed on drop.
#[derive(Debug)]
pub struct SandboxCgroup {
    dir: PathBuf,
    /// Its path in the hierarchy, as `/proc/PID/cgroup` shows it.
    path: String,
    version: Version,
    limit: u64,
}

/// `--memory` cannot be kept here: why, and what would work.
fn refused(why: &str) -> NativeError {
    NativeError::Refused(format!(
        "--memory on the native backend needs a memory cgroup delegated to you, and {why}. \
         Either put the limit on kennel itself, whose processes the sandbox's all are: \
         `systemd-run --user --scope -p MemoryMax=SIZE kennel run ...`; or run kennel alone in \
         a delegated scope (`systemd-run --user --scope -p Delegate=yes kennel run --memory \
         SIZE ...`); or use `--backend systemd --memory SIZE`"
    ))
}

impl SandboxCgroup {
    /// Makes the sandbox's memory cgroup with `limit` bytes, or says why it cannot be made.
    pub fn create(limit: u64) -> Result<SandboxCgroup, NativeError> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| refused(&format!("/proc/self/cgroup cannot be read ({e})")))?;
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| refused(&format!("/proc/self/mountinfo cannot be read ({e})")))?;
        let name = format!("kennel-{}", std::process::id());
        if let Some((parent, path)) = memory_v1(&own, &mountinfo) {
            return SandboxCgroup::made(&parent, &path, &name, Version::V1, limit);
        }
        let Some((parent, path)) = unified(&own, &mountinfo) else {
            return Err(refused(
                "this system has no cgroup hierarchy with the memory controller",
            ));
        };
        let controllers = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(refused(&format!(
                "kennel's cgroup {} does not have the memory controller",
                parent.display()
            )));
        }
        let procs = fs::read_to_string(parent.join("cgroup.procs")).unwrap_or_default();
        let me = std::process::id().to_string();
        if procs.lines().any(|p| p != me) {
            return Err(refused(&format!(
                "kennel is not alone in its cgroup {} (cgroup v2 limits only the children of a \
                 cgroup without processes)",
                parent.display()
            )));
        }
        // kennel into a leaf of its own, so that its cgroup may give children the controller.
        let supervisor = parent.join(format!("{name}-supervisor"));
        make_dir(&supervisor, &parent)?;
        write(&supervisor.join("cgroup.procs"), &me)?;
        write(&parent.join("cgroup.subtree_control"), "+memory")?;
        SandboxCgroup::made(&parent, &path, &name, Version::V2, limit)
    }

    /// The cgroup `name` in `parent` (at `path` in the hierarchy), with the limit.
    fn made(
        parent: &Path,
        path: &str,
        name: &str,
        version: Version,
        limit: u64,
    ) -> Result<SandboxCgroup, NativeError> {
        let dir = parent.join(name);
        make_dir(&dir, parent)?;
        let cgroup = SandboxCgroup {
            path: format!("{}/{name}", path.trim_end_matches('/')),
            dir,
            version,
            limit,
        };
        cgroup.set_limit()?;
        Ok(cgroup)
    }

    fn set_limit(&self) -> Result<(), NativeError> {
        write(
            &self.dir.join(self.version.limit_file()),
            &self.limit.to_string(),
        )?;
        // No escape into swap: v1 bounds memory and swap together, v2 swap apart. Either
        // file is absent without swap accounting (nothing to bound then).
        let (file, value) = match self.version {
            Version::V1 => ("memory.memsw.limit_in_bytes", self.limit.to_string()),
            Version::V2 => ("memory.swap.max", "0".to_string()),
        };
        match fs::write(self.dir.join(file), value) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(NativeError::Setup(format!(
                "writing {}: {e}",
                self.dir.join(file).display()
            ))),
            _ => Ok(()),
        }
    }

    /// Moves the sandbox's init (before the command starts: what it starts inherits the
    /// cgroup), then checks that it is there and that the limit is the one asked for.
    pub fn adopt(&self, pid: Pid) -> Result<(), NativeError> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())?;
        let shown = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let inside = shown.lines().any(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
            let here = match self.version {
                Version::V1 => controllers.is_some_and(|c| c.split(',').any(|c| c == "memory")),
                Version::V2 => controllers == Some(""),
            };
            here && path == Some(self.path.as_str())
        });
        if !inside {
            return Err(NativeError::Setup(format!(
                "the sandbox was not moved into its memory cgroup {}",
                self.dir.display()
            )));
        }
        let file = self.dir.join(self.version.limit_file());
        let read = fs::read_to_string(&file).unwrap_or_default();
        // The kernel keeps whole pages: the limit read back may be rounded down to one.
        let kept = read.trim().parse::<u64>().ok();
        if !kept.is_some_and(|k| k <= self.limit && self.limit - k < 65536) {
            return Err(NativeError::Setup(format!(
                "{} reads {:?} instead of the limit {}",
                file.display(),
                read.trim(),
                self.limit
            )));
        }
        Ok(())
    }

    /// How many processes of the sandbox the kernel killed for reaching the limit.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill"),
            Version::V2 => ("memory.events", "oom_kill"),
        };
        fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The limit, as `--memory` gave it.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// What the limit does not count here, for the user: on cgroup v1 the kernel charges
    /// no socket buffer (TCP, UDP) to a memory cgroup, so a sandbox can hold more than the
    /// limit in them, up to the host-wide `net.ipv4.tcp_mem`.
    pub fn not_counted(&self) -> Option<&'static str> {
        (self.version == Version::V1).then_some(
            "on cgroup v1 the kernel counts no socket buffers (TCP, UDP) against --memory: \
             the sandbox can hold more than the limit in them, up to your system's \
             net.ipv4.tcp_mem",
        )
    }
}

impl Drop for SandboxCgroup {
    /// Removed once empty: the sandbox's processes are gone by then (the kernel may take a
    /// moment to let go of the last one).
    fn drop(&mut self) {
        for _ in 0..50 {
            match fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                _ => return,
            }
        }
        eprintln!(
            "kennel: the sandbox's cgroup {} still holds a process: remove it with rmdir once \
             it is empty",
            self.dir.display()
        );
    }
}

fn make_dir(dir: &Path, parent: &Path) -> Result<(), NativeError> {
    // One of the same name: left by a kennel of this pid that was killed (SIGKILL) before
    // it could remove it. Removed when it is empty (the kernel refuses otherwise).
    if fs::remove_dir(dir).is_ok() {
        eprintln!(
            "kennel: removed {}, an empty cgroup left by a killed kennel",
            dir.display()
        );
    }
    fs::create_dir(dir).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => refused(&format!(
            "kennel's cgroup {} is not yours to write",
            parent.display()
        )),
        _ => NativeError::Setup(format!("creating the cgroup {}: {e}", dir.display())),
    })
}

fn write(file: &Path, text: &str) -> Result<(), NativeError> {
    fs::write(file, text).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => {
            refused(&format!("{} is not yours to write", file.display()))
        }
        _ => NativeError::Setup(format!("writing {text} to {}: {e}", file.display())),
    })
}

/// The folder of kennel's cgroup `path` (as `/proc/self/cgroup` shows it) in the mounted
/// hierarchy that `is_it` recognises (by file system type and super-block options). A mount
/// of part of the hierarchy (a container's) shows the paths below its root.
fn folder_of(mountinfo: &str, path: &str, is_it: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let (fstype, _, super_options) = (right.next()?, right.next()?, right.next()?);
        let (root, point) = (*fields.get(3)?, *fields.get(4)?);
        if !is_it(fstype, super_options) {
            return None;
        }
        let below = if root == "/" {
            path
        } else if path == root {
            ""
        } else {
            path.strip_prefix(root)?
                .strip_prefix('/')
                .map(|_| &path[root.len()..])?
        };
        Some(Path::new(point).join(below.trim_start_matches('/')))
    })
}

/// cgroup v1: the folder of kennel's memory cgroup, and its path.
fn memory_v1(own: &str, mountinfo: &str) -> Option<(PathBuf, String)> {
    let path = own.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })?;
    let dir = folder_of(mountinfo, &path, |fstype, options| {
        fstype == "cgroup" && options.split(',').any(|o| o == "memory")
    })?;
    Some((dir, path))
}

/// cgroup v2: the folder of kennel's cgroup in the unified hierarchy, and its path.
fn unified(own: &str, mountinfo: &str) -> Option<(PathBuf, String)> {
    let path = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .to_string();
    let dir = folder_of(mountinfo, &path, |fstype, _| fstype == "cgroup2")?;
    Some((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS_V1: &str = "\
30 23 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn the_memory_hierarchy_is_found_where_it_is_mounted() {
        let own = "8:pids:/a\n4:memory:/box/one\n0::/\n";
        assert_eq!(
            memory_v1(own, MOUNTS_V1),
            Some((
                PathBuf::from("/sys/fs/cgroup/memory/box/one"),
                "/box/one".into()
            ))
        );
        // Without a memory hierarchy, v1 has nothing to offer.
        assert_eq!(memory_v1("8:pids:/a\n0::/\n", MOUNTS_V1), None);
    }

    #[test]
    fn the_unified_hierarchy_is_found_with_kennels_path() {
        let mounts = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/k.scope\n";
        let path = "/user.slice/user-1000.slice/user@1000.service/app.slice/k.scope";
        assert_eq!(
            unified(own, mounts),
            Some((
                PathBuf::from(format!("/sys/fs/cgroup{path}")),
                path.to_string()
            ))
        );
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_starts_at_its_root() {
        let mounts = "29 23 0:26 /box /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            unified("0::/box/inner\n", mounts),
            Some((PathBuf::from("/sys/fs/cgroup/inner"), "/box/inner".into()))
        );
        // A path outside what is mounted is not reachable through it.
        assert_eq!(unified("0::/elsewhere\n", mounts), None);
    }
}
