//! Command-line interface. Every flag says what it exposes.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use kennel_policy::Terminal;

pub const EXIT_STATUS_HELP: &str = "\
Exit status: the command's own status (128+N when a signal N ended it); \
2 when kennel refuses to start (for example from your home folder), the usage is wrong or \
the configuration has an error; 125 when the sandbox could not be set up; 126 when the \
command cannot be executed; 127 when it is not found.";

pub const SHORTHAND_HELP: &str = "\
Agents: `kennel aider ARGS...` is `kennel run --profile aider -- aider ARGS...`, and the \
same for every profile that names a program (see `kennel profiles`): claude, codex, \
gemini, goose, opencode, pi, and your own.";

/// A profile's name: any name (your config may define its own), with the built-in ones
/// offered by shell completion instead of file names (not listed in `--help`: `kennel
/// profiles` lists them all, yours included).
#[derive(Clone)]
pub struct ProfileName;

impl clap::builder::TypedValueParser for ProfileName {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::NonEmptyStringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            kennel_policy::BUILTIN_PROFILES
                .iter()
                .map(|(name, _)| clap::builder::PossibleValue::new(*name)),
        ))
    }
}

/// Run AI coding agents, or any command, in a sandbox confined to the current git repository.
///
/// Inside, the command sees the system read-only, the repository read-write, and nothing
/// of your home but what a profile names: SSH and GPG keys, cloud credentials, shell rc
/// files, the ssh-agent and D-Bus sockets stay out of reach, /tmp is private.
#[derive(Debug, Parser)]
#[command(
    name = "kennel",
    version,
    after_help = format!("{SHORTHAND_HELP}\n\n{EXIT_STATUS_HELP}"),
    allow_external_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(subcommand)]
    pub command: Command,
}

// Which user configuration to read. Given before the subcommand (`kennel --no-config run`)
// or after it (`kennel run --no-config`), for the subcommands that read one. Not clap's
// global arguments: clap copies those into every subcommand at every start, which cost
// `kennel run` nearly a third of its command-line parsing (bench/README.md). (Not a doc comment:
// clap would make it the about text of every subcommand that flattens this.)
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Read this configuration file instead of $XDG_CONFIG_HOME/kennel/config.toml.
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,

    /// Read no user configuration: built-in profiles only (a repository's .kennel.toml
    /// still narrows).
    #[arg(long)]
    pub no_config: bool,
}

impl ConfigArgs {
    /// These, or the `later` ones where given: the one further right on the command line
    /// wins, as for any option given twice.
    pub fn then(&self, later: &ConfigArgs) -> ConfigArgs {
        if later.config.is_some() || later.no_config {
            later.clone()
        } else {
            self.clone()
        }
    }
}

