//! The TOML schema of profiles and configuration files, as written: parsed and validated
//! for shape (unknown keys, wrong types) here, resolved against a home and a workspace in
//! [`crate::profile`].

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::source::{ConfigError, SourceFile};

/// The only schema version so far; files say `version = 1`.
pub const SCHEMA_VERSION: i64 = 1;

/// A path as written: a string, or a table with options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPath {
    pub path: String,
    /// A missing path is skipped instead of being an error.
    pub optional: bool,
    /// A missing directory is created empty first, so that what the agent writes there is
    /// kept (its settings and login on the first run).
    pub create: bool,
    /// Shown by `kennel explain`.
    pub why: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPathTable {
    path: String,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    create: bool,
    why: Option<String>,
}

impl<'de> Deserialize<'de> for RawPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPath;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a path string or a table { path = \"...\", optional = true, create = true }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPath, E> {
                Ok(RawPath {
                    path: v.to_string(),
                    optional: false,
                    create: false,
                    why: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPath, A::Error> {
                let t = RawPathTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawPath {
                    path: t.path,
                    optional: t.optional,
                    create: t.create,
                    why: t.why,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawHome {
    Ephemeral,
    Persistent,
}

/// A size: a number of bytes, or a string with a binary suffix (`"512M"`, `"2G"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawBackend {
    Auto,
    Native,
    Landlock,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawNetMode {
    On,
    Off,
    AllowList,
}

/// `network = "MODE"`, or a `[network]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mode: Option<RawNetMode>,
    /// Hosts the allow-list proxy lets through: `host`, `*.suffix`, an address; `:port`.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Hosts refused even when allowed.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Named groups of hosts (see `profiles/network.toml`), e.g. "github", "npm".
    #[serde(default)]
    pub groups: Vec<String>,
    /// Host loopback ports reachable inside.
    #[serde(default)]
    pub localhost: Vec<u16>,
}

impl<'de> Deserialize<'de> for Wrapped<RawNetwork> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Wrapped<RawNetwork>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "\"on\", \"off\", \"allow-list\", or a table { mode = \"...\", allow = [...], deny = [...], groups = [...], localhost = [...] }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let mode = RawNetMode::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(Wrapped(RawNetwork {
                    mode: Some(mode),
                    ..RawNetwork::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawNetwork::deserialize(de::value::MapAccessDeserializer::new(map)).map(Wrapped)
            }
        }
        d.deserialize_any(V)
    }
}

/// `runs-commands = [{ path = "~/.claude.json", keys = ["mcpServers"] }]`: a file, and the
/// settings in it that run commands (all of it when no key is named). A key is a dotted
/// path of a JSON or TOML file's tables; `*` stands for any one name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRunsCommands {
    pub path: String,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// A value with a hand-written `Deserialize` accepting more than one shape.
#[derive(Debug, Default)]
pub struct Wrapped<T>(pub T);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    /// Variables passed from the caller when set.
    #[serde(default)]
    pub pass: Vec<Spanned<String>>,
    /// Variables set to a value.
    #[serde(default)]
    pub set: BTreeMap<String, Spanned<String>>,
    /// Variables removed, whoever passed them.
    #[serde(default)]
    pub drop: Vec<Spanned<String>>,
}

/// What a profile, the `[defaults]` of the user's config, a `[profile.NAME]` table, a cache
/// group, the command line or a repository's `.kennel.toml` may say. Each source allows a
/// subset (checked where it is read).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLayer {
    pub version: Option<Spanned<i64>>,
    pub description: Option<Spanned<String>>,
    /// The program that `kennel NAME` runs.
    pub program: Option<Spanned<String>>,
    pub extends: Option<Spanned<String>>,
    /// Toolchain cache groups to include (see `profiles/caches.toml`).
    pub caches: Option<Spanned<Vec<Spanned<String>>>>,
    pub home: Option<Spanned<RawHome>>,
    pub backend: Option<Spanned<RawBackend>>,
    /// The size of each writable tmpfs of the sandbox (`/tmp`, `/var/tmp`, `/dev/shm`...).
    pub tmpfs_size: Option<Spanned<RawSize>>,
    /// A checkpoint of the workspace at the start of each session (`kennel undo`).
    pub checkpoint: Option<Spanned<bool>>,
    /// How many sessions' checkpoints are kept per repository.
    pub checkpoint_keep: Option<Spanned<i64>>,
    pub read_write: Option<Spanned<Vec<Spanned<RawPath>>>>,
    pub read_only: Option<Spanned<Vec<Spanned<RawPath>>>>,
    pub hidden: Option<Spanned<Vec<Spanned<RawPath>>>>,
    /// Files an agent replaces by rename (write a temporary file, rename it over): binding
    /// the file itself would break that, so it is copied into the sandbox's home at start and
    /// copied back at exit when it changed.
    pub copy_back: Option<Spanned<Vec<Spanned<String>>>>,
    /// Files of the agent's (writable inside) whose settings run commands when the agent is
    /// started outside kennel (hooks, MCP servers): compared at exit, a change is named.
    pub runs_commands: Option<Spanned<Vec<Spanned<RawRunsCommands>>>>,
    pub env: Option<RawEnv>,
    /// The network mode, or a `[network]` table.
    pub network: Option<Spanned<Wrapped<RawNetwork>>>,
}

/// The user's `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: Option<Spanned<i64>>,
    /// Applies to every profile.
    pub defaults: Option<RawLayer>,
    /// Changes to built-in profiles, and new profiles.
    #[serde(default)]
    pub profile: BTreeMap<Spanned<String>, RawLayer>,
}

/// `profiles/caches.toml`: named groups of toolchain caches.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaches {
    pub version: Option<Spanned<i64>>,
    #[serde(default)]
    pub cache: BTreeMap<String, RawLayer>,
}

/// Parses TOML into `T`, turning toml's errors into one line with file, line and column.
pub fn parse<T: for<'de> Deserialize<'de>>(src: &SourceFile) -> Result<T, ConfigError> {
    toml::from_str(&src.text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        src.error(e.span(), message)
    })
}

/// Checks `version`: required at the top of a file, 1 for now.
pub fn check_version(src: &SourceFile, version: &Option<Spanned<i64>>) -> Result<(), ConfigError> {
    match version {
        None => Err(src.error(
            Some(0..0),
            format!("missing `version = {SCHEMA_VERSION}` at the top of the file"),
        )),
        Some(v) if *v.get_ref() == SCHEMA_VERSION => Ok(()),
        Some(v) => Err(src.error(
            Some(v.span()),
            format!(
                "unsupported version {}; this kennel reads version {SCHEMA_VERSION}",
                v.get_ref()
            ),
        )),
    }
}

/// `profiles/network.toml`: named groups of hosts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetGroups {
    pub version: Option<Spanned<i64>>,
    #[serde(default)]
    pub group: BTreeMap<String, RawNetwork>,
}
