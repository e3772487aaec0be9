//! The few system calls that no safe wrapper covers. Each function wraps one call.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::pty::Winsize;
use nix::sched::CloneFlags;
use nix::sys::signal::SigHandler;
use nix::unistd::Pid;

/// Clones the calling process into new namespaces, like `fork` with `flags`.
/// Returns `None` in the child and the child's pid in the parent.
///
/// The caller must be single-threaded: the child is a copy of this one thread.
pub fn clone_into_namespaces(flags: CloneFlags) -> nix::Result<Option<Pid>> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack pointer, clone(2) gives the child a copy of the parent's
    // stack, exactly as fork(2) does; no parent/child tid or TLS pointers are passed (all
    // zero), so the argument order that differs between architectures does not matter.
    // kennel calls this before starting any thread, so no lock can be held by another
    // thread at the time of the copy.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match Errno::result(ret)? {
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// Size of the stack that [`spawn_shared`] gives the new process, above a guard page.
const SPAWN_STACK: usize = 256 * 1024;

/// Starts a process that runs `child` in this process's memory until it calls execve(2) or
/// exits, as posix_spawn(3) does (clone with `CLONE_VM | CLONE_VFORK` and a stack of its
/// own). Nothing of the address space is copied, where fork(2) copies every page table and
/// execve(2) then throws the copy away: the sandbox's init is a copy of the whole
/// supervisor, so this is a visible part of kennel's start-up. The calling thread is
/// suspended until the child has called execve or exited. Returns the child's pid.
///
/// The stack is left mapped after a successful start (see the end of this function), so a
/// process calls this once, or a few times.
///
/// `child` must end in execve or [`exit_now`]. It shares this process's memory, so what it
/// writes outside its own stack (its heap allocations, errno) is seen here afterwards; it
/// has its own descriptor table, signal dispositions and signal mask, as after fork.
///
/// The caller must be single-threaded, so that no other thread runs (or holds a lock)
/// while the child uses the shared memory.
pub fn spawn_shared<F: FnOnce() -> std::convert::Infallible>(child: F) -> nix::Result<Pid> {
    // `f()` never returns (its type has no value), which the compiler notes as unreachable.
    #[allow(unreachable_code)]
    extern "C" fn trampoline<F: FnOnce() -> std::convert::Infallible>(
        arg: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `arg` is the `&mut Option<F>` that `spawn_shared` passed to clone(2); it
        // lives on the parent's stack, which stays untouched while the parent is suspended
        // (CLONE_VFORK) until this child has exec'd or exited.
        let slot = unsafe { &mut *arg.cast::<Option<F>>() };
        match slot.take() {
            Some(f) => match f() {},
            None => exit_now(127),
        }
    }
    let page = 4096;
    let len = SPAWN_STACK + page;
    // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    let unmap = |stack: *mut libc::c_void| {
        // SAFETY: `stack` is the mapping of `len` bytes made above, no longer in use: the
        // child has exec'd or exited (or was never started) when this runs.
        unsafe { libc::munmap(stack, len) };
    };
    // The lowest page is a guard: the stack grows down, and an overflow faults.
    // SAFETY: the first page of the mapping made above.
    if unsafe { libc::mprotect(stack, page, libc::PROT_NONE) } != 0 {
        let err = Errno::last();
        unmap(stack);
        return Err(err);
    }
    let mut slot = Some(child);
    // The top of the mapping, 16-byte aligned as every ABI that kennel supports needs.
    let top = stack.cast::<u8>().wrapping_add(len).cast::<libc::c_void>();
    // SAFETY: `trampoline::<F>` matches clone(2)'s callback type and receives `slot`, which
    // outlives the child's use of it (CLONE_VFORK suspends us until the child exec'd or
    // exited). `top` is the top of a private stack of SPAWN_STACK bytes. The caller is
    // single-threaded, so the shared memory is used by one thread at a time.
    let ret = unsafe {
        libc::clone(
            trampoline::<F>,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut slot as *mut Option<F>).cast::<libc::c_void>(),
        )
    };
    let result = Errno::result(ret).map(Pid::from_raw);
    if result.is_err() {
        unmap(stack);
    }
    // Once a child ran, its stack stays mapped: the child may have run on another CPU, and
    // unmapping memory that CPU used interrupts it to flush its TLB (tens of microseconds
    // on a virtual machine, where the other CPU may be asleep). The sandbox's init starts
    // one command in its life; what stays is address space and the few pages touched.
    result
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;

