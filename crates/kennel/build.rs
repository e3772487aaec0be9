//! Two things about how kennel is linked, both for the start of every sandbox.
//!
//! The functions a start runs are laid out together, in the order of `symbol-order.txt`
//! (written by `bench/symbol-order.py`), where the linker takes an ordering file: LLD does,
//! which Rust uses on x86_64 Linux since 1.90. A start then faults in fewer pages of code,
//! and so does the sandbox's init, a fork of kennel (bench/README.md). The option is probed
//! by linking an empty program with it; where the linker refuses it, kennel is linked
//! without it. Names the binary does not have (after a change of Rust or of a dependency:
//! symbol names carry a hash of both) are skipped, so a stale list only costs speed.
//!
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
    symbol_order();
    static_unwinder();
}

fn static_unwinder() {
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

fn symbol_order() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = PathBuf::from(dir).join("symbol-order.txt");
    let Some(order) = order.to_str().filter(|p| !p.contains(',')) else {
        return; // the compiler driver would split the path at a comma
    };
    let args = [
        format!("-Wl,--symbol-ordering-file={order}"),
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if links_with(&args) {
        for arg in args {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}

/// Whether rustc links an empty program for the target with these linker arguments, with
/// the flags and linker this build uses.
fn links_with(args: &[String]) -> bool {
    let var = |name: &str| std::env::var(name).ok();
    let (Some(rustc), Some(target), Some(out)) = (var("RUSTC"), var("TARGET"), var("OUT_DIR"))
    else {
        return false;
    };
    let out = PathBuf::from(out);
    let source = out.join("link-probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.arg("--crate-type=bin")
        .arg(format!("--target={target}"))
        .arg("-o")
        .arg(out.join("link-probe"))
        .arg(&source);
    if let Some(flags) = var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    if let Some(linker) = var("RUSTC_LINKER") {
        cmd.arg(format!("-Clinker={linker}"));
    }
    for arg in args {
        cmd.arg(format!("-Clink-arg={arg}"));
    }
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
