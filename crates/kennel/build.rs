//! Links libgcc's unwinder statically where the C compiler has it (`libgcc_eh.a`), so that
//! a dynamically linked kennel needs no `libgcc_s.so.1` at run time: one shared library
//! fewer to load, relocate and initialize at every start (about 0.1 ms on a virtual machine,
//! where the library's CPU-feature probe traps to the hypervisor). Without the archive,
//! nothing changes: Rust's standard library links `libgcc_s` as usual. The usual build is
//! static (`.cargo/config.toml`), which links the unwinder statically anyway; this is for
//! builds without that configuration, such as the Nix package.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let static_runtime = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|features| features.split(',').any(|f| f == "crt-static"));
    if target_env != "gnu" || target_os != "linux" || static_runtime {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Without the archive, the compiler prints the bare name back.
    if !out.status.success() || !path.is_absolute() || !path.is_file() {
        return;
    }
    if let Some(dir) = path.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        // Before the standard library's `-lgcc_s`, which `--as-needed` then drops.
        println!("cargo:rustc-link-lib=static=gcc_eh");
    }
}
