//! What the unit must look like from inside, and the check that it does.
//!
//! systemd has accepted sandboxing properties in user units and silently not applied them
//! (systemd issues 6008, 9870, 25014; on Debian 12's systemd 252 an unprivileged user
//! manager ignores them unless `PrivateUsers=yes` is set). So the outer kennel derives a
//! [`VerifySpec`] from the policy together with the properties, passes it on the unit's
//! command line, and the inner kennel (`kennel internal-verify-exec`) checks it before the
//! command starts. Any mismatch aborts the run.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::SystemdError;
use crate::limits::Limits;

/// A directory that must be an empty mount (tmpfs) but for the names listed: the mount
/// points of the paths the policy makes visible below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyDir {
    pub path: PathBuf,
    pub allowed: Vec<OsString>,
}

/// The protections to check inside the unit before the command starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifySpec {
    pub empty: Vec<EmptyDir>,
    /// Paths that must be on a read-only mount (skipped when they do not exist inside).
    pub read_only: Vec<PathBuf>,
    /// Paths that must not be readable (`InaccessiblePaths=`).
    pub inaccessible: Vec<PathBuf>,
    /// Only loopback may exist (`PrivateNetwork=yes`).
    pub no_network: bool,
    /// The environment allow-list: every other variable is removed before the command
    /// starts, including those the user manager adds from its own environment.
    pub keep_env: Vec<String>,
    /// Resource limits, in systemd's syntax: the unit's cgroup must enforce them.
    pub limits: Limits,
    /// The outer kennel (pid and start time): when it is gone, even killed by SIGKILL, which
    /// it cannot catch to stop the unit, the inner kennel ends the command.
    pub watch: Option<Watched>,
    /// The allow-list network or localhost ports: the inner kennel serves the listeners
    /// that relay to the proxy the outer kennel runs.
    pub net: Option<UnitNet>,
}

/// What the inner kennel relays to the outer kennel's proxy (`kennel_net::inside`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitNet {
    /// The proxy's unix socket, bound into the unit at the path it has on the host.
    pub socket: PathBuf,
    /// The folder holding it (bound read-only).
    pub dir: PathBuf,
    /// The proxy's port inside (HTTP_PROXY), for the allow-list.
    pub proxy: bool,
    /// Host loopback ports relayed to the same port inside.
    pub localhost_ports: Vec<u16>,
}

/// A process identified beyond its pid: a pid can be reused, a (pid, start time) cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot.
    pub start: u64,
}

impl Watched {
    /// The process `pid` as it is now, if it exists.
    pub fn of(pid: u32) -> Option<Watched> {
        Some(Watched {
            pid,
            start: start_time(pid)?,
        })
    }

    /// Whether that very process still exists.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// A descriptor of that very process (a pidfd, readable once it has ended), to watch it
    /// where its pid cannot be looked up (from a PID namespace of the sandbox's own). None
    /// when it has ended already.
    pub fn pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid).ok()?)?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
        // Opened by pid: it is that process only if the pid was not reused meanwhile.
        self.alive().then_some(fd)
    }
}

