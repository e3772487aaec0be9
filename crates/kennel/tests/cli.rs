#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! The command line as a user meets it: help, completions, the man page, usage errors.

use std::process::Command;

fn kennel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kennel"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

#[test]
fn help_names_every_command_and_the_exit_statuses() {
    let out = kennel(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "doctor", "completions", "man", "Exit status", "125"] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
}

#[test]
fn completions_and_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kennel(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("doctor"),
            "{shell}"
        );
    }
    let out = kennel(&["man"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(".TH kennel 1"), "{text}");
}

#[test]
fn a_usage_error_exits_2_with_a_message() {
    let out = kennel(&["run", "--backend", "nonsense", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}
