//! Normalised params as other functions take them back (`artifact_key`, `estimate`), and
//! their one canonical serialisation.
//!
//! Normalised params carry every field of [`JobParams`]; `duration_s` never appears (it has
//! become `num_frames`). Validating them runs the whole contract again, so anything
//! `normalize_request` would refuse is refused here too, with the same codes.

use serde_json::{Map, Value};

use super::{normalize_object, JobParams, Object, Profile};
use crate::errors::{ContractCode, ContractError};

/// The fields of normalised params, in [`JobParams`] order.
pub const NORMALISED_FIELDS: [&str; 9] = [
    "prompt",
    "negative_prompt",
    "num_frames",
    "width",
    "height",
    "fps",
    "num_inference_steps",
    "guidance_scale",
    "seed",
];

/// Checks that `object` is a complete, valid set of normalised params and returns them.
/// Every field must be present and not null: a missing one would silently take a profile's
/// default, and two different requests could then share one content address.
pub fn normalised_params(object: &Object) -> Result<JobParams, ContractError> {
    if let Some(missing) = NORMALISED_FIELDS
        .iter()
        .find(|field| object.get(**field).is_none_or(Value::is_null))
    {
        let message = format!(
            "normalised params (normalize_request's result) need every field; {missing} is missing"
        );
        return Err(ContractError::new(
            ContractCode::MissingField,
            missing,
            message,
        ));
    }
    // Every field is present, so neither the profile's defaults nor the fresh seed is used.
    normalize_object(object, Profile::Mochi1, 0)
}

/// The canonical form of normalised params: a JSON object with the nine fields, keys sorted
/// by their bytes, no whitespace, integers in decimal, `guidance_scale` as the shortest
/// decimal that reads back to the same f64 (always with a fraction or exponent: `4.5`,
/// `5.0`, `1e-7`), strings as UTF-8 with only `"`, `\` and control characters escaped.
pub fn canonical_json(params: &JobParams) -> String {
    // serde_json's map is a BTreeMap (no `preserve_order` feature): keys come out sorted.
    let mut map = Map::new();
    map.insert("prompt".into(), Value::from(params.prompt.as_str()));
    map.insert(
        "negative_prompt".into(),
        Value::from(params.negative_prompt.as_str()),
    );
    map.insert("num_frames".into(), Value::from(params.num_frames));
    map.insert("width".into(), Value::from(params.width));
    map.insert("height".into(), Value::from(params.height));
    map.insert("fps".into(), Value::from(params.fps));
    map.insert(
        "num_inference_steps".into(),
        Value::from(params.num_inference_steps),
    );
    map.insert("guidance_scale".into(), Value::from(params.guidance_scale));
    map.insert("seed".into(), Value::from(params.seed));
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Object {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    fn full() -> Value {
        json!({
            "prompt": "a fox", "negative_prompt": "", "num_frames": 163, "width": 848,
            "height": 480, "fps": 30, "num_inference_steps": 64, "guidance_scale": 4.5,
            "seed": 7
        })
    }

    #[test]
    fn complete_params_are_accepted() {
        let params = normalised_params(&object(full())).unwrap();
        assert_eq!(params.seed, 7);
        assert_eq!(params.guidance_scale, 4.5);
    }

    #[test]
    fn every_field_is_required() {
        for field in NORMALISED_FIELDS {
            for absent in [None, Some(Value::Null)] {
                let mut params = object(full());
                params.remove(field);
                if let Some(null) = absent.clone() {
                    params.insert(field.to_owned(), null);
                }
                let error = normalised_params(&params).unwrap_err();
                assert_eq!(error.code, ContractCode::MissingField);
                assert_eq!(error.field.as_deref(), Some(field));
            }
        }
    }

    #[test]
    fn contract_rules_still_apply() {
        let mut params = object(full());
        params.insert("num_frames".into(), json!(8));
        assert_eq!(
            normalised_params(&params).unwrap_err().code,
            ContractCode::InvalidValue
        );
        let mut params = object(full());
        params.insert("duration_s".into(), json!(2));
        assert_eq!(
            normalised_params(&params).unwrap_err().code,
            ContractCode::ConflictingFields
        );
    }

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let params = normalised_params(&object(full())).unwrap();
        assert_eq!(
            canonical_json(&params),
            "{\"fps\":30,\"guidance_scale\":4.5,\"height\":480,\"negative_prompt\":\"\",\
             \"num_frames\":163,\"num_inference_steps\":64,\"prompt\":\"a fox\",\"seed\":7,\
             \"width\":848}"
        );
    }

    #[test]
    fn equal_numbers_serialise_alike() {
        let mut integral = object(full());
        integral.insert("guidance_scale".into(), json!(5));
        integral.insert("num_inference_steps".into(), json!(64.0));
        let mut float = object(full());
        float.insert("guidance_scale".into(), json!(5.0));
        let (a, b) = (
            normalised_params(&integral).unwrap(),
            normalised_params(&float).unwrap(),
        );
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert!(canonical_json(&a).contains("\"guidance_scale\":5.0"));
        let mut negative_zero = object(full());
        negative_zero.insert("guidance_scale".into(), json!(-0.0));
        let zero = normalised_params(&negative_zero).unwrap();
        assert!(canonical_json(&zero).contains("\"guidance_scale\":0.0"));
    }
}