/// Sets (`set`) and clears (`clear`) mount attributes on the mount at `path`, and on every
/// mount below it when `recursive` (a plain remount would only change the top one).
pub fn mount_setattr(path: &CStr, recursive: bool, set: u64, clear: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 } as libc::c_uint;
    // SAFETY: `path` is a valid NUL-terminated string and `attr` a properly initialized
    // `struct mount_attr` whose size we pass; the kernel only reads both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Drops every capability: the bounding set (so that no later execve can regain one, even
/// as uid 0), the ambient set, and the effective, permitted and inheritable sets.
pub fn drop_all_capabilities() -> nix::Result<()> {
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer and touches no memory of ours.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if ret != 0 {
            match Errno::last() {
                // Past the last capability this kernel knows.
                Errno::EINVAL => break,
                e => return Err(e),
            }
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integers only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Errno::result(ret)?;

    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: version 3 of capset(2) reads one header and two data structs, which are
    // initialized and live for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// Ends this process at once, without destructors or exit handlers: in a cloned child they
/// belong to the parent it was cloned from; kennel itself leaves them nothing to do.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) is async-signal-safe and always safe to call.
    unsafe { libc::_exit(code) }
}

/// close_range(2) on `first..=last` with `flags`.
fn close_range(first: u32, last: u32, flags: u32) -> nix::Result<()> {
    // SAFETY: close_range(2) takes three integers and touches no memory of ours. Closing
    // (flags 0) is only asked for by `close_descriptors_except`, whose callers own every
    // descriptor in the range (see there); marking close-on-exec changes no ownership.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    Errno::result(ret).map(drop)
}

/// Marks every descriptor from 3 on close-on-exec, so that none that kennel's caller left
/// open (an IDE's, a script's: a file of `~/.ssh`, a socket) reaches a program kennel
/// starts. kennel's own descriptors are opened close-on-exec anyway.
pub fn close_inherited_descriptors_on_exec() -> nix::Result<()> {
    match close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) {
        // Kernels before 5.11 lack the flag: one descriptor at a time.
        Err(Errno::EINVAL | Errno::ENOSYS) => {
            let entries = std::fs::read_dir("/proc/self/fd").map_err(|_| Errno::EBADF)?;
            let fds: Vec<RawFd> = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|fd| *fd > 2)
                .collect();
            for fd in fds {
                let _ = set_close_on_exec(fd, true);
            }
            Ok(())
        }
        other => other,
    }
}

/// Sets or clears `fd`'s close-on-exec flag; EBADF when `fd` is not open.
pub fn set_close_on_exec(fd: RawFd, close: bool) -> nix::Result<()> {
    // SAFETY: fcntl(2) with F_GETFD/F_SETFD reads and writes only the descriptor's flags;
    // a descriptor that is not open gives EBADF.
    let flags = Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let flags = if close {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }).map(drop)
}

/// Closes every descriptor from 3 on but those in `keep`.
///
/// Only for the sandbox's init right after the clone: it got a copy of every descriptor
/// of the supervisor, and the objects that own them in the supervisor's frames are never
/// used nor dropped in the child (which ends with `exit_now`), so closing them under those
/// owners cannot close a descriptor twice or hand a reused number to a stale owner.
pub(crate) fn close_descriptors_except(keep: &[RawFd]) -> nix::Result<()> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .filter(|fd| *fd > 2)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep {
        if fd > first {
            close_range(first, fd - 1, 0)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX, 0)
}

