//! The namespace-free backend, for hosts that forbid unprivileged user namespaces: the same
//! policy enforced by Landlock, seccomp and no_new_privs alone. Without a mount view some
//! promises cannot be kept; [`LandlockOnlyPlan::lost`] names each one, and kennel prints them.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use kennel_policy::{Access, Policy};
use nix::fcntl::OFlag;
use nix::sys::prctl;
use nix::sys::signal::{kill, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{chdir, fork, pipe2, ForkResult, Pid};
use serde::Serialize;

use crate::child::{exec_command, find_program, report, restrict, STATUS_SETUP};
use crate::error::{sys, NativeError};
use crate::landlock::{LandlockAccess, LandlockRule};
use crate::plan::{HostEntry, HostRoot};
use crate::pty::{self, RawMode, Relay, UserTerminal};
use crate::{exec_spec, read_status, supervise, Options, Watched};
use nix::sys::signalfd::{SfdFlags, SignalFd};

#[derive(Debug, Clone, Serialize)]
pub struct LandlockOnlyPlan {
    pub rules: Vec<LandlockRule>,
    /// What the native backend would keep and this one cannot, one phrase each.
    pub lost: Vec<String>,
}

fn grant(rules: &[LandlockRule], path: &Path) -> Option<LandlockAccess> {
    rules
        .iter()
        .filter(|r| path.starts_with(&r.path) && r.path != Path::new("/"))
        .max_by_key(|r| r.path.components().count())
        .map(|r| r.access)
}

/// The Landlock rules for `policy` without a mount view; `private_tmp` stands in for
/// `/tmp` and `/var/tmp`.
pub fn landlock_only_plan(
    policy: &Policy,
    host: &HostRoot,
    private_tmp: &Path,
) -> Result<LandlockOnlyPlan, NativeError> {
    // No listing of `/` here: without a mount view it would list every folder beneath,
    // the home included.
    let mut rules = Vec::new();
    let mut allow = |path: PathBuf, access| rules.push(LandlockRule { path, access });
    for entry in &host.entries {
        let (HostEntry::Dir(name) | HostEntry::File(name)) = entry else {
            continue;
        };
        let path = Path::new("/").join(name);
        let access = match name.as_str() {
            "proc" => LandlockAccess::ReadWriteFiles,
            // Only the devices below, never the host's other terminals or /dev/shm.
            "dev" => continue,
            _ => match policy.paths.iter().find(|r| r.path == path) {
                Some(r) if matches!(r.access, Access::Hidden | Access::Tmpfs) => continue,
                _ => LandlockAccess::Read,
            },
        };
        allow(path, access);
    }
    allow(private_tmp.to_path_buf(), LandlockAccess::Full);
    for device in DEVICES {
        allow(PathBuf::from(device), LandlockAccess::Full);
    }

    let mut lost = vec![
        "a private /tmp and /var/tmp (TMPDIR names a private folder instead; the host's \
         /tmp and /var/tmp are out of reach)"
            .to_string(),
        "an empty writable home (yours is unreadable but for the paths the policy names)"
            .to_string(),
        "a PID namespace (the command sees your other processes, though it cannot signal or \
         trace them)"
            .to_string(),
        "the end of every process of the sandbox if kennel itself is killed".to_string(),
        "an IPC namespace (your System V shared memory, semaphores and message queues are \
         reachable)"
            .to_string(),
    ];
    lost.push(
        "unix sockets of the command's own: socket(AF_UNIX) is refused, so that the host's \
         (ssh-agent, gpg-agent, D-Bus, the systemd user manager under /run/user) stay out of \
         reach; socketpair works"
            .to_string(),
    );
    let mut git_lost = false;
    let mut hidden = Vec::new();
    for rule in policy.paths.iter().filter(|r| r.path != Path::new("/")) {
        let above = grant(&rules, &rule.path);
        match rule.access {
            Access::ReadWrite => rules.push(LandlockRule {
                path: rule.path.clone(),
                access: LandlockAccess::Full,
            }),
            Access::ReadOnly if above == Some(LandlockAccess::Full) => {
                // Landlock only adds rights: nothing can be made read-only inside a
                // writable tree. The built-in git protections are the known case.
                if rule.origin.reason.contains("git") {
                    git_lost = true;
                } else if rule.origin.source == "built-in" {
                    // Another built-in protection (the repository's .kennel.toml): lost,
                    // and said so (when there is something to protect), like the git ones.
                    if rule.optional && std::fs::symlink_metadata(&rule.path).is_err() {
                        continue;
                    }
                    lost.push(format!(
                        "{} read-only ({})",
                        rule.path.display(),
                        rule.origin.reason
                    ));
                } else {
                    return Err(cannot(&rule.path, "read-only", "writable"));
                }
            }
            Access::ReadOnly => rules.push(LandlockRule {
                path: rule.path.clone(),
                access: LandlockAccess::Read,
            }),
            // Stood in for by the private folder (TMPDIR).
            Access::Tmpfs if is_tmp(&rule.path) && above.is_none() => {}
            Access::Hidden | Access::Tmpfs => hidden.push(rule),
        }
    }
    // Landlock only adds rights, so a hidden path inside a readable folder (/var/mail in
    // /var) is left out by granting that folder's other entries instead of the folder.
    for rule in hidden {
        // Symbolic links are not granted: a rule on /var/run would grant its target, /run.
        carve_out(&mut rules, &rule.path, |dir| {
            fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| !t.is_symlink()))
                        .map(|e| e.file_name())
                        .collect()
                })
                .unwrap_or_default()
        })
        .map_err(|()| cannot(&rule.path, rule.access.describe(), "writable"))?;
    }
    if git_lost {
        lost.push(
            "read-only git hooks and config (the agent could plant a hook that your next git \
             command runs; kennel checks when the session ends and moves away what was \
             planted before you can run git)"
                .to_string(),
        );
    }
    Ok(LandlockOnlyPlan { rules, lost })
}

