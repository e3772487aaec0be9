//! The seccomp filter, installed last before the command starts: a short deny-list (its load
//! time grows with its length). Denied calls fail with EPERM rather than killing the process,
//! so tools print a readable error.

use seccompiler::{sock_filter, BpfProgram};

use crate::error::NativeError;

/// Each denied system call with the reason, as shown by `kennel explain`.
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
        "mount, umount2, pivot_root, move_mount, open_tree, fsopen, fsmount, fsconfig, fspick",
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
];

/// Denied with EPERM whatever their arguments.
const ALWAYS_DENIED: &[libc::c_long] = &[
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
];

/// `AUDIT_ARCH_*` of the architecture kennel was built for.
fn audit_arch() -> Result<u32, NativeError> {
    if cfg!(target_arch = "x86_64") {
        Ok(0xc000_003e) // AUDIT_ARCH_X86_64
    } else if cfg!(target_arch = "aarch64") {
        Ok(0xc000_00b7) // AUDIT_ARCH_AARCH64
    } else if cfg!(target_arch = "riscv64") {
        Ok(0xc000_00f3) // AUDIT_ARCH_RISCV64
    } else {
        Err(NativeError::Plan(
            "kennel's seccomp filter supports x86_64, aarch64 and riscv64 only".into(),
        ))
    }
}

// Classic BPF as seccomp(2) runs it (linux/filter.h, linux/seccomp.h).
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
// Offsets in `struct seccomp_data`: nr, arch, then the arguments (64 bits each) from 16.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// Offset of the low 32 bits of argument `index` (every architecture kennel supports is
/// little-endian).
fn arg_low(index: u32) -> u32 {
    16 + 8 * index
}

