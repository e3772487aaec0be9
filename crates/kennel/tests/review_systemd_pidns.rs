#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test code may panic
//! An independent review of the systemd backend's own PID namespace (kennel's step inside
//! the unit: a user, mount and PID namespace with its own /proc, a parent that stays outside
//! and waits, the native system call filter), one behaviour test per attack, written as a
//! prompt-injected command inside the unit would try it. The unit no longer filters the
//! mount calls and lets the step make user, mount and PID namespaces, so what the command
//! could do before with the unit's filter alone is tried here against the step's.

mod common;

use std::process::Stdio;

use common::{stderr, stdout, Fixture};

/// A small C program of attacks that a shell cannot make: each call is tried in a child of
/// its own, which prints `NAME: ALLOWED` only when the kernel let it through (a refusal
/// prints `NAME: refused ERRNO`, a filter's kill `NAME: killed SIG`).
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int peer_pidfd = -1;

static void try(const char *name, long (*call)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        errno = 0;
        long r = call();
        if (r >= 0) printf("%s: ALLOWED\n", name);
        else printf("%s: refused %d\n", name, errno);
        fflush(stdout);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) printf("%s: killed %d\n", name, WTERMSIG(status));
}

static long new_user_ns(void) { return syscall(SYS_unshare, CLONE_NEWUSER); }
static long new_mount_ns(void) { return syscall(SYS_unshare, CLONE_NEWNS); }
static long new_pid_ns(void) { return syscall(SYS_unshare, CLONE_NEWPID); }
static long clone_new_user(void) {
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0) _exit(0);
    return r;
}
static long clone3_new_user(void) {
    unsigned long long args[11] = {0};
    args[0] = CLONE_NEWUSER;
    args[4] = SIGCHLD;
    long r = syscall(435, args, sizeof args);
    if (r == 0) _exit(0);
    return r;
}
static long mount_tmpfs(void) { return mount("none", "/tmp", "tmpfs", 0, 0); }
static long umount_proc(void) { return umount2("/proc", MNT_DETACH); }
static long umount_proc_sys(void) { return umount2("/proc/sys", MNT_DETACH); }
static long sys_writable(void) {
    unsigned long long attr[4] = {0, 1 /* MOUNT_ATTR_RDONLY cleared */, 0, 0};
    return syscall(442, AT_FDCWD, "/sys", 0x8000 /* AT_RECURSIVE */, attr, sizeof attr);
}
static long clone_old_proc(void) { return syscall(428, AT_FDCWD, "/proc", 1 | 0x8000); }
static long new_proc(void) { return syscall(430, "proc", 0); }
static long to_chroot(void) { return chroot("/tmp"); }
static long join_mount_ns(void) { return setns(open("/proc/self/ns/mnt", O_RDONLY), 0); }
static long trace_init(void) { return ptrace(PTRACE_ATTACH, 1, 0, 0); }
static long seize_init(void) { return ptrace(PTRACE_SEIZE, 1, 0, 0); }
static long steal_init_fd(void) {
    long fd = syscall(434, 1, 0);
    if (fd < 0) return fd;
    for (int n = 0; n < 16; n++)
        if (syscall(438, fd, n, 0) >= 0) return 0;
    return -1;
}
static long read_init_memory(void) {
    char buf[8];
    struct iovec local = {buf, sizeof buf};
    struct iovec remote = {(void *)0x400000, sizeof buf};
    long r = syscall(SYS_process_vm_readv, 1, &local, 1, &remote, 1, 0);
    return r < 0 && errno == EFAULT ? 0 : r; /* EFAULT: let in, at an unmapped address */
}
static long compare_init_files(void) { return syscall(SYS_kcmp, 1, getpid(), 0, 0, 0); }
static long kill_peer(void) { return syscall(424, peer_pidfd, SIGKILL, 0, 0); }
static long steal_peer_fd(void) {
    for (int n = 0; n < 64; n++)
        if (syscall(438, peer_pidfd, n, 0) >= 0) return 0;
    return -1;
}
static long peer_mount_ns(void) { return ioctl(peer_pidfd, 0xFF03); /* PIDFD_GET_MNT_NAMESPACE */ }
static long peer_user_ns(void) { return ioctl(peer_pidfd, 0xFF09); /* PIDFD_GET_USER_NAMESPACE */ }

