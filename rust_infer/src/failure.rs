//! Failure classification for a supervised run, decided from an exception's class names and
//! message alone, so that the rules are plain Rust and unit tested without Python.

use crate::errors::{FailureCode, ERRORS_MODULE};

/// A class in an exception's MRO, by `__module__` and `__qualname__`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassName {
    pub module: String,
    pub name: String,
}

impl ClassName {
    #[cfg(test)]
    pub fn new(module: &str, name: &str) -> Self {
        Self {
            module: module.to_owned(),
            name: name.to_owned(),
        }
    }

    fn is(&self, module: &str, name: &str) -> bool {
        self.module == module && self.name == name
    }
}

/// What a supervisor does with an exception that escaped the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Re-raise unchanged: interpreter signals (`KeyboardInterrupt`, `SystemExit`, any other
    /// `BaseException` that is not an `Exception`) and failures already classified (`RunFailed`).
    Propagate,
    Fail(FailureCode),
}

/// Classifies an exception from its MRO (most derived first) and `str()`; first match wins:
/// our stop signals, interpreter signals, `RunFailed`, out of memory, transient, invalid input,
/// and anything else is internal.
pub fn classify(mro: &[ClassName], message: &str) -> Disposition {
    let has = |module: &str, name: &str| mro.iter().any(|class| class.is(module, name));
    let builtin = |name: &str| has("builtins", name);
    if has(ERRORS_MODULE, "JobCanceled") {
        return Disposition::Fail(FailureCode::Canceled);
    }
    if has(ERRORS_MODULE, "DeadlineExceeded") {
        return Disposition::Fail(FailureCode::DeadlineExceeded);
    }
    if !builtin("Exception") || has(ERRORS_MODULE, "RunFailed") {
        return Disposition::Propagate;
    }
    // torch.OutOfMemoryError (torch.cuda.OutOfMemoryError on older torch) is matched by name so
    // that torch need not be imported; older CUDA paths raise a bare RuntimeError.
    let out_of_memory = mro.iter().any(|class| class.name == "OutOfMemoryError")
        || builtin("MemoryError")
        || (builtin("RuntimeError") && message.to_ascii_lowercase().contains("out of memory"));
    let code = if out_of_memory {
        FailureCode::OutOfMemory
    } else if has(ERRORS_MODULE, "TransientError")
        || builtin("ConnectionError")
        || builtin("TimeoutError")
    {
        FailureCode::Transient
    } else if builtin("ValueError") || builtin("TypeError") {
        FailureCode::InvalidInput
    } else {
        FailureCode::Internal
    };
    Disposition::Fail(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mro(names: &[(&str, &str)]) -> Vec<ClassName> {
        let mut classes: Vec<_> = names
            .iter()
            .map(|(module, name)| ClassName::new(module, name))
            .collect();
        classes.push(ClassName::new("builtins", "BaseException"));
        classes.push(ClassName::new("builtins", "object"));
        classes
    }

    fn exception(names: &[(&str, &str)]) -> Vec<ClassName> {
        let mut all = names.to_vec();
        all.push(("builtins", "Exception"));
        mro(&all)
    }

    fn fails(classes: &[ClassName], message: &str) -> FailureCode {
        match classify(classes, message) {
            Disposition::Fail(code) => code,
            Disposition::Propagate => panic!("{classes:?} propagated"),
        }
    }

    #[test]
    fn stop_signals() {
        assert_eq!(
            fails(&mro(&[(ERRORS_MODULE, "JobCanceled")]), ""),
            FailureCode::Canceled
        );
        let deadline = mro(&[(ERRORS_MODULE, "DeadlineExceeded")]);
        assert_eq!(fails(&deadline, ""), FailureCode::DeadlineExceeded);
    }

    #[test]
    fn interpreter_signals_and_classified_failures_propagate() {
        for name in ["KeyboardInterrupt", "SystemExit", "GeneratorExit"] {
            assert_eq!(
                classify(&mro(&[("builtins", name)]), ""),
                Disposition::Propagate
            );
        }
        let run_failed = exception(&[
            (ERRORS_MODULE, "RunFailed"),
            (ERRORS_MODULE, "RustInferError"),
        ]);
        assert_eq!(classify(&run_failed, ""), Disposition::Propagate);
    }

    #[test]
    fn out_of_memory() {
        let torch = exception(&[("torch", "OutOfMemoryError"), ("builtins", "RuntimeError")]);
        assert_eq!(
            fails(&torch, "CUDA out of memory. Tried to allocate 2 GiB"),
            FailureCode::OutOfMemory
        );
        assert_eq!(
            fails(&exception(&[("builtins", "MemoryError")]), ""),
            FailureCode::OutOfMemory
        );
        let runtime = exception(&[("builtins", "RuntimeError")]);
        assert_eq!(
            fails(&runtime, "CUDA error: out of memory"),
            FailureCode::OutOfMemory
        );
        assert_eq!(
            fails(&runtime, "MPS backend Out Of Memory"),
            FailureCode::OutOfMemory
        );
        assert_eq!(fails(&runtime, "shape mismatch"), FailureCode::Internal);
        let value = exception(&[("builtins", "ValueError")]);
        assert_eq!(
            fails(&value, "out of memory"),
            FailureCode::InvalidInput,
            "only RuntimeError messages count"
        );
    }

    #[test]
    fn transient() {
        let transient = exception(&[
            (ERRORS_MODULE, "TransientError"),
            (ERRORS_MODULE, "RustInferError"),
        ]);
        assert_eq!(fails(&transient, ""), FailureCode::Transient);
        let refused = exception(&[
            ("builtins", "ConnectionRefusedError"),
            ("builtins", "ConnectionError"),
            ("builtins", "OSError"),
        ]);
        assert_eq!(fails(&refused, ""), FailureCode::Transient);
        let timeout = exception(&[("builtins", "TimeoutError"), ("builtins", "OSError")]);
        assert_eq!(fails(&timeout, ""), FailureCode::Transient);
        let other_os = exception(&[("builtins", "FileNotFoundError"), ("builtins", "OSError")]);
        assert_eq!(fails(&other_os, ""), FailureCode::Internal);
    }

    #[test]
    fn invalid_input() {
        let invalid_request = exception(&[
            (ERRORS_MODULE, "InvalidRequest"),
            (ERRORS_MODULE, "RustInferError"),
            ("builtins", "ValueError"),
        ]);
        assert_eq!(fails(&invalid_request, ""), FailureCode::InvalidInput);
        assert_eq!(
            fails(&exception(&[("builtins", "TypeError")]), ""),
            FailureCode::InvalidInput
        );
    }

    #[test]
    fn everything_else_is_internal() {
        assert_eq!(fails(&exception(&[]), ""), FailureCode::Internal);
        assert_eq!(
            fails(
                &exception(&[("builtins", "KeyError"), ("builtins", "LookupError")]),
                ""
            ),
            FailureCode::Internal
        );
        let panic = exception(&[(ERRORS_MODULE, "RustInferError")]);
        assert_eq!(
            fails(&panic, "internal error in rust_infer: boom"),
            FailureCode::Internal
        );
    }
}
