//! The few system calls that no safe wrapper covers. Each function wraps one call.

use std::ffi::CStr;

use nix::errno::Errno;
use nix::sched::CloneFlags;
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

/// Sets mount attributes on the mount at `path`, and on every mount below it when
/// `recursive` (a plain remount would only change the top one).
pub fn mount_setattr(path: &CStr, recursive: bool, set: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
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

/// Ends this process at once, without running destructors or `atexit` handlers that
/// belong to the parent it was cloned from.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) is async-signal-safe and always safe to call.
    unsafe { libc::_exit(code) }
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
