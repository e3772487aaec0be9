//! `--backend systemd`: the glue between the CLI and the kennel-systemd crate.

use std::ffi::OsString;

use std::os::fd::AsFd;

use kennel_policy::{Context, Policy};
use kennel_systemd::{Limits, Options, SystemdError, VerifySpec};

use crate::{chain, exit, Failure};

impl From<SystemdError> for Failure {
    fn from(e: SystemdError) -> Self {
        let status = match &e {
            SystemdError::Exec { status, .. } => *status,
            SystemdError::BadLimit { .. } | SystemdError::Unsupported { .. } => exit::REFUSED,
            _ => exit::SETUP_FAILED,
        };
        Failure {
            message: chain(&e),
            status,
        }
    }
}

/// The flags only the systemd backend understands.
#[derive(Debug, Default)]
pub struct SystemdFlags {
    pub dry_run: bool,
    pub memory: Option<String>,
    pub tasks: Option<String>,
    pub cpu: Option<String>,
}

/// Resource limits and `--dry-run` only exist on the systemd backend: refuse rather than
/// ignore them.
pub fn refuse_systemd_only_flags(
    args: &SystemdFlags,
    backend: kennel_policy::Backend,
) -> Result<(), Failure> {
    let flags = [
        ("--dry-run", args.dry_run, ""),
        (
            "--memory",
            args.memory.is_some() && backend == kennel_policy::Backend::Landlock,
            " and the native backend (a memory limit of the whole sandbox needs a cgroup of its \
             own, which the landlock backend cannot move the sandbox into before it starts)",
        ),
        (
            "--tasks",
            args.tasks.is_some() && backend == kennel_policy::Backend::Landlock,
            " and the native backend (the landlock backend has no user namespace in which to \
             count the sandbox's processes apart from your others)",
        ),
        ("--cpu", args.cpu.is_some(), ""),
    ];
    match flags.iter().find(|(_, given, _)| *given) {
        Some((flag, _, why)) => Err(Failure {
            message: format!("{flag} is only supported with --backend systemd{why}"),
            status: exit::REFUSED,
        }),
        None => Ok(()),
    }
}

/// `--memory SIZE` for the native backend, in bytes: a number with an optional K, M, G or T
/// (powers of 1024), or a percentage of the machine's memory; `infinity` is no limit.
pub fn native_memory(args: &SystemdFlags) -> Result<Option<u64>, Failure> {
    let Some(value) = &args.memory else {
        return Ok(None);
    };
    let bad = || Failure {
        message: format!(
            "--memory {value}: give bytes with an optional K, M, G or T suffix (e.g. 4G), a \
             percentage of the machine's memory, or infinity"
        ),
        status: exit::REFUSED,
    };
    let v = value.trim();
    if v == "infinity" {
        return Ok(None);
    }
    if let Some(percent) = v.strip_suffix('%') {
        let percent: u64 = percent
            .parse()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(bad)?;
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .ok_or_else(|| Failure {
                message: format!(
                    "--memory {value}: cannot read the machine's memory in /proc/meminfo"
                ),
                status: exit::REFUSED,
            })?;
        return Ok(Some(total * 1024 / 100 * percent));
    }
    let upper = v.to_ascii_uppercase();
    let (digits, shift) = match upper.chars().last() {
        Some('K') => (&upper[..upper.len() - 1], 10),
        Some('M') => (&upper[..upper.len() - 1], 20),
        Some('G') => (&upper[..upper.len() - 1], 30),
        Some('T') => (&upper[..upper.len() - 1], 40),
        _ => (upper.as_str(), 0),
    };
    let n: u64 = digits
        .parse()
        .ok()
        .filter(|n| *n > 0 && digits.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(bad)?;
    n.checked_mul(1 << shift).map(Some).ok_or_else(bad)
}

/// `--tasks N` for the native backend: a number of processes and threads.
pub fn native_tasks(args: &SystemdFlags) -> Result<Option<u64>, Failure> {
    let Some(value) = &args.tasks else {
        return Ok(None);
    };
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(Failure {
            message: format!(
                "--tasks {value}: give a number of processes and threads above 0 (the native \
                 backend takes no percentage)"
            ),
            status: exit::REFUSED,
        }),
    }
}

