//! The resolved policy: the contract between the front end and every backend.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

pub use crate::network::Network;
use crate::paths::depth;

/// What the sandboxed command may do with a path (and everything below it, unless a
/// deeper rule says otherwise).
///
/// Precedence: the most specific (deepest) path wins; for rules on the same path,
/// `Hidden` beats `Tmpfs` beats `ReadWrite` beats `ReadOnly` (the derived order, highest last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Visible, not writable.
    ReadOnly,
    /// Visible and writable: the real files, changes persist.
    ReadWrite,
    /// A fresh, empty, writable directory; whatever is written vanishes with the sandbox.
    Tmpfs,
    /// Absent: an empty read-only directory (or empty file) stands in its place.
    Hidden,
}

impl Access {
    pub fn describe(self) -> &'static str {
        match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
            Access::Tmpfs => "fresh empty (ephemeral)",
            Access::Hidden => "hidden",
        }
    }
}

/// Why a rule exists: shown by `kennel explain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleOrigin {
    /// Where it came from: "built-in", a profile name, a config file.
    pub source: String,
    /// Why, in a few words.
    pub reason: String,
}

impl RuleOrigin {
    pub fn builtin(reason: &str) -> Self {
        RuleOrigin {
            source: "built-in".into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathRule {
    /// Absolute and normalized.
    pub path: PathBuf,
    pub access: Access,
    /// A missing path is skipped when optional, an error otherwise.
    pub optional: bool,
    /// When the path is missing, create an empty one of this kind first, so that it can be
    /// protected: a read-only `.git/hooks` must exist, or the agent could create it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
    pub origin: RuleOrigin,
}

impl PathRule {
    pub fn new(
        path: impl Into<PathBuf>,
        access: Access,
        optional: bool,
        origin: RuleOrigin,
    ) -> Self {
        PathRule {
            path: crate::paths::normalize(&path.into()),
            access,
            optional,
            placeholder: None,
            origin,
        }
    }
}

impl PathRule {
    /// The reason, with a note when a missing directory is created first.
    pub fn reason_text(&self) -> String {
        match self.placeholder {
            Some(Placeholder::Dir) if !self.origin.reason.contains("created") => {
                format!("{}; created empty when missing", self.origin.reason)
            }
            _ => self.origin.reason.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placeholder {
    Dir,
    File,
}

/// One variable of the sandbox's environment. Its value is never printed or serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(skip)]
    pub value: OsString,
}

/// Which backend builds the sandbox. A new backend is one more variant here (and in the
/// config's `backend` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// `native` where unprivileged user namespaces are allowed, else `landlock`.
    #[default]
    Auto,
    /// User, mount, PID and IPC namespaces with a fresh root, plus Landlock and seccomp.
    Native,
    /// Landlock, seccomp and no_new_privs without namespaces.
    Landlock,
    /// A transient unit of the user's systemd manager (`systemd-run --user`).
    Systemd,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Native => "native",
            Backend::Landlock => "landlock",
            Backend::Systemd => "systemd",
        }
    }
}

/// How the command meets the user's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Terminal {
    /// A pseudo-terminal of the sandbox's own becomes the command's controlling terminal;
    /// kennel relays bytes, window size changes and hang-ups between it and the user's
    /// terminal. Keystrokes injected into it (TIOCSTI) stay inside the sandbox.
    Pty,
    /// The standard streams pass through unchanged (byte for byte), and the command runs in
    /// a new session without a controlling terminal: there is no terminal it could inject into.
    Streams,
}

impl Terminal {
    /// The automatic choice: a pseudo-terminal exactly when standard input and output are
    /// both terminals (someone at the keyboard, reading the screen). Output redirected to a
    /// file or a pipe is passed through as it is written: a terminal would turn its
    /// newlines into CR LF.
    pub fn auto(stdin_is_tty: bool, stdout_is_tty: bool) -> Terminal {
        if stdin_is_tty && stdout_is_tty {
            Terminal::Pty
        } else {
            Terminal::Streams
        }
    }
}

/// What the sandbox's home is, beyond the paths that rules bind into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HomeMode {
    /// Fresh for each run; what was written there is listed at exit, then removed.
    #[default]
    Ephemeral,
    /// Kept per workspace under `$XDG_STATE_HOME/kennel/homes/`.
    Persistent,
}