/// The start time of `pid` from `/proc/PID/stat` (after the command name, which may hold
/// spaces and parentheses, field 22 overall).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl VerifySpec {
    /// The spec as arguments of `kennel internal-verify-exec` (before its `--`).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for dir in &self.empty {
            args.push("--empty".into());
            args.push(dir.path.clone().into());
            for name in &dir.allowed {
                args.push("--allow".into());
                args.push(name.clone());
            }
        }
        for p in &self.read_only {
            args.push("--read-only".into());
            args.push(p.clone().into());
        }
        for p in &self.inaccessible {
            args.push("--inaccessible".into());
            args.push(p.clone().into());
        }
        if self.no_network {
            args.push("--no-network".into());
        }
        for name in &self.keep_env {
            args.push("--keep-env".into());
            args.push(name.into());
        }
        for (flag, value) in [
            ("--memory-max", &self.limits.memory),
            ("--tasks-max", &self.limits.tasks),
            ("--cpu-quota", &self.limits.cpu),
        ] {
            if let Some(v) = value {
                args.push(flag.into());
                args.push(v.into());
            }
        }
        if let Some(w) = &self.watch {
            args.push("--watch".into());
            args.push(format!("{}:{}", w.pid, w.start).into());
        }
        if let Some(net) = &self.net {
            args.push("--net-socket".into());
            args.push(net.socket.clone().into());
            if net.proxy {
                args.push("--net-proxy".into());
            }
            for port in &net.localhost_ports {
                args.push("--net-localhost".into());
                args.push(port.to_string().into());
            }
        }
        args
    }

    /// Parses `to_args()` followed by `-- COMMAND...`; returns the spec and the command.
    pub fn from_args(args: &[OsString]) -> Result<(VerifySpec, Vec<OsString>), SystemdError> {
        let bad = |m: String| SystemdError::BadVerifyArgs(m);
        let mut spec = VerifySpec::default();
        let mut it = args.iter();
        let value = |it: &mut std::slice::Iter<'_, OsString>, flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| bad(format!("{flag} needs a value")))
        };
        while let Some(arg) = it.next() {
            match arg.to_str() {
                Some("--") => {
                    let command: Vec<OsString> = it.cloned().collect();
                    if command.is_empty() {
                        return Err(bad("no command after --".into()));
                    }
                    return Ok((spec, command));
                }
                Some("--empty") => spec.empty.push(EmptyDir {
                    path: absolute(value(&mut it, "--empty")?)?,
                    allowed: Vec::new(),
                }),
                Some("--allow") => {
                    let name = value(&mut it, "--allow")?;
                    spec.empty
                        .last_mut()
                        .ok_or_else(|| bad("--allow before any --empty".into()))?
                        .allowed
                        .push(name);
                }
                Some("--read-only") => spec
                    .read_only
                    .push(absolute(value(&mut it, "--read-only")?)?),
                Some("--inaccessible") => spec
                    .inaccessible
                    .push(absolute(value(&mut it, "--inaccessible")?)?),
                Some("--no-network") => spec.no_network = true,
                Some("--net-socket") => {
                    let socket = absolute(value(&mut it, "--net-socket")?)?;
                    spec.net = Some(UnitNet {
                        dir: socket.parent().map(Path::to_path_buf).unwrap_or_default(),
                        socket,
                        ..UnitNet::default()
                    });
                }
                Some(flag @ ("--net-proxy" | "--net-localhost")) => {
                    let net = spec
                        .net
                        .as_mut()
                        .ok_or_else(|| bad(format!("{flag} before --net-socket")))?;
                    if flag == "--net-proxy" {
                        net.proxy = true;
                    } else {
                        let v = value(&mut it, flag)?;
                        let port = v
                            .to_str()
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| bad(format!("bad {flag} {v:?}")))?;
                        net.localhost_ports.push(port);
                    }
                }
                Some("--watch") => {
                    let v = value(&mut it, "--watch")?;
                    let parsed = v.to_str().and_then(|v| {
                        let (pid, start) = v.split_once(':')?;
                        Some(Watched {
                            pid: pid.parse().ok()?,
                            start: start.parse().ok()?,
                        })
                    });
                    spec.watch = Some(parsed.ok_or_else(|| bad(format!("bad --watch {v:?}")))?);
                }
                Some("--keep-env") => {
                    let name = value(&mut it, "--keep-env")?;
                    let name = name
                        .into_string()
                        .map_err(|n| bad(format!("bad variable name {n:?}")))?;
                    spec.keep_env.push(name);
                }
                Some(flag @ ("--memory-max" | "--tasks-max" | "--cpu-quota")) => {
                    let v = value(&mut it, flag)?
                        .into_string()
                        .map_err(|v| bad(format!("bad {flag} value {v:?}")))?;
                    let slot = match flag {
                        "--memory-max" => &mut spec.limits.memory,
                        "--tasks-max" => &mut spec.limits.tasks,
                        _ => &mut spec.limits.cpu,
                    };
                    *slot = Some(v);
                }
                _ => return Err(bad(format!("unexpected argument {arg:?}"))),
            }
        }
        Err(bad("missing -- before the command".into()))
    }

    /// Checks every protection; the first one missing is the error.
    pub fn check(&self) -> Result<(), SystemdError> {
        let mounts = Mounts::read()?;
        if !mounts.is_read_only(Path::new("/")) {
            return Err(SystemdError::NotApplied(
                "the system is writable: ProtectSystem=strict is not in effect".into(),
            ));
        }
        for dir in &self.empty {
            check_empty(&mounts, dir)?;
        }
        for path in &self.read_only {
            let Ok(real) = fs::canonicalize(path) else {
                continue;
            };
            if !mounts.is_read_only(&real) {
                return Err(SystemdError::NotApplied(format!(
                    "{} is writable but must be read-only",
                    path.display()
                )));
            }
        }
        for path in &self.inaccessible {
            check_inaccessible(path)?;
        }
        check_no_new_privs()?;
        if self.no_network {
            check_no_network()?;
        }
        if !self.limits.is_empty() {
            check_limits(&mounts, &self.limits)?;
        }
        Ok(())
    }
}

