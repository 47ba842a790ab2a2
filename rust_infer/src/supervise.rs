//! The supervised run: calls the Python pipeline with a step hook that reports progress and
//! stops the run within one denoising step of a cancel or a passed deadline, then classifies
//! whatever escaped the pipeline into a `RunFailed` with a stable code.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::errors::{boundary, Error, FailureCode, StopSignal};
use crate::failure::{classify, ClassName, Disposition};

/// Passed to the pipeline as diffusers' `callback_on_step_end`; created only by `supervise`.
#[pyclass(frozen, module = "rust_infer._rust_infer")]
pub struct StepHook {
    on_progress: Py<PyAny>,
    is_canceled: Py<PyAny>,
    total_steps: u64,
    started: Instant,
    deadline: Option<Duration>,
    steps_done: AtomicU64,
}

#[pymethods]
impl StepHook {
    /// Steps finished so far: one more than the last `step_index` seen.
    #[getter]
    fn steps_done(&self) -> u64 {
        self.steps_done.load(Ordering::Relaxed)
    }

    /// diffusers calls this after each denoising step as `hook(pipe, i, t, callback_kwargs)`
    /// and uses the returned dict as the new callback kwargs.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        pipe: &Bound<'py, PyAny>,
        step_index: i64,
        timestep: &Bound<'py, PyAny>,
        callback_kwargs: Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // Part of diffusers' callback signature; the hook has no use for them.
        let _ = (pipe, timestep);
        boundary(py, || {
            self.after_step(py, step_index)?;
            Ok(callback_kwargs)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<StepHook {} of {} steps done>",
            self.steps_done(),
            self.total_steps
        )
    }
}

impl StepHook {
    fn after_step(&self, py: Python<'_>, step_index: i64) -> Result<(), Error> {
        let done = u64::try_from(step_index)
            .ok()
            .and_then(|index| index.checked_add(1))
            .ok_or_else(|| {
                Error::InvalidArgument(format!("step_index must be >= 0 (got {step_index})"))
            })?;
        let total = self.total_steps;
        self.steps_done.store(done, Ordering::Relaxed);
        self.on_progress.call1(py, (done, total))?;
        if self.is_canceled.bind(py).call0()?.is_truthy()? {
            let message = format!("the job was canceled after step {done} of {total}");
            return Err(Error::Stop(StopSignal::Canceled, message));
        }
        if let Some(deadline) = self.deadline {
            let elapsed = self.started.elapsed();
            if elapsed >= deadline {
                let message = format!(
                    "the deadline of {:.1} s passed after step {done} of {total} ({:.1} s elapsed)",
                    deadline.as_secs_f64(),
                    elapsed.as_secs_f64()
                );
                return Err(Error::Stop(StopSignal::DeadlineExceeded, message));
            }
        }
        Ok(())
    }
}

/// Runs `run(hook)` and returns its result; failures become `RunFailed` (see `failure.rs`).
#[pyfunction]
#[pyo3(signature = (run, *, total_steps, on_progress, is_canceled, deadline_s = None))]
fn supervise<'py>(
    py: Python<'py>,
    run: &Bound<'py, PyAny>,
    total_steps: i64,
    on_progress: &Bound<'py, PyAny>,
    is_canceled: &Bound<'py, PyAny>,
    deadline_s: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    boundary(py, || {
        // The deadline counts from here, so that argument checks and the cancel check count.
        let started = Instant::now();
        let total_steps = u64::try_from(total_steps)
            .ok()
            .filter(|steps| *steps >= 1)
            .ok_or_else(|| {
                Error::InvalidArgument(format!("total_steps must be >= 1 (got {total_steps})"))
            })?;
        let deadline = deadline_s.map(deadline_duration).transpose()?;
        for (name, callable) in [
            ("run", run),
            ("on_progress", on_progress),
            ("is_canceled", is_canceled),
        ] {
            if !callable.is_callable() {
                return Err(Error::WrongArgumentType(format!("{name} must be callable")));
            }
        }
        match is_canceled.call0().and_then(|flag| flag.is_truthy()) {
            Ok(false) => {}
            Ok(true) => {
                return Err(Error::RunFailed {
                    code: FailureCode::Canceled,
                    message: "the job was canceled before the run started".to_owned(),
                    cause: None,
                })
            }
            Err(error) => return Err(classified(py, error)),
        }
        let hook = StepHook {
            on_progress: on_progress.clone().unbind(),
            is_canceled: is_canceled.clone().unbind(),
            total_steps,
            started,
            deadline,
            steps_done: AtomicU64::new(0),
        };
        let hook = Bound::new(py, hook)?;
        run.call1((hook,)).map_err(|error| classified(py, error))
    })
}

fn deadline_duration(seconds: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        Error::InvalidArgument(format!(
            "deadline_s must be a finite number >= 0 (got {seconds})"
        ))
    })
}

/// Turns an exception that escaped the run into a `RunFailed` (keeping it as the cause), or
/// lets it through unchanged when it must propagate.
fn classified(py: Python<'_>, error: PyErr) -> Error {
    let value = error.value(py);
    let class = value.get_type();
    let mro = class_names(&class.mro());
    let message = value.str().map_or_else(
        |_| "<unprintable exception>".to_owned(),
        |text| text.to_string(),
    );
    match classify(&mro, &message) {
        Disposition::Propagate => Error::Python(error),
        Disposition::Fail(code) => {
            let message = match code {
                FailureCode::Canceled | FailureCode::DeadlineExceeded => message,
                _ => {
                    let name = mro.first().map_or("exception", |class| class.name.as_str());
                    if message.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{name}: {message}")
                    }
                }
            };
            Error::RunFailed {
                code,
                message,
                cause: Some(error),
            }
        }
    }
}

/// The MRO as (module, name) pairs; a class whose names cannot be read is left out.
fn class_names(mro: &Bound<'_, PyTuple>) -> Vec<ClassName> {
    mro.iter()
        .filter_map(|class| {
            let class = class.cast_into::<PyType>().ok()?;
            let module = class.module().ok()?.to_string();
            let name = class.name().ok()?.to_string();
            Some(ClassName { module, name })
        })
        .collect()
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<StepHook>()?;
    module.add_function(wrap_pyfunction!(supervise, module)?)?;
    Ok(())
}
