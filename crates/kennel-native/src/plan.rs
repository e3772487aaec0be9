//! Policy -> Plan: the ordered list of mount operations that builds the sandbox's root.
//!
//! Pure: the only outside input is the listing of the host's `/` ([`HostRoot`]), passed in
//! so that plans can be snapshot-tested. The executor ([`crate::mounts`]) follows the plan
//! step by step and does nothing the plan does not say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kennel_policy::{Access, PathRule, Placeholder, Policy};
use serde::Serialize;

use crate::error::NativeError;
use crate::landlock::{LandlockAccess, LandlockRule};

/// One entry of the host's root directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HostEntry {
    Dir(String),
    File(String),
    Symlink { name: String, target: PathBuf },
}

/// The host's `/`, listed once by the supervisor.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostRoot {
    pub entries: Vec<HostEntry>,
}

impl HostRoot {
    /// Read into a buffer on the stack, one allocation per entry (its name): the standard
    /// library's directory iterator allocates each entry's name and path again.
    pub fn read() -> Result<HostRoot, NativeError> {
        use rustix::fs::{FileType, Mode, OFlags, RawDir};
        use std::os::unix::ffi::OsStringExt;
        let io = |source: std::io::Error| NativeError::Io {
            path: "/".into(),
            source,
        };
        let root = rustix::fs::open(
            "/",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(e.into()))?;
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut dir = RawDir::new(&root, &mut buf);
        let mut entries = Vec::with_capacity(32);
        while let Some(entry) = dir.next() {
            let entry = entry.map_err(|e| io(e.into()))?;
            let bytes = entry.file_name().to_bytes();
            if matches!(bytes, b"." | b"..") {
                continue;
            }
            let name = String::from_utf8_lossy(bytes).into_owned();
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                // A file system that does not say in its listing.
                kind = FileType::from_raw_mode(
                    rustix::fs::statat(
                        &root,
                        entry.file_name(),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| io(e.into()))?
                    .st_mode,
                );
            }
            entries.push(match kind {
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&root, entry.file_name(), Vec::new())
                        .map_err(|e| io(e.into()))?;
                    HostEntry::Symlink {
                        name,
                        target: PathBuf::from(std::ffi::OsString::from_vec(target.into_bytes())),
                    }
                }
                FileType::Directory => HostEntry::Dir(name),
                _ => HostEntry::File(name),
            });
        }
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(HostRoot { entries })
    }
}

impl HostEntry {
    fn name(&self) -> &str {
        match self {
            HostEntry::Dir(n) | HostEntry::File(n) => n,
            HostEntry::Symlink { name, .. } => name,
        }
    }
}

/// One step of building the root. Targets are paths inside the sandbox; sources are paths
/// of the host (the executor reaches them through the old root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum MountOp {
    /// Bind the host's `source` (with everything mounted below it) at `target`.
    Bind {
        source: PathBuf,
        target: PathBuf,
        writable: bool,
        /// Skip it when the source does not exist, instead of failing.
        optional: bool,
        /// Or create an empty one of this kind on the host first (see [`Placeholder`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        placeholder: Option<Placeholder>,
    },
    /// A fresh tmpfs; a read-only one is made read-only once everything below it is mounted.
    Tmpfs {
        target: PathBuf,
        writable: bool,
        mode: u32,
    },
    /// Hide a host path that exists: an empty read-only directory or file in its place.
    Hide {
        target: PathBuf,
    },
    Symlink {
        target: PathBuf,
        points_to: PathBuf,
    },
    /// `/proc` of the sandbox's own PID namespace.
    Proc {
        target: PathBuf,
    },
    /// A sysfs of the sandbox's own network namespace (read-only).
    Sysfs {
        target: PathBuf,
    },
    /// A minimal `/dev`: null, zero, full, random, urandom, tty, its own devpts, shm.
    Dev {
        target: PathBuf,
    },
    /// A small file kennel writes into a tmpfs of its own (see [`INSIDE_MARK`]).
    File {
        target: PathBuf,
        contents: String,
    },
    /// A file of the user's copied into the home kept in memory (`copy-back`): private, as
    /// its folders made on the way. The bytes were read by the supervisor before the clone.
    Copied {
        target: PathBuf,
        #[serde(skip)]
        bytes: Vec<u8>,
    },
}

