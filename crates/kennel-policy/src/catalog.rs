//! The profiles kennel knows: built-in ones (`profiles/*.toml`, embedded in the binary) and
//! the user's (`[profile.NAME]` of the config), with the toolchain cache groups.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::PolicyError;
use crate::layer::{validate, Layer, LayerKind, Loc};
use crate::raw::{check_version, parse, RawCaches, RawConfig, RawLayer};
use crate::source::{ConfigError, SourceFile};

/// Built-in profiles: name and TOML text. Each file says where its paths come from.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("default", include_str!("../../../profiles/default.toml")),
    ("aider", include_str!("../../../profiles/aider.toml")),
    ("claude", include_str!("../../../profiles/claude.toml")),
    ("codex", include_str!("../../../profiles/codex.toml")),
    ("gemini", include_str!("../../../profiles/gemini.toml")),
    ("goose", include_str!("../../../profiles/goose.toml")),
    ("opencode", include_str!("../../../profiles/opencode.toml")),
    ("pi", include_str!("../../../profiles/pi.toml")),
];

/// Toolchain cache groups that a profile or the user can include with `caches = [...]`.
pub const BUILTIN_CACHES: &str = include_str!("../../../profiles/caches.toml");

/// One line of `kennel profiles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileInfo {
    pub name: String,
    pub description: String,
    pub program: Option<String>,
    /// "built-in", "built-in, changed by your config", or "your config".
    pub source: String,
}

/// Built-in profiles and cache groups are parsed when first asked for, not at load: a run
/// needs one or two of them, and parsing every embedded file was most of kennel's own
/// start-up work. They are embedded and checked by the tests
/// ([`Catalog::check_builtins`]), so an error in one cannot depend on the user's input.
#[derive(Debug, Default)]
pub struct Catalog {
    builtin: BTreeMap<String, Builtin>,
    user: BTreeMap<String, Layer>,
    pub(crate) defaults: Option<Layer>,
    caches: OnceCell<BTreeMap<String, Layer>>,
}

/// A built-in profile: its text, and its layer once parsed.
#[derive(Debug)]
struct Builtin {
    text: &'static str,
    layer: OnceCell<Layer>,
}

/// The layers of one profile, in the order they apply.
pub(crate) struct Chain<'a> {
    pub builtin: Vec<&'a Layer>,
    pub user: Vec<&'a Layer>,
}

impl Catalog {
    /// The built-in profiles, changed and extended by the user's config when given.
    pub fn load(user_config: Option<&SourceFile>) -> Result<Catalog, PolicyError> {
        let mut catalog = Catalog::default();
        for (name, text) in BUILTIN_PROFILES {
            catalog.builtin.insert(
                (*name).to_string(),
                Builtin {
                    text,
                    layer: OnceCell::new(),
                },
            );
        }
        if let Some(src) = user_config {
            let raw: RawConfig = parse(src)?;
            if raw.version.is_some() {
                check_version(src, &raw.version)?;
            }
            if let Some(d) = &raw.defaults {
                catalog.defaults = Some(validate(
                    src,
                    d,
                    LayerKind::UserDefaults,
                    "config [defaults]".into(),
                )?);
            }
            for (name, layer) in &raw.profile {
                check_profile_name(src, name.get_ref(), name.span())?;
                let name = name.get_ref();
                let v = validate(
                    src,
                    layer,
                    LayerKind::UserProfile,
                    format!("config [profile.{name}]"),
                )?;
                catalog.user.insert(name.clone(), v);
            }
        }
        catalog.check_references(false)?;
        Ok(catalog)
    }

    /// Parses every built-in profile and cache group and checks what they name, as
    /// [`Catalog::load`] did before it became lazy (for tests and `kennel profiles`).
    pub fn check_builtins(&self) -> Result<(), PolicyError> {
        self.caches()?;
        self.check_references(true)
    }

    /// The built-in profile `name`, parsed on first use.
    fn builtin_layer(&self, name: &str) -> Result<Option<&Layer>, PolicyError> {
        let Some(builtin) = self.builtin.get(name) else {
            return Ok(None);
        };
        if let Some(layer) = builtin.layer.get() {
            return Ok(Some(layer));
        }
        let src = SourceFile::new(format!("profiles/{name}.toml"), builtin.text);
        let raw: RawLayer = parse(&src)?;
        check_version(&src, &raw.version)?;
        let layer = validate(&src, &raw, LayerKind::Builtin, format!("profile {name}"))?;
        Ok(Some(builtin.layer.get_or_init(|| layer)))
    }

