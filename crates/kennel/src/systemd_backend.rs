//! `--backend systemd`: the glue between the CLI and the kennel-systemd crate.

use std::ffi::OsString;

use kennel_policy::{Context, Policy};
use kennel_systemd::{Limits, Options, SystemdError, VerifySpec};

use crate::cli::RunArgs;
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

/// Resource limits and `--dry-run` only exist on the systemd backend: refuse rather than
/// ignore them.
pub fn refuse_systemd_only_flags(args: &RunArgs) -> Result<(), Failure> {
    let flags = [
        ("--dry-run", args.dry_run),
        ("--memory", args.memory.is_some()),
        ("--tasks", args.tasks.is_some()),
        ("--cpu", args.cpu.is_some()),
    ];
    match flags.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(Failure {
            message: format!("{flag} is only supported with --backend systemd"),
            status: exit::REFUSED,
        }),
        None => Ok(()),
    }
}

pub fn run(ctx: &Context, policy: &Policy, args: &RunArgs) -> Result<i32, Failure> {
    let limits = Limits::parse(
        args.memory.as_deref(),
        args.tasks.as_deref(),
        args.cpu.as_deref(),
    )?;
    // --pty exactly when stdin is a terminal: systemd-run's pty forwarding never passes on
    // the end of a piped stdin (`echo hi | kennel ... -- cat` would hang). With --pipe and a
    // terminal as stdout the unit holds the user's terminal, but not as its controlling
    // terminal (systemd starts it in a new session), so TIOCSTI is refused by the kernel.
    let opts = Options {
        tty: ctx.stdin_is_tty,
        instance: std::process::id(),
        kennel_exe: kennel_systemd::own_executable()?,
        limits,
    };
    let invocation = kennel_systemd::command(policy, &opts)?;
    if args.dry_run {
        println!("{}", invocation.shell_line());
        return Ok(0);
    }
    Ok(kennel_systemd::run(&invocation)?)
}

/// `kennel internal-verify-exec SPEC -- COMMAND`: runs inside the unit.
pub fn verify_exec(args: &[OsString]) -> Result<u8, Failure> {
    let (spec, command) = VerifySpec::from_args(args)?;
    let code = kennel_systemd::verify_and_run(&spec, &command)?;
    Ok(u8::try_from(code).unwrap_or(exit::SETUP_FAILED))
}
