//! rust_infer: the t2v worker core. This file only assembles the Python module;
//! each concern lives in its own module.

mod artifact;
mod contract;
mod errors;
mod estimate;
mod failure;
mod supervise;
mod video;

use pyo3::prelude::*;

/// The compiled half of the `rust_infer` package (the Python package is the public face).
#[pymodule]
fn _rust_infer(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    contract::register(m)?;
    artifact::register(m)?;
    estimate::register(m)?;
    supervise::register(m)?;
    video::register(m)?;
    Ok(())
}
