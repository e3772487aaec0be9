#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! `kennel doctor` as a user runs it: a live self-test that must report every escape as
//! blocked on this machine, with a real ssh-agent-like listener to reach.

mod common;

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::Path;

use common::{stdout, Fixture};

#[test]
fn doctor_reports_every_escape_blocked() {
    every_escape_blocked("native");
}

/// The systemd backend blocks them all too: kennel's step inside the unit installs the
/// native system call filter (TIOCSTI, a new user namespace).
#[test]
fn doctor_reports_every_escape_blocked_on_systemd() {
    if common::skip_without_user_manager() {
        return;
    }
    every_escape_blocked("systemd");
}

fn every_escape_blocked(backend: &str) {
    let fx = Fixture::new(&format!("doctor-{backend}"));
    let uid = common::env().uid;
    let dir = Path::new("/run/user").join(uid.to_string()).join(format!(
        "kennel-doctor-test-{}-{backend}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    let agent = dir.join("agent.sock");
    let _listener = UnixListener::bind(&agent).unwrap();
    fx.chown(&dir);
    fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = fx
        .kennel()
        .args(["doctor", "--backend", backend])
        .env("SSH_AUTH_SOCK", &agent)
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&dir);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        common::stderr(&out)
    );
    for row in [
        "read ~/.ssh",
        "write a file in your home",
        "reach the ssh-agent",
        "write a git hook",
        "type into the terminal (TIOCSTI)",
        "create a user namespace",
    ] {
        let line = text.lines().find(|l| l.contains(row)).unwrap_or_default();
        assert!(line.ends_with("blocked"), "{row}: {line}\n{text}");
    }
    assert!(
        text.contains("Landlock             ABI"),
        "{backend}: {text}"
    );
    assert!(
        text.contains("every promise this machine can keep holds"),
        "{text}"
    );
    assert!(!fx.home.join(".kennel-doctor-probe").exists());
}