/// The Landlock ABI version of the running kernel, or `None` when Landlock is not available.
pub fn landlock_abi() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag,
    // landlock_create_ruleset(2) only returns the ABI version; no memory is touched.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (ret > 0).then_some(ret as i32)
}

/// Brings up the loopback interface of the current (new, empty) network namespace.
pub fn bring_loopback_up() -> nix::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of `req`, which is a valid,
    // exclusively borrowed ifreq for the duration of the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the kernel just filled `ifru_flags`, the member SIOCGIFFLAGS writes.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS only reads `req`, valid for the duration of the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

nix::ioctl_write_int_bad!(ioctl_tiocsctty, libc::TIOCSCTTY);
nix::ioctl_read_bad!(ioctl_tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(ioctl_tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// Makes the terminal `fd` the controlling terminal of the calling process, which must be
/// a session leader without one (TIOCSCTTY; 0 = do not steal it from another session).
pub fn set_controlling_terminal(fd: BorrowedFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument and reads no memory of ours; `fd` is a
    // valid open descriptor for the duration of the call.
    unsafe { ioctl_tiocsctty(fd.as_raw_fd(), 0) }.map(drop)
}

/// The window size of the terminal `fd` (TIOCGWINSZ).
pub fn window_size(fd: BorrowedFd) -> nix::Result<Winsize> {
    let mut size = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize`, which `size` is, and which lives for
    // the call; `fd` is a valid open descriptor.
    unsafe { ioctl_tiocgwinsz(fd.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// Sets the window size of the terminal `fd` (TIOCSWINSZ); the kernel sends SIGWINCH to
/// the terminal's foreground process group when it changed.
pub fn set_window_size(fd: BorrowedFd, size: &Winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads one `struct winsize`, which `size` points to and which lives
    // for the call; `fd` is a valid open descriptor.
    unsafe { ioctl_tiocswinsz(fd.as_raw_fd(), size) }.map(drop)
}

/// Takes ownership of a descriptor that `recvmsg` just installed in this process from an
/// SCM_RIGHTS message.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the kernel created this descriptor in our table while receiving the message;
    // nothing else in this process knows its number, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Gives SIGPIPE its default action back. Rust's runtime ignores it in kennel, and an
/// ignored signal stays ignored across execve: without this, `yes | head` inside the sandbox
/// would print "Broken pipe" instead of ending quietly.
pub fn default_sigpipe() -> nix::Result<()> {
    // SAFETY: SIG_DFL installs no handler of ours, so no code can run in signal context.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, SigHandler::SigDfl) }
        .map(drop)
}

/// What Rust's own start-up code does for a program and kennel's entry point does itself
/// (see `main` of the kennel binary): SIGPIPE ignored, so that writing to a closed pipe is
/// an error kennel reports rather than its silent death; and standard input, output and
/// error open, so that a file kennel opens never becomes descriptor 1 or 2 of a process
/// started with them closed. And every other descriptor kennel's caller left open marked
/// close-on-exec ([`close_inherited_descriptors_on_exec`]).
pub fn prepare_process() -> nix::Result<()> {
    // SAFETY: SIG_IGN installs no handler of ours, so no code can run in signal context.
    unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, SigHandler::SigIgn) }?;
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is an array of three initialized pollfd structures that outlives the
    // call; with a timeout of 0 poll(2) only reports on them, it waits for nothing.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    Errno::result(ret)?;
    for pollfd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // The lowest free descriptor is the closed one, as open(2) always takes it.
        let null = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::empty(),
        )?;
        if null.as_raw_fd() != pollfd.fd {
            return Err(Errno::EBADF);
        }
        // Kept open for the life of the process, as the standard stream it stands for.
        let _ = null.into_raw_fd();
    }
    close_inherited_descriptors_on_exec()
}
