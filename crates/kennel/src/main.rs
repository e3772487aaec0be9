//! kennel: runs a command (usually an AI coding agent) confined to the current repository.

mod cli;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kennel_native::NativeError;
use kennel_policy::{resolve_default, Context, ContextInputs, PolicyError};

use cli::{Cli, Command, RunArgs};

/// Exit statuses of kennel's own failures (the command's status passes through).
mod exit {
    pub const REFUSED: u8 = 2;
    pub const SETUP_FAILED: u8 = 125;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("kennel: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

/// A failure of kennel itself: a one-line message and an exit status.
struct Failure {
    message: String,
    status: u8,
}

impl From<PolicyError> for Failure {
    fn from(e: PolicyError) -> Self {
        let status = if e.is_refusal() {
            exit::REFUSED
        } else {
            exit::SETUP_FAILED
        };
        Failure {
            message: chain(&e),
            status,
        }
    }
}

impl From<NativeError> for Failure {
    fn from(e: NativeError) -> Self {
        let status = match &e {
            NativeError::Exec { status, .. } => *status,
            _ => exit::SETUP_FAILED,
        };
        let message = match &e {
            NativeError::Exec { message, .. } => format!("cannot run the command: {message}"),
            _ => chain(&e),
        };
        Failure { message, status }
    }
}

/// The error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn context() -> Result<Context, Failure> {
    let cwd = std::env::current_dir().map_err(|e| Failure {
        message: format!("cannot read the current directory: {e}"),
        status: exit::SETUP_FAILED,
    })?;
    let uid = nix::unistd::getuid();
    let passwd_home = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.dir);
    let inputs = ContextInputs {
        cwd,
        env: std::env::vars_os().collect::<Vec<(OsString, OsString)>>(),
        uid: uid.as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        passwd_home,
        stdin_is_tty: std::io::stdin().is_terminal(),
    };
    Ok(Context::discover(inputs)?)
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    let ctx = context()?;
    let terminal = args.terminal();
    let mut policy = resolve_default(&ctx, args.command)?;
    if let Some(terminal) = terminal {
        policy.terminal = terminal;
    }
    if ctx.workspace.git.is_none() {
        eprintln!(
            "kennel: warning: not inside a git repository; the workspace is the current directory {}",
            ctx.workspace.root.display()
        );
    }
    let code = kennel_native::run(&policy)?;
    Ok(u8::try_from(code).unwrap_or(exit::SETUP_FAILED))
}
