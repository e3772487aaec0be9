#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! An independent review of three changes, as a prompt-injected agent inside the sandbox
//! would attack them, one behaviour test each, run as the unprivileged test user:
//! - the native backend's ephemeral home kept in memory, read by kennel through a
//!   descriptor the sandbox handed over (copy-back and the exit listing);
//! - `--memory` on the native backend, a memory cgroup of the sandbox's own inside a cgroup
//!   delegated to the user;
//! - `--backend auto` falling back to the landlock backend after a failed native attempt.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::cgroup::{delegated, output_within};
use common::{processes_with, stderr, stdout, Fixture, SECRET};

/// `kennel run ARGS... -- sh -c SCRIPT` in `cwd`, ended within `secs` seconds.
fn kennel_run(fx: &Fixture, cwd: &Path, args: &[&str], script: &str, secs: u64) -> Output {
    let mut cmd = fx.kennel();
    cmd.arg("run")
        .args(args)
        .args(["--", "sh", "-c", script])
        .current_dir(cwd);
    let out = output_within(cmd, secs);
    common::assert_kennel_started(&out);
    out
}

/// Whether a process runs with `arg` as one of its arguments exactly (the sandbox's init, a
/// copy of kennel whose command line holds the whole script, ends just after kennel: only
/// the daemon itself has the marker as an argument of its own).
fn running_with_argument(arg: &str) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        fs::read(entry.path().join("cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
    })
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// kennel lists the home in memory while the sandbox's mounts are still there (its init
/// ends after kennel). Renaming the folder that holds the workspace's bind (`~/src` of
/// `~/src/proj`) moved the bind out of the paths kennel skips: the listing walked the
/// host's workspace, reported its files as written to the home and discarded, suggested
/// keeping the renamed folder, and made a folder of the user's that is closed to everyone
/// (`chmod 000`) open to its owner. Only the home's own file system is listed now.
#[test]
fn the_listing_never_walks_into_a_bound_host_folder_moved_by_renaming_its_parent() {
    let fx = Fixture::new("moved-bind");
    let ws = fx.home.join("src/proj");
    let out = fx.as_user(&format!(
        "set -e; mkdir -p '{ws}/locked'; cd '{ws}'; git init -q -b main .; \
         echo hello > README; git add README; git commit -q -m initial; \
         touch host-only-name-in-workspace; chmod 000 locked; echo ready",
        ws = ws.display()
    ));
    assert!(stdout(&out).contains("ready"), "{}", stderr(&out));
    let out = kennel_run(
        &fx,
        &ws,
        &["--backend", "native"],
        "cd / && mv ~/src ~/.moved && ls ~/.moved/proj >/dev/null && echo MOVED",
        60,
    );
    let err = stderr(&out);
    assert!(stdout(&out).contains("MOVED"), "{} {err}", stdout(&out));
    assert!(
        !err.contains(".moved"),
        "the host's workspace, bound in the home, was listed as written there: {err}"
    );
    assert!(!err.contains("host-only-name-in-workspace"), "{err}");
    assert_eq!(
        mode(&ws.join("locked")),
        0,
        "kennel changed the mode of a folder of the user's outside the home"
    );
    let _ = fs::set_permissions(ws.join("locked"), fs::Permissions::from_mode(0o700));
}

/// The sandbox closes its own home (`chmod 000 ~`) and a folder in it to searching
/// (`chmod 400`) before it exits: kennel still copies `~/.claude.json` back and lists what
/// was written, instead of losing both ("could not list them").
#[test]
fn a_home_the_sandbox_closed_is_still_copied_back_and_listed() {
    let fx = Fixture::new("closed-home");
    fx.write(&fx.home.join(".claude.json"), "{\"before\": true}\n");
    let out = kennel_run(
        &fx,
        &fx.repo,
        &["--profile", "claude"],
        "echo '{\"after\": true}' > ~/.claude.json && mkdir ~/.kept-notes && \
         echo n > ~/.kept-notes/note && chmod 400 ~/.kept-notes && chmod 000 ~ && echo closed",
        60,
    );
    let err = stderr(&out);
    assert!(stdout(&out).contains("closed"), "{} {err}", stdout(&out));
    assert_eq!(
        fs::read_to_string(fx.home.join(".claude.json")).unwrap(),
        "{\"after\": true}\n",
        "{err}"
    );
    assert!(err.contains("~/.kept-notes/note"), "{err}");
}

