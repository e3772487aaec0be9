//! kennel: runs a command (usually an AI coding agent) confined to the current repository.
// Where glibc hands the program its arguments without Rust's start-up code (see `main`),
// kennel starts at its own C `main`; elsewhere (and in its unit tests) at Rust's.
#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]
#![deny(unsafe_code)]

mod agent_watch;
mod apparmor;
mod checkpoint;
mod cli;
mod doctor;
mod files;
mod git_watch;
mod home;
mod program;
mod said;
mod systemd_backend;
mod wrap;

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Parser;
use kennel_native::NativeError;
use kennel_policy::{
    explain_text, resolv_conf_target, resolve, Backend, Catalog, CliLayer, Context, ContextInputs,
    HomeMode, HostFacts, NetMode, Policy, PolicyError, ResolveInputs, SourceFile, Terminal,
};

use cli::{
    BackendChoice, Cli, Command, ConfigArgs, ExplainArgs, HomeChoice, NetChoice, PolicyArgs,
    RunArgs,
};

/// Exit statuses of kennel's own failures (the command's status passes through).
mod exit {
    pub const REFUSED: u8 = 2;
    pub const SETUP_FAILED: u8 = 125;
}

/// kennel's entry point, called by the C library's start-up code in place of Rust's.
///
/// Rust's start-up code prepares the main thread's stack-overflow report: it reads
/// `/proc/self/maps` to find the stack and sets up an alternate signal stack, about 0.05 ms
/// of every sandbox's start (bench/README.md). kennel needs none of it (a stack overflow
/// still ends it, with SIGSEGV instead of a message), and does itself the two things it
/// does need ([`kennel_native::prepare_process`]). The arguments come as they do for
/// Rust's `main`: glibc gives them to the standard library before calling this.
#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
#[allow(unsafe_code)]
// SAFETY: `no_main` (at the top of this file) leaves the C symbol `main` to this function,
// the only one in the program that defines it; its signature is the one the C runtime
// calls. It never unwinds into its C caller: it ends the process itself.
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    if let Err(e) = kennel_native::prepare_process() {
        eprintln!("kennel: preparing the process: {e}");
        std::process::exit(exit::SETUP_FAILED.into());
    }
    end(kennel())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
fn main() -> std::process::ExitCode {
    if let Err(e) = kennel_native::close_inherited_descriptors_on_exec() {
        eprintln!("kennel: preparing the process: {e}");
        return std::process::ExitCode::from(exit::SETUP_FAILED);
    }
    std::process::ExitCode::from(kennel())
}

/// Runs the command line; returns kennel's exit status.
fn kennel() -> u8 {
    let Cli {
        config: before,
        command,
    } = Cli::parse();
    let config = |after: &ConfigArgs| ConfigChoice::from(before.then(after));
    let result = match command {
        Command::Run(args) => run(&config(&args.config), args),
        Command::Explain(args) => explain(&config(&args.config), args),
        Command::Profiles { config: after } => profiles(&config(&after)),
        Command::Shorthand(argv) => shorthand(&config(&ConfigArgs::default()), argv),
        Command::Completions { shell } => {
            let mut cmd = completion_command();
            // Into memory first: clap_complete panics when its writer fails (a reader that
            // closed the pipe early, `kennel completions fish | true`).
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kennel", &mut text);
            write_out(&text, "the completions")
        }
        Command::Man { dir: Some(dir) } => write_man_pages(&dir),
        Command::Man { dir: None } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut text = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut text)
                .map_err(|e| Failure {
                    message: format!("writing the man page: {e}"),
                    status: 1,
                })
                .and_then(|()| write_out(&text, "the man page"))
        }
        Command::Doctor {
            apparmor_profile: true,
            ..
        } => {
            print!("{}", apparmor::Install::for_this_kennel().profile());
            Ok(0)
        }
        Command::Doctor { backend, .. } => {
            let report = doctor::doctor(backend);
            print!("{}", report.text);
            Ok(u8::from(report.broken))
        }
        Command::InternalVerifyExec { args } => systemd_backend::verify_exec(&args),
        Command::Wrap(args) => wrap::wrap(&config(&args.config), args),
        Command::Unwrap(args) => wrap::unwrap(args),
        Command::NetConnect { host, port } => net_connect(&host, port),
        Command::Sessions { prune, keep } => {
            let config = config(&ConfigArgs::default());
            checkpoints(|ctx| {
                // The rule of the config's defaults, as the end of a session applies it.
                let keep = match keep {
                    Some(keep) => keep,
                    None if !prune => checkpoint::KEEP,
                    None => {
                        let defaults = PolicyArgs {
                            profile: "default".into(),
                            ..PolicyArgs::default()
                        };
                        policy_for(&config, ctx, &defaults, vec![], vec![])
                            .map_err(|f| f.message)?
                            .0
                            .checkpoint_keep
                            .unwrap_or(checkpoint::KEEP)
                    }
                };
                checkpoint::list(ctx, prune, keep)
            })
        }
        Command::Diff { session } => checkpoints(|ctx| checkpoint::diff(ctx, session)),
        Command::Undo { session, dry_run } => {
            checkpoints(|ctx| checkpoint::undo(ctx, session, dry_run))
        }
        Command::Homes { remove } => {
            let uid = nix::unistd::getuid().as_raw();
            for line in home::left_homes(&temp_base(Path::new("/nonexistent")), uid, remove) {
                println!("{line}");
            }
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("kennel: {}", failure.message);
            failure.status
        }
    }
}