/// Replaces every readable grant above `hidden` by grants of the entries beside the way
/// down to it (`list` names a folder's entries), so that nothing grants `hidden` itself.
/// A writable grant above it cannot be split so (the command could create the hidden path
/// anew): `Err`.
fn carve_out(
    rules: &mut Vec<LandlockRule>,
    hidden: &Path,
    list: impl Fn(&Path) -> Vec<std::ffi::OsString>,
) -> Result<(), ()> {
    // A sibling's carve-out may have granted this very path.
    rules.retain(|r| r.path != hidden);
    while let Some(at) = rules
        .iter()
        .position(|r| r.path != Path::new("/") && hidden.starts_with(&r.path) && r.path != hidden)
    {
        let above = rules.swap_remove(at);
        if above.access == LandlockAccess::Full {
            return Err(());
        }
        let Ok(below) = hidden.strip_prefix(&above.path) else {
            return Err(());
        };
        let mut dir = above.path.clone();
        for step in below.components() {
            for name in list(&dir) {
                if name.as_os_str() != step.as_os_str() {
                    rules.push(LandlockRule {
                        path: dir.join(name),
                        access: above.access,
                    });
                }
            }
            dir.push(step);
        }
    }
    Ok(())
}

/// The host's devices the command may open on the landlock backend: what programs need,
/// and `/dev/tty` (its own terminal). Not `/dev/pts/*` (the user's other terminals: what is
/// typed there could be read, and written to), not `/dev/shm` (shared with every program
/// of the user's), not the disks. The command's own pseudo-terminal is added when it has
/// one; `/dev/ptmx` makes new ones, whose other end is reached through the master.
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

fn is_tmp(path: &Path) -> bool {
    path == Path::new("/tmp") || path == Path::new("/var/tmp")
}

fn cannot(path: &Path, what: &str, parent: &str) -> NativeError {
    NativeError::Plan(format!(
        "the landlock backend cannot make {} {what}: it lies inside a {parent} folder, and \
         Landlock can only add rights; use the native backend",
        path.display()
    ))
}

/// A private folder for temporary files, removed with everything in it at the end (it is
/// the sandbox's `/tmp`, as ephemeral as the native backend's).
struct PrivateTmp(PathBuf);