fn absolute(p: OsString) -> Result<PathBuf, SystemdError> {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(SystemdError::BadVerifyArgs(format!(
            "{} is not an absolute path",
            path.display()
        )))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SystemdError + '_ {
    move |source| SystemdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn check_empty(mounts: &Mounts, dir: &EmptyDir) -> Result<(), SystemdError> {
    let entries = match fs::read_dir(&dir.path) {
        Ok(entries) => entries,
        // Nothing to see is as good as empty (e.g. /run/user when /run is replaced).
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(&dir.path)(e)),
    };
    // mountinfo names mount points with symlinks resolved.
    let real = fs::canonicalize(&dir.path).unwrap_or_else(|_| dir.path.clone());
    if !mounts.is_mount_point(&real) {
        return Err(SystemdError::NotApplied(format!(
            "{} is the host's own directory, not a fresh empty one",
            dir.path.display()
        )));
    }
    for entry in entries {
        let entry = entry.map_err(io(&dir.path))?;
        let name = entry.file_name();
        if !dir.allowed.iter().any(|a| a == &name) {
            return Err(SystemdError::NotApplied(format!(
                "{} is visible but must be hidden",
                dir.path.join(&name).display()
            )));
        }
    }
    Ok(())
}

fn check_inaccessible(path: &Path) -> Result<(), SystemdError> {
    let readable = match fs::metadata(path) {
        Err(_) => false,
        Ok(meta) if meta.is_dir() => fs::read_dir(path).is_ok(),
        Ok(_) => fs::File::open(path).is_ok(),
    };
    if readable {
        return Err(SystemdError::NotApplied(format!(
            "{} is readable but must be inaccessible",
            path.display()
        )));
    }
    Ok(())
}

fn check_no_new_privs() -> Result<(), SystemdError> {
    let path = Path::new("/proc/self/status");
    let status = fs::read_to_string(path).map_err(io(path))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    if field("NoNewPrivs:") != "1" {
        return Err(SystemdError::NotApplied(
            "NoNewPrivileges=yes is not in effect".into(),
        ));
    }
    // Mode 2: a seccomp filter (SystemCallFilter=, RestrictNamespaces=).
    if field("Seccomp:") != "2" {
        return Err(SystemdError::NotApplied(
            "SystemCallFilter= is not in effect (no seccomp filter)".into(),
        ));
    }
    Ok(())
}

fn check_no_network() -> Result<(), SystemdError> {
    let path = Path::new("/proc/net/dev");
    let text = fs::read_to_string(path).map_err(io(path))?;
    let others = interfaces_besides_loopback(&text);
    if others.is_empty() {
        Ok(())
    } else {
        Err(SystemdError::NotApplied(format!(
            "the network must be off but {} is reachable (PrivateNetwork=yes is not in effect)",
            others.join(", ")
        )))
    }
}

