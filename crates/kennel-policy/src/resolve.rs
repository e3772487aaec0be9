//! Context + profiles + configuration -> Policy.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::context::Context;
use crate::env::env_allowed;
use crate::error::PolicyError;
use crate::git::git_protection_rules;
use crate::glob;
use crate::layer::{validate, Layer, LayerKind, Loc, Named, NetLayer, PathEntry, PathSpec};
use crate::network::{HostRule, NetMode, NetRules, BUILTIN_NET_GROUPS};
use crate::paths::{is_ancestor_or_same, normalize};
use crate::policy::{
    Access, Backend, CopyBack, EnvVar, HomeMode, Network, PathRule, Placeholder, Policy,
    RuleOrigin, RunsCommands, Terminal, TmpfsLimits,
};
use crate::raw::{check_version, parse, RawLayer, RawNetGroups};
use crate::source::SourceFile;

/// Places under `/run` that a NixOS system needs for its PATH and drivers; read-only.
const NIXOS_RUN_PATHS: &[&str] = &[
    "/run/current-system",
    "/run/booted-system",
    "/run/opengl-driver",
    "/run/wrappers",
];

fn rule(path: impl Into<PathBuf>, access: Access, optional: bool, reason: &str) -> PathRule {
    PathRule::new(path, access, optional, RuleOrigin::builtin(reason))
}

/// Refuses a workspace that would expose the home: the home itself, a folder above it, `/`.
pub fn check_workspace(workspace: &Path, home: &Path) -> Result<(), PolicyError> {
    let why = if workspace == Path::new("/") {
        "is the root of the file system"
    } else if workspace == home {
        "is your home folder"
    } else if is_ancestor_or_same(workspace, home) {
        "contains your home folder"
    } else {
        return check_not_private(workspace);
    };
    Err(PolicyError::WorkspaceExposesHome {
        workspace: workspace.to_path_buf(),
        why,
    })
}

/// Folders the sandbox always replaces, with what it puts there: a workspace that is one
/// of them would be bound and then covered (`cd /tmp; kennel run ...` wrote into the
/// sandbox's own `/tmp`, lost at exit). Binding the host's instead would expose what other
/// programs keep there (agent sockets in `/tmp/ssh-*`, X11's in `/tmp/.X11-unix`).
const PRIVATE_FOLDERS: &[(&str, &str)] = &[
    ("/tmp", "a private /tmp"),
    ("/var/tmp", "a private /var/tmp"),
    ("/dev/shm", "a private /dev/shm"),
    ("/dev", "a /dev of its own"),
    ("/proc", "a /proc of its own"),
    ("/sys", "a read-only /sys"),
    ("/run", "an empty /run"),
    ("/home", "an empty /home"),
    ("/root", "an empty /root"),
    ("/srv", "an empty /srv"),
    ("/mnt", "an empty /mnt"),
    ("/media", "an empty /media"),
    ("/var/mail", "an empty /var/mail"),
];

fn check_not_private(workspace: &Path) -> Result<(), PolicyError> {
    match PRIVATE_FOLDERS
        .iter()
        .find(|(path, _)| workspace == Path::new(path))
    {
        Some((_, what)) => Err(PolicyError::WorkspaceIsPrivate {
            workspace: workspace.to_path_buf(),
            what,
        }),
        None => Ok(()),
    }
}

/// What the command line adds: the last word over the user's config. Paths are absolute
/// (the caller makes them so from its working directory).
#[derive(Debug, Clone, Default)]
pub struct CliLayer {
    pub read_write: Vec<PathBuf>,
    pub read_only: Vec<PathBuf>,
    /// What the command's program needs to run, found by the caller (its installation and
    /// its interpreter under the home), read-only, each with the reason `explain` shows.
    pub program_paths: Vec<(PathBuf, String)>,
    pub hidden: Vec<PathBuf>,
    pub pass_env: Vec<String>,
    pub caches: Vec<String>,
    pub backend: Option<Backend>,
    pub home: Option<HomeMode>,
    /// `--net MODE`.
    pub network: Option<NetMode>,
    /// `--allow HOST[:PORT]`: hosts the allow-list proxy lets through, for this run.
    pub allow: Vec<String>,
    /// `--localhost PORT`: host loopback ports reachable inside, for this run.
    pub localhost: Vec<u16>,
}