#ifdef __x86_64__
static long int80(long nr, long a, long b, long c, long d) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d) : "memory");
    if (r < 0) { errno = -r; return -1; }
    return r;
}
static long i386_unshare(void) { return int80(310, CLONE_NEWUSER, 0, 0, 0); }
static long i386_mount(void) { return int80(21, (long)"none", (long)"/tmp", (long)"tmpfs", 0); }
static long i386_umount_proc(void) { return int80(52, (long)"/proc", MNT_DETACH, 0, 0); }
static long x32_unshare(void) { return syscall(0x40000000 | 272, CLONE_NEWUSER); }
static long x32_umount_proc(void) { return syscall(0x40000000 | 166, "/proc", MNT_DETACH); }
#endif

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "peer") == 0) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        strncpy(addr.sun_path, argv[2], sizeof addr.sun_path - 1);
        if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
            printf("connect: %s\n", strerror(errno));
            return 0;
        }
        socklen_t len = sizeof peer_pidfd;
        if (getsockopt(s, SOL_SOCKET, 77 /* SO_PEERPIDFD */, &peer_pidfd, &len) < 0) {
            printf("no SO_PEERPIDFD here: %s\n", strerror(errno));
            return 0;
        }
        printf("got a pidfd of the peer\n");
        try("pidfd_send_signal SIGKILL to the peer", kill_peer);
        try("pidfd_getfd of the peer", steal_peer_fd);
        try("the peer's mount namespace", peer_mount_ns);
        try("the peer's user namespace", peer_user_ns);
        return 0;
    }
    try("unshare user", new_user_ns);
    try("unshare mount", new_mount_ns);
    try("unshare pid", new_pid_ns);
    try("clone user", clone_new_user);
    try("clone3 user", clone3_new_user);
    try("mount tmpfs", mount_tmpfs);
    try("umount /proc", umount_proc);
    try("umount /proc/sys", umount_proc_sys);
    try("mount_setattr /sys rw", sys_writable);
    try("open_tree /proc", clone_old_proc);
    try("fsopen proc", new_proc);
    try("chroot", to_chroot);
    try("setns", join_mount_ns);
    try("ptrace attach 1", trace_init);
    try("ptrace seize 1", seize_init);
    try("pidfd_getfd 1", steal_init_fd);
    try("process_vm_readv 1", read_init_memory);
    try("kcmp 1", compare_init_files);
#ifdef __x86_64__
    try("i386 unshare user", i386_unshare);
    try("i386 mount", i386_mount);
    try("i386 umount /proc", i386_umount_proc);
    try("x32 unshare user", x32_unshare);
    try("x32 umount /proc", x32_umount_proc);
#endif
    printf("probed\n");
    return 0;
}
"#;

/// A fixture for the systemd backend with [`PROBE`] built as `probe` in its workspace;
/// None (after a printed SKIP) without a user manager or a C compiler.
fn with_probe(name: &str) -> Option<Fixture> {
    if common::skip_without_user_manager() {
        return None;
    }
    if !common::have_program("cc") {
        common::skip_unless(false, "no C compiler (cc) to build the probe");
        return None;
    }
    let fx = Fixture::new(name).with_backend("systemd");
    fx.write(&fx.repo.join("probe.c"), PROBE);
    let out = fx.as_user(&format!(
        "cc -O0 -o '{0}/probe' '{0}/probe.c'",
        fx.repo.display()
    ));
    assert!(out.status.success(), "building the probe: {}", stderr(&out));
    Some(fx)
}

fn assert_nothing_allowed(text: &str, err: &str) {
    let allowed: Vec<&str> = text.lines().filter(|l| l.ends_with("ALLOWED")).collect();
    assert!(
        allowed.is_empty(),
        "let through: {allowed:?}\n{text}\n{err}"
    );
}

