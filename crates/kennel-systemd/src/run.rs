//! Running: the outer side starts `systemd-run`; the inner side (inside the unit) checks
//! the protections and starts the command.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::iterator::Signals;

use crate::command::Invocation;
use crate::error::SystemdError;
use crate::verify::VerifySpec;

/// kennel's own executable, with symlinks resolved (`/proc/self/exe`), to run inside the unit.
pub fn own_executable() -> Result<PathBuf, SystemdError> {
    std::fs::canonicalize("/proc/self/exe").map_err(SystemdError::OwnExecutable)
}

/// Runs the invocation and returns `systemd-run`'s exit status, which is the command's
/// (the inner kennel turns a signal N into 128+N, which systemd-run passes on).
pub fn run(inv: &Invocation) -> Result<i32, SystemdError> {
    let (program, args) = inv.argv.split_first().ok_or_else(|| SystemdError::Spawn {
        program: "systemd-run".into(),
        source: std::io::Error::new(ErrorKind::InvalidInput, "empty command line"),
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args).envs(inv.env.iter().map(|(k, v)| (k, v)));
    with_runtime_dir(&mut cmd);
    check_bus_reachable()?;
    // systemd-run leaves the unit running when it is interrupted or killed; kennel stops
    // it, so that no process of the sandbox outlives kennel (SIGKILL cannot be caught).
    let numbers: Vec<i32> = STOPPING.iter().map(|s| *s as i32).collect();
    let mut signals = Signals::new(&numbers).map_err(SystemdError::Signals)?;
    let mut child = cmd.spawn().map_err(|source| SystemdError::Spawn {
        program: program.clone(),
        source,
    })?;
    let handle = signals.handle();
    let unit = format!("{}.service", inv.unit);
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let stopper = std::thread::spawn(move || {
        if signals.forever().next().is_none() {
            return;
        }
        // A signal can come while systemd-run is still creating the unit, when a stop
        // finds nothing to stop: ask again until systemd-run has returned.
        while !finished.load(Ordering::SeqCst) {
            let mut stop = Command::new("systemctl");
            stop.args(["--user", "stop", "--no-block", &unit])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            with_runtime_dir(&mut stop);
            let _ = stop.status();
            for _ in 0..10 {
                if finished.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    });
    let status = child.wait().map_err(|source| SystemdError::Spawn {
        program: program.clone(),
        source,
    });
    done.store(true, Ordering::SeqCst);
    handle.close();
    let _ = stopper.join();
    Ok(status_code(status?))
}

/// `systemd-run --user` and `systemctl --user` find the user's manager through
/// XDG_RUNTIME_DIR, which `su`, `sudo -u`, `setpriv` and cron do not set: fall back to
/// the standard place.
fn with_runtime_dir(cmd: &mut Command) {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = PathBuf::from(format!("/run/user/{}", nix::unistd::getuid()));
        if dir.is_dir() {
            cmd.env("XDG_RUNTIME_DIR", dir);
        }
    }
}

/// `systemd-run --wait` talks to the manager over the user's D-Bus session bus. Without
/// one it fails with exit status 1, indistinguishable from the command's own: say why
/// instead.
fn check_bus_reachable() -> Result<(), SystemdError> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return Ok(());
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", nix::unistd::getuid())));
    let bus = runtime.join("bus");
    if bus.exists() {
        Ok(())
    } else {
        Err(SystemdError::ManagerUnreachable(format!(
            "there is no session bus at {} and DBUS_SESSION_BUS_ADDRESS is not set; \
             is `systemd --user` running (loginctl enable-linger, or log in) with \
             dbus-user-session installed?",
            bus.display()
        )))
    }
}

/// Signals on which the outer kennel stops the unit.
const STOPPING: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGQUIT,
];

/// 128+N for a signal N, as shells report it.
fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Signals the inner kennel survives and passes on to the command.
///
/// The inner kennel stays as the command's parent rather than exec'ing it, because the
/// manager reports a service killed by SIGTERM, SIGINT, SIGHUP or SIGPIPE as a success and
/// any other signal as 255 (systemd.service(5) `SuccessExitStatus=`, systemd-run(1)
/// `--wait`): only a parent sees the real status and can return 128+N.
///
/// They are caught with handlers, not blocked: handlers fall back to the default at exec,
/// while a blocked mask would be inherited by the command, which then could not even
/// signal itself.
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Inside the unit: checks `spec`, then runs `command` with only the allowed environment
/// and returns its status (128+N for a signal N).
///
/// Why kennel itself rather than a `sh -c` prelude: the checks need exact path
/// comparisons and mountinfo parsing that a shell gets wrong with unusual file names, the
/// environment must be cut down to the allow-list (the user manager adds its own, e.g.
/// `DBUS_SESSION_BUS_ADDRESS`), and the exit status must survive signals (see
/// [`FORWARDED`]).
pub fn verify_and_run(spec: &VerifySpec, command: &[OsString]) -> Result<i32, SystemdError> {
    spec.check()?;
    run_verified(spec, command, spec.watch.and_then(|w| w.pidfd()))
}

