#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Behaviour tests of the sandbox: a real kennel, run as an unprivileged user, tries to break
//! each promise of the default policy, on every backend. The promises that only the native
//! backend keeps have a companion test showing that the landlock backend says so.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use common::{
    env, eventually, processes_with, processes_with_argument, stderr, stdout, Fixture, SECRET,
};

fn secrets_in_home_are_invisible(backend: &'static str) {
    let fx = Fixture::new("secrets").with_backend(backend);
    let out = fx.sandboxed(
        r#"cat ~/.ssh/id_ed25519 ~/.aws/credentials ~/.bashrc 2>&1; echo "--"; ls -A ~; echo "--"; ls -A /home; echo "--"; ls -A /run/user"#,
    );
    let text = stdout(&out);
    assert!(!text.contains(SECRET), "a secret leaked: {text}");
    if common::is_landlock(backend) {
        // Without a mount view the home is unreadable rather than empty.
        return;
    }
    let part = |n: usize| -> Vec<&str> {
        text.split("--\n")
            .nth(n)
            .unwrap_or_default()
            .lines()
            .collect()
    };
    // The git identity is bound read-only; `project` is the path to the workspace.
    assert_eq!(part(1), vec![".gitconfig", "project"], "{text}");
    // Other homes are gone; only the way to this one is left (none when it is elsewhere).
    let way: Vec<String> = fx
        .home
        .strip_prefix("/home")
        .ok()
        .and_then(|rel| rel.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .into_iter()
        .collect();
    assert_eq!(part(2), way, "{text}");
    assert!(part(3).is_empty(), "/run/user must be empty: {text}");
}

fn writes_outside_the_workspace_fail_or_vanish(backend: &'static str) {
    let fx = Fixture::new("writes").with_backend(backend);
    let sibling = fx.home.join("other-repo");
    fs::create_dir_all(&sibling).unwrap_or_else(|e| panic!("{e}"));
    fs::write(sibling.join("file"), "original").unwrap_or_else(|e| panic!("{e}"));
    fx.chown(&sibling);
    let out = fx.sandboxed(&format!(
        r#"
        for f in /usr/kennel-x /etc/kennel-x /var/kennel-x; do
            if touch "$f" 2>/dev/null; then echo "WROTE $f"; fi
        done
        echo planted >> ~/.bashrc
        mkdir -p {sib} && echo changed > {sib}/file
        echo planted > /var/tmp/kennel-x
        true"#,
        sib = sibling.display()
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("WROTE"), "{}", stdout(&out));
    let bashrc = fs::read_to_string(fx.home.join(".bashrc")).unwrap_or_default();
    assert!(!bashrc.contains("planted"), "~/.bashrc was changed");
    let file = fs::read_to_string(sibling.join("file")).unwrap_or_default();
    assert_eq!(file, "original", "a sibling repository was changed");
    assert!(
        !Path::new("/var/tmp/kennel-x").exists(),
        "host /var/tmp was written"
    );
}

fn writes_in_the_workspace_persist_and_belong_to_the_user(backend: &'static str) {
    let fx = Fixture::new("workspace").with_backend(backend);
    let out = fx.sandboxed("pwd; echo made-inside > new.txt && echo made > ../top.txt");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        fx.repo.join("sub").display().to_string()
    );
    let new = fx.repo.join("sub/new.txt");
    assert_eq!(
        fs::read_to_string(&new).unwrap_or_default(),
        "made-inside\n"
    );
    assert_eq!(fx.owner(&new), env().uid, "files must belong to the user");
    assert!(fx.repo.join("top.txt").exists());
}

fn git_add_and_commit_work_inside(backend: &'static str) {
    let fx = Fixture::new("git").with_backend(backend);
    let out = fx.sandboxed(
        "echo change > change.txt && git add change.txt && git commit -q -m inside && git status --short",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = fx.as_user(&format!("git -C '{}' log --format=%s", fx.repo.display()));
    assert_eq!(stdout(&log), "inside\ninitial\n");
}

fn git_commit_works_in_a_linked_worktree(backend: &'static str) {
    let fx = Fixture::new("worktree").with_backend(backend);
    let wt = fx.home.join("wt");
    let setup = fx.as_user(&format!(
        "git -C '{}' worktree add -q -b feature '{}'",
        fx.repo.display(),
        wt.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = fx.kennel_in(
        &wt,
        "echo wt > wt.txt && git add wt.txt && git commit -q -m in-worktree && git log --format=%s -1",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in-worktree\n");
    let log = fx.as_user(&format!(
        "git -C '{}' log --format=%s -1 feature",
        fx.repo.display()
    ));
    assert_eq!(stdout(&log), "in-worktree\n");
}

fn host_tmp_is_invisible_and_tmp_is_private(backend: &'static str) {
    let fx = Fixture::new("tmp").with_backend(backend);
    let planted = Path::new("/tmp").join(format!("kennel-host-secret-{}", std::process::id()));
    fs::write(&planted, SECRET).unwrap_or_else(|e| panic!("{e}"));
    let out = fx.sandboxed(&format!(
        "ls -A /tmp; cat {} 2>/dev/null; echo inside > ${{TMPDIR:-/tmp}}/made-inside && cat ${{TMPDIR:-/tmp}}/made-inside",
        planted.display()
    ));
    let _ = fs::remove_file(&planted);
    let text = stdout(&out);
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains("kennel-host-secret"), "{text}");
    assert!(text.contains("inside"), "/tmp must be writable: {text}");
    assert!(!Path::new("/tmp/made-inside").exists());
}

fn secret_environment_variables_are_dropped(backend: &'static str) {
    let fx = Fixture::new("env").with_backend(backend);
    let mut cmd = fx.kennel();
    cmd.args(["run", "--backend", backend, "--", "env"]);
    // systemd-run itself talks to the manager over this bus: only a real one will do.
    if backend != "systemd" {
        cmd.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1/bus");
    }
    let out = cmd
        .env("SSH_AUTH_SOCK", "/run/user/1/ssh")
        .env("GPG_AGENT_INFO", "x")
        .env("DISPLAY", ":0")
        .env("WAYLAND_DISPLAY", "wayland-0")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("GITHUB_TOKEN", SECRET)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    for name in [
        "SSH_AUTH_SOCK",
        "GPG_AGENT_INFO",
        "DBUS_SESSION_BUS_ADDRESS",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "AWS_SECRET_ACCESS_KEY",
        "GITHUB_TOKEN",
    ] {
        assert!(!text.contains(&format!("{name}=")), "{name} passed: {text}");
    }
    assert!(!text.contains(SECRET));
    assert!(text.contains("LC_ALL=C.UTF-8"), "{text}");
    assert!(
        text.contains(&format!("HOME={}\n", fx.home.display())),
        "{text}"
    );
}

fn exit_status_and_signal_status_pass_through(backend: &'static str) {
    let fx = Fixture::new("status").with_backend(backend);
    assert_eq!(fx.sandboxed("exit 7").status.code(), Some(7));
    assert_eq!(fx.sandboxed("exit 0").status.code(), Some(0));
    assert_eq!(fx.sandboxed("kill -TERM $$").status.code(), Some(128 + 15));
    let out = fx
        .kennel()
        .args(["run", "--", "no-such-program-kennel"])
        .output();
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no-such-program-kennel"),
        "{}",
        stderr(&out)
    );
}

fn no_privileges(backend: &'static str) {
    let fx = Fixture::new("privs").with_backend(backend);
    let out = fx.sandboxed("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status");
    let text = stdout(&out);
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("CapPrm:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
}

/// Each writable tmpfs of the sandbox has a size (issue 17, item 8): unbounded, each took
/// half the host's RAM, in pages the OOM killer cannot reclaim. 1 GiB by default; the
/// user's config sets it. The ephemeral home is one of them (kept in memory, issue 19).
#[test]
fn native_tmpfs_are_bounded() {
    let fx = Fixture::new("tmpfs-size");
    let out = fx.sandboxed("df -B1 --output=size /tmp /var/tmp /dev/shm ~ | tail -n +2");
    let text = stdout(&out);
    let sizes: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(
        sizes,
        vec![(1u64 << 30).to_string(); 4],
        "{text} {}",
        stderr(&out)
    );

    fx.user_config("version = 1\n[defaults]\ntmpfs-size = \"8M\"\n");
    let out = fx.sandboxed(
        r#"for d in /tmp /var/tmp /dev/shm ~; do
            head -c 16777216 /dev/zero 2>&1 > $d/big; echo "$d status=$?"
            ls -l $d/big | awk '{print $5}'
        done
        mkdir /tmp/many && cd /tmp/many && i=0
        while [ $i -lt 1100 ]; do printf "" 2>/dev/null > f$i || break; i=$((i+1)); done
        echo "files=$i""#,
    );
    let text = stdout(&out);
    let home = fx.home.display().to_string();
    for d in ["/tmp", "/var/tmp", "/dev/shm", home.as_str()] {
        assert!(
            text.contains(&format!("{d} status=1")),
            "{text} {}",
            stderr(&out)
        );
    }
    assert!(
        text.contains("No space left on device"),
        "{text} {}",
        stderr(&out)
    );
    assert!(!text.contains("16777216"), "{text}");
    // 8 MiB: 1024 files and folders at most (one per 8 KiB, at least 1024).
    assert!(
        text.lines()
            .any(|l| l.starts_with("files=") && l != "files=1100"),
        "{text}"
    );
}

#[test]
fn native_has_its_own_pid_namespace_and_no_capability_at_all() {
    let fx = Fixture::new("pidns");
    let out = fx.sandboxed(
        "grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status; echo pid=$$; ls /proc | grep -c '^[0-9]'",
    );
    let text = stdout(&out);
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("CapBnd:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    // PID 1 is kennel's init, the shell is its child; only a handful of processes exist.
    assert!(text.contains("pid=2\n"), "{text}");
    let count: usize = text
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(999);
    assert!(count <= 4, "host processes are visible: {text}");
}

/// The native root is built with the umask cleared, so that its folders get their exact
/// modes when made: they must not depend on the user's umask, and the command must get
/// that umask back.
#[test]
fn native_root_modes_do_not_follow_the_umask_but_the_command_does() {
    let fx = Fixture::new("umask");
    let out = fx.kennel_via_shell(r#"umask 077; exec "$0" run -- sh -c 'umask; stat -c "%a %n" /run /home /dev /tmp /run/kennel/sandbox'"#);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "0077\n755 /run\n755 /home\n755 /dev\n1777 /tmp\n644 /run/kennel/sandbox\n"
    );
}

/// An empty folder of the host's `/` is an empty folder of the sandbox's root rather than a
/// bind (one mount and one Landlock rule fewer): it must look the same, and one with
/// something in it must still be bound. Needs a folder at the host's `/`, so only as root.
#[test]
fn an_empty_top_level_folder_looks_the_same_and_a_full_one_is_bound() {
    if common::skip_unless_root("creating a folder at the host's /") {
        return;
    }
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let fx = Fixture::new("empty-top");
    let top = Remove(Path::new("/").join(format!("kennel-test-{}", std::process::id())));
    fs::create_dir(&top.0).unwrap_or_else(|e| panic!("{e}"));
    let name = top.0.display().to_string();
    let script = format!(
        r#"stat -c "%F %a" {name}; ls -A {name}; touch {name}/x 2>/dev/null && echo WROTE; true"#
    );
    let out = fx.sandboxed(&script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "directory 755\n");
    fs::write(top.0.join("inside"), "seen").unwrap_or_else(|e| panic!("{e}"));
    let out = fx.sandboxed(&format!("{script}; cat {name}/inside"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "directory 755\ninside\nseen");
}

/// The native root: everything read-only and nosuid but the places meant for writing; the
/// devices stay usable on their read-only `/dev`; a read-only place inside a writable one
/// (`.git/hooks` in the workspace) and a writable one inside a read-only one (the home in
/// `/home`) each keep their own state.
#[test]
fn native_root_is_read_only_but_where_writing_is_meant() {
    let fx = Fixture::new("rootflags");
    let out = fx.sandboxed(
        r#"
        for d in / /home /run /dev /usr /proc/sys .git/hooks; do
            touch "$d/kennel-x" 2>/dev/null && echo "WROTE $d"
        done
        for d in /tmp /var/tmp /dev/shm home workspace; do
            case $d in home) p=~ ;; workspace) p=. ;; *) p=$d ;; esac
            touch "$p/kennel-x" && echo "ok $d"
        done
        echo x > /dev/null && echo x > /dev/full 2>/dev/null; echo full=$?
        head -c 4 /dev/urandom | wc -c
        grep -vc nosuid /proc/self/mountinfo
        true"#,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!text.contains("WROTE"), "{text}");
    for d in ["/tmp", "/var/tmp", "/dev/shm", "home", "workspace"] {
        assert!(
            text.contains(&format!("ok {d}\n")),
            "{d} is not writable: {text}"
        );
    }
    // /dev/null takes the write; /dev/full answers ENOSPC, as a device does.
    assert!(text.contains("full=1\n4\n"), "{text}");
    assert!(text.ends_with("\n0\n"), "a mount without nosuid: {text}");
}

/// A read-only mount of the host inside the workspace (the kernel locks it read-only in the
/// sandbox): the workspace is still writable, that mount stays read-only, and kennel starts.
#[test]
fn a_read_only_host_mount_inside_the_workspace_stays_read_only() {
    if common::skip_unless_root("mounting on the host") {
        return;
    }
    let fx = Fixture::new("romount");
    let inside = fx.repo.join("vendor");
    fs::create_dir_all(&inside).unwrap_or_else(|e| panic!("{e}"));
    fx.chown(&inside);
    let mount = |args: &[&str]| {
        let status = std::process::Command::new("mount")
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("mount: {e}"));
        assert!(status.success(), "mount {args:?}");
    };
    let target = inside.to_string_lossy().into_owned();
    mount(&["--bind", &target, &target]);
    mount(&["-o", "remount,bind,ro", &target]);
    let out = fx.sandboxed(
        "touch vendor/x 2>/dev/null && echo WROTE-VENDOR; touch top && echo ok-top; true",
    );
    let _ = std::process::Command::new("umount").arg(&target).status();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ok-top"),
        "the workspace is not writable: {text}"
    );
    assert!(!text.contains("WROTE-VENDOR"), "{text}");
}

/// What the landlock backend cannot keep, it says at start: each promise that only the
/// native backend keeps is named in its notice.
#[test]
fn landlock_backend_names_what_it_cannot_keep() {
    let fx = Fixture::new("lost").with_backend("landlock");
    let out = fx.sandboxed("echo pid=$$");
    let err = stderr(&out);
    for lost in [
        "a private /tmp",
        "an empty writable home",
        "a PID namespace",
        "if kennel itself is killed",
        "read-only git hooks",
    ] {
        assert!(err.contains(lost), "`{lost}` not named: {err}");
    }
    assert!(
        !stdout(&out).contains("pid=2\n"),
        "no PID namespace on this backend"
    );
}

#[test]
fn killing_kennel_kills_the_whole_sandbox() {
    let fx = Fixture::new("sigkill");
    let marker = format!("4242.{}", std::process::id());
    let mut child = fx.spawn_sandboxed(&format!("sleep {marker} & sleep {marker}; wait"));
    assert!(
        eventually(10, || processes_with(&marker).len() >= 2),
        "the sandboxed sleeps never started"
    );
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.signal(), Some(9));
    assert!(
        eventually(5, || processes_with(&marker).is_empty()),
        "sandbox processes outlived kennel: {:?}",
        processes_with(&marker)
    );
}

/// The native sandbox's init reports the command's status, then waits for kennel's exit to
/// end it (so that the teardown of the namespaces does not delay kennel): it must not
/// outlive kennel. Its command line is kennel's own (it is a clone), marker included.
#[test]
fn the_sandbox_init_does_not_outlive_kennel() {
    let fx = Fixture::new("initgone");
    let marker = format!("init-gone-{}", std::process::id());
    let out = fx.sandboxed(&format!("true {marker}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        eventually(5, || processes_with_argument(&marker).is_empty()),
        "a process of the sandbox outlived kennel: {:?}",
        processes_with_argument(&marker)
    );
}

/// kennel starts at its own entry point rather than Rust's (bench/README.md) and must do
/// what Rust's start-up did for it. Started with its standard output closed, the first
/// descriptor it made would take number 1, and the command would inherit it as its output:
/// a pipe of kennel's own. It must be /dev/null instead.
#[test]
fn a_closed_standard_output_is_not_reused_for_kennels_own_files() {
    let fx = Fixture::new("closed-stdout");
    let out = fx.kennel_via_shell(
        r#"exec "$0" run -- sh -c 'echo "fd1=$(readlink /proc/$$/fd/1)" >&2; exit 7' >&-"#,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("fd1=/dev/null"), "{err}");
}

/// The other half of Rust's start-up that kennel does itself: SIGPIPE ignored in the
/// supervisor, which writes to the user's terminal or pipe for as long as the command runs.
#[test]
fn the_supervisor_ignores_sigpipe() {
    use std::io::BufRead;
    let fx = Fixture::new("supervisor-sigpipe");
    let mut child = fx.spawn_sandboxed("echo started; sleep 30");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line, "started\n");
    // setpriv replaces itself with kennel: the child's pid is the supervisor's.
    let status = fs::read_to_string(format!("/proc/{}/status", child.id()));
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait();
    let status = status.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        common::ignores_sigpipe(&status),
        "SIGPIPE kills the supervisor: {status}"
    );
}

fn a_detached_daemon_does_not_outlive_the_command(backend: &'static str) {
    let fx = Fixture::new("daemon").with_backend(backend);
    // A number (sleep's argument) of this backend's own, as the backends' tests run at once
    // (their names differ in length).
    let marker = format!("4343.{}{}", std::process::id(), backend.len());
    let out = fx.sandboxed(&format!(
        "setsid sh -c 'sleep {marker}' </dev/null >/dev/null 2>&1 & sleep 0.2; exit 3"
    ));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Gone by the time kennel returns, not some time later.
    assert!(
        processes_with(&marker).is_empty(),
        "a daemon outlived the sandbox: {:?}",
        processes_with(&marker)
    );
}

fn refuses_to_run_from_home_or_root(backend: &'static str) {
    let fx = Fixture::new("refuse").with_backend(backend);
    // /tmp itself: the sandbox's private /tmp would cover it, and what the command wrote
    // there would be lost (binding the host's would expose its agent sockets).
    for dir in [
        fx.home.as_path(),
        fx.dir.as_path(),
        Path::new("/"),
        Path::new("/tmp"),
    ] {
        let out = fx
            .kennel()
            .args(["run", "--backend", backend, "--", "ls"])
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.status.code(),
            Some(2),
            "from {}: {}",
            dir.display(),
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.contains("refusing to run"), "{err}");
        assert_eq!(err.lines().count(), 1, "one clear sentence: {err}");
    }
}

