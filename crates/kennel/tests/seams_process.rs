#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! kennel's own processes carry nothing inside (issue 17, items 1 to 3): the sandbox's init
//! and network helper are copies of kennel, made without exec, and the command must not
//! reach their environment, memory or descriptors; descriptors kennel inherits from its
//! caller pass only when asked. Each test runs the attack as the unprivileged test user.

mod common;

use std::fs;

use common::{stderr, stdout, Fixture, SECRET};

/// A variable of the user's that the allow-list drops.
const TOKEN_VAR: &str = "KENNEL_TEST_API_TOKEN";

/// Every /proc entry inside that could show another process's environment or memory.
const READ_OTHERS: &str = r#"
for p in /proc/[0-9]*; do
    [ "$p" = /proc/$$ ] && continue
    cat "$p/environ" 2>/dev/null
    head -c 4096 "$p/mem" 2>/dev/null
done
python3 - <<'EOF'
import os
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    if int(pid) == os.getpid() or int(pid) == os.getppid():
        continue
    try:
        maps = open(f'/proc/{pid}/maps').read().split('\n')
    except OSError as e:
        print('maps', pid, 'refused', e.errno)
        continue
    with open(f'/proc/{pid}/mem', 'rb') as mem:
        for line in maps:
            if '[stack]' in line:
                lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
                mem.seek(lo)
                print(mem.read(hi - lo))
EOF
echo done
"#;

fn environment_of_kennels_processes_is_unreadable(backend: &'static str, net: &str) {
    let fx = Fixture::new("init-environ").with_backend(backend);
    let out = fx
        .kennel()
        .args(["run", "--backend", backend, "--net", net, "--", "sh", "-c"])
        .arg(READ_OTHERS)
        .env(TOKEN_VAR, SECRET)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(text.contains("done"), "{text} {}", stderr(&out));
    assert!(
        !text.contains(SECRET),
        "{backend}: the user's dropped variable was read from another process inside: {text}"
    );
}

#[test]
fn native_inits_environment_and_memory_are_unreadable() {
    environment_of_kennels_processes_is_unreadable("native", "off");
}

#[test]
fn native_network_helpers_environment_and_memory_are_unreadable() {
    environment_of_kennels_processes_is_unreadable("native", "allow-list");
}

#[test]
fn landlock_supervisors_environment_and_memory_are_unreadable() {
    // The landlock backend has no PID namespace: kennel itself is the command's parent.
    environment_of_kennels_processes_is_unreadable("landlock", "on");
}

#[test]
fn auto_without_user_namespaces_supervisors_environment_and_memory_are_unreadable() {
    environment_of_kennels_processes_is_unreadable(common::AUTO, "on");
}

