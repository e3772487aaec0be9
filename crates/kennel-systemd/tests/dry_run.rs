//! Snapshots of the exact `systemd-run` command (what `kennel run --backend systemd
//! --dry-run` prints) for each built-in profile, in a fixed fake context.
//!
//! A snapshot lives in `tests/snapshots/NAME.txt`; after an intended change, regenerate
//! with `KENNEL_UPDATE_SNAPSHOTS=1 cargo test -p kennel-systemd --test dry_run` and review
//! the diff. A new profile is one more test: resolve its policy in [`context`] and call
//! `snapshot("NAME", policy)`, which also checks the original wrapper's properties.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use kennel_policy::{
    resolve, resolve_default, CliLayer, Context, GitDirs, HostFacts, Policy, ResolveInputs,
    Workspace,
};
use kennel_systemd::{command, Limits, Options};

/// A user in a repository with a space in its name, a shell and a terminal.
fn context() -> Context {
    let home = PathBuf::from("/home/alice");
    let root = home.join("src/my project");
    Context {
        cwd: root.join("sub"),
        home: home.clone(),
        uid: 1000,
        gid: 1000,
        workspace: Workspace {
            root: root.clone(),
            git: Some(GitDirs {
                git_dir: root.join(".git"),
                common_dir: root.join(".git"),
            }),
        },
        env: [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/home/alice"),
            ("SHELL", "/bin/bash"),
            ("TERM", "xterm-256color"),
            ("LANG", "C.UTF-8"),
            ("SSH_AUTH_SOCK", "/run/user/1000/ssh"),
            ("OPENAI_API_KEY", "sk-secret"),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect(),
        stdin_is_tty: true,
        stdout_is_tty: true,
    }
}

fn options() -> Options {
    Options {
        tty: true,
        instance: 4242,
        kennel_exe: "/usr/bin/kennel".into(),
        limits: Limits::default(),
        watch: None,
        net: None,
    }
}

/// The DNS rule depends on where the test machine's /etc/resolv.conf points; the snapshot
/// must not.
fn without_host_dependent_rules(mut policy: Policy) -> Policy {
    policy
        .paths
        .retain(|r| r.origin.reason != "DNS configuration");
    policy
}

/// Every profile keeps the original wrapper's promises (the seed's `systemd-run -t -p ...`).
/// Its `ProtectKernelTunables=yes` is kept by kennel's step inside the unit, which makes
/// `/proc/sys` and `/sys` read-only under a `/proc` of its own PID namespace (the property's
/// mounts over `/proc` would forbid that `/proc`): the step must be the unit's command.
fn assert_original_wrapper_properties(name: &str, argv: &[String]) {
    for property in [
        "PrivateTmp=yes",
        "ProtectHome=tmpfs",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectControlGroups=yes",
        "internal-verify-exec",
    ] {
        assert!(
            argv.iter().any(|a| a == property),
            "{name}: {property} missing"
        );
    }
    for prefix in ["BindPaths=", "WorkingDirectory=", "--pty"] {
        assert!(
            argv.iter().any(|a| a.starts_with(prefix)),
            "{name}: {prefix} missing"
        );
    }
    for var in ["PATH", "SHELL"] {
        assert!(
            argv.windows(2).any(|w| w[0] == "-E" && w[1] == var),
            "{name}: -E {var} missing"
        );
    }
}

fn snapshot(name: &str, policy: Policy) {
    let invocation = command(&without_host_dependent_rules(policy), &options())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_original_wrapper_properties(name, &invocation.argv);
    // One argument per line, to keep diffs readable; the shell line is what users paste.
    let text = format!(
        "{}\n\n{}\n",
        invocation.shell_line(),
        invocation.argv.join("\n")
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/snapshots/{name}.txt"));
    if std::env::var_os("KENNEL_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&file, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with KENNEL_UPDATE_SNAPSHOTS=1",
            file.display()
        )
    });
    assert_eq!(text, expected, "snapshot {name} differs");
    assert!(
        !text.contains("sk-secret"),
        "a variable's value is on the command line"
    );
}

#[test]
fn default_profile() {
    let policy = resolve_default(
        &context(),
        vec!["aider".into(), "--model".into(), "x".into()],
    );
    snapshot("default", policy.unwrap());
}

/// The original wrapper was written for aider: its command has every property of it, with
/// `~/.aider` bound read-write, `~/.aider.conf.yml` (read-only here: a config that can name
/// commands must not be writable by the agent), `/nix` and `~/.gitconfig` read-only.
#[test]
fn aider_profile() {
    let policy = resolve(
        &context(),
        ResolveInputs {
            profile: "aider".into(),
            command: vec!["aider".into()],
            user_config: None,
            repo_config: None,
            // The profile's allow-list network is refused by this backend (see below).
            cli: CliLayer {
                network: Some(kennel_policy::NetMode::On),
                ..CliLayer::default()
            },
            host: HostFacts::default(),
        },
    )
    .unwrap();
    let invocation = command(&policy, &options()).unwrap();
    let line = invocation.shell_line();
    let property = |name: &str| {
        invocation
            .argv
            .iter()
            .find(|a| a.starts_with(name))
            .cloned()
            .unwrap_or_default()
    };
    let rw = property("BindPaths=");
    for part in ["/home/alice/src/my\\ project", "/home/alice/.aider"] {
        assert!(rw.contains(part), "{part}: {rw}");
    }
    let ro = property("BindReadOnlyPaths=");
    for part in [
        "/home/alice/.aider.conf.yml",
        "/nix",
        "/home/alice/.gitconfig",
    ] {
        assert!(ro.contains(&format!("-{part} ")), "{part}: {ro}");
    }
    assert!(line.contains("WorkingDirectory="), "{line}");
    snapshot("aider", policy);
}

/// The allow-list needs kennel's proxy outside and a relay inside: the unit cannot have
/// them, so the backend refuses instead of running with the host's network.
#[test]
fn allow_list_network_is_refused_not_ignored() {
    let policy = resolve(
        &context(),
        ResolveInputs {
            profile: "aider".into(),
            command: vec!["aider".into()],
            ..ResolveInputs::default()
        },
    )
    .unwrap();
    let err = command(&policy, &options()).err().map(|e| e.to_string());
    let err = err.unwrap_or_default();
    assert!(err.contains("allow-list"), "{err}");
}
