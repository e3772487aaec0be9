//! Test helper: runs a command where creating a user namespace is refused, as Ubuntu's
//! AppArmor refuses it to unprivileged programs (23.10 and later). The sysctl that would
//! do the same is read-only on the test machines, so a seccomp filter stands in for it:
//! `unshare` and `clone` with CLONE_NEWUSER fail with EPERM, `clone3` with ENOSYS (its
//! flags cannot be inspected; libc then falls back to `clone`).
//!
//! With `--mount`, the namespace is created and what it is for refused instead, as
//! AppArmor's `unprivileged_userns` profile does (Ubuntu 24.04): `mount` fails with EPERM
//! (kennel's native backend then falls back only once its child has reported).
//!
//!     deny_userns [--mount] COMMAND [ARG...]
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // a test helper

use std::os::unix::process::CommandExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut program = args
        .next()
        .expect("usage: deny_userns [--mount] COMMAND [ARG...]");
    let mount_only = program == "--mount";
    if mount_only {
        program = args
            .next()
            .expect("usage: deny_userns --mount COMMAND [ARG...]");
    }
    let newuser = || {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
            libc::CLONE_NEWUSER as u64,
        )
        .unwrap()])
        .unwrap()
    };
    let refused = if mount_only {
        vec![(libc::SYS_mount, vec![])]
    } else {
        vec![
            (libc::SYS_unshare, vec![newuser()]),
            (libc::SYS_clone, vec![newuser()]),
        ]
    };
    let deny: BpfProgram = SeccompFilter::new(
        refused.into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let no_clone3: BpfProgram = SeccompFilter::new(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    nix::sys::prctl::set_no_new_privs().unwrap();
    seccompiler::apply_filter(&deny).unwrap();
    seccompiler::apply_filter(&no_clone3).unwrap();
    let err = std::process::Command::new(program).args(args).exec();
    panic!("exec: {err}");
}