pub fn run(
    ctx: &Context,
    policy: &Policy,
    args: &SystemdFlags,
    net: &kennel_native::NetOptions,
) -> Result<i32, Failure> {
    let limits = Limits::parse(
        args.memory.as_deref(),
        args.tasks.as_deref(),
        args.cpu.as_deref(),
    )?;
    // --pty exactly when stdin is a terminal: systemd-run's pty forwarding never passes on
    // the end of a piped stdin (`echo hi | kennel ... -- cat` would hang). With --pipe and a
    // terminal as stdout the unit holds the user's terminal, but not as its controlling
    // terminal (systemd starts it in a new session), so TIOCSTI is refused by the kernel.
    let kennel_exe = kennel_systemd::own_executable()?;
    // The allow-list network and localhost ports: kennel's proxy runs here, outside the
    // unit, as for the native backend; its folder is bound into the unit, where the inner
    // kennel relays the proxy's port and the listed ports to it. Not for a command to
    // paste, which nothing would serve.
    let mut session = if args.dry_run {
        None
    } else {
        kennel_native::net::prepare(policy, net)?
    };
    let with_net_env;
    let (policy, unit_net) = match &session {
        Some(session) => {
            let (inside, env) = session.at_host_path(&kennel_exe);
            let mut p = policy.clone();
            for (name, value) in env {
                p.env.retain(|v| v.name != name);
                p.env.push(kennel_policy::EnvVar {
                    name,
                    value: value.into(),
                });
            }
            p.env.sort_by(|a, b| a.name.cmp(&b.name));
            with_net_env = p;
            let unit_net = kennel_systemd::UnitNet {
                dir: session.host_dir().to_path_buf(),
                socket: inside.socket,
                proxy: inside.allow_list,
                localhost_ports: inside.localhost_ports,
            };
            (&with_net_env, Some(unit_net))
        }
        None => (policy, None),
    };
    let opts = Options {
        tty: ctx.stdin_is_tty,
        instance: std::process::id(),
        kennel_exe,
        net: unit_net,
        // A pasted command has no kennel waiting for it to watch.
        watch: if args.dry_run {
            None
        } else {
            kennel_systemd::Watched::of(std::process::id())
        },
        limits,
    };
    let invocation = kennel_systemd::command(policy, &opts)?;
    if args.dry_run {
        println!("{}", invocation.shell_line());
        return Ok(0);
    }
    create_placeholders(policy)?;
    if let Some(session) = &mut session {
        session.start()?;
    }
    let status = kennel_systemd::run(&invocation);
    let summary: Vec<String> = session.iter().flat_map(|s| s.summary()).collect();
    if !summary.is_empty() {
        kennel_native::plain_attributes();
    }
    for line in summary {
        eprintln!("kennel: {line}");
    }
    Ok(status?)
}

/// `kennel internal-verify-exec SPEC -- COMMAND`: runs inside the unit.
pub fn verify_exec(args: &[OsString]) -> Result<u8, Failure> {
    let (spec, command) = VerifySpec::from_args(args)?;
    // The outer kennel, watched through a descriptor opened now: its pid cannot be looked
    // up from the PID namespace below.
    let outer = spec.watch.and_then(|w| w.pidfd());
    if spec.watch.is_some() && outer.is_none() {
        return Err(Failure {
            message: "the kennel that started this unit is gone: not started".into(),
            status: exit::SETUP_FAILED,
        });
    }
    // A PID namespace of the sandbox's own, with its /proc: your other processes are
    // neither visible nor reachable (this process stays outside, waiting; what follows runs
    // as the namespace's init).
    kennel_native::unit::enter_pid_namespace().map_err(|e| Failure {
        message: format!(
            "{e} (the systemd backend needs it to hide your other processes; the native \
             backend does the same)"
        ),
        status: exit::SETUP_FAILED,
    })?;
    // What the unit's properties cannot say, kennel's step inside the unit does itself
    // before the command starts: no signal to a process outside the sandbox and no
    // abstract unix socket made outside it (Landlock's scopes), and this process, which
    // stays as the command's parent, is not dumpable (its memory and descriptors are out
    // of the command's reach).
    // Of /dev, what programs need, the unit's own /dev/shm and the command's own terminal
    // (what systemd-run --pty gave it): not the user's other terminals.
    let mut devices: Vec<std::path::PathBuf> = kennel_native::landlock_only::DEVICES
        .iter()
        .map(std::path::PathBuf::from)
        .collect();
    devices.push("/dev/shm".into());
    for fd in [
        std::io::stdin().as_fd(),
        std::io::stdout().as_fd(),
        std::io::stderr().as_fd(),
    ] {
        if let Ok(tty) = nix::unistd::ttyname(fd) {
            devices.push(tty);
        }
    }
    let scoped = kennel_native::landlock::scope_and_devices(&devices).map_err(|e| Failure {
        message: format!("scoping signals, abstract sockets and /dev: {e}"),
        status: exit::SETUP_FAILED,
    })?;
    if !scoped {
        eprintln!(
            "kennel: notice: this kernel cannot scope signals and abstract unix sockets \
             (Landlock ABI 6, Linux 6.12): the command can signal your other processes, reach \
             abstract sockets (X11) and your other terminals"
        );
    }
    nix::sys::prctl::set_dumpable(false).map_err(|e| Failure {
        message: format!("PR_SET_DUMPABLE: {e}"),
        status: exit::SETUP_FAILED,
    })?;
    spec.check()?;
    // kennel's own system call filter, as on the native backend: above all, no new user
    // namespace (the unit's RestrictNamespaces= lets this step make its own).
    kennel_native::seccomp::filters()
        .and_then(|f| kennel_native::seccomp::apply(&f))
        .map_err(|e| Failure {
            message: e.to_string(),
            status: exit::SETUP_FAILED,
        })?;
    if let Some(net) = &spec.net {
        let listeners = kennel_net::inside::bind(&kennel_net::inside::InsideConfig {
            socket: net.socket.clone(),
            allow_list: net.proxy,
            fake_ports: Vec::new(),
            dns_stub: false,
            localhost_ports: net.localhost_ports.clone(),
        })
        .map_err(|e| Failure {
            message: format!("the network relay inside the unit: {e}"),
            status: exit::SETUP_FAILED,
        })?;
        std::thread::spawn(move || kennel_net::inside::serve(listeners));
    }
    let code = kennel_systemd::run_verified(&spec, &command, outer)?;
    Ok(u8::try_from(code).unwrap_or(exit::SETUP_FAILED))
}