/// Facts about the host that the policy depends on, found by the caller.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Where `/etc/resolv.conf` points when that is under `/run` (see [`resolv_conf_target`]).
    pub resolv_conf_target: Option<PathBuf>,
}

/// Everything resolution reads besides the [`Context`]: the caller found and read the files.
#[derive(Debug, Clone, Default)]
pub struct ResolveInputs {
    pub profile: String,
    /// The command; the user's shell when empty.
    pub command: Vec<OsString>,
    /// The user's `config.toml`, unless `--no-config`.
    pub user_config: Option<SourceFile>,
    /// The workspace's `.kennel.toml`, if any.
    pub repo_config: Option<SourceFile>,
    pub cli: CliLayer,
    pub host: HostFacts,
}

/// The built-in default policy for `ctx`, running `command` (the user's shell when empty).
pub fn resolve_default(ctx: &Context, command: Vec<OsString>) -> Result<Policy, PolicyError> {
    resolve(
        ctx,
        ResolveInputs {
            profile: "default".into(),
            command,
            host: HostFacts {
                resolv_conf_target: resolv_conf_target(),
            },
            ..ResolveInputs::default()
        },
    )
}

/// Context and inputs -> Policy.
///
/// Precedence, from weakest to strongest: the built-in rules and profiles (a profile after
/// the one it extends), the user's `[defaults]`, the user's `[profile.NAME]`, the command
/// line, then git's protections; the repository's `.kennel.toml` last, and it can only hide
/// and drop. A later source replaces an earlier one's rule on the same path; within one
/// source, and between rules on different paths, [`Access`] decides (deepest path wins, at
/// equal depth hidden beats read-write beats read-only).
pub fn resolve(ctx: &Context, inputs: ResolveInputs) -> Result<Policy, PolicyError> {
    let workspace = &ctx.workspace.root;
    check_workspace(workspace, &ctx.home)?;
    let catalog = Catalog::load(inputs.user_config.as_ref())?;
    let repo = match &inputs.repo_config {
        Some(src) => {
            let raw: RawLayer = parse(src).map_err(|mut e| {
                if e.message.starts_with("unknown field") {
                    e.message.push_str(
                        "; a repository's .kennel.toml may only hide paths (`hidden`), drop variables (`[env] drop`) and narrow the network (`network = \"off\"`, `[network] deny`)",
                    );
                }
                e
            })?;
            if raw.version.is_some() {
                check_version(src, &raw.version)?;
            }
            Some(validate(src, &raw, LayerKind::Repo, "repository".into())?)
        }
        None => None,
    };
    let chain = catalog.chain(&inputs.profile, None)?;

    let mut b = Builder::new(ctx);
    b.base_rules(&inputs.host);
    let layers = chain
        .builtin
        .iter()
        .copied()
        .chain(catalog.defaults.iter())
        .chain(chain.user.iter().copied());
    for layer in layers {
        for cache in &layer.caches {
            let group = catalog.cache(&cache.name)?.ok_or_else(|| {
                cache
                    .loc
                    .error(format!("unknown cache group `{}`", cache.name))
            })?;
            b.apply(group)?;
        }
        b.apply(layer)?;
    }
    let cli = cli_layer(&inputs.cli, &catalog)?;
    for cache in &cli.caches {
        if let Some(group) = catalog.cache(&cache.name)? {
            b.apply(group)?;
        }
    }
    b.apply(&cli)?;
    if let Some(git) = &ctx.workspace.git {
        b.next_layer();
        for rule in git_protection_rules(workspace, git, &ctx.home) {
            b.push(rule);
        }
    }
    if let Some(repo) = &repo {
        b.apply(repo)?;
    }
    let policy = b.finish(inputs.profile, inputs.command);
    check_outside_git_dirs(ctx, &policy)?;
    Ok(policy)
}

