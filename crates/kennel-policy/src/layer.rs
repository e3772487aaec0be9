//! Raw TOML -> validated layers: paths parsed into [`PathSpec`], each entry with its place
//! in its file, and what a source may not say refused there (a repository's `.kennel.toml`
//! may only narrow).

use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use crate::network::{HostRule, NetMode};
use crate::policy::{Access, Backend, HomeMode};
use crate::raw::{RawBackend, RawHome, RawLayer, RawNetMode, RawPath, RawSize};
use crate::source::{ConfigError, SourceFile};

/// A path as the user means it, parsed at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSpec {
    Absolute(PathBuf),
    /// `~/REL` (`~` alone is the empty path).
    Home(PathBuf),
    /// Relative to the workspace root; only a repository's `.kennel.toml` writes these. May
    /// hold `*` and `?` wildcards (see [`crate::glob`]).
    Workspace(PathBuf),
}

impl PathSpec {
    pub fn expand(&self, home: &Path, workspace: &Path) -> PathBuf {
        crate::paths::normalize(&match self {
            PathSpec::Absolute(p) => p.clone(),
            PathSpec::Home(rel) => home.join(rel),
            PathSpec::Workspace(rel) => workspace.join(rel),
        })
    }
}

/// Where an entry was written: the file and its line and column, for errors and `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Loc {
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }

    pub fn label(&self) -> String {
        if self.line == 0 {
            return self.file.clone();
        }
        format!("{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone)]
pub struct PathEntry {
    pub spec: PathSpec,
    pub access: Access,
    pub optional: bool,
    pub create: bool,
    pub why: Option<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub loc: Loc,
}

/// One validated source of rules.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// How `explain` names the source: "profile claude", "config", ".kennel.toml".
    pub label: String,
    pub description: Option<String>,
    pub program: Option<String>,
    pub extends: Option<Named>,
    pub caches: Vec<Named>,
    pub home: Option<HomeMode>,
    pub backend: Option<Backend>,
    /// Bytes, validated (see [`crate::policy::TmpfsLimits`]).
    pub tmpfs_size: Option<u64>,
    pub checkpoint: Option<bool>,
    pub checkpoint_keep: Option<usize>,
    pub paths: Vec<PathEntry>,
    pub copy_back: Vec<(PathSpec, Loc)>,
    /// Files whose settings run commands outside (`runs-commands`), with their keys.
    pub runs_commands: Vec<(PathSpec, Vec<String>, Loc)>,
    pub env_pass: Vec<Named>,
    pub env_set: Vec<(Named, String)>,
    pub env_drop: Vec<Named>,
    pub network: Option<NetLayer>,
}

/// What one source says about the network.
#[derive(Debug, Clone, Default)]
pub struct NetLayer {
    pub mode: Option<NetMode>,
    pub allow: Vec<HostRule>,
    pub deny: Vec<HostRule>,
    pub groups: Vec<Named>,
    pub localhost: Vec<u16>,
}

/// Which source a layer comes from decides what it may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// A built-in profile file.
    Builtin,
    /// A cache group of `profiles/caches.toml`.
    Cache,
    /// `[defaults]` of the user's config.
    UserDefaults,
    /// `[profile.NAME]` of the user's config.
    UserProfile,
    /// A repository's `.kennel.toml`: may only narrow.
    Repo,
}

struct Ctx<'a> {
    src: &'a SourceFile,
    kind: LayerKind,
}

