//! For the systemd backend: what kennel's step inside the unit does that the unit's
//! properties cannot (systemd 252 has no `PrivatePIDs=`, and a user manager cannot mount a
//! `/proc` of a PID namespace of its own): a user, mount, PID and IPC namespace of the
//! step's own, with a `/proc` of that PID namespace, so that the command neither sees nor
//! reaches the user's other processes (nor their System V IPC), and `/proc/sys` and `/sys`
//! read-only (what the unit's
//! `ProtectKernelTunables=` gave, whose covering mounts would forbid the new `/proc`).

use std::ffi::CString;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getgid, getuid, ForkResult};

use crate::error::NativeError;
use crate::sys::{drop_all_capabilities, exit_now, mount_setattr, MOUNT_ATTR_RDONLY};

fn setup(what: &'static str) -> impl FnOnce(nix::Error) -> NativeError {
    move |e| NativeError::Setup(format!("{what}: {e}"))
}

/// Moves the calling process into a new user, mount and PID namespace and forks: returns in
/// the child, PID 1 of the new PID namespace, with a `/proc` of it and no capability left.
/// The parent stays outside, holding no signal but SIGKILL (the terminal's and systemd's
/// signals reach the child and the command, which share its process group and cgroup),
/// waits for the child and ends with its status: it never returns.
///
/// Must be called while the process is single-threaded (unshare(CLONE_NEWUSER) requires it).
pub fn enter_pid_namespace() -> Result<(), NativeError> {
    let (uid, gid) = (getuid(), getgid());
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC,
    )
    .map_err(setup(
        "creating a user, mount, PID and IPC namespace inside the unit",
    ))?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| NativeError::Setup(format!("writing /proc/self/{file}: {e}")))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))?;
    // Non-dumpable (after the maps, which it would make root's): neither this process nor
    // the init it forks can be read or traced by the command.
    nix::sys::prctl::set_dumpable(false).map_err(setup("PR_SET_DUMPABLE"))?;
    // Every signal the parent could be sent is held: it only waits.
    let all = SigSet::all();
    let mut before = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut before))
        .map_err(setup("blocking signals"))?;
    // SAFETY: the caller is single-threaded (see above), so the child is a whole copy of
    // the only thread, and no lock can be held by a thread that does not exist there.
    match unsafe { fork() }.map_err(setup("fork"))? {
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => exit_now(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => exit_now(128 + signal as i32),
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(_) => exit_now(crate::child::EXIT_SETUP_FAILED),
            }
        },
        ForkResult::Child => {}
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
        .map_err(setup("restoring the signal mask"))?;
    // Die with the parent, which systemd watches as the unit's main process.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(setup("PR_SET_PDEATHSIG"))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| {
        // The kernel refuses where mounts cover parts of the old /proc: name them.
        let covered: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with("/proc/"))
            .map(str::to_string)
            .collect();
        NativeError::Setup(format!(
            "mounting a /proc of the sandbox's own PID namespace: {e} (mounts over parts of \
             /proc: {})",
            if covered.is_empty() {
                "none".to_string()
            } else {
                covered.join(" ")
            }
        ))
    })?;
    mount(
        Some("/proc/sys"),
        "/proc/sys",
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(setup("binding /proc/sys"))?;
    for path in ["/proc/sys", "/sys"] {
        let c = CString::new(path).map_err(|e| NativeError::Setup(e.to_string()))?;
        mount_setattr(&c, true, MOUNT_ATTR_RDONLY, 0)
            .map_err(|e| NativeError::Setup(format!("making {path} read-only: {e}")))?;
    }
    drop_all_capabilities().map_err(setup("dropping capabilities"))?;
    Ok(())
}