fn dns_configuration_is_readable(backend: &'static str) {
    let fx = Fixture::new("dns").with_backend(backend);
    let host = fs::read_to_string("/etc/resolv.conf");
    let out = fx.sandboxed("cat /etc/resolv.conf");
    match host {
        Ok(text) => assert_eq!(stdout(&out), text, "{}", stderr(&out)),
        Err(_) => assert!(!out.status.success()),
    }
}

fn outside_a_repository_the_current_directory_is_the_workspace(backend: &'static str) {
    let fx = Fixture::new("norepo").with_backend(backend);
    let plain = fx.home.join("plain");
    fs::create_dir_all(&plain).unwrap_or_else(|e| panic!("{e}"));
    fx.chown(&plain);
    let out = fx.kennel_in(&plain, "echo x > here.txt && ls -A ~ 2>/dev/null; true");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not inside a git repository"),
        "{}",
        stderr(&out)
    );
    assert!(plain.join("here.txt").exists());
    assert!(
        !stdout(&out).contains("project"),
        "the repository must not be visible"
    );
}

#[test]
fn git_hooks_and_config_cannot_be_planted() {
    let fx = Fixture::new("githooks");
    // A repository without a hooks directory: the agent must not be able to create one.
    let setup = fx.as_user(&format!(
        "rm -rf '{}'",
        fx.repo.join(".git/hooks").display()
    ));
    assert!(setup.status.success());
    let planted = fx.dir.join("planted");
    let out = fx.sandboxed(&format!(
        r#"
        cd ..
        mkdir -p .git/hooks 2>/dev/null
        printf '#!/bin/sh\ntouch {p}\n' > .git/hooks/pre-commit 2>/dev/null && echo WROTE-HOOK
        git config core.hooksPath /tmp 2>/dev/null && echo WROTE-HOOKSPATH
        git config core.fsmonitor 'touch {p}' 2>/dev/null && echo WROTE-FSMONITOR
        echo '[core]' >> .git/config 2>/dev/null && echo WROTE-CONFIG
        echo x > .git/info/attributes 2>/dev/null && echo WROTE-INFO
        echo work > agent.txt && git add agent.txt && git commit -q -m by-agent && echo COMMITTED
        "#,
        p = planted.display()
    ));
    let text = stdout(&out);
    assert!(!text.contains("WROTE"), "{text}");
    assert!(text.contains("COMMITTED"), "{text}\n{}", stderr(&out));
    // The user's next commit, outside the sandbox, runs nothing the agent planted.
    let after = fx.as_user(&format!(
        "cd '{}' && echo y > user.txt && git add user.txt && git commit -q -m by-user && git status --short",
        fx.repo.display()
    ));
    assert!(after.status.success(), "{}", stderr(&after));
    assert!(!planted.exists(), "a planted hook ran outside the sandbox");
    let log = fx.as_user(&format!("git -C '{}' log --format=%s", fx.repo.display()));
    assert_eq!(stdout(&log), "by-user\nby-agent\ninitial\n");
}

