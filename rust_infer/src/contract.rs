//! The job contract: parse, validate and normalise a job request.
//!
//! The one definition of the request rules. submit applies it before anything is stored;
//! `artifact_key` and `estimate` check the normalised params they are given with the same
//! code (`normalised.rs`); `request_schema` publishes the rules as a JSON Schema
//! (`schema.rs`, written to `t2v/schemas/job.submit.v1.json`). Checks run in this fixed
//! order and the first failure is reported:
//!
//! 1. the body: UTF-8, JSON, an object (`invalid_json`);
//! 2. unknown fields, the alphabetically first one (`unknown_field`);
//! 3. `prompt` (required; string, not blank, at most 2000 characters, no control characters
//!    but `\n` and `\t`), then `negative_prompt` (the same, except that it may be empty);
//! 4. `width`, then `height` (each: integer, at least 16, multiple of 16, at most 1360), then
//!    the shorter side (at most 768: the "768p" rule);
//! 5. `fps` (1..=60);
//! 6. `num_frames` (6k+1) or `duration_s` (> 0, at most 10; becomes the nearest 6k+1 frame
//!    count that fits in 10 s), never both; then the 10 s length limit;
//! 7. `num_inference_steps` (2..=200), `guidance_scale` (0..=20), `seed` (0..=2^32-1);
//! 8. `webhook` (an `http(s)://` URL with a host, at most 2048 characters), then
//!    `webhook_events` (distinct names of `start`, `progress`, `completed`; default
//!    `completed`; only beside a `webhook`), see `webhook.rs`.
//!
//! Within a field: type, then range or form. JSON `null` counts as absent. Integral floats
//! (`64.0`) are accepted as integers; booleans are never numbers.

mod fields;
mod normalised;
mod profile;
mod python;
mod schema;
#[cfg(test)]
mod tests;
mod webhook;

use serde_json::Value;

use crate::errors::{ContractCode, ContractError};
pub use fields::Object;
use fields::{check_text, describe, integer, integer_in, number, optional, string};
pub use normalised::{canonical_json, normalised_params};
pub use profile::{Defaults, Profile};
pub use python::{params_from_mapping, register};
pub use schema::request_schema;
pub use webhook::{Webhook, DEFAULT_WEBHOOK_EVENTS, MAX_WEBHOOK_CHARS, WEBHOOK_EVENTS};

/// Every field a request may carry.
pub const FIELDS: [&str; 12] = [
    "prompt",
    "negative_prompt",
    "num_frames",
    "duration_s",
    "width",
    "height",
    "fps",
    "num_inference_steps",
    "guidance_scale",
    "seed",
    "webhook",
    "webhook_events",
];
pub const MAX_PROMPT_CHARS: usize = 2000;
pub const MAX_VIDEO_SECONDS: u32 = 10;
/// Mochi's VAE works on 16-pixel blocks (8x spatial compression, 2x2 patches).
pub const SIDE_MULTIPLE: u32 = 16;
/// "At most 768p": the shorter side is bounded, and the longer side to a 16:9-ish 1360.
pub const MAX_SHORT_SIDE: u32 = 768;
pub const MAX_LONG_SIDE: u32 = 1360;
pub const MAX_FPS: u32 = 60;
/// Mochi's linear-quadratic sigma schedule divides by (steps - 1): one step is not a schedule.
pub const MIN_INFERENCE_STEPS: u32 = 2;
pub const MAX_INFERENCE_STEPS: u32 = 200;
pub const MAX_GUIDANCE_SCALE: f64 = 20.0;
/// Mochi's VAE compresses time 6x: a clip has 6k+1 frames.
pub const FRAME_GROUP: u32 = 6;

/// A valid, complete request: every field present, every default applied.
#[derive(Clone, Debug, PartialEq)]
pub struct JobParams {
    pub prompt: String,
    pub negative_prompt: String,
    pub num_frames: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub num_inference_steps: u32,
    pub guidance_scale: f64,
    pub seed: u32,
}

/// Validates `body` (the raw HTTP body) and fills in `profile`'s defaults; also the
/// request's webhook (None when it names none). `fresh_seed` is the seed used when the
/// request has none.
pub fn normalize_with_webhook(
    body: &[u8],
    profile: Profile,
    fresh_seed: u32,
) -> Result<(JobParams, Option<Webhook>), ContractError> {
    let object = parse_object(body)?;
    let params = normalize_object(&object, profile, fresh_seed)?;
    Ok((params, webhook::webhook(&object)?))
}