/// A read-only rule on a missing `.git/hooks` protects nothing: like the native backend,
/// create the empty directory (or file) first, so that the unit can bind it read-only.
fn create_placeholders(policy: &Policy) -> Result<(), Failure> {
    use kennel_policy::Placeholder;
    use std::os::unix::fs::OpenOptionsExt;
    for rule in &policy.paths {
        let Some(kind) = rule.placeholder else {
            continue;
        };
        if std::fs::symlink_metadata(&rule.path).is_ok() {
            continue;
        }
        let made = match kind {
            Placeholder::Dir => std::fs::create_dir_all(&rule.path),
            // Private to the user, as the native backend makes it.
            Placeholder::File => std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&rule.path)
                .map(drop),
        };
        made.map_err(|e| Failure {
            message: format!("cannot create an empty {}: {e}", rule.path.display()),
            status: exit::SETUP_FAILED,
        })?;
    }
    Ok(())
}

/// The unit runs kennel itself to check its protections from inside: where the policy hides
/// it (`~/.cargo/bin/kennel`), it is named read-only in the policy, so that `explain`, the
/// unit and the listing of the sandbox's home at exit all know of it.
pub fn expose_kennel_itself(policy: &mut Policy) -> Result<(), Failure> {
    use kennel_policy::{Access, PathRule, RuleOrigin};
    let exe = kennel_systemd::own_executable()?;
    let visible = policy
        .rule_for(&exe)
        .is_some_and(|r| matches!(r.access, Access::ReadOnly | Access::ReadWrite));
    if !visible {
        policy.paths.push(PathRule::new(
            exe,
            Access::ReadOnly,
            false,
            RuleOrigin::builtin("kennel itself, which checks the unit's protections from inside"),
        ));
        policy.normalize_rules();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(value: &str) -> Result<Option<u64>, Failure> {
        native_memory(&SystemdFlags {
            memory: Some(value.into()),
            ..SystemdFlags::default()
        })
    }

    #[test]
    fn native_memory_takes_sizes_and_refuses_the_rest_by_name() {
        assert_eq!(memory("64M").ok().flatten(), Some(64 << 20));
        assert_eq!(memory("4g").ok().flatten(), Some(4 << 30));
        assert_eq!(memory("1000").ok().flatten(), Some(1000));
        assert_eq!(memory("infinity").ok().flatten(), None);
        assert!(memory("50%").ok().flatten().is_some_and(|b| b > 0));
        for bad in [
            "lots",
            "0",
            "-1M",
            "1.5G",
            "101%",
            "0%",
            "99999999999T",
            "",
            "M",
        ] {
            match memory(bad) {
                Err(f) => {
                    assert_eq!(f.status, exit::REFUSED, "{bad}");
                    assert!(f.message.starts_with(&format!("--memory {bad}:")), "{bad}");
                }
                Ok(v) => panic!("--memory {bad:?} taken as {v:?}"),
            }
        }
    }
}