/// The step's own namespaces, the kernel's other calling conventions and kennel's step
/// (PID 1 of the namespace): the unit lets the step make user, mount and PID namespaces and
/// no longer filters mount calls, so the step's filter and dropped capabilities are all
/// that stop the command from making a namespace, uncovering the unit's /proc under the new
/// one (`umount /proc`, `open_tree`), making /sys writable again, or reading the step.
#[test]
fn no_call_makes_a_namespace_uncovers_the_old_proc_or_reaches_kennels_step() {
    let Some(fx) = with_probe("pidns-calls") else {
        return;
    };
    let out = fx.sandboxed("../probe");
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("probed"), "{text} {err}");
    for name in [
        "unshare user",
        "clone user",
        "mount tmpfs",
        "umount /proc",
        "ptrace attach 1",
    ] {
        assert!(
            text.contains(&format!("{name}: ")),
            "{name} untried: {text}"
        );
    }
    assert_nothing_allowed(&text, &err);
    // clone3's flags cannot be read by a filter: it is refused as unknown, and libc falls
    // back to clone, which the filter reads.
    assert!(text.contains("clone3 user: refused 38"), "{text}");
    if cfg!(target_arch = "x86_64") {
        // The other conventions end the process (a filter for x86_64 calls only would
        // let `int 0x80` make a user namespace the unit now allows).
        for name in ["i386 unshare user", "i386 umount /proc", "x32 unshare user"] {
            assert!(
                text.contains(&format!("{name}: killed")),
                "{name} not killed: {text}"
            );
        }
    }
}

/// What of kennel's step the command can name (`/proc/1/...`, the step being PID 1) holds
/// nothing for it: its environment (the profile's API keys pass through the unit's), memory,
/// descriptors and root stay closed; it ignores the signals the command may send it; and
/// the parent that stays outside has no number inside (PPid 0) and no /proc entry.
#[test]
fn kennels_step_is_pid_1_and_holds_nothing_for_the_command() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("pidns-step").with_backend("systemd");
    let out = fx.sandboxed(
        "for f in environ mem maps auxv stack syscall pagemap smaps timers; do \
           cat /proc/1/$f >/dev/null 2>&1 && echo READ-$f; done; \
         ls /proc/1/fd /proc/1/map_files >/dev/null 2>&1 && echo LISTED-FD; \
         for l in root cwd exe; do readlink /proc/1/$l >/dev/null 2>&1 && echo LINK-$l; done; \
         cat /proc/1/root/proc/1/environ >/dev/null 2>&1 && echo VIA-ROOT; \
         kill -KILL 1 2>/dev/null; kill -STOP 1 2>/dev/null; sleep 0.3; \
         grep -q '^State:.*(stopped)' /proc/1/status && echo STEP-STOPPED; \
         kill -CONT 1 2>/dev/null; \
         grep '^PPid:' /proc/1/status; \
         for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done \
           | grep -v -e '^$' -e internal-verify-exec -e '^sh -c' -e '^tr ' -e '^grep ' -e '^sed ' \
           | sed 's/^/OTHER: /'; \
         echo checked",
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("checked"), "{text} {err}");
    assert_eq!(out.status.code(), Some(0), "{text} {err}");
    for leak in [
        "READ-",
        "LISTED-FD",
        "LINK-",
        "VIA-ROOT",
        "STEP-STOPPED",
        "OTHER: ",
    ] {
        assert!(!text.contains(leak), "{leak}: {text}");
    }
    assert!(text.contains("PPid:\t0"), "{text}");
}