/// [`normalize_with_webhook`]'s params, for a request already parsed into a JSON object.
pub fn normalize_object(
    object: &Object,
    profile: Profile,
    fresh_seed: u32,
) -> Result<JobParams, ContractError> {
    reject_unknown_fields(object)?;
    let defaults = profile.defaults();
    let prompt = prompt(object)?;
    let negative_prompt = negative_prompt(object, &defaults)?;
    let width = side(object, "width", defaults.width)?;
    let height = side(object, "height", defaults.height)?;
    check_resolution(width, height)?;
    let fps = bounded(object, "fps", defaults.fps, (1, MAX_FPS))?;
    let num_frames = frames(object, fps, defaults.num_frames)?;
    let num_inference_steps = bounded(
        object,
        "num_inference_steps",
        defaults.num_inference_steps,
        (MIN_INFERENCE_STEPS, MAX_INFERENCE_STEPS),
    )?;
    let guidance_scale = guidance_scale(object, defaults.guidance_scale)?;
    let seed = optional(object, "seed").map_or(Ok(fresh_seed), |value| {
        integer_in("seed", value, 0, u32::MAX)
    })?;
    webhook::webhook(object)?;
    Ok(JobParams {
        prompt,
        negative_prompt,
        num_frames,
        width,
        height,
        fps,
        num_inference_steps,
        guidance_scale,
        seed,
    })
}

