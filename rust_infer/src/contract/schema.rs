//! The contract as a JSON Schema (draft 2020-12), for other systems that build requests
//! (`t2v/schemas/job.submit.v1.json` is written from it by `scripts/write_schemas.py`).
//!
//! Generated from what [`normalize_object`](super::normalize_object) checks: the same
//! constants, the same character predicates, and, where a rule spans fields (the 768p rule,
//! the 10 s limit), the profile's defaults for the fields a request leaves out. A request is
//! valid under the schema exactly when `normalize` accepts it (tests/test_request_schema.py
//! generates requests to show it); the schema says only whether, `normalize` says why.

use serde_json::{json, Map, Value};

use super::fields::is_forbidden_control;
use super::webhook::{is_forbidden_in_url, HOST_END, SCHEMES};
use super::{
    max_frames, Profile, DEFAULT_WEBHOOK_EVENTS, FIELDS, FRAME_GROUP, MAX_FPS, MAX_GUIDANCE_SCALE,
    MAX_INFERENCE_STEPS, MAX_LONG_SIDE, MAX_PROMPT_CHARS, MAX_SHORT_SIDE, MAX_VIDEO_SECONDS,
    MAX_WEBHOOK_CHARS, MIN_INFERENCE_STEPS, SIDE_MULTIPLE, WEBHOOK_EVENTS,
};

/// The schema of a request body under `profile`'s defaults.
pub fn request_schema(profile: Profile) -> Value {
    let defaults = profile.defaults();
    let no_controls = format!("^[^{}]*$", char_class(is_forbidden_control));
    let not_blank = format!("[^{}]", char_class(char::is_whitespace));
    let side = |default: u32| {
        json!({
            "type": ["integer", "null"], "minimum": SIDE_MULTIPLE, "maximum": MAX_LONG_SIDE,
            "multipleOf": SIDE_MULTIPLE, "default": default,
        })
    };
    let frame_counts: Vec<Value> = std::iter::once(Value::Null)
        .chain(
            (1..=max_frames(MAX_FPS))
                .step_by(FRAME_GROUP as usize)
                .map(Value::from),
        )
        .collect();
    let properties = json!({
        "prompt": {
            "type": "string", "maxLength": MAX_PROMPT_CHARS,
            "allOf": [{"pattern": no_controls}, {"pattern": not_blank}],
            "description": "not blank; no control characters but newline and tab",
        },
        "negative_prompt": {
            "type": ["string", "null"], "maxLength": MAX_PROMPT_CHARS, "pattern": no_controls,
            "default": defaults.negative_prompt,
        },
        "width": side(defaults.width),
        "height": side(defaults.height),
        "fps": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_FPS, "default": defaults.fps},
        "num_frames": {
            "type": ["integer", "null"], "enum": frame_counts, "default": defaults.num_frames,
            "description": format!(
                "{FRAME_GROUP}k+1 frames, at most {MAX_VIDEO_SECONDS} s at the request's fps"
            ),
        },
        "duration_s": {
            "type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_VIDEO_SECONDS,
            "description": format!(
                "seconds; becomes the nearest {FRAME_GROUP}k+1 frame count (instead of num_frames)"
            ),
        },
        "num_inference_steps": {
            "type": ["integer", "null"], "minimum": MIN_INFERENCE_STEPS,
            "maximum": MAX_INFERENCE_STEPS, "default": defaults.num_inference_steps,
        },
        "guidance_scale": {
            "type": ["number", "null"], "minimum": 0, "maximum": MAX_GUIDANCE_SCALE,
            "default": defaults.guidance_scale,
        },
        "seed": {
            "type": ["integer", "null"], "minimum": 0, "maximum": u32::MAX,
            "description": "a fresh random seed when absent",
        },
        "webhook": {
            "type": ["string", "null"], "maxLength": MAX_WEBHOOK_CHARS, "format": "uri",
            "pattern": webhook_pattern(),
            "description": "told about the job's events (Standard Webhooks); https, and not \
                            to a private address, unless the server allows it",
        },
        "webhook_events": {
            "type": ["array", "null"], "minItems": 1, "uniqueItems": true,
            "items": {"enum": WEBHOOK_EVENTS}, "default": DEFAULT_WEBHOOK_EVENTS,
            "description": "which events go to the webhook (only with a webhook)",
        },
    });
    debug_assert_eq!(properties.as_object().map(Map::len), Some(FIELDS.len()));
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": false,
        "properties": properties,
        "allOf": cross_field_rules(profile),
    })
}