impl Ctx<'_> {
    fn loc(&self, span: std::ops::Range<usize>) -> Loc {
        let (line, column) = self.src.line_col(span.start);
        Loc {
            file: self.src.name.clone(),
            line,
            column,
        }
    }

    fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(self.src.error(Some(span), message))
    }

    fn named(&self, s: &Spanned<String>) -> Named {
        Named {
            name: s.get_ref().clone(),
            loc: self.loc(s.span()),
        }
    }

    /// Refuses a key that this kind of source may not use.
    fn refuse<T>(
        &self,
        key: &str,
        value: &Option<Spanned<T>>,
        why: &str,
    ) -> Result<(), ConfigError> {
        match value {
            Some(v) => self.err(v.span(), format!("`{key}` {why}")),
            None => Ok(()),
        }
    }

    fn path(&self, raw: &Spanned<RawPath>, access: Access) -> Result<PathEntry, ConfigError> {
        let r = raw.get_ref();
        let spec = self.spec(&r.path, raw.span())?;
        if matches!(spec, PathSpec::Workspace(_)) && access != Access::Hidden {
            return self.err(raw.span(), "only hidden paths may be relative");
        }
        if r.create && access == Access::Hidden {
            return self.err(raw.span(), "`create` makes no sense for a hidden path");
        }
        if r.create && !matches!(spec, PathSpec::Home(_)) {
            return self.err(
                raw.span(),
                "`create` is for a folder in your home (\"~/...\"), which kennel can make; \
                 make a folder elsewhere yourself, then name it without `create`",
            );
        }
        Ok(PathEntry {
            spec,
            access,
            optional: r.optional || r.create,
            create: r.create,
            why: r.why.clone(),
            loc: self.loc(raw.span()),
        })
    }

    fn spec(&self, text: &str, span: std::ops::Range<usize>) -> Result<PathSpec, ConfigError> {
        if text.is_empty() {
            return self.err(span, "empty path");
        }
        let spec = if text == "~" {
            PathSpec::Home(PathBuf::new())
        } else if let Some(rel) = text.strip_prefix("~/") {
            PathSpec::Home(PathBuf::from(rel))
        } else if text.starts_with('~') {
            return self.err(
                span,
                format!("`{text}`: only your own home can be written `~`; write the absolute path"),
            );
        } else if Path::new(text).is_absolute() {
            PathSpec::Absolute(PathBuf::from(text))
        } else if self.kind == LayerKind::Repo {
            if Path::new(text)
                .components()
                .any(|c| matches!(c, Component::ParentDir))
            {
                return self.err(
                    span,
                    format!("`{text}`: `..` is not allowed; name a path inside the workspace"),
                );
            }
            PathSpec::Workspace(PathBuf::from(text.trim_end_matches('/')))
        } else {
            return self.err(
                span,
                format!(
                    "`{text}` is a relative path; write `~/{text}` for a path in your home, or an absolute path"
                ),
            );
        };
        // `~/../x`, `/etc/../home`: a path means what it says, without a way up.
        let rest = match &spec {
            PathSpec::Home(rel) | PathSpec::Workspace(rel) | PathSpec::Absolute(rel) => rel,
        };
        if rest
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
            || text.contains('\0')
        {
            return self.err(
                span,
                format!(
                    "`{}`: `..`, `.` and NUL are not allowed in a path; write it in full",
                    crate::shown(text)
                ),
            );
        }
        if matches!(&spec, PathSpec::Absolute(p) if p == Path::new("/")) {
            return self.err(
                span,
                "`/` is the whole system: name the folders you mean (the system is read-only \
                 inside, and hiding all of it leaves nothing to run)",
            );
        }
        if text.contains(['*', '?']) && !matches!(spec, PathSpec::Workspace(_)) {
            return self.err(
                span,
                format!("`{text}`: wildcards are only allowed in a repository's .kennel.toml, relative to the workspace"),
            );
        }
        Ok(spec)
    }
}

/// The smallest `tmpfs-size` accepted: 0 would mean no limit to the kernel.
const MIN_TMPFS_SIZE: u64 = 1 << 20;

/// Bytes of a `tmpfs-size`: a number, or a number with K, M, G or T (powers of 1024).
fn parse_size(raw: &RawSize) -> Option<u64> {
    match raw {
        RawSize::Bytes(n) => u64::try_from(*n).ok(),
        RawSize::Text(text) => {
            let text = text.trim();
            let (digits, shift) = match text.char_indices().last()? {
                (i, 'K' | 'k') => (&text[..i], 10),
                (i, 'M' | 'm') => (&text[..i], 20),
                (i, 'G' | 'g') => (&text[..i], 30),
                (i, 'T' | 't') => (&text[..i], 40),
                _ => (text, 0),
            };
            let n: u64 = digits.trim().parse().ok()?;
            n.checked_mul(1u64 << shift)
        }
    }
}

