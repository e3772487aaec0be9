#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! An independent review of two changes, attacked as a prompt-injected agent inside the
//! sandbox would, run as the unprivileged test user:
//! - the allow-list proxy accepting on the proxy port's listening socket handed over from
//!   inside, its reused threads and its one-thread relay (issue 19);
//! - the start gate of the native backend: what kennel records before the command runs
//!   beside the child's setup, and the command waits for the supervisor's second byte.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cgroup::output_within;
use common::{processes_with, stderr, stdout, FakeInternet, Fixture};

/// A fixture whose user config selects the allow-list network: the fake internet's hosts
/// by address, `denied.example.test` not listed.
fn allow_list(name: &str) -> (Fixture, FakeInternet) {
    let fx = Fixture::new(name);
    let net = FakeInternet::start(&fx);
    fx.user_config(&format!(
        "version = 1\n[defaults.network]\nmode = \"allow-list\"\n\
         allow = [\"127.0.0.2\", \"127.0.0.3\", \"echo.example.test:{}\"]\n",
        net.echo_port
    ));
    (fx, net)
}

/// `kennel run -- python3 -c SCRIPT` in the repository, ended within `secs` seconds.
fn python_within(fx: &Fixture, script: &str, secs: u64) -> (Output, Duration) {
    let mut cmd = fx.kennel();
    cmd.args(["run", "--", "python3", "-c", script])
        .current_dir(&fx.repo);
    let start = Instant::now();
    let out = output_within(cmd, secs);
    common::assert_kennel_started(&out);
    (out, start.elapsed())
}

/// Python inside: `hand(sock, kind, rest)` gives a descriptor to the proxy the way the
/// listeners inside do (a zero byte, the kind, the descriptor attached), and keeps it.
const HAND: &str = r#"
import os, socket, struct, time
PATH = os.environ["KENNEL_NET_SOCKET"]
def hand(fd, kind=b"P", rest=b""):
    u = socket.socket(socket.AF_UNIX)
    u.connect(PATH)
    socket.send_fds(u, [b"\0" + kind + rest], [fd])
    return u
def ask(target, addr=("127.0.0.1", 3128)):
    c = socket.create_connection(addr, timeout=10)
    c.sendall(b"CONNECT " + target + b" HTTP/1.1\r\n\r\n")
    try:
        return (c.recv(12).decode() or "closed")
    except OSError as e:
        return "error " + str(e)
"#;

/// A socket handed over from inside is one the sandbox keeps a descriptor of: there it can
/// clear the read timeout the proxy set on it and leave the request head unfinished, or fill
/// its send queue and never read, so that the proxy's 403 cannot be written. Each held a
/// thread and one of the 256 connection slots of kennel for good: 256 of them and the
/// sandbox had no network left for the rest of the session, and kennel 256 threads stuck.
/// The proxy now reads and writes a client's socket without waiting past the handshake time
/// (30 s) whatever its flags and timeouts say.
#[test]
fn sockets_handed_over_and_kept_hold_no_proxy_slot_past_the_handshake_time() {
    let (fx, net) = allow_list("kept-handoff");
    if !common::sandbox_available(&fx) {
        return;
    }
    let script = format!(
        r#"{HAND}
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(512)
mine = []
for i in range(256):
    peer = socket.socket()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    peer.connect(srv.getsockname())
    s, _ = srv.accept()
    if i % 2:
        peer.sendall(b"CONNECT denied.example.test:443 HTTP/1.1\r\n")
    else:
        peer.sendall(b"CONNECT denied.example.test:443 HTTP/1.1\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        s.setblocking(False)
        # Twice: what the peer's receive window takes after the first fill frees room.
        for _ in range(2):
            try:
                while True:
                    s.send(b"x" * 65536)
            except BlockingIOError:
                time.sleep(0.05)
        s.setblocking(True)
    hand(s.fileno()).close()
    mine.append((peer, s))
time.sleep(1)
for peer, s in mine[1::2]:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
print("while held:", ask(b"127.0.0.2:{http}"), flush=True)
time.sleep(34)
print("after the handshake time:", ask(b"127.0.0.2:{http}"), flush=True)
"#,
        http = net.http_port
    );
    let (out, _) = python_within(&fx, &script, 120);
    let (text, err) = (stdout(&out), stderr(&out));
    // The attack took every slot (or the test proves nothing)...
    let held = text
        .lines()
        .find_map(|l| l.strip_prefix("while held: "))
        .unwrap_or_else(|| panic!("{text} {err}"));
    assert!(held == "closed" || held.contains("reset"), "{text} {err}");
    assert!(err.contains("unserved: the sandbox had 256 open"), "{err}");
    // ...and they were given back.
    assert!(
        text.contains("after the handshake time: HTTP/1.1 200"),
        "{text} {err}"
    );
}

/// kennel ends as soon as the command does, whatever its proxy is busy with: open tunnels
/// (idle for up to 15 minutes), unfinished request heads and handed-over sockets with their
/// timeouts cleared (30 s), a listening socket of the sandbox's that the proxy accepts on.
#[test]
fn kennel_exits_at_once_while_its_proxy_threads_are_busy() {
    let (fx, net) = allow_list("busy-exit");
    if !common::sandbox_available(&fx) {
        return;
    }
    let script = format!(
        r#"{HAND}
held = []
for _ in range(20):
    c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    c.sendall(b"CONNECT 127.0.0.3:{echo} HTTP/1.1\r\n\r\n")
    held.append((c, c.recv(100)))
for _ in range(20):
    c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    c.sendall(b"CONNECT 127.0.0.3:")
    held.append(c)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
for _ in range(20):
    peer = socket.create_connection(srv.getsockname())
    s, _ = srv.accept()
    hand(s.fileno()).close()
    held.append((peer, s))
time.sleep(0.5)
for x in held[-20:]:
    x[1].setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen()
u = hand(l.fileno(), b"L")
u.settimeout(5)
print("listener", u.recv(1))
print("tunnels", sum(1 for x in held[:20] if b" 200 " in x[1]))
"#,
        echo = net.echo_port
    );
    let (out, took) = python_within(&fx, &script, 60);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text} {err}");
    assert!(text.contains("tunnels 20"), "{text} {err}");
    assert!(text.contains("listener b'A'"), "{text} {err}");
    assert!(
        took < Duration::from_secs(20),
        "kennel took {took:?} to end"
    );
}