/// What the sandbox leaves at the copy-back file's name instead of a file: a link to the
/// user's secret (kennel, outside, would resolve it on the host), a FIFO (an open that
/// blocks), a sparse file of 100 GiB, a folder, a socket, a hard link to a workspace file.
/// Nothing is read through any of them into the user's `~/.claude.json`, kennel never
/// blocks, and the user is told it was not copied back.
#[test]
fn copy_back_takes_nothing_but_a_bounded_file_of_the_sandboxs_own() {
    let fx = Fixture::new("copy-back-kinds");
    let original = "{\"before\": true}\n";
    fx.write(&fx.home.join(".claude.json"), original);
    let secret = fx.home.join(".ssh/id_ed25519");
    let replacements = [
        format!("ln -s '{}' ~/.claude.json", secret.display()),
        "mkfifo ~/.claude.json".to_string(),
        "truncate -s 100G ~/.claude.json".to_string(),
        "mkdir ~/.claude.json && echo x > ~/.claude.json/inner".to_string(),
        "python3 -c 'import os, socket; \
         socket.socket(socket.AF_UNIX).bind(os.path.expanduser(\"~/.claude.json\"))'"
            .to_string(),
    ];
    for replace in &replacements {
        let out = kennel_run(
            &fx,
            &fx.repo,
            &["--profile", "claude"],
            &format!("rm -f ~/.claude.json && {replace} && echo replaced"),
            60,
        );
        let err = stderr(&out);
        assert!(stdout(&out).contains("replaced"), "{replace}: {err}");
        assert_eq!(
            fs::read_to_string(fx.home.join(".claude.json")).unwrap(),
            original,
            "{replace}: {err}"
        );
        assert!(err.contains("was not copied back"), "{replace}: {err}");
        assert!(!err.contains(SECRET) && !stdout(&out).contains(SECRET));
    }
    // A host file cannot be linked into the home: it is another file system.
    let out = kennel_run(
        &fx,
        &fx.repo,
        &["--profile", "claude"],
        "rm -f ~/.claude.json; ln ~/project/README ~/.claude.json 2>/dev/null && echo LINKED; \
         echo done",
        60,
    );
    assert!(stdout(&out).contains("done"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("LINKED"), "{}", stdout(&out));
    assert_eq!(
        fs::read_to_string(fx.home.join(".claude.json")).unwrap(),
        original
    );
}

/// A home full of traps for the listing: a chain of 3000 nested folders, 30,000 files in
/// one folder, a FIFO, a socket, a link to the user's secret, names with a newline and
/// escape sequences forging a `kennel:` line. The listing ends quickly, says it is
/// incomplete, follows no link, and prints no control character.
#[test]
fn the_listing_is_bounded_and_escaped_whatever_the_sandbox_leaves() {
    let fx = Fixture::new("listing-traps");
    let script = format!(
        r#"python3 - <<'EOF'
import os, socket
home = os.path.expanduser('~')
os.chdir(home)
os.mkdir('.deep'); os.chdir('.deep')
for _ in range(3000):
    os.mkdir('d'); os.chdir('d')
os.chdir(home)
os.mkdir('.wide')
for i in range(30000):
    open('.wide/f%d' % i, 'w').close()
os.mkfifo('.fifo')
socket.socket(socket.AF_UNIX).bind(home + '/.sock')
os.symlink('{secret}', '.link')
os.makedirs('.linkdir')
os.symlink('{ssh}', '.linkdir/ssh')
open('.evil\nkennel: all good\x1b[2J\x1b]0;title\x07', 'w').close()
print('planted')
EOF"#,
        secret = fx.home.join(".ssh/id_ed25519").display(),
        ssh = fx.home.join(".ssh").display(),
    );
    let out = kennel_run(&fx, &fx.repo, &["--backend", "native"], &script, 120);
    let err = stderr(&out);
    assert!(stdout(&out).contains("planted"), "{}", err);
    assert!(err.contains("at least"), "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}'),
        "control characters from a file name reached the terminal: {err:?}"
    );
    assert!(
        !err.lines().any(|l| l.trim() == "kennel: all good"),
        "a file name printed a line of its own: {err}"
    );
    assert!(
        !err.contains(SECRET) && !err.contains("id_ed25519"),
        "{err}"
    );
}

/// The sandbox leaves a daemon (its own session, TERM and HUP ignored) that keeps
/// swapping a folder closed with `chmod 000` for a link to a file of the user's outside,
/// hoping kennel, listing the home, opens the folder, fails, and makes the link's target
/// open (a chmod follows links). Every process of the sandbox is gone before kennel reads
/// the home: the user's file keeps its mode, and nothing of the sandbox writes afterwards.
#[test]
fn nothing_of_the_sandbox_runs_while_kennel_reads_its_home() {
    let fx = Fixture::new("race-listing");
    let target = fx.home.join(".bashrc");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let marker = format!("racer{}", std::process::id());
    let ticks = fx.repo.join("ticks");
    let script = format!(
        r#"trap '' TERM HUP
        setsid sh -c 'trap "" TERM HUP
            mkdir -p ~/.r
            while :; do
                mkdir ~/.r/d 2>/dev/null; chmod 000 ~/.r/d; rmdir ~/.r/d
                ln -s {target} ~/.r/d; rm -f ~/.r/d
                echo x >> {ticks}
            done' {marker} </dev/null >/dev/null 2>&1 &
        sleep 1; echo started"#,
        target = target.display(),
        ticks = ticks.display(),
    );
    for _ in 0..5 {
        let out = kennel_run(&fx, &fx.repo, &["--backend", "native"], &script, 60);
        assert!(stdout(&out).contains("started"), "{}", stderr(&out));
        assert!(
            !running_with_argument(&marker),
            "a process of the sandbox outlived it"
        );
        assert_eq!(mode(&target), 0o600, "{}", stderr(&out));
        let size = fs::metadata(&ticks).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "the daemon never ran: {}", stderr(&out));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(fs::metadata(&ticks).unwrap().len(), size);
    }
}

