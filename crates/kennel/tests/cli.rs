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

/// With glibc, the build links kennel statically (`.cargo/config.toml`): every sandbox
/// start then spends nothing on a dynamic loader and shared libraries (bench/README.md).
/// A build that lost that configuration fails here: its binary names a program interpreter.
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    target_pointer_width = "64",
    target_endian = "little"
))]
#[test]
fn kennel_is_linked_statically() {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(env!("CARGO_BIN_EXE_kennel")).unwrap();
    let field = |at: usize, len: usize| {
        let mut bytes = [0u8; 8];
        bytes[..len].copy_from_slice(&elf[at..at + len]);
        usize::try_from(u64::from_le_bytes(bytes)).unwrap()
    };
    assert_eq!(&elf[..4], b"\x7fELF");
    // ELF64 header: program headers from e_phoff, e_phnum of them, e_phentsize bytes each.
    let (offset, size, count) = (field(0x20, 8), field(0x36, 2), field(0x38, 2));
    assert!(count > 0, "no program headers");
    for i in 0..count {
        let p_type = field(offset + i * size, 4);
        assert_ne!(
            p_type, PT_INTERP as usize,
            "kennel names a dynamic loader: it was not linked statically"
        );
    }
}

/// `kennel completions fish | true`: a reader that is gone before kennel writes is no
/// failure and never a panic (clap_complete panics when its writer fails).
#[test]
fn generated_text_piped_to_a_closed_reader_ends_quietly() {
    for args in [
        &["completions", "fish"][..],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["man"],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = Command::new(env!("CARGO_BIN_EXE_kennel"))
            .args(args)
            .env_clear()
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `--profile <TAB>` offers the built-in profiles, not file names; a profile of the user's
/// own is still accepted (and refused only when no config defines it).
#[test]
fn profile_completion_offers_the_profiles() {
    let out = kennel(&["completions", "bash"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("compgen -W \"default aider claude codex gemini goose opencode pi\""),
        "{text}"
    );
    // The hidden step of the systemd backend is not offered; the agents are (`kennel cl<TAB>`).
    assert!(!text.contains("internal-verify-exec"), "{text}");
    let top = text
        .lines()
        .find(|l| l.contains("opts=\"") && l.contains(" run "))
        .unwrap_or_else(|| panic!("{text}"));
    for agent in [
        "aider", "claude", "codex", "gemini", "goose", "opencode", "pi",
    ] {
        assert!(top.contains(&format!(" {agent} ")), "{agent}: {top}");
    }
    let out = kennel(&["explain", "my-own-profile"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown profile `my-own-profile`"), "{err}");
}

/// `kennel man --dir DIR` writes the pages kennel.1 names (kennel-run.1, ...), and never
/// replaces a file that is not one of kennel's pages.
#[test]
fn man_pages_for_every_command_and_none_over_a_foreign_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_string_lossy().into_owned();
    let out = kennel(&["man", "--dir", &dir_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main = std::fs::read_to_string(dir.path().join("kennel.1")).unwrap();
    for named in main
        .lines()
        .filter_map(|l| l.strip_suffix("(1)"))
        .filter(|l| l.starts_with("kennel\\-"))
    {
        let file = format!("{}.1", named.replace("\\-", "-"));
        assert!(
            dir.path().join(&file).is_file(),
            "{file} is named but not written"
        );
    }
    let run = std::fs::read_to_string(dir.path().join("kennel-run.1")).unwrap();
    assert!(run.contains("pass\\-fd"), "run's options are in its page");
    // Written again over its own pages; a file of someone else's stops it, untouched.
    std::fs::write(dir.path().join("kennel-wrap.1"), "mine").unwrap();
    let out = kennel(&["man", "--dir", &dir_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("kennel-wrap.1")).unwrap(),
        "mine"
    );
}
