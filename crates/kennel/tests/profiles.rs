#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Behaviour tests of profiles and configuration: a real kennel, as an unprivileged user,
//! in a fake home with planted secrets.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{stderr, stdout, Fixture, SECRET};

on_every_backend!(each_agent_profile_writes_its_state_and_sees_no_secret);

/// Each agent profile's read-write folders under the home.
const AGENT_DIRS: &[(&str, &[&str])] = &[
    ("aider", &[".aider"]),
    ("claude", &[".claude"]),
    ("codex", &[".codex"]),
    ("gemini", &[".gemini"]),
    (
        "goose",
        &[".config/goose", ".local/share/goose", ".local/state/goose"],
    ),
    (
        "opencode",
        &[
            ".config/opencode",
            ".local/share/opencode",
            ".local/state/opencode",
            ".cache/opencode",
            ".local/share/opentui",
        ],
    ),
    ("pi", &[".pi/agent"]),
];

fn each_agent_profile_writes_its_state_and_sees_no_secret(backend: &'static str) {
    for (profile, dirs) in AGENT_DIRS {
        let fx = Fixture::new(&format!("profile-{profile}"));
        let writes: String = dirs
            .iter()
            .map(|d| format!("echo kept > ~/{d}/kennel-probe || echo 'NOT WRITABLE {d}'\n"))
            .collect();
        // Agent profiles default to the allow-list network, which the native and systemd
        // backends build; the landlock backend refuses it (never a silent `on`), so it is
        // asked for `on`.
        let net = if common::is_landlock(backend) {
            "on"
        } else {
            "allow-list"
        };
        let out = fx.kennel_with(&[
            "run",
            "--backend",
            backend,
            "--net",
            net,
            "--profile",
            profile,
            "--",
            "sh",
            "-c",
            &format!(
                "ls -A ~ | tr '\\n' ' '; echo; ls -A ~/.config 2>/dev/null | tr '\\n' ' '; echo\n\
                 {writes}cat ~/.ssh/id_ed25519 ~/.aws/credentials ~/.bashrc 2>&1; ls -A ~/.ssh 2>&1; true"
            ),
        ]);
        assert!(out.status.success(), "{profile}: {}", stderr(&out));
        let text = stdout(&out);
        // Everything else of the home is hidden: only the profile's folders (and what leads
        // to them), the git identity and the workspace are there.
        let mut lines = text.lines();
        let mut home: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        home.sort_unstable();
        let mut expected: Vec<&str> = dirs
            .iter()
            .map(|d| d.split('/').next().unwrap())
            .chain([".gitconfig", "project"])
            .collect();
        expected.sort_unstable();
        expected.dedup();
        if backend == "native" {
            // The landlock backend has no empty home to list: yours stays unreadable.
            assert_eq!(
                home, expected,
                "{profile}: the home shows more than the profile names"
            );
        }
        let config = lines.next().unwrap_or("");
        assert!(
            !config.contains("kennel-test"),
            "{profile}: ~/.config leaked: {config}"
        );
        assert!(!text.contains("NOT WRITABLE"), "{profile}: {text}");
        assert!(!text.contains(SECRET), "{profile}: a secret leaked: {text}");
        for d in *dirs {
            let kept = fx.home.join(d).join("kennel-probe");
            assert_eq!(
                fs::read_to_string(&kept).unwrap_or_default(),
                "kept\n",
                "{profile}: {} was not kept",
                kept.display()
            );
        }
    }
}

#[test]
fn claude_json_is_usable_inside_and_copied_back_at_exit() {
    let fx = Fixture::new("claude-json");
    fx.write(&fx.home.join(".claude.json"), "{\"before\": true}\n");
    // Claude Code replaces the file by writing a temporary file beside it and renaming it.
    let out = fx.kennel_with(&[
        "run",
        "--profile",
        "claude",
        "--",
        "sh",
        "-c",
        "cat ~/.claude.json && echo '{\"after\": true}' > ~/.claude.json.tmp.1 && mv ~/.claude.json.tmp.1 ~/.claude.json && echo s > ~/.claude/settings.json && cat ~/.ssh/id_ed25519 2>&1; true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"before\""), "{}", stdout(&out));
    assert!(!stdout(&out).contains(SECRET));
    assert_eq!(
        fs::read_to_string(fx.home.join(".claude.json")).unwrap(),
        "{\"after\": true}\n"
    );
    assert!(fx.home.join(".claude/settings.json").exists());
    assert!(
        !stderr(&out).contains(".claude.json"),
        "the copied-back file is not reported as lost: {}",
        stderr(&out)
    );
}