/// Validates one layer of `src`.
pub fn validate(
    src: &SourceFile,
    raw: &RawLayer,
    kind: LayerKind,
    label: String,
) -> Result<Layer, ConfigError> {
    let c = Ctx { src, kind };
    if kind != LayerKind::Builtin && kind != LayerKind::Repo {
        c.refuse("version", &raw.version, "belongs at the top of the file")?;
    }
    if kind == LayerKind::Repo {
        let widen = "would widen the sandbox: a repository's .kennel.toml may only hide paths \
                     (`hidden`) and drop variables (`[env] drop`); put it in your own config instead";
        c.refuse("read-write", &raw.read_write, widen)?;
        c.refuse("read-only", &raw.read_only, widen)?;
        c.refuse("caches", &raw.caches, widen)?;
        c.refuse("copy-back", &raw.copy_back, widen)?;
        c.refuse("backend", &raw.backend, widen)?;
        c.refuse("home", &raw.home, widen)?;
        c.refuse("tmpfs-size", &raw.tmpfs_size, widen)?;
        c.refuse(
            "checkpoint-keep",
            &raw.checkpoint_keep,
            "is yours to set: a repository's .kennel.toml, which a sandbox can write, cannot \
             drop the checkpoints that undo what a sandbox did; put it in your own config",
        )?;
        c.refuse(
            "checkpoint",
            &raw.checkpoint,
            "is yours to set: a repository's .kennel.toml, which a sandbox can write, cannot \
             turn off the checkpoints that undo what a sandbox did; put it in your own config",
        )?;
        c.refuse("program", &raw.program, widen)?;
        c.refuse("extends", &raw.extends, widen)?;
        if let Some(env) = &raw.env {
            if let Some(first) = env.pass.first() {
                return c.err(first.span(), format!("`env.pass` {widen}"));
            }
            if let Some(first) = env.set.values().next() {
                return c.err(first.span(), format!("`env.set` {widen}"));
            }
        }
    }
    if let Some(net) = &raw.network {
        layer_network_checks(&c, net)?;
    }
    if matches!(kind, LayerKind::Cache | LayerKind::UserDefaults) {
        let why = "is not allowed here: it names a profile's own program";
        c.refuse("program", &raw.program, why)?;
        c.refuse("extends", &raw.extends, why)?;
    }
    if kind == LayerKind::Cache {
        c.refuse("caches", &raw.caches, "cannot be nested in a cache group")?;
    }

    let mut layer = Layer {
        label,
        description: raw.description.as_ref().map(|d| d.get_ref().clone()),
        program: raw.program.as_ref().map(|p| p.get_ref().clone()),
        extends: raw.extends.as_ref().map(|e| c.named(e)),
        home: raw.home.as_ref().map(|h| match h.get_ref() {
            RawHome::Ephemeral => HomeMode::Ephemeral,
            RawHome::Persistent => HomeMode::Persistent,
        }),
        backend: raw.backend.as_ref().map(|b| match b.get_ref() {
            RawBackend::Auto => Backend::Auto,
            RawBackend::Native => Backend::Native,
            RawBackend::Landlock => Backend::Landlock,
            RawBackend::Systemd => Backend::Systemd,
        }),
        checkpoint: raw.checkpoint.as_ref().map(|c| *c.get_ref()),
        ..Layer::default()
    };
    if let Some(keep) = &raw.checkpoint_keep {
        layer.checkpoint_keep = match usize::try_from(*keep.get_ref()) {
            Ok(n) if (1..=10_000).contains(&n) => Some(n),
            _ => {
                return c.err(
                    keep.span(),
                    "`checkpoint-keep` is how many sessions' checkpoints are kept per \
                     repository: a number from 1 to 10000 (default 20)",
                )
            }
        };
    }
    if let Some(size) = &raw.tmpfs_size {
        layer.tmpfs_size =
            Some(match parse_size(size.get_ref()) {
                Some(bytes) if bytes >= MIN_TMPFS_SIZE => bytes,
                _ => return c.err(
                    size.span(),
                    "`tmpfs-size` is the size of each of the sandbox's writable tmpfs, at least \
                     1M: a number of bytes or a string such as \"512M\" or \"2G\" (K, M, G, T: \
                     powers of 1024)",
                ),
            });
    }
    if let Some(p) = &raw.program {
        if p.get_ref().trim().is_empty() || p.get_ref().contains('/') {
            return c.err(
                p.span(),
                "`program` is a command name looked up on PATH, like \"aider\"",
            );
        }
    }
    for (list, access) in [
        (&raw.read_write, Access::ReadWrite),
        (&raw.read_only, Access::ReadOnly),
        (&raw.hidden, Access::Hidden),
    ] {
        for entry in list.iter().flat_map(|l| l.get_ref()) {
            layer.paths.push(c.path(entry, access)?);
        }
    }
    for entry in raw.copy_back.iter().flat_map(|l| l.get_ref()) {
        let spec = c.spec(entry.get_ref(), entry.span())?;
        if !matches!(&spec, PathSpec::Home(rel) if rel.components().count() > 0) {
            return c.err(
                entry.span(),
                "`copy-back` names a file in your home, like \"~/.claude.json\"",
            );
        }
        layer.copy_back.push((spec, c.loc(entry.span())));
    }
    // Adding a file to compare at exit only adds a warning: every source may.
    for entry in raw.runs_commands.iter().flat_map(|l| l.get_ref()) {
        let raw_entry = entry.get_ref();
        let spec = c.spec(&raw_entry.path, entry.span())?;
        if !matches!(&spec, PathSpec::Home(rel) if rel.components().count() > 0) {
            return c.err(
                entry.span(),
                "`runs-commands` names a file in your home, like \"~/.claude/settings.json\"",
            );
        }
        if let Some(bad) = raw_entry
            .keys
            .iter()
            .find(|k| k.is_empty() || k.split('.').any(str::is_empty))
        {
            return c.err(
                entry.span(),
                format!("`runs-commands` key `{bad}`: write names joined by dots, like \"mcpServers\" or \"projects.*.mcpServers\""),
            );
        }
        layer
            .runs_commands
            .push((spec, raw_entry.keys.clone(), c.loc(entry.span())));
    }
    layer.caches = raw
        .caches
        .iter()
        .flat_map(|l| l.get_ref())
        .map(|n| c.named(n))
        .collect();
    if let Some(env) = &raw.env {
        for name in env.pass.iter().chain(&env.drop) {
            check_var_name(&c, name)?;
        }
        layer.env_pass = env.pass.iter().map(|n| c.named(n)).collect();
        layer.env_drop = env.drop.iter().map(|n| c.named(n)).collect();
        for (name, value) in &env.set {
            if name == "HOME" {
                return c.err(
                    value.span(),
                    "HOME is set by kennel to your home inside the sandbox",
                );
            }
            if !is_var_name(name) {
                return c.err(
                    value.span(),
                    format!("`{}` is not a variable name", crate::shown(name)),
                );
            }
            if value.get_ref().contains('\0') {
                return c.err(
                    value.span(),
                    format!("the value of {name} holds a NUL byte"),
                );
            }
            let named = Named {
                name: name.clone(),
                loc: c.loc(value.span()),
            };
            layer.env_set.push((named, value.get_ref().clone()));
        }
    }
    if let Some(net) = &raw.network {
        let r = &net.get_ref().0;
        let source = c.loc(net.span()).label();
        let source = format!("{} ({source})", layer.label);
        let hosts = |list: &[String]| -> Result<Vec<HostRule>, ConfigError> {
            list.iter()
                .map(|h| {
                    HostRule::parse(h, source.clone())
                        .map_err(|e| c.src.error(Some(net.span()), format!("`network`: {e}")))
                })
                .collect()
        };
        layer.network = Some(NetLayer {
            mode: r.mode.map(|m| match m {
                RawNetMode::On => NetMode::On,
                RawNetMode::Off => NetMode::Off,
                RawNetMode::AllowList => NetMode::AllowList,
            }),
            allow: hosts(&r.allow)?,
            deny: hosts(&r.deny)?,
            groups: r
                .groups
                .iter()
                .map(|g| Named {
                    name: g.clone(),
                    loc: c.loc(net.span()),
                })
                .collect(),
            localhost: r.localhost.clone(),
        });
    }
    Ok(layer)
}