/// The width of an ioctl request differs between libcs and architectures; the filter
/// compares its low 32 bits.
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn ioctl_request(request: libc::Ioctl) -> u64 {
    request as u64
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// The filter: one short program, written out rather than generated. A generator
/// (seccompiler) made two programs of 184 and 10 instructions for the same list; the time
/// to load a filter grows with its length, and every system call of the command runs it.
/// The test `same_decisions_as_the_generated_filters` checks that this program decides
/// exactly as those did, for every system call number and the arguments that matter.
///
/// The architecture is checked first (any other kills the process); then clone3 fails with
/// ENOSYS (its flags are in memory, out of the filter's reach, so libc falls back to clone);
/// ioctl with TIOCSTI or TIOCLINUX (the low 32 bits of the request), clone and unshare with
/// CLONE_NEWUSER, and the calls of [`ALWAYS_DENIED`] fail with EPERM; everything else runs.
pub fn filters() -> Result<Vec<BpfProgram>, NativeError> {
    if cfg!(not(target_endian = "little")) {
        return Err(NativeError::Plan(
            "kennel's seccomp filter supports little-endian architectures only".into(),
        ));
    }
    let nr = |n: libc::c_long| n as u32;
    // Jump targets, placed after the checks of the system call number.
    enum To {
        Next,
        Deny,
        NoSys,
        Ioctl,
        CloneFlags,
    }
    let mut checks: Vec<(u32, To)> = vec![
        (nr(libc::SYS_clone3), To::NoSys),
        (nr(libc::SYS_ioctl), To::Ioctl),
        (nr(libc::SYS_clone), To::CloneFlags),
        (nr(libc::SYS_unshare), To::CloneFlags),
    ];
    checks.extend(ALWAYS_DENIED.iter().map(|&n| (nr(n), To::Deny)));

    // Layout: [arch check: 3] [load nr: 1] [checks] [allow] [ioctl: 4] [clone flags: 3]
    //         [deny] [nosys]; every jump goes forward.
    let first_check = 4;
    let allow = first_check + checks.len();
    let ioctl = allow + 1;
    let clone_flags = ioctl + 4;
    let deny = clone_flags + 3;
    let nosys = deny + 1;
    let target = |to: &To, at: usize| -> Result<u8, NativeError> {
        let dest = match to {
            To::Next => at + 1,
            To::Deny => deny,
            To::NoSys => nosys,
            To::Ioctl => ioctl,
            To::CloneFlags => clone_flags,
        };
        dest.checked_sub(at + 1)
            .and_then(|offset| u8::try_from(offset).ok())
            .ok_or_else(|| NativeError::Plan("a seccomp filter jump out of range".into()))
    };
    let jump = |code: u16, k: u32, jt: To, jf: To, at: usize| -> Result<sock_filter, NativeError> {
        Ok(sock_filter {
            code,
            jt: target(&jt, at)?,
            jf: target(&jf, at)?,
            k,
        })
    };

    let mut prog = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        sock_filter {
            code: BPF_JEQ_K,
            jt: 1,
            jf: 0,
            k: audit_arch()?,
        },
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    for (number, to) in checks {
        let at = prog.len();
        prog.push(jump(BPF_JEQ_K, number, to, To::Next, at)?);
    }
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    // ioctl: the request's low 32 bits (its width differs between libcs).
    prog.push(stmt(BPF_LD_W_ABS, arg_low(1)));
    for request in [libc::TIOCSTI, libc::TIOCLINUX] {
        let at = prog.len();
        let low = ioctl_request(request) as u32;
        prog.push(jump(BPF_JEQ_K, low, To::Deny, To::Next, at)?);
    }
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    // clone and unshare: CLONE_NEWUSER is in the low 32 bits of the flags.
    prog.push(stmt(BPF_LD_W_ABS, arg_low(0)));
    let at = prog.len();
    prog.push(jump(
        BPF_JSET_K,
        libc::CLONE_NEWUSER as u32,
        To::Deny,
        To::Next,
        at,
    )?);
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    prog.push(stmt(BPF_RET_K, RET_ERRNO | libc::EPERM as u32));
    prog.push(stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32));
    if prog.len() != nosys + 1 {
        return Err(NativeError::Plan(
            "the seccomp filter's layout is wrong".into(),
        ));
    }
    Ok(vec![prog])
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
mod tests {
    use std::collections::BTreeMap;

    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };

    use super::*;

    #[test]
    fn filters_compile_and_stay_short() {
        let filters = filters();
        assert!(filters.is_ok(), "{:?}", filters.err());
        let total: usize = filters.iter().flatten().map(Vec::len).sum();
        // A long filter slows every start; keep it well under a few hundred instructions.
        assert!(total < 400, "{total} instructions");
    }

    fn target_arch() -> TargetArch {
        if cfg!(target_arch = "aarch64") {
            TargetArch::aarch64
        } else if cfg!(target_arch = "riscv64") {
            TargetArch::riscv64
        } else {
            TargetArch::x86_64
        }
    }

    /// The filters as seccompiler generated them before the program was written out.
    fn generated_filters() -> Vec<BpfProgram> {
        let cond = |index, len, op, value| SeccompCondition::new(index, len, op, value).unwrap();
        let rule = |c| SeccompRule::new(vec![c]).unwrap();
        let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        deny.insert(
            libc::SYS_ioctl,
            vec![
                rule(cond(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    ioctl_request(libc::TIOCSTI),
                )),
                rule(cond(
                    1,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::Eq,
                    ioctl_request(libc::TIOCLINUX),
                )),
            ],
        );
        // The list as it was given to the generator, kept apart from ALWAYS_DENIED so that
        // a change to either shows here.
        for nr in [
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
        ] {
            deny.insert(nr, Vec::new());
        }
        let newuser = libc::CLONE_NEWUSER as u64;
        let flag = || {
            rule(cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(newuser),
                newuser,
            ))
        };
        deny.insert(libc::SYS_unshare, vec![flag()]);
        deny.insert(libc::SYS_clone, vec![flag()]);
        let mut nosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        nosys.insert(libc::SYS_clone3, Vec::new());
        let compile = |rules, errno: i32| -> BpfProgram {
            SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                target_arch(),
            )
            .unwrap()
            .try_into()
            .unwrap()
        };
        vec![compile(deny, libc::EPERM), compile(nosys, libc::ENOSYS)]
    }

    /// Runs a classic BPF program on `struct seccomp_data` as the kernel would.
    fn run(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
        let word = |k: u32| {
            let k = k as usize;
            u32::from_ne_bytes([data[k], data[k + 1], data[k + 2], data[k + 3]])
        };
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let insn = &prog[pc];
            let class = insn.code & 0x07;
            match (class, insn.code) {
                (0x00, c) if c == BPF_LD_W_ABS => acc = word(insn.k),
                (0x06, _) => return insn.k,
                (0x04, c) if c == (0x04 | 0x50) => acc &= insn.k, // ALU AND K
                (0x05, 0x05) => pc += insn.k as usize,            // JA
                (0x05, _) => {
                    let taken = match insn.code & 0xf0 {
                        0x10 => acc == insn.k,
                        0x20 => acc > insn.k,
                        0x30 => acc >= insn.k,
                        0x40 => acc & insn.k != 0,
                        op => panic!("jump op {op:#x}"),
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                _ => panic!("instruction {:#x}", insn.code),
            }
            pc += 1;
        }
    }

    /// The action of a stack of filters: the most severe wins; between two errnos, the
    /// filter installed last (seccomp(2)).
    fn decide(filters: &[BpfProgram], data: &[u8; 64]) -> u32 {
        let severity = |ret: u32| match ret & 0xffff_0000 {
            RET_KILL_PROCESS => 0,
            RET_ERRNO => 1,
            RET_ALLOW => 2,
            other => panic!("action {other:#x}"),
        };
        let mut best = RET_ALLOW;
        for f in filters {
            let ret = run(f, data);
            if severity(ret) <= severity(best) {
                best = ret;
            }
        }
        best
    }

    fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_ne_bytes());
        d[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        d
    }

    #[test]
    fn same_decisions_as_the_generated_filters() {
        let ours = filters().unwrap();
        assert_eq!(ours.len(), 1);
        assert!(ours[0].len() < 60, "{} instructions", ours[0].len());
        let generated = generated_filters();
        let arch = audit_arch().unwrap();
        let newuser = libc::CLONE_NEWUSER as u64;
        let tiocsti = ioctl_request(libc::TIOCSTI);
        let tioclinux = ioctl_request(libc::TIOCLINUX);
        let values = [
            0,
            1,
            newuser,
            newuser | 0x11,
            !newuser,
            u64::MAX,
            newuser << 32,
            (1 << 32) | newuser,
            tiocsti,
            tioclinux,
            tiocsti | (1 << 32),
            tioclinux | (0xffff_ffff << 32),
            tiocsti + 1,
            ioctl_request(libc::TIOCGWINSZ),
        ];
        let mut numbers: Vec<u32> = (0..1024).collect();
        numbers.extend([0x4000_0000, 0x4000_0000 + 165, 0x4000_0000 + 16, u32::MAX]);
        let mut checked = 0;
        for &a in &[arch, 0x4000_0003, 0] {
            for &nr in &numbers {
                for &v0 in &values {
                    for &v1 in &values {
                        let d = data(a, nr, [v0, v1, v1, v0, 0, 0]);
                        assert_eq!(
                            decide(&ours, &d),
                            decide(&generated, &d),
                            "arch {a:#x} nr {nr} args {v0:#x} {v1:#x}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100_000);
        // And the decisions themselves, for a few that matter.
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let call = |nr: libc::c_long, a0: u64, a1: u64| {
            decide(&ours, &data(arch, nr as u32, [a0, a1, 0, 0, 0, 0]))
        };
        assert_eq!(call(libc::SYS_mount, 0, 0), eperm);
        assert_eq!(call(libc::SYS_ioctl, 0, tiocsti), eperm);
        assert_eq!(
            call(libc::SYS_ioctl, 0, ioctl_request(libc::TIOCGWINSZ)),
            RET_ALLOW
        );
        assert_eq!(call(libc::SYS_unshare, newuser, 0), eperm);
        assert_eq!(call(libc::SYS_clone, 0x11, 0), RET_ALLOW);
        assert_eq!(
            call(libc::SYS_clone3, 0, 0),
            RET_ERRNO | libc::ENOSYS as u32
        );
        assert_eq!(call(libc::SYS_read, 0, 0), RET_ALLOW);
        assert_eq!(decide(&ours, &data(0, 0, [0; 6])), RET_KILL_PROCESS);
    }
}
