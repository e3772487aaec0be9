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
    if backend == "systemd" {
        // systemd has no scoping of abstract sockets short of PrivateNetwork=: the README's
        // backends table says so. Nothing to try here.
        return;
    }
    let fx = Fixture::new("abstract").with_backend(backend);
    let name = format!("kennel-test-abstract-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let probe = format!(
        r#"python3 -c '
import socket
s = socket.socket(socket.AF_UNIX)
try:
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
s = socket.socket(socket.AF_UNIX)
try:
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
    if backend == "landlock" && stderr(&out).contains("unix sockets by path") {
        // Without a mount view only Landlock ABI 9 can refuse a socket by path; on older
        // kernels the backend says so (see landlock_backend_names_what_it_cannot_keep).
        return;
    }
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

on_every_backend!(
    abstract_unix_sockets_outside_are_unreachable,
    agent_and_bus_sockets_are_unreachable,
    seccomp_denies_keyring_terminal_injection_and_new_user_namespaces,
);
