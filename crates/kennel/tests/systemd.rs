#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Behaviour tests of `--backend systemd`: the promises of the native tests, kept by a
//! transient unit of a real systemd user manager, run as an unprivileged user.
//!
//! They need the test user's manager: as root, run them through
//! `tests/with-user-manager.sh cargo test`; without one they fail when `CI` is set and
//! print `SKIP` otherwise.

mod common;

use std::fs;

use common::{env, skip_without_user_manager, stderr, stdout, Fixture, SECRET};

#[test]
fn environment_is_the_allow_list_even_against_the_managers_own() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-env");
    let out = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--", "env"])
        .env("SSH_AUTH_SOCK", "/run/user/1/ssh")
        .env("GPG_AGENT_INFO", "x")
        .env("DISPLAY", ":0")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("GITHUB_TOKEN", SECRET)
        .env("LC_ALL", "C.UTF-8")
        .env("TERM", "kennel-$TERM-$$")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    // The user manager adds its own environment to every unit; none of it may pass.
    for name in [
        "SSH_AUTH_SOCK",
        "GPG_AGENT_INFO",
        "DISPLAY",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
        "DBUS_SESSION_BUS_ADDRESS",
        "XDG_RUNTIME_DIR",
        "MANAGERPID",
        "INVOCATION_ID",
    ] {
        assert!(!text.contains(&format!("{name}=")), "{name} passed: {text}");
    }
    assert!(!text.contains(SECRET));
    assert!(text.contains("LC_ALL=C.UTF-8"), "{text}");
    // Values reach the command verbatim: no `$` expansion by the manager.
    assert!(text.contains("TERM=kennel-$TERM-$$\n"), "{text}");
    assert!(
        text.contains(&format!("HOME={}\n", fx.home.display())),
        "{text}"
    );
}

#[test]
fn arguments_reach_the_command_verbatim() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-args");
    let out = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--"])
        .args([
            "printf", "[%s]\\n", "$HOME", "${USER}", "a b", "it's", "$$", "", "%h 100%",
        ])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "[$HOME]\n[${USER}]\n[a b]\n[it's]\n[$$]\n[]\n[%h 100%]\n"
    );
}

#[test]
fn exit_status_and_signal_status_pass_through() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-status");
    assert_eq!(fx.systemd("exit 7").status.code(), Some(7));
    assert_eq!(fx.systemd("exit 0").status.code(), Some(0));
    // systemd itself reports SIGTERM as success and other signals as 255.
    assert_eq!(fx.systemd("kill -TERM $$").status.code(), Some(128 + 15));
    assert_eq!(fx.systemd("kill -KILL $$").status.code(), Some(128 + 9));
    let out = fx
        .kennel()
        .args([
            "run",
            "--backend",
            "systemd",
            "--",
            "no-such-program-kennel",
        ])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no-such-program-kennel"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_new_privileges_inside() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-privs");
    let out = fx.systemd("grep -E '^(NoNewPrivs|CapEff)' /proc/self/status");
    let text = stdout(&out);
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
}