/// The step's parent stays outside the PID namespace (the unit's main process, the one
/// systemd watches) but in the command's process group: `kill(0, SIGKILL)` walks the whole
/// group, whatever the namespace. Landlock's signal scope keeps it out of reach (the
/// parent is outside the step's Landlock domain). Killed, it would end the sandbox behind
/// the command's back; the same reach would let SIGSTOP stop it, and the unit and kennel
/// would then hang after the command ended (not tried here: the test would hang).
#[test]
fn the_parent_outside_cannot_be_signalled_through_the_process_group() {
    if common::skip_without_user_manager() {
        return;
    }
    if !common::have_program("perl") {
        common::skip_unless(false, "no perl");
        return;
    }
    let fx = Fixture::new("pidns-pgrp").with_backend("systemd");
    // perl (PID 2, the command) leaves the group; its child stays in it and signals it.
    let out = fx.sandboxed(
        "exec perl -e '$| = 1; pipe(R, W); my $c = fork(); \
         if (!$c) { close W; <R>; exec \"sh\", \"-c\", \"kill -KILL 0\"; } \
         close R; setpgrp(0, 0) or die \"setpgrp: $!\"; close W; waitpid($c, 0); \
         print \"child ended $?\\n\"; select(undef, undef, undef, 1); print \"SURVIVED\\n\"'",
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("child ended"), "{text} {err}");
    assert!(
        text.contains("SURVIVED"),
        "the parent outside was signalled: {text} {err}"
    );
    assert_eq!(out.status.code(), Some(0), "{text} {err}");
}

/// A pidfd of a process outside, which the PID namespace was meant to leave out of reach:
/// SO_PEERPIDFD hands one over for any unix socket the command can connect to, such as the
/// allow-list proxy's, whose peer is the outer kennel (same user, dumpable). Signals through
/// it are refused (not in the command's PID namespace; Landlock's scope), and so are its
/// descriptors and namespaces (Landlock refuses ptrace access out of its domain).
#[test]
fn a_peer_outside_found_through_a_socket_can_be_neither_signalled_nor_robbed() {
    let Some(fx) = with_probe("pidns-peer") else {
        return;
    };
    let out = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--net", "allow-list", "--"])
        .args([
            "sh",
            "-c",
            "sock=$(tr '\\0' '\\n' < /proc/1/cmdline | grep -m1 -x -A1 -- --net-socket \
             | tail -n 1); echo \"socket: $sock\"; ../probe peer \"$sock\"; echo checked",
        ])
        .current_dir(fx.repo.join("sub"))
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("checked"), "{text} {err}");
    assert!(text.contains("socket: /"), "no proxy socket: {text} {err}");
    assert!(
        text.contains("got a pidfd of the peer") || text.contains("no SO_PEERPIDFD here"),
        "{text} {err}"
    );
    assert_nothing_allowed(&text, &err);
    // The outer kennel, the peer, lived to report the command's status.
    assert_eq!(out.status.code(), Some(0), "{text} {err}");
}

/// /proc/sys, /sys and the cgroup files stay read-only without the unit's
/// ProtectKernelTunables= (the step makes them so in its own mount namespace): every mount
/// at or under them, and writes to the unit's own cgroup (its limits, which `--memory` and
/// `--tasks` set, and cgroup.procs, which would move the command out of the unit). No procfs other than the
/// step's own is reachable.
#[test]
fn proc_sys_sys_and_the_units_cgroup_stay_read_only() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("pidns-ro").with_backend("systemd");
    let out = fx.sandboxed(
        "while read -r id parent dev root point opts rest; do \
           case $point in /sys|/sys/*|/proc/sys|/proc/sys/*) \
             case $opts in ro|ro,*) ;; *) echo \"WRITABLE-MOUNT $point\";; esac;; esac; \
         done < /proc/self/mountinfo; \
         grep ' - proc ' /proc/self/mountinfo | awk '{print $5}' | sort -u | tr '\\n' ' ' \
           | sed 's/^/PROC-MOUNTS: /'; echo; \
         read -r me rest < /proc/self/stat; [ \"$me\" = \"$$\" ] || echo FOREIGN-PROC; \
         cg=$(sed -n 's/^0:://p' /proc/self/cgroup); \
         for d in /sys/fs/cgroup$cg /sys/fs/cgroup/unified$cg /sys/fs/cgroup/pids$cg \
                  /sys/fs/cgroup/systemd$cg; do \
           for f in cgroup.procs pids.max memory.max cgroup.subtree_control tasks; do \
             [ -e $d/$f ] || continue; echo \"tried $d/$f\"; \
             echo max > $d/$f 2>/dev/null && echo \"WROTE $d/$f\"; \
           done; \
         done; \
         for f in /proc/sys/kernel/ns_last_pid /proc/sys/user/max_user_namespaces \
                  /sys/kernel/mm/transparent_hugepage/enabled; do \
           echo 1 > $f 2>/dev/null && echo \"WROTE $f\"; done; \
         echo checked",
    );
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(text.contains("checked"), "{text} {err}");
    assert!(
        text.contains("tried /sys/fs/cgroup"),
        "no cgroup file: {text}"
    );
    for leak in ["WRITABLE-MOUNT", "WROTE", "FOREIGN-PROC"] {
        assert!(!text.contains(leak), "{leak}: {text}");
    }
    // The unit's /proc is listed (it is still under the new one) but not reachable; no
    // other procfs is mounted anywhere the command could walk to.
    assert!(
        text.contains("PROC-MOUNTS: /proc /proc/sys \n"),
        "a procfs elsewhere: {text}"
    );
}

