//! The sandbox side: runs in the cloned process, which is PID 1 of the new PID namespace.
//! It builds the root, confines itself, starts the command and stays as its init.

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::prctl;
use nix::sys::signal::{kill, killpg, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{
    dup2_stderr, dup2_stdin, dup2_stdout, execve, read, setpgid, setsid, write, Pid,
};

use crate::error::NativeError;
use crate::landlock::{Enforcement, Known};
use crate::mounts::build_root;
use crate::plan::Plan;
use crate::pty::{self, UserTerminal};
use crate::sys::{
    close_descriptors_except, default_sigpipe, drop_all_capabilities, exit_now, spawn_shared,
};
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
    /// The user's ids, mapped to themselves in the new user namespace.
    pub uid: u32,
    pub gid: u32,
    /// The network helpers to start inside (allow-list, localhost ports); see [`crate::net`].
    pub net: Option<&'a kennel_net::inside::InsideConfig>,
    pub sync: OwnedFd,
    pub status: OwnedFd,
    /// Where the init reports the command's status once the sandbox is empty.
    pub report: OwnedFd,
    /// The caller's signal mask, given back to the command.
    pub command_mask: SigSet,
    /// Some when the command gets a pseudo-terminal of its own.
    pub terminal: Option<ChildTerminal>,
    /// Descriptors the user asked to pass to the command (`--pass-fd`); every other one
    /// the supervisor holds is closed in the child.
    pub pass_fds: &'a [RawFd],
    /// `--tasks`: the sandbox's processes and threads, at most.
    pub tasks: Option<u64>,
    /// The home in memory (a tmpfs of the sandbox's), and where it goes to the supervisor.
    pub home: Option<ChildHome<'a>>,
}

/// The sandbox's home kept in memory: once mounted, a descriptor of it goes to the
/// supervisor, which lists what was written there after the sandbox is gone.
pub(crate) struct ChildHome<'a> {
    pub path: &'a Path,
    pub socket: OwnedFd,
}

/// What the child needs to give the command its own terminal.
pub(crate) struct ChildTerminal {
    /// Where the pseudo-terminal's master goes to the supervisor.
    pub socket: OwnedFd,
    pub user: UserTerminal,
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
        uid,
        gid,
        net,
        sync,
        status,
        report: exit_report,
        command_mask,
        terminal,
        pass_fds,
        tasks,
        home,
    } = args;
    // This process is a copy of kennel, made without exec: it holds every descriptor of
    // the supervisor (the ephemeral home's lock, a directory of the host's mount namespace;
    // the other ends of the pipes; the proxy's sockets) and kennel's whole environment and
    // memory. Only what the init needs stays open, and it becomes non-dumpable once its
    // id maps are written (below).
    let mut keep = vec![
        sync.as_raw_fd(),
        status.as_raw_fd(),
        exit_report.as_raw_fd(),
    ];
    keep.extend(terminal.as_ref().map(|t| t.socket.as_raw_fd()));
    keep.extend(home.as_ref().map(|h| h.socket.as_raw_fd()));
    keep.extend_from_slice(pass_fds);
    if close_descriptors_except(&keep).is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    // A session of its own, without a terminal: the terminal's signals reach only the
    // supervisor, which forwards them, and nothing here can acquire the user's terminal.
    if setsid().is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    // Its own id maps, written from inside: the one mapping an unprivileged process may
    // write for itself, and no round trip through the supervisor.
    if let Err(message) = write_own_id_maps(uid, gid) {
        report(&status, STATUS_USERNS, &message);
        exit_now(EXIT_SETUP_FAILED);
    }
    // Counted in this new user namespace (Linux 5.14 and later): the sandbox's processes
    // and threads (the init and the network helper included), not the user's others.
    if let Some(n) = tasks {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        // Never above the user's own limit, which an unprivileged process cannot raise.
        let n = getrlimit(Resource::RLIMIT_NPROC).map_or(n, |(_, hard)| n.min(hard));
        if let Err(e) = setrlimit(Resource::RLIMIT_NPROC, n, n) {
            report(
                &status,
                STATUS_SETUP,
                &format!("limiting the sandbox to {n} tasks: {e}"),
            );
            exit_now(EXIT_SETUP_FAILED);
        }
    }
    // Non-dumpable: the command, same uid and same Landlock domain, can then neither read
    // the init's (and the network helper's) /proc/PID/environ or /proc/PID/mem nor use
    // /proc/PID/fd or pidfd_getfd: the kernel asks for CAP_SYS_PTRACE in kennel's own user
    // namespace over a non-dumpable process, which nothing inside has. (After the id maps:
    // a non-dumpable process's /proc/self files belong to root, and those are written.)
    if prctl::set_dumpable(false).is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    let mut go = [0u8; 1];
    if !matches!(read(&sync, &mut go), Ok(1)) {
        exit_now(EXIT_SETUP_FAILED);
    }
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
    match setup(Setup {
        plan,
        exec,
        sync,
        status: &status,
        command_mask: &command_mask,
        filters,
        landlock,
        terminal,
        home,
        helpers,
        exit_report: &exit_report,
    }) {
        Ok(command) => {
            drop(status);
            init(command, exit_report)
        }
        Err((code, message)) => {
            report(&status, code, &message);
            exit_now(EXIT_SETUP_FAILED)
        }
    }
}