#[test]
fn hidden_globs_in_the_workspace_are_empty_and_unwritable() {
    let fx = Fixture::new("repo-hidden");
    fx.write(&fx.repo.join(".env"), SECRET);
    fx.write(&fx.repo.join("sub/.env.local"), SECRET);
    fx.write(&fx.repo.join("config/server.pem"), SECRET);
    fx.write(&fx.repo.join("secrets/key"), SECRET);
    fx.write(
        &fx.repo.join(".kennel.toml"),
        "version = 1\nhidden = [\".env*\", \"*.pem\", \"secrets/\"]\n",
    );
    let out = fx.sandboxed(
        r#"cd ..
        cat .env sub/.env.local config/server.pem secrets/key 2>&1
        for f in .env sub/.env.local config/server.pem; do
            echo overwritten > "$f" 2>/dev/null && echo "WROTE $f"
            rm -f "$f" 2>/dev/null; mv "$f" moved 2>/dev/null && echo "MOVED $f"
        done
        echo new > secrets/new 2>/dev/null && echo "WROTE secrets/new"
        echo 'hidden = []' > .kennel.toml 2>/dev/null && echo "WROTE .kennel.toml"
        cat README"#,
    );
    let text = stdout(&out);
    assert!(!text.contains(SECRET), "a hidden file leaked: {text}");
    assert!(!text.contains("WROTE"), "{text}");
    assert!(!text.contains("MOVED"), "{text}");
    assert!(
        text.contains("hello"),
        "the rest of the workspace is visible: {text}"
    );
    for f in [".env", "sub/.env.local", "config/server.pem", "secrets/key"] {
        assert_eq!(fs::read_to_string(fx.repo.join(f)).unwrap(), SECRET, "{f}");
    }
    assert!(
        fs::read_to_string(fx.repo.join(".kennel.toml"))
            .unwrap()
            .contains(".env*"),
        "the agent unhid paths for its next run"
    );
}

/// A hidden pattern hides every match, however deep and however many names an earlier
/// session left before it, or kennel refuses to start (issue 17, item 9): the walk used to
/// stop after 6 levels or 20,000 entries, and skipped `node_modules`, and hid nothing more.
#[test]
fn hidden_patterns_hide_every_match_or_refuse_to_start() {
    let fx = Fixture::new("repo-hidden-deep");
    let deep = "d1/d2/d3/d4/d5/d6/d7/d8";
    fx.write(&fx.repo.join(deep).join(".env"), SECRET);
    fx.write(&fx.repo.join("node_modules/x/.env"), SECRET);
    // 21,000 names in one folder, then the secret below it.
    let many = fx.repo.join("many");
    fs::create_dir_all(many.join("sub")).unwrap();
    for i in 0..21_000 {
        fs::File::create(many.join(format!("f{i}"))).unwrap();
    }
    fx.write(&many.join("sub/.env"), SECRET);
    fx.write(
        &fx.repo.join(".kennel.toml"),
        "version = 1\nhidden = [\".env*\"]\n",
    );
    let out = fx.sandboxed(&format!(
        "cd .. && cat {deep}/.env node_modules/x/.env many/sub/.env 2>&1; echo done"
    ));
    let text = stdout(&out);
    assert!(!text.contains(SECRET), "a hidden file leaked: {text}");
    assert!(text.contains("done"), "{text} {}", stderr(&out));

    // Past the budget of matches: refused, naming the pattern and what to do.
    for i in 0..1_001 {
        fs::File::create(many.join(format!(".env{i}"))).unwrap();
    }
    fx.chown(&many);
    let out = fx
        .kennel()
        .args(["run", "--", "sh", "-c", "cat many/sub/.env; echo RAN"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stdout(&out).contains("RAN"));
    let err = stderr(&out);
    assert!(
        err.contains(".kennel.toml:2") && err.contains("`.env*`") && err.contains("1000"),
        "{err}"
    );
}

/// A folder of the user's that cannot be listed (an earlier session's `chmod 000`, to be
/// undone inside) is not skipped by the walk: kennel refuses to start, naming it.
#[test]
fn a_closed_folder_of_the_users_makes_a_hidden_pattern_refuse() {
    let fx = Fixture::new("repo-hidden-closed");
    fx.write(&fx.repo.join("closed/.env"), SECRET);
    fx.write(
        &fx.repo.join(".kennel.toml"),
        "version = 1\nhidden = [\".env*\"]\n",
    );
    fs::set_permissions(fx.repo.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = fx
        .kennel()
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "chmod 700 closed; cat closed/.env; echo RAN",
        ])
        .output()
        .unwrap();
    fs::set_permissions(fx.repo.join("closed"), fs::Permissions::from_mode(0o700)).unwrap();
    assert!(!stdout(&out).contains(SECRET), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`.env*`") && err.contains("closed") && err.contains("chmod"),
        "{err}"
    );
}

