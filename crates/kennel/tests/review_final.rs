#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! A review of the end check's survey thread and its signal mask, and of the seccomp
//! filter's fscrypt and chattr refusals, attacked as a prompt-injected agent inside the
//! sandbox would and run as the unprivileged test user.

mod common;

use std::process::{Child, Output};

use common::{deny_userns, env, stderr, stdout, Fixture};

/// `kennel run --backend auto -- sh -c SCRIPT` where the user namespace is created but its
/// mounts are refused (AppArmor's `unprivileged_userns` profile, Ubuntu 24.04): the native
/// backend fails only once its child has reported, after kennel noted and recorded what it
/// does first (the survey's thread started), and `auto` falls back to the landlock backend.
fn auto_where_mounts_are_refused(fx: &Fixture) -> std::process::Command {
    let mut cmd = fx.user_command(deny_userns());
    cmd.arg("--mount")
        .arg(&env().kennel)
        .args(["run", "--backend", "auto", "--"])
        .current_dir(fx.repo.join("sub"));
    cmd
}

fn spawn_auto_where_mounts_are_refused(fx: &Fixture, script: &str) -> Child {
    auto_where_mounts_are_refused(fx)
        .args(["sh", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Falling back after the native backend's child reported (not at the clone): the command
/// starts with the signal mask kennel's caller gave it (none blocked), not with the signals
/// the native backend had blocked for itself (SIGINT, SIGTERM, SIGCHLD... blocked in the
/// command make Ctrl-C and kennel's forwarding do nothing, in every process it starts).
/// Read without a shell: dash clears its mask.
#[test]
fn a_fallback_after_the_native_child_reported_starts_the_command_with_the_callers_mask() {
    let fx = Fixture::new("final-fallback-mask");
    let out: Output = auto_where_mounts_are_refused(&fx)
        .args(["grep", "SigBlk", "/proc/self/status"])
        .output()
        .unwrap();
    let err = stderr(&out);
    if !err.contains("falling back to the landlock backend") {
        common::skip_unless(false, &format!("no fallback here: {err}"));
        return;
    }
    assert!(out.status.success(), "{err}");
    assert_eq!(
        stdout(&out).trim(),
        "SigBlk:\t0000000000000000",
        "the command starts with signals blocked\n{err}"
    );
}

/// The same fallback: a SIGTERM sent to kennel reaches the command (a Python program, which
/// keeps the mask it was given: its handler runs), and kennel ends with the command's
/// status, while the survey lists a work tree of 10,000 old folders.
#[test]
fn a_fallback_after_the_native_child_reported_forwards_sigterm_to_the_command() {
    let fx = Fixture::new("final-fallback-term");
    fx.old_tree(100);
    for round in 0..2 {
        let _ = std::fs::remove_file(fx.repo.join("got"));
        let child = spawn_auto_where_mounts_are_refused(
            &fx,
            "exec python3 -c '
import os, signal, sys, time
def term(*_):
    open(\"../got\", \"w\").write(\"TERM\")
    os._exit(7)
signal.signal(signal.SIGTERM, term)
print(\"READY\", flush=True)
while True:
    time.sleep(0.01)
'",
        );
        let common::Terminated { ready, ended, out } = common::terminate_when_ready(child);
        if !ready {
            common::skip_unless(false, &format!("no sandbox: {}", stderr(&out)));
            return;
        }
        let err = stderr(&out);
        assert!(
            err.contains("falling back to the landlock backend"),
            "{err}"
        );
        assert!(ended, "round {round}: kennel did not end: {err}");
        assert!(
            fx.repo.join("got").exists(),
            "round {round}: the command got no SIGTERM ({:?})\n{err}",
            out.status
        );
        assert_eq!(out.status.code(), Some(7), "round {round}: {err}");
    }
}

/// The same fallback, where the survey's thread had started before the native backend's
/// child reported: it is ended before the landlock backend's fork (which needs kennel
/// single-threaded) and started again after it, and the end check still names a
/// repository planted in an old folder, and moves away a `.git` file planted in another.
#[test]
fn a_fallback_after_the_native_child_reported_still_checks_the_work_tree() {
    let fx = Fixture::new("final-fallback-check");
    let setup = fx.as_user(&format!(
        "set -e; cd '{}' && mkdir -p old/a/leaf old/b/leaf && sleep 1.2",
        fx.repo.display()
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = auto_where_mounts_are_refused(&fx)
        .args([
            "sh",
            "-c",
            r#"cd .. && sleep 0.5 && git init -q old/a/leaf/r && git -C old/a/leaf/r config core.fsmonitor "$PWD/.payload.sh"
            printf 'gitdir: %s/.git\n' "$PWD" > old/b/leaf/.git && echo PLANTED"#,
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("falling back to the landlock backend"),
        "{err}"
    );
    assert!(stdout(&out).contains("PLANTED"), "{err}");
    assert!(
        err.contains(&*fx.repo.join("old/a/leaf/r").to_string_lossy()),
        "the planted repository is not named\n{err}"
    );
    assert!(
        !fx.repo.join("old/b/leaf/.git").exists(),
        "the planted .git file was left in place\n{err}"
    );
}

/// What the chattr refusal must leave working: reading a file's attributes (`lsattr`,
/// FS_IOC_GETFLAGS, and FS_IOC_FSGETXATTR, whose numbers share the `f` and `X` types with
/// the refused requests), inside as outside.
fn reading_attributes_still_works(backend: &'static str) {
    let fx = Fixture::new("final-lsattr").with_backend(backend);
    if !common::sandbox_available(&fx) {
        return;
    }
    let probe = r#"touch attr-probe && lsattr attr-probe >/dev/null && echo LSATTR-OK
        python3 -c '
import fcntl, os
fd = os.open("attr-probe", os.O_RDONLY)
fcntl.ioctl(fd, 0x801C581F, bytearray(28))
print("FSGETXATTR-OK")'
        rm -f attr-probe"#;
    let out = fx.sandboxed(probe);
    assert!(
        stdout(&out).contains("LSATTR-OK") && stdout(&out).contains("FSGETXATTR-OK"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
}

on_every_backend!(reading_attributes_still_works);
