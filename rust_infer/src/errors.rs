//! The crate's one error type, and the one place where it becomes a Python exception.
//!
//! Every Python entry point runs its body through [`boundary`], which catches panics (a Rust
//! panic must never unwind into Python) and converts [`Error`] into an instance of the matching
//! class from `rust_infer._errors`. Nothing else in the crate builds Python exceptions for
//! errors of its own.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// Python module that defines the exception classes. They are written in Python because,
/// under the abi3 (Python 3.11) stable ABI, a `#[pyclass]` cannot subclass an exception and
/// `InvalidRequest` needs two bases (`RustInferError` and `ValueError`).
pub const ERRORS_MODULE: &str = "rust_infer._errors";

mod codes;

pub use codes::{
    ConfigCode, ContractCode, ContractError, FailureCode, MediaCode, StopSignal, ENCODER_FAILED,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidRequest(#[from] ContractError),
    /// A caller passed a bad argument (a programming error, not a bad request): `ValueError`.
    #[error("{0}")]
    InvalidArgument(String),
    /// A caller passed an argument of the wrong type: `TypeError`.
    #[error("{0}")]
    WrongArgumentType(String),
    #[error("{message} ({})", code.as_str())]
    RunFailed {
        code: FailureCode,
        message: String,
        cause: Option<PyErr>,
    },
    #[error("{1}")]
    Stop(StopSignal, String),
    /// Frames, an encoder setting or MP4 bytes that cannot be used: `InvalidMedia`.
    #[error("{message} ({})", code.as_str())]
    InvalidMedia { code: MediaCode, message: String },
    /// The H.264 encoder failed on frames it accepted. Not retryable: encoding is
    /// deterministic (one thread), so the same frames fail the same way again.
    #[error("{0} (encoder_failed)")]
    EncoderFailed(String),
    /// A model or GPU name rust_infer does not know: `ConfigurationError`.
    #[error("{message} ({})", code.as_str())]
    Configuration { code: ConfigCode, message: String },
    /// A Python exception that passes through unchanged.
    #[error(transparent)]
    Python(#[from] PyErr),
    #[error("internal error in rust_infer: {0}")]
    Panic(String),
}

/// Runs one Python entry point: panics become [`Error::Panic`], and the error, if any, becomes
/// its Python exception here and nowhere else.
pub fn boundary<T>(py: Python<'_>, body: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    catch_panic(body).map_err(|error| error.into_py_err(py))
}

/// The panic-catching half of [`boundary`], free of Python so that it can be unit tested.
pub fn catch_panic<T>(body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    // AssertUnwindSafe: after a panic nothing touched by `body` is used again.
    catch_unwind(AssertUnwindSafe(body))
        .unwrap_or_else(|payload| Err(Error::Panic(panic_message(payload.as_ref()))))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

impl Error {
    fn into_py_err(self, py: Python<'_>) -> PyErr {
        // Building the exception can itself fail (say, the errors module cannot be imported);
        // that failure is then the exception to raise.
        self.build(py).unwrap_or_else(|failure| failure)
    }

    fn build(self, py: Python<'_>) -> PyResult<PyErr> {
        Ok(match self {
            Self::InvalidRequest(error) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("field", error.field)?;
                let args = (error.code.as_str(), error.message);
                instantiate(py, ExceptionClass::InvalidRequest, args, Some(&kwargs))?
            }
            Self::InvalidArgument(message) => PyValueError::new_err(message),
            Self::WrongArgumentType(message) => PyTypeError::new_err(message),
            Self::RunFailed {
                code,
                message,
                cause,
            } => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("retryable", code.retryable())?;
                let args = (code.as_str(), message);
                let error = instantiate(py, ExceptionClass::RunFailed, args, Some(&kwargs))?;
                error.set_cause(py, cause);
                error
            }
            Self::Stop(signal, message) => {
                let class = match signal {
                    StopSignal::Canceled => ExceptionClass::JobCanceled,
                    StopSignal::DeadlineExceeded => ExceptionClass::DeadlineExceeded,
                };
                instantiate(py, class, (message,), None)?
            }
            Self::InvalidMedia { code, message } => instantiate(
                py,
                ExceptionClass::InvalidMedia,
                (code.as_str(), message),
                None,
            )?,
            Self::EncoderFailed(message) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("retryable", false)?;
                let args = (ENCODER_FAILED, message);
                instantiate(py, ExceptionClass::RustInferError, args, Some(&kwargs))?
            }
            Self::Configuration { code, message } => {
                let args = (code.as_str(), message);
                instantiate(py, ExceptionClass::ConfigurationError, args, None)?
            }
            Self::Python(error) => error,
            error @ Self::Panic(_) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("retryable", false)?;
                let args = (FailureCode::Internal.as_str(), error.to_string());
                instantiate(py, ExceptionClass::RustInferError, args, Some(&kwargs))?
            }
        })
    }
}