/// Resource limits are cgroup v2 files of the unit's own cgroup. A user manager without
/// the controllers delegated to it (cgroup v1 or hybrid hosts, some distributions) accepts
/// `MemoryMax=` and friends and enforces nothing.
fn check_limits(mounts: &Mounts, limits: &Limits) -> Result<(), SystemdError> {
    let not_applied = |what: &str, why: String| {
        SystemdError::NotApplied(format!("{what} is not in effect: {why}"))
    };
    let cgroup_file = Path::new("/proc/self/cgroup");
    let own = fs::read_to_string(cgroup_file).map_err(io(cgroup_file))?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"));
    let root = mounts.0.iter().rev().find(|m| m.fstype == "cgroup2");
    let dir = match (root, own) {
        (Some(root), Some(own)) => root.point.join(own.trim_start_matches('/')),
        _ => {
            return Err(not_applied(
                "a resource limit",
                "this host has no cgroup v2 hierarchy for the unit".into(),
            ))
        }
    };
    let read = |what: &str, file: &str, controller: &str| {
        fs::read_to_string(dir.join(file))
            .map(|t| t.trim().to_string())
            .map_err(|_| {
                not_applied(
                    what,
                    format!(
                        "the {controller} controller is not delegated to your user manager \
                         ({} is missing)",
                        dir.join(file).display()
                    ),
                )
            })
    };
    if let Some(want) = &limits.memory {
        let got = read("MemoryMax=", "memory.max", "memory")?;
        if !limit_matches(want, &got, bytes) {
            return Err(not_applied(
                "MemoryMax=",
                format!("memory.max is {got}, not {want}"),
            ));
        }
    }
    if let Some(want) = &limits.tasks {
        let got = read("TasksMax=", "pids.max", "pids")?;
        if !limit_matches(want, &got, |n| n.parse().ok()) {
            return Err(not_applied(
                "TasksMax=",
                format!("pids.max is {got}, not {want}"),
            ));
        }
    }
    if let Some(want) = &limits.cpu {
        let got = read("CPUQuota=", "cpu.max", "cpu")?;
        let percent = got.split_once(' ').and_then(|(quota, period)| {
            let quota: u64 = quota.parse().ok()?;
            let period: u64 = period.parse().ok()?;
            quota
                .checked_mul(100)?
                .checked_add(period / 2)?
                .checked_div(period)
        });
        let wanted: Option<u64> = want.strip_suffix('%').and_then(|p| p.parse().ok());
        if percent.is_none() || percent != wanted {
            return Err(not_applied(
                "CPUQuota=",
                format!("cpu.max is {got}, not {want}"),
            ));
        }
    }
    Ok(())
}

/// `infinity` is `max`; a percentage depends on the machine, so any limit will do;
/// otherwise the numbers must be equal.
fn limit_matches(want: &str, got: &str, parse: impl Fn(&str) -> Option<u64>) -> bool {
    if want == "infinity" {
        got == "max"
    } else if want.ends_with('%') {
        got != "max"
    } else {
        parse(want).is_some() && parse(want) == got.parse().ok()
    }
}

/// `4G` -> 4 GiB, as systemd reads `MemoryMax=` (base 1024).
fn bytes(value: &str) -> Option<u64> {
    let (digits, shift) = match value.chars().last()? {
        'K' => (&value[..value.len() - 1], 10),
        'M' => (&value[..value.len() - 1], 20),
        'G' => (&value[..value.len() - 1], 30),
        'T' => (&value[..value.len() - 1], 40),
        _ => (value, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// `/proc/net/dev`: two header lines, then `  NAME: counters...`.
fn interfaces_besides_loopback(text: &str) -> Vec<&str> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .filter(|name| *name != "lo" && !name.is_empty())
        .collect()
}

/// One line of `/proc/self/mountinfo`, the fields kennel needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub point: PathBuf,
    pub read_only: bool,
    pub fstype: String,
}

pub(crate) struct Mounts(Vec<Mount>);

impl Mounts {
    fn read() -> Result<Mounts, SystemdError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(io(path))?;
        Ok(Mounts(parse_mountinfo(&text)))
    }

    /// The mount that `path` is on: the deepest mount point above it, the last mounted
    /// when several are stacked.
    fn containing(&self, path: &Path) -> Option<&Mount> {
        let mut best: Option<&Mount> = None;
        for m in self.0.iter().filter(|m| path.starts_with(&m.point)) {
            let deeper = match best {
                None => true,
                Some(b) => m.point.components().count() >= b.point.components().count(),
            };
            if deeper {
                best = Some(m);
            }
        }
        best
    }

    fn is_read_only(&self, path: &Path) -> bool {
        self.containing(path).is_some_and(|m| m.read_only)
    }

    fn is_mount_point(&self, path: &Path) -> bool {
        self.0.iter().any(|m| m.point == path)
    }
}

