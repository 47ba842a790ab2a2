//! The estimator: VRAM and seconds of one request on one GPU, from a small model whose every
//! constant is written down here and in docs/estimator.md with its source (the figures
//! themselves live in BENCHMARKS.md). Constants marked ASSUMPTION or DERIVED are to be
//! replaced by measurements (`bench/gpu_mochi.py`) on that GPU. This is the seed of infer's
//! ETA: `t2v/eta.py` learns each phase's real pace on the machine from it.
//!
//! ```text
//! latent frames  = (num_frames - 1) / 6 + 1            (VAE: 6x in time)
//! visual tokens  N = latent frames x H/16 x W/16        (VAE: 8x in space, 2x2 patches)
//! passes         = 2 if guidance_scale > 1 else 1      (classifier-free guidance, as diffusers)
//! step FLOPs     = passes x (2 N P_visual + 2 L P_text + 4 layers (N + L)^2 D)
//! seconds/step   = step FLOPs / (peak x MFU) + step overhead
//! seconds        = steps x seconds/step + VAE decode + MP4 encode + fixed
//! VRAM           = weights + max(denoise activations, VAE decode working set) + runtime reserve
//! ```

mod python;
#[cfg(test)]
mod tests;

pub use python::register;

use crate::contract::{JobParams, FRAME_GROUP};

/// Mochi's VAE compresses 8x in space and the transformer patches 2x2: 16 pixels a token side.
const PIXELS_PER_TOKEN_SIDE: u32 = 16;

/// A model's shape, as far as cost goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    pub name: &'static str,
    /// Transformer blocks.
    pub layers: f64,
    /// Width D of the visual stream (heads x head dim).
    pub width: f64,
    /// Weights a visual token passes through per block set: layers x (4 D^2 + 3 D F).
    pub visual_params_per_token: f64,
    /// Weights a text token passes through: layers x (3 C D + D C + 3 C Fc).
    pub text_params_per_token: f64,
    /// Text tokens in the joint attention (the pipeline's max_sequence_length; an upper bound).
    pub text_tokens: f64,
    /// Every weight the pipeline holds: transformer + text encoder + VAE.
    pub total_params: f64,
    /// Values alive per visual token per pass during a block: 6 D + 3 F.
    pub activation_values_per_token: f64,
    /// VAE decode FLOPs per output pixel (per frame).
    pub vae_flops_per_pixel: f64,
    /// Channels of the VAE decoder's full-resolution stage.
    pub vae_full_res_channels: f64,
}

/// A machine the model runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gpu {
    pub name: &'static str,
    /// Dense peak for the dtype the model runs in, FLOP/s.
    pub peak_flops: f64,
    /// Model FLOPs utilisation reached by the transformer and the VAE.
    pub mfu: f64,
    pub memory_bytes: f64,
    /// Bytes per weight and activation value (bf16 on GPUs, float32 on CPU).
    pub bytes_per_value: f64,
    /// Per-step cost beyond the FLOPs (scheduler, Python, kernel launches), seconds.
    pub step_overhead_s: f64,
    /// Once per request: text encoding and pipeline set-up, seconds.
    pub fixed_s: f64,
    /// VAE tile side in pixels (`None`: untiled), and the FLOPs factor tile overlap costs.
    pub vae_tile: Option<f64>,
    pub vae_tile_overlap: f64,
    /// rust_infer's MP4 encode, seconds per pixel (per frame).
    pub encode_s_per_pixel: f64,
    /// Memory the runtime keeps for itself (CUDA context, allocator slack), bytes.
    pub reserve_bytes: f64,
}

const MOCHI_LAYERS: f64 = 48.0;
const MOCHI_D: f64 = 3072.0;
const MOCHI_F: f64 = 8192.0;
const MOCHI_C: f64 = 1536.0;
const MOCHI_FC: f64 = 4096.0;

