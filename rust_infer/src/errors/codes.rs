//! The stable codes errors carry: each becomes the `code` attribute of a Python exception.

use std::fmt;

/// Stable codes of request-contract failures (the `code` of `InvalidRequest`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContractCode {
    InvalidJson,
    MissingField,
    InvalidType,
    Empty,
    TooLong,
    ControlCharacter,
    InvalidValue,
    OutOfRange,
    UnknownField,
    ConflictingFields,
}

impl ContractCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::InvalidType => "invalid_type",
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::ControlCharacter => "control_character",
            Self::InvalidValue => "invalid_value",
            Self::OutOfRange => "out_of_range",
            Self::UnknownField => "unknown_field",
            Self::ConflictingFields => "conflicting_fields",
        }
    }
}

/// A request that breaks the job contract: which rule, which field, and a sentence saying so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractError {
    pub code: ContractCode,
    /// The offending field; `None` only when the body as a whole is unusable.
    pub field: Option<String>,
    pub message: String,
}

impl ContractError {
    pub fn new(code: ContractCode, field: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub fn body(message: impl Into<String>) -> Self {
        Self {
            code: ContractCode::InvalidJson,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

impl std::error::Error for ContractError {}

/// Stable codes of unusable media (the `code` of `InvalidMedia`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaCode {
    InvalidFrames,
    InvalidEncoderSetting,
    InvalidMp4,
}

impl MediaCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFrames => "invalid_frames",
            Self::InvalidEncoderSetting => "invalid_encoder_setting",
            Self::InvalidMp4 => "invalid_mp4",
        }
    }
}

/// Stable codes of deployment settings rust_infer does not know (`ConfigurationError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigCode {
    UnknownGpu,
    UnknownModel,
}

impl ConfigCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownGpu => "unknown_gpu",
            Self::UnknownModel => "unknown_model",
        }
    }
}

/// The code of a failed encode (a plain `RustInferError`).
pub const ENCODER_FAILED: &str = "encoder_failed";

/// Failure classes of a supervised run (the `code` of `RunFailed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCode {
    InvalidInput,
    OutOfMemory,
    Transient,
    Canceled,
    DeadlineExceeded,
    Internal,
}

impl FailureCode {
    /// In the order exported to Python as `FAILURE_CODES`.
    pub const ALL: [Self; 6] = [
        Self::InvalidInput,
        Self::OutOfMemory,
        Self::Transient,
        Self::Canceled,
        Self::DeadlineExceeded,
        Self::Internal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::OutOfMemory => "out_of_memory",
            Self::Transient => "transient",
            Self::Canceled => "canceled",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Internal => "internal",
        }
    }

    /// Only transient failures are worth running again: the others fail the same way twice.
    pub const fn retryable(self) -> bool {
        matches!(self, Self::Transient)
    }
}

/// The two signals the step hook raises to stop a pipeline between denoising steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    Canceled,
    DeadlineExceeded,
}
