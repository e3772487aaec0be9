//! kennel: runs a command (usually an AI coding agent) confined to the current repository.

mod cli;
mod doctor;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use kennel_native::NativeError;
use kennel_policy::{resolve_default, Context, ContextInputs, Network, PolicyError};

use cli::{BackendChoice, Cli, Command, NetChoice, RunArgs};

/// Exit statuses of kennel's own failures (the command's status passes through).
mod exit {
    pub const REFUSED: u8 = 2;
    pub const SETUP_FAILED: u8 = 125;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "kennel", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map(|()| 0)
                .map_err(|e| Failure {
                    message: format!("writing the man page: {e}"),
                    status: 1,
                })
        }
        Command::Doctor { backend } => {
            let report = doctor::doctor(backend);
            print!("{}", report.text);
            Ok(u8::from(report.broken))
        }
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

/// The repository's own config and hooks run commands when the user types `git` outside
/// the sandbox; kennel keeps them read-only inside, and says what is already there.
fn report_git_commands(git: &kennel_policy::GitDirs) {
    for found in kennel_policy::git_runs_commands(git) {
        let value = if found.value.is_empty() {
            String::new()
        } else {
            format!(" = {}", found.value)
        };
        eprintln!(
            "kennel: note: {}{value} ({}) runs a command whenever you use git in this repository",
            found.what,
            found.file.display()
        );
    }
}

fn run(args: RunArgs) -> Result<u8, Failure> {
    let ctx = context()?;
    let mut policy = resolve_default(&ctx, args.command)?;
    match args.net {
        Some(NetChoice::On) => policy.network = Network::On,
        Some(NetChoice::Off) => policy.network = Network::Off,
        None => {}
    }
    if ctx.workspace.git.is_none() {
        eprintln!(
            "kennel: warning: not inside a git repository; the workspace is the current directory {}",
            ctx.workspace.root.display()
        );
    }
    if let Some(git) = &ctx.workspace.git {
        report_git_commands(git);
    }
    let options = kennel_native::Options {
        landlock: if args.best_effort {
            kennel_native::Enforcement::BestEffort
        } else {
            kennel_native::Enforcement::Required
        },
        #[cfg(debug_assertions)]
        debug_mount_only: std::env::var_os("KENNEL_DEBUG_MOUNT_ONLY")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default(),
    };
    let code = match args.backend {
        BackendChoice::Native => kennel_native::run(&policy, &options)?,
        BackendChoice::Landlock => kennel_native::run_landlock_only(&policy, &options)?,
        BackendChoice::Auto => match kennel_native::run(&policy, &options) {
            Err(NativeError::UserNamespacesDenied { cause, fix }) => {
                eprintln!(
                    "kennel: notice: falling back to the landlock backend: this system does not \
                     let unprivileged users create user namespaces ({cause}). To get the native \
                     backend back, {fix}"
                );
                kennel_native::run_landlock_only(&policy, &options)?
            }
            other => other?,
        },
    };
    Ok(u8::try_from(code).unwrap_or(exit::SETUP_FAILED))
}
