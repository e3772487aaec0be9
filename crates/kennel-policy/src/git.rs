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