/// The command line as completion offers it: without the hidden commands (kennel's own step
/// inside a systemd unit), and with a command for each built-in agent (`kennel cl<TAB>`),
/// whose arguments are the agent's own.
fn completion_command() -> clap::Command {
    let full = <Cli as clap::CommandFactory>::command();
    let visible: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let agents = kennel_policy::BUILTIN_PROFILES
        .iter()
        .filter(|(name, _)| *name != "default")
        .map(|(name, _)| {
            clap::Command::new(*name)
                .about(format!(
                    "Run {name} sandboxed (its profile; the arguments are its own)"
                ))
                .arg(
                    clap::Arg::new("args")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                )
        });
    let mut plain = clap::Command::new("kennel");
    if let Some(about) = full.get_about() {
        plain = plain.about(about.clone());
    }
    plain
        .args(full.get_arguments().cloned())
        .subcommands(visible)
        .subcommands(agents)
}

/// `kennel man --dir DIR`: kennel.1 and a page for each visible command (the pages that
/// kennel.1 names), never over a file that is not one of kennel's pages.
fn write_man_pages(dir: &Path) -> Result<u8, Failure> {
    let mut cmd = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    let fail = |path: &Path, what: String| Failure {
        message: format!("{}: {what}", kennel_policy::shown_path(path)),
        status: 1,
    };
    let mut pages = Vec::new();
    for page in std::iter::once(cmd.clone())
        .chain(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
    {
        let man = clap_mangen::Man::new(page);
        let name = man.get_filename();
        let path = dir.join(&name);
        let mut text = Vec::new();
        man.render(&mut text)
            .map_err(|e| fail(&path, format!("writing the man page: {e}")))?;
        pages.push((name, path, text));
    }
    // Every page checked before any is written: all or nothing.
    for (_, path, _) in &pages {
        match files::read_file_no_link(path, files::MAX_CONFIG) {
            Err(files::ReadError::NotFound) => {}
            Ok(old) if String::from_utf8_lossy(&old).contains(".TH kennel") => {}
            Ok(_) => {
                return Err(fail(
                    path,
                    "exists and is not a page of kennel's: left alone (no page was written); \
                     remove it or choose another --dir"
                        .into(),
                ))
            }
            Err(e) => {
                return Err(fail(
                    path,
                    format!(
                        "cannot replace it ({e}): left alone (no page was written); remove it \
                         or choose another --dir"
                    ),
                ))
            }
        }
    }
    for (name, path, text) in pages {
        let tmp = dir.join(format!(".{name}.kennel-{}", std::process::id()));
        files::create_new(&tmp, 0o644, &text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| fail(&path, e.to_string()))?;
        println!("{}", path.display());
    }
    Ok(0)
}

/// Writes `text` to standard output. A reader that closed the pipe before the end (`| head`)
/// is no failure: it has what it wanted, as with any other program.
fn write_out(text: &[u8], what: &str) -> Result<u8, Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure {
            message: format!("writing {what}: {e}"),
            status: 1,
        }),
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
        let e = apparmor::with_commands(e);
        let status = match &e {
            NativeError::Exec { status, .. } => *status,
            NativeError::Refused(_) => exit::REFUSED,
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
    let env = std::env::vars_os().collect::<Vec<(OsString, OsString)>>();
    // The passwd entry's home is used only without a $HOME; the lookup (NSS: nscd, files)
    // is skipped when there is one.
    let has_home = env.iter().any(|(k, v)| k == "HOME" && !v.is_empty());
    let passwd_home = if has_home {
        None
    } else {
        nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.dir)
    };
    let inputs = ContextInputs {
        cwd,
        env,
        uid: uid.as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        passwd_home,
        stdin_is_tty: std::io::stdin().is_terminal(),
        stdout_is_tty: std::io::stdout().is_terminal(),
    };
    Ok(Context::discover(inputs)?)
}

/// Which user configuration to read: `--config FILE`, `--no-config`, or the default place.
struct ConfigChoice {
    file: Option<PathBuf>,
    none: bool,
}

impl From<ConfigArgs> for ConfigChoice {
    fn from(args: ConfigArgs) -> Self {
        ConfigChoice {
            file: args.config,
            none: args.no_config,
        }
    }
}

fn failure(message: String, status: u8) -> Failure {
    Failure { message, status }
}

/// `~/REST` for a path under the home, for messages.
fn tilde(path: &Path, home: &Path) -> String {
    match path.strip_prefix(home) {
        Ok(rest) => format!("~/{}", rest.display()),
        Err(_) => path.display().to_string(),
    }
}

/// The user's config file: its path, and its text when it exists. Explicit inputs only:
/// the environment is read here, in the binary, never in the policy crate.
fn user_config(
    choice: &ConfigChoice,
    ctx: &Context,
) -> Result<(String, Option<SourceFile>), Failure> {
    if choice.none {
        return Ok(("your config".into(), None));
    }
    let (path, required) = match &choice.file {
        Some(file) => (ctx.cwd.join(file), true),
        None => {
            let base = ctx
                .var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| ctx.home.join(".config"));
            (base.join("kennel/config.toml"), false)
        }
    };
    let name = tilde(&path, &ctx.home);
    // A link is followed (home-manager links the config into the Nix store), but only to
    // a regular file of bounded size: never a FIFO that hangs kennel, nor `/dev/zero`.
    match files::read_users_file(&path, files::MAX_CONFIG) {
        Ok(bytes) => {
            let text = config_text(&path, bytes)?;
            let src = SourceFile::new(name.clone(), text);
            // Once per run, however often the config is read.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                for warning in kennel_policy::profile_name_typos(&src) {
                    eprintln!("kennel: warning: {warning}");
                }
            });
            Ok((name, Some(src)))
        }
        Err(files::ReadError::NotFound) if !required => Ok((name, None)),
        Err(e) => Err(failure(
            format!(
                "cannot read the configuration {}: {e}; point --config at your config file, \
                 or use --no-config",
                kennel_policy::shown_path(&path)
            ),
            exit::REFUSED,
        )),
    }
}

