//! kennel's model of the world, free of kernel calls.
//!
//! `Context` (where we are) -> `Policy` (what the sandboxed command may see and do).
//! Backends take a [`Policy`] and nothing else; `kennel explain` prints the same value.
#![forbid(unsafe_code)]

mod catalog;
mod context;
mod env;
mod error;
mod explain;
mod git;
mod git_config;
pub mod glob;
mod layer;
mod network;
mod paths;
mod policy;
mod raw;
mod resolve;
pub mod shown;
mod source;
#[cfg(test)]
mod tests;

pub use catalog::{profile_name_typos, Catalog, ProfileInfo, BUILTIN_PROFILES};
pub use context::{parse_commondir, parse_gitfile, Context, ContextInputs, GitDirs, Workspace};
pub use env::{env_allowed, CA_VARIABLES, ENV_ALLOW_LIST};
pub use error::PolicyError;
pub use explain::explain_text;
pub use git::{
    command_settings, git_protection_rules, git_runs_commands, hook_manager_files, hooks_in,
    module_git_dirs, read_config, read_small, GitRunsCommand, GitSurface,
};
pub use layer::PathSpec;
pub use network::{
    normalize_host, Denial, HostPattern, HostRule, NetMode, NetRules, BUILTIN_NET_GROUPS,
};
pub use paths::{is_ancestor_or_same, normalize};
pub use policy::{
    human_size, Access, Backend, CopyBack, EnvVar, HomeMode, Network, PathRule, Placeholder,
    Policy, RuleOrigin, RunsCommands, Terminal, TmpfsLimits,
};
pub use resolve::{
    net_groups, resolv_conf_target, resolve, resolve_default, CliLayer, HostFacts, ResolveInputs,
};
pub use shown::{shown, shown_bytes, shown_path};
pub use source::{ConfigError, SourceFile};
