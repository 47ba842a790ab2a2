//! Reading typed values out of a JSON request, with one precise message per broken rule.

use serde_json::{Map, Value};

use crate::errors::{ContractCode, ContractError};

pub type Object = Map<String, Value>;

/// An optional field; JSON `null` counts as absent, so clients may send explicit nulls.
pub fn optional<'a>(object: &'a Object, field: &str) -> Option<&'a Value> {
    object.get(field).filter(|value| !value.is_null())
}

/// How a value reads in a message: numbers verbatim, other kinds by name (strings are not
/// echoed: they may be long or hold control characters).
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => number.to_string(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn invalid_type(field: &str, expected: &str, value: &Value) -> ContractError {
    let message = format!("{field} must be {expected} (got {})", describe(value));
    ContractError::new(ContractCode::InvalidType, field, message)
}

/// An integer. Booleans are not numbers; a float counts only when it has no fractional part,
/// because JSON has a single number type (and integer literals beyond 64 bits arrive as
/// floats). Values too large for `i128` saturate, which the caller's range check reports.
pub fn integer(field: &str, value: &Value) -> Result<i128, ContractError> {
    let Value::Number(number) = value else {
        return Err(invalid_type(field, "an integer", value));
    };
    if let Some(signed) = number.as_i64() {
        return Ok(signed.into());
    }
    if let Some(unsigned) = number.as_u64() {
        return Ok(unsigned.into());
    }
    match number.as_f64() {
        Some(float) if float.is_finite() && float.fract() == 0.0 => Ok(float as i128),
        _ => Err(invalid_type(field, "an integer", value)),
    }
}

/// An integer within `min..=max`.
pub fn integer_in(field: &str, value: &Value, min: u32, max: u32) -> Result<u32, ContractError> {
    let number = integer(field, value)?;
    u32::try_from(number)
        .ok()
        .filter(|number| (min..=max).contains(number))
        .ok_or_else(|| {
            let message = format!(
                "{field} must be between {min} and {max} (got {})",
                describe(value)
            );
            ContractError::new(ContractCode::OutOfRange, field, message)
        })
}

/// A finite number (integer or float, never a boolean).
pub fn number(field: &str, value: &Value) -> Result<f64, ContractError> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .filter(|float| float.is_finite())
            .ok_or_else(|| invalid_type(field, "a finite number", value)),
        _ => Err(invalid_type(field, "a number", value)),
    }
}

pub fn string<'a>(field: &str, value: &'a Value) -> Result<&'a str, ContractError> {
    value
        .as_str()
        .ok_or_else(|| invalid_type(field, "a string", value))
}

/// The characters a prompt may not hold: the control characters (Unicode `Cc`) but newline
/// and tab.
pub fn is_forbidden_control(character: char) -> bool {
    character.is_control() && !matches!(character, '\n' | '\t')
}

/// Length (in Unicode scalar values) and control characters; newline and tab are allowed.
pub fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ContractError> {
    let length = text.chars().count();
    if length > max_chars {
        let message = format!("{field} must be at most {max_chars} characters (got {length})");
        return Err(ContractError::new(ContractCode::TooLong, field, message));
    }
    let control = text
        .chars()
        .enumerate()
        .find(|(_, c)| is_forbidden_control(*c));
    if let Some((position, character)) = control {
        let message = format!(
            "{field} must not contain control characters other than newline and tab \
             (found U+{:04X} at character {position})",
            u32::from(character)
        );
        return Err(ContractError::new(
            ContractCode::ControlCharacter,
            field,
            message,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integers_accept_integral_floats_only() {
        assert_eq!(integer("n", &json!(64)).unwrap(), 64);
        assert_eq!(integer("n", &json!(64.0)).unwrap(), 64);
        assert_eq!(integer("n", &json!(-3)).unwrap(), -3);
        assert_eq!(
            integer("n", &json!(u64::MAX)).unwrap(),
            i128::from(u64::MAX)
        );
        let error = integer("n", &json!(64.5)).unwrap_err();
        assert_eq!(error.code, ContractCode::InvalidType);
        assert_eq!(error.message, "n must be an integer (got 64.5)");
    }

    #[test]
    fn booleans_and_strings_are_not_numbers() {
        assert_eq!(
            integer("n", &json!(true)).unwrap_err().code,
            ContractCode::InvalidType
        );
        assert_eq!(
            number("g", &json!(false)).unwrap_err().code,
            ContractCode::InvalidType
        );
        let error = number("g", &json!("4.5")).unwrap_err();
        assert_eq!(error.message, "g must be a number (got a string)");
    }

    #[test]
    fn huge_integers_are_out_of_range_not_mistyped() {
        let huge: Value =
            serde_json::from_str("1000000000000000000000000000000000000000000").unwrap();
        let error = integer_in("fps", &huge, 1, 60).unwrap_err();
        assert_eq!(error.code, ContractCode::OutOfRange);
        let error = integer_in("fps", &json!(-1), 1, 60).unwrap_err();
        assert_eq!(error.message, "fps must be between 1 and 60 (got -1)");
    }

    #[test]
    fn text_rules() {
        assert!(check_text("p", "a\tb\nc", 10).is_ok());
        assert_eq!(
            check_text("p", "ééé", 2).unwrap_err().code,
            ContractCode::TooLong
        );
        assert!(check_text("p", "ééé", 3).is_ok());
        let error = check_text("p", "ab\rc", 10).unwrap_err();
        assert_eq!(error.code, ContractCode::ControlCharacter);
        assert!(
            error.message.contains("U+000D at character 2"),
            "{}",
            error.message
        );
        assert!(
            check_text("p", "a\u{85}", 10).is_err(),
            "C1 controls are Cc too"
        );
    }

    #[test]
    fn null_is_absent() {
        let object: Object = serde_json::from_value(json!({"a": null, "b": 1})).unwrap();
        assert!(optional(&object, "a").is_none());
        assert!(optional(&object, "b").is_some());
        assert!(optional(&object, "c").is_none());
    }
}