/// Fields (proc(5)): id, parent, major:minor, root, mount point, per-mount options, ...
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split(' ');
            let point = fields.nth(4)?;
            let options = fields.next()?;
            Some(Mount {
                point: PathBuf::from(unescape_octal(point)),
                read_only: options.split(',').any(|o| o == "ro"),
                fstype: after.split(' ').next()?.to_string(),
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

/// The names directly below `dir` through which the `visible` paths are reached.
pub(crate) fn first_components(dir: &Path, visible: &[PathBuf]) -> Vec<OsString> {
    let mut names: Vec<OsString> = visible
        .iter()
        .filter_map(|p| p.strip_prefix(dir).ok())
        .filter_map(|rel| rel.components().next())
        .map(|c| OsStr::new(c.as_os_str()).to_os_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() -> Result<(), SystemdError> {
        let spec = VerifySpec {
            empty: vec![
                EmptyDir {
                    path: "/home/u".into(),
                    allowed: vec!["project".into(), ".gitconfig".into()],
                },
                EmptyDir {
                    path: "/tmp".into(),
                    allowed: vec![],
                },
            ],
            read_only: vec!["/usr".into(), "/home/u/.gitconfig".into()],
            inaccessible: vec!["/srv/secret".into()],
            no_network: true,
            keep_env: vec!["PATH".into(), "HOME".into()],
            limits: Limits {
                memory: Some("4G".into()),
                tasks: None,
                cpu: Some("150%".into()),
            },
            watch: Some(Watched {
                pid: 4242,
                start: 123_456,
            }),
            net: Some(UnitNet {
                dir: "/tmp/kennel-net-1".into(),
                socket: "/tmp/kennel-net-1/proxy.sock".into(),
                proxy: true,
                localhost_ports: vec![8080, 5432],
            }),
        };
        let mut args = spec.to_args();
        args.extend(["--".into(), "sh".into(), "--".into()]);
        let (back, command) = VerifySpec::from_args(&args)?;
        assert_eq!(back, spec);
        assert_eq!(command, vec![OsString::from("sh"), "--".into()]);
        Ok(())
    }

    #[test]
    fn a_watched_process_is_told_from_a_reused_pid() {
        let me = Watched::of(std::process::id());
        assert!(me.is_some_and(|w| w.alive()));
        let other = me.map(|w| Watched {
            start: w.start + 1,
            ..w
        });
        assert!(
            !other.is_some_and(|w| w.alive()),
            "same pid, another start time"
        );
    }

    #[test]
    fn bad_arguments_are_errors_not_panics() {
        for args in [
            vec!["--allow", "x", "--", "sh"],
            vec!["--empty"],
            vec!["--empty", "relative", "--", "sh"],
            vec!["--bogus", "--", "sh"],
            vec!["--no-network"],
            vec!["--no-network", "--"],
        ] {
            let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
            assert!(
                matches!(
                    VerifySpec::from_args(&args),
                    Err(SystemdError::BadVerifyArgs(_))
                ),
                "{args:?}"
            );
        }
    }

    const MOUNTINFO: &str = "\
86 65 254:0 / / ro,relatime shared:1 - ext4 /dev/vda rw
107 86 0:40 / /home rw,relatime shared:22 - tmpfs tmpfs rw
108 107 0:41 / /home/u rw,nodev shared:23 - tmpfs tmpfs rw,mode=700
110 108 254:0 /home/u/my\\040proj /home/u/my\\040proj rw,relatime shared:25 - ext4 /dev/vda rw
109 108 254:0 /home/u/.gitconfig /home/u/.gitconfig ro,relatime shared:24 - ext4 /dev/vda rw
112 86 0:43 / /run ro,nodev shared:27 - tmpfs tmpfs rw
";

    #[test]
    fn mountinfo_is_parsed_with_escapes() {
        let mounts = Mounts(parse_mountinfo(MOUNTINFO));
        assert!(mounts.is_read_only(Path::new("/usr/bin")));
        assert!(!mounts.is_read_only(Path::new("/home/u/my proj/src")));
        assert!(mounts.is_read_only(Path::new("/home/u/.gitconfig")));
        assert!(!mounts.is_read_only(Path::new("/home/u/.cache")));
        assert!(mounts.is_mount_point(Path::new("/home/u")));
        assert!(!mounts.is_mount_point(Path::new("/home/u/src")));
        // Components, not strings: /runx is on /, not on /run.
        assert_eq!(
            mounts
                .containing(Path::new("/runx"))
                .map(|m| m.point.clone()),
            Some(PathBuf::from("/"))
        );
    }

    #[test]
    fn limits_are_compared_as_the_kernel_reports_them() {
        assert_eq!(bytes("4G"), Some(4 << 30));
        assert_eq!(bytes("512"), Some(512));
        assert!(limit_matches("4G", "4294967296", bytes));
        assert!(!limit_matches("4G", "max", bytes));
        assert!(limit_matches("infinity", "max", bytes));
        assert!(limit_matches("50%", "8589934592", bytes));
        assert!(!limit_matches("50%", "max", bytes));
    }

    #[test]
    fn only_loopback_counts_as_no_network() {
        let header = "Inter-|   Receive\n face |bytes    packets\n";
        let lo = "    lo:    1234      10    0    0\n";
        let eth = "  eth0: 99 1 0 0\n";
        assert!(interfaces_besides_loopback(&format!("{header}{lo}")).is_empty());
        assert_eq!(
            interfaces_besides_loopback(&format!("{header}{lo}{eth}")),
            vec!["eth0"]
        );
    }

    #[test]
    fn stacked_mounts_the_last_one_wins() {
        let text = "1 0 0:1 / / rw - ext4 x rw\n2 1 0:2 / / ro - ext4 x rw\n";
        assert!(Mounts(parse_mountinfo(text)).is_read_only(Path::new("/etc")));
    }

    #[test]
    fn first_components_name_the_way_to_visible_paths() {
        let visible: Vec<PathBuf> = vec![
            "/home/u/project".into(),
            "/home/u/.gitconfig".into(),
            "/home/u/main/.git".into(),
            "/home/u/main/.git/worktrees/x".into(),
            "/home/other".into(),
            "/home/u".into(),
        ];
        let names = first_components(Path::new("/home/u"), &visible);
        assert_eq!(
            names,
            vec![
                OsString::from(".gitconfig"),
                "main".into(),
                "project".into()
            ]
        );
    }

    #[test]
    fn an_empty_directory_check_names_what_leaks() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("id_ed25519"), "x")?;
        let point = dir.path().to_path_buf();
        let text = format!("1 0 0:1 / {} rw - tmpfs x rw\n", point.display());
        let mounts = Mounts(parse_mountinfo(&text));
        let spec = EmptyDir {
            path: point.clone(),
            allowed: vec![],
        };
        let err = check_empty(&mounts, &spec)
            .err()
            .ok_or("expected an error")?;
        assert!(err.to_string().contains("id_ed25519"), "{err}");
        let spec = EmptyDir {
            path: point,
            allowed: vec!["id_ed25519".into()],
        };
        check_empty(&mounts, &spec)?;
        let not_mounted = Mounts(parse_mountinfo("1 0 0:1 / / rw - ext4 x rw\n"));
        let err = check_empty(&not_mounted, &spec)
            .err()
            .ok_or("expected an error")?;
        assert!(err.to_string().contains("host's own directory"), "{err}");
        Ok(())
    }
}
