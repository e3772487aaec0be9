//! kennel's model of the world, free of kernel calls.
//!
//! `Context` (where we are) -> `Policy` (what the sandboxed command may see and do).
//! Backends take a [`Policy`] and nothing else; `kennel explain` prints the same value.
#![forbid(unsafe_code)]

mod context;
mod env;
mod error;
mod paths;
mod policy;
mod resolve;

pub use context::{Context, ContextInputs, GitDirs, Workspace};
pub use env::{env_allowed, ENV_ALLOW_LIST};
pub use error::PolicyError;
pub use paths::{is_ancestor_or_same, normalize};
pub use policy::{Access, EnvVar, Network, PathRule, Policy, RuleOrigin, Terminal};
pub use resolve::resolve_default;
