//! Test helper: runs a command where creating a user namespace is refused, as Ubuntu's
//! AppArmor refuses it to unprivileged programs (23.10 and later). The sysctl that would
//! do the same is read-only on the test machines, so a seccomp filter stands in for it:
//! `unshare` and `clone` with CLONE_NEWUSER fail with EPERM, `clone3` with ENOSYS (its
//! flags cannot be inspected; libc then falls back to `clone`).
//!
//!     deny_userns COMMAND [ARG...]
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // a test helper

use std::os::unix::process::CommandExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let program = args.next().expect("usage: deny_userns COMMAND [ARG...]");
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
    let deny: BpfProgram = SeccompFilter::new(
        [
            (libc::SYS_unshare, vec![newuser()]),
            (libc::SYS_clone, vec![newuser()]),
        ]
        .into_iter()
        .collect(),
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
