//! Content addresses of videos: the same normalised request on the same model revision is
//! the same video (generation is deterministic for a given seed), so it gets one key.
//!
//! `key = "videos/" + hex(sha256(canonical_json(params) + "\n" + model_revision)) + ".mp4"`,
//! with the canonical form of `contract::canonical_json` (docs/video.md). The canonical JSON
//! never holds a raw newline (JSON escapes it), so the separator cannot be forged by a prompt.

use pyo3::prelude::*;

use crate::contract::{canonical_json, params_from_mapping, JobParams};
use crate::errors::{boundary, Error};
use crate::video::hex_digest;

/// Where content-addressed videos live in the artifact store.
pub const KEY_PREFIX: &str = "videos/";
pub const KEY_SUFFIX: &str = ".mp4";

/// The artifact key of `params` made by `model_revision`.
pub fn artifact_key_for(params: &JobParams, model_revision: &str) -> Result<String, Error> {
    if model_revision.is_empty() {
        // An empty revision would let every model share one cache.
        return Err(Error::InvalidArgument(
            "model_revision must not be empty".to_owned(),
        ));
    }
    let hashed = format!("{}\n{model_revision}", canonical_json(params));
    Ok(format!(
        "{KEY_PREFIX}{}{KEY_SUFFIX}",
        hex_digest(hashed.as_bytes())
    ))
}

/// The content address of a video: `"videos/<64 hex>.mp4"` (see the module documentation).
#[pyfunction]
fn artifact_key(
    py: Python<'_>,
    params: &Bound<'_, PyAny>,
    model_revision: &str,
) -> PyResult<String> {
    boundary(py, || {
        let params = params_from_mapping(params)?;
        artifact_key_for(&params, model_revision)
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(artifact_key, module)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(seed: u32) -> JobParams {
        JobParams {
            prompt: "a red fox in the snow".into(),
            negative_prompt: String::new(),
            num_frames: 163,
            width: 848,
            height: 480,
            fps: 30,
            num_inference_steps: 64,
            guidance_scale: 4.5,
            seed,
        }
    }

    #[test]
    fn golden_key() {
        // Pinned: a change here orphans every stored video, so it must be deliberate.
        let key = artifact_key_for(&params(42), "rev-1").unwrap();
        let hashed = "{\"fps\":30,\"guidance_scale\":4.5,\"height\":480,\
                      \"negative_prompt\":\"\",\"num_frames\":163,\"num_inference_steps\":64,\
                      \"prompt\":\"a red fox in the snow\",\"seed\":42,\"width\":848}\nrev-1";
        assert_eq!(key, format!("videos/{}.mp4", hex_digest(hashed.as_bytes())));
        assert_eq!(key, GOLDEN);
    }

    const GOLDEN: &str =
        "videos/618e3d4f3824d73066055f58a2f96fc0d1c5f2750c258618ee4b6a56bc00514e.mp4";

    #[test]
    fn seed_and_revision_change_the_key() {
        let base = artifact_key_for(&params(1), "r").unwrap();
        assert_ne!(base, artifact_key_for(&params(2), "r").unwrap());
        assert_ne!(base, artifact_key_for(&params(1), "s").unwrap());
        assert_eq!(base.len(), KEY_PREFIX.len() + 64 + KEY_SUFFIX.len());
    }

    #[test]
    fn an_empty_revision_is_refused() {
        assert!(matches!(
            artifact_key_for(&params(1), ""),
            Err(Error::InvalidArgument(_))
        ));
    }
}
