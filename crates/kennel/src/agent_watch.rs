//! The agent's own settings that run commands (`runs-commands` of a profile): Claude Code's
//! hooks and MCP servers, Codex's `notify` and MCP servers... The agent's folders are
//! writable inside (its login, sessions, settings), so a prompt-injected agent can add a
//! command there that the agent runs the next time the user starts it *outside* kennel. As
//! git's hooks, that is code planted to run unsandboxed: kennel compares those settings at
//! exit with the start and names what changed, before the user starts the agent again.
//!
//! At the start only the bytes are kept (bounded, read without following a link to a FIFO
//! or a device); at the end a file whose bytes changed is parsed (JSON or TOML, by its name)
//! and only the named settings are compared, so that what the agent writes on every run (a
//! counter, a history) says nothing.

use std::path::{Path, PathBuf};

use kennel_policy::{shown, shown_path, Policy};
use serde_json::Value;

use crate::files::{read_users_file, ReadError};

/// The largest settings file compared.
const LIMIT: u64 = 16 << 20;

pub struct Watch {
    files: Vec<Watched>,
    home: PathBuf,
    program: String,
}

struct Watched {
    path: PathBuf,
    keys: Vec<String>,
    before: Option<Vec<u8>>,
}

/// What the start holds of each file the policy names.
pub fn begin(policy: &Policy) -> Option<Watch> {
    if policy.runs_commands.is_empty() {
        return None;
    }
    let files = policy
        .runs_commands
        .iter()
        .map(|r| Watched {
            path: r.path.clone(),
            keys: r.keys.clone(),
            before: read(&r.path),
        })
        .collect();
    Some(Watch {
        files,
        home: policy.home.clone(),
        // The agent's profiles are named after it (`claude`, `codex`...).
        program: policy.profile.clone(),
    })
}

fn read(path: &Path) -> Option<Vec<u8>> {
    match read_users_file(path, LIMIT) {
        Ok(bytes) => Some(bytes),
        Err(ReadError::NotFound) => None,
        // Unreadable now: compared as absent, so that one readable at the end is named.
        Err(_) => None,
    }
}

/// The lines to print at exit: one per file whose command-running settings changed.
pub fn end(watch: Option<Watch>) -> Vec<String> {
    let Some(watch) = watch else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for file in &watch.files {
        let now = read(&file.path);
        if now == file.before {
            continue;
        }
        let changed = if file.keys.is_empty() {
            vec!["the whole file".to_string()]
        } else {
            changed_keys(
                &file.path,
                file.before.as_deref(),
                now.as_deref(),
                &file.keys,
            )
        };
        if changed.is_empty() {
            continue;
        }
        let name = match file.path.strip_prefix(&watch.home) {
            Ok(rest) => format!("~/{}", shown_path(rest)),
            Err(_) => shown_path(&file.path),
        };
        lines.push(format!(
            "warning: {name} changed in this session ({}): what it holds runs commands when \
             you start {} outside kennel; look at it first (inside kennel they run sandboxed)",
            shown(&changed.join(", ")),
            shown(&watch.program),
        ));
    }
    lines
}

/// The named settings (dotted paths, `*` for any one name) whose values differ.
fn changed_keys(
    path: &Path,
    before: Option<&[u8]>,
    now: Option<&[u8]>,
    keys: &[String],
) -> Vec<String> {
    let parse = |bytes: Option<&[u8]>| -> Option<Value> {
        let text = std::str::from_utf8(bytes?).ok()?;
        if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str::<toml::Value>(text)
                .ok()
                .and_then(|v| serde_json::to_value(v).ok())
        } else {
            serde_json::from_str(text).ok()
        }
    };
    let (old, new) = (parse(before), parse(now));
    // A file that does not parse (now or then) cannot be compared by its settings: the agent
    // outside may read what kennel cannot, so it is named whole.
    if (before.is_some() && old.is_none()) || (now.is_some() && new.is_none()) {
        return vec!["it no longer reads as its format: the whole file".to_string()];
    }
    keys.iter()
        .filter(|key| {
            let pick = |v: &Option<Value>| {
                let mut found = Vec::new();
                if let Some(v) = v {
                    select(
                        v,
                        &key.split('.').collect::<Vec<_>>(),
                        String::new(),
                        &mut found,
                    );
                }
                found.sort();
                found
            };
            pick(&old) != pick(&new)
        })
        .cloned()
        .collect()
}

/// Every value at `path` below `value` (`*` matches any one name), with where it was.
fn select(value: &Value, path: &[&str], at: String, found: &mut Vec<(String, String)>) {
    let Some((first, rest)) = path.split_first() else {
        found.push((at, value.to_string()));
        return;
    };
    let Value::Object(map) = value else {
        return;
    };
    for (name, child) in map {
        if *first == "*" || first == name {
            select(child, rest, format!("{at}.{name}"), found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_named_settings_count() {
        let path = Path::new("/h/.claude.json");
        let before = br#"{"numStartups": 1, "projects": {"/p": {"mcpServers": {}}}}"#;
        let counted = br#"{"numStartups": 2, "projects": {"/p": {"mcpServers": {}}}}"#;
        let planted =
            br#"{"numStartups": 2, "projects": {"/p": {"mcpServers": {"x": {"command": "sh"}}}}}"#;
        let k = keys(&["mcpServers", "projects.*.mcpServers"]);
        assert!(changed_keys(path, Some(before), Some(counted), &k).is_empty());
        assert_eq!(
            changed_keys(path, Some(before), Some(planted), &k),
            keys(&["projects.*.mcpServers"])
        );
        // Planted in a file that did not exist.
        let top = br#"{"mcpServers": {"x": {"command": "sh"}}}"#;
        assert_eq!(
            changed_keys(path, None, Some(top), &k),
            keys(&["mcpServers"])
        );
    }

    #[test]
    fn toml_settings_are_compared_too_and_garbage_is_named_whole() {
        let path = Path::new("/h/.codex/config.toml");
        let k = keys(&["notify", "mcp_servers"]);
        let before = b"model = \"a\"\n";
        assert!(changed_keys(path, Some(before), Some(b"model = \"b\"\n"), &k).is_empty());
        assert_eq!(
            changed_keys(
                path,
                Some(before),
                Some(b"notify = [\"sh\", \"-c\", \"x\"]\n"),
                &k
            ),
            keys(&["notify"])
        );
        assert_eq!(
            changed_keys(path, Some(before), Some(b"notify = ["), &k).len(),
            1
        );
    }

    /// What the sandbox leaves is parsed by kennel outside: nesting 200,000 deep is refused
    /// by both parsers (no stack overflow at kennel's exit), and named whole.
    #[test]
    fn a_deeply_nested_file_is_named_not_a_crash() {
        let deep =
            |open: &str, close: &str| format!("{}{}", open.repeat(200_000), close.repeat(200_000));
        let k = keys(&["notify"]);
        let toml_text = format!("notify = {}", deep("[", "]"));
        let toml_path = Path::new("/h/.codex/config.toml");
        assert_eq!(
            changed_keys(toml_path, Some(b""), Some(toml_text.as_bytes()), &k).len(),
            1
        );
        let json_path = Path::new("/h/.claude.json");
        let json_text = deep("[", "]");
        assert_eq!(
            changed_keys(json_path, Some(b"{}"), Some(json_text.as_bytes()), &k).len(),
            1
        );
    }
}
