//! The estimator's Python face: `estimate` and `GPUS`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::{estimate as estimate_cost, gpu_named, model_named, GPUS, MODELS};
use crate::contract::params_from_mapping;
use crate::errors::{boundary, ConfigCode, Error};

/// VRAM and seconds of normalised `params` for `model` on `gpu` (see `estimate.rs`).
#[pyfunction]
#[pyo3(signature = (params, *, model = "mochi-1", gpu = "h100"))]
fn estimate<'py>(
    py: Python<'py>,
    params: &Bound<'py, PyAny>,
    model: &str,
    gpu: &str,
) -> PyResult<Bound<'py, PyDict>> {
    boundary(py, || {
        let model = model_named(model).ok_or_else(|| {
            let known: Vec<_> = MODELS.iter().map(|model| model.name).collect();
            unknown(ConfigCode::UnknownModel, "model", model, &known)
        })?;
        let gpu = gpu_named(gpu).ok_or_else(|| {
            let known: Vec<_> = GPUS.iter().map(|gpu| gpu.name).collect();
            unknown(ConfigCode::UnknownGpu, "gpu", gpu, &known)
        })?;
        let params = params_from_mapping(params)?;
        let cost = estimate_cost(model, gpu, &params);
        let dict = PyDict::new(py);
        dict.set_item("vram_bytes", cost.vram_bytes)?;
        dict.set_item("seconds", cost.seconds)?;
        dict.set_item("seconds_per_step", cost.seconds_per_step)?;
        dict.set_item("decode_seconds", cost.decode_seconds)?;
        dict.set_item("encode_seconds", cost.encode_seconds)?;
        dict.set_item("fixed_seconds", cost.fixed_seconds)?;
        dict.set_item("visual_tokens", cost.visual_tokens)?;
        dict.set_item("gpu_memory_bytes", cost.gpu_memory_bytes)?;
        Ok(dict)
    })
}

fn unknown(code: ConfigCode, what: &str, name: &str, known: &[&str]) -> Error {
    Error::Configuration {
        code,
        message: format!("unknown {what} {name:?}; known: {}", known.join(", ")),
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(estimate, module)?)?;
    let names = GPUS.map(|gpu| gpu.name);
    module.add("GPUS", PyTuple::new(module.py(), names)?)?;
    Ok(())
}