/// A file that only a native kennel sandbox has: the sandbox's `/run` is a fresh tmpfs
/// that kennel writes it into (read-only once built), and on a host only root can create
/// it. kennel's shims use it to run an agent directly inside a sandbox instead of nesting
/// a second one; an environment variable, which a repository's `.envrc` could set, is
/// never trusted for this.
pub const INSIDE_MARK: &str = "/run/kennel/sandbox";

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub ops: Vec<MountOp>,
    /// The Landlock rules: the same view, enforced a second time by the kernel.
    pub landlock: Vec<LandlockRule>,
    pub cwd: PathBuf,
    /// Mount options bounding every writable tmpfs (`size=...,nr_inodes=...`).
    pub tmpfs_options: String,
}

impl Plan {
    fn allow(&mut self, path: impl Into<PathBuf>, access: LandlockAccess) {
        self.landlock.push(LandlockRule {
            path: path.into(),
            access,
        });
    }
}

/// Entries of `/` the plan builds itself rather than binding from the host.
const SPECIAL_ROOT_ENTRIES: &[&str] = &["proc", "dev", "sys"];

pub fn plan(policy: &Policy, host: &HostRoot) -> Result<Plan, NativeError> {
    let rules = Rules::new(policy);
    let mut plan = Plan {
        ops: Vec::new(),
        landlock: Vec::new(),
        cwd: policy.cwd.clone(),
        tmpfs_options: policy.tmpfs.mount_options(),
    };
    let root_rule = policy
        .paths
        .iter()
        .find(|r| r.path == Path::new("/"))
        .ok_or_else(|| NativeError::Plan("the policy has no rule for `/`".into()))?;
    if root_rule.access != Access::ReadOnly {
        return Err(NativeError::Plan(format!(
            "`/` can only be read-only on the native backend (the policy says {})",
            root_rule.access.describe()
        )));
    }
    for entry in &host.entries {
        let name = entry.name();
        let target = Path::new("/").join(name);
        if SPECIAL_ROOT_ENTRIES.contains(&name) || rules.has(&target) {
            continue;
        }
        match entry {
            HostEntry::Symlink { target: to, .. } => plan.ops.push(MountOp::Symlink {
                target,
                points_to: to.clone(),
            }),
            HostEntry::Dir(_) | HostEntry::File(_) => {
                plan.allow(&target, LandlockAccess::Read);
                plan.ops.push(MountOp::Bind {
                    source: target.clone(),
                    target,
                    writable: false,
                    optional: true,
                    placeholder: None,
                });
            }
        }
    }
    // `ls /` works; what lies below needs its own rule.
    plan.allow("/", LandlockAccess::ListOnly);
    plan.ops.push(MountOp::Proc {
        target: "/proc".into(),
    });
    plan.allow("/proc", LandlockAccess::ReadWriteFiles);
    plan.ops.push(MountOp::Dev {
        target: "/dev".into(),
    });
    plan.allow("/dev", LandlockAccess::Full);
    if !rules.has(Path::new("/sys")) {
        if policy.network.isolated() {
            // The host's /sys would list the host's network interfaces (names, addresses,
            // MAC addresses) in /sys/class/net: a sysfs of the sandbox's own network
            // namespace lists its loopback only. The cgroup tree, which runtimes read for
            // their CPU and memory limits, is bound from the host.
            plan.ops.push(MountOp::Sysfs {
                target: "/sys".into(),
            });
            plan.ops.push(MountOp::Bind {
                source: "/sys/fs/cgroup".into(),
                target: "/sys/fs/cgroup".into(),
                writable: false,
                optional: true,
                placeholder: None,
            });
        } else {
            plan.ops.push(MountOp::Bind {
                source: "/sys".into(),
                target: "/sys".into(),
                writable: false,
                optional: true,
                placeholder: None,
            });
        }
        plan.allow("/sys", LandlockAccess::Read);
    }

    for rule in policy.paths.iter().filter(|r| r.path != Path::new("/")) {
        if let Some(op) = op_for(policy, &rules, rule) {
            if let Some(access) = landlock_access(&op) {
                plan.allow(&rule.path, access);
            }
            plan.ops.push(op);
        }
    }
    let run_is_ours = rules
        .rule_for(Path::new(INSIDE_MARK))
        .is_some_and(|r| matches!(r.access, Access::Hidden | Access::Tmpfs));
    if run_is_ours {
        plan.ops.push(MountOp::File {
            target: INSIDE_MARK.into(),
            contents: "a kennel sandbox\n".into(),
        });
    }
    Ok(plan)
}