/// The folders holding a hidden path cannot be renamed or removed inside: renamed, they
/// took the hidden file along, and the next session, hiding `conf/.env`, showed
/// `conf2/.env`. They stay writable.
#[test]
fn folders_of_hidden_paths_cannot_carry_them_away() {
    let fx = Fixture::new("repo-hidden-moved");
    fx.write(&fx.repo.join("conf/.env"), SECRET);
    fx.write(&fx.repo.join("a/b/.env.local"), SECRET);
    fx.write(
        &fx.repo.join(".kennel.toml"),
        "version = 1\nhidden = [\"conf/.env\", \".env.*\"]\n",
    );
    let out = fx.sandboxed(
        r#"cd ..
        mv conf conf2 2>/dev/null && echo "MOVED conf"
        mv a/b a/c 2>/dev/null && echo "MOVED a/b"
        mv a x 2>/dev/null && echo "MOVED a"
        rm -rf conf 2>/dev/null; [ -d conf ] || echo "REMOVED conf"
        echo new > conf/new && echo "wrote conf/new"
        mkdir -p a/b/d && echo "made a/b/d""#,
    );
    let text = stdout(&out);
    assert!(
        !text.contains("MOVED") && !text.contains("REMOVED"),
        "{text}"
    );
    assert!(
        text.contains("wrote conf/new") && text.contains("made a/b/d"),
        "{text} {}",
        stderr(&out)
    );
    assert_eq!(
        fs::read_to_string(fx.repo.join("conf/.env")).unwrap(),
        SECRET
    );
    assert_eq!(
        fs::read_to_string(fx.repo.join("a/b/.env.local")).unwrap(),
        SECRET
    );
}

/// One refused kind of widening each; the unit tests cover every key's message.
#[test]
fn repository_config_cannot_widen() {
    for (toml, key) in [
        ("read-write = [\"~/.ssh\"]\n", "read-write"),
        ("read-only = [\"~/.aws\"]\n", "read-only"),
        ("[env]\npass = [\"GITHUB_TOKEN\"]\n", "env.pass"),
        ("backend = \"native\"\n", "backend"),
    ] {
        let fx = Fixture::new("repo-widen");
        fx.write(&fx.repo.join(".kennel.toml"), toml);
        let out = fx.kennel_with(&["run", "--", "sh", "-c", "cat ~/.ssh/id_ed25519; echo RAN"]);
        assert_eq!(out.status.code(), Some(2), "{toml}: {}", stderr(&out));
        assert!(!stdout(&out).contains("RAN"));
        let err = stderr(&out);
        assert!(err.contains(".kennel.toml:"), "{err}");
        assert!(err.contains(&format!("`{key}` would widen")), "{err}");
    }
}