/// Each subcommand's arguments are defined when it is used (or its help, completions or the
/// man page are asked for): `kennel run` starts every sandbox and need not build the others.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run a command in the sandbox (your shell when none is given).
    ///
    /// The workspace is the git top-level of the current directory (the current directory
    /// outside a repository); kennel refuses to run when that would be your home folder,
    /// a folder above it, or /.
    #[command(after_help = EXIT_STATUS_HELP)]
    Run(RunArgs),

    /// Print what a profile lets the command see here, and why.
    Explain(ExplainArgs),

    /// List the profiles, one line each.
    Profiles {
        #[command(flatten)]
        config: ConfigArgs,
    },

    /// Print shell completions for kennel (generated from its command-line definition).
    ///
    /// bash: `kennel completions bash > ~/.local/share/bash-completion/completions/kennel`;
    /// zsh: `kennel completions zsh > ~/.zfunc/_kennel`;
    /// fish: `kennel completions fish > ~/.config/fish/completions/kennel.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print kennel's man page (roff), or write it and a page for each command to a folder.
    ///
    /// Generated from the command-line definition:
    /// `kennel man --dir ~/.local/share/man/man1` (kennel.1, kennel-run.1, ...).
    Man {
        /// Write kennel.1 and a page per command (kennel-run.1, ...) into DIR instead of
        /// printing kennel.1; a file there that is not a page kennel wrote is left alone.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },

    /// List the homes that sandboxes left when their kennel was killed (what their
    /// commands wrote there), or remove them with --remove. Homes of running sandboxes are
    /// never listed nor removed. (The systemd backend's homes: the native backend's is in
    /// memory and leaves nothing.)
    Homes {
        /// Remove them (after a look: they hold what the commands wrote).
        #[arg(long)]
        remove: bool,
    },

    /// List the sessions recorded for this repository: number, start, profile, what changed.
    ///
    /// Agent profiles take a checkpoint of the workspace (files git does not ignore, refs,
    /// HEAD and the history they reach) at each session's start, kept in
    /// $XDG_STATE_HOME/kennel/checkpoints, out of the sandbox's reach. The newest 20 are
    /// kept (`checkpoint-keep` in your config); --prune drops older ones and frees what
    /// only they held.
    Sessions {
        /// Drop all but the newest --keep sessions and free the space they alone used.
        #[arg(long)]
        prune: bool,
        /// How many sessions --prune keeps (default: `checkpoint-keep` of your config's
        /// [defaults], or 20).
        #[arg(long, requires = "prune")]
        keep: Option<usize>,
    },

    /// Show what a session changed: refs moved, created or deleted, then the files' diff.
    Diff {
        /// The session's number (`kennel sessions`); the latest when omitted.
        session: Option<u64>,
    },

    /// Put the workspace's files and the repository's refs back as they were at a
    /// session's start.
    ///
    /// The present is recorded first, as a session of its own: an undo can be undone.
    /// Files git ignores (node_modules, target) are never touched, nor the staging area.
    /// Refused while a sandbox runs in this workspace.
    Undo {
        /// The session's number (`kennel sessions`); the latest when omitted.
        session: Option<u64>,
        /// Say what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },

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

        /// Print kennel's AppArmor profile for this kennel and exit: it lets kennel create
        /// user namespaces where AppArmor restricts them (Ubuntu 23.10 and later). `kennel
        /// doctor` says how to install it.
        #[arg(long)]
        apparmor_profile: bool,
    },

    /// Inside a systemd unit: check the sandbox took effect, then run the command.
    /// Started by `--backend systemd`; not for direct use.
    #[command(hide = true)]
    InternalVerifyExec {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },

    /// Install a shim so that typing the agent's name always runs it through kennel.
    ///
    /// `kennel wrap aider` writes an executable `aider` into ~/.local/bin (or --dir) that runs
    /// `kennel run --profile aider -- /path/to/the/real/aider "$@"`. The shim holds no policy:
    /// profiles and your config decide what the agent sees. Inside a kennel sandbox the shim
    /// runs the agent directly instead of nesting a second sandbox. kennel never overwrites
    /// a file it did not write.
    Wrap(WrapArgs),

    /// Remove a shim that `kennel wrap` wrote (and nothing else).
    Unwrap(UnwrapArgs),

    /// Inside a sandbox with the allow-list network: a tunnel to HOST:PORT through kennel's
    /// proxy on stdin and stdout (git over ssh uses it as its ProxyCommand).
    NetConnect { host: String, port: u16 },

    /// `kennel PROFILE ARGS...`: run the profile's program.
    #[command(external_subcommand)]
    Shorthand(Vec<OsString>),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct PolicyArgs {
    /// The profile to use (see `kennel profiles`).
    #[arg(
        long,
        short = 'p',
        default_value = "default",
        value_parser = ProfileName,
        hide_possible_values = true
    )]
    pub profile: String,

    /// Also expose PATH read-write: the command can change and delete what is there.
    #[arg(long = "rw", value_name = "PATH")]
    pub read_write: Vec<PathBuf>,

    /// Also expose PATH read-only.
    #[arg(long = "ro", value_name = "PATH")]
    pub read_only: Vec<PathBuf>,

    /// Hide PATH (it appears absent or empty).
    #[arg(long = "hide", value_name = "PATH")]
    pub hidden: Vec<PathBuf>,

    /// Pass the variable NAME from your environment (its value becomes readable inside).
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,

    /// Include a toolchain cache group: rust, npm, pip, maven, gradle, go (see
    /// profiles/caches.toml; caches are read-write, toolchains read-only).
    #[arg(long = "cache", value_name = "GROUP")]
    pub caches: Vec<String>,

    /// The sandbox's home: `ephemeral` (in memory on the native backend, bounded by
    /// tmpfs-size; listed at exit, then freed) or `persistent` (kept for this workspace
    /// under $XDG_STATE_HOME/kennel/homes/).
    #[arg(long, value_enum)]
    pub home: Option<HomeChoice>,

    /// How to build the sandbox (`auto` unless your config says otherwise).
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,

    /// The network inside: `on` shares the host's network (and its loopback services);
    /// `off` gives the sandbox its own network namespace with only `lo`; `allow-list` the
    /// same, with a proxy outside that lets through the profile's hosts only (see
    /// `kennel explain`). The default is the profile's.
    #[arg(long, value_enum)]
    pub net: Option<NetChoice>,

    /// Also let HOST (HOST:PORT, *.SUFFIX, an address) through the allow-list proxy, for
    /// this run only (the allow-list network; your config keeps it for good).
    #[arg(long = "allow", value_name = "HOST[:PORT]")]
    pub allow: Vec<String>,

    /// Also make the host's loopback port PORT reachable inside at the same port, for this
    /// run only (with the `off` or `allow-list` network): a local model server, a database.
    #[arg(long = "localhost", value_name = "PORT")]
    pub localhost: Vec<u16>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// Write every decision of the network proxy (allowed and blocked connections) to
    /// FILE (allow-list network).
    #[arg(long, value_name = "FILE")]
    pub net_log: Option<PathBuf>,

    /// Pass your open descriptor N to the command (e.g. a make jobserver's pipe); it can
    /// read or write whatever N is open on. Without it only standard input, output and
    /// error reach the sandbox. Native and landlock backends.
    #[arg(long = "pass-fd", value_name = "N")]
    pub pass_fds: Vec<std::os::fd::RawFd>,

    /// Run even when the kernel cannot enforce Landlock, with a warning that only the mount
    /// view protects your files. Without it kennel refuses (fail closed).
    #[arg(long)]
    pub best_effort: bool,

    /// Print the exact command that would run, shell-quoted, and exit (systemd backend).
    #[arg(long)]
    pub dry_run: bool,

    /// Memory limit of all the sandbox's processes together, e.g. 4G or 50% (systemd
    /// backend: MemoryMax= of the unit's cgroup; native backend: a cgroup of the sandbox's
    /// own, made in a memory cgroup delegated to you, else refused with what would work;
    /// refused by the landlock backend). Past it the kernel kills a process, and kennel says.
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,

    /// Limit on processes and threads in the sandbox (systemd backend: TasksMax=; native
    /// backend: RLIMIT_NPROC, counted in the sandbox's own user namespace, Linux 5.14 and
    /// later; refused by the landlock backend).
    #[arg(long, value_name = "N")]
    pub tasks: Option<String>,

    /// CPU limit, as CPUs (1.5) or a percentage of one CPU (150%) (systemd backend: CPUQuota=).
    #[arg(long, value_name = "CPUS")]
    pub cpu: Option<String>,

    /// Give the command a pseudo-terminal of the sandbox's own as its standard input, output
    /// and error, relayed to yours (the default when standard input and output are both
    /// terminals; a standard error you redirected stays where you sent it). What it types
    /// into that terminal (TIOCSTI) stays inside the sandbox.
    #[arg(long, conflicts_with = "no_pty")]
    pub pty: bool,

    /// Pass the standard streams through unchanged, byte for byte (the default when standard
    /// input or output is not a terminal, e.g. `> file`). The command runs without a
    /// controlling terminal, even when its streams are your terminal: no job control, and
    /// full-screen programs may refuse.
    #[arg(long)]
    pub no_pty: bool,

    /// Take a checkpoint of the workspace before the command and say what it changed after
    /// (`kennel diff`, `kennel undo`). The default for agent profiles; `checkpoint = false`
    /// in your config turns it off.
    #[arg(long, conflicts_with = "no_checkpoint")]
    pub checkpoint: bool,

    /// No checkpoint of the workspace for this session.
    #[arg(long)]
    pub no_checkpoint: bool,

    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The profile to explain (the same as --profile; `default` when neither is given).
    #[arg(value_name = "PROFILE", value_parser = ProfileName, hide_possible_values = true)]
    pub profile_name: Option<String>,

    /// Print JSON for tools (environment values are never included).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// native where user namespaces are allowed; else landlock, saying what is lost.
    Auto,
    /// User, mount, PID and IPC namespaces with a fresh root, plus Landlock and seccomp,
    /// built by kennel itself.
    Native,
    /// Landlock, seccomp and no_new_privs without namespaces, for hosts that forbid
    /// unprivileged user namespaces: no private /tmp, no empty home, no PID or IPC namespace,
    /// no read-only git hooks (kennel prints what is lost).
    Landlock,
    /// A transient unit of your systemd user manager (`systemd-run --user`), its
    /// protections checked from inside before the command starts.
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetChoice {
    /// The host's network, shared.
    On,
    /// No network but the sandbox's own loopback.
    Off,
    /// Only the hosts of the profile's allow-list, through a proxy kennel runs outside.
    AllowList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HomeChoice {
    Ephemeral,
    Persistent,
}

#[derive(Debug, clap::Args)]
pub struct WrapArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// The profile whose program to wrap (see `kennel profiles`).
    #[arg(
        value_name = "PROFILE",
        required_unless_present_any = ["all", "list"],
        value_parser = ProfileName,
        hide_possible_values = true
    )]
    pub profile: Option<String>,

    /// The real program (default: the profile's program, found on PATH past any shim).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["all", "list"])]
    pub bin: Option<PathBuf>,

    /// Where to write the shim; it must come before the real program on PATH.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Wrap every built-in profile whose program is installed.
    #[arg(long, conflicts_with = "list")]
    pub all: bool,

    /// List the shims in the folder and the programs they run.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, clap::Args)]