/// Maps the user's uid and gid to themselves in this process's new user namespace
/// (setgroups denied first, as the kernel requires of an unprivileged gid map).
fn write_own_id_maps(uid: u32, gid: u32) -> Result<(), String> {
    let write = |file: &str, text: String| {
        let path = format!("/proc/self/{file}");
        std::fs::write(&path, text).map_err(|e| format!("writing {path} failed: {e}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {uid} 1\n"))?;
    write("gid_map", format!("{gid} {gid} 1\n"))
}

pub(crate) fn report(status: &OwnedFd, code: u8, message: &str) {
    let mut bytes = Vec::with_capacity(message.len() + 1);
    bytes.push(code);
    bytes.extend_from_slice(message.as_bytes());
    let _ = write(status.as_fd(), &bytes);
}

/// What the sandbox's setup works from, once the child runs.
struct Setup<'a> {
    plan: &'a Plan,
    exec: &'a ExecSpec,
    /// The supervisor's second byte on it lets the command start (see [`setup`]).
    sync: OwnedFd,
    status: &'a OwnedFd,
    command_mask: &'a SigSet,
    filters: &'a [BpfProgram],
    landlock: Enforcement,
    terminal: Option<ChildTerminal>,
    home: Option<ChildHome<'a>>,
    helpers: Option<kennel_net::inside::Listeners>,
    /// The init's report pipe, which the network helpers must not hold.
    exit_report: &'a OwnedFd,
}