/// [`verify_and_run`] for a caller that has run `spec.check()` itself (and started what
/// must run beside the command, such as the network relay).
/// `outer` is the outer kennel's pidfd ([`crate::Watched::pidfd`]): when it ends, even
/// killed by SIGKILL, the command is ended.
pub fn run_verified(
    spec: &VerifySpec,
    command: &[OsString],
    outer: Option<std::os::fd::OwnedFd>,
) -> Result<i32, SystemdError> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| SystemdError::BadVerifyArgs("no command".into()))?;
    let kept: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| spec.keep_env.iter().any(|n| k == n.as_str()))
        .collect();

    let numbers: Vec<i32> = FORWARDED.iter().map(|s| *s as i32).collect();
    let mut signals = Signals::new(&numbers).map_err(SystemdError::Signals)?;
    let child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(kept)
        .spawn()
        .map_err(|source| exec_error(program, source))?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let handle = signals.handle();
    let forwarder = std::thread::spawn(move || {
        for signo in signals.forever() {
            if let Ok(sig) = Signal::try_from(signo) {
                let _ = kill(pid, sig);
            }
        }
    });
    // systemd-run leaves the unit running when the outer kennel is killed with SIGKILL,
    // which it cannot catch: watch it from here, and end the command when it is gone (the
    // manager then ends whatever else runs in the unit's cgroup).
    if spec.watch.is_some() {
        let Some(outer) = outer else {
            let _ = kill(pid, Signal::SIGKILL);
            return Err(SystemdError::BadVerifyArgs(
                "the kennel that started this unit is gone".into(),
            ));
        };
        std::thread::spawn(move || {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let mut fds = [PollFd::new(
                std::os::fd::AsFd::as_fd(&outer),
                PollFlags::POLLIN,
            )];
            while matches!(poll(&mut fds, PollTimeout::NONE), Err(nix::Error::EINTR)) {}
            let _ = kill(pid, Signal::SIGKILL);
        });
    }
    // The command's status; every other child is reaped too (orphans of the sandbox, when
    // this process is the init of its PID namespace).
    let status = loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(p, code)) if p == pid => break Ok(code),
            Ok(nix::sys::wait::WaitStatus::Signaled(p, signal, _)) if p == pid => {
                break Ok(128 + signal as i32)
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => {
                break Err(SystemdError::Io {
                    path: Path::new(program).into(),
                    source: e.into(),
                })
            }
        }
    };
    drop(child);
    handle.close();
    let _ = forwarder.join();
    status
}

fn exec_error(program: &OsString, source: std::io::Error) -> SystemdError {
    let status = if source.kind() == ErrorKind::NotFound {
        127
    } else {
        126
    };
    SystemdError::Exec {
        command: program.to_string_lossy().into_owned(),
        source,
        status,
    }
}

/// A reachable systemd user manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserManager {
    /// As the manager reports it, e.g. `252.38-1~deb12u1`.
    pub version: String,
    /// The major version, e.g. 252.
    pub major: Option<u32>,
}

/// Whether the user's systemd manager answers, and its version: for `kennel doctor`.
/// The error says why not (no manager, no bus, systemd not installed).
pub fn user_manager() -> Result<UserManager, SystemdError> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["--user", "show", "--property=Version", "--value"]);
    with_runtime_dir(&mut cmd);
    let out = cmd.output().map_err(|source| SystemdError::Spawn {
        program: "systemctl".into(),
        source,
    })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || version.is_empty() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(SystemdError::ManagerUnreachable(if why.is_empty() {
            "systemctl --user gave no version".into()
        } else {
            why
        }));
    }
    Ok(UserManager {
        major: parse_major(&version),
        version,
    })
}

fn parse_major(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions() {
        assert_eq!(parse_major("252.38-1~deb12u1"), Some(252));
        assert_eq!(parse_major("256"), Some(256));
        assert_eq!(parse_major("unknown"), None);
    }
}