pub struct UnwrapArgs {
    /// The shim's name (the agent's command, e.g. aider).
    pub name: String,

    /// The folder the shim is in.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

impl RunArgs {
    /// `--checkpoint` or `--no-checkpoint`, if given.
    pub fn checkpoint(&self) -> Option<bool> {
        match (self.checkpoint, self.no_checkpoint) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let cli = Cli::try_parse_from(["kennel", "run"].iter().chain(args))?;
        match cli.command {
            Command::Run(run) => Ok(run),
            other => panic!("parsed as {other:?}"),
        }
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

    /// The configuration options before the subcommand and after it, as the user wrote them.
    fn config_of(args: &[&str]) -> Result<(Option<PathBuf>, bool), clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("kennel").chain(args.iter().copied()))?;
        let after = match &cli.command {
            Command::Run(a) => a.config.clone(),
            Command::Explain(a) => a.config.clone(),
            Command::Profiles { config } => config.clone(),
            Command::Wrap(a) => a.config.clone(),
            _ => ConfigArgs::default(),
        };
        let chosen = cli.config.then(&after);
        Ok((chosen.config, chosen.no_config))
    }

    #[test]
    fn config_options_go_before_or_after_the_subcommand() -> Result<(), clap::Error> {
        let file = |f: &str| Some(PathBuf::from(f));
        assert_eq!(config_of(&["--no-config", "run", "sh"])?, (None, true));
        assert_eq!(config_of(&["run", "--no-config", "sh"])?, (None, true));
        assert_eq!(
            config_of(&["--config", "a", "run", "sh"])?,
            (file("a"), false)
        );
        assert_eq!(
            config_of(&["explain", "--config", "b"])?,
            (file("b"), false)
        );
        assert_eq!(config_of(&["profiles", "--no-config"])?, (None, true));
        assert_eq!(
            config_of(&["wrap", "--config", "c", "aider"])?,
            (file("c"), false)
        );
        // Given twice, the later one wins.
        assert_eq!(
            config_of(&["--config", "a", "run", "--config", "b", "sh"])?,
            (file("b"), false)
        );
        assert_eq!(
            config_of(&["--config", "a", "run", "--no-config", "sh"])?,
            (None, true)
        );
        // Before the shorthand's profile: the profile's arguments are the program's.
        assert_eq!(
            config_of(&["--no-config", "aider", "--config", "x"])?,
            (None, true)
        );
        // Both at one place conflict; after the command they belong to the command.
        assert!(config_of(&["run", "--config", "a", "--no-config", "sh"]).is_err());
        assert_eq!(config_of(&["run", "sh", "--no-config"])?, (None, false));
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
