//! The native backend: a sandbox built by kennel itself from Linux namespaces.
//!
//! The supervisor (this process) clones a child into new user, mount, PID and IPC
//! namespaces and lets it go. The child ([`child`]) maps the user's uid and gid to
//! themselves, builds a fresh root from the [`plan`], drops every privilege, starts the
//! command and stays as its init. The supervisor forwards signals and returns the
//! command's exit status. With [`Terminal::Pty`] the command gets a pseudo-terminal of the
//! sandbox's own and the supervisor relays it to the user's terminal ([`pty`]).

pub mod cgroup;
mod child;
mod error;
pub mod landlock;
pub mod landlock_only;
mod mounts;
pub mod net;
pub mod plan;
mod pty;
pub mod seccomp;
mod sys;
pub mod unit;

use std::ffi::{CString, OsString};
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use kennel_policy::{Policy, Terminal};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, killpg, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{pipe2, read, write, Pid};

use child::{ChildArgs, ChildHome, ChildTerminal, ExecSpec};
pub use error::NativeError;
pub use landlock::Enforcement;
pub use landlock_only::run_landlock_only;
pub use net::NetOptions;
pub use plan::{plan, HostRoot, Plan, INSIDE_MARK};
pub use sys::{close_inherited_descriptors_on_exec, exit_now, prepare_process, set_close_on_exec};

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
    /// Descriptors of kennel's caller to pass to the command (`--pass-fd`), their
    /// close-on-exec flag already cleared. No other descriptor reaches the sandbox.
    pub pass_fds: Vec<std::os::fd::RawFd>,
    /// `--tasks N`: at most N processes and threads in the sandbox (RLIMIT_NPROC, which the
    /// kernel counts per user namespace from Linux 5.14 on: the sandbox's own, apart from
    /// the user's other processes). The landlock backend refuses it.
    pub tasks: Option<u64>,
    /// The sandbox's home kept in memory instead of a folder on the host's disk.
    pub memory_home: Option<MemoryHome>,
    /// `--memory`: the most memory the sandbox's processes together may use, in bytes
    /// (a cgroup of its own, see [`cgroup`]). The landlock backend refuses it.
    pub memory: Option<u64>,
}

/// The ephemeral home as a tmpfs of the sandbox's own (bounded like every writable tmpfs):
/// nothing to create on the host's disk at the start, nothing to remove at the end. Once it
/// is mounted, the sandbox hands the supervisor a descriptor of it, kept in `received`,
/// through which the caller lists (and copies back) what was written there after the
/// sandbox is gone: the tmpfs lives as long as that descriptor.
#[derive(Debug, Default)]
pub struct MemoryHome {
    /// The user's files copied in (`copy-back`): where under the home, and their bytes.
    pub files: Vec<(std::path::PathBuf, Vec<u8>)>,
    pub received: std::cell::OnceCell<OwnedFd>,
}

impl Clone for MemoryHome {
    /// A clone has the files, not the descriptor.
    fn clone(&self) -> MemoryHome {
        MemoryHome {
            files: self.files.clone(),
            received: std::cell::OnceCell::new(),
        }
    }
}
use pty::{Pumped, RawMode, Relay, UserTerminal};

