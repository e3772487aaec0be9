#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! The Nix side, where nixpkgs cannot be downloaded: every `.nix` file parses, and
//! `mkSandboxWrapper` is evaluated against a stand-in for the `pkgs` attributes it uses;
//! the script it produces runs for real against the built kennel and must sandbox a
//! command exactly as `kennel run --profile NAME` does.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{skip_unless, stderr, stdout, Fixture, SECRET};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have_nix() -> bool {
    Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn every_nix_file_parses() {
    if skip_unless(
        have_nix(),
        "nix-instantiate is not installed (Debian: nix-bin)",
    ) {
        return;
    }
    let mut files = vec![root().join("flake.nix")];
    for dir in ["nix", "tests/nix"] {
        for entry in fs::read_dir(root().join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "nix"))
    {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
    }
}

/// The script text `mkSandboxWrapper` produces, evaluated with the stand-in pkgs.
fn wrapper_text(name: &str, bin: &Path, kennel_pkg: &Path, extra: &[&Path]) -> String {
    let extra: Vec<String> = extra
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    let expr = format!(
        "(import {root}/nix/mk-sandbox-wrapper.nix {{ pkgs = import {root}/tests/nix/stub-pkgs.nix; \
         name = \"{name}\"; bin = \"{bin}\"; kennel = \"{kennel}\"; extraPaths = [ {extra} ]; }}).text",
        root = root().display(),
        bin = bin.display(),
        kennel = kennel_pkg.display(),
        extra = extra.join(" "),
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // A JSON string: undo its escapes.
    let json = stdout(&out);
    let inner = json.trim().trim_start_matches('"').trim_end_matches('"');
    inner
        .replace("\\n", "\n")
        .replace("\\\"", "\"")
        .replace("\\$", "$")
        .replace("\\\\", "\\")
}

#[test]
fn the_generated_wrapper_sandboxes_like_kennel_run_profile() {
    if skip_unless(
        have_nix(),
        "nix-instantiate is not installed (Debian: nix-bin)",
    ) {
        return;
    }
    let fx = Fixture::new("nixwrap");
    // A stand-in agent that shows what it can see and tries the secret and a write.
    // Under the home, as a Nix profile would put it; kennel exposes its folder read-only.
    let real = fx.home.join("agent/bin/aider");
    let extra = fx.home.join("extra");
    fx.write(
        &real,
        &format!(
            "#!/bin/sh\necho \"args: $*\"\nls -A ~ | tr '\\n' ' '; echo\ncat ~/.ssh/id_ed25519 2>&1 | head -c 100; echo\necho written > {}/file && echo extra-writable\n",
            extra.display()
        ),
    );
    fs::set_permissions(&real, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(&extra).unwrap();
    // A stand-in for the kennel package: its bin/kennel is the kennel under test.
    let kennel_pkg = fx.dir.join("kennel-pkg");
    fs::create_dir_all(kennel_pkg.join("bin")).unwrap();
    fs::copy(&common::env().kennel, kennel_pkg.join("bin/kennel")).unwrap();
    let text = wrapper_text("aider", &real, &kennel_pkg, &[&extra]);
    assert!(text.contains("# kennel-shim"), "{text}");
    let wrapper = fx.dir.join("wrappers/bin/aider");
    fx.write(&wrapper, &text);
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    fx.chown(&fx.dir);

    let via_wrapper = fx
        .user_command(&wrapper)
        .args(["--model", "x y"])
        .output()
        .unwrap();
    common::assert_kennel_started(&via_wrapper);
    let direct = fx
        .kennel()
        .args(["run", "--profile", "aider", "--rw"])
        .arg(&extra)
        .arg("--")
        .arg(&real)
        .args(["--model", "x y"])
        .output()
        .unwrap();
    let text = stdout(&via_wrapper);
    assert!(
        text.contains("args: --model x y"),
        "{text} {}",
        stderr(&via_wrapper)
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("extra-writable"), "{text}");
    assert_eq!(
        text,
        stdout(&direct),
        "the wrapper must sandbox exactly like kennel run --profile"
    );
}
