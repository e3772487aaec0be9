//! The sandbox side: runs in the cloned process, which is PID 1 of the new PID namespace.
//! It builds the root, confines itself, starts the command and stays as its init.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execve, fork, read, write, ForkResult, Pid};

use crate::error::NativeError;
use crate::landlock::Enforcement;
use crate::mounts::build_root;
use crate::plan::Plan;
use crate::sys::{drop_all_capabilities, exit_now};
use seccompiler::BpfProgram;

/// Messages on the status pipe start with one of these bytes.
pub(crate) const STATUS_SETUP: u8 = b'S';
pub(crate) const STATUS_NOT_FOUND: u8 = b'N';
pub(crate) const STATUS_NOT_EXECUTABLE: u8 = b'X';
/// The kernel refused a privileged operation inside the user namespace (AppArmor).
pub(crate) const STATUS_USERNS: u8 = b'U';

/// Exit status of the sandbox when its setup failed (the message is on the status pipe).
pub(crate) const EXIT_SETUP_FAILED: i32 = 125;

/// What the command needs, prepared before the clone.
pub(crate) struct ExecSpec {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// PATH of the sandbox, searched inside the sandbox's view.
    pub path: OsString,
}

pub(crate) struct ChildArgs<'a> {
    pub plan: &'a Plan,
    pub exec: &'a ExecSpec,
    pub filters: &'a [BpfProgram],
    pub landlock: Enforcement,
    /// In a new, empty network namespace: bring up its loopback.
    pub loopback: bool,
    /// The network helpers to start inside (allow-list, localhost ports); see [`crate::net`].
    pub net: Option<&'a kennel_net::inside::InsideConfig>,
    pub sync: OwnedFd,
    pub status: OwnedFd,
    /// The caller's signal mask, given back to the command.
    pub command_mask: SigSet,
}

/// Never returns: the process exits with the command's status, or 125 after writing why
/// the setup failed to the status pipe.
pub(crate) fn child_main(args: ChildArgs) -> ! {
    // Die with the supervisor. Set before reading the go byte, so that a supervisor that
    // died earlier is noticed as end of file.
    if prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    let ChildArgs {
        plan,
        exec,
        filters,
        landlock,
        loopback,
        net,
        sync,
        status,
        command_mask,
    } = args;
    let mut go = [0u8; 1];
    if !matches!(read(&sync, &mut go), Ok(1)) {
        exit_now(EXIT_SETUP_FAILED);
    }
    drop(sync);
    if loopback {
        if let Err(e) = crate::sys::bring_loopback_up() {
            report(
                &status,
                STATUS_SETUP,
                &format!("bringing up the loopback interface: {e}"),
            );
            exit_now(EXIT_SETUP_FAILED);
        }
    }
    // Bound now: ports 53, 80 and 443 need the capabilities dropped in `setup`.
    let helpers = match net.map(crate::net::bind_inside).transpose() {
        Ok(h) => h,
        Err(message) => {
            report(&status, STATUS_SETUP, &message);
            exit_now(EXIT_SETUP_FAILED);
        }
    };
    match setup(
        plan,
        exec,
        &status,
        &command_mask,
        filters,
        landlock,
        helpers,
    ) {
        Ok(command) => {
            drop(status);
            init(command)
        }
        Err((code, message)) => {
            report(&status, code, &message);
            exit_now(EXIT_SETUP_FAILED)
        }
    }
}

pub(crate) fn report(status: &OwnedFd, code: u8, message: &str) {
    let mut bytes = Vec::with_capacity(message.len() + 1);
    bytes.push(code);
    bytes.extend_from_slice(message.as_bytes());
    let _ = write(status.as_fd(), &bytes);
}

fn setup(
    plan: &Plan,
    exec: &ExecSpec,
    status: &OwnedFd,
    command_mask: &SigSet,
    filters: &[BpfProgram],
    landlock: Enforcement,
    helpers: Option<kennel_net::inside::Listeners>,
) -> Result<Pid, (u8, String)> {
    let fail = |e: NativeError| match e {
        NativeError::UserNamespacesDenied { cause, .. } => (STATUS_USERNS, cause),
        other => (STATUS_SETUP, other.to_string()),
    };
    build_root(plan).map_err(fail)?;
    let program = find_program(&exec.argv[0], &exec.path);
    confine(plan, filters, landlock).map_err(fail)?;
    if let Some(helpers) = helpers {
        crate::net::start_inside(helpers, status).map_err(|m| (STATUS_SETUP, m))?;
    }

    // SAFETY: this process is single-threaded (a clone of the single-threaded supervisor),
    // so the forked child may allocate and call anything before execve.
    match unsafe { fork() } {
        Err(e) => Err((STATUS_SETUP, format!("fork: {e}"))),
        Ok(ForkResult::Child) => exec_command(program, exec, status, command_mask),
        Ok(ForkResult::Parent { child }) => Ok(child),
    }
}

