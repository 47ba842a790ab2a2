//! The contract's Python face: `normalize_request`, `profile_defaults`, `request_schema`,
//! `PROFILES` and the geometry a model needs (`SIDE_MULTIPLE`, `FRAME_GROUP`).

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use super::{
    normalised_params, normalize_with_webhook, request_schema as schema_of, JobParams, Object,
    Profile, Webhook, FRAME_GROUP, MAX_WEBHOOK_CHARS, SIDE_MULTIPLE, WEBHOOK_EVENTS,
};
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
        let (params, webhook) = if let Ok(bytes) = body.cast::<PyBytes>() {
            let data = bytes.as_bytes();
            py.detach(|| normalize_with_webhook(data, profile, fresh_seed))?
        } else if let Ok(text) = body.cast::<PyString>() {
            // A str that cannot be UTF-8 (lone surrogates) is a body that is not UTF-8.
            let data = text.to_str().map_or(&b"\xff"[..], str::as_bytes);
            py.detach(|| normalize_with_webhook(data, profile, fresh_seed))?
        } else {
            let kind = body.get_type().name()?;
            return Err(Error::WrongArgumentType(format!(
                "body must be bytes or str, not {kind}"
            )));
        };
        Ok(params_dict(py, &params, webhook.as_ref())?)
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

/// The JSON Schema (as JSON text) of a request under `profile`'s defaults (see `schema.rs`).
#[pyfunction]
#[pyo3(signature = (profile = "mochi-1"))]
fn request_schema(py: Python<'_>, profile: &str) -> PyResult<String> {
    boundary(py, || Ok(schema_of(known_profile(profile)?).to_string()))
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

/// Normalised params given back by Python (`normalize_request`'s result, or a mapping equal
/// to it), checked as the contract checks a request; see `normalised.rs`.
pub fn params_from_mapping(params: &Bound<'_, PyAny>) -> Result<JobParams, Error> {
    let Ok(mapping) = params.cast::<PyMapping>() else {
        let kind = params.get_type().name()?;
        return Err(Error::WrongArgumentType(format!(
            "params must be a mapping, not {kind}"
        )));
    };
    let mut object = Object::new();
    for item in mapping.items()?.iter() {
        let (key, value) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()?;
        let Ok(key) = key.cast::<PyString>() else {
            let kind = key.get_type().name()?;
            return Err(Error::WrongArgumentType(format!(
                "params keys must be str, not {kind}"
            )));
        };
        let key = key.to_str().map_err(|_| {
            ContractError::body("params keys must be valid Unicode (no lone surrogates)")
        })?;
        let value = json_value(key, &value)?;
        object.insert(key.to_owned(), value);
    }
    Ok(normalised_params(&object)?)
}

/// The JSON value a Python value stands for, as far as the contract can tell: a list or
/// tuple becomes an array of its items' values (`webhook_events`), a dict an empty object
/// (no field takes one, so only its kind matters), and anything JSON cannot hold is an
/// `invalid_type` error.
fn json_value(field: &str, value: &Bound<'_, PyAny>) -> Result<Value, ContractError> {
    let invalid = |what: String| {
        let message = format!("{field} must be a JSON value (got {what})");
        ContractError::new(ContractCode::InvalidType, field, message)
    };
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(signed) = value.extract::<i64>() {
            return Ok(Value::from(signed));
        }
        if let Ok(unsigned) = value.extract::<u64>() {
            return Ok(Value::from(unsigned));
        }
        // Beyond 64 bits: as JSON does, read it as a float (saturated at f64::MAX); the
        // range checks then reject it.
        let float = value.extract::<f64>().unwrap_or(f64::MAX).min(f64::MAX);
        let number =
            Number::from_f64(float.max(-f64::MAX)).ok_or_else(|| invalid(value.to_string()))?;
        return Ok(Value::Number(number));
    }
    if let Ok(float) = value.cast::<PyFloat>() {
        let float = float.value();
        return Number::from_f64(float)
            .map(Value::Number)
            .ok_or_else(|| invalid(format!("the non-finite number {float}")));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return text.to_str().map(Value::from).map_err(|_| {
            let message = format!("{field} must be valid Unicode (it has a lone surrogate)");
            ContractError::new(ContractCode::InvalidValue, field, message)
        });
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = value
            .try_iter()
            .and_then(|items| items.collect::<PyResult<Vec<_>>>())
            .map_err(|_| invalid("an unreadable sequence".to_owned()))?;
        return items
            .iter()
            .map(|item| json_value(field, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if value.is_instance_of::<PyDict>() {
        return Ok(Value::Object(Map::new()));
    }
    let kind = value
        .get_type()
        .name()
        .map_or_else(|_| "an object".to_owned(), |name| format!("a {name}"));
    Err(invalid(kind))
}

fn params_dict<'py>(
    py: Python<'py>,
    params: &JobParams,
    webhook: Option<&Webhook>,
) -> PyResult<Bound<'py, PyDict>> {
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
    if let Some(webhook) = webhook {
        dict.set_item("webhook", &webhook.url)?;
        dict.set_item("webhook_events", PyList::new(py, &webhook.events)?)?;
    }
    Ok(dict)
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(normalize_request, module)?)?;
    module.add_function(wrap_pyfunction!(profile_defaults, module)?)?;
    module.add_function(wrap_pyfunction!(request_schema, module)?)?;
    module.add("SIDE_MULTIPLE", SIDE_MULTIPLE)?;
    module.add("FRAME_GROUP", FRAME_GROUP)?;
    module.add("MAX_WEBHOOK_CHARS", MAX_WEBHOOK_CHARS)?;
    module.add("WEBHOOK_EVENTS", PyTuple::new(module.py(), WEBHOOK_EVENTS)?)?;
    let names = Profile::ALL.map(Profile::name);
    module.add("PROFILES", PyTuple::new(module.py(), names)?)?;
    Ok(())
}