#[test]
fn the_dry_run_prints_a_command_that_runs_when_pasted() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-dry");
    let dry = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--dry-run"])
        .args(["--", "sh", "-c", "echo pasted; ls -A ~"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    let line = stdout(&dry);
    assert_eq!(line.lines().count(), 1, "{line}");
    for part in [
        "systemd-run --user",
        "--pipe",
        "--wait",
        "--collect",
        "--quiet",
        "-p ProtectHome=tmpfs",
        "-p ProtectSystem=strict",
        "-p PrivateUsers=yes",
        "--unit=kennel-default-project-",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    // Pasted into the user's shell (whose environment supplies the -E values).
    let pasted = fx
        .user_command("sh")
        .arg("-c")
        .arg(&line)
        .env("XDG_RUNTIME_DIR", format!("/run/user/{}", env().uid))
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(pasted.status.success(), "{}", stderr(&pasted));
    assert_eq!(stdout(&pasted), "pasted\n.gitconfig\nproject\n");
}

/// Splits a line that `shell_word` quoted: plain words and `'...'` with `'\''` inside.
fn shell_split(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.trim_end().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if !quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Debian 12's systemd 252 accepts the original wrapper's properties in a user unit and
/// does not apply them unless `PrivateUsers=yes` is set: the inner check must catch that.
/// Rebuilt here from kennel's own command, keeping only the original wrapper's properties
/// (without PrivateUsers=yes the others, mounts and capability bounds, fail the unit
/// outright, which is closed too).
#[test]
fn regression_properties_silently_ignored_are_caught() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-ignored");
    let secret = fx.home.join(".ssh/id_ed25519");
    let dry = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--dry-run", "--", "cat"])
        .arg(&secret)
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    let words = shell_split(&stdout(&dry));
    let mut kept: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let dropped = [
            "PrivateUsers=",
            "Bind",
            "TemporaryFileSystem=",
            "ProtectKernelModules=",
            "RestrictSUIDSGID=",
            "LockPersonality=",
        ];
        if words[i] == "-p" && dropped.iter().any(|d| words[i + 1].starts_with(d)) {
            i += 2;
            continue;
        }
        kept.push(words[i].clone());
        i += 1;
    }
    let out = fx
        .user_command(&kept[0])
        .args(&kept[1..])
        .env("XDG_RUNTIME_DIR", format!("/run/user/{}", env().uid))
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(!stdout(&out).contains(SECRET), "a secret leaked");
    let version = common::user_manager().unwrap_or_default();
    if version.starts_with("252") || out.status.code() == Some(125) {
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("did not apply the sandbox"),
            "{}",
            stderr(&out)
        );
    } else {
        // A newer manager applies them without PrivateUsers=yes: cat cannot see the file.
        assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

#[test]
fn shell_split_reads_what_dry_run_writes() {
    assert_eq!(
        shell_split("a 'b c' 'it'\\''s' -p 'X=/a\\ b'\n"),
        vec!["a", "b c", "it's", "-p", "X=/a\\ b"]
    );
}

#[test]
fn the_inner_check_fails_closed_outside_a_sandbox() {
    let fx = Fixture::new("sd-verify");
    let out = fx
        .kennel()
        .args(["internal-verify-exec", "--empty"])
        .arg(&fx.home)
        .args(["--", "echo", "ran"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(!stdout(&out).contains("ran"));
    assert!(
        stderr(&out).contains("refusing to run the command"),
        "{}",
        stderr(&out)
    );
}

/// A user manager without the cgroup controllers delegated (cgroup v1 or hybrid hosts
/// such as this CI's) accepts MemoryMax= and TasksMax= and enforces nothing: kennel must
/// refuse there, and the limits must hold where it runs.
#[test]
fn resource_limits_are_enforced_or_refused() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-limits-real");
    let out = fx.systemd_in(
        &fx.repo,
        &["--memory", "256M", "--tasks", "64"],
        "d=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup); cat $d/memory.max $d/pids.max",
    );
    if out.status.code() == Some(125) {
        assert!(
            stderr(&out).contains("is not in effect"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("not delegated"), "{}", stderr(&out));
    } else {
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), "268435456\n64\n");
    }
}

#[test]
fn resource_limits_are_refused_on_the_native_backend_and_checked() {
    let fx = Fixture::new("sd-limits");
    for args in [
        vec!["run", "--memory", "1G", "--", "true"],
        vec![
            "run",
            "--backend",
            "systemd",
            "--memory",
            "lots",
            "--",
            "true",
        ],
        vec!["run", "--backend", "systemd", "--cpu", "-1", "--", "true"],
    ] {
        let out = fx
            .kennel()
            .args(&args)
            .current_dir(&fx.repo)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

#[test]
fn terminating_kennel_stops_the_whole_unit() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-stop");
    let marker = format!("4545.{}", std::process::id());
    let mut child = two_sleeps_in_a_unit(&fx, &marker);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exited = common::eventually(15, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("kennel did not exit after SIGTERM");
    }
    assert_none_left(&marker);
}

/// With a terminal, the command gets its own pseudo-terminal (`--pty`) of the same size,
/// and its exit status still comes back.
#[test]
fn with_a_terminal_the_command_gets_a_pty() {
    if skip_without_user_manager() {
        return;
    }
    let has_tmux = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if common::skip_unless(has_tmux, "tmux is not installed") {
        return;
    }
    let fx = Fixture::new("sd-pty");
    let socket = fx.dir.join("tmux.sock");
    let tmux = |args: &[&str]| {
        fx.user_command("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm")
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", env().uid))
            .output()
            .unwrap()
    };
    let kennel = env().kennel.display().to_string();
    let start = tmux(&["new-session", "-d", "-x", "100", "-y", "40", "sh"]);
    assert!(start.status.success(), "{}", stderr(&start));
    let screen = || stdout(&tmux(&["capture-pane", "-p"]));
    // The whole command on one line: keys typed before the unit starts would be read by
    // the outer shell's terminal.
    let line = format!(
        "{kennel} run --backend systemd -- sh -c 'echo tty=$(tty) size=$(stty size); exit 5'; echo status=$?"
    );
    tmux(&["send-keys", &line, "Enter"]);
    let done = common::eventually(20, || screen().contains("status=5"));
    let text = screen();
    tmux(&["kill-server"]);
    assert!(done, "{text}");
    assert!(text.contains("size=40 100"), "{text}");
    assert!(text.contains("tty=/dev/pts/"), "{text}");
}

#[test]
fn without_a_user_manager_kennel_says_so() {
    let fx = Fixture::new("sd-nomanager");
    let out = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--", "true"])
        .env("XDG_RUNTIME_DIR", &fx.dir)
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no systemd user manager is reachable"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// systemd splits BindPaths= at spaces and colons: kennel escapes them.
#[test]
fn a_workspace_with_spaces_colons_and_quotes_works() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-names");
    let odd = fx.home.join("my proj:1 'q\"");
    fs::create_dir_all(&odd).unwrap();
    if let Some((uid, gid)) = env().setpriv {
        // Not `fx.chown`: it quotes the path for a shell with single quotes.
        std::os::unix::fs::chown(&odd, Some(uid), Some(gid)).unwrap();
    }
    let init = fx
        .user_command("git")
        .args(["init", "-q", "."])
        .current_dir(&odd)
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", stderr(&init));
    let out = fx.systemd_in(&odd, &[], "pwd; echo inside > made.txt; ls -A ~");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("{}\n", odd.display())), "{text}");
    assert!(text.contains("my proj:1 'q\""), "{text}");
    assert!(!text.contains("project"), "{text}");
    assert_eq!(
        fs::read_to_string(odd.join("made.txt")).unwrap_or_default(),
        "inside\n"
    );
}

/// No CLI flag or profile turns the network off yet; the policy's `Network::Off` becomes
/// `PrivateNetwork=yes` plus an inner check. Both halves, on kennel's own command line:
/// with the property only loopback is left; without it the check refuses to start.
#[test]
fn network_off_is_applied_and_checked() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-net");
    let dry = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--dry-run", "--"])
        .args(["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    let words = shell_split(&stdout(&dry));
    let run = |private_network: bool| {
        let mut argv: Vec<String> = Vec::new();
        for w in &words {
            if w == "internal-verify-exec" {
                argv.push(w.clone());
                argv.push("--no-network".into());
                continue;
            }
            if w == "--" && private_network && !argv.iter().any(|a| a == "PrivateNetwork=yes") {
                argv.push("-p".into());
                argv.push("PrivateNetwork=yes".into());
            }
            argv.push(w.clone());
        }
        fx.user_command(&argv[0])
            .args(&argv[1..])
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", env().uid))
            .current_dir(&fx.repo)
            .output()
            .unwrap()
    };
    let off = run(true);
    assert!(off.status.success(), "{}", stderr(&off));
    assert_eq!(stdout(&off).trim(), "lo");
    let host_has_network = fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .any(|l| l.split(':').next().map(str::trim) != Some("lo"));
    if host_has_network {
        let on = run(false);
        assert_eq!(on.status.code(), Some(125), "{}", stderr(&on));
        assert!(
            stderr(&on).contains("network must be off"),
            "{}",
            stderr(&on)
        );
    }
}

/// No terminal injection into the user's shell (TIOCSTI): with a terminal as stdin the
/// command's terminal is the unit's own pty, so injected input never reaches the outer
/// shell; with a pipe as stdin and the terminal as stdout the unit does not have the
/// terminal as its controlling terminal, and the kernel refuses.
#[test]
fn terminal_injection_does_not_reach_the_users_shell() {
    if skip_without_user_manager() {
        return;
    }
    let has_tmux = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if common::skip_unless(has_tmux, "tmux is not installed") {
        return;
    }
    let fx = Fixture::new("sd-tiocsti");
    let pwned = fx.repo.join("pwned");
    // Pushes `touch PWNED` + newline into the input of the terminal on stdout.
    let script = format!(
        "for my $c (split //, \"touch {}\\n\") {{ ioctl(STDOUT, 0x5412, $c) or do {{ print \"tiocsti: $!\\n\"; last }} }}\n",
        pwned.display()
    );
    fs::write(fx.repo.join("sti.pl"), script).unwrap();
    fx.chown(&fx.repo.join("sti.pl"));
    let socket = fx.dir.join("tmux.sock");
    let tmux = |args: &[&str]| {
        fx.user_command("tmux")
            .arg("-S")
            .arg(&socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm")
            .env("XDG_RUNTIME_DIR", format!("/run/user/{}", env().uid))
            .current_dir(&fx.repo)
            .output()
            .unwrap()
    };
    let kennel = env().kennel.display().to_string();
    let start = tmux(&["new-session", "-d", "-x", "150", "-y", "40", "sh"]);
    assert!(start.status.success(), "{}", stderr(&start));
    let screen = || stdout(&tmux(&["capture-pane", "-p"]));
    for (n, stdin) in [(1, ""), (2, "true | ")] {
        // The shell computes the marker, so that the typed line itself does not match.
        let line =
            format!("{stdin}{kennel} run --backend systemd -- perl sti.pl; echo done-$((40+{n}))");
        tmux(&["send-keys", &line, "Enter"]);
        let done = common::eventually(20, || screen().contains(&format!("done-{}", 40 + n)));
        assert!(done, "{}", screen());
    }
    // Give an injected line the time the outer shell would need to run it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let text = screen();
    tmux(&["kill-server"]);
    assert!(
        !pwned.exists(),
        "input was injected into the outer shell: {text}"
    );
    // EPERM here; EIO where the kernel disables TIOCSTI altogether (legacy_tiocsti=0).
    assert!(text.contains("tiocsti: "), "{text}");
}

/// Regression: a SIGTERM that comes while systemd-run is still creating the unit found
/// nothing to stop, and the unit then ran on after kennel had gone.
#[test]
fn a_signal_during_unit_startup_still_stops_the_unit() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-early");
    let marker = format!("4747.{}", std::process::id());
    let mut child = unit_running(&fx, &format!("sleep {marker}"));
    let kennel = child.id();
    // As soon as kennel has started systemd-run, before the unit runs anything.
    let started = common::eventually(10, || {
        fs::read_to_string(format!("/proc/{kennel}/task/{kennel}/children"))
            .is_ok_and(|c| !c.trim().is_empty())
    });
    assert!(started, "systemd-run never started");
    let pid = nix::unistd::Pid::from_raw(kennel as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exited = common::eventually(5, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(exited, "kennel did not exit after SIGTERM");
    // Give a unit that would still start the time to do so, then none may be left.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_none_left(&marker);
}

/// SIGKILL cannot be caught, so kennel cannot stop its unit then: the kennel inside the
/// unit watches the outer one and ends the command when it is gone.
#[test]
fn killing_kennel_with_sigkill_ends_the_unit_too() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-sigkill");
    let marker = format!("4848.{}", std::process::id());
    let mut child = two_sleeps_in_a_unit(&fx, &marker);
    child.kill().unwrap();
    let _ = child.wait();
    assert_none_left(&marker);
}

/// Regression: with kennel installed in the home (`cargo install` puts it in
/// ~/.cargo/bin), the unit binds it in, and its mount point was reported at exit as a file
/// that a tool wrote into the sandbox's home.
#[test]
fn kennel_installed_in_the_home_is_not_reported_as_written_there() {
    if skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("sd-cargo");
    let installed = fx.home.join(".cargo/bin/kennel");
    fs::create_dir_all(installed.parent().unwrap()).unwrap();
    fs::copy(&common::env().kennel, &installed).unwrap();
    fx.chown(&fx.home);
    let out = fx
        .user_command(&installed)
        .args(["run", "--backend", "systemd", "--", "sh", "-c", "echo ran"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "ran\n", "{}", stderr(&out));
    assert!(!stderr(&out).contains("discarded"), "{}", stderr(&out));
}

/// `kennel run --backend systemd -- sh -c SCRIPT`, started and left running.
fn unit_running(fx: &Fixture, script: &str) -> std::process::Child {
    fx.kennel()
        .args(["run", "--backend", "systemd", "--", "sh", "-c", script])
        .current_dir(&fx.repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A unit running two `sleep MARKER`, once both have started.
fn two_sleeps_in_a_unit(fx: &Fixture, marker: &str) -> std::process::Child {
    let child = unit_running(fx, &format!("sleep {marker} & sleep {marker}; wait"));
    assert!(
        common::eventually(10, || common::processes_with(marker).len() >= 2),
        "the sandboxed sleeps never started"
    );
    child
}

/// No process marked `marker` is left (within a few seconds of teardown).
fn assert_none_left(marker: &str) {
    assert!(
        common::eventually(10, || common::processes_with(marker).is_empty()),
        "sandbox processes outlived kennel: {:?}",
        common::processes_with(marker)
    );
}