impl PrivateTmp {
    fn create(scratch: Option<&Path>) -> Result<PrivateTmp, NativeError> {
        let base = scratch.map_or_else(std::env::temp_dir, Path::to_path_buf);
        for attempt in 0..100u32 {
            let path = base.join(format!("kennel-tmp-{}-{attempt}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateTmp(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(NativeError::Io { path, source }),
            }
        }
        Err(NativeError::Setup(format!(
            "could not create a private folder in {}",
            base.display()
        )))
    }
}

impl Drop for PrivateTmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `policy.command` confined by Landlock and seccomp only. `after_fork` runs in
/// kennel once the command's process is forked (kennel may start threads from then on:
/// before, the fork needs it single-threaded).
pub fn run_landlock_only(
    policy: &Policy,
    options: &Options,
    after_fork: &mut dyn FnMut(),
) -> Result<i32, NativeError> {
    if policy.network != kennel_policy::Network::On || !policy.localhost_ports.is_empty() {
        // Landlock's TCP rules match ports on any address and do not cover UDP: no network
        // policy can be built from them. Never a silent `on`.
        return Err(NativeError::Plan(
            "the landlock backend cannot cut the network (that needs a network namespace), so \
             it cannot give `off`, `allow-list` or chosen localhost ports either; use the \
             native backend, or --net on without localhost ports"
                .into(),
        ));
    }
    let host = HostRoot::read()?;
    let tmp = PrivateTmp::create(options.net.scratch.as_deref())?;
    let mut plan = landlock_only_plan(policy, &host, &tmp.0)?;
    // What the policy says to create when missing (an agent's settings folder on its first
    // run) must exist before Landlock can grant it.
    for rule in &policy.paths {
        if let Some(kind) = rule.placeholder {
            if std::fs::symlink_metadata(&rule.path).is_err() {
                crate::mounts::create_placeholder(&rule.path, kind)?;
            }
        }
    }
    eprintln!(
        "kennel: notice: the landlock backend cannot give {}",
        plan.lost.join("; ")
    );
    let mut env_policy = policy.clone();
    env_policy.env.retain(|v| v.name != "TMPDIR");
    env_policy.env.push(kennel_policy::EnvVar {
        name: "TMPDIR".into(),
        value: tmp.0.clone().into_os_string(),
    });
    let exec = exec_spec(&env_policy)?;
    let mut filters = crate::seccomp::filters()?;
    filters.push(crate::seccomp::unix_socket_filter()?);

    // With a terminal, a pseudo-terminal of the host's devpts (there is no other here): its
    // own, and no other, may be opened again by path.
    let terminal = match policy.terminal {
        kennel_policy::Terminal::Pty => Some(pty::open_in_sandbox(&UserTerminal::read())?),
        kennel_policy::Terminal::Streams => None,
    };
    if let Some((_, slave)) = &terminal {
        plan.rules.push(LandlockRule {
            path: nix::unistd::ttyname(slave).map_err(sys("ttyname"))?,
            access: LandlockAccess::Full,
        });
    }
    let forwarded = crate::child::forwarded_signals();
    let caller_mask = forwarded
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(sys("blocking signals"))?;
    // Orphans of the command become kennel's children, so that none outlives it.
    prctl::set_child_subreaper(true).map_err(sys("PR_SET_CHILD_SUBREAPER"))?;
    let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;

    // SAFETY: kennel is single-threaded here, so the child may allocate before execve.
    let pid = match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(status_read);
            let slave = terminal.map(|(_, slave)| slave);
            let setup = prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| NativeError::Setup(format!("PR_SET_PDEATHSIG: {e}")))
                .and_then(|()| {
                    chdir(&policy.cwd).map_err(|e| {
                        NativeError::Setup(format!("chdir {}: {e}", policy.cwd.display()))
                    })
                })
                .and_then(|()| {
                    // No mount view here: every rule's path is looked up.
                    restrict(&plan.rules, HashMap::new(), &filters, options.landlock)
                });
            if let Err(e) = setup {
                report(&status_write, STATUS_SETUP, &e.to_string());
                crate::sys::exit_now(crate::child::EXIT_SETUP_FAILED);
            }
            let program = find_program(&exec.argv[0], &exec.path);
            exec_command(
                program,
                &exec,
                &status_write,
                &caller_mask,
                slave.as_ref(),
                true,
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop(status_write);
    after_fork();
    let master = terminal.map(|(master, _)| master);
    let started = match read_status(status_read) {
        Some(err) => Err(err),
        None => start_relay(&forwarded, master),
    };
    let code = match started {
        Ok((signals, relay)) => supervise(Watched::Command(pid), &signals, relay),
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(e)
        }
    };
    kill_descendants();
    code
}

/// The signals to watch and, with a pseudo-terminal, the relay (the user's terminal in raw
/// mode until it drops).
fn start_relay(
    forwarded: &nix::sys::signal::SigSet,
    master: Option<std::os::fd::OwnedFd>,
) -> Result<(SignalFd, Option<Relay>), NativeError> {
    let signals = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(sys("signalfd"))?;
    let relay = match master {
        Some(master) => Some(Relay::start(master, RawMode::enter()?)?),
        None => None,
    };
    Ok((signals, relay))
}

