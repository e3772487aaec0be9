#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Agents as users install them (issue 20): a program under the home whose interpreter a
//! version manager put there too (pyenv, nvm) runs through kennel with no config, its
//! interpreter exposed read-only and shown by `kennel explain`; the rest of the home stays
//! hidden.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{stderr, stdout, Fixture, SECRET};

fn copy_exe(from: &str, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
}

fn script(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_pipx_agent_on_a_pyenv_python_runs_with_no_config() {
    let fx = Fixture::new("pyenv");
    let python = fx.home.join(".pyenv/versions/3.11.4/bin/python3.11");
    copy_exe("/usr/bin/python3", &python);
    let venv = fx.home.join(".local/share/pipx/venvs/agent");
    fs::create_dir_all(venv.join("bin")).unwrap();
    fs::write(
        venv.join("pyvenv.cfg"),
        format!("home = {}\n", python.parent().unwrap().display()),
    )
    .unwrap();
    std::os::unix::fs::symlink(&python, venv.join("bin/python3")).unwrap();
    script(
        &venv.join("bin/agent"),
        &format!(
            "#!{}/bin/python3\nimport sys, os\nprint('agent ran on', sys.executable)\n\
             print('ssh', os.path.exists(os.path.expanduser('~/.ssh/id_ed25519')))\n",
            venv.display()
        ),
    );
    fx.chown(&fx.home);
    let out = fx
        .kennel()
        .args(["run", "--"])
        .arg(venv.join("bin/agent"))
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(text.contains("agent ran on"), "{text} {}", stderr(&out));
    assert!(
        text.contains("ssh False"),
        "the rest of the home stays hidden: {text}"
    );
    assert!(!text.contains(SECRET));
    // As pipx installs it: a link in ~/.local/bin, on PATH; `kennel aider` with no config.
    let bin = fx.home.join(".local/bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(venv.join("bin/agent"), bin.join("aider")).unwrap();
    fx.chown(&fx.home);
    let out = fx
        .kennel()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .arg("aider")
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(
        stdout(&out).contains("agent ran on"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn an_npm_agent_on_an_nvm_node_runs_on_that_node_and_explain_shows_it() {
    let fx = Fixture::new("nvm");
    let prefix = fx.home.join(".nvm/versions/node/v20.11.0");
    copy_exe("/usr/bin/node", &prefix.join("bin/node"));
    let cli = prefix.join("lib/node_modules/agent/cli.js");
    script(
        &cli,
        "#!/usr/bin/env node\nconsole.log('node agent ran on ' + process.execPath)\n",
    );
    // Installed as the agent whose profile is `claude`: `kennel claude` runs it.
    std::os::unix::fs::symlink(
        "../lib/node_modules/agent/cli.js",
        prefix.join("bin/claude"),
    )
    .unwrap();
    fx.chown(&fx.home);
    let path = format!("{}/bin:/usr/local/bin:/usr/bin:/bin", prefix.display());
    let out = fx
        .kennel()
        .env("PATH", &path)
        .args(["claude"])
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("node agent ran on {}/bin/node", prefix.display())),
        "the agent must run on the node it was installed with: {text} {}",
        stderr(&out)
    );
    let explained = fx
        .kennel()
        .env("PATH", &path)
        .args(["explain", "claude"])
        .output()
        .unwrap();
    let text = stdout(&explained);
    assert!(
        text.lines()
            .any(|l| l.contains(&prefix.display().to_string())
                && l.contains("the interpreter of `claude`")),
        "{text}"
    );
}

/// A local model or a company gateway: each agent's documented base-URL variable reaches
/// it; a key the profile does not pass is named at start (never its value) with how to pass
/// it.
#[test]
fn custom_endpoints_reach_the_agent_and_dropped_keys_are_named() {
    let fx = Fixture::new("endpoints");
    let out = fx
        .kennel()
        .env("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:8088/gemini")
        .env("MOCK_API_KEY", SECRET)
        .args(["run", "--profile", "gemini", "--", "sh", "-c"])
        .arg("echo base=$GOOGLE_GEMINI_BASE_URL; echo mock=$MOCK_API_KEY")
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(
        text.contains("base=http://127.0.0.1:8088/gemini"),
        "{text} {err}"
    );
    assert!(text.contains("mock=\n"), "{text}");
    assert!(
        err.contains("not passed into the sandbox (names only): MOCK_API_KEY"),
        "{err}"
    );
    assert!(
        !err.contains(SECRET),
        "a value reached kennel's lines: {err}"
    );
}

/// Something inside shows that this is kennel's sandbox, and which profile: a variable a
/// shell's prompt can show (kennel itself never trusts it).
#[test]
fn the_sandbox_says_it_is_one() {
    let fx = Fixture::new("says-sandbox");
    let out = fx.sandboxed("echo in=$KENNEL_SANDBOX");
    assert!(stdout(&out).contains("in=default"), "{}", stderr(&out));
    let out = fx
        .kennel()
        .args([
            "run",
            "--profile",
            "claude",
            "--",
            "sh",
            "-c",
            "echo in=$KENNEL_SANDBOX",
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("in=claude"), "{}", stderr(&out));
}

/// Codex's custom provider names the variable of its key in Codex's own config
/// (`model_providers.NAME.env_key`): kennel reads that and passes the variable, saying so.
#[test]
fn a_variable_codex_config_names_is_passed() {
    let fx = Fixture::new("codex-env-key");
    fx.write(
        &fx.home.join(".codex/config.toml"),
        "model = \"m\"\n[model_providers.mock]\nname = \"Mock\"\nbase_url = \"http://127.0.0.1:9/v1\"\nenv_key = \"MOCK_API_KEY\"\n",
    );
    fx.chown(&fx.home);
    let out = fx
        .kennel()
        .env("MOCK_API_KEY", "mock-key-value")
        .args([
            "run",
            "--profile",
            "codex",
            "--",
            "sh",
            "-c",
            "echo key=$MOCK_API_KEY",
        ])
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(
        stdout(&out).contains("key=mock-key-value"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("passing MOCK_API_KEY: ~/.codex/config.toml names it"),
        "{}",
        stderr(&out)
    );
}

/// What would be the same at every start is said once per repository, and again when it
/// changes: what the repository's git runs, and the files a shell leaves in the home.
#[test]
fn the_same_note_is_said_once_per_repository() {
    let fx = Fixture::new("said-once");
    fx.as_user(&format!(
        "cd '{}' && git config core.pager 'less -R'",
        fx.repo.display()
    ));
    let first = fx.sandboxed("echo ls >> ~/.bash_history");
    let second = fx.sandboxed("echo ls >> ~/.bash_history");
    let (e1, e2) = (stderr(&first), stderr(&second));
    assert!(e1.contains("core.pager = less -R"), "{e1}");
    assert!(!e2.contains("core.pager"), "said twice: {e2}");
    assert!(e1.contains("~/.bash_history"), "{e1}");
    assert!(
        e2.contains("the same as the last time here") && !e2.contains("~/.bash_history"),
        "{e2}"
    );
    // Changed: said again.
    fx.as_user(&format!(
        "cd '{}' && git config core.pager 'more'",
        fx.repo.display()
    ));
    let third = fx.sandboxed("true");
    assert!(
        stderr(&third).contains("core.pager = more"),
        "{}",
        stderr(&third)
    );
}

/// Why `git config` or `git remote add` fails inside is said, once per repository, to a
/// person at a terminal (a script's output stays as it was).
#[test]
fn why_git_config_fails_inside_is_said_once() {
    if common::skip_unless(common::have_program("script"), "script is not installed") {
        return;
    }
    let fx = Fixture::new("git-readonly-note");
    let at_terminal = || {
        let line = format!("{} run -- true", common::env().kennel.display());
        let out = fx
            .user_command("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(&fx.repo)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let scripted = fx.sandboxed("true");
    assert!(
        !stderr(&scripted).contains("are read-only"),
        "{}",
        stderr(&scripted)
    );
    let first = at_terminal();
    assert!(
        first.contains(".git/config, .git/hooks and .git/info are read-only"),
        "{first}"
    );
    assert!(!at_terminal().contains("are read-only"), "said twice");
}