/// A daemon the command leaves behind (its own session, deaf to SIGTERM and SIGHUP) dies
/// with the command at once: the step is PID 1 of the namespace, and when it ends the
/// kernel kills everything in it (the manager alone would give it 90 s of stop timeout).
#[test]
fn a_daemon_the_command_leaves_dies_with_it_at_once() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("pidns-daemon").with_backend("systemd");
    let marker = format!("5151.{}", std::process::id());
    let out = fx.sandboxed(&format!(
        "trap '' TERM HUP INT; (setsid sleep {marker} </dev/null >/dev/null 2>&1 &); \
         sleep 0.3; echo started"
    ));
    assert!(stdout(&out).contains("started"), "{}", stderr(&out));
    assert!(
        common::eventually(5, || common::processes_with(&marker).is_empty()),
        "a daemon of the sandbox outlived it: {:?}",
        common::processes_with(&marker)
    );
}

/// Found by this review (older than the PID namespace): a command that ignores SIGTERM,
/// SIGHUP and SIGINT kept running for the manager's whole stop timeout (90 s) after kennel
/// was terminated, and kennel waited that long. The unit's own `TimeoutStopSec=5s` ends it
/// 5 s after the stop, as the native backend does.
#[test]
fn a_command_deaf_to_sigterm_ends_soon_after_kennel_is_terminated() {
    if common::skip_without_user_manager() {
        return;
    }
    let fx = Fixture::new("pidns-deaf").with_backend("systemd");
    let marker = format!("5252.{}", std::process::id());
    let mut child = fx
        .kennel()
        .args(["run", "--backend", "systemd", "--", "sh", "-c"])
        .arg(format!(
            "trap '' TERM HUP INT QUIT USR1 USR2; sleep {marker} & sleep {marker}; wait"
        ))
        .current_dir(&fx.repo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::eventually(10, || {
        common::processes_with(&marker).len() >= 2
    }));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exited = common::eventually(15, || matches!(child.try_wait(), Ok(Some(_))));
    let left = common::processes_with(&marker);
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        exited && left.is_empty(),
        "still running 15 s later: {left:?}"
    );
}

/// Found by this review (older than the PID namespace): the unit shared the host's IPC
/// namespace, so the user's System V shared memory (and semaphores, message queues) were
/// listed and open to the command. kennel's step makes an IPC namespace of its own.
#[test]
fn the_users_system_v_ipc_is_out_of_reach() {
    if common::skip_without_user_manager() {
        return;
    }
    if !common::have_program("ipcmk") {
        common::skip_unless(false, "no ipcmk");
        return;
    }
    let fx = Fixture::new("pidns-ipc").with_backend("systemd");
    let made = fx.as_user("ipcmk -M 4096 | awk '{print $NF}'");
    let id = stdout(&made).trim().to_string();
    assert!(!id.is_empty(), "{}", stderr(&made));
    let out = fx.sandboxed("ipcs -m");
    let _ = fx.as_user(&format!("ipcrm -m {id}"));
    let listed = stdout(&out)
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(id.as_str()));
    assert!(
        !listed,
        "the user's segment {id} is listed: {}",
        stdout(&out)
    );
}