/// Genmo Mochi-1 (diffusers' `MochiTransformer3DModel` defaults: 48 layers, 24 heads x 128,
/// text stream 1536; SwiGLU inner width 8/3 of the stream width).
pub const MOCHI_1: Model = Model {
    name: "mochi-1",
    layers: MOCHI_LAYERS,
    width: MOCHI_D,
    visual_params_per_token: MOCHI_LAYERS * (4.0 * MOCHI_D * MOCHI_D + 3.0 * MOCHI_D * MOCHI_F),
    text_params_per_token: MOCHI_LAYERS
        * (3.0 * MOCHI_C * MOCHI_D + MOCHI_D * MOCHI_C + 3.0 * MOCHI_C * MOCHI_FC),
    text_tokens: 256.0,
    // Counted from diffusers' configs on the meta device: transformer 10,027,677,744,
    // T5 v1.1 XXL encoder 4,762,310,656, VAE (encoder + decoder) 459,748,611.
    total_params: 15_249_737_011.0,
    activation_values_per_token: 6.0 * MOCHI_D + 3.0 * MOCHI_F,
    // Derived from the decoder's widths (768/512/256/128 channels, 3x3x3 convolutions, 18/8/6/6
    // convolutions at 1/384, 1/32, 1/4 and 1/1 of the output pixels): about 1.6e7.
    vae_flops_per_pixel: 1.6e7,
    vae_full_res_channels: 128.0,
};

const TINY_LAYERS: f64 = 3.0;
const TINY_D: f64 = 32.0;
const TINY_F: f64 = 85.0;
const TINY_C: f64 = 16.0;
const TINY_FC: f64 = 42.0;

/// The tiny random Mochi of `t2v/model/tiny.py` (3 layers, 2 heads x 16, text stream 16).
pub const TINY: Model = Model {
    name: "tiny",
    layers: TINY_LAYERS,
    width: TINY_D,
    visual_params_per_token: TINY_LAYERS * (4.0 * TINY_D * TINY_D + 3.0 * TINY_D * TINY_F),
    text_params_per_token: TINY_LAYERS
        * (3.0 * TINY_C * TINY_D + TINY_D * TINY_C + 3.0 * TINY_C * TINY_FC),
    text_tokens: 256.0,
    // Counted from the built model: transformer 53,072, VAE 606,755, text encoder 31,616.
    total_params: 691_443.0,
    activation_values_per_token: 6.0 * TINY_D + 3.0 * TINY_F,
    // CALIBRATED on cpu-tiny (effective, not a FLOP count: fitted to the measured decode time).
    vae_flops_per_pixel: 4.7e3,
    vae_full_res_channels: 32.0,
};

/// 1 GiB.
const GIB: f64 = 1_073_741_824.0;
/// rust_infer's encode, MEASURED on the 2-core machine (docs/estimator.md, docs/video.md).
const ENCODE_S_PER_PIXEL: f64 = 3.4 / (163.0 * 480.0 * 848.0);

/// H200: dense bf16 peak from NVIDIA's data sheet; memory from nvidia-smi.
pub const H200: Gpu = Gpu {
    name: "h200",
    peak_flops: 989e12,
    // MEASURED by bench/gpu_mochi.py at full size with infer's default on CUDA (each block
    // compiled); plain diffusers reaches less (BENCHMARKS.md, docs/estimator.md).
    mfu: 0.556,
    memory_bytes: 143_771.0 * 1_048_576.0,
    bytes_per_value: 2.0,
    // ASSUMPTION: scheduler and launch overhead per step.
    step_overhead_s: 0.02,
    // ASSUMPTION: T5-XXL encoding (two prompts) and pipeline set-up.
    fixed_s: 1.0,
    // diffusers' Mochi VAE tiling: 256-pixel tiles every 192 pixels, (256 / 192)^2 the work.
    vae_tile: Some(256.0),
    vae_tile_overlap: (256.0 / 192.0) * (256.0 / 192.0),
    encode_s_per_pixel: ENCODE_S_PER_PIXEL,
    // ASSUMPTION: the CUDA context and allocator slack.
    reserve_bytes: GIB,
};

/// H100 SXM: the H200's dense bf16 peak with less memory (nvidia-smi). DERIVED: its MFU is
/// the H200's until bench/gpu_mochi.py measures it on an H100 (less memory bandwidth may
/// make it lower).
pub const H100: Gpu = Gpu {
    name: "h100",
    memory_bytes: 81_559.0 * 1_048_576.0,
    ..H200
};