/// Kills and reaps whatever the command left behind (reparented to kennel, the subreaper).
fn kill_descendants() {
    // Every descendant, however deep (a chain of processes, each the parent of the next,
    // once outran a kill of one generation per round): all are stopped first, so that none
    // forks while the tree is walked again, until a walk finds no new one; then all are
    // killed at once. Orphans come to kennel (the subreaper) and are reaped.
    for _ in 0..100 {
        let mut seen: Vec<Pid> = Vec::new();
        loop {
            let found = descendants_of_self(100_000);
            let new: Vec<Pid> = found.into_iter().filter(|p| !seen.contains(p)).collect();
            if new.is_empty() {
                break;
            }
            for pid in &new {
                let _ = kill(*pid, Signal::SIGSTOP);
            }
            seen.extend(new);
            if seen.len() > 100_000 {
                break;
            }
        }
        if seen.is_empty() {
            return;
        }
        for pid in &seen {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        // Reap: the direct children, and each orphan as it is handed to kennel.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    if children_of(Pid::this()).is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

/// The children of `pid`, of all its threads.
fn children_of(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every descendant of this process, breadth first, at most `max`.
fn descendants_of_self(max: usize) -> Vec<Pid> {
    let mut all = children_of(Pid::this());
    let mut next = 0;
    while next < all.len() && all.len() < max {
        let more = children_of(all[next]);
        all.extend(more);
        next += 1;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_policy::{PathRule, RuleOrigin};

    fn policy(paths: Vec<PathRule>) -> Policy {
        let p = Policy::with_rules(Path::new("/home/u/p"), Path::new("/home/u"), paths);
        p
    }

    fn rule(path: &str, access: Access, optional: bool, why: &str) -> PathRule {
        PathRule::new(path, access, optional, RuleOrigin::builtin(why))
    }

    fn host() -> HostRoot {
        HostRoot {
            entries: vec![
                HostEntry::Dir("etc".into()),
                HostEntry::Dir("home".into()),
                HostEntry::Dir("tmp".into()),
                HostEntry::Dir("usr".into()),
            ],
        }
    }

    #[test]
    fn a_hidden_path_inside_a_readable_folder_is_carved_out() {
        let mut rules = vec![
            LandlockRule {
                path: "/var".into(),
                access: LandlockAccess::Read,
            },
            LandlockRule {
                path: "/usr".into(),
                access: LandlockAccess::Read,
            },
        ];
        let list = |dir: &Path| -> Vec<std::ffi::OsString> {
            match dir.to_str() {
                Some("/var") => vec!["lib".into(), "mail".into(), "spool".into()],
                Some("/var/spool") => vec!["cron".into(), "mail".into()],
                _ => Vec::new(),
            }
        };
        assert_eq!(carve_out(&mut rules, Path::new("/var/mail"), list), Ok(()));
        // Granted as a sibling of /var/mail: taken back when its own turn comes.
        assert_eq!(carve_out(&mut rules, Path::new("/var/lib"), list), Ok(()));
        assert_eq!(
            carve_out(&mut rules, Path::new("/var/spool/mail"), list),
            Ok(())
        );
        let mut paths: Vec<_> = rules.iter().map(|r| r.path.clone()).collect();
        paths.sort();
        let expected: Vec<PathBuf> = ["/usr", "/var/spool/cron"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(paths, expected);
        assert!(rules.iter().all(|r| r.access == LandlockAccess::Read));
        // A writable folder cannot be split: the hidden path could be created anew.
        let mut writable = vec![LandlockRule {
            path: "/w".into(),
            access: LandlockAccess::Full,
        }];
        assert_eq!(carve_out(&mut writable, Path::new("/w/x"), list), Err(()));
    }

    #[test]
    fn system_readable_home_and_tmp_not() -> Result<(), NativeError> {
        let p = policy(vec![
            rule("/", Access::ReadOnly, false, "system"),
            rule("/home", Access::Hidden, true, "homes"),
            rule("/tmp", Access::Tmpfs, true, "tmp"),
            rule("/home/u", Access::Tmpfs, true, "home"),
            rule("/home/u/p", Access::ReadWrite, false, "ws"),
            rule("/home/u/p/.git/hooks", Access::ReadOnly, true, "git hooks"),
        ]);
        let plan = landlock_only_plan(&p, &host(), Path::new("/tmp/k"))?;
        let find = |s: &str| {
            plan.rules
                .iter()
                .find(|r| r.path == Path::new(s))
                .map(|r| r.access)
        };
        assert_eq!(find("/usr"), Some(LandlockAccess::Read));
        assert_eq!(find("/home"), None);
        assert_eq!(find("/tmp"), None);
        assert_eq!(find("/tmp/k"), Some(LandlockAccess::Full));
        assert_eq!(find("/home/u/p"), Some(LandlockAccess::Full));
        assert!(plan.lost.iter().any(|l| l.contains("git hooks")));
        assert!(plan
            .lost
            .iter()
            .any(|l| l.contains("socket(AF_UNIX) is refused")));
        assert_eq!(find("/dev/null"), Some(LandlockAccess::Full));
        assert!(plan.rules.iter().all(|r| r.path != Path::new("/dev")
            && r.path != Path::new("/dev/pts")
            && r.path != Path::new("/dev/shm")));
        Ok(())
    }

    #[test]
    fn hiding_inside_a_visible_tree_is_refused() {
        let p = policy(vec![
            rule("/", Access::ReadOnly, false, "system"),
            rule("/home/u/p", Access::ReadWrite, false, "ws"),
            rule("/home/u/p/.env", Access::Hidden, true, "secrets"),
        ]);
        let err = landlock_only_plan(&p, &host(), Path::new("/tmp/k"));
        assert!(matches!(err, Err(NativeError::Plan(_))), "{err:?}");
    }
}