/// A config file's bytes as text, or an error naming it.
fn config_text(path: &Path, bytes: Vec<u8>) -> Result<String, Failure> {
    String::from_utf8(bytes).map_err(|_| {
        failure(
            format!(
                "cannot read the configuration {}: it is not UTF-8 text",
                kennel_policy::shown_path(path)
            ),
            exit::REFUSED,
        )
    })
}

/// The workspace's `.kennel.toml`, which may only narrow.
fn repo_config(ctx: &Context) -> Result<Option<SourceFile>, Failure> {
    let path = ctx.workspace.root.join(".kennel.toml");
    // Anyone who can commit, or an earlier sandbox, chose this file: no link is followed,
    // and only a regular file of bounded size is read.
    match files::read_file_no_link(&path, files::MAX_CONFIG) {
        Ok(bytes) => Ok(Some(SourceFile::new(
            path.display().to_string(),
            config_text(&path, bytes)?,
        ))),
        Err(files::ReadError::NotFound) => Ok(None),
        Err(e) => Err(failure(
            format!(
                "cannot read the repository's config {}: {e}; replace it by a regular file \
                 (or remove it)",
                kennel_policy::shown_path(&path)
            ),
            exit::REFUSED,
        )),
    }
}

fn cli_layer(args: &PolicyArgs, ctx: &Context) -> CliLayer {
    let abs =
        |paths: &[PathBuf]| -> Vec<PathBuf> { paths.iter().map(|p| ctx.cwd.join(p)).collect() };
    CliLayer {
        read_write: abs(&args.read_write),
        read_only: abs(&args.read_only),
        program_paths: Vec::new(),
        hidden: abs(&args.hidden),
        pass_env: args.pass_env.clone(),
        caches: args.caches.clone(),
        backend: args.backend.map(|b| match b {
            BackendChoice::Auto => Backend::Auto,
            BackendChoice::Native => Backend::Native,
            BackendChoice::Landlock => Backend::Landlock,
            BackendChoice::Systemd => Backend::Systemd,
        }),
        home: args.home.map(|h| match h {
            HomeChoice::Ephemeral => HomeMode::Ephemeral,
            HomeChoice::Persistent => HomeMode::Persistent,
        }),
        network: args.net.map(|n| match n {
            NetChoice::On => NetMode::On,
            NetChoice::Off => NetMode::Off,
            NetChoice::AllowList => NetMode::AllowList,
        }),
        allow: args.allow.clone(),
        localhost: args.localhost.clone(),
    }
}

/// Context, config files and flags -> Policy.
fn policy_for(
    config: &ConfigChoice,
    ctx: &Context,
    args: &PolicyArgs,
    command: Vec<OsString>,
    program_paths: Vec<(PathBuf, String)>,
) -> Result<(Policy, String), Failure> {
    let (config_name, user) = user_config(config, ctx)?;
    let mut cli = cli_layer(args, ctx);
    cli.pass_env
        .extend(agent_named_variables(&args.profile, ctx));
    cli.program_paths = program_paths;
    // A certificate file a CA variable names under the (hidden) home: readable inside.
    for name in kennel_policy::CA_VARIABLES {
        let Some(value) = ctx.var(name) else { continue };
        let path = PathBuf::from(value);
        if path.is_absolute() && path.starts_with(&ctx.home) && path != ctx.home {
            cli.program_paths.push((
                path,
                format!("the certificates {name} names (your company's CA, say)"),
            ));
        }
    }
    let inputs = ResolveInputs {
        profile: args.profile.clone(),
        command,
        user_config: user,
        repo_config: repo_config(ctx)?,
        cli,
        host: HostFacts {
            resolv_conf_target: resolv_conf_target(),
        },
    };
    let policy = resolve(ctx, inputs)?;
    if !args.allow.is_empty() && !matches!(policy.network, kennel_policy::Network::AllowList(_)) {
        return Err(failure(
            format!(
                "--allow needs the allow-list network, and profile `{}` runs with `{}` here; add \
                 --net allow-list",
                policy.profile,
                policy.network.mode_name()
            ),
            exit::REFUSED,
        ));
    }
    Ok((policy, config_name))
}

/// How to run beyond the policy: the backend's own options.
#[derive(Default)]
struct RunOptions {
    net_log: Option<PathBuf>,
    /// `--pty` / `--no-pty`; kennel chooses from stdin otherwise.
    terminal: Option<Terminal>,
    best_effort: bool,
    /// `--pass-fd`: descriptors of kennel's caller that the command gets.
    pass_fds: Vec<std::os::fd::RawFd>,
    /// `--checkpoint` / `--no-checkpoint`; the config and the profile decide otherwise.
    checkpoint: Option<bool>,
    systemd: systemd_backend::SystemdFlags,
}

fn run(config: &ConfigChoice, args: RunArgs) -> Result<u8, Failure> {
    let ctx = context()?;
    // The program the user names must be able to run: installed under the home (pipx,
    // npm), which is hidden inside, its folder is exposed read-only, as for the shorthand.
    let install = args
        .command
        .first()
        .and_then(|program| program::resolve(program, &ctx))
        .map(|found| program_paths(&found, &ctx, &args.policy.profile))
        .unwrap_or_default();
    let terminal = args.terminal();
    let checkpoint = args.checkpoint();
    let (policy, config_name) = policy_for(config, &ctx, &args.policy, args.command, install)?;
    let options = RunOptions {
        net_log: args.net_log.map(|f| ctx.cwd.join(f)),
        terminal,
        best_effort: args.best_effort,
        checkpoint,
        pass_fds: args.pass_fds,
        systemd: systemd_backend::SystemdFlags {
            dry_run: args.dry_run,
            memory: args.memory,
            tasks: args.tasks,
            cpu: args.cpu,
        },
    };
    run_policy(&ctx, policy, &config_name, &options)
}

