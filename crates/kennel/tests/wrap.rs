#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! `kennel wrap`: shims that run an agent through kennel when the user types its name,
//! tested as the user would use them, with a stand-in `aider` installed under the home.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use common::{stderr, stdout, Fixture, SECRET};

struct Agent {
    fx: Fixture,
    real: PathBuf,
    shims: PathBuf,
    path: String,
}

/// A fixture with a stand-in aider (that tries to read a secret) in the home, as pipx would
/// install it, and PATH with ~/.local/bin first.
fn agent(name: &str) -> Agent {
    let fx = Fixture::new(name);
    let bin = fx.home.join(".local/share/pipx/venvs/aider/bin");
    let real = bin.join("aider");
    fx.write(
        &real,
        "#!/bin/sh\necho \"real-aider $*\"\ncat ~/.ssh/id_ed25519 2>/dev/null\ngrep NSpid /proc/self/status\n",
    );
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
    let shims = fx.home.join(".local/bin");
    fs::create_dir_all(&shims).unwrap();
    fx.chown(&fx.home);
    let path = format!(
        "{}:{}:/usr/local/bin:/usr/bin:/bin",
        shims.display(),
        bin.display()
    );
    Agent {
        fx,
        real,
        shims,
        path,
    }
}

impl Agent {
    fn kennel(&self, args: &[&str]) -> Output {
        self.fx
            .kennel()
            .args(args)
            .env("PATH", &self.path)
            .output()
            .unwrap()
    }

    fn shell(&self, script: &str) -> Output {
        self.fx
            .user_command("sh")
            .arg("-c")
            .arg(script)
            .env("PATH", &self.path)
            .output()
            .unwrap()
    }
}

#[test]
fn typing_the_agents_name_runs_it_sandboxed() {
    let a = agent("wrap");
    // Without the shim the stand-in reads the secret: the test can tell.
    assert!(stdout(&a.shell("aider")).contains(SECRET));
    let out = a.kennel(&["wrap", "aider"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(common::stdout(&out).contains("kennel run --profile aider"));
    let shim = a.shims.join("aider");
    assert!(fs::read_to_string(&shim).unwrap().contains("# kennel-shim"));

    let out = a.shell("aider --version");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("real-aider --version"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the shim ran aider unsandboxed: {text}"
    );

    let list = a.kennel(&["wrap", "--list"]);
    assert!(
        stdout(&list).contains(&format!("aider -> {}", a.real.display())),
        "{}",
        stdout(&list)
    );
}

#[test]
fn inside_a_sandbox_the_shim_runs_the_agent_without_nesting() {
    let a = agent("nested");
    assert!(a.kennel(&["wrap", "aider"]).status.success());
    let real_dir = a.real.parent().unwrap().display().to_string();
    let shims = a.shims.display().to_string();
    let out =
        a.fx.kennel()
            .args([
                "run",
                "--ro",
                &shims,
                "--ro",
                &real_dir,
                "--",
                "sh",
                "-c",
                "aider inner",
            ])
            .env("PATH", &a.path)
            .output()
            .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(text.contains("real-aider inner"), "{text} {}", stderr(&out));
    // One PID namespace level seen from the sandbox's /proc: no second sandbox.
    let nspid = text
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or_default();
    assert_eq!(nspid.split_whitespace().count(), 2, "{text}");
}

#[test]
fn a_foreign_file_is_never_overwritten_or_removed() {
    let a = agent("foreign");
    let shim = a.shims.join("aider");
    a.fx.write(&shim, "#!/bin/sh\necho mine\n");
    let out = a.kennel(&["wrap", "aider"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not written by kennel"),
        "{}",
        stderr(&out)
    );
    let out = a.kennel(&["unwrap", "aider"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read_to_string(&shim).unwrap(), "#!/bin/sh\necho mine\n");
}

#[test]
fn unwrap_removes_the_shim_and_a_moved_agent_is_reported() {
    let a = agent("unwrap");
    assert!(a.kennel(&["wrap", "aider"]).status.success());
    fs::remove_file(&a.real).unwrap();
    let out = a.shell("aider");
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("is gone"), "{}", stderr(&out));
    assert!(stdout(&a.kennel(&["wrap", "--list"])).contains("MISSING"));
    let out = a.kennel(&["unwrap", "aider"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!a.shims.join("aider").exists());
}

#[test]
fn a_shim_that_would_run_itself_is_refused() {
    let a = agent("selfref");
    assert!(a.kennel(&["wrap", "aider"]).status.success());
    let shim = a.shims.join("aider").display().to_string();
    let out = a.kennel(&["wrap", "aider", "--bin", &shim]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("would loop"), "{}", stderr(&out));
}

#[test]
fn wrap_all_wraps_what_is_installed_and_says_what_is_not() {
    let a = agent("wrapall");
    let out = a.kennel(&["wrap", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(a.shims.join("aider").exists(), "{}", stdout(&out));
    // No other agent is installed in this fixture: none is wrapped, each is named.
    for other in ["claude", "codex", "gemini", "opencode", "pi"] {
        assert!(
            !a.shims.join(other).exists(),
            "{other} wrapped though missing"
        );
        assert!(
            stderr(&out).contains(&format!("{other} (profile")),
            "{}",
            stderr(&out)
        );
    }
}

/// What kennel wrap and unwrap find in their way that is not a shim file they wrote: a link
/// to the program itself (Claude Code's installer puts one in ~/.local/bin), a link of the
/// user's to a shim, a link where the partial shim is written. Each is left alone, and the
/// message says what it is.
#[test]
fn links_in_the_way_are_never_followed_replaced_or_removed() {
    let a = agent("links");
    let shim = a.shims.join("aider");
    // The program's own link in the shim folder: said for what it is, with --dir offered.
    std::os::unix::fs::symlink(&a.real, &shim).unwrap();
    let out = a.kennel(&["wrap", "aider", "--bin", &a.real.display().to_string()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("is a link to") && err.contains("itself") && err.contains("--dir"),
        "{err}"
    );
    assert!(!err.contains("would loop"), "{err}");
    assert!(fs::symlink_metadata(&shim)
        .unwrap()
        .file_type()
        .is_symlink());
    fs::remove_file(&shim).unwrap();

    // A link where the partial shim would be written: never written through.
    let victim = a.fx.home.join(".bashrc");
    let before = fs::read_to_string(&victim).unwrap();
    std::os::unix::fs::symlink(&victim, a.shims.join(".aider.kennel-partial")).unwrap();
    let out = a.kennel(&["wrap", "aider"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), before);

    // The user's own link to the shim: unwrap leaves it.
    let mine = a.fx.home.join("my-aider");
    std::os::unix::fs::symlink(&shim, &mine).unwrap();
    let out =
        a.fx.kennel()
            .args([
                "unwrap",
                "my-aider",
                "--dir",
                &a.fx.home.display().to_string(),
            ])
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        fs::symlink_metadata(&mine).is_ok(),
        "the user's link was removed"
    );
}