/// The tiny model on the 2-core development CPU, float32. CALIBRATED from two runs on a quiet
/// machine and their split into per-step and per-video time (docs/estimator.md).
pub const CPU_TINY: Gpu = Gpu {
    name: "cpu-tiny",
    // Effective rate with mfu 1: fitted, not the CPU's peak.
    peak_flops: 4.95e9,
    mfu: 1.0,
    // The development machine's RAM (free -b).
    memory_bytes: 25_276_059_648.0,
    bytes_per_value: 4.0,
    step_overhead_s: 0.099,
    fixed_s: 0.0,
    vae_tile: None,
    vae_tile_overlap: 1.0,
    encode_s_per_pixel: ENCODE_S_PER_PIXEL,
    reserve_bytes: 0.0,
};

pub const MODELS: [Model; 2] = [MOCHI_1, TINY];
pub const GPUS: [Gpu; 3] = [H100, H200, CPU_TINY];

/// What one request costs on one GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub vram_bytes: u64,
    pub seconds: f64,
    pub seconds_per_step: f64,
    /// The parts of `seconds` after and before the steps: VAE decode, MP4 encode, set-up.
    pub decode_seconds: f64,
    pub encode_seconds: f64,
    pub fixed_seconds: f64,
    pub visual_tokens: u64,
    pub gpu_memory_bytes: u64,
}

pub fn visual_tokens(params: &JobParams) -> u64 {
    let latent_frames = u64::from((params.num_frames.saturating_sub(1)) / FRAME_GROUP + 1);
    let rows = u64::from(params.height / PIXELS_PER_TOKEN_SIDE);
    let columns = u64::from(params.width / PIXELS_PER_TOKEN_SIDE);
    latent_frames * rows * columns
}

/// Forward passes per step: diffusers runs classifier-free guidance when the scale is > 1.
pub fn passes(params: &JobParams) -> f64 {
    if params.guidance_scale > 1.0 {
        2.0
    } else {
        1.0
    }
}

/// FLOPs of one denoising step (a multiply-add counts 2).
pub fn step_flops(model: &Model, params: &JobParams) -> f64 {
    let visual = visual_tokens(params) as f64;
    let text = model.text_tokens;
    let sequence = visual + text;
    let per_pass = 2.0 * visual * model.visual_params_per_token
        + 2.0 * text * model.text_params_per_token
        + 4.0 * model.layers * sequence * sequence * model.width;
    passes(params) * per_pass
}

pub fn estimate(model: &Model, gpu: &Gpu, params: &JobParams) -> Estimate {
    let rate = gpu.peak_flops * gpu.mfu;
    let pixels = f64::from(params.num_frames) * f64::from(params.height) * f64::from(params.width);
    let seconds_per_step = step_flops(model, params) / rate + gpu.step_overhead_s;
    let decode_s = model.vae_flops_per_pixel * gpu.vae_tile_overlap * pixels / rate;
    let encode_s = gpu.encode_s_per_pixel * pixels;
    let seconds = f64::from(params.num_inference_steps) * seconds_per_step
        + decode_s
        + encode_s
        + gpu.fixed_s;

    let weights = model.total_params * gpu.bytes_per_value;
    let tokens = visual_tokens(params) as f64 + model.text_tokens;
    let denoise = passes(params) * tokens * model.activation_values_per_token * gpu.bytes_per_value;
    let tile_side = |side: u32| {
        gpu.vae_tile
            .map_or(f64::from(side), |tile| tile.min(f64::from(side)))
    };
    // Four tensors of the full-resolution stage alive at once (input, output, residual, the
    // causal convolution's padded copy), over every frame of one tile.
    let decode = 4.0
        * model.vae_full_res_channels
        * tile_side(params.height)
        * tile_side(params.width)
        * f64::from(params.num_frames)
        * gpu.bytes_per_value;
    let vram = weights + denoise.max(decode) + gpu.reserve_bytes;
    Estimate {
        // Float to integer casts saturate; these values are far below u64::MAX.
        vram_bytes: vram.ceil() as u64,
        seconds,
        seconds_per_step,
        decode_seconds: decode_s,
        encode_seconds: encode_s,
        fixed_seconds: gpu.fixed_s,
        visual_tokens: visual_tokens(params),
        gpu_memory_bytes: gpu.memory_bytes as u64,
    }
}

pub fn model_named(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|model| model.name == name)
}

pub fn gpu_named(name: &str) -> Option<&'static Gpu> {
    GPUS.iter().find(|gpu| gpu.name == name)
}
