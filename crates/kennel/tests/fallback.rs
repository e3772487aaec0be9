#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Where creating a user namespace is refused (Ubuntu 23.10 and later, by AppArmor), as
//! the user meets it: `--backend auto` falls back to the landlock backend, says so and what
//! that backend cannot keep, and still keeps the secrets, the agents and the user's other
//! terminals out of reach. The refusal comes from `examples/deny_userns.rs`, a seccomp
//! filter standing in for AppArmor (the sysctl is read-only on the test machines).

mod common;

use common::{deny_userns, env, stderr, stdout, Fixture, SECRET};

const PROBE: &str = r#"
cat "$HOME/.ssh/id_ed25519" 2>/dev/null
cat /proc/self/status | grep -q . && echo proc-ok
python3 -c '
import socket
try:
    socket.socket(socket.AF_UNIX).connect("/run/user/%d/bus" % __import__("os").getuid())
    print("UNIX-SOCKET")
except OSError as e:
    print("no unix socket", e.errno)
'
echo x >> "$HOME/.bashrc" 2>/dev/null && echo WROTE-HOME
echo inside > written-inside && echo workspace-ok
"#;

#[test]
fn auto_falls_back_to_landlock_where_user_namespaces_are_refused_and_keeps_the_secrets() {
    let fx = Fixture::new("fallback");
    let out = fx
        .user_command(deny_userns())
        .arg(&env().kennel)
        .args(["run", "--backend", "auto", "--", "sh", "-c", PROBE])
        .current_dir(fx.repo.join("sub"))
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(
        err.contains("falling back to the landlock backend"),
        "no fallback notice: {err}"
    );
    assert!(
        err.contains("the landlock backend cannot give"),
        "the notice must say what is lost: {err}"
    );
    // Among them, what other processes of the user's stay reachable through.
    assert!(
        err.contains("a PID namespace") && err.contains("an IPC namespace"),
        "{err}"
    );
    assert!(
        text.contains("proc-ok") && text.contains("workspace-ok"),
        "{text} {err}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("no unix socket"), "{text}");
    assert!(!text.contains("WROTE-HOME"), "{text}");
    assert!(fx.repo.join("sub/written-inside").exists());
}

#[test]
fn the_native_backend_refuses_with_the_cause_and_a_fix_where_user_namespaces_are_refused() {
    let fx = Fixture::new("no-userns");
    let out = fx
        .user_command(deny_userns())
        .arg(&env().kennel)
        .args(["run", "--backend", "native", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not let unprivileged users create user namespaces"),
        "{}",
        stderr(&out)
    );
}

/// `kennel explain` says what `auto` is on this machine, as `kennel run` meets it.
#[test]
fn explain_says_which_backend_auto_is_here() {
    let fx = Fixture::new("explain-auto");
    let here = fx.kennel().args(["explain"]).output().unwrap();
    assert!(
        stdout(&here).contains("on this machine, auto is the native backend"),
        "{}",
        stdout(&here)
    );
    let refused = fx
        .user_command(deny_userns())
        .arg(&env().kennel)
        .arg("explain")
        .output()
        .unwrap();
    assert!(
        stdout(&refused).contains("on this machine, auto is the landlock backend"),
        "{}",
        stdout(&refused)
    );
}