/// The rules over more than one field, in the contract's order.
fn cross_field_rules(profile: Profile) -> Vec<Value> {
    let defaults = profile.defaults();
    let over_short_side = |field, default| {
        let limit = json!({"type": "number", "exclusiveMinimum": MAX_SHORT_SIDE});
        effective(field, default > MAX_SHORT_SIDE, limit)
    };
    let mut rules = vec![
        json!({
            "description": format!("the shorter side is at most {MAX_SHORT_SIDE} (768p)"),
            "not": {"allOf": [
                over_short_side("width", defaults.width),
                over_short_side("height", defaults.height),
            ]},
        }),
        json!({
            "description": "num_frames or duration_s, not both",
            "not": {"allOf": [given("num_frames"), given("duration_s")]},
        }),
        json!({
            "description": "webhook_events only with a webhook",
            "if": given("webhook_events"),
            "then": given("webhook"),
        }),
    ];
    let fps_is = |fps: u32| effective("fps", fps == defaults.fps, json!({"const": fps}));
    // The largest allowed frame count is under every fps's limit from MAX_FPS on.
    for fps in (1..=MAX_FPS).filter(|fps| max_frames(*fps) < max_frames(MAX_FPS)) {
        let limit = MAX_VIDEO_SECONDS * fps;
        rules.push(json!({
            "if": fps_is(fps),
            "then": {"properties": {"num_frames": {"maximum": limit}}},
        }));
    }
    let too_slow_for_default: Vec<u32> = (1..=MAX_FPS)
        .filter(|fps| defaults.num_frames > MAX_VIDEO_SECONDS * fps)
        .collect();
    if !too_slow_for_default.is_empty() {
        let slow = too_slow_for_default.contains(&defaults.fps);
        rules.push(json!({
            "description": format!(
                "the default {} frames last over {MAX_VIDEO_SECONDS} s at these fps: \
                 give num_frames or duration_s",
                defaults.num_frames
            ),
            "if": effective("fps", slow, json!({"enum": too_slow_for_default})),
            "then": {"anyOf": [given("num_frames"), given("duration_s")]},
        }));
    }
    rules
}

/// An `http(s)://` URL with a host and no whitespace or control characters.
fn webhook_pattern() -> String {
    let schemes: Vec<&str> = SCHEMES
        .iter()
        .map(|scheme| scheme.trim_end_matches("://"))
        .collect();
    let forbidden = char_class(is_forbidden_in_url);
    let host_end: String = HOST_END.iter().collect();
    format!(
        "^({})://[^{host_end}{forbidden}][^{forbidden}]*$",
        schemes.join("|")
    )
}

/// "`field`, or its default when absent or null, matches `condition`" (which must refuse
/// null), where `default_matches` says whether the default does.
fn effective(field: &str, default_matches: bool, condition: Value) -> Value {
    if default_matches {
        json!({"properties": {field: {"anyOf": [{"type": "null"}, condition]}}})
    } else {
        json!({"required": [field], "properties": {field: condition}})
    }
}

/// "`field` is present and not null" (null counts as absent).
fn given(field: &str) -> Value {
    json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}})
}

/// A regular-expression character class (without the brackets) of the characters in the
/// Basic Multilingual Plane for which `member` holds, as `\uXXXX` escapes, which Python's
/// `re` and ECMA-262 read alike. The classes used here have no member above it (a test
/// checks).
fn char_class(member: impl Fn(char) -> bool) -> String {
    let mut class = String::new();
    let mut run: Option<(u32, u32)> = None;
    let close = |class: &mut String, (first, last): (u32, u32)| {
        class.push_str(&format!("\\u{first:04X}"));
        if last > first {
            class.push_str(&format!("-\\u{last:04X}"));
        }
    };
    for code in 0..=0xFFFF_u32 {
        let inside = char::from_u32(code).is_some_and(&member);
        run = match (run, inside) {
            (Some((first, last)), true) if last + 1 == code => Some((first, code)),
            (Some(done), true) => {
                close(&mut class, done);
                Some((code, code))
            }
            (None, true) => Some((code, code)),
            (Some(done), false) => {
                close(&mut class, done);
                None
            }
            (None, false) => None,
        };
    }
    if let Some(done) = run {
        close(&mut class, done);
    }
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_classes_cover_the_predicates() {
        assert_eq!(
            char_class(is_forbidden_control),
            "\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F"
        );
        assert!(char_class(char::is_whitespace).starts_with("\\u0009-\\u000D\\u0020\\u0085"));
        let above_bmp = (0x1_0000..=0x10_FFFF_u32)
            .filter_map(char::from_u32)
            .any(|c| c.is_whitespace() || is_forbidden_control(c));
        assert!(!above_bmp, "char_class would miss a member above the BMP");
    }

    #[test]
    fn frame_counts_are_the_6k_plus_1_up_to_the_longest_video() {
        let schema = request_schema(Profile::Mochi1);
        let counts = schema["properties"]["num_frames"]["enum"]
            .as_array()
            .unwrap();
        assert_eq!(counts[..3], [Value::Null, json!(1), json!(7)]);
        assert_eq!(counts.last(), Some(&json!(595)));
    }

    #[test]
    fn only_a_profile_whose_default_overflows_slow_fps_needs_the_default_rule() {
        let described = |profile| {
            cross_field_rules(profile)
                .iter()
                .filter(|rule| rule.get("description").is_some())
                .count()
        };
        // Mochi-1's 163 frames overflow 10 s below 17 fps; tiny's 19 frames only at 1 fps.
        assert_eq!(described(Profile::Mochi1), 4);
        assert_eq!(described(Profile::Tiny), 4);
        let schema = request_schema(Profile::Mochi1);
        let rule = schema["allOf"].as_array().unwrap().last().unwrap().clone();
        let slow = &rule["if"]["properties"]["fps"]["enum"];
        assert_eq!(slow.as_array().map(Vec::len), Some(16));
    }
}
