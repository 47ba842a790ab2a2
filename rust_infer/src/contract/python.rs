//! The contract's Python face: `normalize_request`, `profile_defaults`, `PROFILES`.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyString, PyTuple};

use super::{normalize, JobParams, Profile};
use crate::errors::{boundary, ContractCode, ContractError, Error};

/// Validates a raw request body and returns the normalised parameters (see `contract.rs`).
#[pyfunction]
#[pyo3(signature = (body, *, profile = "mochi-1", fresh_seed))]
fn normalize_request<'py>(
    py: Python<'py>,
    body: &Bound<'py, PyAny>,
    profile: &str,
    fresh_seed: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    boundary(py, || {
        let profile = known_profile(profile)?;
        let fresh_seed = fresh_seed_value(fresh_seed)?;
        let params = if let Ok(bytes) = body.cast::<PyBytes>() {
            let data = bytes.as_bytes();
            py.detach(|| normalize(data, profile, fresh_seed))?
        } else if let Ok(text) = body.cast::<PyString>() {
            // A str that cannot be UTF-8 (lone surrogates) is a body that is not UTF-8.
            let data = text.to_str().map_or(&b"\xff"[..], str::as_bytes);
            py.detach(|| normalize(data, profile, fresh_seed))?
        } else {
            let kind = body.get_type().name()?;
            return Err(Error::WrongArgumentType(format!(
                "body must be bytes or str, not {kind}"
            )));
        };
        Ok(params_dict(py, &params)?)
    })
}

/// The caller's random seed must be a valid seed whether or not the request needs it, so a
/// caller bug shows on the first request.
fn fresh_seed_value(value: &Bound<'_, PyAny>) -> Result<u32, Error> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        let kind = value.get_type().name()?;
        return Err(Error::WrongArgumentType(format!(
            "fresh_seed must be an int, not {kind}"
        )));
    }
    value.extract::<u32>().map_err(|_| {
        let message = format!(
            "fresh_seed must be between 0 and {} (got {value})",
            u32::MAX
        );
        ContractError::new(ContractCode::OutOfRange, "seed", message).into()
    })
}

/// The defaults `profile` gives to optional fields (all but `prompt` and `seed`).
#[pyfunction]
fn profile_defaults<'py>(py: Python<'py>, profile: &str) -> PyResult<Bound<'py, PyDict>> {
    boundary(py, || {
        let defaults = known_profile(profile)?.defaults();
        let dict = PyDict::new(py);
        dict.set_item("negative_prompt", defaults.negative_prompt)?;
        dict.set_item("num_frames", defaults.num_frames)?;
        dict.set_item("width", defaults.width)?;
        dict.set_item("height", defaults.height)?;
        dict.set_item("fps", defaults.fps)?;
        dict.set_item("num_inference_steps", defaults.num_inference_steps)?;
        dict.set_item("guidance_scale", defaults.guidance_scale)?;
        Ok(dict)
    })
}

fn known_profile(name: &str) -> Result<Profile, Error> {
    Profile::from_name(name).ok_or_else(|| {
        let known: Vec<_> = Profile::ALL.iter().map(|profile| profile.name()).collect();
        Error::InvalidArgument(format!(
            "unknown profile {name:?}; known: {}",
            known.join(", ")
        ))
    })
}

fn params_dict<'py>(py: Python<'py>, params: &JobParams) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("prompt", &params.prompt)?;
    dict.set_item("negative_prompt", &params.negative_prompt)?;
    dict.set_item("num_frames", params.num_frames)?;
    dict.set_item("width", params.width)?;
    dict.set_item("height", params.height)?;
    dict.set_item("fps", params.fps)?;
    dict.set_item("num_inference_steps", params.num_inference_steps)?;
    dict.set_item("guidance_scale", params.guidance_scale)?;
    dict.set_item("seed", params.seed)?;
    Ok(dict)
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(normalize_request, module)?)?;
    module.add_function(wrap_pyfunction!(profile_defaults, module)?)?;
    let names = Profile::ALL.map(Profile::name);
    module.add("PROFILES", PyTuple::new(module.py(), names)?)?;
    Ok(())
}
