#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! Defense in depth: Landlock behind the mount view, the seccomp filter, and no side door
//! to the user's agents and buses. Each test tries the escape as an unprivileged user.

mod common;

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;

use common::{stderr, stdout, Fixture, SECRET};

/// A debug-build hook binds a path into the mount view without any Landlock rule: the
/// kernel must still refuse to read it.
#[test]
fn landlock_alone_denies_what_the_mount_view_exposes() {
    let fx = Fixture::new("landlock");
    let exposed = fx.dir.join("exposed");
    fs::create_dir_all(&exposed).unwrap();
    fs::write(exposed.join("secret"), SECRET).unwrap();
    fx.chown(&exposed);
    let out = fx
        .kennel()
        .args(["run", "--", "sh", "-c"])
        .arg(format!(
            "ls {d} && cat {d}/secret; echo status=$?; echo x > {d}/new; echo write=$?",
            d = exposed.display()
        ))
        .env("KENNEL_DEBUG_MOUNT_ONLY", &exposed)
        .output()
        .unwrap();
    common::assert_kennel_started(&out);
    let text = stdout(&out);
    // The mount view shows the directory (listing is allowed from `/`)...
    assert!(
        text.contains("secret"),
        "the hook did not expose the path: {text} {}",
        stderr(&out)
    );
    // ...but Landlock refuses its content and any write.
    assert!(
        !text.contains(SECRET),
        "Landlock let a secret through: {text}"
    );
    assert!(text.contains("status=1"), "{text}");
    assert!(
        text.contains("write=1") || text.contains("write=2"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
}

fn abstract_unix_sockets_outside_are_unreachable(backend: &'static str) {
    // On the systemd backend kennel's step inside the unit scopes them (Landlock ABI 6).
    let fx = Fixture::new("abstract").with_backend(backend);
    let name = format!("kennel-test-abstract-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let probe = format!(
        r#"python3 -c '
import socket
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("\0{name}")
    print("CONNECTED")
except OSError as e:
    print("refused", e.errno)
'"#
    );
    let out = fx.sandboxed(&probe);
    assert!(
        stdout(&out).contains("refused"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(listener.accept().is_err(), "the listener was reached");
    // The same probe outside the sandbox reaches it: the test can tell the difference.
    let outside = fx.as_user(&probe);
    assert!(
        stdout(&outside).contains("CONNECTED"),
        "{}",
        stdout(&outside)
    );
}

fn agent_and_bus_sockets_are_unreachable(backend: &'static str) {
    let fx = Fixture::new("sockets").with_backend(backend);
    let uid = common::env().uid;
    let dir = Path::new("/run/user")
        .join(uid.to_string())
        .join(format!("kennel-test-{}-{backend}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let agent = dir.join("ssh-agent.socket");
    let bus = dir.join("bus");
    // Each backend's run of this test has sockets of its own: they run in parallel.
    let docker = Path::new("/run").join(format!(
        "kennel-test-docker-{}-{backend}.sock",
        std::process::id()
    ));
    let listeners: Vec<UnixListener> = [&agent, &bus, &docker.to_path_buf()]
        .iter()
        .map(|p| UnixListener::bind(p).unwrap())
        .collect();
    for p in [&agent, &bus, &docker] {
        let _ = fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o777));
    }
    fx.chown(&dir);
    let script = format!(
        r#"for s in {a} {b} {d} /var/run/{dn}; do
python3 -c '
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1]); print("CONNECTED", sys.argv[1])
except OSError as e:
    print("no", e.errno)
' "$s"; done"#,
        a = agent.display(),
        b = bus.display(),
        d = docker.display(),
        dn = docker.file_name().unwrap().to_string_lossy()
    );
    let out = fx.sandboxed(&script);
    let outside = fx.as_user(&script);
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_file(&docker);
    drop(listeners);
    assert!(
        stdout(&outside).contains("CONNECTED"),
        "the probe itself must work: {}",
        stdout(&outside)
    );
    // Without a mount view (landlock backend) the sockets stay in sight: socket(AF_UNIX)
    // itself is refused there.
    assert!(!stdout(&out).contains("CONNECTED"), "{}", stdout(&out));
    assert_eq!(stdout(&out).matches("no ").count(), 4, "{}", stdout(&out));
}

/// Runs a raw system call inside the sandbox and prints `ret errno`.
fn syscall_script(nr: i64, args: &str) -> String {
    format!(
        r#"python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.syscall({nr}, {args})
print(r, ctypes.get_errno())
'"#
    )
}

/// io_uring is a second way to most system calls that seccomp never sees: its setup call
/// is refused inside, on every backend (issue 17, item 10), and so are the other two.
fn io_uring_is_refused(fx: &Fixture) {
    // io_uring_setup(1, &params), params being 120 zeroed bytes; then enter and register
    // on descriptor 0, which the kernel would refuse with EOPNOTSUPP or EBADF.
    let probe = format!(
        r#"python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
r = libc.syscall({setup}, 1, params)
print("setup", r, ctypes.get_errno())
r = libc.syscall({enter}, 0, 0, 0, 0, None, 0)
print("enter", r, ctypes.get_errno())
r = libc.syscall({register}, 0, 0, None, 0)
print("register", r, ctypes.get_errno())
'"#,
        setup = libc::SYS_io_uring_setup,
        enter = libc::SYS_io_uring_enter,
        register = libc::SYS_io_uring_register,
    );
    let outside = fx.as_user(&probe);
    let works_outside = stdout(&outside)
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("setup ") && !l.starts_with("setup -1"));
    if common::skip_unless(
        works_outside,
        &format!(
            "io_uring_setup fails outside the sandbox too (kernel.io_uring_disabled?): {}",
            stdout(&outside)
        ),
    ) {
        return;
    }
    let out = fx.sandboxed(&probe);
    let eperm = libc::EPERM;
    assert_eq!(
        stdout(&out).trim(),
        format!("setup -1 {eperm}\nenter -1 {eperm}\nregister -1 {eperm}"),
        "{}",
        stderr(&out)
    );
}

fn seccomp_denies_keyring_terminal_injection_and_new_user_namespaces(backend: &'static str) {
    let fx = Fixture::new("seccomp").with_backend(backend);
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    let keyring = syscall_script(libc::SYS_keyctl, "0, -3, 0");
    let out = fx.sandboxed(&keyring);
    assert_eq!(
        stdout(&out).trim(),
        format!("-1 {}", libc::EPERM),
        "{}",
        stderr(&out)
    );
    let outside = fx.as_user(&keyring);
    assert!(
        !stdout(&outside).starts_with("-1"),
        "the probe must work outside: {}",
        stdout(&outside)
    );

    // TIOCSTI on a non-terminal fails with ENOTTY in the kernel; the filter answers EPERM
    // before the call gets there.
    let tiocsti = r#"python3 -c '
import fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"x"); print("injected")
except OSError as e:
    print("errno", e.errno)
' </dev/null"#;
    let out = fx.sandboxed(tiocsti);
    if backend == "systemd" {
        // No ioctl argument filter there: the unit has no controlling terminal (or one of
        // its own), so the kernel refuses injection into the user's (terminal tests).
        assert_ne!(stdout(&out).trim(), "injected");
    } else {
        assert_eq!(stdout(&out).trim(), format!("errno {}", libc::EPERM));
    }

    // fscrypt: a key added or removed would change the names of an encrypted folder with no
    // change on disk the end-of-session git check could see; refused before the file system
    // is asked (outside, an ext4 without encryption answers EOPNOTSUPP, tmpfs ENOTTY).
    let fscrypt = r#"python3 -c '
import fcntl, os
fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
for request in (0xC0506617, 0xC0406618, 0x800C6613):
    try:
        fcntl.ioctl(fd, request, bytearray(80)); print("done")
    except OSError as e:
        print("errno", e.errno)
'"#;
    let out = fx.sandboxed(fscrypt);
    let eperm = format!("errno {}", libc::EPERM);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [&eperm, &eperm, &eperm],
        "{}",
        stderr(&out)
    );
    let outside = fx.as_user(fscrypt);
    assert!(
        stdout(&outside).lines().count() == 3 && !stdout(&outside).contains(&eperm),
        "the probe must reach the file system outside: {}",
        stdout(&outside)
    );

    // chattr: a folder made case-insensitive (`+F`, where the file system has casefold) reads
    // `.GIT` as `.git`; chattr's ioctl sets no flag inside. `+A` (no access times) is one any
    // owner may set on ext4, as outside.
    let chattr = "touch attr-probe && chattr +A attr-probe 2>&1; echo status=$?; rm -f attr-probe";
    let out = fx.sandboxed(chattr);
    assert!(
        stdout(&out).contains("Operation not permitted") && !stdout(&out).contains("status=0"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let outside = fx.as_user(&format!("cd '{}' && {chattr}", fx.repo.display()));
    assert!(
        stdout(&outside).contains("status=0"),
        "chattr must work outside: {} {}",
        stdout(&outside),
        stderr(&outside)
    );

    io_uring_is_refused(&fx);

    let out = fx.sandboxed("unshare --user --map-root-user true; echo status=$?");
    assert!(
        stdout(&out).contains("status=1"),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    let outside = fx.as_user("unshare --user --map-root-user true; echo status=$?");
    assert!(
        stdout(&outside).contains("status=0"),
        "{}",
        stderr(&outside)
    );

    let out = fx.sandboxed("mkdir -p /tmp/m && mount -t tmpfs none /tmp/m; echo status=$?");
    assert!(!stdout(&out).contains("status=0"), "{}", stdout(&out));

    // A system call of the x32 convention (getpid with bit 30 set) ends the process
    // (SIGSYS: 128 + 31) where kennel's filter applies; outside, the kernel answers it.
    #[cfg(target_arch = "x86_64")]
    if backend != "systemd" {
        let x32 = format!(
            "{}; echo status=$?",
            syscall_script(0x4000_0000 | libc::SYS_getpid, "")
        );
        let out = fx.sandboxed(&x32);
        assert!(
            stdout(&out).contains("status=159"),
            "{} {}",
            stdout(&out),
            stderr(&out)
        );
        let outside = fx.as_user(&x32);
        assert!(
            stdout(&outside).contains("status=0"),
            "{}",
            stdout(&outside)
        );
    }
}

/// The user's other terminals (what is typed in another window) and the host's /dev/shm
/// (shared memory of every program of the user's) are out of reach: the landlock backend,
/// without a /dev of its own, grants only the devices programs need.
fn other_terminals_and_shared_memory_are_out_of_reach(backend: &'static str) {
    let fx = Fixture::new("devices").with_backend(backend);
    let shm = format!("/dev/shm/kennel-test-{}-{backend}", std::process::id());
    // Outside, as the user: a terminal of theirs, held open while the sandbox runs, and a
    // file in shared memory.
    let mut holder = fx
        .user_command("python3")
        .args([
            "-c",
            "import os, pty, sys, time\nm, s = pty.openpty()\nprint(os.ttyname(s), flush=True)\ntime.sleep(30)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let terminal = line.trim().to_string();
    fx.as_user(&format!("echo {SECRET} > {shm}"));
    let probe = format!(
        r#"python3 -c '
import os
for path in ["{terminal}", "{shm}"]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        print("refused", path, e.errno)
        continue
    try:
        print("OPENED", path, os.read(fd, 100))
    except OSError:
        print("OPENED", path)
try:
    open("{shm}-new", "w").write("x")
    print("WROTE shm")
except OSError as e:
    print("refused new", e.errno)
for path in ["/dev/null", "/dev/urandom"]:
    os.close(os.open(path, os.O_RDWR))
print("devices ok")
'"#
    );
    let out = fx.sandboxed(&probe);
    // A private /dev/shm inside may take the write; the host's must not.
    let wrote_outside = Path::new(&format!("{shm}-new")).exists();
    let outside = fx.as_user(&probe);
    let _ = holder.kill();
    let _ = holder.wait();
    let _ = fs::remove_file(&shm);
    let _ = fs::remove_file(format!("{shm}-new"));
    let text = stdout(&out);
    assert!(
        stdout(&outside).contains(&format!("OPENED {terminal}")),
        "the probe itself must work: {}",
        stdout(&outside)
    );
    assert!(text.contains("devices ok"), "{text} {}", stderr(&out));
    assert!(!text.contains("OPENED"), "{backend}: {text}");
    assert!(
        !wrote_outside,
        "{backend}: wrote the host's /dev/shm: {text}"
    );
    assert!(!text.contains(SECRET), "{backend}: {text}");
}

#[test]
fn native_other_terminals_and_shared_memory_are_out_of_reach() {
    other_terminals_and_shared_memory_are_out_of_reach("native");
}

#[test]
fn landlock_other_terminals_and_shared_memory_are_out_of_reach() {
    other_terminals_and_shared_memory_are_out_of_reach("landlock");
}

#[test]
fn auto_without_user_namespaces_other_terminals_and_shared_memory_are_out_of_reach() {
    other_terminals_and_shared_memory_are_out_of_reach(common::AUTO);
}

/// A process of the user's outside the sandbox cannot be signalled from inside (own PID
/// namespace on native; Landlock's signal scope on landlock and, by kennel's step inside
/// the unit, on systemd).
fn processes_outside_cannot_be_signalled(backend: &'static str) {
    let fx = Fixture::new("signal-outside").with_backend(backend);
    let marker = format!("kennel-signal-target-{}-{backend}", std::process::id());
    let mut outside = fx
        .user_command("sleep")
        .arg(format!("30.{}", std::process::id() % 1000))
        .spawn()
        .unwrap();
    let pid = outside.id();
    let out = fx.sandboxed(&format!(
        "kill -TERM {pid} 2>&1 && echo SIGNALLED; echo {marker}"
    ));
    let alive = outside.try_wait().unwrap().is_none();
    let _ = outside.kill();
    let _ = outside.wait();
    assert!(
        stdout(&out).contains(&marker),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        !stdout(&out).contains("SIGNALLED"),
        "{backend}: {}",
        stdout(&out)
    );
    assert!(alive, "{backend}: a process outside was killed from inside");
}

/// The user's other processes are not even visible from inside (their command lines can
/// hold secrets: tokens passed as arguments), and /proc/sys and /sys are read-only: on
/// native, the sandbox's own PID namespace and /proc; on systemd, the same made by kennel's
/// step inside the unit (systemd 252 has no PrivatePIDs=). The landlock backend cannot
/// hide them (named in its notice and the README).
fn processes_outside_are_invisible(backend: &'static str) {
    let fx = Fixture::new("invisible-outside").with_backend(backend);
    let mut outside = fx
        .user_command("sleep")
        .arg(format!("31.{}", std::process::id() % 1000))
        .spawn()
        .unwrap();
    let pid = outside.id();
    let out = fx.sandboxed(&format!(
        "ls -d /proc/{pid} 2>/dev/null && echo VISIBLE; cat /proc/{pid}/cmdline 2>/dev/null \
         && echo READ; kill -0 {pid} 2>/dev/null && echo REACHED; echo pid=$$; \
         echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo WROTE-SYSCTL; \
         grep -E ' /(proc/sys|sys) ' /proc/self/mountinfo | grep -v ' ro,' | grep -q . \
         && echo WRITABLE-MOUNT; mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED; \
         unshare -U true 2>/dev/null && echo NEW-USERNS; echo checked"
    ));
    let _ = outside.kill();
    let _ = outside.wait();
    let text = stdout(&out);
    assert!(text.contains("checked"), "{text} {}", stderr(&out));
    for leak in [
        "VISIBLE",
        "READ",
        "REACHED",
        "WROTE-SYSCTL",
        "WRITABLE-MOUNT",
        "MOUNTED",
        "NEW-USERNS",
    ] {
        assert!(!text.contains(leak), "{backend}: {leak}: {text}");
    }
}

#[test]
fn native_processes_outside_are_invisible() {
    processes_outside_are_invisible("native");
}

#[test]
fn systemd_processes_outside_are_invisible() {
    if common::skip_without_user_manager() {
        return;
    }
    processes_outside_are_invisible("systemd");
}

/// The user's real agents and buses, as a desktop session runs them: an ssh-agent holding a
/// key, a D-Bus session bus (its own daemon) and, where one runs, the systemd user manager.
/// Each answers outside; none answers the sandbox, whatever address the command gives.
fn real_agents_and_buses_do_not_answer_the_sandbox(backend: &'static str) {
    let fx = Fixture::new("real-agents").with_backend(backend);
    let uid = common::env().uid;
    let runtime = Path::new("/run/user").join(uid.to_string());
    let dir = runtime.join(format!("kennel-real-{}-{backend}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fx.chown(&runtime);
    let (agent, bus) = (dir.join("agent.sock"), dir.join("bus"));
    let started = fx.as_user(&format!(
        "set -e; cd '{d}'; ssh-keygen -q -t ed25519 -N '' -C kennel-test-key -f key; \
         ssh-agent -a '{a}' > agent.env; SSH_AUTH_SOCK='{a}' ssh-add -q key; \
         dbus-daemon --session --address='unix:path={b}' --fork --print-pid > bus.pid",
        d = dir.display(),
        a = agent.display(),
        b = bus.display()
    ));
    let stop = || {
        let _ = fx.as_user(&format!(
            "cd '{d}'; . ./agent.env >/dev/null; kill \"$SSH_AGENT_PID\" $(cat bus.pid) 2>/dev/null",
            d = dir.display()
        ));
        let _ = fs::remove_dir_all(&dir);
    };
    if !started.status.success() {
        stop();
        panic!("starting the agents failed: {}", stderr(&started));
    }
    let ask = format!(
        "SSH_AUTH_SOCK='{a}' ssh-add -l 2>/dev/null | grep -q kennel-test-key && echo AGENT-ANSWERED; \
         dbus-send --bus='unix:path={b}' --print-reply --dest=org.freedesktop.DBus / \
         org.freedesktop.DBus.ListNames >/dev/null 2>&1 && echo BUS-ANSWERED; \
         XDG_RUNTIME_DIR='{r}' systemctl --user show --property=Version --value 2>/dev/null \
         | grep -q . && echo MANAGER-ANSWERED; echo asked",
        a = agent.display(),
        b = bus.display(),
        r = runtime.display()
    );
    let outside = fx.as_user(&ask);
    let inside = fx.sandboxed(&ask);
    stop();
    // Outside, the agent and the bus answer (the manager where one runs): the probe works.
    let seen = stdout(&outside);
    assert!(
        seen.contains("AGENT-ANSWERED") && seen.contains("BUS-ANSWERED"),
        "{seen} {}",
        stderr(&outside)
    );
    let text = stdout(&inside);
    assert!(
        text.contains("asked"),
        "{backend}: {text} {}",
        stderr(&inside)
    );
    for answer in ["AGENT-ANSWERED", "BUS-ANSWERED", "MANAGER-ANSWERED"] {
        assert!(!text.contains(answer), "{backend}: {answer}: {text}");
    }
}

on_every_backend!(
    real_agents_and_buses_do_not_answer_the_sandbox,
    abstract_unix_sockets_outside_are_unreachable,
    agent_and_bus_sockets_are_unreachable,
    seccomp_denies_keyring_terminal_injection_and_new_user_namespaces,
    processes_outside_cannot_be_signalled,
);

#[test]
fn systemd_host_shared_memory_is_out_of_reach() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("shm-systemd").with_backend("systemd");
    let shm = format!("/dev/shm/kennel-test-{}-systemd", std::process::id());
    fx.as_user(&format!("echo {SECRET} > {shm}"));
    let out = fx.sandboxed(&format!(
        "cat {shm} 2>/dev/null; echo new > {shm}-new; ls -A /dev/shm; echo done"
    ));
    let wrote_outside = Path::new(&format!("{shm}-new")).exists();
    let _ = fs::remove_file(&shm);
    let _ = fs::remove_file(format!("{shm}-new"));
    let text = stdout(&out);
    assert!(text.contains("done"), "{text} {}", stderr(&out));
    assert!(!text.contains(SECRET), "{text}");
    assert!(!wrote_outside, "the unit wrote the host's /dev/shm: {text}");
}
