//! The request's webhook: where the platform tells a job's events, and which ones.
//!
//! The contract checks only the form (an `http(s)://` URL with a host, no whitespace or
//! control characters, at most [`MAX_WEBHOOK_CHARS`]; a non-empty list of distinct known
//! events); whether the platform may deliver there (https only, no private address) is the
//! server's policy (`t2v/webhooks/guard.py`), which depends on its settings.

use serde_json::Value;

use super::fields::{describe, optional, string, Object};
use crate::errors::{ContractCode, ContractError};

pub const MAX_WEBHOOK_CHARS: usize = 2048;
/// Replicate's names: the job started, made progress, reached its end (any outcome).
pub const WEBHOOK_EVENTS: [&str; 3] = ["start", "progress", "completed"];
pub const DEFAULT_WEBHOOK_EVENTS: [&str; 1] = ["completed"];
pub const SCHEMES: [&str; 2] = ["https://", "http://"];

/// A valid webhook: its URL and the events it takes, in [`WEBHOOK_EVENTS`] order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<&'static str>,
}

/// What a URL may not hold anywhere: whitespace and control characters.
pub fn is_forbidden_in_url(character: char) -> bool {
    character.is_whitespace() || character.is_control()
}

/// Ends a URL's host part (which must not be empty).
pub const HOST_END: [char; 3] = ['/', '?', '#'];

/// `webhook` then `webhook_events` (which needs `webhook`); None without a webhook.
pub fn webhook(object: &Object) -> Result<Option<Webhook>, ContractError> {
    let url = optional(object, "webhook").map(url).transpose()?;
    let events = optional(object, "webhook_events").map(events).transpose()?;
    match (url, events) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ContractError::new(
            ContractCode::MissingField,
            "webhook",
            "webhook_events needs a webhook to send them to",
        )),
        (Some(url), events) => Ok(Some(Webhook {
            url,
            events: events.unwrap_or_else(|| DEFAULT_WEBHOOK_EVENTS.to_vec()),
        })),
    }
}

fn url(value: &Value) -> Result<String, ContractError> {
    let text = string("webhook", value)?;
    let length = text.chars().count();
    if length > MAX_WEBHOOK_CHARS {
        let message =
            format!("webhook must be at most {MAX_WEBHOOK_CHARS} characters (got {length})");
        return Err(ContractError::new(
            ContractCode::TooLong,
            "webhook",
            message,
        ));
    }
    let host = SCHEMES.iter().find_map(|scheme| text.strip_prefix(scheme));
    let well_formed = host
        .is_some_and(|rest| rest.chars().next().is_some_and(|c| !HOST_END.contains(&c)))
        && !text.chars().any(is_forbidden_in_url);
    if !well_formed {
        let message = "webhook must be an https:// (or http://) URL with a host, without \
                       whitespace or control characters";
        return Err(ContractError::new(
            ContractCode::InvalidValue,
            "webhook",
            message,
        ));
    }
    Ok(text.to_owned())
}

fn events(value: &Value) -> Result<Vec<&'static str>, ContractError> {
    let Value::Array(items) = value else {
        let message = format!("webhook_events must be an array (got {})", describe(value));
        return Err(ContractError::new(
            ContractCode::InvalidType,
            "webhook_events",
            message,
        ));
    };
    let invalid =
        |message: String| ContractError::new(ContractCode::InvalidValue, "webhook_events", message);
    if items.is_empty() {
        return Err(invalid(
            "webhook_events must name at least one event".to_owned(),
        ));
    }
    let mut named = Vec::new();
    for item in items {
        let known = item
            .as_str()
            .and_then(|name| WEBHOOK_EVENTS.iter().find(|known| **known == name));
        let Some(known) = known else {
            return Err(invalid(format!(
                "webhook_events may hold only {} (got {})",
                WEBHOOK_EVENTS.join(", "),
                item.as_str()
                    .map_or_else(|| describe(item), |name| format!("{name:?}"))
            )));
        };
        if named.contains(known) {
            return Err(invalid(format!("webhook_events names {known:?} twice")));
        }
        named.push(*known);
    }
    Ok(WEBHOOK_EVENTS
        .into_iter()
        .filter(|event| named.contains(event))
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Object {
        value.as_object().cloned().unwrap()
    }

    fn refusal(value: Value) -> ContractCode {
        webhook(&object(value)).unwrap_err().code
    }

    #[test]
    fn a_webhook_gets_the_default_events_in_a_fixed_order() {
        let given = webhook(&object(json!({"webhook": "https://example.com/h"}))).unwrap();
        assert_eq!(given.unwrap().events, ["completed"]);
        let body = json!({"webhook": "http://a", "webhook_events": ["completed", "start"]});
        assert_eq!(
            webhook(&object(body)).unwrap().unwrap().events,
            ["start", "completed"]
        );
        assert_eq!(webhook(&object(json!({"webhook": null}))).unwrap(), None);
    }

    #[test]
    fn malformed_webhooks_are_refused() {
        for bad in [
            "ftp://a",
            "https://",
            "https:///x",
            "https://a b",
            "example.com",
            "https://a\u{85}",
        ] {
            assert_eq!(
                refusal(json!({"webhook": bad})),
                ContractCode::InvalidValue,
                "{bad}"
            );
        }
        let long = format!("https://a/{}", "x".repeat(MAX_WEBHOOK_CHARS));
        assert_eq!(refusal(json!({"webhook": long})), ContractCode::TooLong);
        assert_eq!(refusal(json!({"webhook": 7})), ContractCode::InvalidType);
    }

    #[test]
    fn events_must_be_distinct_known_names_beside_a_webhook() {
        let with =
            |events: Value| refusal(json!({"webhook": "https://a", "webhook_events": events}));
        assert_eq!(with(json!([])), ContractCode::InvalidValue);
        assert_eq!(with(json!(["done"])), ContractCode::InvalidValue);
        assert_eq!(with(json!(["start", "start"])), ContractCode::InvalidValue);
        assert_eq!(with(json!([1])), ContractCode::InvalidValue);
        assert_eq!(with(json!("start")), ContractCode::InvalidType);
        assert_eq!(
            refusal(json!({"webhook_events": ["start"]})),
            ContractCode::MissingField
        );
    }
}