    /// The cache groups of `profiles/caches.toml`, parsed on first use.
    fn caches(&self) -> Result<&BTreeMap<String, Layer>, PolicyError> {
        if let Some(caches) = self.caches.get() {
            return Ok(caches);
        }
        let src = SourceFile::new("profiles/caches.toml", BUILTIN_CACHES);
        let raw: RawCaches = parse(&src)?;
        check_version(&src, &raw.version)?;
        let mut caches = BTreeMap::new();
        for (name, group) in &raw.cache {
            let layer = validate(&src, group, LayerKind::Cache, format!("cache {name}"))?;
            caches.insert(name.clone(), layer);
        }
        Ok(self.caches.get_or_init(|| caches))
    }

    pub fn names(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.builtin.keys().chain(self.user.keys()).collect();
        set.into_iter().cloned().collect()
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains_key(name)
    }

    pub fn cache_names(&self) -> Result<Vec<String>, PolicyError> {
        Ok(self.caches()?.keys().cloned().collect())
    }

    pub(crate) fn cache(&self, name: &str) -> Result<Option<&Layer>, PolicyError> {
        Ok(self.caches()?.get(name))
    }

    pub fn list(&self) -> Result<Vec<ProfileInfo>, PolicyError> {
        self.names()
            .into_iter()
            .map(|name| self.info(name))
            .collect()
    }

    /// What `kennel profiles` says of the profile `name`.
    pub fn info(&self, name: String) -> Result<ProfileInfo, PolicyError> {
        let chain = self.chain(&name, None)?;
        let all = chain.builtin.iter().chain(&chain.user);
        let description = all
            .clone()
            .filter_map(|l| l.description.clone())
            .next_back()
            .unwrap_or_default();
        let program = all.filter_map(|l| l.program.clone()).next_back();
        let source = match (
            self.builtin.contains_key(&name),
            self.user.contains_key(&name),
        ) {
            (true, false) => "built-in",
            (true, true) => "built-in, changed by your config",
            _ => "your config",
        };
        Ok(ProfileInfo {
            name,
            description,
            program,
            source: source.into(),
        })
    }

    /// The program that `kennel NAME` runs, if the profile names one.
    pub fn program(&self, name: &str) -> Result<Option<String>, PolicyError> {
        let chain = self.chain(name, None)?;
        Ok(chain
            .builtin
            .iter()
            .chain(&chain.user)
            .filter_map(|l| l.program.clone())
            .next_back())
    }