/// Runs `policy.command` in a native sandbox and returns its exit status
/// (128 + N when a signal N ended it).
///
/// Must be called while the process is single-threaded.
///
/// `before_command` runs in the supervisor while the child builds the sandbox, and the
/// command starts only once it has returned: what kennel records of the workspace before
/// the command runs costs no time of its own on a machine with a second core.
pub fn run(
    policy: &Policy,
    options: &Options,
    before_command: &mut dyn FnMut(),
) -> Result<i32, NativeError> {
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
    if let Some(home) = &options.memory_home {
        // Written right after the home's tmpfs is mounted, before anything is bound below it.
        let at = plan
            .ops
            .iter()
            .position(
                |op| matches!(op, plan::MountOp::Tmpfs { target, .. } if *target == policy.home),
            )
            .ok_or_else(|| {
                NativeError::Plan("the home kept in memory needs the home to be a tmpfs".into())
            })?;
        for (i, (rel, bytes)) in home.files.iter().enumerate() {
            plan.ops.insert(
                at + 1 + i,
                plan::MountOp::Copied {
                    target: policy.home.join(rel),
                    bytes: bytes.clone(),
                },
            );
        }
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
    // Made before the sandbox, so that a refusal starts nothing.
    let cgroup = options
        .memory
        .map(cgroup::SandboxCgroup::create)
        .transpose()?;
    if let Some(gap) = cgroup.as_ref().and_then(|c| c.not_counted()) {
        eprintln!("kennel: notice: {gap}");
    }

    let forwarded = child::forwarded_signals();
    let caller_mask = forwarded
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(error::sys("blocking signals"))?;
    let (sync_read, sync_write) = pipe2(OFlag::O_CLOEXEC).map_err(error::sys("pipe"))?;
    let (status_read, status_write) = pipe2(OFlag::O_CLOEXEC).map_err(error::sys("pipe"))?;
    // The init's report of the command's status, once the sandbox is empty.
    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(error::sys("pipe"))?;
    // Where the child hands the supervisor a descriptor: a pair of unix stream sockets.
    let handoff = || {
        socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(error::sys("socketpair"))
    };
    // With a pseudo-terminal, the child sends its master back over this socket.
    let terminal = match policy.terminal {
        Terminal::Pty => Some((handoff()?, UserTerminal::read())),
        Terminal::Streams => None,
    };
    // With the home in memory, the child sends a descriptor of it.
    let home_socket = options
        .memory_home
        .as_ref()
        .map(|_| handoff())
        .transpose()?;

    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC;
    if policy.network.isolated() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let pid = match sys::clone_into_namespaces(flags) {
        Err(errno) => {
            // Nothing was started: the caller's mask comes back, so that a fallback (the
            // landlock backend) starts its command with the signals the user's shell gave.
            let _ = caller_mask.thread_set_mask();
            return Err(user_namespaces_denied(errno));
        }
        Ok(None) => {
            drop(sync_write);
            drop(status_read);
            child::child_main(ChildArgs {
                plan: &plan,
                exec: &exec,
                filters: &filters,
                landlock: options.landlock,
                loopback: policy.network.isolated(),
                uid: policy.uid,
                gid: policy.gid,
                net: net.as_ref().map(|n| &n.inside),
                sync: sync_read,
                status: status_write,
                report: report_write,
                command_mask: caller_mask,
                terminal: terminal.map(|((_, socket), user)| ChildTerminal { socket, user }),
                pass_fds: &options.pass_fds,
                tasks: options.tasks,
                home: home_socket.map(|(_, socket)| ChildHome {
                    path: &policy.home,
                    socket,
                }),
            })
        }
        Ok(Some(pid)) => pid,
    };
    drop(sync_read);
    drop(status_write);
    drop(report_write);
    // Keep only our end: the child's copy closing means it will send nothing more.
    let terminal_socket = terminal.map(|((ours, _), _)| ours);
    let home_socket = home_socket.map(|(ours, _)| ours);

    // Into its memory cgroup before it starts anything: what it starts inherits it.
    if let Some(cgroup) = &cgroup {
        if let Err(e) = cgroup.adopt(pid) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
    }
    // The child builds the sandbox once it reads this byte, and waits for a second one
    // before it starts the command.
    write(&sync_write, b"g").map_err(error::sys("starting the sandbox"))?;
    if let Some(session) = &mut net {
        if let Err(e) = session.start() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
    }
    // Meanwhile: what kennel notes and records first (its lines are printed while the
    // user's terminal is as the user left it). Ctrl-C, a closed terminal or `kill` end
    // kennel there as they would before the sandbox (nothing of the command's runs yet,
    // and the sandbox goes with kennel): those signals are let through for that time,
    // unless the caller blocked them.
    let mut ending = SigSet::empty();
    for signal in ENDING {
        if !caller_mask.contains(signal) {
            ending.add(signal);
        }
    }
    let _ = ending.thread_unblock();
    before_command();
    let _ = ending.thread_block();
    // A request to end that came as the mask went back (the user's Ctrl-C, a closed
    // terminal, `kill`) waits, blocked, for the command to be told: there is none yet, and
    // none must start.
    if let Some(signal) = asked_to_end() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        return Ok(128 + signal);
    }
    // Raw before the command starts; restored when `raw` (or the relay owning it) drops.
    let raw = match terminal_socket.as_ref().map(|_| RawMode::enter()) {
        None => None,
        Some(Ok(raw)) => raw,
        Some(Err(e)) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
    };
    // The command may start. A child whose setup failed has closed its end: the write
    // fails, and its status says why.
    let _ = write(&sync_write, b"c");
    drop(sync_write);
    let started = read_status(status_read);
    // Sent before the command was started (or never, when the setup failed first): the
    // child's end is closed by then, so this does not wait.
    if let (Some(socket), Some(home)) = (&home_socket, &options.memory_home) {
        if let Ok(fd) = pty::receive_fd(socket, "the sandbox's home") {
            let _ = home.received.set(fd);
        }
    }
    drop(home_socket);
    if let Some(err) = started {
        // The child exits by itself when the setup failed; when the command could not be
        // started, the init waits for kennel's exit (see `child::end_sandbox`): ended here.
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        // As where the clone is refused: a refusal inside the namespace (AppArmor) is
        // followed by the landlock backend, whose command must get the caller's mask.
        let _ = caller_mask.thread_set_mask();
        return Err(err);
    }
    let status = match watch(&forwarded, terminal_socket, raw) {
        Ok((signals, relay)) => supervise(
            Watched::Init {
                pid,
                report: &report_read,
            },
            &signals,
            relay,
        ),
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(e)
        }
    };
    let mut summary: Vec<String> = net.iter().flat_map(|n| n.summary()).collect();
    if let Some(cgroup) = &cgroup {
        // The init stays until kennel exits (its report was the end of the sandbox); its
        // cgroup can be removed only once it is gone.
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        let killed = cgroup.oom_kills();
        if killed > 0 {
            summary.push(format!(
                "the sandbox reached its memory limit (--memory, {} bytes): the kernel killed \
                 {killed} of its processes",
                cgroup.limit()
            ));
        }
    }
    if !summary.is_empty() {
        plain_attributes();
    }
    for line in summary {
        eprintln!("kennel: {line}");
    }
    // Not freed: the sandbox's init, a copy of this process, shares these pages until
    // kennel exits, which it is about to do; freeing would copy each page it writes to.
    std::mem::forget((plan, exec, filters, host));
    status
}

