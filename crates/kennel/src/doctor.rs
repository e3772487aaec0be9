//! `kennel doctor`: what this machine supports, which backend `auto` picks, and a live
//! self-test that starts a real sandbox and tries a handful of escapes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cli::BackendChoice;

/// The escapes the self-test tries inside a sandbox; each prints `name:blocked`,
/// `name:allowed` or `name:untested:reason`. `$1` is the ssh-agent socket (may be empty),
/// `$2` a unique name for files the probes try to create.
const PROBES: &str = r#"
say() { echo "$1:$2"; }
if cat ~/.ssh/* >/dev/null 2>&1; then say read-ssh allowed; else say read-ssh blocked; fi
echo probe > ~/"$2" 2>/dev/null
echo '#!/bin/sh' > .git/hooks/"$2" 2>/dev/null
if ls /run/user/"$(id -u)" >/dev/null 2>&1 && [ -n "$(ls -A /run/user/"$(id -u)" 2>/dev/null)" ]; then
  say run-user allowed; else say run-user blocked; fi
if command -v python3 >/dev/null 2>&1; then
  if [ -n "$1" ]; then
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("ssh-agent:allowed")
except OSError:
    print("ssh-agent:blocked")' "$1"
  else say ssh-agent "untested:no ssh-agent (SSH_AUTH_SOCK is not set)"; fi
  python3 -c 'import fcntl,termios,errno
try:
    fcntl.ioctl(0, termios.TIOCSTI, b" "); print("tiocsti:allowed")
except OSError as e:
    print("tiocsti:" + ("blocked" if e.errno == errno.EPERM else "allowed"))' </dev/null
else
  say ssh-agent "untested:python3 is not installed"
  say tiocsti "untested:python3 is not installed"
fi
if command -v unshare >/dev/null 2>&1; then
  if unshare --user true 2>/dev/null; then say userns allowed; else say userns blocked; fi
else say userns "untested:unshare is not installed"; fi
"#;

const ROWS: &[(&str, &str)] = &[
    ("read-ssh", "read ~/.ssh"),
    ("write-home", "write a file in your home"),
    ("run-user", "see /run/user (agent and bus sockets)"),
    ("ssh-agent", "reach the ssh-agent"),
    ("git-hook", "write a git hook"),
    ("tiocsti", "type into the terminal (TIOCSTI)"),
    ("userns", "create a user namespace"),
];

pub struct Report {
    pub text: String,
    pub broken: bool,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn doctor(backend: BackendChoice) -> Report {
    let mut text = String::new();
    let mut broken = false;
    let kernel = read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    let _ = writeln!(text, "kennel doctor\n");
    let _ = writeln!(text, "  {:<20} Linux {kernel}", "kernel");
    let userns = kennel_native::probe_user_namespaces().map_err(crate::apparmor::with_commands);
    let _ = writeln!(
        text,
        "  {:<20} {}",
        "user namespaces",
        match &userns {
            Ok(()) => "available".to_string(),
            Err(e) => format!("NOT available: {e}"),
        }
    );
    let landlock = kennel_native::landlock::kernel_abi();
    let _ = writeln!(
        text,
        "  {:<20} {}",
        "Landlock",
        match landlock {
            Some(v) if v >= 9 => format!("ABI {v}: files, signals, abstract and path sockets"),
            Some(v) if v >= 6 =>
                format!("ABI {v}: files, signals, abstract sockets (ABI 9 adds sockets by path)"),
            Some(v) => format!("ABI {v}: files only (ABI 6 adds signal and socket scoping)"),
            None => "NOT available (kennel refuses to run without it unless --best-effort)".into(),
        }
    );
    let seccomp =
        read("/proc/self/status").is_some_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")));
    let _ = writeln!(
        text,
        "  {:<20} {}",
        "seccomp",
        if seccomp {
            "available"
        } else {
            "NOT available"
        }
    );
    let _ = writeln!(
        text,
        "  {:<20} {}",
        "systemd user manager",
        match kennel_systemd::user_manager() {
            Ok(manager) => format!("reachable, version {}", manager.version),
            Err(e) => format!("{e} (--backend systemd needs one)"),
        }
    );
    let name = match (backend, &userns) {
        (BackendChoice::Auto, Ok(())) | (BackendChoice::Native, _) => "native",
        (BackendChoice::Auto, Err(_)) | (BackendChoice::Landlock, _) => "landlock",
        (BackendChoice::Systemd, _) => "systemd",
    };
    let _ = writeln!(text, "  {:<20} {name}", "backend");
    if landlock.is_none() || !seccomp {
        broken = true;
    }

    let _ = writeln!(text, "\nself-test ({name} backend):");
    match self_test(name) {
        Err(e) => {
            broken = true;
            let _ = writeln!(text, "  could not run a sandbox: {e}");
        }
        Ok(results) => {
            for (key, label) in ROWS {
                let result = results
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or("untested:no answer", |(_, v)| v.as_str());
                let shown = if let Some(reason) = result.strip_prefix("untested:") {
                    format!("not tested: {reason}")
                } else if result == "allowed" && !native_only_allowed(name, key) {
                    broken = true;
                    "ALLOWED".to_string()
                } else if result == "allowed" {
                    "allowed (only the native backend blocks it)".to_string()
                } else {
                    result.to_string()
                };
                let _ = writeln!(text, "  {label:<40} {shown}");
            }
        }
    }
    let _ = writeln!(
        text,
        "\nverdict: {}",
        if broken {
            "a promise that this machine should keep is BROKEN"
        } else {
            "every promise this machine can keep holds"
        }
    );
    Report { text, broken }
}

/// Escapes that the landlock backend documents that it cannot block. (The systemd backend
/// blocks them all: kennel's step inside the unit installs the native system call filter,
/// which refuses TIOCSTI and a new user namespace.)
fn native_only_allowed(backend: &str, key: &str) -> bool {
    match backend {
        "landlock" => matches!(key, "git-hook" | "ssh-agent"),
        _ => false,
    }
}

/// Removes what a probe created outside, if anything, and says whether it existed.
fn created(path: &Path) -> bool {
    let existed = path.exists();
    if existed {
        let _ = std::fs::remove_file(path);
    }
    existed
}

fn self_test(backend: &str) -> Result<Vec<(String, String)>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find kennel itself: {e}"))?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or("HOME is not set")?;
    let repo = std::env::temp_dir().join(format!("kennel-doctor-{}", std::process::id()));
    std::fs::create_dir_all(repo.join(".git/hooks"))
        .map_err(|e| format!("{}: {e}", repo.display()))?;
    let result = (|| {
        let git = Command::new("git")
            .args(["init", "-q"])
            .current_dir(&repo)
            .status();
        if !git.is_ok_and(|s| s.success()) {
            return Err("git is needed for the self-test".to_string());
        }
        let marker = format!(".kennel-doctor-probe-{}", std::process::id());
        let agent = std::env::var("SSH_AUTH_SOCK").unwrap_or_default();
        let out = Command::new(&exe)
            .args([
                "run",
                "--backend",
                backend,
                "--",
                "sh",
                "-c",
                PROBES,
                "probe",
            ])
            .arg(&agent)
            .arg(&marker)
            .current_dir(&repo)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut results: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if results.is_empty() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let outcome = |leaked: bool| if leaked { "allowed" } else { "blocked" }.to_string();
        results.push(("write-home".into(), outcome(created(&home.join(&marker)))));
        results.push((
            "git-hook".into(),
            outcome(created(&repo.join(".git/hooks").join(&marker))),
        ));
        Ok(results)
    })();
    let _ = std::fs::remove_dir_all(&repo);
    result
}