/// The sandbox's cgroup files are the user's own: the sandbox tries every one that would
/// loosen its limit or hide its kills (the limit, the soft limit, disabling the OOM
/// killer so that it stalls instead of being reported, the socket limit, a sub-cgroup of
/// its own, its parent's `cgroup.procs`, the hierarchy mounted again, a new user
/// namespace to mount it in). None is written; the limit is still killed at, and reported.
#[test]
fn native_memory_limit_cannot_be_loosened_from_inside() {
    let Some(cg) = delegated("loosen") else {
        return;
    };
    let fx = Fixture::new("memory-loosen");
    let script = format!(
        r#"c=/sys/fs/cgroup/memory$(grep :memory: /proc/self/cgroup | cut -d: -f3)
        for f in memory.limit_in_bytes memory.memsw.limit_in_bytes memory.soft_limit_in_bytes \
                 memory.kmem.tcp.limit_in_bytes memory.kmem.limit_in_bytes; do
            echo 4294967296 > $c/$f 2>/dev/null && echo "WROTE $f"
        done
        echo 1 > $c/memory.oom_control 2>/dev/null && echo "WROTE oom_control"
        mkdir $c/escape 2>/dev/null && echo "WROTE mkdir"
        echo $$ > {parent}/cgroup.procs 2>/dev/null && echo "WROTE parent"
        echo $$ > /sys/fs/cgroup/memory/cgroup.procs 2>/dev/null && echo "WROTE root"
        mkdir -p /tmp/cg && mount -t cgroup -o memory none /tmp/cg 2>/dev/null && echo "WROTE mount"
        unshare -Urmc true 2>/dev/null && echo "WROTE unshare"
        grep :memory: /proc/self/cgroup
        python3 -c "x = bytearray(200 << 20); print(\"ALLOCATED\")"
        echo end"#,
        parent = cg.0.display()
    );
    let out = cg.kennel(&fx, "64M", &script);
    let text = stdout(&out);
    assert!(text.contains("end"), "{text} {}", stderr(&out));
    assert!(!text.contains("WROTE"), "{text}");
    assert!(!text.contains("ALLOCATED"), "{text}");
    assert!(
        text.contains("/kennel-"),
        "not in a cgroup of its own: {text}"
    );
    assert!(
        stderr(&out).contains("reached its memory limit"),
        "{}",
        stderr(&out)
    );
    assert!(cg.sandbox_cgroups_left().is_empty());
}

/// Daemons the sandbox leaves behind, in sessions of their own and ignoring TERM and HUP,
/// neither keep its cgroup alive nor leave it behind, also when kennel is stopped (SIGTERM)
/// rather than the command ending.
#[test]
fn native_memory_cgroup_goes_with_every_process_of_the_sandbox() {
    let Some(cg) = delegated("leftover") else {
        return;
    };
    let fx = Fixture::new("memory-leftover");
    // Seconds to sleep, unique to this test run: `processes_with` finds the sleeps by them.
    let marker = format!("9{}", std::process::id());
    let out = cg.kennel(
        &fx,
        "64M",
        &format!(
            "trap '' TERM HUP; setsid sh -c 'trap \"\" TERM HUP; exec sleep {marker}1' \
             </dev/null >/dev/null 2>&1 & echo started"
        ),
    );
    assert!(stdout(&out).contains("started"), "{}", stderr(&out));
    assert!(processes_with(&format!("{marker}1")).is_empty());
    assert!(cg.sandbox_cgroups_left().is_empty());

    let mut cmd = fx.user_command("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec \"$0\" run --memory 64M -- sh -c \"$1\"",
            cg.0.display()
        ))
        .arg(&common::env().kennel)
        .arg(format!(
            "trap '' TERM HUP; setsid sh -c 'trap \"\" TERM HUP; exec sleep {marker}2' \
             </dev/null >/dev/null 2>&1 & exec sleep {marker}3"
        ))
        .current_dir(&fx.repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(common::eventually(10, || {
        !processes_with(&format!("{marker}2")).is_empty()
            && !processes_with(&format!("{marker}3")).is_empty()
    }));
    let kennel = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(kennel, nix::sys::signal::Signal::SIGTERM).unwrap();
    let _ = child.wait();
    assert!(processes_with(&marker).is_empty());
    assert!(
        cg.sandbox_cgroups_left().is_empty(),
        "{:?}",
        cg.sandbox_cgroups_left()
    );
}

