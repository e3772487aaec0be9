//! The seccomp filter, installed last before the command starts: a short deny-list (its load
//! time grows with its length). Denied calls fail with EPERM rather than killing the process,
//! so tools print a readable error.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

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

fn arch() -> Result<TargetArch, NativeError> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Ok(TargetArch::riscv64)
    } else {
        Err(NativeError::Plan(
            "kennel's seccomp filter supports x86_64, aarch64 and riscv64 only".into(),
        ))
    }
}

fn seccomp_err(e: impl std::fmt::Display) -> NativeError {
    NativeError::Plan(format!("building the seccomp filter: {e}"))
}

fn arg_equals(index: u8, value: u64) -> Result<SeccompRule, NativeError> {
    let cond = SeccompCondition::new(index, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(seccomp_err)?;
    SeccompRule::new(vec![cond]).map_err(seccomp_err)
}

/// The width of an ioctl request differs between libcs and architectures; the filter
/// compares its low 32 bits (see `arg_equals`).
#[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
fn ioctl_request(request: libc::Ioctl) -> u64 {
    request as u64
}

fn arg_has_flag(index: u8, flag: u64) -> Result<SeccompRule, NativeError> {
    let cond = SeccompCondition::new(
        index,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(flag),
        flag,
    )
    .map_err(seccomp_err)?;
    SeccompRule::new(vec![cond]).map_err(seccomp_err)
}

/// `__X32_SYSCALL_BIT` of the x86_64 kernel.
const X32_SYSCALL_BIT: i64 = 0x4000_0000;

/// The filters to install, in order: the EPERM deny-list and the ENOSYS for clone3.
pub fn filters() -> Result<Vec<BpfProgram>, NativeError> {
    let always = Vec::new;
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    deny.insert(
        libc::SYS_ioctl,
        vec![
            arg_equals(1, ioctl_request(libc::TIOCSTI))?,
            arg_equals(1, ioctl_request(libc::TIOCLINUX))?,
        ],
    );
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
        deny.insert(nr, always());
    }
    let newuser = libc::CLONE_NEWUSER as u64;
    deny.insert(libc::SYS_unshare, vec![arg_has_flag(0, newuser)?]);
    deny.insert(libc::SYS_clone, vec![arg_has_flag(0, newuser)?]);

    let mut nosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    nosys.insert(libc::SYS_clone3, always());

    let arch = arch()?;
    if arch == TargetArch::x86_64 {
        // The x32 ABI reaches the same calls with bit 30 set in the number (kernels built
        // with it, where it is enabled at boot): deny those too.
        for rules in [&mut deny, &mut nosys] {
            let x32: Vec<(i64, Vec<SeccompRule>)> = rules
                .iter()
                .map(|(nr, r)| (nr | X32_SYSCALL_BIT, r.clone()))
                .collect();
            rules.extend(x32);
        }
    }
    let compile = |rules, errno: i32| -> Result<BpfProgram, NativeError> {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .map_err(seccomp_err)?;
        filter.try_into().map_err(seccomp_err)
    };
    Ok(vec![
        compile(deny, libc::EPERM)?,
        compile(nosys, libc::ENOSYS)?,
    ])
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
    use super::*;

    #[test]
    fn filters_compile_and_stay_short() {
        let filters = filters();
        assert!(filters.is_ok(), "{:?}", filters.err());
        let total: usize = filters.iter().flatten().map(Vec::len).sum();
        // A long filter slows every start; keep it well under a few hundred instructions.
        assert!(total < 800, "{total} instructions");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_numbers_of_denied_calls_are_denied_too() {
        let filters = filters().unwrap_or_default();
        let compares = |nr: i64| filters.iter().flatten().any(|insn| i64::from(insn.k) == nr);
        assert!(compares(libc::SYS_keyctl));
        assert!(compares(libc::SYS_keyctl | X32_SYSCALL_BIT));
        assert!(compares(libc::SYS_clone3 | X32_SYSCALL_BIT));
    }
}