/// The signals that ask kennel to end.
const ENDING: [Signal; 4] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
];

/// A signal asking kennel to end that is pending (blocked since before the clone), taken.
fn asked_to_end() -> Option<i32> {
    let mut ending = SigSet::empty();
    for signal in ENDING {
        ending.add(signal);
    }
    let fd = SignalFd::with_flags(&ending, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok()?;
    let info = fd.read_signal().ok()??;
    i32::try_from(info.ssi_signo).ok()
}

/// Before kennel's own lines at exit: the command may have left the terminal's colours set
/// to conceal (`ESC [8m`) or to look like something else; they are reset first, where
/// standard error is a terminal.
pub fn plain_attributes() {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = err.write_all(b"\x1b[0m");
    }
}

/// What the supervisor watches once the command runs: its signals (blocked since before
/// the clone, so none was lost) and, with a pseudo-terminal, the relay.
fn watch(
    forwarded: &SigSet,
    terminal_socket: Option<OwnedFd>,
    raw: Option<RawMode>,
) -> Result<(SignalFd, Option<Relay>), NativeError> {
    let signals = SignalFd::with_flags(forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(error::sys("signalfd"))?;
    let relay = match terminal_socket {
        Some(socket) => Some(Relay::start(
            pty::receive_fd(&socket, "the terminal")?,
            raw,
        )?),
        None => None,
    };
    Ok((signals, relay))
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

/// How long the sandbox has to end after kennel was asked to stop (SIGTERM, SIGHUP, or the
/// user's terminal going away) before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// After SIGTERM with a pseudo-terminal: how long the sandbox has to end once its terminal
/// was hung up at the end of [`STOP_GRACE`], before it is killed.
const HANG_UP_GRACE: Duration = Duration::from_secs(2);

/// Waits for the sandbox's init, relaying the terminal when there is one, and returns the
/// command's status.
///
/// The command runs in a session of its own, so signals the user's terminal generates
/// (Ctrl-C without a pseudo-terminal, a hang-up) reach only kennel, which passes them on.
/// SIGHUP also hangs up the sandbox's terminal at once; SIGTERM only when the command has not
/// ended `STOP_GRACE` later (its TERM handler runs with its terminal there), and the sandbox
/// is killed when it has not ended by then (or `HANG_UP_GRACE` after the hang-up): an
/// interactive shell ignores SIGTERM, and kennel must not outlive the request to stop it.
///
/// What kennel's child is: the native sandbox's init, or (landlock backend) the command.
pub(crate) enum Watched<'a> {
    /// The init passes signals on to the command's job. Once the command has ended and the
    /// init has ended every other process of the sandbox, it writes the command's status
    /// to `report`, before its own exit tears the namespaces down (which kennel need not
    /// wait for: nothing runs in them anymore).
    Init {
        pid: Pid,
        report: &'a OwnedFd,
    },
    Command(Pid),
}

pub(crate) fn supervise(
    watched: Watched,
    signals: &SignalFd,
    mut relay: Option<Relay>,
) -> Result<i32, NativeError> {
    let (init, report, via_init) = match watched {
        Watched::Init { pid, report } => (pid, Some(report), true),
        Watched::Command(pid) => (pid, None, false),
    };
    let mut stop_by: Option<Instant> = None;
    let mut hang_up_at: Option<Instant> = None;
    // Reap first: the init may have ended before the signalfd existed (its SIGCHLD is then
    // pending and will be read too, which is harmless).
    let mut reap = true;
    loop {
        if reap {
            reap = false;
            if let Some(code) = init_status(init)? {
                if let Some(relay) = relay.as_mut() {
                    relay.finish();
                }
                return Ok(code);
            }
        }
        let timeout = match hang_up_at.or(stop_by) {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::from(u16::try_from(left).unwrap_or(u16::MAX))
            }
            None => PollTimeout::NONE,
        };
        let wake = report.map(|r| r.as_fd());
        let hung_up = match relay.as_mut() {
            Some(relay) => relay.pump(signals.as_fd(), wake, timeout)? == Pumped::HungUp,
            None => {
                let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
                fds.extend(wake.map(|w| PollFd::new(w, PollFlags::POLLIN)));
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(Errno::EINTR) => false,
                    Err(e) => return Err(error::sys("waiting for signals")(e)),
                }
            }
        };
        if let Some(code) = report.and_then(reported_status) {
            if let Some(relay) = relay.as_mut() {
                relay.finish();
            }
            return Ok(code);
        }
        if hung_up {
            let _ = kill(init, Signal::SIGHUP);
            stop_by.get_or_insert_with(|| Instant::now() + STOP_GRACE);
        }
        while let Some(sig) = next_signal(signals)? {
            match sig {
                Signal::SIGCHLD => reap = true,
                Signal::SIGWINCH => match relay.as_ref() {
                    // The kernel tells the command's foreground job when the size changes.
                    Some(relay) => relay.copy_window_size(),
                    None => {
                        let _ = kill(init, sig);
                    }
                },
                // The user's terminal went away: the sandbox's is hung up too, at once.
                Signal::SIGHUP => {
                    let _ = kill(init, sig);
                    if let Some(relay) = relay.as_mut() {
                        relay.hang_up();
                    }
                    stop_by.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                }
                // Asked to stop: the command gets its grace period to save its state in its
                // own TERM handler, with its terminal still there (a hang-up now would kill
                // it inside that handler); the terminal is hung up when the period ends,
                // which ends an interactive shell that ignores SIGTERM, and whatever is
                // still left is killed shortly after.
                Signal::SIGTERM => {
                    let _ = kill(init, sig);
                    if relay.is_some() {
                        hang_up_at.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                        stop_by.get_or_insert_with(|| Instant::now() + STOP_GRACE + HANG_UP_GRACE);
                    } else {
                        stop_by.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                    }
                }
                // Ctrl-Z (or `kill -TSTP`): kennel stops as the job the user's shell sees, as
                // a command without kennel would. With a pseudo-terminal, the user's terminal
                // is given back meanwhile and the sandbox runs on (Ctrl-Z typed inside
                // reaches the sandbox's own terminal instead); without one, the sandbox's job
                // stops too, and `fg` (SIGCONT) continues it.
                Signal::SIGTSTP => {
                    match relay.as_ref() {
                        Some(relay) => relay.suspend(),
                        None => stop_job(init, via_init),
                    }
                    let _ = kill(Pid::this(), Signal::SIGSTOP);
                    if let Some(relay) = relay.as_ref() {
                        relay.resume();
                    }
                }
                Signal::SIGCONT => {
                    if relay.is_none() {
                        continue_job(init, via_init);
                    }
                }
                _ => {
                    let _ = kill(init, sig);
                }
            }
        }
        if hang_up_at.is_some_and(|at| Instant::now() >= at) {
            hang_up_at = None;
            if let Some(relay) = relay.as_mut() {
                relay.hang_up();
            }
        }
        if stop_by.is_some_and(|at| Instant::now() >= at) {
            // The init is PID 1 of the sandbox: every process in it dies with it.
            let _ = kill(init, Signal::SIGKILL);
            stop_by = None;
        }
    }
}