#[test]
fn config_errors_name_file_line_and_column() {
    let fx = Fixture::new("config-error");
    let config = fx.home.join(".config/kennel/config.toml");
    fx.write(&config, "version = 1\n[defaults]\nread-writ = [\"~/x\"]\n");
    let out = fx.kennel_with(&["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("~/.config/kennel/config.toml:3:1: unknown field `read-writ`"),
        "{}",
        stderr(&out)
    );
    // --no-config skips it, given before the subcommand or after it; an unknown profile
    // lists the known ones.
    let out = fx.kennel_with(&["--no-config", "run", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fx.kennel_with(&["run", "--no-config", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // --config FILE, after each subcommand that reads a configuration, reads that file; given
    // twice, the later one wins.
    let other = fx.home.join("other.toml");
    fx.write(&other, "version = 1\n[defaults]\nhide = 7\n");
    let other = other.to_str().unwrap();
    for args in [
        vec!["run", "--config", other, "--", "true"],
        vec!["explain", "--config", other],
        vec!["profiles", "--config", other],
        vec!["--no-config", "run", "--config", other, "--", "true"],
    ] {
        let out = fx.kennel_with(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("other.toml:3:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = fx.kennel_with(&["--config", other, "run", "--no-config", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fx.kennel_with(&["--no-config", "run", "--profile", "claud", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("known profiles: aider, claude"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_config_adds_paths_and_the_command_line_wins() {
    let fx = Fixture::new("config-paths");
    fx.write(&fx.home.join("data/file"), "data");
    fx.write(
        &fx.home.join(".config/kennel/config.toml"),
        "version = 1\n[defaults]\nread-write = [\"~/data\"]\n[defaults.env]\nset = { KENNEL_SET = \"from-config\" }\n",
    );
    let out = fx.kennel_with(&[
        "run",
        "--",
        "sh",
        "-c",
        "cat ~/data/file && echo more >> ~/data/file && echo $KENNEL_SET",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "datafrom-config\n");
    assert_eq!(
        fs::read_to_string(fx.home.join("data/file")).unwrap(),
        "datamore\n"
    );
    // The command line beats the config: --ro makes the same folder read-only.
    let data = fx.home.join("data");
    let out = fx.kennel_with(&[
        "run",
        "--ro",
        data.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "cat ~/data/file; echo again >> ~/data/file 2>/dev/null && echo WROTE; true",
    ]);
    assert!(!stdout(&out).contains("WROTE"), "{}", stdout(&out));
    assert!(stdout(&out).contains("datamore"));
}

/// Two hidden folders, one with a folder inside it made visible again: each hidden folder is
/// empty of its own (the mount point of the one inside appears nowhere else).
#[test]
fn hidden_folders_are_each_empty_of_their_own() {
    let fx = Fixture::new("hidden-dirs");
    let data = fx.home.join("data");
    fx.write(&data.join("secrets/key"), SECRET);
    fx.write(&data.join("secrets/shared/file"), "shared");
    fx.write(&data.join("private/file"), SECRET);
    let d = data.display();
    fx.user_config(&format!(
        "version = 1\n[defaults]\nread-write = [\"{d}\", \"{d}/secrets/shared\"]\n\
         hidden = [\"{d}/secrets\", \"{d}/private\"]\n"
    ));
    let out = fx.sandboxed(&format!(
        "ls -A {d}/private; echo ---; ls -A {d}/secrets; cat {d}/secrets/shared/file; \
         cat {d}/secrets/key {d}/private/file 2>/dev/null; true"
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "---\nshared\nshared", "{}", stderr(&out));
}

#[test]
fn writes_to_the_ephemeral_home_are_listed_at_exit() {
    let fx = Fixture::new("ephemeral");
    let out = fx.sandboxed(
        "mkdir -p ~/.tool/state ~/.cache/thing && echo x > ~/.tool/state/db && echo y > ~/.cache/thing/c && echo z > ~/.notes.json",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("3 files written to the sandbox's temporary home were discarded"),
        "{err}"
    );
    assert!(err.contains("~/.tool/state/db"), "{err}");
    assert!(err.contains("~/.notes.json"), "{err}");
    assert!(
        err.contains(r#"read-write = [{ path = "~/.cache/thing", create = true }, { path = "~/.tool", create = true }]"#),
        "{err}"
    );
    assert!(err.contains(r#"copy-back = ["~/.notes.json"]"#), "{err}");
    // Nothing of it reached the real home; the workspace and bound files are not reported.
    assert!(!fx.home.join(".tool").exists());
    assert!(!err.contains("project"), "{err}");
    assert!(!err.contains(".gitconfig"), "{err}");
    // A run that writes nothing there reports nothing.
    let out = fx.sandboxed("echo in-workspace > file");
    assert!(!stderr(&out).contains("discarded"), "{}", stderr(&out));
    // The home was made in the user's own folder of the temporary folder, and is gone.
    let homes = fx
        .dir
        .join("tmp")
        .join(format!("kennel-{}", common::env().uid));
    let meta = fs::symlink_metadata(&homes).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(fs::read_dir(&homes).unwrap().count(), 0);
}

/// Someone else's folder where the user's folder of homes belongs: kennel says so and puts
/// the home directly in the temporary folder, as private, and still lists what was written.
/// (The systemd backend's home is a folder on disk; the native backend's is in memory.)
#[test]
fn a_homes_folder_that_is_not_the_users_is_not_used() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("foreign-homes").with_backend("systemd");
    let tmp = fx.dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    let homes = tmp.join(format!("kennel-{}", common::env().uid));
    fs::create_dir(&homes).unwrap();
    // Open to everyone (and the test process's, not the test user's, when run as root).
    fs::set_permissions(&homes, fs::Permissions::from_mode(0o777)).unwrap();
    let out = fx.sandboxed("echo z > ~/notes");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is not a private folder of yours"), "{err}");
    assert!(err.contains("~/notes"), "{err}");
    assert_eq!(
        fs::read_dir(&homes).unwrap().count(),
        0,
        "the folder was used"
    );
}

#[test]
fn a_persistent_home_keeps_what_is_written() {
    let fx = Fixture::new("persistent");
    let out = fx.kennel_with(&[
        "run",
        "--home",
        "persistent",
        "--",
        "sh",
        "-c",
        "echo kept > ~/.tool-state",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("discarded"), "{}", stderr(&out));
    let out = fx.kennel_with(&[
        "run",
        "--home",
        "persistent",
        "--",
        "sh",
        "-c",
        "cat ~/.tool-state",
    ]);
    assert_eq!(stdout(&out), "kept\n", "{}", stderr(&out));
    assert!(fx.home.join(".local/state/kennel/homes").is_dir());
    assert!(
        !fx.home.join(".tool-state").exists(),
        "the real home is untouched"
    );
}

#[test]
fn shorthand_runs_the_real_program_past_kennel_shims() {
    let fx = Fixture::new("shorthand");
    let real = fx.home.join(".local/bin/aider");
    let shim = fx.home.join("shims/aider");
    fx.write(
        &real,
        "#!/bin/sh\necho real-aider \"$@\"; ls ~/.aider >/dev/null && echo has-state\n",
    );
    fx.write(&shim, "#!/bin/sh\n# kennel-shim\necho SHIM; exit 3\n");
    for p in [&real, &shim] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}:/usr/local/bin:/usr/bin:/bin",
        shim.parent().unwrap().display(),
        real.parent().unwrap().display()
    );
    let out = fx
        .kennel()
        .env("PATH", path)
        .args(["aider", "--model", "x"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "real-aider --model x\nhas-state\n");
}

#[test]
fn explain_and_profiles_print_without_values() {
    let fx = Fixture::new("explain");
    let out = fx
        .kennel()
        .env("ANTHROPIC_API_KEY", SECRET)
        .args(["explain", "claude", "--json"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["profile"], "claude");
    assert!(!stdout(&out).contains(SECRET));
    assert!(stdout(&out).contains("ANTHROPIC_API_KEY"));
    let out = fx.kennel_with(&["explain", "aider"]);
    assert!(stdout(&out).contains(".aider"), "{}", stdout(&out));
    // The system calls the sandbox refuses, and why; not for the systemd backend, whose
    // filter is systemd's.
    assert!(
        stdout(&out).contains("  - ioctl(TIOCSTI): typing into the terminal"),
        "{}",
        stdout(&out)
    );
    let out = fx.kennel_with(&["explain", "aider", "--backend", "systemd"]);
    assert!(
        !stdout(&out).contains("system calls refused"),
        "{}",
        stdout(&out)
    );
    let out = fx.kennel_with(&["profiles"]);
    let names: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        ["aider", "claude", "codex", "default", "gemini", "goose", "opencode", "pi"]
    );
}

#[test]
fn a_copied_back_symlink_stays_a_symlink() {
    let fx = Fixture::new("copy-back-link");
    fx.write(&fx.home.join("dotfiles/claude.json"), "{}\n");
    std::os::unix::fs::symlink("dotfiles/claude.json", fx.home.join(".claude.json")).unwrap();
    let out = fx.kennel_with(&[
        "run",
        "--profile",
        "claude",
        "--",
        "sh",
        "-c",
        "echo changed > ~/.claude.json.tmp && mv ~/.claude.json.tmp ~/.claude.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let link = fx.home.join(".claude.json");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_to_string(fx.home.join("dotfiles/claude.json")).unwrap(),
        "changed\n"
    );
}

/// Kills kennel (SIGKILL) once its sandbox wrote `~/left-behind` and said `started`.
fn kill_kennel_after_a_write(fx: &Fixture) {
    let mut child = fx.spawn_sandboxed("echo kept > ~/left-behind; echo started; sleep 30");
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut stdout_pipe, &mut first).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
}

/// The native backend's ephemeral home is a tmpfs of the sandbox's: a kennel killed by
/// SIGKILL leaves nothing on disk, and nothing is reported at the next start.
#[test]
fn a_killed_kennels_home_in_memory_leaves_nothing_on_disk() {
    let fx = Fixture::new("killed-memory");
    kill_kennel_after_a_write(&fx);
    let out = fx.sandboxed("true");
    assert!(!stderr(&out).contains("was left at"), "{}", stderr(&out));
    let found = fx.as_user("find \"$TMPDIR\" -name left-behind");
    assert_eq!(stdout(&found), "", "the killed sandbox's home is on disk");
    let listed = fx.kennel_with(&["homes"]);
    assert!(
        !stdout(&listed).contains("kennel-home-"),
        "{}",
        stdout(&listed)
    );
}

/// The systemd backend's home is a folder on disk: one left by a killed kennel is named at
/// the next start, with what it holds, and `kennel homes` lists and removes it.
#[test]
fn a_home_left_by_a_killed_kennel_is_reported_not_lost() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("killed").with_backend("systemd");
    kill_kennel_after_a_write(&fx);
    // The note names the folder, and that folder holds what the killed sandbox wrote.
    let mut left = None;
    common::eventually(10, || {
        let out = fx.sandboxed("true");
        left = stderr(&out)
            .lines()
            .filter_map(|l| l.strip_prefix("kennel: an earlier sandbox's home was left at "))
            .filter_map(|l| l.split(" (its kennel was killed)").next())
            .map(std::path::PathBuf::from)
            .find(|dir| fs::read_to_string(dir.join("left-behind")).is_ok_and(|t| t == "kept\n"));
        left.is_some()
    });
    let left = left.expect("the home left behind was not reported");
    // `kennel homes` lists it; `kennel homes --remove` removes it, and only it.
    let listed = fx.kennel_with(&["homes"]);
    assert!(
        stdout(&listed).contains(&format!("{}  (", left.display())),
        "{}",
        stdout(&listed)
    );
    let removed = fx.kennel_with(&["homes", "--remove"]);
    assert!(
        stdout(&removed).contains(&format!("removed {}", left.display())),
        "{}",
        stdout(&removed)
    );
    assert!(!left.exists());
    let out = fx.sandboxed("true");
    assert!(!stderr(&out).contains("was left at"), "{}", stderr(&out));
}

/// Sandboxes started at the same moment never take each other's home for one that a
/// killed kennel left: a home is named as such only once its kennel holds its lock.
#[test]
fn concurrent_starts_never_report_a_living_sandboxs_home() {
    let fx = Fixture::new("concurrent");
    let children: Vec<_> = (0..24)
        .map(|_| fx.spawn_sandboxed("echo x > ~/written; true"))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(
            !err.contains("was left at"),
            "a false stale-home note: {err}"
        );
        assert!(!err.contains("more homes of earlier sandboxes"), "{err}");
    }
}

/// kennel leaves what it built to its exit, unfreed (bench/README.md), but never the
/// ephemeral home's folder: that is gone by the time kennel returns. The native backend
/// makes none on disk at all.
#[test]
fn an_ephemeral_home_is_removed_when_kennel_returns() {
    for backend in ["native", "systemd"] {
        if backend == "systemd" && common::skip_without_user_manager() {
            return;
        }
        let fx = Fixture::new("home-gone").with_backend(backend);
        let out = fx.sandboxed("echo written > ~/note");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("~/note"), "{}", stderr(&out));
        let uid = common::env()
            .setpriv
            .map_or_else(|| nix::unistd::getuid().as_raw(), |(uid, _)| uid);
        let homes = fx.dir.join("tmp").join(format!("kennel-{uid}"));
        let left: Vec<_> = fs::read_dir(&homes)
            .unwrap_or_else(|e| panic!("{}: {e}", homes.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{backend}: homes left behind: {left:?}");
        let found = fx.as_user("find \"$TMPDIR\" -name note");
        assert_eq!(stdout(&found), "", "{backend}: the home's file is on disk");
    }
}