/// A repository may only narrow the network: deny hosts, or switch it off.
fn layer_network_checks(
    c: &Ctx,
    net: &Spanned<crate::raw::Wrapped<crate::raw::RawNetwork>>,
) -> Result<(), ConfigError> {
    let r = &net.get_ref().0;
    if let Some(p) = r.localhost.iter().find(|p| **p == 0) {
        return c.err(
            net.span(),
            format!("`network.localhost`: {p} is not a port"),
        );
    }
    if c.kind != LayerKind::Repo {
        return Ok(());
    }
    let widen = "would widen the sandbox: a repository's .kennel.toml may only deny hosts \
                 (`[network] deny`) or turn the network off (`network = \"off\"`); put it in your own config instead";
    if matches!(r.mode, Some(RawNetMode::On | RawNetMode::AllowList)) {
        return c.err(net.span(), format!("`network` mode {widen}"));
    }
    if !r.allow.is_empty() {
        return c.err(net.span(), format!("`network.allow` {widen}"));
    }
    if !r.groups.is_empty() {
        return c.err(net.span(), format!("`network.groups` {widen}"));
    }
    if !r.localhost.is_empty() {
        return c.err(net.span(), format!("`network.localhost` {widen}"));
    }
    Ok(())
}

/// A name a variable can have: letters, digits and `_`, not starting with a digit.
pub fn is_var_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !n.starts_with(|ch: char| ch.is_ascii_digit())
}

fn check_var_name(c: &Ctx, name: &Spanned<String>) -> Result<(), ConfigError> {
    let n = name.get_ref();
    if is_var_name(n) {
        Ok(())
    } else {
        c.err(
            name.span(),
            format!("`{}` is not a variable name", crate::shown(n)),
        )
    }
}