/// The bounds of each writable tmpfs of the sandbox (`/tmp`, `/var/tmp`, `/dev/shm`, a
/// fresh home): without them each may take half the host's RAM, in pages the OOM killer
/// cannot reclaim (issue 17, item 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TmpfsLimits {
    /// Bytes (`tmpfs-size`).
    pub size: u64,
    /// Files and folders: one per 8 KiB of `size`, so that a flood of empty files cannot
    /// take kernel memory the size does not count.
    pub inodes: u64,
}

impl TmpfsLimits {
    /// 1 GiB each by default.
    pub const DEFAULT_SIZE: u64 = 1 << 30;

    pub fn of_size(size: u64) -> TmpfsLimits {
        TmpfsLimits {
            size,
            inodes: (size / 8192).max(1024),
        }
    }

    /// The tmpfs mount options, after `mode=`.
    pub fn mount_options(&self) -> String {
        format!("size={},nr_inodes={}", self.size, self.inodes)
    }
}

impl Default for TmpfsLimits {
    fn default() -> Self {
        TmpfsLimits::of_size(TmpfsLimits::DEFAULT_SIZE)
    }
}

/// A size in bytes as people read it: `1 GiB`, `512 MiB`, `1536 KiB`.
pub fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// A file in the home that an agent replaces by rename: it is copied into the sandbox's home
/// before the start and copied back at exit when it changed (binding the file itself would
/// make the rename fail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyBack {
    pub path: PathBuf,
    pub origin: RuleOrigin,
}

/// A file of the agent's whose settings run commands when the agent is started outside
/// kennel (`runs-commands`): the sandbox can write it, so kennel compares those settings at
/// exit and names a change.
#[derive(Debug, Clone, Serialize)]
pub struct RunsCommands {
    pub path: PathBuf,
    /// Dotted paths of the settings (`*` for any one name); empty: the whole file.
    pub keys: Vec<String>,
    pub origin: RuleOrigin,
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub profile: String,
    pub workspace: PathBuf,
    /// Where the command starts (the caller's directory).
    pub cwd: PathBuf,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// Ordered shallow to deep, then by precedence: applying them in order gives the view.
    pub paths: Vec<PathRule>,
    /// The whole environment of the command: nothing else passes.
    pub env: Vec<EnvVar>,
    pub network: Network,
    pub terminal: Terminal,
    /// Host loopback ports reachable inside, whatever the mode (a relay per port).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub localhost_ports: Vec<u16>,
    #[serde(serialize_with = "lossy_args")]
    pub command: Vec<OsString>,
    pub backend: Backend,
    pub home_mode: HomeMode,
    pub tmpfs: TmpfsLimits,
    /// `checkpoint` of the config or the profile; unset, agent profiles take one and the
    /// `default` profile does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// `checkpoint-keep`: sessions kept per repository (kennel's default when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_keep: Option<usize>,
    /// Names of the variables the profile passes when the caller has them (values never).
    pub env_pass: Vec<String>,
    pub copy_back: Vec<CopyBack>,
    pub runs_commands: Vec<RunsCommands>,
    /// A host directory bound as the home instead of the home's fresh tmpfs, so that what is
    /// written there can be listed at exit (or kept, with [`HomeMode::Persistent`]). Set by
    /// the caller after resolution; `None` means a plain tmpfs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_source: Option<PathBuf>,
}

fn lossy_args<S: Serializer>(args: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(args.iter().map(|a| a.to_string_lossy()))
}

impl Policy {
    /// A policy of exactly `paths` for a user with `home` working in `workspace`, with
    /// nothing else: an empty environment, the host network, no terminal, the command
    /// `true`. For tests and tools that build a policy by hand; kennel itself resolves
    /// one from profiles ([`crate::resolve`]).
    pub fn with_rules(workspace: &Path, home: &Path, paths: Vec<PathRule>) -> Policy {
        let mut p = Policy {
            profile: "custom".into(),
            workspace: workspace.to_path_buf(),
            cwd: workspace.to_path_buf(),
            home: home.to_path_buf(),
            uid: 1000,
            gid: 1000,
            paths,
            env: vec![],
            network: Network::On,
            terminal: Terminal::Streams,
            localhost_ports: vec![],
            command: vec!["true".into()],
            backend: Backend::Auto,
            home_mode: HomeMode::Ephemeral,
            tmpfs: TmpfsLimits::default(),
            checkpoint: None,
            checkpoint_keep: None,
            env_pass: vec![],
            copy_back: vec![],
            runs_commands: vec![],
            home_source: None,
        };
        p.normalize_rules();
        p
    }