/// A git dir outside the workspace is bound read-write; one inside a folder the policy
/// hides would open that folder (its own rule is deeper, so it would win): refused.
fn check_outside_git_dirs(ctx: &Context, policy: &Policy) -> Result<(), PolicyError> {
    let Some(git) = &ctx.workspace.git else {
        return Ok(());
    };
    for dir in [&git.common_dir, &git.git_dir] {
        if is_ancestor_or_same(&ctx.workspace.root, dir) {
            continue;
        }
        let above = dir.parent().and_then(|parent| policy.rule_for(parent));
        if let Some(rule) = above.filter(|r| r.access == Access::Hidden) {
            return Err(PolicyError::UntrustedGitDir {
                path: dir.to_path_buf(),
                why: format!(
                    "is this workspace's git directory, inside {}, which the policy hides \
                     ({}); kennel will not open a hidden folder for it: run kennel from the \
                     main checkout, or stop hiding that folder",
                    crate::shown_path(&rule.path),
                    rule.origin.source
                ),
            });
        }
    }
    Ok(())
}

fn cli_layer(cli: &CliLayer, catalog: &Catalog) -> Result<Layer, PolicyError> {
    let loc = || Loc {
        file: "command line".into(),
        line: 0,
        column: 0,
    };
    let named = |name: &String| Named {
        name: name.clone(),
        loc: loc(),
    };
    for name in &cli.pass_env {
        if !crate::layer::is_var_name(name) {
            return Err(PolicyError::Profile(format!(
                "--pass-env {}: not a variable name (give the name alone; its value comes from \
                 your environment)",
                crate::shown(name)
            )));
        }
    }
    let mut layer = Layer {
        label: "command line".into(),
        backend: cli.backend,
        home: cli.home,
        network: (cli.network.is_some() || !cli.allow.is_empty() || !cli.localhost.is_empty())
            .then(|| -> Result<NetLayer, PolicyError> {
                Ok(NetLayer {
                    mode: cli.network,
                    allow: cli
                        .allow
                        .iter()
                        .map(|text| {
                            HostRule::parse(text, "--allow (command line)")
                                .map_err(|e| PolicyError::Profile(format!("--allow {text}: {e}")))
                        })
                        .collect::<Result<_, _>>()?,
                    localhost: cli.localhost.clone(),
                    ..NetLayer::default()
                })
            })
            .transpose()?,
        env_pass: cli.pass_env.iter().map(named).collect(),
        ..Layer::default()
    };
    for cache in &cli.caches {
        if catalog.cache(cache)?.is_none() {
            return Err(PolicyError::Profile(format!(
                "unknown cache group `{cache}`; known groups: {}",
                catalog.cache_names()?.join(", ")
            )));
        }
        layer.caches.push(named(cache));
    }
    for (list, access) in [
        (&cli.read_write, Access::ReadWrite),
        (&cli.read_only, Access::ReadOnly),
        (&cli.hidden, Access::Hidden),
    ] {
        for path in list {
            if !path.is_absolute() {
                return Err(PolicyError::Profile(format!(
                    "{} is not an absolute path",
                    path.display()
                )));
            }
            layer.paths.push(PathEntry {
                spec: PathSpec::Absolute(path.clone()),
                access,
                optional: false,
                create: false,
                why: None,
                loc: loc(),
            });
        }
    }
    for (path, why) in &cli.program_paths {
        layer.paths.push(PathEntry {
            spec: PathSpec::Absolute(path.clone()),
            access: Access::ReadOnly,
            optional: true,
            create: false,
            why: Some(why.clone()),
            loc: loc(),
        });
    }
    Ok(layer)
}

/// Accumulates rules and settings, source after source.
struct Builder<'a> {
    ctx: &'a Context,
    /// Rules with the index of the source that made them.
    rules: Vec<(usize, PathRule)>,
    /// Every path that has a rule in `rules`, so that a rule on a new path is added without
    /// scanning them all (which made resolution quadratic in the number of rules).
    ruled: HashSet<PathBuf>,
    layer: usize,
    description: Option<String>,
    home_mode: HomeMode,
    tmpfs_size: u64,
    checkpoint: Option<bool>,
    checkpoint_keep: Option<usize>,
    backend: Backend,
    copy_back: Vec<CopyBack>,
    runs_commands: Vec<RunsCommands>,
    pass: BTreeSet<String>,
    set: BTreeMap<String, String>,
    dropped: BTreeSet<String>,
    net_mode: NetMode,
    net: NetRules,
    localhost: Vec<u16>,
    /// `profiles/network.toml`, parsed when a layer first names a group.
    net_groups: Option<BTreeMap<String, Vec<HostRule>>>,
    /// The workspace's entries, listed at the first wildcard that needs them.
    listing: glob::Listing,
}