/// `kennel sessions`, `diff` and `undo`: the workspace's checkpoints.
fn checkpoints(action: impl FnOnce(&Context) -> Result<(), String>) -> Result<u8, Failure> {
    let ctx = context()?;
    // A session that was killed is checked first, as at a start: what it planted in the
    // repository (a config, a pointer) is put aside before kennel's git reads it.
    git_watch::before_session(&ctx, false);
    action(&ctx).map_err(|e| failure(e, exit::REFUSED))?;
    Ok(0)
}

/// `kennel PROFILE ARGS...` = `kennel run --profile PROFILE -- PROGRAM ARGS...`.
fn shorthand(config: &ConfigChoice, argv: Vec<OsString>) -> Result<u8, Failure> {
    let mut argv = argv.into_iter();
    let name = argv
        .next()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let ctx = context()?;
    let (_, user) = user_config(config, &ctx)?;
    let catalog = Catalog::load(user.as_ref())?;
    if !catalog.names().contains(&name) {
        return Err(failure(
            format!(
                "unknown command or profile `{name}`; commands: run, explain, profiles, sessions, diff, undo, homes, doctor, wrap, unwrap, completions, man; profiles: {}",
                catalog.names().join(", ")
            ),
            exit::REFUSED,
        ));
    }
    let Some(program) = catalog.program(&name)? else {
        return Err(failure(
            format!(
                "profile `{name}` names no program; use `kennel run --profile {name} -- COMMAND`"
            ),
            exit::REFUSED,
        ));
    };
    let path = ctx.var("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let Some(found) = program::find_program(&program, path) else {
        return Err(failure(
            format!("`{program}` (the program of profile `{name}`) is not on your PATH; install it first"),
            127,
        ));
    };
    // Installed under the home, which is hidden inside: expose its folder read-only and run
    // it by its real path.
    let install = program_paths(&found, &ctx, &name);
    let exe = match program::install_root(&found, &ctx.home) {
        Some(_) => std::fs::canonicalize(&found).unwrap_or(found),
        None => found,
    };
    let mut command = vec![exe.into_os_string()];
    command.extend(argv);
    let args = PolicyArgs {
        profile: name,
        ..PolicyArgs::default()
    };
    let (policy, config_name) = policy_for(config, &ctx, &args, command, install)?;
    run_policy(&ctx, policy, &config_name, &RunOptions::default())
}

/// What `program` needs under the (hidden) home to run: its installation and its
/// interpreter when a version manager put it there ([`program::runtime_paths`]). An
/// interpreter under the home that kennel does not expose is named, with the line to add.
fn program_paths(program: &Path, ctx: &Context, profile: &str) -> Vec<(PathBuf, String)> {
    let path = ctx.var("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let (found, missing) = program::runtime_paths(program, &ctx.home, path);
    for interpreter in missing {
        let shown = tilde(&interpreter, &ctx.home);
        eprintln!(
            "kennel: warning: {} runs {}, which is under your home and hidden inside; if it \
             fails to start, add to [profile.{profile}] in your config: read-only = [{}]",
            kennel_policy::shown_path(program),
            kennel_policy::shown(&shown),
            toml::Value::String(shown.clone())
        );
    }
    found
}

/// A path that a rule binds, inside a folder that an earlier sandbox could write (the
/// workspace, a read-write folder of a profile), must not lead elsewhere through a link
/// made there: every backend binds by path and follows links, so `--ro vendor` with
/// `vendor` made a link to `~/.ssh` would show the key. Such a rule is refused, naming the
/// link. (kennel's own rules inside the workspace, git's and the hidden patterns', check
/// their paths themselves.)
fn refuse_links_in_writable_folders(policy: &Policy) -> Result<(), Failure> {
    use kennel_policy::Access;
    let writable: Vec<&Path> = policy
        .paths
        .iter()
        .filter(|r| r.access == Access::ReadWrite)
        .map(|r| r.path.as_path())
        .collect();
    for rule in policy.paths.iter().filter(|r| {
        matches!(r.access, Access::ReadOnly | Access::ReadWrite) && r.origin.source != "built-in"
    }) {
        let Some(top) = writable
            .iter()
            .filter(|w| **w != rule.path && rule.path.starts_with(w))
            .max_by_key(|w| w.components().count())
        else {
            continue;
        };
        let Ok(below) = rule.path.strip_prefix(top) else {
            continue;
        };
        let mut at = top.to_path_buf();
        for part in below.components() {
            at.push(part);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(failure(
                    format!(
                        "{} ({}) leads through the link {}, in {}, which the sandbox can write: \
                         kennel does not follow it there (a sandbox could have made it point \
                         to a secret); name the link's target instead, or remove the link",
                        kennel_policy::shown_path(&rule.path),
                        kennel_policy::shown(&rule.origin.source),
                        kennel_policy::shown_path(&at),
                        kennel_policy::shown_path(top),
                    ),
                    exit::REFUSED,
                ));
            }
        }
    }
    Ok(())
}

