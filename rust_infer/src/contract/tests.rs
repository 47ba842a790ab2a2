use serde_json::{json, Value};

use super::*;

const SEED: u32 = 1234;

fn run(body: &Value, profile: Profile) -> Result<JobParams, ContractError> {
    normalize_with_webhook(body.to_string().as_bytes(), profile, SEED).map(|(params, _)| params)
}

fn ok(body: Value) -> JobParams {
    run(&body, Profile::Mochi1).unwrap()
}

fn err(body: Value) -> ContractError {
    run(&body, Profile::Mochi1).unwrap_err()
}

fn code_and_field(body: Value) -> (ContractCode, Option<String>) {
    let error = err(body);
    (error.code, error.field)
}

fn field(name: &str) -> Option<String> {
    Some(name.to_owned())
}

#[test]
fn defaults_fill_every_optional_field() {
    let params = ok(json!({"prompt": "a cat"}));
    assert_eq!(
        params,
        JobParams {
            prompt: "a cat".to_owned(),
            negative_prompt: String::new(),
            num_frames: 163,
            width: 848,
            height: 480,
            fps: 30,
            num_inference_steps: 64,
            guidance_scale: 4.5,
            seed: SEED,
        }
    );
    let tiny = run(&json!({"prompt": "a cat"}), Profile::Tiny).unwrap();
    assert_eq!(
        (
            tiny.width,
            tiny.height,
            tiny.num_frames,
            tiny.num_inference_steps
        ),
        (224, 128, 19, 8)
    );
}

