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

    /// Print shell completions for kennel (generated from its command-line definition).
    ///
    /// bash: `kennel completions bash > ~/.local/share/bash-completion/completions/kennel`;
    /// zsh: `kennel completions zsh > ~/.zfunc/_kennel`;
    /// fish: `kennel completions fish > ~/.config/fish/completions/kennel.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print kennel's man page (roff).
    ///
    /// Generated from the command-line definition:
    /// `kennel man > ~/.local/share/man/man1/kennel.1`.
    Man,

    /// Check what this machine supports and try escapes in a live sandbox.
    ///
    /// Shows which protections this machine supports and which backend `auto` picks, then
    /// starts a sandbox and try a handful of escapes (read ~/.ssh, write in your home,
    /// reach the ssh-agent, write a git hook, TIOCSTI). Exits 1 if a promise that this
    /// machine should keep is broken. Creates nothing outside a temporary folder.
    Doctor {
        /// The backend to test.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How to build the sandbox.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// The network inside: `on` shares the host's network (and its loopback services);
    /// `off` gives the sandbox its own network namespace with only `lo`.
    #[arg(long, value_enum)]
    pub net: Option<NetChoice>,

    /// Run even when the kernel cannot enforce Landlock, with a warning that only the mount
    /// view protects your files. Without it kennel refuses (fail closed).
    #[arg(long)]
    pub best_effort: bool,

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
    /// native where user namespaces are allowed; else landlock, saying what is lost.
    Auto,
    /// User, mount, PID and IPC namespaces with a fresh root, plus Landlock and seccomp,
    /// built by kennel itself.
    Native,
    /// Landlock, seccomp and no_new_privs without namespaces, for hosts that forbid
    /// unprivileged user namespaces: no private /tmp, no empty home, no PID namespace,
    /// no read-only git hooks (kennel prints what is lost).
    Landlock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetChoice {
    /// The host's network, shared.
    On,
    /// No network but the sandbox's own loopback.
    Off,
}