/// Replaces this process with the command; on failure, says why on the status pipe and
/// exits 127 (not found) or 126 (not executable), as shells do.
pub(crate) fn exec_command(
    program: Option<CString>,
    exec: &ExecSpec,
    status: &OwnedFd,
    command_mask: &SigSet,
) -> ! {
    let _ = command_mask.thread_set_mask();
    let Some(program) = program else {
        let name = exec.argv[0].to_string_lossy();
        report(
            status,
            STATUS_NOT_FOUND,
            &format!("`{name}` was not found in the sandbox's PATH"),
        );
        exit_now(127)
    };
    let Err(err) = execve(&program, &exec.argv, &exec.envp);
    let code = match err {
        Errno::ENOENT => STATUS_NOT_FOUND,
        _ => STATUS_NOT_EXECUTABLE,
    };
    report(
        status,
        code,
        &format!("{}: {}", program.to_string_lossy(), err.desc()),
    );
    exit_now(if code == STATUS_NOT_FOUND { 127 } else { 126 })
}

/// No way back to privilege: no_new_privs, no capability left in any set; then Landlock,
/// then the seccomp filter last (it forbids calls the steps before it make).
fn confine(plan: &Plan, filters: &[BpfProgram], landlock: Enforcement) -> Result<(), NativeError> {
    drop_all_capabilities()
        .map_err(|e| NativeError::Setup(format!("dropping capabilities: {e}")))?;
    restrict(&plan.landlock, filters, landlock)
}

/// no_new_privs, then Landlock, then the seccomp filter last (it forbids calls the steps
/// before it make). Shared with the namespace-free backend.
pub(crate) fn restrict(
    rules: &[crate::landlock::LandlockRule],
    filters: &[BpfProgram],
    landlock: Enforcement,
) -> Result<(), NativeError> {
    prctl::set_no_new_privs().map_err(|e| NativeError::Setup(format!("no_new_privs: {e}")))?;
    crate::landlock::restrict(rules, landlock)?;
    crate::seccomp::apply(filters)
}

/// Looks `name` up as `execvp` would, but in the sandbox's own view and PATH.
pub(crate) fn find_program(name: &CString, path: &OsStr) -> Option<CString> {
    let bytes = name.as_bytes();
    if bytes.contains(&b'/') {
        return Some(name.clone());
    }
    if bytes.is_empty() {
        return None;
    }
    path.as_bytes()
        .split(|b| *b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            Path::new(OsStr::from_bytes(dir)).join(OsStr::from_bytes(bytes))
        })
        .find(|candidate| is_executable_file(candidate))
        .and_then(|p: PathBuf| CString::new(p.into_os_string().into_vec()).ok())
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// PID 1 of the sandbox: forwards signals sent by the supervisor to the command, reaps
/// every orphan, and exits with the command's status. Exiting tears down the PID
/// namespace, so daemons the command left behind die with it.
fn init(command: Pid) -> ! {
    // The supervisor blocked these before the clone; they stay blocked here and are read
    // from a signalfd. (Blocked signals are queued even for a PID 1 without handlers.)
    let mut mask = SigSet::empty();
    for sig in Signal::iterator() {
        if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            mask.add(sig);
        }
    }
    if mask.thread_block().is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    let Ok(signals) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        let _ = kill(command, Signal::SIGKILL);
        exit_now(EXIT_SETUP_FAILED);
    };
    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(Errno::EINTR) => continue,
            Err(_) => exit_now(EXIT_SETUP_FAILED),
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig == Signal::SIGCHLD {
            if let Some(code) = reap(command) {
                exit_now(code);
            }
        } else if info.ssi_code != libc::SI_KERNEL && sig != Signal::SIGWINCH {
            // Sent by the supervisor (or anyone outside): pass it on. Signals the
            // terminal generated (SI_KERNEL) already reached the command's process group.
            let _ = kill(command, sig);
        }
    }
}

/// Reaps every exited child; returns the exit status once `command` has ended
/// (128 + N when a signal N killed it).
pub(crate) fn reap(command: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => return Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                return Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Used by the supervisor to block exactly what the init forwards.
pub(crate) fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ] {
        set.add(sig);
    }
    set
}