fn setup(setup: Setup) -> Result<Pid, (u8, String)> {
    let Setup {
        plan,
        exec,
        sync,
        status,
        command_mask,
        filters,
        landlock,
        terminal,
        home,
        helpers,
        exit_report,
    } = setup;
    let fail = |e: NativeError| match e {
        NativeError::UserNamespacesDenied { cause, .. } => (STATUS_USERNS, cause),
        // The supervisor says "setting up the sandbox failed" itself.
        NativeError::Setup(message) => (STATUS_SETUP, message),
        other => (STATUS_SETUP, other.to_string()),
    };
    let known = build_root(plan).map_err(fail)?;
    // The home, before anything of the command's runs: opened here, by its path in the new
    // root that nothing but kennel has touched yet, and closed once handed over.
    if let Some(ChildHome { path, socket }) = home {
        let dir = open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            (
                STATUS_SETUP,
                format!("opening the home {}: {e}", path.display()),
            )
        })?;
        pty::send_fd(&socket, dir.as_fd(), "the sandbox's home").map_err(fail)?;
    }
    // The pseudo-terminal comes from the sandbox's own devpts, mounted by build_root.
    let slave = match terminal {
        None => None,
        Some(ChildTerminal { socket, user }) => {
            let (master, slave) = pty::open_in_sandbox(&user).map_err(fail)?;
            pty::send_fd(&socket, master.as_fd(), "the terminal").map_err(fail)?;
            Some(slave)
        }
    };
    let program = find_program(&exec.argv[0], &exec.path);
    confine(plan, known, filters, landlock).map_err(fail)?;
    if let Some(helpers) = helpers {
        crate::net::start_inside(helpers, status, exit_report, &sync)
            .map_err(|m| (STATUS_SETUP, m))?;
    }

    // The supervisor's second byte: what it records of the workspace before the command
    // runs (the end check's start, a checkpoint) is done, while this setup ran beside it.
    // Nothing of the command's has run before; end of file is a supervisor gone.
    let mut start = [0u8; 1];
    if !matches!(read(&sync, &mut start), Ok(1)) {
        return Err((
            STATUS_SETUP,
            "the supervisor did not let the command start".into(),
        ));
    }
    drop(sync);

    // This process is single-threaded (a clone of the single-threaded supervisor), as
    // spawn_shared needs; the init waits here until the command has been exec'd.
    let spawned =
        spawn_shared(|| exec_command(program, exec, status, command_mask, slave.as_ref(), false));
    match spawned {
        Err(e) => Err((STATUS_SETUP, format!("starting the command: {e}"))),
        // The command holds the slave now; the init keeps no copy, so that the supervisor
        // sees the end of the terminal when the command's side closes it.
        Ok(child) => {
            drop(slave);
            if let Err(e) = release_user_streams() {
                let _ = kill(child, Signal::SIGKILL);
                return Err((STATUS_SETUP, format!("closing the user's streams: {e}")));
            }
            Ok(child)
        }
    }
}

/// The init got kennel's standard streams (the user's terminal, with a pty) from the clone.
/// The command could open them through /proc/1/fd and read or set the user's terminal, so
/// the init keeps /dev/null instead.
fn release_user_streams() -> nix::Result<()> {
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    dup2_stdin(&null)?;
    dup2_stdout(&null)?;
    dup2_stderr(&null)
}

