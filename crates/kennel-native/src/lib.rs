//! The native backend: a sandbox built by kennel itself from Linux namespaces.
//!
//! The supervisor (this process) clones a child into new user, mount, PID and IPC
//! namespaces, maps the user's uid and gid to themselves, and lets it go. The child
//! ([`child`]) builds a fresh root from the [`plan`], drops every privilege, starts the
//! command and stays as its init. The supervisor forwards signals and returns the
//! command's exit status.

mod child;
mod error;
pub mod landlock;
pub mod landlock_only;
mod mounts;
mod net;
pub mod plan;
pub mod seccomp;
mod sys;

use std::ffi::{CString, OsString};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use kennel_policy::Policy;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, read, write, Pid};

use child::{ChildArgs, ExecSpec};
pub use error::NativeError;
pub use landlock::Enforcement;
pub use landlock_only::run_landlock_only;
pub use net::NetOptions;
pub use plan::{plan, HostRoot, Plan};

/// How the native backend runs, beyond what the policy says.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Whether a kernel without Landlock stops kennel (the default) or is only reported.
    pub landlock: Enforcement,
    /// Test hook, in debug builds only: paths bound read-only into the mount view without
    /// a Landlock rule, to show that Landlock alone still denies them.
    #[cfg(debug_assertions)]
    pub debug_mount_only: Vec<std::path::PathBuf>,
    /// The allow-list proxy's log and, for tests, its resolver.
    pub net: NetOptions,
}

/// Runs `policy.command` in a native sandbox and returns its exit status
/// (128 + N when a signal N ended it).
///
/// Must be called while the process is single-threaded.
pub fn run(policy: &Policy, options: &Options) -> Result<i32, NativeError> {
    let host = HostRoot::read()?;
    #[allow(unused_mut)]
    let mut plan = plan(policy, &host)?;
    #[cfg(debug_assertions)]
    for path in &options.debug_mount_only {
        plan.ops.push(plan::MountOp::Bind {
            source: path.clone(),
            target: path.clone(),
            writable: false,
            optional: false,
            placeholder: None,
        });
    }
    let mut net = net::prepare(policy, &options.net)?;
    let with_net_env;
    let policy = match &net {
        Some(session) => {
            session.add_to_plan(&mut plan);
            with_net_env = session.policy_with_env(policy);
            &with_net_env
        }
        None => policy,
    };
    let exec = exec_spec(policy)?;
    let filters = seccomp::filters()?;

    let forwarded = child::forwarded_signals();
    let caller_mask = forwarded
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(error::sys("blocking signals"))?;
    let (sync_read, sync_write) = pipe2(OFlag::O_CLOEXEC).map_err(error::sys("pipe"))?;
    let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).map_err(error::sys("pipe"))?;

    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC;
    if policy.network.isolated() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let pid = match sys::clone_into_namespaces(flags) {
        Err(errno) => return Err(user_namespaces_denied(errno)),
        Ok(None) => {
            drop(sync_write);
            drop(status_read);
            child::child_main(ChildArgs {
                plan: &plan,
                exec: &exec,
                filters: &filters,
                landlock: options.landlock,
                loopback: policy.network.isolated(),
                net: net.as_ref().map(|n| &n.inside),
                sync: sync_read,
                status: status_write,
                command_mask: caller_mask,
            })
        }
        Ok(Some(pid)) => pid,
    };
    drop(sync_read);
    drop(status_write);

    if let Err(e) = write_id_maps(pid, policy.uid, policy.gid) {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Err(e);
    }
    // The child waits for this byte, so that it never runs without its id maps.
    write(&sync_write, b"g").map_err(error::sys("starting the sandbox"))?;
    drop(sync_write);

    if let Some(session) = &mut net {
        if let Err(e) = session.start() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
    }
    if let Some(err) = read_status(status_read) {
        let _ = waitpid(pid, None);
        return Err(err);
    }
    let status = supervise(pid, &forwarded);
    for line in net.iter().flat_map(|n| n.summary()) {
        eprintln!("kennel: {line}");
    }
    status
}

pub(crate) fn exec_spec(policy: &Policy) -> Result<ExecSpec, NativeError> {
    let cstring = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| NativeError::Plan("an argument contains a NUL byte".into()))
    };
    if policy.command.is_empty() {
        return Err(NativeError::Plan("no command to run".into()));
    }
    let argv = policy
        .command
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = policy
        .env
        .iter()
        .map(|v| {
            let mut kv = v.name.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.value.as_bytes());
            cstring(&kv)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let path = policy
        .env_value("PATH")
        .cloned()
        .unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    Ok(ExecSpec { argv, envp, path })
}

