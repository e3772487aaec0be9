//! The seccomp filter, installed last before the command starts: a short deny-list. Denied
//! calls fail with EPERM rather than killing the process, so tools print a readable error.
//!
//! The kernel checks a filter's every instruction when it is loaded and runs it once per
//! system call number to cache the answers, so its length weighs on every start. The
//! filter is therefore compiled when kennel is built (build.rs, with libseccomp, whose
//! optimizer makes a binary tree of the rules: about 60 instructions where a chain took
//! about 400) and embedded; [`apply`] installs it with seccompiler.

use seccompiler::{sock_filter, BpfProgram};

use crate::error::NativeError;

include!("seccomp_list.rs");

/// The program compiled by build.rs for the target architecture: `struct sock_filter`s in
/// the byte order of the machines kennel supports (little-endian). Empty where the
/// architecture is not supported.
static COMPILED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp.bpf"));

/// Each refused system call with the reason, as `kennel explain` lists them (the rules
/// themselves are in `seccomp_list.rs`).
pub const DENIED: &[(&str, &str)] = &[
    (
        "ioctl(TIOCSTI)",
        "typing into the terminal: keystrokes injected into your shell",
    ),
    (
        "ioctl(TIOCLINUX)",
        "console injection through the Linux virtual console",
    ),
    (
        "ioctl(FS_IOC_SET_ENCRYPTION_POLICY, FS_IOC_ADD_ENCRYPTION_KEY, \
         FS_IOC_REMOVE_ENCRYPTION_KEY, FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS)",
        "encrypting folders, adding and removing their keys: names that change with a key and \
         not on disk, where the end-of-session git check would not see a `.git`",
    ),
    (
        "ioctl(FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS)",
        "setting a file's flags as chattr does: a folder made case-insensitive (`+F`) reads \
         names the end-of-session git check does not compare as git does",
    ),
    (
        "keyctl, add_key, request_key",
        "the kernel keyring is shared with your other processes",
    ),
    ("bpf", "kernel programs"),
    (
        "perf_event_open",
        "kernel profiling, a frequent source of exploits",
    ),
    ("kexec_load, kexec_file_load", "replacing the kernel"),
    ("init_module, finit_module, delete_module", "kernel modules"),
    ("userfaultfd", "a tool of kernel exploits"),
    (
        "mount, umount2, pivot_root, move_mount, open_tree, fsopen, fsmount, fsconfig, fspick, \
         mount_setattr",
        "changing the sandbox's view of files",
    ),
    ("setns", "joining other namespaces"),
    (
        "unshare, clone with CLONE_NEWUSER",
        "nested user namespaces (new privileges inside)",
    ),
    (
        "clone3",
        "its flags cannot be inspected: fails with ENOSYS so that libc falls back to clone",
    ),
    (
        "open_by_handle_at",
        "opening files by handle, around the mount view",
    ),
    (
        "acct, swapon, swapoff, reboot, syslog, quotactl",
        "system administration",
    ),
    (
        "io_uring_setup, io_uring_enter, io_uring_register",
        "a second way to most system calls, which seccomp cannot see, and a frequent source \
         of kernel exploits",
    ),
    (
        "system calls of another convention (i386, x32)",
        "a second way to every call above: they end the process",
    ),
];