    /// The layers of `name` and of the profiles it extends, parents first. Built-in layers
    /// come before the user's, so that the user's config always wins over a built-in.
    pub(crate) fn chain(
        &self,
        name: &str,
        asked_at: Option<&Loc>,
    ) -> Result<Chain<'_>, PolicyError> {
        let mut chain = Chain {
            builtin: Vec::new(),
            user: Vec::new(),
        };
        // In order for the message, and in a set for the look-up: a chain of thousands of
        // `extends` once took 30 s to check.
        let mut seen = Vec::new();
        let mut seen_set = std::collections::HashSet::new();
        let mut current = name.to_string();
        let mut at = asked_at.cloned();
        loop {
            if !seen_set.insert(current.clone()) {
                let message = format!(
                    "profile `{current}` extends itself (through {})",
                    seen.join(" -> ")
                );
                return Err(match &at {
                    Some(loc) => loc.error(message).into(),
                    None => PolicyError::Profile(message),
                });
            }
            seen.push(current.clone());
            let builtin = self.builtin_layer(&current)?;
            let user = self.user.get(&current);
            if builtin.is_none() && user.is_none() {
                return Err(self.unknown(&current, at.as_ref()));
            }
            chain.builtin.extend(builtin);
            chain.user.extend(user);
            let parent = user
                .and_then(|l| l.extends.clone())
                .or_else(|| builtin.and_then(|l| l.extends.clone()));
            match parent {
                Some(p) => {
                    current = p.name;
                    at = Some(p.loc);
                }
                None if current != "default" => {
                    current = "default".into();
                    at = None;
                }
                None => break,
            }
        }
        chain.builtin.reverse();
        chain.user.reverse();
        Ok(chain)
    }

    /// What [`Catalog::chain`] checks of `name` (it exists, and so does every profile it
    /// extends, without a cycle), stopping at a profile of `sound`; adds what it walked.
    fn check_chain(
        &self,
        name: &str,
        at: &Loc,
        sound: &mut std::collections::HashSet<String>,
    ) -> Result<(), PolicyError> {
        let mut walked = std::collections::HashSet::new();
        let mut current = name.to_string();
        let mut at = Some(at.clone());
        while !sound.contains(&current) {
            if !walked.insert(current.clone()) {
                // A cycle: the full walk says where, as at run time.
                return self.chain(&current, at.as_ref()).map(drop);
            }
            let builtin = self.builtin_layer(&current)?;
            let user = self.user.get(&current);
            if builtin.is_none() && user.is_none() {
                return Err(self.unknown(&current, at.as_ref()));
            }
            let parent = user
                .and_then(|l| l.extends.clone())
                .or_else(|| builtin.and_then(|l| l.extends.clone()));
            match parent {
                Some(p) => {
                    current = p.name;
                    at = Some(p.loc);
                }
                None if current != "default" => {
                    current = "default".into();
                    at = None;
                }
                None => break,
            }
        }
        sound.extend(walked);
        Ok(())
    }

    pub(crate) fn unknown(&self, name: &str, at: Option<&Loc>) -> PolicyError {
        let message = format!(
            "unknown profile `{name}`; known profiles: {}",
            self.names().join(", ")
        );
        match at {
            Some(loc) => loc.error(message).into(),
            None => PolicyError::Profile(message),
        }
    }

    /// Every `extends` and `caches` names something that exists: in the user's layers, and
    /// with `builtins` in the built-in ones too.
    fn check_references(&self, builtins: bool) -> Result<(), PolicyError> {
        let mut layers: Vec<&Layer> = Vec::new();
        if builtins {
            for name in self.builtin.keys() {
                layers.extend(self.builtin_layer(name)?);
            }
        }
        layers.extend(self.user.values().chain(self.defaults.iter()));
        // Each profile's chain walked once: where a walk reaches a profile already found
        // sound, it stops (a chain of n `extends` is checked in n steps, not n * n).
        let mut sound = std::collections::HashSet::new();
        for layer in layers {
            if let Some(parent) = &layer.extends {
                self.check_chain(&parent.name, &parent.loc, &mut sound)?;
            }
            for cache in &layer.caches {
                if !self.caches()?.contains_key(&cache.name) {
                    return Err(cache
                        .loc
                        .error(format!(
                            "unknown cache group `{}`; known groups: {}",
                            cache.name,
                            self.cache_names()?.join(", ")
                        ))
                        .into());
                }
            }
        }
        Ok(())
    }
}

/// Profiles of the user's config that look like a typo of a built-in one: a
/// `[profile.claud]` that names neither `extends` nor `program` is a new profile that
/// nothing runs, while `[profile.claude]` was meant. One warning each, with file and line.
pub fn profile_name_typos(src: &SourceFile) -> Vec<String> {
    let Ok(raw) = parse::<RawConfig>(src) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for (name, layer) in &raw.profile {
        let typed = name.get_ref();
        if BUILTIN_PROFILES.iter().any(|(b, _)| b == typed)
            || layer.extends.is_some()
            || layer.program.is_some()
        {
            continue;
        }
        let near = BUILTIN_PROFILES
            .iter()
            .map(|(b, _)| (strsim::damerau_levenshtein(typed, b), *b))
            .filter(|(d, b)| *d > 0 && *d <= 2 && b.len() > *d + 1)
            .min();
        if let Some((_, builtin)) = near {
            let (line, _) = src.line_col(name.span().start);
            warnings.push(format!(
                "{}:{line}: [profile.{typed}] is a profile of its own (it names neither \
                 `extends` nor `program`), which `kennel {builtin}` does not use: did you mean \
                 [profile.{builtin}]?",
                src.name
            ));
        }
    }
    warnings
}

fn check_profile_name(
    src: &SourceFile,
    name: &str,
    span: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    // Not an option (`-x`), nor a subcommand's name, which `kennel NAME` could not reach.
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !matches!(
            name,
            "run"
                | "explain"
                | "profiles"
                | "doctor"
                | "completions"
                | "man"
                | "help"
                | "wrap"
                | "unwrap"
                | "homes"
                | "net-connect"
                | "internal-verify-exec"
        );
    if ok {
        Ok(())
    } else {
        Err(src.error(
            Some(span),
            format!("`{name}` cannot be a profile name: use letters, digits, `-` and `_`, and none of kennel's own commands"),
        ))
    }
}