/// Stops the command's job: through the native backend's init, or directly (the command
/// leads a process group of its own, which the kernel would not stop for a SIGTSTP).
fn stop_job(init: Pid, via_init: bool) {
    if via_init {
        let _ = kill(init, Signal::SIGTSTP);
    } else if killpg(init, Signal::SIGSTOP).is_err() {
        let _ = kill(init, Signal::SIGSTOP);
    }
}

/// Continues the command's job after [`stop_job`].
fn continue_job(init: Pid, via_init: bool) {
    if via_init || killpg(init, Signal::SIGCONT).is_err() {
        let _ = kill(init, Signal::SIGCONT);
    }
}

/// The status the init reported, once it has (the pipe is non-blocking).
fn reported_status(report: &OwnedFd) -> Option<i32> {
    let mut bytes = [0u8; 4];
    match read(report, &mut bytes) {
        Ok(4) => Some(i32::from_le_bytes(bytes)),
        _ => None,
    }
}

/// The next signal sent to kennel, if one is pending.
fn next_signal(signals: &SignalFd) -> Result<Option<Signal>, NativeError> {
    loop {
        match signals.read_signal() {
            Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                Ok(sig) => return Ok(Some(sig)),
                Err(_) => continue,
            },
            Ok(None) | Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(error::sys("reading signals")(e)),
        }
    }
}

/// The init's exit status (128 + N when a signal N ended it), once it has ended.
fn init_status(init: Pid) -> Result<Option<i32>, NativeError> {
    match waitpid(init, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(128 + sig as i32)),
        Ok(_) | Err(Errno::EINTR) => Ok(None),
        Err(e) => Err(error::sys("waiting for the sandbox")(e)),
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