/// What Landlock allows beneath the target of a mount: hidden places get no rule at all.
fn landlock_access(op: &MountOp) -> Option<LandlockAccess> {
    match op {
        MountOp::Bind { writable: true, .. } | MountOp::Tmpfs { writable: true, .. } => {
            Some(LandlockAccess::Full)
        }
        MountOp::Bind {
            writable: false, ..
        } => Some(LandlockAccess::Read),
        _ => None,
    }
}

/// The policy's rules by path: the rule for a path is then one lookup per ancestor, where
/// [`Policy::rule_for`] scans every rule (once per rule here, which made planning quadratic
/// in the number of rules and a visible part of kennel's start-up).
struct Rules<'a> {
    by_path: HashMap<&'a Path, &'a PathRule>,
}

impl<'a> Rules<'a> {
    fn new(policy: &'a Policy) -> Self {
        // Later rules on the same path replace earlier ones, as `Policy::rule_for` picks the
        // last of the deepest.
        let by_path = policy.paths.iter().map(|r| (r.path.as_path(), r)).collect();
        Rules { by_path }
    }

    fn has(&self, path: &Path) -> bool {
        self.by_path.contains_key(path)
    }

    /// Same answer as [`Policy::rule_for`]: the rule on the deepest of `path` and its
    /// parents that has one.
    fn rule_for(&self, path: &Path) -> Option<&'a PathRule> {
        path.ancestors().find_map(|p| self.by_path.get(p).copied())
    }
}

/// The access that `path` would have from the rules above it alone.
fn inherited_access(rules: &Rules, path: &Path) -> Access {
    path.parent()
        .and_then(|parent| rules.rule_for(parent))
        .map_or(Access::ReadOnly, |r| r.access)
}

fn op_for(policy: &Policy, rules: &Rules, rule: &PathRule) -> Option<MountOp> {
    let target = rule.path.clone();
    let above = inherited_access(rules, &rule.path);
    let above_is_empty = matches!(above, Access::Hidden | Access::Tmpfs);
    Some(match rule.access {
        Access::ReadOnly | Access::ReadWrite => MountOp::Bind {
            source: target.clone(),
            target,
            writable: rule.access == Access::ReadWrite,
            optional: rule.optional,
            placeholder: rule.placeholder,
        },
        // Below an empty parent there is nothing to hide.
        Access::Hidden if above_is_empty => return None,
        Access::Hidden if is_top_level(&target) => MountOp::Tmpfs {
            target,
            writable: false,
            mode: 0o755,
        },
        Access::Hidden => MountOp::Hide { target },
        Access::Tmpfs => match &policy.home_source {
            // The home backed by a private host directory: bound, so that the caller can
            // list (or keep) what was written there once the sandbox is gone.
            Some(source) if target == policy.home => MountOp::Bind {
                source: source.clone(),
                target,
                writable: true,
                optional: false,
                placeholder: None,
            },
            _ => MountOp::Tmpfs {
                mode: tmpfs_mode(policy, &target),
                target,
                writable: true,
            },
        },
    })
}

