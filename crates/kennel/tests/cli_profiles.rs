#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Profiles and configuration as the command line shows them without a sandbox: help, the profile list, and
//! configuration errors. Hermetic: a clean environment and an empty temporary home.

use std::process::{Command, Output};

fn kennel(args: &[&str], home: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kennel"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .env("COLUMNS", "100")
        .current_dir(home)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn help_texts() {
    let home = tempfile::tempdir().unwrap();
    insta::assert_snapshot!("help", text(&kennel(&["--help"], home.path())));
    insta::assert_snapshot!("run_help", text(&kennel(&["run", "--help"], home.path())));
    insta::assert_snapshot!(
        "explain_help",
        text(&kennel(&["explain", "--help"], home.path()))
    );
}

#[test]
fn profiles_list() {
    let home = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(text(&kennel(&["profiles"], home.path())));
}

#[test]
fn unknown_command_lists_profiles() {
    let home = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(text(&kennel(&["adier"], home.path())));
}

#[test]
fn config_error_from_a_config_file() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".config/kennel");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        "version = 1\n[profile.aider]\nread-only = [\"relative/path\"]\n",
    )
    .unwrap();
    insta::assert_snapshot!(text(&kennel(&["profiles"], home.path())));
}