fn instantiate<'py, A>(
    py: Python<'py>,
    class: ExceptionClass,
    args: A,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<PyErr>
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let instance = class.get(py)?.call(args, kwargs)?;
    Ok(PyErr::from_value(instance))
}

/// The exception classes of `rust_infer._errors`, imported once on first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionClass {
    RustInferError,
    InvalidRequest,
    RunFailed,
    TransientError,
    JobCanceled,
    DeadlineExceeded,
    InvalidMedia,
    ConfigurationError,
}

static CLASS_CACHE: [PyOnceLock<Py<PyType>>; 8] = [const { PyOnceLock::new() }; 8];

impl ExceptionClass {
    pub const ALL: [Self; 8] = [
        Self::RustInferError,
        Self::InvalidRequest,
        Self::RunFailed,
        Self::TransientError,
        Self::JobCanceled,
        Self::DeadlineExceeded,
        Self::InvalidMedia,
        Self::ConfigurationError,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::RustInferError => "RustInferError",
            Self::InvalidRequest => "InvalidRequest",
            Self::RunFailed => "RunFailed",
            Self::TransientError => "TransientError",
            Self::JobCanceled => "JobCanceled",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::InvalidMedia => "InvalidMedia",
            Self::ConfigurationError => "ConfigurationError",
        }
    }

    pub fn get(self, py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
        CLASS_CACHE[self as usize].import(py, ERRORS_MODULE, self.name())
    }
}

/// Adds the exception classes and `FAILURE_CODES` to the extension module, so that it
/// offers the whole API by itself.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    for class in ExceptionClass::ALL {
        module.add(class.name(), class.get(py)?)?;
    }
    let codes = FailureCode::ALL.map(FailureCode::as_str);
    module.add("FAILURE_CODES", pyo3::types::PyTuple::new(py, codes)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let outcome: Result<(), Error> = catch_panic(|| panic!("boom {}", 7));
        match outcome {
            Err(Error::Panic(message)) => assert_eq!(message, "boom 7"),
            other => panic!("expected a caught panic, got {other:?}"),
        }
    }

    #[test]
    fn a_static_panic_message_is_kept() {
        let outcome: Result<(), Error> = catch_panic(|| panic!("static"));
        assert!(matches!(outcome, Err(Error::Panic(message)) if message == "static"));
    }

    #[test]
    fn results_pass_through_unchanged() {
        assert!(matches!(catch_panic(|| Ok::<_, Error>(5)), Ok(5)));
        let outcome: Result<(), Error> =
            catch_panic(|| Err(Error::InvalidArgument("no".to_owned())));
        assert!(matches!(outcome, Err(Error::InvalidArgument(message)) if message == "no"));
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let retryable: Vec<_> = FailureCode::ALL
            .iter()
            .filter(|code| code.retryable())
            .map(|code| code.as_str())
            .collect();
        assert_eq!(retryable, ["transient"]);
    }

    #[test]
    fn exception_class_cache_has_a_slot_per_class() {
        for (index, class) in ExceptionClass::ALL.iter().enumerate() {
            assert_eq!(*class as usize, index);
        }
        assert_eq!(CLASS_CACHE.len(), ExceptionClass::ALL.len());
    }
}
