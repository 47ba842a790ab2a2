//! Gives `cargo test` binaries an rpath to the interpreter's libpython (pyenv and venv
//! interpreters keep it outside the loader's search path). PyO3 makes this a no-op when
//! maturin builds the extension module, which must not link libpython.
//!
//! Also refuses to build on x86 without `nasm`: openh264's build script then silently
//! drops its SIMD assembly and the encoder runs several times slower.
use std::process::Command;

fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let nasm_found = Command::new("nasm").arg("-v").output().is_ok_and(|out| out.status.success());
    if (arch == "x86_64" || arch == "x86") && !nasm_found {
        // openh264-sys2 may already be built (without assembly) in this target folder: the
        // hint names the folder, which `cargo clean` alone would not find when the build was
        // pointed elsewhere (scripts/env.sh sets CARGO_TARGET_DIR).
        let target_dir = target_dir().unwrap_or_else(|| "target".into());
        println!(
            "cargo::error=nasm is not installed: openh264 would be built without its x86 SIMD \
             assembly. Install it (`apt-get install nasm`), then run \
             `cargo clean -p openh264-sys2 --manifest-path {}/Cargo.toml --target-dir {}`",
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default(),
            target_dir.display()
        );
    }
    println!("cargo::rerun-if-env-changed=PATH");
}

/// The target folder this build writes to: OUT_DIR is `<target>/<profile>/build/<pkg>/out`
/// (one level deeper under `--target <triple>`), so it is the parent of the `build` folder's
/// parent.
fn target_dir() -> Option<std::path::PathBuf> {
    let out_dir = std::path::PathBuf::from(std::env::var_os("OUT_DIR")?);
    let build = out_dir.ancestors().find(|dir| dir.file_name().is_some_and(|name| name == "build"))?;
    Some(build.parent()?.parent()?.to_path_buf())
}
