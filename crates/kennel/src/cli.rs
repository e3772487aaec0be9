//! Command-line interface. Every flag says what it exposes.

use std::ffi::OsString;

use clap::{Parser, Subcommand, ValueEnum};
use kennel_policy::Terminal;

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
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How to build the sandbox.
    #[arg(long, value_enum, default_value_t = BackendChoice::Native)]
    pub backend: BackendChoice,

    /// Give the command a pseudo-terminal of the sandbox's own as its standard input, output
    /// and error, relayed to yours (the default when standard input is a terminal). What it
    /// types into that terminal (TIOCSTI) stays inside the sandbox.
    #[arg(long, conflicts_with = "no_pty")]
    pub pty: bool,

    /// Pass the standard streams through unchanged, byte for byte (the default when standard
    /// input is not a terminal). The command runs without a controlling terminal, even when
    /// its streams are your terminal: no job control, and full-screen programs may refuse.
    #[arg(long)]
    pub no_pty: bool,

    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// The terminal the user asked for, if any; otherwise kennel chooses from stdin.
    pub fn terminal(&self) -> Option<Terminal> {
        if self.pty {
            Some(Terminal::Pty)
        } else if self.no_pty {
            Some(Terminal::Streams)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// User, mount, PID and IPC namespaces with a fresh root, built by kennel itself.
    Native,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(["kennel", "run"].iter().chain(args))?;
        let Command::Run(run) = cli.command;
        Ok(run)
    }

    #[test]
    fn pty_flags_override_the_automatic_choice() -> Result<(), clap::Error> {
        assert_eq!(run_args(&["--", "sh"])?.terminal(), None);
        assert_eq!(run_args(&["--pty", "sh"])?.terminal(), Some(Terminal::Pty));
        assert_eq!(
            run_args(&["--no-pty", "sh"])?.terminal(),
            Some(Terminal::Streams)
        );
        // After the command they belong to the command.
        let run = run_args(&["sh", "--pty"])?;
        assert_eq!(run.terminal(), None);
        assert_eq!(run.command, vec![OsString::from("sh"), "--pty".into()]);
        Ok(())
    }

    #[test]
    fn pty_and_no_pty_conflict() {
        let err = run_args(&["--pty", "--no-pty", "sh"]).err();
        assert_eq!(
            err.map(|e| e.kind()),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
    }
}