    /// Puts rules in application order and drops those that a rule on the same path
    /// overrides (see [`Access`] for the precedence).
    pub fn normalize_rules(&mut self) {
        // Depth first, then path, then the strongest access first. The keys are computed once
        // per rule (counting components in every comparison was a visible part of start-up);
        // like a stable sort, equal keys keep their order.
        self.paths
            .sort_by_cached_key(|r| (depth(&r.path), r.path.clone(), std::cmp::Reverse(r.access)));
        // After sorting, the first rule of each path is the strongest.
        self.paths.dedup_by(|later, first| later.path == first.path);
    }

    /// The rule that decides what the command can do with `path`: the deepest rule on
    /// `path` or one of its parents.
    pub fn rule_for(&self, path: &Path) -> Option<&PathRule> {
        self.paths
            .iter()
            .filter(|r| path.starts_with(&r.path))
            .max_by_key(|r| depth(&r.path))
    }

    pub fn env_value(&self, name: &str) -> Option<&OsString> {
        self.env.iter().find(|v| v.name == name).map(|v| &v.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, access: Access) -> PathRule {
        PathRule::new(path, access, false, RuleOrigin::builtin("test"))
    }

    fn policy(paths: Vec<PathRule>) -> Policy {
        let p = Policy::with_rules(Path::new("/w"), Path::new("/home/u"), paths);
        p
    }

    #[test]
    fn most_specific_path_wins() {
        let p = policy(vec![
            rule("/home", Access::Hidden),
            rule("/home/u/proj", Access::ReadWrite),
        ]);
        let r = p.rule_for(Path::new("/home/u/proj/src/a.rs"));
        assert_eq!(r.map(|r| r.access), Some(Access::ReadWrite));
        let r = p.rule_for(Path::new("/home/u/.ssh"));
        assert_eq!(r.map(|r| r.access), Some(Access::Hidden));
    }

    #[test]
    fn at_equal_depth_hidden_beats_read_write_beats_read_only() {
        let p = policy(vec![
            rule("/x", Access::ReadOnly),
            rule("/x", Access::ReadWrite),
            rule("/y", Access::ReadWrite),
            rule("/y", Access::Hidden),
            rule("/z", Access::ReadOnly),
            rule("/z", Access::Tmpfs),
        ]);
        let access = |s: &str| p.rule_for(Path::new(s)).map(|r| r.access);
        assert_eq!(access("/x"), Some(Access::ReadWrite));
        assert_eq!(access("/y"), Some(Access::Hidden));
        assert_eq!(access("/z"), Some(Access::Tmpfs));
        assert_eq!(p.paths.len(), 3, "overridden rules are dropped");
    }

    #[test]
    fn rules_apply_shallow_to_deep() {
        let p = policy(vec![
            rule("/a/b/c", Access::ReadWrite),
            rule("/", Access::ReadOnly),
            rule("/a", Access::Hidden),
        ]);
        let order: Vec<_> = p.paths.iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            order,
            vec![PathBuf::from("/"), "/a".into(), "/a/b/c".into()]
        );
    }

    #[test]
    fn a_terminal_on_stdin_and_stdout_means_a_pseudo_terminal() {
        assert_eq!(Terminal::auto(true, true), Terminal::Pty);
        assert_eq!(Terminal::auto(true, false), Terminal::Streams);
        assert_eq!(Terminal::auto(false, true), Terminal::Streams);
        assert_eq!(Terminal::auto(false, false), Terminal::Streams);
    }

    #[test]
    fn env_values_are_never_serialized() -> Result<(), serde_json::Error> {
        let mut p = policy(vec![]);
        p.env.push(EnvVar {
            name: "OPENAI_API_KEY".into(),
            value: "sk-secret".into(),
        });
        let json = serde_json::to_string(&p)?;
        assert!(json.contains("OPENAI_API_KEY"));
        assert!(!json.contains("sk-secret"));
        Ok(())
    }
}
