// The system calls kennel's seccomp filter refuses. Read by build.rs, which compiles the
// filter with libseccomp when kennel is built, and by `seccomp.rs`, whose tests check the
// compiled program against this list. Plain constants only: build.rs `include!`s this file.

/// Refused with EPERM whatever their arguments.
pub const ALWAYS_DENIED: &[&str] = &[
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "setns",
    "open_by_handle_at",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "quotactl",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// ioctl requests refused with EPERM (the low 32 bits of the second argument: its width
/// differs between libcs): TIOCSTI and TIOCLINUX; fscrypt's FS_IOC_SET_ENCRYPTION_POLICY,
/// FS_IOC_ADD_ENCRYPTION_KEY, FS_IOC_REMOVE_ENCRYPTION_KEY and
/// FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS; FS_IOC_SETFLAGS and FS_IOC32_SETFLAGS (chattr).
/// The same numbers on every 64-bit architecture kennel supports.
pub const DENIED_IOCTLS: &[u64] = &[
    0x5412,
    0x541C,
    0x800C_6613,
    0xC050_6617,
    0xC040_6618,
    0xC040_6619,
    0x4008_6602,
    0x4004_6602,
];

/// Refused with EPERM when their first argument (the flags) has CLONE_NEWUSER.
pub const NEWUSER_DENIED: &[&str] = &["unshare", "clone"];

/// CLONE_NEWUSER of linux/sched.h.
pub const CLONE_NEWUSER_FLAG: u64 = 0x1000_0000;

/// Refused with ENOSYS: clone3's flags live in memory the filter cannot read, and libc
/// falls back to clone on ENOSYS.
pub const NOSYS: &[&str] = &["clone3"];
