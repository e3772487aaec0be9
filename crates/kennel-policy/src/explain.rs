//! `kennel explain`: the policy in words, for people. (`--json` serializes [`Policy`].)

use std::fmt::Write;

use crate::policy::{human_size, Access, Backend, HomeMode, Network, Policy};
use crate::shown::{shown, shown_path};

const NATIVE: &[&str] = &[
    "own user, mount, PID and IPC namespaces: no signals or ptrace to processes outside",
    "a fresh root: the system bound read-only, nothing of /home, /root or /run/user",
    "a private /tmp and /var/tmp; a minimal /dev with its own pseudo-terminals",
    "Landlock and seccomp on top of the mount view; no capabilities, no new privileges",
    "git: .git a mount point (cannot be renamed or replaced); hooks, config, pointer files \
     and core.hooksPath folders read-only; what cannot be (pointers that do not exist yet, \
     nested repositories) is watched (below)",
];

const LANDLOCK: &[&str] = &[
    "Landlock: only the paths above can be read or written; seccomp; no new privileges",
    "lost without namespaces: no private /tmp, no empty home, no PID or IPC namespace, \
     no read-only git hooks",
    "git: nothing in the workspace can be read-only, so all of it is watched (below): what \
     the session planted is moved away, the repository's config put back, before you can \
     run git",
];

const SYSTEMD: &[&str] = &[
    "a transient unit of your systemd user manager: PrivateUsers, ProtectSystem=strict, \
     ProtectHome=tmpfs, PrivateTmp, NoNewPrivileges, RestrictSUIDSGID, ProtectKernelModules",
    "checked from inside the unit before the command starts; `systemctl --user stop` ends it",
    "git: .git, hooks, config, pointer files and core.hooksPath folders read-only or mount \
     points of the unit; the rest is watched (below)",
    "kennel's step in the unit: a PID namespace of its own with its /proc (your other \
     processes are neither visible nor reachable) and an IPC namespace, /proc/sys and /sys read-only, the native \
     backend's system call filter (no mount, no new user namespace); signals and abstract \
     sockets scoped to the sandbox, of /dev only what programs need and the command's own \
     terminal (Landlock); the allow-list network through kennel's proxy (for programs that \
     use HTTP(S)_PROXY)",
];

/// What the end-of-session check of git looks at (crates/kennel/src/git_watch.rs).
const WATCHED: &[&str] = &[
    "every git directory of the workspace (the repository's, nested repositories', \
     submodules', linked worktrees'): config, config.worktree, commondir, hooks, \
     info/attributes",
    "every .git file or link in the workspace, and the .git folder itself (replaced?)",
    "folders core.hooksPath names and config files include.path names",
    "what the session changed there and would run is moved to kennel-quarantine in the \
     repository's git directory and named, with the way back; the repository's config is \
     put back as it was",
];

/// What each backend guarantees besides the paths, in a few lines.
fn protections(backend: Backend) -> Vec<&'static str> {
    match backend {
        Backend::Native => NATIVE.to_vec(),
        Backend::Landlock => LANDLOCK.to_vec(),
        Backend::Systemd => SYSTEMD.to_vec(),
        Backend::Auto => {
            let mut v = NATIVE.to_vec();
            v.push("where user namespaces are denied, auto falls back to landlock and says what is lost");
            v
        }
    }
}