/// The filter to install: the embedded program as seccompiler's instructions.
pub fn filters() -> Result<Vec<BpfProgram>, NativeError> {
    if COMPILED.is_empty() {
        return Err(NativeError::Plan(
            "kennel's seccomp filter supports x86_64, aarch64 and riscv64 only".into(),
        ));
    }
    let program = COMPILED
        .chunks_exact(8)
        .map(|b| sock_filter {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect();
    Ok(vec![program])
}

/// For the landlock backend only: `socket(AF_UNIX, ...)` refused (EPERM). Without a mount
/// view the host's unix sockets (the ssh-agent, the gpg-agent, the D-Bus session bus, the
/// systemd user manager under `/run/user`) stay reachable by path, which Landlock refuses
/// only from ABI 9 on: connecting to one needs a socket of the command's own, and that is
/// what this filter refuses. `socketpair` (pipes between a program's own processes) is
/// untouched, and so are the descriptors the command already holds.
pub fn unix_socket_filter() -> Result<BpfProgram, NativeError> {
    use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};
    let fail = |e: &dyn std::fmt::Display| NativeError::Plan(format!("seccomp filter: {e}"));
    let af_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_UNIX as u64,
    )
    .map_err(|e| fail(&e))?;
    let rule = seccompiler::SeccompRule::new(vec![af_unix]).map_err(|e| fail(&e))?;
    let arch = std::env::consts::ARCH.try_into().map_err(|e| fail(&e))?;
    seccompiler::SeccompFilter::new(
        [(libc::SYS_socket, vec![rule])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| fail(&e))
}

/// Installs the filters on the calling thread (after `no_new_privs`).
pub fn apply(filters: &[BpfProgram]) -> Result<(), NativeError> {
    for filter in filters {
        seccompiler::apply_filter(filter)
            .map_err(|e| NativeError::Setup(format!("installing the seccomp filter: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod listed {
    use super::*;

    /// `kennel explain` names every refused call: each of the list is in a line of DENIED.
    #[test]
    fn every_refused_call_is_explained() {
        let named = |call: &str| {
            DENIED.iter().any(|(calls, _)| {
                calls
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .any(|word| word == call)
            })
        };
        for call in ALWAYS_DENIED.iter().chain(NEWUSER_DENIED).chain(NOSYS) {
            assert!(named(call), "{call} is refused but not explained");
        }
        for ioctl in [
            "TIOCSTI",
            "TIOCLINUX",
            "FS_IOC_SET_ENCRYPTION_POLICY",
            "FS_IOC_ADD_ENCRYPTION_KEY",
            "FS_IOC_REMOVE_ENCRYPTION_KEY",
            "FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS",
            "FS_IOC_SETFLAGS",
            "FS_IOC32_SETFLAGS",
        ] {
            assert!(named(ioctl), "{ioctl} is refused but not explained");
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    //! The embedded program, run by a small classic-BPF interpreter on the inputs the
    //! kernel would give it, against the system call numbers of the libc crate: a check
    //! of what libseccomp compiled that does not rely on libseccomp.
    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    /// What the interpreter answers for an instruction it does not know.
    const UNEXPECTED: u32 = 0xdead_beef;

    /// `struct seccomp_data`: nr, arch, instruction pointer, six arguments.
    fn data(arch: u32, nr: u32, args: [u64; 6]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&nr.to_le_bytes());
        d.extend_from_slice(&arch.to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        for a in args {
            d.extend_from_slice(&a.to_le_bytes());
        }
        d
    }

    /// Runs `program` on `input` as the kernel's classic BPF would (the subset seccomp
    /// filters use), returning the action.
    fn run(program: &[sock_filter], input: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let mut mem = [0u32; 16];
        loop {
            let insn = &program[pc];
            let (class, k) = (insn.code & 0x07, insn.k);
            pc += 1;
            match class {
                // BPF_LD | BPF_W | BPF_ABS, or BPF_LD | BPF_MEM
                0x00 if insn.code == 0x20 => {
                    let at = k as usize;
                    a = u32::from_le_bytes(input[at..at + 4].try_into().unwrap_or([0; 4]));
                }
                0x00 if insn.code == 0x60 => a = mem[k as usize],
                0x00 if insn.code == 0x00 => a = k,
                0x01 if insn.code == 0x61 => x = mem[k as usize],
                0x01 => x = k,
                0x02 => mem[k as usize] = a,
                0x03 => mem[k as usize] = x,
                // BPF_ALU with a constant (AND, OR, ...) or X.
                0x04 => {
                    let operand = if insn.code & 0x08 != 0 { x } else { k };
                    a = match insn.code & 0xf0 {
                        0x00 => a.wrapping_add(operand),
                        0x10 => a.wrapping_sub(operand),
                        0x40 => a | operand,
                        0x50 => a & operand,
                        0x60 => a << operand,
                        0x70 => a >> operand,
                        // Nothing a seccomp filter would use: an answer no test expects.
                        _ => return UNEXPECTED,
                    };
                }
                // BPF_JMP
                0x05 => {
                    let operand = if insn.code & 0x08 != 0 { x } else { k };
                    let op = insn.code & 0xf0;
                    if op == 0x00 {
                        pc += k as usize;
                        continue;
                    }
                    let taken = match op {
                        0x10 => a == operand,
                        0x20 => a > operand,
                        0x30 => a >= operand,
                        0x40 => a & operand != 0,
                        _ => return UNEXPECTED,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                // BPF_RET
                0x06 => return if insn.code & 0x18 == 0x10 { a } else { k },
                0x07 => {
                    if insn.code == 0x07 {
                        x = a;
                    } else {
                        a = x;
                    }
                }
                _ => return UNEXPECTED,
            }
        }
    }

    /// The width of an ioctl request differs between libcs and architectures.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn request(request: libc::Ioctl) -> u64 {
        request as u64
    }

    fn program() -> Vec<sock_filter> {
        let filters = filters().unwrap_or_default();
        assert_eq!(filters.len(), 1);
        filters.into_iter().next().unwrap_or_default()
    }

    fn verdict(nr: i64, args: [u64; 6]) -> u32 {
        run(&program(), &data(AUDIT_ARCH_X86_64, nr as u32, args))
    }

    const DENIED_NUMBERS: &[i64] = &[
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_userfaultfd,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_setns,
        libc::SYS_open_by_handle_at,
        libc::SYS_acct,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];

    #[test]
    fn the_program_is_short() {
        // A long filter slows every start (the kernel walks it for each call number).
        let len = program().len();
        assert!(len < 100, "{len} instructions");
    }

    #[test]
    fn every_listed_call_is_refused_with_eperm() {
        assert_eq!(DENIED_NUMBERS.len(), ALWAYS_DENIED.len());
        for nr in DENIED_NUMBERS {
            assert_eq!(verdict(*nr, [0; 6]), RET_ERRNO | 1, "system call {nr}");
        }
        assert_eq!(verdict(libc::SYS_clone3, [0; 6]), RET_ERRNO | 38);
    }

    #[test]
    fn arguments_decide_for_ioctl_clone_and_unshare() {
        let tiocsti = request(libc::TIOCSTI);
        let tioclinux = request(libc::TIOCLINUX);
        // linux/fscrypt.h: _IOR('f', 19, 12 bytes), _IOWR('f', 23, 80), _IOWR('f', 24, 64),
        // _IOWR('f', 25, 64).
        let ioc = |dir: u64, nr: u64, size: u64| dir << 30 | size << 16 | u64::from(b'f') << 8 | nr;
        let fscrypt = [
            ioc(2, 19, 12),
            ioc(3, 23, 80),
            ioc(3, 24, 64),
            ioc(3, 25, 64),
        ];
        // linux/fs.h: _IOW('f', 2, long) and _IOW('f', 2, int).
        let setflags = [ioc(1, 2, 8), ioc(1, 2, 4)];
        let mut expected = vec![tiocsti, tioclinux];
        expected.extend(fscrypt);
        expected.extend(setflags);
        assert_eq!(DENIED_IOCTLS, &expected[..]);
        assert_eq!(CLONE_NEWUSER_FLAG, libc::CLONE_NEWUSER as u64);
        let mut refused = vec![tiocsti, tioclinux, tiocsti | 0xffff_ffff_0000_0000];
        refused.extend(fscrypt);
        refused.extend(setflags);
        for request in refused {
            assert_eq!(
                verdict(libc::SYS_ioctl, [0, request, 0, 0, 0, 0]),
                RET_ERRNO | 1
            );
        }
        let fionread = request(libc::FIONREAD);
        assert_eq!(
            verdict(libc::SYS_ioctl, [0, fionread, 0, 0, 0, 0]),
            RET_ALLOW
        );
        let newuser = libc::CLONE_NEWUSER as u64;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            assert_eq!(verdict(nr, [newuser | 0x11, 0, 0, 0, 0, 0]), RET_ERRNO | 1);
            assert_eq!(verdict(nr, [thread, 0, 0, 0, 0, 0]), RET_ALLOW);
        }
    }

    #[test]
    fn every_other_call_is_allowed() {
        let refused: Vec<i64> = DENIED_NUMBERS
            .iter()
            .copied()
            .chain([libc::SYS_clone3])
            .collect();
        for nr in 0..1024 {
            if !refused.contains(&nr) {
                assert_eq!(verdict(nr, [0; 6]), RET_ALLOW, "system call {nr}");
            }
        }
    }

    #[test]
    fn x32_and_i386_calls_end_the_process() {
        for nr in [libc::SYS_keyctl, libc::SYS_getpid, libc::SYS_clone3] {
            let x32 = nr as u32 | X32_SYSCALL_BIT;
            assert_eq!(
                run(&program(), &data(AUDIT_ARCH_X86_64, x32, [0; 6])),
                RET_KILL_PROCESS
            );
            assert_eq!(
                run(&program(), &data(AUDIT_ARCH_I386, nr as u32, [0; 6])),
                RET_KILL_PROCESS
            );
        }
    }
}
