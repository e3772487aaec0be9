//! Context -> Policy for the built-in default: the original systemd-run wrapper, made exact.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::context::Context;
use crate::env::env_allowed;
use crate::error::PolicyError;
use crate::paths::{is_ancestor_or_same, normalize};
use crate::policy::{Access, EnvVar, Network, PathRule, Policy, RuleOrigin, Terminal};

/// Places under `/run` that a NixOS system needs for its PATH and drivers; read-only.
const NIXOS_RUN_PATHS: &[&str] = &[
    "/run/current-system",
    "/run/booted-system",
    "/run/opengl-driver",
    "/run/wrappers",
];

fn rule(path: impl Into<PathBuf>, access: Access, optional: bool, reason: &str) -> PathRule {
    PathRule {
        path: normalize(&path.into()),
        access,
        optional,
        origin: RuleOrigin::builtin(reason),
    }
}

/// Refuses a workspace that would expose the home: the home itself, a folder above it, `/`.
pub fn check_workspace(workspace: &Path, home: &Path) -> Result<(), PolicyError> {
    let why = if workspace == Path::new("/") {
        "is the root of the file system"
    } else if workspace == home {
        "is your home folder"
    } else if is_ancestor_or_same(workspace, home) {
        "contains your home folder"
    } else {
        return Ok(());
    };
    Err(PolicyError::WorkspaceExposesHome {
        workspace: workspace.to_path_buf(),
        why,
    })
}

/// The built-in default policy for `ctx`, running `command` (the user's shell when empty).
pub fn resolve_default(ctx: &Context, command: Vec<OsString>) -> Result<Policy, PolicyError> {
    let workspace = &ctx.workspace.root;
    check_workspace(workspace, &ctx.home)?;

    let mut paths = vec![
        rule("/", Access::ReadOnly, false, "the system, read-only"),
        rule("/home", Access::Hidden, true, "other homes hidden"),
        rule("/root", Access::Hidden, true, "root's home hidden"),
        rule(
            "/run",
            Access::Hidden,
            true,
            "runtime sockets hidden (ssh-agent, gpg-agent, D-Bus under /run/user)",
        ),
        rule("/tmp", Access::Tmpfs, false, "a private /tmp"),
        rule("/var/tmp", Access::Tmpfs, true, "a private /var/tmp"),
        rule(
            &ctx.home,
            Access::Tmpfs,
            false,
            "your home, recreated empty: nothing of it is visible",
        ),
        rule(
            ctx.home.join(".gitconfig"),
            Access::ReadOnly,
            true,
            "git identity",
        ),
        rule(
            ctx.home.join(".config/git"),
            Access::ReadOnly,
            true,
            "git identity",
        ),
        rule(workspace, Access::ReadWrite, false, "the workspace"),
    ];
    for nix in NIXOS_RUN_PATHS {
        paths.push(rule(*nix, Access::ReadOnly, true, "NixOS system profile"));
    }
    if let Some(target) = resolv_conf_target() {
        paths.push(rule(target, Access::ReadOnly, true, "DNS configuration"));
    }
    if let Some(git) = &ctx.workspace.git {
        for dir in [&git.common_dir, &git.git_dir] {
            if !is_ancestor_or_same(workspace, dir) {
                paths.push(rule(
                    dir,
                    Access::ReadWrite,
                    false,
                    "git directory of this worktree or submodule",
                ));
            }
        }
    }

    let command = if command.is_empty() {
        let shell = ctx.var("SHELL").unwrap_or("/bin/sh");
        vec![OsString::from(shell)]
    } else {
        command
    };

    let mut policy = Policy {
        profile: "default".into(),
        workspace: workspace.clone(),
        cwd: ctx.cwd.clone(),
        home: ctx.home.clone(),
        uid: ctx.uid,
        gid: ctx.gid,
        paths,
        env: environment(ctx),
        network: Network::On,
        terminal: Terminal::for_stdin(ctx.stdin_is_tty),
        command,
    };
    policy.normalize_rules();
    Ok(policy)
}

fn environment(ctx: &Context) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = ctx
        .env
        .iter()
        .filter_map(|(k, v)| {
            let name = k.to_str()?;
            env_allowed(name).then(|| EnvVar {
                name: name.to_string(),
                value: v.clone(),
            })
        })
        .collect();
    env.push(EnvVar {
        name: "HOME".into(),
        value: ctx.home.clone().into_os_string(),
    });
    if !env.iter().any(|v| v.name == "PATH") {
        env.push(EnvVar {
            name: "PATH".into(),
            value: "/usr/local/bin:/usr/bin:/bin".into(),
        });
    }
    env.sort_by(|a, b| a.name.cmp(&b.name));
    env.dedup_by(|a, b| a.name == b.name);
    env
}