#[test]
fn the_body_must_be_a_utf8_json_object() {
    for body in [
        &b"\xff{}"[..],
        b"not json",
        b"[1, 2]",
        b"\"prompt\"",
        b"",
        b"{\"prompt\": \"a\"} x",
    ] {
        let error = normalize_with_webhook(body, Profile::Mochi1, SEED).unwrap_err();
        assert_eq!(error.code, ContractCode::InvalidJson, "{body:?}");
        assert_eq!(error.field, None);
    }
    let error = normalize_with_webhook(b"[]", Profile::Mochi1, SEED).unwrap_err();
    assert_eq!(
        error.message,
        "request body must be a JSON object (got an array)"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let body = format!(
        "{{\"prompt\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let error = normalize_with_webhook(body.as_bytes(), Profile::Mochi1, SEED).unwrap_err();
    assert_eq!(error.code, ContractCode::InvalidJson);
}

#[test]
fn unknown_fields_are_rejected_alphabetically_first() {
    let error = err(json!({"prompt": "a", "zeta": 1, "alpha": 2}));
    assert_eq!(
        (error.code, error.field),
        (ContractCode::UnknownField, field("alpha"))
    );
    assert!(
        error.message.starts_with("unknown field \"alpha\""),
        "{}",
        error.message
    );
}

#[test]
fn prompt_rules() {
    assert_eq!(
        code_and_field(json!({})),
        (ContractCode::MissingField, field("prompt"))
    );
    assert_eq!(
        code_and_field(json!({"prompt": null})),
        (ContractCode::MissingField, field("prompt"))
    );
    assert_eq!(
        code_and_field(json!({"prompt": 5})),
        (ContractCode::InvalidType, field("prompt"))
    );
    assert_eq!(
        code_and_field(json!({"prompt": " \n\t "})),
        (ContractCode::Empty, field("prompt"))
    );
    let long = "é".repeat(2001);
    assert_eq!(
        code_and_field(json!({"prompt": long})),
        (ContractCode::TooLong, field("prompt"))
    );
    assert_eq!(
        ok(json!({"prompt": "é".repeat(2000)}))
            .prompt
            .chars()
            .count(),
        2000
    );
    assert_eq!(
        code_and_field(json!({"prompt": "a\u{0}"})),
        (ContractCode::ControlCharacter, field("prompt"))
    );
    assert_eq!(
        ok(json!({"prompt": "  two\n\tlines  "})).prompt,
        "  two\n\tlines  "
    );
}

#[test]
fn negative_prompt_may_be_empty_but_follows_the_text_rules() {
    assert_eq!(
        ok(json!({"prompt": "a", "negative_prompt": ""})).negative_prompt,
        ""
    );
    assert_eq!(
        ok(json!({"prompt": "a", "negative_prompt": "blur"})).negative_prompt,
        "blur"
    );
    let cases = [
        (json!(1), ContractCode::InvalidType),
        (json!("x".repeat(2001)), ContractCode::TooLong),
        (json!("a\u{7f}"), ContractCode::ControlCharacter),
    ];
    for (value, code) in cases {
        let got = code_and_field(json!({"prompt": "a", "negative_prompt": value}));
        assert_eq!(got, (code, field("negative_prompt")));
    }
}

#[test]
fn sides_are_multiples_of_16_within_768p() {
    assert_eq!(
        code_and_field(json!({"prompt": "a", "width": 100})),
        (ContractCode::InvalidValue, field("width"))
    );
    assert_eq!(
        code_and_field(json!({"prompt": "a", "height": 0})),
        (ContractCode::OutOfRange, field("height"))
    );
    assert_eq!(
        code_and_field(json!({"prompt": "a", "width": "848"})),
        (ContractCode::InvalidType, field("width"))
    );
    assert_eq!(
        err(json!({"prompt": "a", "width": 100})).message,
        "width must be a multiple of 16 (got 100)"
    );
    let params = ok(json!({"prompt": "a", "width": 1360, "height": 768}));
    assert_eq!((params.width, params.height), (1360, 768));
    let portrait = ok(json!({"prompt": "a", "width": 768, "height": 1360}));
    assert_eq!((portrait.width, portrait.height), (768, 1360));
    assert_eq!(
        code_and_field(json!({"prompt": "a", "width": 1376})),
        (ContractCode::OutOfRange, field("width"))
    );
    let square = json!({"prompt": "a", "width": 784, "height": 784});
    assert_eq!(
        code_and_field(square),
        (ContractCode::OutOfRange, field("height"))
    );
    let tall = json!({"prompt": "a", "width": 784, "height": 1024});
    assert_eq!(
        code_and_field(tall),
        (ContractCode::OutOfRange, field("width"))
    );
    assert_eq!(ok(json!({"prompt": "a", "width": 64.0})).width, 64);
}

#[test]
fn frames_are_6k_plus_1_and_at_most_10_seconds() {
    assert_eq!(ok(json!({"prompt": "a", "num_frames": 1})).num_frames, 1);
    assert_eq!(
        ok(json!({"prompt": "a", "num_frames": 295})).num_frames,
        295
    );
    let cases = [
        (json!(0), ContractCode::OutOfRange),
        (json!(-5), ContractCode::OutOfRange),
        (json!(20), ContractCode::InvalidValue),
        (json!(301), ContractCode::OutOfRange),
        (json!(7.5), ContractCode::InvalidType),
        (json!(true), ContractCode::InvalidType),
    ];
    for (value, code) in cases {
        let got = code_and_field(json!({"prompt": "a", "num_frames": value}));
        assert_eq!(got, (code, field("num_frames")));
    }
    // 595 frames is 9.9 s at 60 fps but 19.8 s at 30 fps.
    assert_eq!(
        ok(json!({"prompt": "a", "num_frames": 595, "fps": 60})).num_frames,
        595
    );
    let error = err(json!({"prompt": "a", "fps": 8}));
    assert_eq!(
        (error.code, error.field),
        (ContractCode::OutOfRange, field("num_frames"))
    );
}

#[test]
fn duration_becomes_the_nearest_6k_plus_1_frame_count() {
    let frames = |seconds: f64, fps: u32| {
        ok(json!({"prompt": "a", "duration_s": seconds, "fps": fps})).num_frames
    };
    assert_eq!(frames(5.4, 30), 163);
    assert_eq!(frames(1.0, 30), 31);
    assert_eq!(frames(0.01, 30), 1);
    assert_eq!(
        frames(10.0, 30),
        295,
        "clamped into the limit, not rounded past it"
    );
    assert_eq!(frames(10.0, 60), 595);
    assert_eq!(frames(2.0, 24), 49);
    assert_eq!(max_frames(1), 7);
    let cases = [json!(0), json!(-1), json!(10.01)];
    for value in cases {
        let got = code_and_field(json!({"prompt": "a", "duration_s": value}));
        assert_eq!(got, (ContractCode::OutOfRange, field("duration_s")));
    }
    let got = code_and_field(json!({"prompt": "a", "duration_s": "2"}));
    assert_eq!(got, (ContractCode::InvalidType, field("duration_s")));
    let both = json!({"prompt": "a", "duration_s": 2, "num_frames": 49});
    assert_eq!(
        code_and_field(both),
        (ContractCode::ConflictingFields, field("duration_s"))
    );
}

#[test]
fn scalar_ranges() {
    let cases = [
        ("fps", json!(0), ContractCode::OutOfRange),
        ("fps", json!(61), ContractCode::OutOfRange),
        ("num_inference_steps", json!(0), ContractCode::OutOfRange),
        ("num_inference_steps", json!(1), ContractCode::OutOfRange),
        ("num_inference_steps", json!(201), ContractCode::OutOfRange),
        ("guidance_scale", json!(-0.5), ContractCode::OutOfRange),
        ("guidance_scale", json!(20.5), ContractCode::OutOfRange),
        ("guidance_scale", json!(true), ContractCode::InvalidType),
        ("seed", json!(-1), ContractCode::OutOfRange),
        ("seed", json!(4_294_967_296_u64), ContractCode::OutOfRange),
        ("seed", json!(1.5), ContractCode::InvalidType),
    ];
    for (name, value, code) in cases {
        let mut body = json!({"prompt": "a"});
        body[name] = value;
        assert_eq!(code_and_field(body), (code, field(name)), "{name}");
    }
    let params = ok(
        json!({"prompt": "a", "fps": 60, "num_inference_steps": 200, "guidance_scale": 0, "seed": 4_294_967_295_u32}),
    );
    assert_eq!(
        (
            params.fps,
            params.num_inference_steps,
            params.guidance_scale,
            params.seed
        ),
        (60, 200, 0.0, u32::MAX)
    );
}

#[test]
fn an_absent_or_null_seed_uses_the_fresh_one() {
    assert_eq!(ok(json!({"prompt": "a", "seed": null})).seed, SEED);
    assert_eq!(ok(json!({"prompt": "a", "seed": 0})).seed, 0);
}

#[test]
fn the_first_error_in_the_documented_order_wins() {
    let body = json!({"prompt": "", "width": 100, "fps": 0});
    assert_eq!(code_and_field(body), (ContractCode::Empty, field("prompt")));
    let body = json!({"prompt": "a", "width": 100, "fps": 0, "bogus": 1});
    assert_eq!(
        code_and_field(body),
        (ContractCode::UnknownField, field("bogus"))
    );
    let body = json!({"prompt": "a", "seed": -1, "fps": 0});
    assert_eq!(
        code_and_field(body),
        (ContractCode::OutOfRange, field("fps"))
    );
}

#[test]
fn normalised_params_normalise_to_themselves() {
    let first = ok(
        json!({"prompt": "a", "duration_s": 3.3, "guidance_scale": 7, "width": 1024, "height": 576}),
    );
    let again = json!({
        "prompt": first.prompt, "negative_prompt": first.negative_prompt, "num_frames": first.num_frames,
        "width": first.width, "height": first.height, "fps": first.fps,
        "num_inference_steps": first.num_inference_steps, "guidance_scale": first.guidance_scale,
        "seed": first.seed,
    });
    assert_eq!(run(&again, Profile::Tiny).unwrap(), first);
}
