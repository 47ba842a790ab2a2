//! Gives `cargo test` binaries an rpath to the interpreter's libpython (pyenv and venv
//! interpreters keep it outside the loader's search path). PyO3 makes this a no-op when
//! maturin builds the extension module, which must not link libpython.
//!
//! Also refuses to build on x86 without `nasm`: openh264's build script then silently
//! drops its SIMD assembly and the encoder is about 2.5x slower (BENCHMARKS.md).
use std::process::Command;

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let nasm_found = Command::new("nasm").arg("-v").output().is_ok_and(|out| out.status.success());
    if (arch == "x86_64" || arch == "x86") && !nasm_found {
        println!(
            "cargo::error=nasm is not installed: openh264 would be built without its x86 SIMD \
             assembly (install it, e.g. `apt-get install nasm`, then `cargo clean -p openh264-sys2`)"
        );
    }
    println!("cargo::rerun-if-env-changed=PATH");
}