/// `/etc/resolv.conf` often links into `/run` (systemd-resolved, NetworkManager), which is
/// hidden: its target must stay readable for DNS to work.
fn resolv_conf_target() -> Option<PathBuf> {
    let link = Path::new("/etc/resolv.conf");
    fs::symlink_metadata(link)
        .ok()?
        .file_type()
        .is_symlink()
        .then_some(())?;
    let target = fs::canonicalize(link).ok()?;
    target.starts_with("/run").then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{GitDirs, Workspace};

    fn ctx(home: &str, workspace: &str) -> Context {
        Context {
            cwd: workspace.into(),
            home: home.into(),
            uid: 1000,
            gid: 1000,
            workspace: Workspace {
                root: workspace.into(),
                git: None,
            },
            env: vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("SSH_AUTH_SOCK".into(), "/run/user/1000/ssh".into()),
                ("GITHUB_TOKEN".into(), "ghp_x".into()),
                ("LC_ALL".into(), "C.UTF-8".into()),
                ("HOME".into(), "/elsewhere".into()),
            ],
            stdin_is_tty: false,
        }
    }

    fn access(p: &Policy, path: &str) -> Option<Access> {
        p.rule_for(Path::new(path)).map(|r| r.access)
    }

    #[test]
    fn refuses_home_above_home_and_root() {
        for ws in ["/home/u", "/home", "/"] {
            let err = resolve_default(&ctx("/home/u", ws), vec![]).err();
            assert!(
                matches!(err, Some(PolicyError::WorkspaceExposesHome { .. })),
                "{ws} must be refused"
            );
        }
    }

    #[test]
    fn sibling_of_home_with_common_prefix_is_not_refused() {
        // `/home/user2` starts with the string `/home/u`, not with the path.
        assert!(resolve_default(&ctx("/home/u", "/home/u2"), vec![]).is_ok());
    }

    #[test]
    fn default_view() -> Result<(), PolicyError> {
        let p = resolve_default(&ctx("/home/u", "/home/u/src/p"), vec!["true".into()])?;
        assert_eq!(access(&p, "/usr/bin"), Some(Access::ReadOnly));
        assert_eq!(access(&p, "/etc/passwd"), Some(Access::ReadOnly));
        assert_eq!(access(&p, "/home/u/.ssh/id_ed25519"), Some(Access::Tmpfs));
        assert_eq!(access(&p, "/home/u/src/p/main.rs"), Some(Access::ReadWrite));
        assert_eq!(access(&p, "/home/u/src/other"), Some(Access::Tmpfs));
        assert_eq!(access(&p, "/home/other"), Some(Access::Hidden));
        assert_eq!(access(&p, "/run/user/1000/ssh"), Some(Access::Hidden));
        assert_eq!(access(&p, "/tmp/x"), Some(Access::Tmpfs));
        assert_eq!(access(&p, "/home/u/.gitconfig"), Some(Access::ReadOnly));
        Ok(())
    }

    #[test]
    fn environment_is_an_allow_list() -> Result<(), PolicyError> {
        let p = resolve_default(&ctx("/home/u", "/home/u/p"), vec![])?;
        let names: Vec<&str> = p.env.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, vec!["HOME", "LC_ALL", "PATH"]);
        assert_eq!(p.env_value("HOME"), Some(&OsString::from("/home/u")));
        Ok(())
    }

    #[test]
    fn worktree_git_dirs_are_writable() -> Result<(), PolicyError> {
        let mut c = ctx("/home/u", "/home/u/wt");
        c.workspace.git = Some(GitDirs {
            git_dir: "/home/u/main/.git/worktrees/wt".into(),
            common_dir: "/home/u/main/.git".into(),
        });
        let p = resolve_default(&c, vec![])?;
        assert_eq!(
            access(&p, "/home/u/main/.git/objects"),
            Some(Access::ReadWrite)
        );
        assert_eq!(access(&p, "/home/u/main/src"), Some(Access::Tmpfs));
        Ok(())
    }

    #[test]
    fn no_command_means_the_users_shell() -> Result<(), PolicyError> {
        let mut c = ctx("/home/u", "/home/u/p");
        c.env.push(("SHELL".into(), "/bin/bash".into()));
        let p = resolve_default(&c, vec![])?;
        assert_eq!(p.command, vec![OsString::from("/bin/bash")]);
        Ok(())
    }

    #[test]
    fn a_terminal_on_stdin_gets_a_pseudo_terminal() -> Result<(), PolicyError> {
        let mut c = ctx("/home/u", "/home/u/p");
        assert_eq!(resolve_default(&c, vec![])?.terminal, Terminal::Streams);
        c.stdin_is_tty = true;
        assert_eq!(resolve_default(&c, vec![])?.terminal, Terminal::Pty);
        Ok(())
    }
}