fn parse_object(body: &[u8]) -> Result<Object, ContractError> {
    let text = std::str::from_utf8(body).map_err(|error| {
        ContractError::body(format!(
            "request body must be UTF-8 (invalid byte at offset {})",
            error.valid_up_to()
        ))
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(ContractError::body(format!(
            "request body must be a JSON object (got {})",
            describe(&other)
        ))),
        Err(error) => Err(ContractError::body(format!(
            "request body is not valid JSON: {error}"
        ))),
    }
}

fn reject_unknown_fields(object: &Object) -> Result<(), ContractError> {
    match object
        .keys()
        .filter(|key| !FIELDS.contains(&key.as_str()))
        .min()
    {
        None => Ok(()),
        Some(key) => {
            let message = format!(
                "unknown field {key:?}; the fields are: {}",
                FIELDS.join(", ")
            );
            Err(ContractError::new(ContractCode::UnknownField, key, message))
        }
    }
}

fn prompt(object: &Object) -> Result<String, ContractError> {
    let Some(value) = optional(object, "prompt") else {
        return Err(ContractError::new(
            ContractCode::MissingField,
            "prompt",
            "prompt is required",
        ));
    };
    let text = string("prompt", value)?;
    // `char::is_whitespace` is what `str::trim` strips; the schema's pattern uses it too.
    if text.chars().all(char::is_whitespace) {
        let message = "prompt must not be empty or only whitespace";
        return Err(ContractError::new(ContractCode::Empty, "prompt", message));
    }
    check_text("prompt", text, MAX_PROMPT_CHARS)?;
    Ok(text.to_owned())
}

/// The negative prompt may be empty (its default); otherwise the prompt's rules apply.
fn negative_prompt(object: &Object, defaults: &Defaults) -> Result<String, ContractError> {
    let Some(value) = optional(object, "negative_prompt") else {
        return Ok(defaults.negative_prompt.to_owned());
    };
    let text = string("negative_prompt", value)?;
    check_text("negative_prompt", text, MAX_PROMPT_CHARS)?;
    Ok(text.to_owned())
}

fn side(object: &Object, field: &str, default: u32) -> Result<u32, ContractError> {
    let Some(value) = optional(object, field) else {
        return Ok(default);
    };
    let pixels = integer(field, value)?;
    if pixels < i128::from(SIDE_MULTIPLE) {
        let message = format!(
            "{field} must be at least {SIDE_MULTIPLE} (got {})",
            describe(value)
        );
        return Err(ContractError::new(ContractCode::OutOfRange, field, message));
    }
    if pixels % i128::from(SIDE_MULTIPLE) != 0 {
        let message = format!(
            "{field} must be a multiple of {SIDE_MULTIPLE} (got {})",
            describe(value)
        );
        return Err(ContractError::new(
            ContractCode::InvalidValue,
            field,
            message,
        ));
    }
    u32::try_from(pixels)
        .ok()
        .filter(|pixels| *pixels <= MAX_LONG_SIDE)
        .ok_or_else(|| {
            let message = format!(
                "{field} must be at most {MAX_LONG_SIDE} (got {})",
                describe(value)
            );
            ContractError::new(ContractCode::OutOfRange, field, message)
        })
}

/// The "768p" rule: each side is already at most the long-side limit, so only the shorter
/// side is left to check.
fn check_resolution(width: u32, height: u32) -> Result<(), ContractError> {
    let (field, short) = if width < height {
        ("width", width)
    } else {
        ("height", height)
    };
    if short > MAX_SHORT_SIDE {
        let message = format!(
            "the shorter side ({field}) must be at most {MAX_SHORT_SIDE} pixels, as videos are \
             limited to 768p (got {width}x{height})"
        );
        return Err(ContractError::new(ContractCode::OutOfRange, field, message));
    }
    Ok(())
}

fn bounded(
    object: &Object,
    field: &str,
    default: u32,
    (min, max): (u32, u32),
) -> Result<u32, ContractError> {
    optional(object, field).map_or(Ok(default), |value| integer_in(field, value, min, max))
}

fn frames(object: &Object, fps: u32, default: u32) -> Result<u32, ContractError> {
    let limit = MAX_VIDEO_SECONDS * fps;
    match (
        optional(object, "num_frames"),
        optional(object, "duration_s"),
    ) {
        (Some(_), Some(_)) => Err(ContractError::new(
            ContractCode::ConflictingFields,
            "duration_s",
            "give either num_frames or duration_s, not both",
        )),
        (Some(value), None) => {
            let count = integer("num_frames", value)?;
            if count < 1 {
                let message = format!("num_frames must be at least 1 (got {})", describe(value));
                return Err(ContractError::new(
                    ContractCode::OutOfRange,
                    "num_frames",
                    message,
                ));
            }
            if (count - 1) % i128::from(FRAME_GROUP) != 0 {
                let message = format!(
                    "num_frames must be of the form 6k+1 (1, 7, 13, ..., 163, ...) (got {})",
                    describe(value)
                );
                return Err(ContractError::new(
                    ContractCode::InvalidValue,
                    "num_frames",
                    message,
                ));
            }
            u32::try_from(count)
                .ok()
                .filter(|count| *count <= limit)
                .ok_or_else(|| {
                    let message = format!(
                    "num_frames must fit in {MAX_VIDEO_SECONDS} s of video ({} frames at {fps} fps \
                     last {:.2} s)",
                    describe(value),
                    count as f64 / f64::from(fps)
                );
                    ContractError::new(ContractCode::OutOfRange, "num_frames", message)
                })
        }
        (None, Some(value)) => {
            let seconds = number("duration_s", value)?;
            if seconds <= 0.0 || seconds > f64::from(MAX_VIDEO_SECONDS) {
                let message = format!(
                    "duration_s must be greater than 0 and at most {MAX_VIDEO_SECONDS} s (got {})",
                    describe(value)
                );
                return Err(ContractError::new(
                    ContractCode::OutOfRange,
                    "duration_s",
                    message,
                ));
            }
            Ok(frames_for_duration(seconds, fps))
        }
        (None, None) if default > limit => {
            let message = format!(
                "the default of {default} frames at {fps} fps lasts {:.2} s, over the \
                 {MAX_VIDEO_SECONDS} s limit: set num_frames or duration_s",
                f64::from(default) / f64::from(fps)
            );
            Err(ContractError::new(
                ContractCode::OutOfRange,
                "num_frames",
                message,
            ))
        }
        (None, None) => Ok(default),
    }
}

/// The 6k+1 frame count nearest to `seconds * fps` (halves round up), at least 1, and never
/// past the length limit, so that `duration_s` of exactly 10 s is accepted.
pub fn frames_for_duration(seconds: f64, fps: u32) -> u32 {
    let group = f64::from(FRAME_GROUP);
    let groups = ((seconds * f64::from(fps) - 1.0) / group).round().max(0.0);
    // `groups` is at most (10 s * 60 fps) / 6 = 100 here, so the cast is exact.
    let nearest = groups as u32 * FRAME_GROUP + 1;
    nearest.min(max_frames(fps))
}

/// The largest 6k+1 frame count that fits in the length limit.
pub const fn max_frames(fps: u32) -> u32 {
    (MAX_VIDEO_SECONDS * fps - 1) / FRAME_GROUP * FRAME_GROUP + 1
}

fn guidance_scale(object: &Object, default: f64) -> Result<f64, ContractError> {
    let Some(value) = optional(object, "guidance_scale") else {
        return Ok(default);
    };
    let scale = number("guidance_scale", value)?;
    if !(0.0..=MAX_GUIDANCE_SCALE).contains(&scale) {
        let message = format!(
            "guidance_scale must be between 0 and {MAX_GUIDANCE_SCALE} (got {})",
            describe(value)
        );
        return Err(ContractError::new(
            ContractCode::OutOfRange,
            "guidance_scale",
            message,
        ));
    }
    // -0.0 passes the range check; adding 0.0 makes it 0.0, so that equal requests
    // serialise (and hash) the same.
    Ok(scale + 0.0)
}
