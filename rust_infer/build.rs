//! Gives `cargo test` binaries an rpath to the interpreter's libpython (pyenv and venv
//! interpreters keep it outside the loader's search path). PyO3 makes this a no-op when
//! maturin builds the extension module, which must not link libpython.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
