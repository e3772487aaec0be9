//! The profiles kennel knows: built-in ones (`profiles/*.toml`, embedded in the binary) and
//! the user's (`[profile.NAME]` of the config), with the toolchain cache groups.

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

#[derive(Debug, Default)]
pub struct Catalog {
    builtin: BTreeMap<String, Layer>,
    user: BTreeMap<String, Layer>,
    pub(crate) defaults: Option<Layer>,
    caches: BTreeMap<String, Layer>,
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
            let src = SourceFile::new(format!("profiles/{name}.toml"), *text);
            let raw: RawLayer = parse(&src)?;
            check_version(&src, &raw.version)?;
            let layer = validate(&src, &raw, LayerKind::Builtin, format!("profile {name}"))?;
            catalog.builtin.insert((*name).to_string(), layer);
        }
        let src = SourceFile::new("profiles/caches.toml", BUILTIN_CACHES);
        let raw: RawCaches = parse(&src)?;
        check_version(&src, &raw.version)?;
        for (name, group) in &raw.cache {
            let layer = validate(&src, group, LayerKind::Cache, format!("cache {name}"))?;
            catalog.caches.insert(name.clone(), layer);
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
        catalog.check_references()?;
        Ok(catalog)
    }

    pub fn names(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.builtin.keys().chain(self.user.keys()).collect();
        set.into_iter().cloned().collect()
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains_key(name)
    }

    pub fn cache_names(&self) -> Vec<String> {
        self.caches.keys().cloned().collect()
    }

    pub(crate) fn cache(&self, name: &str) -> Option<&Layer> {
        self.caches.get(name)
    }

    pub fn list(&self) -> Result<Vec<ProfileInfo>, PolicyError> {
        self.names()
            .into_iter()
            .map(|name| {
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
            })
            .collect()
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
        let mut seen = Vec::new();
        let mut current = name.to_string();
        let mut at = asked_at.cloned();
        loop {
            if seen.contains(&current) {
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
            let builtin = self.builtin.get(&current);
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

    /// Every `extends` and `caches` names something that exists.
    fn check_references(&self) -> Result<(), PolicyError> {
        let layers = self
            .builtin
            .values()
            .chain(self.user.values())
            .chain(self.defaults.iter());
        for layer in layers {
            if let Some(parent) = &layer.extends {
                self.chain(&parent.name, Some(&parent.loc))?;
            }
            for cache in &layer.caches {
                if !self.caches.contains_key(&cache.name) {
                    return Err(cache
                        .loc
                        .error(format!(
                            "unknown cache group `{}`; known groups: {}",
                            cache.name,
                            self.cache_names().join(", ")
                        ))
                        .into());
                }
            }
        }
        Ok(())
    }
}

fn check_profile_name(
    src: &SourceFile,
    name: &str,
    span: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !matches!(
            name,
            "run" | "explain" | "profiles" | "doctor" | "completions" | "man" | "help"
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