/// Replaces this process with the command: with `slave`, in a new session whose controlling
/// terminal is that pseudo-terminal of the sandbox's own; without, in a process group of its
/// own in the init's session, which has no terminal at all, so that TIOCSTI has nothing to
/// reach. (A new session there would only cost a scheduler group more: the kernel makes one
/// for every new session.) Either way the command leads its process group, so that the
/// init can signal the whole job. On failure, says why on the status pipe and exits 127
/// (not found) or 126 (not executable), as shells do.
pub(crate) fn exec_command(
    program: Option<CString>,
    exec: &ExecSpec,
    status: &OwnedFd,
    command_mask: &SigSet,
    slave: Option<&OwnedFd>,
    in_users_session: bool,
) -> ! {
    let _ = command_mask.thread_set_mask();
    // Without a terminal of its own: a process group of its own in the init's session,
    // which has no terminal; where the caller's session is the user's (the landlock
    // backend, whose command is kennel's child), a session of its own, so that the user's
    // terminal is not its controlling terminal (no /dev/tty, no tcsetpgrp).
    let terminal = match slave {
        Some(slave) => setsid().and_then(|_| pty::attach(slave)),
        None if in_users_session => setsid().map(drop),
        None => setpgid(Pid::from_raw(0), Pid::from_raw(0)),
    }
    .and_then(|_| default_sigpipe());
    if let Err(e) = terminal {
        report(
            status,
            STATUS_SETUP,
            &format!("giving the command its terminal: {e}"),
        );
        exit_now(EXIT_SETUP_FAILED)
    }
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
fn confine(
    plan: &Plan,
    known: HashMap<PathBuf, Known>,
    filters: &[BpfProgram],
    landlock: Enforcement,
) -> Result<(), NativeError> {
    drop_all_capabilities()
        .map_err(|e| NativeError::Setup(format!("dropping capabilities: {e}")))?;
    restrict(&plan.landlock, known, filters, landlock)
}

/// no_new_privs, then Landlock, then the seccomp filter last (it forbids calls the steps
/// before it make). Shared with the namespace-free backend.
pub(crate) fn restrict(
    rules: &[crate::landlock::LandlockRule],
    known: HashMap<PathBuf, Known>,
    filters: &[BpfProgram],
    landlock: Enforcement,
) -> Result<(), NativeError> {
    prctl::set_no_new_privs().map_err(|e| NativeError::Setup(format!("no_new_privs: {e}")))?;
    crate::landlock::restrict(rules, known, landlock)?;
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
    // A folder named twice (a PATH that shell start-up files extended more than once) is
    // looked in once: the answer would be the same.
    let mut seen: Vec<&[u8]> = Vec::new();
    path.as_bytes()
        .split(|b| *b == b':')
        .filter(|dir| {
            let new = !seen.contains(dir);
            if new {
                seen.push(dir);
            }
            new
        })
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
fn init(command: Pid, exit_report: OwnedFd) -> ! {
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
                end_sandbox(&exit_report, code);
            }
        } else if matches!(
            sig,
            Signal::SIGINT | Signal::SIGQUIT | Signal::SIGWINCH | Signal::SIGTSTP | Signal::SIGCONT
        ) {
            // What a terminal does with Ctrl-C, Ctrl-\, a resize, Ctrl-Z and `fg`: tell the
            // whole job. The command leads its process group, so the group is its pid. With
            // a terminal of its own, the command also leads its session, where the group has
            // no parent outside it, so the kernel would drop a SIGTSTP sent to it: Ctrl-Z
            // stops it with SIGSTOP.
            let sig = if sig == Signal::SIGTSTP {
                Signal::SIGSTOP
            } else {
                sig
            };
            if killpg(command, sig).is_err() {
                let _ = kill(command, sig);
            }
        } else {
            // The init is in a session of its own, so everything it receives comes from the
            // supervisor (or someone else outside): pass it on.
            let _ = kill(command, sig);
        }
    }
}

/// The command has ended: ends every other process of the sandbox (daemons it left behind)
/// and reaps them, then tells the supervisor the command's status. Nothing of the sandbox
/// runs anymore; the init itself waits for the supervisor's exit to end it (the parent-death
/// signal set at its start), so that the kernel's teardown of the namespaces, which unmounts
/// every mount of the sandbox, comes after kennel has returned to its caller instead of
/// competing with kennel's own exit for the CPUs.
fn end_sandbox(exit_report: &OwnedFd, code: i32) -> ! {
    if sandbox_has_processes_left() {
        // As PID 1 of the namespace, -1 means every other process in it.
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        // Until ECHILD: none is left.
        while matches!(waitpid(None, None), Ok(_) | Err(Errno::EINTR)) {}
    }
    let _ = write(exit_report.as_fd(), &code.to_le_bytes());
    loop {
        // Every signal but SIGKILL is blocked (and read from a signalfd no longer read).
        nix::unistd::pause();
    }
}

/// Whether a process other than the init is left, reaping those that have ended. Every
/// process of the sandbox descends from the init, and an orphan is adopted by a living
/// ancestor (the init itself at the latest), so one is left exactly when the init still has
/// a child that runs. Asked first because kill(-1) looks at every process of the host, not
/// only the sandbox's: the usual command leaves nothing behind.
fn sandbox_has_processes_left() -> bool {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(_) | Err(Errno::EINTR) => continue,
            // ECHILD: no child at all.
            Err(_) => return false,
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
        Signal::SIGWINCH,
        Signal::SIGCHLD,
        Signal::SIGTSTP,
        Signal::SIGCONT,
    ] {
        set.add(sig);
    }
    set
}