/// The named host groups of `profiles/network.toml`.
pub fn net_groups() -> Result<BTreeMap<String, Vec<HostRule>>, PolicyError> {
    let src = SourceFile::new("profiles/network.toml", BUILTIN_NET_GROUPS);
    let raw: RawNetGroups = parse(&src)?;
    check_version(&src, &raw.version)?;
    let mut groups = BTreeMap::new();
    for (name, group) in raw.group {
        let source = format!("group {name}");
        let rules = group
            .allow
            .iter()
            .map(|h| HostRule::parse(h, source.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| src.error(None, format!("group {name}: {e}")))?;
        groups.insert(name, rules);
    }
    Ok(groups)
}

impl<'a> Builder<'a> {
    fn new(ctx: &'a Context) -> Self {
        Builder {
            ctx,
            rules: Vec::new(),
            ruled: HashSet::new(),
            layer: 0,
            description: None,
            home_mode: HomeMode::Ephemeral,
            tmpfs_size: TmpfsLimits::DEFAULT_SIZE,
            checkpoint: None,
            checkpoint_keep: None,
            backend: Backend::Auto,
            copy_back: Vec::new(),
            runs_commands: Vec::new(),
            pass: BTreeSet::new(),
            set: BTreeMap::new(),
            dropped: BTreeSet::new(),
            net_mode: NetMode::On,
            net: NetRules::default(),
            localhost: Vec::new(),
            net_groups: None,
            listing: glob::Listing::for_user(ctx.uid),
        }
    }

    fn next_layer(&mut self) {
        self.layer += 1;
    }

    /// Adds a rule; it replaces the rules of earlier sources on the same path.
    fn push(&mut self, rule: PathRule) {
        let layer = self.layer;
        if !self.ruled.insert(rule.path.clone()) {
            self.rules
                .retain(|(l, r)| *l == layer || r.path != rule.path);
        }
        self.rules.push((layer, rule));
    }

    fn base_rules(&mut self, host: &HostFacts) {
        let ctx = self.ctx;
        let workspace = &ctx.workspace.root;
        let mut rules = vec![
            rule("/", Access::ReadOnly, false, "the system, read-only"),
            rule("/home", Access::Hidden, true, "other homes hidden"),
            rule("/root", Access::Hidden, true, "root's home hidden"),
            // Your files outside the home: projects and data in /srv, drives mounted under
            // /media and /mnt, your mail spool. The system's own folders stay readable.
            rule("/srv", Access::Hidden, true, "site data hidden (projects and data kept outside homes)"),
            rule("/media", Access::Hidden, true, "removable and mounted drives hidden"),
            rule("/mnt", Access::Hidden, true, "mounted drives hidden"),
            rule("/var/mail", Access::Hidden, true, "mail spools hidden"),
            rule(
                "/run",
                Access::Hidden,
                true,
                "runtime sockets hidden (ssh-agent, gpg-agent, D-Bus under /run/user)",
            ),
            rule("/tmp", Access::Tmpfs, false, "a private /tmp"),
            rule("/var/tmp", Access::Tmpfs, true, "a private /var/tmp"),
            rule(
                &ctx.home,
                Access::Tmpfs,
                false,
                "your home, recreated empty: nothing of it is visible",
            ),
            rule(workspace, Access::ReadWrite, false, "the workspace"),
            rule(
                workspace.join(".kennel.toml"),
                Access::ReadOnly,
                true,
                "the repository's kennel config: read-only, or the agent could unhide paths for its next run",
            ),
        ];
        for nix in NIXOS_RUN_PATHS {
            rules.push(rule(*nix, Access::ReadOnly, true, "NixOS system profile"));
        }
        if let Some(target) = &host.resolv_conf_target {
            rules.push(rule(target, Access::ReadOnly, true, "DNS configuration"));
        }
        if let Some(git) = &ctx.workspace.git {
            for dir in [&git.common_dir, &git.git_dir] {
                if !is_ancestor_or_same(workspace, dir) {
                    rules.push(rule(
                        dir,
                        Access::ReadWrite,
                        false,
                        "git directory of this worktree or submodule",
                    ));
                }
            }
        }
        for r in rules {
            self.push(r);
        }
    }

    fn apply(&mut self, layer: &Layer) -> Result<(), PolicyError> {
        self.next_layer();
        let ctx = self.ctx;
        let workspace = &ctx.workspace.root;
        if let Some(d) = &layer.description {
            self.description = Some(d.clone());
        }
        if let Some(h) = layer.home {
            self.home_mode = h;
        }
        if let Some(b) = layer.backend {
            self.backend = b;
        }
        if let Some(size) = layer.tmpfs_size {
            self.tmpfs_size = size;
        }
        if let Some(c) = layer.checkpoint {
            self.checkpoint = Some(c);
        }
        if let Some(keep) = layer.checkpoint_keep {
            self.checkpoint_keep = Some(keep);
        }
        for entry in &layer.paths {
            let targets = match &entry.spec {
                PathSpec::Workspace(rel) => glob::expand(workspace, rel, &mut self.listing)
                    .map_err(|e| {
                        entry.loc.error(format!(
                            "refusing to start: the {} pattern `{}` must hide every match, \
                             and {e}",
                            entry.access.describe(),
                            rel.display()
                        ))
                    })?,
                spec => vec![spec.expand(&ctx.home, workspace)],
            };
            for path in targets {
                let path = normalize(&path);
                let hidden = entry.access == Access::Hidden;
                if !hidden && is_ancestor_or_same(&path, &ctx.home) {
                    return Err(entry
                        .loc
                        .error(format!(
                            "{} would expose your whole home (SSH keys, credentials, shell rc files) to the command; name the folders it needs instead",
                            path.display()
                        ))
                        .into());
                }
                if !hidden && !entry.optional && fs::symlink_metadata(&path).is_err() {
                    let fix = if entry.loc.line == 0 {
                        "create it first"
                    } else {
                        "create it, or mark the entry optional: { path = \"...\", optional = true }"
                    };
                    return Err(entry
                        .loc
                        .error(format!("{} does not exist; {fix}", path.display()))
                        .into());
                }
                let reason = entry.why.clone().unwrap_or_else(|| {
                    match entry.access {
                        Access::Hidden => "hidden",
                        Access::ReadWrite if entry.create => {
                            "read-write (created empty when missing)"
                        }
                        _ => "named by this source",
                    }
                    .into()
                });
                let mut r = PathRule::new(
                    path,
                    entry.access,
                    entry.optional || hidden,
                    RuleOrigin {
                        source: format!("{} ({})", layer.label, entry.loc.label()),
                        reason,
                    },
                );
                if entry.create {
                    r.placeholder = Some(Placeholder::Dir);
                }
                self.push(r);
            }
        }
        if let Some(net) = &layer.network {
            if let Some(mode) = net.mode {
                self.net_mode = mode;
            }
            if !net.groups.is_empty() {
                let groups = match &self.net_groups {
                    Some(groups) => groups,
                    None => &*self.net_groups.insert(net_groups()?),
                };
                for g in &net.groups {
                    let rules = groups.get(&g.name).ok_or_else(|| {
                        g.loc.error(format!(
                            "unknown network group `{}`; known groups: {}",
                            g.name,
                            groups.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    self.net.allow.extend(rules.iter().cloned());
                }
            }
            self.net.allow.extend(net.allow.iter().cloned());
            self.net.deny.extend(net.deny.iter().cloned());
            self.localhost.extend(&net.localhost);
        }
        for (spec, loc) in &layer.copy_back {
            let path = spec.expand(&ctx.home, workspace);
            self.copy_back.retain(|c| c.path != path);
            self.copy_back.push(CopyBack {
                path,
                origin: RuleOrigin {
                    source: format!("{} ({})", layer.label, loc.label()),
                    reason: "replaced by rename: copied in at start, back at exit".into(),
                },
            });
        }
        for (spec, keys, loc) in &layer.runs_commands {
            let path = spec.expand(&ctx.home, workspace);
            self.runs_commands.retain(|r| r.path != path);
            self.runs_commands.push(RunsCommands {
                path,
                keys: keys.clone(),
                origin: RuleOrigin {
                    source: format!("{} ({})", layer.label, loc.label()),
                    reason: "runs commands when the agent is started outside kennel: compared \
                             at exit"
                        .into(),
                },
            });
        }
        for n in &layer.env_pass {
            self.dropped.remove(&n.name);
            self.pass.insert(n.name.clone());
        }
        for (n, value) in &layer.env_set {
            self.dropped.remove(&n.name);
            self.set.insert(n.name.clone(), value.clone());
        }
        for n in &layer.env_drop {
            self.pass.remove(&n.name);
            self.set.remove(&n.name);
            self.dropped.insert(n.name.clone());
        }
        Ok(())
    }

    /// Gives each folder between the workspace root and a hidden path inside it a rule of
    /// its own (read-write, as it was), so that it is a mount point inside: a mount point
    /// cannot be renamed or removed. Without it the sandbox renames `conf` (holding a hidden
    /// `conf/.env`) to `conf2`, the hidden file goes along, and the next session, hiding
    /// `conf/.env`, shows `conf2/.env` (issue 17, item 9's class).
    fn pin_folders_of_hidden_paths(&mut self) {
        let root = &self.ctx.workspace.root;
        let writable = |rules: &[(usize, PathRule)]| {
            let mut at_root = rules.iter().filter(|(_, r)| r.path == *root).peekable();
            at_root.peek().is_some() && at_root.all(|(_, r)| r.access == Access::ReadWrite)
        };
        if !writable(&self.rules) {
            return;
        }
        let hidden: Vec<PathBuf> = self
            .rules
            .iter()
            .filter(|(_, r)| r.access == Access::Hidden && r.path.starts_with(root))
            .map(|(_, r)| r.path.clone())
            .collect();
        let mut pins = Vec::new();
        for path in hidden {
            let folders: Vec<&Path> = path
                .ancestors()
                .skip(1)
                .take_while(|a| *a != root.as_path())
                .collect();
            // Only where the workspace's own read-write rule decides for them all.
            if folders.iter().any(|f| self.ruled.contains(*f)) {
                continue;
            }
            for folder in folders {
                let real_dir = fs::symlink_metadata(folder).is_ok_and(|m| m.is_dir());
                if real_dir && !pins.iter().any(|p: &PathBuf| p == folder) {
                    pins.push(folder.to_path_buf());
                }
            }
        }
        for folder in pins {
            self.push(PathRule::new(
                folder,
                Access::ReadWrite,
                true,
                RuleOrigin {
                    source: "built-in".into(),
                    reason: "holds a hidden path: a mount of its own, so that it cannot be \
                             renamed away with what it hides"
                        .into(),
                },
            ));
        }
    }

    fn finish(mut self, profile: String, command: Vec<OsString>) -> Policy {
        self.pin_folders_of_hidden_paths();
        let ctx = self.ctx;
        self.localhost.sort_unstable();
        self.localhost.dedup();
        let network = match self.net_mode {
            NetMode::On => Network::On,
            NetMode::Off => Network::Off,
            NetMode::AllowList => Network::AllowList(std::mem::take(&mut self.net)),
        };
        let command = if command.is_empty() {
            let shell = ctx.var("SHELL").unwrap_or("/bin/sh");
            vec![OsString::from(shell)]
        } else {
            command
        };
        // A file copied back lives in the sandbox's own home, not in a bound path.
        let copy_back = self
            .copy_back
            .into_iter()
            .filter(|c| {
                self.rules
                    .iter()
                    .filter(|(_, r)| c.path.starts_with(&r.path))
                    .max_by_key(|(_, r)| r.path.components().count())
                    .is_some_and(|(_, r)| r.path == ctx.home && r.access == Access::Tmpfs)
            })
            .collect();
        let mut env = environment(ctx, &self.pass, &self.set, &self.dropped);
        // What shows, inside, that this is kennel's sandbox and which profile: for a shell's
        // prompt (`${KENNEL_SANDBOX:+[kennel:$KENNEL_SANDBOX] }`). Nothing of kennel trusts
        // it (shims look for a file only the sandbox's own /run can hold).
        env.retain(|v| v.name != "KENNEL_SANDBOX");
        env.push(EnvVar {
            name: "KENNEL_SANDBOX".into(),
            value: profile.clone().into(),
        });
        env.sort_by(|a, b| a.name.cmp(&b.name));
        let mut policy = Policy {
            profile,
            workspace: ctx.workspace.root.clone(),
            cwd: ctx.cwd.clone(),
            home: ctx.home.clone(),
            uid: ctx.uid,
            gid: ctx.gid,
            paths: self.rules.into_iter().map(|(_, r)| r).collect(),
            env,
            network,
            localhost_ports: self.localhost,
            command,
            backend: self.backend,
            home_mode: self.home_mode,
            tmpfs: TmpfsLimits::of_size(self.tmpfs_size),
            checkpoint: self.checkpoint,
            checkpoint_keep: self.checkpoint_keep,
            env_pass: self.pass.into_iter().collect(),
            copy_back,
            runs_commands: self.runs_commands,
            home_source: None,
            terminal: Terminal::auto(ctx.stdin_is_tty, ctx.stdout_is_tty),
        };
        policy.normalize_rules();
        policy
    }
}

fn environment(
    ctx: &Context,
    pass: &BTreeSet<String>,
    set: &BTreeMap<String, String>,
    dropped: &BTreeSet<String>,
) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = ctx
        .env
        .iter()
        .filter_map(|(k, v)| {
            let name = k.to_str()?;
            let allowed = (env_allowed(name) || pass.contains(name)) && !dropped.contains(name);
            allowed.then(|| EnvVar {
                name: name.to_string(),
                value: v.clone(),
            })
        })
        .collect();
    env.retain(|v| !set.contains_key(&v.name) && v.name != "HOME");
    for (name, value) in set {
        env.push(EnvVar {
            name: name.clone(),
            value: value.into(),
        });
    }
    env.push(EnvVar {
        name: "HOME".into(),
        value: ctx.home.clone().into_os_string(),
    });
    if !env.iter().any(|v| v.name == "PATH") {
        env.push(EnvVar {
            name: "PATH".into(),
            value: "/usr/local/bin:/usr/bin:/bin".into(),
        });
    }
    env.sort_by(|a, b| a.name.cmp(&b.name));
    env.dedup_by(|a, b| a.name == b.name);
    env
}

/// `/etc/resolv.conf` often links into `/run` (systemd-resolved, NetworkManager), which is
/// hidden: its target must stay readable for DNS to work.
pub fn resolv_conf_target() -> Option<PathBuf> {
    let link = Path::new("/etc/resolv.conf");
    fs::symlink_metadata(link)
        .ok()?
        .file_type()
        .is_symlink()
        .then_some(())?;
    let target = fs::canonicalize(link).ok()?;
    target.starts_with("/run").then_some(target)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builtin_network_groups_are_valid() {
        // Parsed only when a layer names a group; checked here once for all.
        assert!(!super::net_groups().unwrap().is_empty());
    }

    use super::*;
    use crate::context::{GitDirs, Workspace};

    fn ctx(home: &str, workspace: &str) -> Context {
        Context {
            cwd: workspace.into(),
            home: home.into(),
            uid: 1000,
            gid: 1000,
            workspace: Workspace {
                root: workspace.into(),
                git: None,
            },
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("SSH_AUTH_SOCK".into(), "/run/user/1000/ssh".into()),
                ("GITHUB_TOKEN".into(), "ghp_x".into()),
                ("LC_ALL".into(), "C.UTF-8".into()),
                ("HOME".into(), "/elsewhere".into()),
            ],
            stdin_is_tty: false,
            stdout_is_tty: false,
        }
    }

    fn access(p: &Policy, path: &str) -> Option<Access> {
        p.rule_for(Path::new(path)).map(|r| r.access)
    }

    #[test]
    fn refuses_a_workspace_that_the_sandbox_replaces() {
        for ws in ["/tmp", "/var/tmp", "/run", "/srv"] {
            let err = check_workspace(Path::new(ws), Path::new("/home/u")).err();
            assert!(
                matches!(err, Some(PolicyError::WorkspaceIsPrivate { .. })),
                "{ws}: {err:?}"
            );
        }
        for ws in ["/tmp/work", "/srv/project", "/var"] {
            assert!(
                check_workspace(Path::new(ws), Path::new("/home/u")).is_ok(),
                "{ws}"
            );
        }
    }

    #[test]
    fn refuses_home_above_home_and_root() {
        for ws in ["/home/u", "/home", "/"] {
            let err = resolve_default(&ctx("/home/u", ws), vec![]).err();
            assert!(
                matches!(err, Some(PolicyError::WorkspaceExposesHome { .. })),
                "{ws} must be refused"
            );
        }
    }

    #[test]
    fn sibling_of_home_with_common_prefix_is_not_refused() {
        // `/home/user2` starts with the string `/home/u`, not with the path.
        assert!(resolve_default(&ctx("/home/u", "/home/u2"), vec![]).is_ok());
    }

    #[test]
    fn default_view() -> Result<(), PolicyError> {
        let p = resolve_default(&ctx("/home/u", "/home/u/src/p"), vec!["true".into()])?;
        assert_eq!(access(&p, "/usr/bin"), Some(Access::ReadOnly));
        assert_eq!(access(&p, "/etc/passwd"), Some(Access::ReadOnly));
        assert_eq!(access(&p, "/home/u/.ssh/id_ed25519"), Some(Access::Tmpfs));
        assert_eq!(access(&p, "/home/u/src/p/main.rs"), Some(Access::ReadWrite));
        assert_eq!(access(&p, "/home/u/src/other"), Some(Access::Tmpfs));
        assert_eq!(access(&p, "/home/other"), Some(Access::Hidden));
        assert_eq!(access(&p, "/run/user/1000/ssh"), Some(Access::Hidden));
        assert_eq!(access(&p, "/tmp/x"), Some(Access::Tmpfs));
        assert_eq!(access(&p, "/home/u/.gitconfig"), Some(Access::ReadOnly));
        Ok(())
    }

    #[test]
    fn environment_is_an_allow_list() -> Result<(), PolicyError> {
        let p = resolve_default(&ctx("/home/u", "/home/u/p"), vec![])?;
        let names: Vec<&str> = p.env.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["HOME", "KENNEL_SANDBOX", "LC_ALL", "PATH"]);
        assert_eq!(p.env_value("HOME"), Some(&OsString::from("/home/u")));
        assert_eq!(
            p.env_value("KENNEL_SANDBOX"),
            Some(&OsString::from("default"))
        );
        Ok(())
    }

    #[test]
    fn worktree_git_dirs_are_writable() -> Result<(), PolicyError> {
        let mut c = ctx("/home/u", "/home/u/wt");
        c.workspace.git = Some(GitDirs {
            git_dir: "/home/u/main/.git/worktrees/wt".into(),
            common_dir: "/home/u/main/.git".into(),
        });
        let p = resolve_default(&c, vec![])?;
        assert_eq!(
            access(&p, "/home/u/main/.git/objects"),
            Some(Access::ReadWrite)
        );
        assert_eq!(access(&p, "/home/u/main/src"), Some(Access::Tmpfs));
        Ok(())
    }

    #[test]
    fn no_command_means_the_users_shell() -> Result<(), PolicyError> {
        let mut c = ctx("/home/u", "/home/u/p");
        c.env.push(("SHELL".into(), "/bin/bash".into()));
        let p = resolve_default(&c, vec![])?;
        assert_eq!(p.command, vec![OsString::from("/bin/bash")]);
        Ok(())
    }

    #[test]
    fn a_terminal_on_stdin_and_stdout_gets_a_pseudo_terminal() -> Result<(), PolicyError> {
        let mut c = ctx("/home/u", "/home/u/p");
        assert_eq!(resolve_default(&c, vec![])?.terminal, Terminal::Streams);
        c.stdin_is_tty = true;
        assert_eq!(resolve_default(&c, vec![])?.terminal, Terminal::Streams);
        c.stdout_is_tty = true;
        assert_eq!(resolve_default(&c, vec![])?.terminal, Terminal::Pty);
        Ok(())
    }
}
