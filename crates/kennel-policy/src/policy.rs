//! The resolved policy: the contract between the front end and every backend.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

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
    pub origin: RuleOrigin,
}

/// One variable of the sandbox's environment. Its value is never printed or serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(skip)]
    pub value: OsString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The host's network, shared.
    On,
    /// A network namespace with only loopback.
    Off,
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
    /// The automatic choice: a pseudo-terminal exactly when standard input is a terminal.
    pub fn for_stdin(stdin_is_tty: bool) -> Terminal {
        if stdin_is_tty {
            Terminal::Pty
        } else {
            Terminal::Streams
        }
    }
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
    #[serde(serialize_with = "lossy_args")]
    pub command: Vec<OsString>,
}

fn lossy_args<S: Serializer>(args: &[OsString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(args.iter().map(|a| a.to_string_lossy()))
}

impl Policy {
    /// Puts rules in application order and drops those that a rule on the same path
    /// overrides (see [`Access`] for the precedence).
    pub fn normalize_rules(&mut self) {
        self.paths.sort_by(|a, b| {
            depth(&a.path)
                .cmp(&depth(&b.path))
                .then_with(|| a.path.cmp(&b.path))
                .then_with(|| b.access.cmp(&a.access))
        });
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
        PathRule {
            path: path.into(),
            access,
            optional: false,
            origin: RuleOrigin::builtin("test"),
        }
    }

    fn policy(paths: Vec<PathRule>) -> Policy {
        let mut p = Policy {
            profile: "test".into(),
            workspace: "/w".into(),
            cwd: "/w".into(),
            home: "/home/u".into(),
            uid: 1000,
            gid: 1000,
            paths,
            env: vec![],
            network: Network::On,
            terminal: Terminal::Streams,
            command: vec![],
        };
        p.normalize_rules();
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
    fn a_terminal_on_stdin_means_a_pseudo_terminal() {
        assert_eq!(Terminal::for_stdin(true), Terminal::Pty);
        assert_eq!(Terminal::for_stdin(false), Terminal::Streams);
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