/// Variables an agent's own config says it reads, which the profile cannot list ahead:
/// Codex's custom providers name theirs (`[model_providers.NAME] env_key = "..."` in
/// `~/.codex/config.toml`). Passed when set, each said once with where it is named.
fn agent_named_variables(profile: &str, ctx: &Context) -> Vec<String> {
    // (profile, config under the home, the table of entries, the key each names).
    const NAMED: &[(&str, &str, &str, &str)] =
        &[("codex", ".codex/config.toml", "model_providers", "env_key")];
    let mut names = Vec::new();
    for (owner, file, table, key) in NAMED {
        if *owner != profile {
            continue;
        }
        let path = ctx.home.join(file);
        let Ok(bytes) = files::read_users_file(&path, files::MAX_CONFIG) else {
            continue;
        };
        let Ok(parsed) = String::from_utf8_lossy(&bytes).parse::<toml::Table>() else {
            continue;
        };
        let Some(entries) = parsed.get(*table).and_then(|t| t.as_table()) else {
            continue;
        };
        for (entry, value) in entries {
            let Some(name) = value.get(*key).and_then(|v| v.as_str()) else {
                continue;
            };
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if valid && ctx.var(name).is_some() {
                eprintln!(
                    "kennel: note: passing {name}: {} names it ([{table}.{}] {key})",
                    tilde(&path, &ctx.home),
                    kennel_policy::shown(entry)
                );
                names.push(name.to_string());
            }
        }
    }
    names
}

/// The user's own proxy (`HTTPS_PROXY`, else `HTTP_PROXY`, with `NO_PROXY`), which the
/// allow-list proxy goes through, said once; a proxy kennel cannot speak to is said too.
fn users_proxy(ctx: &Context, policy: &Policy) -> Option<kennel_net::proxy::Upstream> {
    if !matches!(policy.network, kennel_policy::Network::AllowList(_)) {
        return None;
    }
    let var = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| ctx.var(n).filter(|v| !v.is_empty()))
    };
    let (name, url) = [
        ("HTTPS_PROXY", ["HTTPS_PROXY", "https_proxy"]),
        ("HTTP_PROXY", ["HTTP_PROXY", "http_proxy"]),
    ]
    .iter()
    .find_map(|(name, names)| var(names).map(|v| (*name, v)))?;
    let no_proxy = var(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
    match kennel_net::proxy::Upstream::parse(url, no_proxy) {
        Some(upstream) => {
            eprintln!(
                "kennel: note: the allowed hosts are reached through your proxy {}:{} ({name}{})",
                kennel_policy::shown(&upstream.host),
                upstream.port,
                if no_proxy.is_empty() {
                    ""
                } else {
                    "; NO_PROXY is kept"
                }
            );
            Some(upstream)
        }
        None => {
            eprintln!(
                "kennel: warning: {name} is not an http:// proxy kennel can go through; the \
                 allowed hosts are reached directly"
            );
            None
        }
    }
}

/// The temporary folder kennel keeps its own folder in: `$TMPDIR` (as the standard library
/// reads it), unless that is not an absolute path of a folder, or lies in the workspace (the
/// sandbox would see and change its own home and other sessions' there): then `/tmp`, said
/// once in one line.
fn temp_base(workspace: &Path) -> PathBuf {
    let temp = std::env::temp_dir();
    let why = if !temp.is_absolute() || !temp.is_dir() {
        "is not a folder"
    } else if kennel_policy::is_ancestor_or_same(workspace, &temp) {
        "is inside the workspace, where the sandbox could reach kennel's own files"
    } else {
        return temp;
    };
    eprintln!(
        "kennel: notice: TMPDIR ({}) {why}: kennel keeps its files in /tmp instead",
        kennel_policy::shown_path(&temp)
    );
    PathBuf::from("/tmp")
}

