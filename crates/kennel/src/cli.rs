//! Command-line interface. Every flag says what it exposes.

use std::ffi::OsString;

use clap::{Parser, Subcommand, ValueEnum};

pub const EXIT_STATUS_HELP: &str = "\
Exit status: the command's own status (128+N when a signal N ended it); \
2 when kennel refuses to start (for example from your home folder) or the usage is wrong; \
125 when the sandbox could not be set up; 126 when the command cannot be executed; \
127 when it is not found inside the sandbox.";

/// Run AI coding agents, or any command, in a sandbox confined to the current git repository.
///
/// Inside, the command sees the system read-only, the repository read-write, and nothing
/// of your home but what a profile names: SSH and GPG keys, cloud credentials, shell rc
/// files, the ssh-agent and D-Bus sockets stay out of reach, /tmp is private.
#[derive(Debug, Parser)]
#[command(name = "kennel", version, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in the sandbox (your shell when none is given).
    ///
    /// The workspace is the git top-level of the current directory (the current directory
    /// outside a repository); kennel refuses to run when that would be your home folder,
    /// a folder above it, or /.
    #[command(after_help = EXIT_STATUS_HELP)]
    Run(RunArgs),

    /// Inside a systemd unit: check the sandbox took effect, then run the command.
    /// Started by `--backend systemd`; not for direct use.
    #[command(hide = true)]
    InternalVerifyExec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How to build the sandbox.
    #[arg(long, value_enum, default_value_t = BackendChoice::Native)]
    pub backend: BackendChoice,

    /// Print the exact command that would run, shell-quoted, and exit (systemd backend).
    #[arg(long)]
    pub dry_run: bool,

    /// Memory limit of the sandbox, e.g. 4G or 50% (systemd backend: MemoryMax=).
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,

    /// Limit on processes and threads in the sandbox (systemd backend: TasksMax=).
    #[arg(long, value_name = "N")]
    pub tasks: Option<String>,

    /// CPU limit, as CPUs (1.5) or a percentage of one CPU (150%) (systemd backend: CPUQuota=).
    #[arg(long, value_name = "CPUS")]
    pub cpu: Option<String>,

    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// User, mount, PID and IPC namespaces with a fresh root, built by kennel itself.
    Native,
    /// A transient unit of your systemd user manager (`systemd-run --user`), its
    /// protections checked from inside before the command starts.
    Systemd,
}