/// What the init holds (the home's lock, a directory of the host's mount namespace; the
/// pipe that reports the command's status; the net log) through /proc/1/fd and
/// pidfd_getfd.
const USE_INITS_FDS: &str = r#"
ls -l /proc/1/fd/ 2>&1
ls /proc/1/fd/3/ 2>/dev/null && echo LISTED-INITS-FD
for fd in /proc/1/fd/*; do
    printf '\0\0\0\0' 2>/dev/null >"$fd" && echo WROTE "$fd"
done
python3 - <<'EOF'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
pidfd = libc.syscall(434, 1, 0)  # pidfd_open(1, 0)
print('pidfd', pidfd, ctypes.get_errno())
if pidfd >= 0:
    for fd in range(0, 64):
        got = libc.syscall(438, pidfd, fd, 0)  # pidfd_getfd
        if got >= 0:
            print('GOT-FD', fd, os.readlink(f'/proc/self/fd/{got}'))
EOF
echo done
exit 3
"#;

#[test]
fn the_inits_descriptors_are_unreachable_and_its_report_cannot_be_forged() {
    let fx = Fixture::new("init-fds");
    let out = fx
        .kennel()
        .args([
            "run",
            "--net",
            "allow-list",
            "--",
            "sh",
            "-c",
            USE_INITS_FDS,
        ])
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(text.contains("done"), "{text} {}", stderr(&out));
    assert!(!text.contains("LISTED-INITS-FD"), "{text}");
    assert!(!text.contains("WROTE"), "{text}");
    assert!(!text.contains("GOT-FD"), "{text}");
    // The command's own status, not one written into the init's report pipe.
    assert_eq!(out.status.code(), Some(3), "{text} {}", stderr(&out));
}

fn inherited_descriptors_stay_outside(backend: &'static str) {
    let fx = Fixture::new("inherited-fds").with_backend(backend);
    // A caller (an IDE, a script) left a descriptor open on a secret, without O_CLOEXEC.
    let script = format!(
        r#"exec 7<"$HOME/.ssh/id_ed25519"
        "$0" run --backend {backend} -- sh -c 'cat <&7; echo; ls /proc/self/fd; echo done' 2>&1"#
    );
    let out = fx.kennel_via_shell(&script);
    let text = stdout(&out);
    assert!(text.contains("done"), "{backend}: {text}");
    assert!(
        !text.contains(SECRET),
        "{backend}: an inherited descriptor reached the sandbox: {text}"
    );
}

#[test]
fn native_inherited_descriptors_stay_outside() {
    inherited_descriptors_stay_outside("native");
}

#[test]
fn landlock_inherited_descriptors_stay_outside() {
    inherited_descriptors_stay_outside("landlock");
}

#[test]
fn auto_without_user_namespaces_inherited_descriptors_stay_outside() {
    inherited_descriptors_stay_outside(common::AUTO);
}

#[test]
fn a_descriptor_passes_when_asked() {
    let fx = Fixture::new("pass-fd");
    fx.as_user("echo shared-with-the-sandbox > \"$HOME/project/shared\"");
    let script = r#"exec 7<"$HOME/project/shared"
        "$0" run --pass-fd 7 -- sh -c 'cat <&7' 2>&1"#;
    let out = fx.kennel_via_shell(script);
    assert!(
        stdout(&out).contains("shared-with-the-sandbox"),
        "{}",
        stdout(&out)
    );
    // A descriptor that is not open is a usage error, not a silent no-op.
    let out = fx.kennel_via_shell(r#""$0" run --pass-fd 9 -- true"#);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--pass-fd 9"), "{}", stderr(&out));
}

/// "Nothing else of yours" (item 11): the user's files outside the home, in /srv, on a
/// drive under /mnt or /media, and the mail spool, are hidden like the home; so is what
/// the host keeps in /var/tmp.
fn your_files_outside_the_home_are_hidden(backend: &'static str) {
    if common::skip_unless_root("planting files in /srv, /mnt and /var/mail") {
        return;
    }
    let fx = Fixture::new("outside-home").with_backend(backend);
    let tag = format!("kennel-test-{}-{backend}", std::process::id());
    let mut planted = Vec::new();
    for top in ["/srv", "/mnt", "/media", "/var/mail", "/var/tmp"] {
        let dir = std::path::Path::new(top).join(&tag);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes"), SECRET).unwrap();
        fx.chown(&dir);
        planted.push(dir);
    }
    let script = planted
        .iter()
        .map(|d| format!("cat {}/notes 2>/dev/null; ", d.display()))
        .collect::<String>()
        + "echo done";
    let out = fx.sandboxed(&script);
    for dir in &planted {
        let _ = std::fs::remove_dir_all(dir);
    }
    let text = stdout(&out);
    assert!(text.contains("done"), "{backend}: {text} {}", stderr(&out));
    assert!(
        !text.contains(SECRET),
        "{backend}: a file of the user's outside the home was readable: {text}"
    );
}

#[test]
fn native_your_files_outside_the_home_are_hidden() {
    your_files_outside_the_home_are_hidden("native");
}

#[test]
fn landlock_your_files_outside_the_home_are_hidden() {
    your_files_outside_the_home_are_hidden("landlock");
}

#[test]
fn auto_without_user_namespaces_your_files_outside_the_home_are_hidden() {
    your_files_outside_the_home_are_hidden(common::AUTO);
}

#[test]
fn systemd_your_files_outside_the_home_are_hidden() {
    if common::skip_without_user_manager() {
        return;
    }
    your_files_outside_the_home_are_hidden("systemd");
}

/// Forks up to 60 children that wait, counting those the kernel allowed.
const FORK_BOMB: &str = r#"python3 -c '
import os, signal, time
kids = []
for i in range(60):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    kids.append(pid)
print("started=%d" % len(kids))
for pid in kids:
    os.kill(pid, signal.SIGKILL)
print("done")
'"#;

/// `--tasks N` on the native backend: a fork bomb inside stops at N processes and threads
/// of the sandbox (counted in its own user namespace), and kennel still ends normally.
#[test]
fn native_tasks_limit_stops_a_fork_bomb_inside() {
    let fx = Fixture::new("tasks");
    let out = fx
        .kennel()
        .args(["run", "--tasks", "30", "--", "sh", "-c"])
        .arg(FORK_BOMB)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    assert!(text.contains("done"), "{text} {}", stderr(&out));
    let started: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("started="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        started < 30,
        "{started} processes started under --tasks 30: {text}"
    );
    // Without the limit, the same script starts all 60.
    let out = fx.sandboxed(FORK_BOMB);
    assert!(stdout(&out).contains("started=60"), "{}", stdout(&out));
    // The landlock backend cannot count the sandbox apart: refused, never ignored.
    refused_on_landlock(&fx, &["--tasks", "30"]);
}

/// `kennel run --backend landlock FLAGS -- true` is refused (exit 2), never run without.
fn refused_on_landlock(fx: &Fixture, flags: &[&str]) {
    let out = fx
        .kennel()
        .args(["run", "--backend", "landlock"])
        .args(flags)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
}

/// `--memory` on the native backend where no memory cgroup is delegated to the user: refused
/// with what would work, never run unlimited.
#[test]
fn native_memory_limit_without_a_delegated_cgroup_is_refused() {
    let fx = Fixture::new("memory-refused");
    let out = fx
        .kennel()
        .args(["run", "--memory", "64M", "--", "echo", "RAN"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stdout(&out).contains("RAN"), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("needs a memory cgroup delegated to you"),
        "{err}"
    );
    assert!(
        err.contains("systemd-run --user --scope -p MemoryMax="),
        "{err}"
    );
    // The landlock backend cannot move the sandbox into one: refused too.
    refused_on_landlock(&fx, &["--memory", "64M"]);
}

/// `--memory` on the native backend, in a memory cgroup delegated to the user: the sandbox
/// gets a cgroup of its own inside it, with the limit; a process past it is killed by the
/// kernel and kennel says so; the sandbox's cgroup is removed at the end.
#[test]
fn native_memory_limit_holds_in_a_delegated_cgroup() {
    let Some(delegated) = common::cgroup::delegated("memory") else {
        return;
    };
    let fx = Fixture::new("memory");
    // kennel started in the delegated cgroup, as a user's session would put it there.
    let in_delegated = |script: &str| {
        fx.user_command("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > '{}/cgroup.procs' && exec \"$0\" run --memory 64M -- sh -c '{script}'",
                delegated.0.display()
            ))
            .arg(&common::env().kennel)
            .current_dir(&fx.repo)
            .output()
            .unwrap()
    };
    let out = in_delegated(
        "python3 -c \"x = bytearray(16 << 20); print(\\\"small-ok\\\")\"; cat /proc/self/cgroup",
    );
    let text = stdout(&out);
    assert!(text.contains("small-ok"), "{text} {}", stderr(&out));
    // What cgroup v1 does not count is said, not left for the user to find.
    assert!(
        stderr(&out).contains("counts no socket buffers"),
        "{}",
        stderr(&out)
    );
    let name = delegated
        .0
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains(":memory:") && l.contains(&format!("{name}/kennel-"))),
        "the command is not in a cgroup of the sandbox's: {text}"
    );
    // The sandbox tries to raise its own limit and to leave its cgroup for the delegated
    // one (same uid, files of the user's): /sys is read-only inside.
    let out = in_delegated(&format!(
        "c=$(grep :memory: /proc/self/cgroup | cut -d: -f3); \
         echo 4294967296 > /sys/fs/cgroup/memory$c/memory.limit_in_bytes && echo RAISED; \
         echo $$ > {}/cgroup.procs && echo LEFT; \
         python3 -c \"x = bytearray(200 << 20); print(\\\"ALLOCATED\\\")\"",
        delegated.0.display()
    ));
    assert!(!stdout(&out).contains("RAISED"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("LEFT"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("ALLOCATED"), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reached its memory limit"),
        "{}",
        stderr(&out)
    );
    let left: Vec<_> = fs::read_dir(&delegated.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("kennel-"))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the sandbox's cgroups were left: {left:?}");
}

/// A TMPDIR inside the workspace would put kennel's own folder (the sandbox's home, other
/// sessions' homes, the proxy's socket) where the sandbox can reach it: kennel keeps them
/// in /tmp then, and says so. A TMPDIR that is no folder gets the same, in one line.
#[test]
fn kennel_keeps_its_files_out_of_the_workspace_whatever_tmpdir_says() {
    let fx = Fixture::new("tmpdir-in-workspace");
    let inside = fx.repo.join("tmp");
    fx.as_user(&format!("mkdir -p '{}'", inside.display()));
    let out = fx
        .kennel()
        .env("TMPDIR", &inside)
        .args(["run", "--", "sh", "-c", "echo x > ~/note; echo ran"])
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let err = stderr(&out);
    assert!(stdout(&out).contains("ran"), "{err}");
    assert!(err.contains("is inside the workspace"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&inside).unwrap().flatten().collect();
    assert!(left.is_empty(), "kennel wrote into the workspace: {left:?}");
    let out = fx
        .kennel()
        .env("TMPDIR", "/nonexistent-kennel-tmpdir")
        .args(["run", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out)
            .lines()
            .filter(|l| l.contains("TMPDIR"))
            .count(),
        1,
        "{}",
        stderr(&out)
    );
}

/// A rule's path inside the workspace that an earlier session turned into a link to a
/// secret: every backend binds by path, following links. kennel refuses, naming the link.
fn a_rule_never_follows_a_link_the_sandbox_could_make(backend: &'static str) {
    let fx = Fixture::new("rule-link").with_backend(backend);
    fx.as_user("cd \"$HOME/project\" && ln -s \"$HOME/.ssh\" vendor");
    let vendor = fx.repo.join("vendor");
    let out = fx
        .kennel()
        .args(["run", "--backend", backend, "--ro"])
        .arg(&vendor)
        .args(["--", "sh", "-c", "cat vendor/id_ed25519; echo ran"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(
        !stdout(&out).contains(SECRET),
        "{backend}: {}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(2), "{backend}: {}", stderr(&out));
    assert!(
        stderr(&out).contains("leads through the link"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn native_a_rule_never_follows_a_link_the_sandbox_could_make() {
    a_rule_never_follows_a_link_the_sandbox_could_make("native");
}

#[test]
fn landlock_a_rule_never_follows_a_link_the_sandbox_could_make() {
    a_rule_never_follows_a_link_the_sandbox_could_make("landlock");
}

#[test]
fn auto_without_user_namespaces_a_rule_never_follows_a_link_the_sandbox_could_make() {
    a_rule_never_follows_a_link_the_sandbox_could_make(common::AUTO);
}

#[test]
fn systemd_a_rule_never_follows_a_link_the_sandbox_could_make() {
    if common::skip_without_user_manager() {
        return;
    }
    a_rule_never_follows_a_link_the_sandbox_could_make("systemd");
}