/// Variables of the user's environment that the policy does not pass and that look like a
/// tool's settings (keys, tokens, endpoints, proxies): names only, sorted. What an agent
/// misses when it says `Missing environment variable`.
fn notable_dropped(ctx: &Context, policy: &Policy) -> Vec<String> {
    const ENDINGS: &[&str] = &[
        "_API_KEY",
        "_KEY",
        "_TOKEN",
        "_BASE_URL",
        "_API_BASE",
        "_ENDPOINT",
        "_HOST",
        "_URL",
        "_PROXY",
    ];
    let mut names: Vec<String> = ctx
        .env
        .iter()
        .filter_map(|(name, _)| name.to_str())
        .filter(|name| {
            let upper = name.to_ascii_uppercase();
            ENDINGS.iter().any(|e| upper.ends_with(e))
        })
        .filter(|name| !policy.env.iter().any(|v| v.name == *name))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The repository's own config and hooks run commands when the user types `git` outside
/// the sandbox; kennel keeps them read-only inside, and says what is already there.
fn report_git_commands(ctx: &Context, git: &kennel_policy::GitDirs, said: &mut said::Said) {
    for found in kennel_policy::git_runs_commands(&ctx.workspace.root, git, &ctx.home) {
        let value = if found.value.is_empty() {
            String::new()
        } else {
            format!(" = {}", kennel_policy::shown(&found.value))
        };
        let line = format!(
            "note: {}{value} ({}) runs a command whenever you use git in this repository",
            kennel_policy::shown(&found.what),
            kennel_policy::shown_path(&found.file)
        );
        // Once per repository, and again when it changes (a new value, a new hook).
        if said.first_time(&line) {
            eprintln!("kennel: {line}");
        }
    }
}

fn run_policy(
    ctx: &Context,
    mut policy: Policy,
    config_name: &str,
    run: &RunOptions,
) -> Result<u8, Failure> {
    if let Some(terminal) = run.terminal {
        policy.terminal = terminal;
    }
    if ctx.workspace.git.is_none() {
        eprintln!(
            "kennel: warning: not inside a git repository; the workspace is the current directory {}",
            ctx.workspace.root.display()
        );
    }
    // First, before the sandbox is planned and built: it may move what a killed session
    // left for git into the quarantine.
    git_watch::before_session(ctx, run.systemd.dry_run);
    let mut said = said::Said::load(ctx);
    refuse_links_in_writable_folders(&policy)?;
    let temp = temp_base(&ctx.workspace.root);
    let scratch = home::scratch_dir(&temp, ctx.uid);
    if let Some(scratch) = &scratch {
        home::remove_left_scratch(scratch);
    }
    let state = ctx.var("XDG_STATE_HOME").map(PathBuf::from);
    if policy.backend == Backend::Systemd {
        systemd_backend::expose_kennel_itself(&mut policy)?;
    }
    // A dry run prints a command to paste later: its home must not be a folder that this
    // run removes at exit, so it keeps the plain fresh one.
    // The native backend keeps an ephemeral home in memory (and `auto`, which drops it where
    // it falls back); the systemd backend binds a folder on disk; the landlock backend has
    // no home of the sandbox's (the user's stays unreadable but for what the policy names).
    let in_memory = matches!(policy.backend, Backend::Native | Backend::Auto);
    let mut home = if run.systemd.dry_run || policy.backend == Backend::Landlock {
        None
    } else {
        home::prepare(&mut policy, state, temp.clone(), in_memory).map_err(|e| {
            failure(
                format!("cannot prepare the sandbox's home: {e}"),
                exit::SETUP_FAILED,
            )
        })?
    };
    let mut options = kennel_native::Options {
        landlock: if run.best_effort {
            kennel_native::Enforcement::BestEffort
        } else {
            kennel_native::Enforcement::Required
        },
        #[cfg(debug_assertions)]
        debug_mount_only: std::env::var_os("KENNEL_DEBUG_MOUNT_ONLY")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default(),
        net: kennel_native::NetOptions {
            log_file: run.net_log.clone(),
            resolver_overrides: debug_resolver_overrides()?,
            config_name: config_name.to_string(),
            upstream: users_proxy(ctx, &policy),
            scratch,
        },
        pass_fds: pass_descriptors(&run.pass_fds, policy.backend)?,
        tasks: if policy.backend == Backend::Systemd {
            None
        } else {
            systemd_backend::native_tasks(&run.systemd)?
        },
        memory: if policy.backend == Backend::Systemd {
            None
        } else {
            systemd_backend::native_memory(&run.systemd)?
        },
        memory_home: home
            .as_ref()
            .filter(|h| h.in_memory())
            .map(|h| kennel_native::MemoryHome {
                files: h.memory_files(),
                ..Default::default()
            }),
    };
    if policy.backend != Backend::Systemd {
        systemd_backend::refuse_systemd_only_flags(&run.systemd, policy.backend)?;
    }
    // What is noted and recorded before the command starts; on the native backend while
    // its child builds the sandbox (see `Started`).
    // The end check's survey then starts, on a thread of its own: at once where kennel
    // forks nothing more, after the fork on the landlock backend (see `run_landlock_only`).
    let started: RefCell<Option<Started>> = RefCell::new(None);
    let mut record = |then_survey: bool| {
        let mut started = started.borrow_mut();
        let started =
            started.get_or_insert_with(|| Started::begin(ctx, &policy, run, &mut said, &temp));
        if then_survey {
            started.survey();
        }
    };
    let mut survey = || {
        if let Some(started) = started.borrow_mut().as_mut() {
            started.survey();
        }
    };
    let result = match policy.backend {
        Backend::Systemd => {
            record(true);
            systemd_backend::run(ctx, &policy, &run.systemd, &options.net)
        }
        Backend::Native => {
            kennel_native::run(&policy, &options, &mut || record(true)).map_err(Failure::from)
        }
        Backend::Landlock => {
            record(false);
            kennel_native::run_landlock_only(&policy, &options, &mut survey).map_err(Failure::from)
        }
        Backend::Auto => match kennel_native::run(&policy, &options, &mut || record(true)) {
            Err(NativeError::UserNamespacesDenied { cause, fix }) => {
                let fix = apparmor::fix(&cause, fix);
                eprintln!(
                    "kennel: notice: falling back to the landlock backend: this system does not \
                     let unprivileged users create user namespaces ({cause}). To get the native \
                     backend back, {fix}"
                );
                if options.tasks.is_some() {
                    Err(failure(
                        "--tasks needs the native backend (the landlock backend has no user \
                         namespace in which to count the sandbox's processes apart from your \
                         others): not started"
                            .into(),
                        exit::REFUSED,
                    ))
                } else if options.memory.is_some() {
                    Err(failure(
                        "--memory needs the native or the systemd backend (the landlock \
                         backend cannot move the sandbox into a memory cgroup of its own before \
                         it starts): not started"
                            .into(),
                        exit::REFUSED,
                    ))
                } else {
                    // The landlock backend has no home of the sandbox's to list.
                    home = None;
                    // The native backend's child may have failed after kennel recorded what
                    // it does first (AppArmor refuses mounts, not the namespace): the
                    // survey's thread, started then, ends before the landlock backend's
                    // fork, which needs kennel single-threaded, and starts again after it.
                    if let Some(started) = started.borrow_mut().as_mut() {
                        started.stop_survey();
                    }
                    record(false);
                    kennel_native::run_landlock_only(&policy, &options, &mut survey)
                        .map_err(Failure::from)
                }
            }
            other => other.map_err(Failure::from),
        },
    };
    if let (Some(home), Some(fd)) = (
        home.as_mut(),
        options.memory_home.as_mut().and_then(|m| m.received.take()),
    ) {
        home.attach(fd);
    }
    if let Some(home) = &home {
        let mut lines = home.finish(&policy, config_name);
        if !lines.is_empty() {
            kennel_native::plain_attributes();
            // The listing of the same files as the last time (an interactive shell's
            // history): its first line only, what to keep was said then. What copy-back
            // says, before it, is always said.
            if let Some(at) = lines
                .iter()
                .position(|l| l.contains("written to the sandbox's temporary home"))
            {
                if !said.first_time(&lines[at..].join("\n")) {
                    lines.truncate(at + 1);
                    let first = lines[at].trim_end_matches(':').to_string();
                    lines[at] = format!("{first} (the same as the last time here: named then)");
                }
            }
        }
        for line in lines {
            eprintln!("kennel: {line}");
        }
    }
    // An ephemeral home's folder is removed now; the rest is left to the exit.
    drop(home);
    if let Some(started) = started.into_inner() {
        started.end();
    }
    said.save();
    let code = result?;
    end(u8::try_from(code).unwrap_or(exit::SETUP_FAILED))
}

/// What kennel notes and records of the workspace before the command starts: the notes of
/// the launch, the checkpoint, the end check's start, the agent's settings. On the native
/// backend this runs while the sandbox is being built (the command waits for it), before
/// the start on the others.
struct Started {
    _running: Option<checkpoint::Running>,
    checkpoint: Option<checkpoint::Session>,
    git_watch: Option<git_watch::GitWatch>,
    agent_watch: Option<agent_watch::Watch>,
    repo_config: PathBuf,
    repo_config_was_there: bool,
}

impl Started {
    fn begin(
        ctx: &Context,
        policy: &Policy,
        run: &RunOptions,
        said: &mut said::Said,
        temp: &Path,
    ) -> Started {
        if let Some(git) = &ctx.workspace.git {
            report_git_commands(ctx, git, said);
            // Once per repository, to a person at a terminal (not in a script's output): why
            // some git commands fail inside.
            let line = "note: inside, the repository's .git/config, .git/hooks and .git/info are \
                        read-only (what is there runs outside the sandbox): `git config`, `git \
                        remote add` and hook changes fail inside with \"Device or resource busy\" \
                        or \"Read-only file system\"; run them outside kennel";
            if ctx.stdin_is_tty && policy.backend != Backend::Landlock && said.first_time(line) {
                eprintln!("kennel: {line}");
            }
        }
        let dropped = notable_dropped(ctx, policy);
        if !dropped.is_empty() {
            let line = format!(
                "note: not passed into the sandbox (names only): {}; pass one with --pass-env \
                 NAME, or for good with `pass = [\"NAME\"]` in [profile.{}.env] of your config",
                kennel_policy::shown(&dropped.join(" ")),
                policy.profile
            );
            if said.first_time(&line) {
                eprintln!("kennel: {line}");
            }
        }
        let stale_homes = home::stale_homes(temp, ctx.uid);
        if stale_homes.len() > 3 {
            eprintln!(
                "kennel: {} more homes of earlier sandboxes were left in {}",
                stale_homes.len() - 3,
                home::homes_dir(temp, ctx.uid).display()
            );
        }
        for stale in stale_homes.iter().take(3) {
            eprintln!(
                "kennel: an earlier sandbox's home was left at {} (its kennel was killed); it \
                 holds what was written there: look, then `kennel homes --remove`",
                stale.display()
            );
        }
        // A checkpoint of the workspace (`kennel undo`): by default for an agent's profile,
        // not for `default`, which runs one command at a time.
        let checkpoint = run
            .checkpoint
            .or(policy.checkpoint)
            .unwrap_or(policy.profile != "default")
            && !run.systemd.dry_run;
        let running = (!run.systemd.dry_run)
            .then(|| checkpoint::running(ctx))
            .flatten();
        let checkpoint = if checkpoint {
            checkpoint::begin(ctx, policy)
        } else {
            None
        };
        let git_watch = git_watch::begin(ctx, run.systemd.dry_run);
        let agent_watch = if run.systemd.dry_run {
            None
        } else {
            agent_watch::begin(policy)
        };
        // The repository's config, where it was missing: the sandbox may make one (it cannot
        // widen the next sandbox, only narrow it, but the user did not write it).
        let repo_config = ctx.workspace.root.join(".kennel.toml");
        let repo_config_was_there = std::fs::symlink_metadata(&repo_config).is_ok();
        Started {
            _running: running,
            checkpoint,
            git_watch,
            agent_watch,
            repo_config,
            repo_config_was_there,
        }
    }

    /// Starts the end check's survey of the workspace (see `git_watch::GitWatch::survey`):
    /// when the command is about to start or has, so that it takes the core kennel's own
    /// thread leaves while it waits.
    fn survey(&mut self) {
        if let Some(watch) = &mut self.git_watch {
            watch.survey();
        }
    }

    /// Ends the survey's thread (see `git_watch::GitWatch::stop_survey`).
    fn stop_survey(&mut self) {
        if let Some(watch) = &mut self.git_watch {
            watch.stop_survey();
        }
    }

    /// After the sandbox, and after copy-back: the end check, the agent's settings as the
    /// agent outside will read them, the checkpoint's end.
    fn end(self) {
        git_watch::end(self.git_watch);
        let lines = agent_watch::end(self.agent_watch);
        if !lines.is_empty() {
            kennel_native::plain_attributes();
        }
        for line in lines {
            eprintln!("kennel: {line}");
        }
        if let Some(session) = self.checkpoint {
            checkpoint::end(session);
        }
        if !self.repo_config_was_there && std::fs::symlink_metadata(&self.repo_config).is_ok() {
            eprintln!(
                "kennel: note: {} was created in this session: it narrows every later sandbox \
                 of this repository (hidden paths, variables, the network); look at it, and \
                 remove it if you did not ask for it",
                kennel_policy::shown_path(&self.repo_config)
            );
        }
    }
}

/// The descriptors of `--pass-fd`, made inheritable: every descriptor kennel's caller left
/// open was marked close-on-exec at kennel's start, and only these are given back. One that
/// is not open, or a standard stream, is a usage error; the systemd backend cannot pass
/// any (the unit's process is started by the user manager, not by kennel).
fn pass_descriptors(
    fds: &[std::os::fd::RawFd],
    backend: Backend,
) -> Result<Vec<std::os::fd::RawFd>, Failure> {
    if !fds.is_empty() && backend == Backend::Systemd {
        return Err(failure(
            "--pass-fd is not supported with --backend systemd: the unit's process is started \
             by your user manager, which does not get kennel's descriptors"
                .into(),
            exit::REFUSED,
        ));
    }
    for &fd in fds {
        if fd <= 2 {
            return Err(failure(
                format!("--pass-fd {fd}: standard input, output and error always pass"),
                exit::REFUSED,
            ));
        }
        kennel_native::set_close_on_exec(fd, false).map_err(|e| {
            failure(
                format!("--pass-fd {fd}: descriptor {fd} is not open in kennel ({e}); open it in the shell that starts kennel, e.g. `{fd}<FILE`"),
                exit::REFUSED,
            )
        })?;
    }
    Ok(fds.to_vec())
}

/// Ends kennel with `code`, standard output flushed, and without freeing what the caller
/// still holds: once a sandbox has run, its init, a copy of this process, shares every page
/// of kennel's memory until kennel exits, so freeing the policy, the command line and the
/// environment would copy each page it writes to, only to exit (about 0.1 ms of every run;
/// bench/README.md). The flush is all that is left to do on the way out: kennel writes
/// through no C stream and registers no exit handler, so `_exit` skips the C library's exit
/// handlers and the standard library's second flush (about 0.02 ms).
fn end(code: u8) -> ! {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    kennel_native::exit_now(code.into())
}

/// Test hook, in debug builds only: fixed answers for the proxy's resolver
/// (`KENNEL_DEBUG_NET_HOSTS="api.example.test=127.0.0.2;..."`), so that tests never need a
/// real name.
fn debug_resolver_overrides(
) -> Result<std::collections::HashMap<String, Vec<std::net::IpAddr>>, Failure> {
    #[cfg(debug_assertions)]
    if let Ok(text) = std::env::var("KENNEL_DEBUG_NET_HOSTS") {
        return kennel_net::addr::parse_overrides(&text)
            .map_err(|e| failure(format!("KENNEL_DEBUG_NET_HOSTS: {e}"), exit::REFUSED));
    }
    Ok(std::collections::HashMap::new())
}

/// `kennel net-connect HOST PORT`, inside a sandbox: the socket is named by the variable the
/// sandbox sets.
fn net_connect(host: &str, port: u16) -> Result<u8, Failure> {
    let Some(socket) = std::env::var_os("KENNEL_NET_SOCKET") else {
        return Err(failure(
            "net-connect works inside a kennel sandbox with the allow-list network \
             (KENNEL_NET_SOCKET is not set)"
                .into(),
            exit::REFUSED,
        ));
    };
    kennel_net::client::net_connect(Path::new(&socket), host, port)
        .map(|()| 0)
        .map_err(|e| failure(format!("net-connect {host}:{port}: {e}"), 1))
}

fn explain(config: &ConfigChoice, args: ExplainArgs) -> Result<u8, Failure> {
    let ctx = context()?;
    let mut policy_args = args.policy.clone();
    if let Some(name) = args.profile_name {
        policy_args.profile = name;
    }
    let (_, user) = user_config(config, &ctx)?;
    let catalog = Catalog::load(user.as_ref())?;
    let command = match catalog.program(&policy_args.profile) {
        Ok(Some(program)) => vec![OsString::from(program)],
        _ => Vec::new(),
    };
    // What `kennel NAME` would expose for the program as it is installed here.
    let path = ctx.var("PATH").unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let install = command
        .first()
        .and_then(|p| program::find_program(&p.to_string_lossy(), path))
        .map(|found| program_paths(&found, &ctx, &policy_args.profile))
        .unwrap_or_default();
    let (policy, _) = policy_for(config, &ctx, &policy_args, command, install)?;
    if args.json {
        let json = serde_json::to_string_pretty(&policy)
            .map_err(|e| failure(format!("cannot write JSON: {e}"), exit::SETUP_FAILED))?;
        println!("{json}");
    } else {
        let description = catalog
            .info(policy.profile.clone())
            .map(|p| p.description)
            .unwrap_or_default();
        print!("{}", explain_text(&policy, &description));
        let dropped = notable_dropped(&ctx, &policy);
        if !dropped.is_empty() {
            println!(
                "\nnot passed from your environment (keys, tokens, endpoints, proxies; names \
                 only): {}",
                kennel_policy::shown(&dropped.join(" "))
            );
        }
        if policy.backend == Backend::Auto {
            // What `auto` is on this machine: the same probe `kennel run` meets.
            match kennel_native::probe_user_namespaces().map_err(apparmor::with_commands) {
                Ok(()) => println!("\non this machine, auto is the native backend"),
                Err(e) => println!(
                    "\non this machine, auto is the landlock backend (it keeps less: see \
                     `kennel explain --backend landlock`): {e}"
                ),
            }
        }
        if policy.backend != Backend::Systemd {
            println!("\nsystem calls refused (seccomp; EPERM unless said otherwise):");
            for (calls, why) in kennel_native::seccomp::DENIED {
                println!("  - {calls}: {why}");
            }
        }
    }
    Ok(0)
}

fn profiles(config: &ConfigChoice) -> Result<u8, Failure> {
    let ctx = context()?;
    let (_, user) = user_config(config, &ctx)?;
    let catalog = Catalog::load(user.as_ref())?;
    let list = catalog.list()?;
    let width = list.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in list {
        let source = if p.source == "built-in" {
            String::new()
        } else {
            format!(" [{}]", p.source)
        };
        println!("{:<width$}  {}{source}", p.name, p.description);
    }
    Ok(0)
}
