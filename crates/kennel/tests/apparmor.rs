#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! kennel's AppArmor profile (apparmor/kennel), which gives the native backend back where
//! AppArmor refuses unprivileged user namespaces, is valid for AppArmor's own parser: the
//! file in the repository and the profile `kennel doctor --apparmor-profile` prints for
//! the kennel that runs. Checked without loading anything into the kernel.
//!
//! The parser must know the `userns` rule (AppArmor 4): `scripts/apparmor-parser` finds or
//! fetches one (CI runs it before the tests and names it in KENNEL_APPARMOR_PARSER).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn parser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KENNEL_APPARMOR_PARSER") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("apparmor_parser")
        .arg("--version")
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).into_owned();
    let major: u32 = version
        .split("version ")
        .nth(1)?
        .split('.')
        .next()?
        .parse()
        .ok()?;
    (major >= 4).then(|| PathBuf::from("apparmor_parser"))
}

fn check(parser: &Path, profile: &Path) {
    let out = Command::new(parser)
        .args(["--skip-kernel-load", "--skip-cache"])
        .arg(profile)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", parser.display()));
    assert!(
        out.status.success(),
        "{} is refused by the parser: {}",
        profile.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_apparmor_profile_is_valid_for_apparmor_4() {
    let Some(parser) = parser() else {
        common::skip_unless(
            false,
            "no AppArmor parser 4 or later (run scripts/apparmor-parser once as root and set \
             KENNEL_APPARMOR_PARSER to it)",
        );
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apparmor/kennel");
    check(&parser, &repo);

    let printed = Command::new(env!("CARGO_BIN_EXE_kennel"))
        .args(["doctor", "--apparmor-profile"])
        .output()
        .unwrap();
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).unwrap();
    assert!(text.contains("  userns,"), "{text}");
    assert!(!text.contains("{,local/}"), "one exact path: {text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kennel");
    std::fs::write(&file, &text).unwrap();
    check(&parser, &file);

    // The parser does refuse a broken profile: the check can fail.
    std::fs::write(&file, text.replace("userns,", "userns nonsense,")).unwrap();
    let out = Command::new(&parser)
        .args(["--skip-kernel-load", "--skip-cache"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken profile passed the parser");
}