/// Maps the user's uid and gid to themselves, so that files written in the workspace
/// belong to the user. `setgroups` must be denied before an unprivileged gid map.
fn write_id_maps(pid: Pid, uid: u32, gid: u32) -> Result<(), NativeError> {
    let proc = format!("/proc/{pid}");
    let write = |file: &str, text: String| {
        let path = format!("{proc}/{file}");
        fs::write(&path, text).map_err(|source| {
            let errno = Errno::from_raw(source.raw_os_error().unwrap_or(0));
            match user_namespaces_denied(errno) {
                NativeError::UserNamespacesDenied { cause, fix } => {
                    NativeError::UserNamespacesDenied {
                        cause: format!("writing {path} failed: {source}; {cause}"),
                        fix,
                    }
                }
                other => other,
            }
        })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))
}

/// Reads the status pipe to its end: empty means the command was started.
pub(crate) fn read_status(status: OwnedFd) -> Option<NativeError> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match read(&status, &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    let (&code, message) = bytes.split_first()?;
    let message = String::from_utf8_lossy(message).into_owned();
    Some(match code {
        child::STATUS_NOT_FOUND | child::STATUS_NOT_EXECUTABLE => NativeError::Exec {
            command: String::new(),
            message,
            status: if code == child::STATUS_NOT_FOUND {
                127
            } else {
                126
            },
        },
        child::STATUS_USERNS => match user_namespaces_denied(Errno::EPERM) {
            NativeError::UserNamespacesDenied { cause, fix } => NativeError::UserNamespacesDenied {
                cause: format!("{message}; {cause}"),
                fix,
            },
            other => other,
        },
        _ => NativeError::Setup(message),
    })
}

/// Waits for the sandbox's init; signals sent to kennel (by `kill`, not by the terminal,
/// which reaches the command's process group directly) are passed on.
pub(crate) fn supervise(
    init: Pid,
    forwarded: &nix::sys::signal::SigSet,
) -> Result<i32, NativeError> {
    let signals =
        SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC).map_err(error::sys("signalfd"))?;
    loop {
        match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(NativeError::Sys {
                    what: "waiting for the sandbox".into(),
                    source: e,
                })
            }
        }
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(e) => {
                return Err(NativeError::Sys {
                    what: "reading signals".into(),
                    source: e,
                })
            }
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig != Signal::SIGCHLD && info.ssi_code != libc::SI_KERNEL {
            let _ = kill(init, sig);
        }
    }
}

/// Explains why the kernel refused a user namespace, with the fix.
fn user_namespaces_denied(errno: Errno) -> NativeError {
    let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_string()).ok();
    let (cause, fix) = if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
    {
        (
            "kernel.unprivileged_userns_clone is 0".to_string(),
            "enable them with `sudo sysctl -w kernel.unprivileged_userns_clone=1` (and a file in /etc/sysctl.d to keep it)".to_string(),
        )
    } else if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        (
            "user.max_user_namespaces is 0".to_string(),
            "allow them with `sudo sysctl -w user.max_user_namespaces=10000` (and a file in /etc/sysctl.d to keep it)".to_string(),
        )
    } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        (
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)".to_string(),
            "give kennel an AppArmor profile with `userns,` (see the README, section Troubleshooting) or set that sysctl to 0".to_string(),
        )
    } else {
        (
            format!("clone failed: {}", errno.desc()),
            "check that the kernel has CONFIG_USER_NS and that no seccomp filter of a container forbids it".to_string(),
        )
    };
    NativeError::UserNamespacesDenied { cause, fix }
}

/// Whether this process may create the namespaces the native backend needs, and mount in
/// them (Ubuntu's AppArmor restriction lets the first succeed and refuses the second).
pub fn probe_user_namespaces() -> Result<(), NativeError> {
    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    match sys::clone_into_namespaces(flags) {
        Err(errno) => Err(user_namespaces_denied(errno)),
        Ok(None) => {
            let ok = nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .is_ok();
            sys::exit_now(if ok { 0 } else { 1 })
        }
        Ok(Some(pid)) => match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            _ => Err(user_namespaces_denied(Errno::EPERM)),
        },
    }
}