/// The policy as `kennel explain` prints it. Environment values are never shown.
pub fn explain_text(policy: &Policy, description: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "profile    {}: {}", policy.profile, description);
    let command: Vec<String> = policy
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let _ = writeln!(out, "command    {}", command.join(" "));
    let _ = writeln!(out, "workspace  {}", shown_path(&policy.workspace));
    let _ = writeln!(out, "backend    {}", policy.backend.name());
    let _ = writeln!(
        out,
        "network    {}",
        match &policy.network {
            Network::On => "on: the host's network".to_string(),
            Network::Off => "off: only a private loopback".to_string(),
            Network::AllowList(rules) => format!(
                "allow-list: a private loopback; a proxy outside lets through {} host rule{} (below)",
                rules.allow.len(),
                if rules.allow.len() == 1 { "" } else { "s" }
            ),
        }
    );
    if let Network::AllowList(rules) = &policy.network {
        for r in &rules.deny {
            let _ = writeln!(out, "  deny     {:<36} {}", r.to_string(), r.source);
        }
        for r in &rules.allow {
            let _ = writeln!(out, "  allow    {:<36} {}", r.to_string(), r.source);
        }
    }
    if !policy.localhost_ports.is_empty() {
        let ports: Vec<String> = policy
            .localhost_ports
            .iter()
            .map(|p| p.to_string())
            .collect();
        let _ = writeln!(
            out,
            "localhost  host loopback ports reachable inside: {}",
            ports.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "home       {}",
        match policy.home_mode {
            HomeMode::Ephemeral =>
                "ephemeral: what is written outside the paths below is listed at exit, then \
                 removed (native backend: kept in memory, a tmpfs bounded as below)",
            HomeMode::Persistent =>
                "persistent: kept for this workspace under $XDG_STATE_HOME/kennel/homes/",
        }
    );
    let _ = writeln!(
        out,
        "tmpfs      {} and {} files at most in each writable tmpfs of the native backend \
         (/tmp, /var/tmp, /dev/shm, the ephemeral home; `tmpfs-size`)",
        human_size(policy.tmpfs.size),
        policy.tmpfs.inodes
    );

    let _ = writeln!(out, "\nvisible paths (the deepest rule decides):");
    let mut rules: Vec<_> = policy.paths.iter().collect();
    rules.sort_by(|a, b| a.path.cmp(&b.path));
    for r in rules.iter().filter(|r| r.access != Access::Hidden) {
        let extra = if r.optional && r.placeholder.is_none() {
            ", if it exists"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<10} {}  ({}{extra}; {})",
            short(r.access),
            shown_path(&r.path),
            shown(&r.reason_text()),
            shown(&r.origin.source)
        );
    }
    let _ = writeln!(out, "\nhidden (absent, or empty and read-only):");
    for r in rules.iter().filter(|r| r.access == Access::Hidden) {
        let _ = writeln!(
            out,
            "  {}  ({}; {})",
            shown_path(&r.path),
            shown(&r.origin.reason),
            shown(&r.origin.source)
        );
    }
    if policy
        .paths
        .iter()
        .any(|r| r.origin.reason == crate::git::REASON)
    {
        let _ = writeln!(
            out,
            "\nwatched (checked when the session ends, before you can run git; and at the next \
             start if kennel was killed):"
        );
        for line in WATCHED {
            let _ = writeln!(out, "  - {line}");
        }
    }
    if !policy.copy_back.is_empty() {
        let _ = writeln!(
            out,
            "\ncopied into the home at start, back at exit when changed:"
        );
        for c in &policy.copy_back {
            let _ = writeln!(
                out,
                "  {}  ({})",
                shown_path(&c.path),
                shown(&c.origin.source)
            );
        }
    }
    if !policy.runs_commands.is_empty() {
        let _ = writeln!(
            out,
            "\ncompared at exit (they run commands when you start the agent outside kennel; a \
             change is named):"
        );
        for r in &policy.runs_commands {
            let keys = if r.keys.is_empty() {
                "the whole file".to_string()
            } else {
                r.keys.join(", ")
            };
            let _ = writeln!(
                out,
                "  {}: {}  ({})",
                shown_path(&r.path),
                shown(&keys),
                shown(&r.origin.source)
            );
        }
    }
    let names: Vec<&str> = policy.env.iter().map(|v| v.name.as_str()).collect();
    let _ = writeln!(out, "\nenvironment (names only; nothing else passes):");
    let _ = writeln!(out, "  set now:          {}", names.join(" "));
    let unset: Vec<&str> = policy
        .env_pass
        .iter()
        .map(String::as_str)
        .filter(|n| !names.contains(n))
        .collect();
    if !unset.is_empty() {
        let _ = writeln!(out, "  passed when set:  {}", unset.join(" "));
    }
    let _ = writeln!(
        out,
        "\nprotections of the {} backend:",
        policy.backend.name()
    );
    for p in protections(policy.backend) {
        let _ = writeln!(out, "  - {p}");
    }
    out
}

fn short(access: Access) -> &'static str {
    match access {
        Access::ReadOnly => "read-only",
        Access::ReadWrite => "read-write",
        Access::Tmpfs => "fresh",
        Access::Hidden => "hidden",
    }
}