/// Descriptors of other kinds handed over as a client's or a listener's: a file, a pipe, a
/// UDP socket (its datagram a request for a host loopback service), one end of a socket
/// pair the sandbox speaks through, a tunnel's head naming `localhost` on an unlisted port.
/// The proxy crashes on none, takes none as a listener, and serves what it serves with the
/// policy: the host's loopback service is never reached, an allowed host still is.
#[test]
fn descriptors_of_other_kinds_handed_to_the_proxy_get_the_policy_or_nothing() {
    let (fx, net) = allow_list("odd-handoff");
    if !common::sandbox_available(&fx) {
        return;
    }
    // A service of the host's on its loopback, counting its connections.
    let service = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = service.local_addr().unwrap().port();
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    std::thread::spawn(move || {
        for conn in service.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let script = format!(
        r#"{HAND}
def answer(s):
    s.settimeout(5)
    try:
        return s.recv(12).decode() or "closed"
    except OSError as e:
        return "nothing"
f = open("/tmp/file", "w+b")
r, w = os.pipe()
os.write(w, b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n")
for kind in (b"P", b"T", b"L"):
    u = hand(f.fileno(), kind, b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n")
    u.settimeout(3)
    try:
        print("file", kind, u.recv(1))
    except OSError:
        print("file", kind, "nothing")
    hand(r, kind).close()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.sendto(b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n", udp.getsockname())
hand(udp.fileno()).close()
for target in (b"127.0.0.1:{port}", b"localhost:{port}", b"[::ffff:127.0.0.1]:{port}",
               b"2130706433:{port}", b"127.0.0.2:{http}"):
    ours, theirs = socket.socketpair()
    hand(theirs.fileno()).close()
    theirs.close()
    ours.sendall(b"CONNECT " + target + b" HTTP/1.1\r\n\r\n")
    print("pair", target.decode(), answer(ours))
ours, theirs = socket.socketpair()
hand(theirs.fileno(), b"T", b"CONNECT localhost:{port} HTTP/1.1\r\n\r\n").close()
theirs.close()
print("tunnel localhost", answer(ours))
l, _ = socket.socketpair()
u = hand(l.fileno(), b"L")
u.settimeout(3)
try:
    print("pair as listener", u.recv(1))
except OSError:
    print("pair as listener nothing")
print("proxy port", ask(b"127.0.0.2:{http}"))
"#,
        http = net.http_port
    );
    let (out, _) = python_within(&fx, &script, 90);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text} {err}");
    assert!(!text.contains("b'A'"), "taken as a listener: {text}");
    for target in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"] {
        assert!(
            text.contains(&format!("pair {target}:{port} HTTP/1.1 403")),
            "{target}: {text} {err}"
        );
    }
    assert!(
        text.contains(&format!("pair 127.0.0.2:{} HTTP/1.1 200", net.http_port)),
        "{text} {err}"
    );
    assert!(text.contains("tunnel localhost closed"), "{text} {err}");
    assert!(
        text.contains("proxy port HTTP/1.1 200"),
        "the proxy stopped serving: {text} {err}"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "the host's loopback service was reached: {text} {err}"
    );
}

// ---- The start gate ----

/// The checkpoint store's lock, held by the test: kennel's record before the command
/// (`Started::begin`, the checkpoint) waits on it, so that the gate stays closed while the
/// test looks.
struct StoreLock(#[allow(dead_code)] nix::fcntl::Flock<fs::File>);

fn hold_store_lock(fx: &Fixture) -> StoreLock {
    let out = fx
        .kennel()
        .args(["run", "--checkpoint", "--", "true"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = find_file(&fx.home.join(".local/state/kennel"), "write")
        .unwrap_or_else(|| panic!("no checkpoint store under the home"));
    let file = fs::OpenOptions::new().write(true).open(lock).unwrap();
    StoreLock(
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| e)
            .unwrap(),
    )
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

fn spawn_gated(fx: &Fixture, marker: &str) -> Child {
    fx.kennel()
        .args(["run", "--checkpoint", "--", "sh", "-c"])
        .arg(format!("echo ran > started; exec sleep 30 {marker}"))
        .current_dir(&fx.repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn session_folders(fx: &Fixture) -> Vec<String> {
    let mut found = Vec::new();
    let tmp = fx.dir.join("tmp");
    for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let path = entry.path();
        for inner in fs::read_dir(&path).into_iter().flatten().flatten() {
            let name = inner.file_name().to_string_lossy().into_owned();
            if name.starts_with("kennel-net-") {
                found.push(name);
            }
        }
    }
    found
}

/// While kennel records the workspace (here: waits for the checkpoint store), the sandbox
/// is built beside it, its network helpers already running, but the command has not
/// started. kennel killed then: the command never starts, nothing of the sandbox's stays,
/// and the next kennel removes the session's folder left behind.
#[test]
fn the_command_waits_for_the_record_and_never_starts_when_kennel_is_killed_meanwhile() {
    let (fx, _net) = allow_list("gate-killed");
    if !common::sandbox_available(&fx) {
        return;
    }
    let lock = hold_store_lock(&fx);
    let marker = "kennel-review-gate-killed";
    let mut child = spawn_gated(&fx, marker);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "kennel ended while the lock was held"
    );
    assert!(
        !fx.repo.join("started").exists(),
        "the command ran before kennel's record"
    );
    assert_eq!(session_folders(&fx).len(), 1, "no network session");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(lock);
    assert!(
        common::eventually(10, || processes_with(marker).is_empty()),
        "a process of the sandbox stayed"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !fx.repo.join("started").exists(),
        "the command started after kennel was killed: {}",
        stderr(&out)
    );
    // The next kennel runs, and clears what the killed one left.
    let next = fx
        .kennel()
        .args(["run", "--no-checkpoint", "--", "true"])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(next.status.success(), "{}", stderr(&next));
    assert!(
        session_folders(&fx).is_empty(),
        "{:?}",
        session_folders(&fx)
    );
}

/// A termination signal (the user's Ctrl-C, a closed terminal, `kill`) that reaches kennel
/// while it records the workspace, before the command starts: the command must not start
/// afterwards. The signals kennel forwards to the command are blocked from before the
/// sandbox is made, so since the record runs beside the setup such a signal waited until
/// the command had started and was then given to it. It now ends kennel at once, even
/// while the record waits (here for the checkpoint store's lock), as it did before the
/// sandbox existed; one that comes as the record ends is taken before the command starts.
#[test]
fn a_termination_signal_during_the_record_ends_kennel_before_the_command_starts() {
    let (fx, _net) = allow_list("gate-signal");
    if !common::sandbox_available(&fx) {
        return;
    }
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let _ = fs::remove_file(fx.repo.join("started"));
        let lock = hold_store_lock(&fx);
        let marker = "kennel-review-gate-signal";
        let child = spawn_gated(&fx, marker);
        std::thread::sleep(Duration::from_secs(2));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let mut child = child;
        let ended = common::eventually(10, || child.try_wait().is_ok_and(|s| s.is_some()));
        drop(lock);
        assert!(ended, "{signal}: kennel waited for the record to end");
        let start = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{signal}: kennel went on"
        );
        assert!(
            !fx.repo.join("started").exists(),
            "{signal}: the command started after kennel was asked to end: {:?} {}",
            out.status,
            stderr(&out)
        );
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.signal() == Some(signal as i32)
                || out.status.code() == Some(128 + signal as i32),
            "{signal}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(
            common::eventually(10, || processes_with(marker).is_empty()),
            "{signal}: a process of the sandbox stayed"
        );
    }
}

/// What the sandbox's own processes hold from kennel (the gate pipe, the status and report
/// pipes, the session's socket, the home's descriptor) never reaches the command: it starts
/// with its standard streams and nothing else, with the allow-list network's helpers
/// started before it, on every backend. (`ls` itself opens /proc/self/fd as 3.)
fn the_command_holds_only_its_standard_streams(backend: &'static str) {
    let fx = Fixture::new("only-streams").with_backend(backend);
    // The landlock backend (and auto, falling back to it) cannot cut the network: it
    // refuses allow-list.
    if matches!(backend, "native" | "systemd") {
        fx.user_config(
            "version = 1\n[defaults.network]\nmode = \"allow-list\"\nallow = [\"127.0.0.2\"]\n",
        );
    }
    if !common::sandbox_available(&fx) {
        return;
    }
    let out = fx
        .kennel()
        .args([
            "run",
            "--backend",
            backend,
            "--",
            "sh",
            "-c",
            "ls /proc/self/fd",
        ])
        .current_dir(&fx.repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{backend}: {}", stderr(&out));
    let fds: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "{backend}: the command holds more than its streams: {}",
        stderr(&out)
    );
}

on_every_backend!(the_command_holds_only_its_standard_streams);
