//! Compiles kennel's seccomp filter once, when kennel is built, with libseccomp: its
//! optimizer lays the rules out as a binary tree, so the kernel loads and checks a short
//! program at every start instead of a chain as long as the deny-list. The program is
//! written to `$OUT_DIR/seccomp.bpf` (and a readable copy to `seccomp.pfc`) and embedded.

use std::fs::File;
use std::path::PathBuf;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

include!("src/seccomp_list.rs");

// errno values: the same on every architecture kennel supports.
const EPERM: i32 = 1;
const ENOSYS: i32 = 38;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/seccomp_list.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH")?.as_str() {
        "x86_64" => ScmpArch::X8664,
        "aarch64" => ScmpArch::Aarch64,
        "riscv64" => ScmpArch::Riscv64,
        // No filter: the native backend refuses to start there (see seccomp.rs).
        _ => {
            File::create(out.join("seccomp.bpf"))?;
            return Ok(());
        }
    };
    let mut ctx = ScmpFilterContext::new(ScmpAction::Allow)?;
    // Only the target's own calling convention: a call of any other one (i386 or x32
    // system calls on x86_64) ends the process.
    ctx.add_arch(arch)?;
    if arch != ScmpArch::native() {
        ctx.remove_arch(ScmpArch::native())?;
    }
    ctx.set_act_badarch(ScmpAction::KillProcess)?;
    ctx.set_ctl_optimize(2)?;
    let deny = ScmpAction::Errno(EPERM);
    for name in ALWAYS_DENIED {
        ctx.add_rule(deny, ScmpSyscall::from_name(name)?)?;
    }
    let ioctl = ScmpSyscall::from_name("ioctl")?;
    for request in DENIED_IOCTLS {
        let low_32_bits = ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(0xffff_ffff), *request);
        ctx.add_rule_conditional(deny, ioctl, &[low_32_bits])?;
    }
    for name in NEWUSER_DENIED {
        let newuser = ScmpArgCompare::new(
            0,
            ScmpCompareOp::MaskedEqual(CLONE_NEWUSER_FLAG),
            CLONE_NEWUSER_FLAG,
        );
        ctx.add_rule_conditional(deny, ScmpSyscall::from_name(name)?, &[newuser])?;
    }
    for name in NOSYS {
        ctx.add_rule(ScmpAction::Errno(ENOSYS), ScmpSyscall::from_name(name)?)?;
    }
    ctx.export_bpf(File::create(out.join("seccomp.bpf"))?)?;
    ctx.export_pfc(File::create(out.join("seccomp.pfc"))?)?;
    Ok(())
}