pub(crate) fn is_top_level(path: &Path) -> bool {
    path.parent() == Some(Path::new("/"))
}

fn tmpfs_mode(policy: &Policy, target: &Path) -> u32 {
    if target == policy.home {
        0o700
    } else if target == Path::new("/tmp") || target == Path::new("/var/tmp") {
        0o1777
    } else {
        0o755
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_policy::RuleOrigin;

    fn rule(path: &str, access: Access, optional: bool) -> PathRule {
        PathRule::new(path, access, optional, RuleOrigin::builtin("test"))
    }

    fn policy(paths: Vec<PathRule>) -> Policy {
        let mut p = Policy::with_rules(Path::new("/home/u/p"), Path::new("/home/u"), paths);
        p.cwd = "/home/u/p/sub".into();
        p
    }

    /// The listing of this machine's `/`, as the standard library reads it.
    fn root_as_std_reads_it() -> Vec<HostEntry> {
        let mut entries: Vec<HostEntry> = std::fs::read_dir("/")
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                let kind = entry.file_type().unwrap();
                if kind.is_symlink() {
                    let target = std::fs::read_link(entry.path()).unwrap();
                    HostEntry::Symlink { name, target }
                } else if kind.is_dir() {
                    HostEntry::Dir(name)
                } else {
                    HostEntry::File(name)
                }
            })
            .collect();
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        entries
    }

    #[test]
    fn the_hosts_root_is_listed_whole_with_kinds_and_link_targets() {
        let listed = HostRoot::read().unwrap().entries;
        assert_eq!(listed, root_as_std_reads_it());
        // Every root has these folders.
        for name in ["etc", "usr"] {
            assert!(
                listed.iter().any(|e| e.name() == name),
                "{name} is missing: {listed:?}"
            );
        }
    }

    fn host() -> HostRoot {
        HostRoot {
            entries: vec![
                HostEntry::Symlink {
                    name: "bin".into(),
                    target: "usr/bin".into(),
                },
                HostEntry::Dir("dev".into()),
                HostEntry::Dir("etc".into()),
                HostEntry::Dir("home".into()),
                HostEntry::Dir("proc".into()),
                HostEntry::Dir("sys".into()),
                HostEntry::Dir("tmp".into()),
                HostEntry::Dir("usr".into()),
            ],
        }
    }

    #[test]
    fn system_is_bound_read_only_and_homes_replaced() -> Result<(), NativeError> {
        let p = policy(vec![
            rule("/", Access::ReadOnly, false),
            rule("/home", Access::Hidden, true),
            rule("/tmp", Access::Tmpfs, false),
            rule("/home/u", Access::Tmpfs, false),
            rule("/home/u/.ssh", Access::Hidden, true),
            rule("/home/u/p", Access::ReadWrite, false),
        ]);
        let plan = plan(&p, &host())?;
        let allowed = |path: &str| {
            plan.landlock
                .iter()
                .find(|r| r.path == Path::new(path))
                .map(|r| r.access)
        };
        assert_eq!(allowed("/usr"), Some(LandlockAccess::Read));
        assert_eq!(allowed("/home/u/p"), Some(LandlockAccess::Full));
        assert_eq!(allowed("/home/u"), Some(LandlockAccess::Full));
        assert_eq!(allowed("/home"), None, "hidden places get no Landlock rule");
        let bind = |s: &str, writable| MountOp::Bind {
            source: s.into(),
            target: s.into(),
            writable,
            optional: true,
            placeholder: None,
        };
        assert!(plan.ops.contains(&bind("/usr", false)));
        assert!(plan.ops.contains(&bind("/etc", false)));
        assert!(plan.ops.contains(&MountOp::Symlink {
            target: "/bin".into(),
            points_to: "usr/bin".into()
        }));
        assert!(
            !plan.ops.iter().any(
                |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/home"))
            ),
            "the host's /home is never bound"
        );
        assert!(plan.ops.contains(&MountOp::Tmpfs {
            target: "/home".into(),
            writable: false,
            mode: 0o755
        }));
        assert!(plan.ops.contains(&MountOp::Tmpfs {
            target: "/home/u".into(),
            writable: true,
            mode: 0o700
        }));
        assert!(plan.ops.contains(&MountOp::Bind {
            source: "/home/u/p".into(),
            target: "/home/u/p".into(),
            writable: true,
            optional: false,
            placeholder: None,
        }));
        // .ssh under an empty home needs no mount at all.
        assert!(!plan.ops.iter().any(|op| format!("{op:?}").contains(".ssh")));
        Ok(())
    }

    #[test]
    fn deeper_rules_come_after_their_parents() -> Result<(), NativeError> {
        let p = policy(vec![
            rule("/home/u/p", Access::ReadWrite, false),
            rule("/", Access::ReadOnly, false),
            rule("/home", Access::Hidden, true),
            rule("/home/u", Access::Tmpfs, false),
        ]);
        let plan = plan(&p, &host())?;
        let pos = |t: &str| {
            plan.ops.iter().position(|op| match op {
                MountOp::Bind { target, .. } | MountOp::Tmpfs { target, .. } => {
                    target == Path::new(t)
                }
                _ => false,
            })
        };
        assert!(pos("/home") < pos("/home/u"));
        assert!(pos("/home/u") < pos("/home/u/p"));
        Ok(())
    }

    #[test]
    fn the_rule_index_answers_as_the_policy_does() {
        let p = policy(vec![
            rule("/", Access::ReadOnly, false),
            rule("/home", Access::Hidden, true),
            rule("/home/u", Access::Tmpfs, false),
            rule("/home/u/.ssh", Access::Hidden, true),
            rule("/home/u/p", Access::ReadWrite, false),
            rule("/home/u/p/.git/hooks", Access::ReadOnly, false),
            rule("/tmp", Access::Tmpfs, false),
        ]);
        let rules = Rules::new(&p);
        for path in [
            "/",
            "/usr/bin",
            "/home",
            "/home/ua",
            "/home/u",
            "/home/u/.ssh/id",
            "/home/u/p",
            "/home/u/p/.git",
            "/home/u/p/.git/hooks/pre-commit",
            "/home/u/pp",
            "/tmp/x",
            "/home/u/p/",
        ] {
            let path = Path::new(path);
            assert_eq!(
                rules.rule_for(path).map(|r| &r.path),
                p.rule_for(path).map(|r| &r.path),
                "{}",
                path.display()
            );
            assert_eq!(rules.has(path), p.paths.iter().any(|r| r.path == path));
        }
    }

    #[test]
    fn an_isolated_network_gets_a_sysfs_of_its_own() -> Result<(), NativeError> {
        let rules = || vec![rule("/", Access::ReadOnly, false)];
        let on = plan(&policy(rules()), &host())?;
        assert!(on
            .ops
            .iter()
            .any(|op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/sys"))));
        let mut off = policy(rules());
        off.network = kennel_policy::Network::Off;
        let off = plan(&off, &host())?;
        assert!(off.ops.contains(&MountOp::Sysfs {
            target: "/sys".into()
        }));
        assert!(
            !off.ops.iter().any(
                |op| matches!(op, MountOp::Bind { source, .. } if source == Path::new("/sys"))
            ),
            "the host's /sys lists the host's interfaces"
        );
        Ok(())
    }

    #[test]
    fn a_writable_root_is_refused() {
        let p = policy(vec![rule("/", Access::ReadWrite, false)]);
        assert!(matches!(plan(&p, &host()), Err(NativeError::Plan(_))));
    }
}
