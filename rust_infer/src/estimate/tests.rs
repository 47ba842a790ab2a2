use super::*;

fn params(num_frames: u32, height: u32, width: u32, steps: u32) -> JobParams {
    JobParams {
        prompt: "a fox".into(),
        negative_prompt: String::new(),
        num_frames,
        width,
        height,
        fps: 30,
        num_inference_steps: steps,
        guidance_scale: 4.5,
        seed: 1,
    }
}

fn full_size() -> JobParams {
    params(163, 480, 848, 64)
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance * expected
}

#[test]
fn visual_tokens_at_full_size() {
    // 28 latent frames x 30 x 53 (the bench's figure for the same size).
    assert_eq!(visual_tokens(&full_size()), 44_520);
}

#[test]
fn step_flops_match_the_bench_formula() {
    // bench/gpu_mochi.py counts 3.33 PFLOP per CFG step at 163 x 480 x 848.
    let flops = step_flops(&MOCHI_1, &full_size());
    assert!(within(flops, 3.33e15, 0.01), "{flops:e}");
}

/// BENCHMARKS.md, "The default video": 163 x 480 x 848, 64 steps, compiled, on an H200.
const MEASURED_DEFAULT_VIDEO_S: f64 = 397.0;

#[test]
fn full_size_on_an_h200_matches_the_measured_default_video() {
    let request = full_size();
    let ideal = 64.0 * step_flops(&MOCHI_1, &request) / H200.peak_flops;
    assert!(within(ideal, 215.0, 0.02), "floor {ideal}");
    let cost = estimate(&MOCHI_1, &H200, &request);
    assert!(
        within(cost.seconds, MEASURED_DEFAULT_VIDEO_S, 0.05),
        "{}",
        cost.seconds
    );
    let parts = 64.0 * cost.seconds_per_step
        + cost.decode_seconds
        + cost.encode_seconds
        + cost.fixed_seconds;
    assert!((parts - cost.seconds).abs() < 1e-9, "the phases add up");
    assert!(cost.vram_bytes < cost.gpu_memory_bytes);
    assert!(
        cost.vram_bytes > 30_000_000_000,
        "weights alone are 30.5 GB"
    );
}

#[test]
fn the_h100_is_derived_from_the_h200() {
    let (h100, h200) = (
        estimate(&MOCHI_1, &H100, &full_size()),
        estimate(&MOCHI_1, &H200, &full_size()),
    );
    assert_eq!(h100.seconds, h200.seconds);
    assert!(h100.gpu_memory_bytes < h200.gpu_memory_bytes);
}

#[test]
fn the_tiny_model_matches_its_calibration_runs() {
    for (request, measured) in [
        (params(19, 128, 224, 8), 1.8),
        (params(31, 240, 432, 4), 9.8),
    ] {
        let seconds = estimate(&TINY, &CPU_TINY, &request).seconds;
        assert!(within(seconds, measured, 0.3), "{seconds} vs {measured}");
    }
}

#[test]
fn guidance_doubles_the_step_cost() {
    let guided = full_size();
    let unguided = JobParams {
        guidance_scale: 1.0,
        ..full_size()
    };
    let ratio = step_flops(&MOCHI_1, &guided) / step_flops(&MOCHI_1, &unguided);
    assert!((ratio - 2.0).abs() < 1e-12);
}

#[test]
fn cost_grows_with_every_dimension() {
    for (model, gpu) in [(&MOCHI_1, &H100), (&TINY, &CPU_TINY)] {
        let base = estimate(model, gpu, &params(19, 128, 224, 8));
        for bigger in [
            params(25, 128, 224, 8),
            params(19, 144, 224, 8),
            params(19, 128, 240, 8),
            params(19, 128, 224, 9),
        ] {
            let cost = estimate(model, gpu, &bigger);
            assert!(cost.seconds > base.seconds);
            assert!(cost.vram_bytes >= base.vram_bytes);
        }
    }
}

#[test]
fn names_are_found() {
    assert_eq!(model_named("mochi-1"), Some(&MOCHI_1));
    assert_eq!(gpu_named("h200").map(|gpu| gpu.name), Some("h200"));
    assert_eq!(gpu_named("a100"), None);
}
