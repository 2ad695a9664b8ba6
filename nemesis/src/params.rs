//! Reading a fault's JSON parameters with errors that name the parameter and
//! what it allows.
//!
//! Why separate: every fault module validates its parameters the same way
//! (unknown keys rejected, enums with their allowed values, numbers with
//! their range), and the messages must be uniform for users writing
//! scenario files.
//!
//! Must never: accept an unknown key or a value outside the documented range
//! silently; a typo must fail before anything is applied.

use crate::error::NemesisError;
use serde_json::{Map, Value};

/// The parameters of one fault, checked against the keys it knows.
pub(crate) struct Params<'a> {
    fault: &'a str,
    values: Map<String, Value>,
}

impl<'a> Params<'a> {
    /// Read `params` (an object, or `null` for all defaults) for `fault`,
    /// rejecting keys not in `known`.
    pub fn new(fault: &'a str, params: &Value, known: &[&str]) -> Result<Params<'a>, NemesisError> {
        let values = match params {
            Value::Null => Map::new(),
            Value::Object(values) => values.clone(),
            other => return Err(bad(fault, "params", other, "an object such as {\"percent\": 30}")),
        };
        let mut keys: Vec<&String> = values.keys().collect();
        keys.sort();
        if let Some(unknown) = keys.into_iter().find(|key| !known.contains(&key.as_str())) {
            let expected = format!("no such param; known params of `{fault}`: {}", known.join(", "));
            return Err(NemesisError::BadParam {
                fault: fault.to_string(),
                param: unknown.clone(),
                value: values[unknown].to_string(),
                expected,
            });
        }
        Ok(Params { fault, values })
    }

    /// Whether `name` was given (and is not `null`).
    pub fn has(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|value| !value.is_null())
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|value| !value.is_null())
    }

    /// A string that must be one of `allowed`; `default` when absent.
    pub fn choice(
        &self,
        name: &str,
        allowed: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, NemesisError> {
        assert!(allowed.contains(&default), "default {default} not allowed");
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let text = value.as_str().unwrap_or("");
        allowed
            .iter()
            .find(|candidate| **candidate == text)
            .copied()
            .ok_or_else(|| bad(self.fault, name, value, &format!("one of: {}", allowed.join(", "))))
    }

    /// A number in `minimum..=maximum`; `default` when absent.
    pub fn number(&self, name: &str, minimum: f64, maximum: f64, default: f64) -> Result<f64, NemesisError> {
        assert!(minimum <= default && default <= maximum, "default {default} out of range");
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let number = value.as_f64().filter(|number| number.is_finite() && (minimum..=maximum).contains(number));
        number.ok_or_else(|| bad(self.fault, name, value, &format!("a number from {minimum} to {maximum}")))
    }

    /// A whole number in `minimum..=maximum`; `default` when absent.
    pub fn whole(&self, name: &str, minimum: u64, maximum: u64, default: u64) -> Result<u64, NemesisError> {
        assert!(minimum <= default && default <= maximum, "default {default} out of range");
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        let number = value.as_u64().filter(|number| (minimum..=maximum).contains(number));
        number.ok_or_else(|| bad(self.fault, name, value, &format!("a whole number from {minimum} to {maximum}")))
    }

    /// A boolean; `default` when absent.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, NemesisError> {
        let Some(value) = self.get(name) else {
            return Ok(default);
        };
        value.as_bool().ok_or_else(|| bad(self.fault, name, value, "true or false"))
    }

    /// A non-empty string, or `None` when absent.
    pub fn text(&self, name: &str, expected: &str) -> Result<Option<String>, NemesisError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.as_str() {
            Some(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
            _ => Err(bad(self.fault, name, value, expected)),
        }
    }

    /// The error for `name` holding `value` when `expected` was wanted.
    pub fn error(&self, name: &str, value: &str, expected: &str) -> NemesisError {
        bad(self.fault, name, &Value::String(value.to_string()), expected)
    }
}

/// A [`NemesisError::BadParam`].
fn bad(fault: &str, param: &str, value: &Value, expected: &str) -> NemesisError {
    NemesisError::BadParam {
        fault: fault.to_string(),
        param: param.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Check that `node` is one of `known`, naming `param` in the error.
pub(crate) fn known_node(fault: &str, param: &str, node: &str, known: &[String]) -> Result<(), NemesisError> {
    if known.iter().any(|candidate| candidate == node) {
        return Ok(());
    }
    Err(NemesisError::BadParam {
        fault: fault.to_string(),
        param: param.to_string(),
        value: Value::String(node.to_string()).to_string(),
        expected: format!("a node of this cluster: {}", known.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Goal: unknown keys, wrong types and out-of-range values are rejected
    /// with the parameter's name and what it allows; absent values default.
    #[test]
    fn errors_name_the_param_and_the_allowed_values() {
        let params = json!({"kind": "halvs", "percent": 130, "flag": "yes"});
        let known = ["kind", "percent", "flag"];
        let reader = Params::new("partition", &params, &known).expect("known keys");
        let kind = reader.choice("kind", &["halves", "bridge"], "halves").expect_err("bad kind").to_string();
        assert!(kind.contains("param `kind` = \"halvs\""), "{kind}");
        assert!(kind.contains("one of: halves, bridge"), "{kind}");
        let percent = reader.number("percent", 0.0, 100.0, 30.0).expect_err("range").to_string();
        assert!(percent.contains("from 0 to 100"), "{percent}");
        assert!(reader.boolean("flag", false).expect_err("type").to_string().contains("true or false"));
        assert_eq!(reader.whole("absent", 1, 5, 3).expect("default"), 3);
        let unknown = Params::new("loss", &json!({"precent": 3}), &["percent", "peer"]).err().expect("unknown");
        let message = unknown.to_string();
        assert!(message.contains("param `precent`") && message.contains("known params of `loss`: percent, peer"));
        assert!(Params::new("loss", &json!([1]), &["percent"]).is_err());
        assert!(Params::new("loss", &Value::Null, &["percent"]).is_ok());
    }
}