fn existing_git_settings_that_run_commands_are_reported(backend: &'static str) {
    let fx = Fixture::new("gitreport").with_backend(backend);
    let setup = fx.as_user(&format!(
        "cd '{}' && git config core.fsmonitor ./watch.sh && git config alias.x '!echo hi' && printf '#!/bin/sh\\n' > .git/hooks/pre-push",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = fx.sandboxed("true");
    let err = stderr(&out);
    assert!(err.contains("core.fsmonitor = ./watch.sh"), "{err}");
    assert!(err.contains("alias.x"), "{err}");
    assert!(err.contains("hook pre-push"), "{err}");
    let clean = Fixture::new("gitclean").with_backend(backend);
    let out = clean.sandboxed("true");
    assert!(
        !stderr(&out).contains("kennel: note"),
        "a plain repository gets no note"
    );
}

on_every_backend!(
    secrets_in_home_are_invisible,
    writes_outside_the_workspace_fail_or_vanish,
    writes_in_the_workspace_persist_and_belong_to_the_user,
    git_add_and_commit_work_inside,
    git_commit_works_in_a_linked_worktree,
    host_tmp_is_invisible_and_tmp_is_private,
    secret_environment_variables_are_dropped,
    exit_status_and_signal_status_pass_through,
    no_privileges,
    a_detached_daemon_does_not_outlive_the_command,
    refuses_to_run_from_home_or_root,
    dns_configuration_is_readable,
    outside_a_repository_the_current_directory_is_the_workspace,
    existing_git_settings_that_run_commands_are_reported,
);

/// Where user namespaces are denied (here: inside a kennel sandbox, whose seccomp filter
/// refuses them), `--backend auto` falls back to landlock and says why and how to fix it.
#[test]
fn auto_falls_back_to_landlock_where_user_namespaces_are_denied() {
    let fx = Fixture::new("fallback");
    let inner = fx.repo.join("kennel-inner");
    fs::copy(&env().kennel, &inner).unwrap();
    fx.chown(&inner);
    let out = fx.sandboxed(&format!(
        "cd .. && {} run -- sh -c 'cat ~/.ssh/id_ed25519; echo inner-ran'",
        inner.display()
    ));
    let err = stderr(&out);
    assert!(
        err.contains("falling back to the landlock backend"),
        "{err}"
    );
    assert!(err.contains("To get the native backend back"), "{err}");
    assert!(stdout(&out).contains("inner-ran"), "{} {err}", stdout(&out));
    assert!(!stdout(&out).contains(SECRET));
}

#[test]
fn git_commit_works_in_a_submodule() {
    let fx = Fixture::new("submodule");
    let setup = fx.as_user(&format!(
        r#"set -e
        cd "$HOME" && mkdir lib && cd lib && git init -q -b main . && echo l > l && git add l && git commit -q -m lib
        cd '{repo}' && git -c protocol.file.allow=always submodule -q add "$HOME/lib" lib && git commit -q -m 'add lib'"#,
        repo = fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = fx.kennel_in(
        &fx.repo.join("lib"),
        "echo s > s && git add s && git commit -q -m in-submodule && git log --format=%s -1",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in-submodule\n");
}

/// `--backend native` where user namespaces are denied (here: inside a kennel sandbox,
/// whose seccomp filter refuses them) fails with one sentence naming the cause and a fix.
#[test]
fn native_backend_without_user_namespaces_says_why_and_what_to_do() {
    let fx = Fixture::new("nouserns");
    let inner = fx.repo.join("kennel-inner");
    fs::copy(&env().kennel, &inner).unwrap();
    fx.chown(&inner);
    let out = fx.sandboxed(&format!(
        "cd .. && {} run --backend native -- true; echo status=$?",
        inner.display()
    ));
    let err = stderr(&out);
    assert!(
        stdout(&out).contains("status=125"),
        "{} {err}",
        stdout(&out)
    );
    assert!(
        err.contains("does not let unprivileged users create user namespaces"),
        "{err}"
    );
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("user namespaces"))
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