/// KNOWN HOLE (left for the maintainers): on cgroup v1, TCP (and UDP) socket buffers are
/// charged to no memory cgroup unless `memory.kmem.tcp.limit_in_bytes` is set, and even
/// with it they go to a counter of their own that the kernel lets sockets overrun. A
/// sandbox with `--memory 64M` holds hundreds of MiB in loopback TCP connections it never
/// reads, up to the host's `net.ipv4.tcp_mem` (which then starves every TCP socket of the
/// host). Run with `--ignored`: it fails until kennel bounds or refuses this.
#[test]
#[ignore = "known hole: cgroup v1 does not charge socket buffers to --memory"]
fn native_memory_limit_bounds_socket_buffers_on_cgroup_v1() {
    let Some(cg) = delegated("sockets") else {
        return;
    };
    let fx = Fixture::new("memory-sockets");
    let script = r#"python3 - <<'EOF'
import socket, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(4096)
keep = []; held = 0; buf = b'x' * 65536
while held < (256 << 20) and len(keep) < 4000:
    a = socket.create_connection(l.getsockname()); b, _ = l.accept()
    a.setblocking(False)
    try:
        while True:
            held += a.send(buf)
    except BlockingIOError:
        pass
    keep.append((a, b))
print('HELD', held >> 20, 'MiB', flush=True)
EOF"#;
    let out = cg.kennel(&fx, "64M", script);
    let text = stdout(&out);
    let held: u64 = text
        .split_whitespace()
        .skip_while(|w| *w != "HELD")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        held <= 64,
        "a sandbox limited to 64 MiB held {held} MiB in socket buffers: {text} {}",
        stderr(&out)
    );
}

/// `--backend auto` where user namespaces are refused: the native attempt is made first.
/// The fallback's command meets exactly what an explicit `--backend landlock` gives: the
/// same descriptors (its own and kennel's), signal mask, home out of reach; nothing the
/// native attempt made (pipes, sockets, the home's handoff, a cgroup) is left.
#[test]
fn the_fallback_keeps_nothing_of_the_failed_native_attempt() {
    let probe = "ls /proc/self/fd | sort | tr '\\n' ' '; echo; \
                 ls /proc/$PPID/fd 2>/dev/null | sort | tr '\\n' ' '; echo; \
                 grep -E '^(SigBlk|SigIgn|NoNewPrivs)' /proc/self/status; \
                 ls ~ >/dev/null 2>&1 && echo HOME-READABLE; \
                 cat ~/.ssh/id_ed25519 2>/dev/null; echo end";
    let view = |backend: &'static str| {
        let fx = Fixture::new("fallback-leftovers").with_backend(backend);
        let backend_arg = if backend == common::AUTO {
            "auto"
        } else {
            backend
        };
        let out = kennel_run(&fx, &fx.repo, &["--backend", backend_arg], probe, 60);
        let text = stdout(&out);
        assert!(text.contains("end"), "{backend}: {text} {}", stderr(&out));
        assert!(!text.contains(SECRET), "{backend}: {text}");
        assert!(!text.contains("HOME-READABLE"), "{backend}: {text}");
        text
    };
    let fallback = view(common::AUTO);
    let landlock = view("landlock");
    assert_eq!(fallback, landlock);
    // --memory is refused by the fallback, and the cgroup the native attempt made is gone.
    let Some(cg) = delegated("fallback") else {
        return;
    };
    let fx = Fixture::new("fallback-memory").with_backend(common::AUTO);
    let mut cmd = fx.user_command("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec \"$0\" \"$1\" run --backend auto --memory 64M \
             -- echo RAN",
            cg.0.display()
        ))
        .arg(common::deny_userns())
        .arg(&common::env().kennel)
        .current_dir(&fx.repo);
    let out = output_within(cmd, 60);
    assert!(!stdout(&out).contains("RAN"), "{}", stdout(&out));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(cg.sandbox_cgroups_left().is_empty());
}
