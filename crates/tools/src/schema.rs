//! Tool arguments against their JSON Schema: parsing (an object, or a JSON
//! string holding one, as OpenAI-style tool calls send it), defaults,
//! missing required fields, validation with the `jsonschema` crate (draft
//! 2020-12; `format` is an annotation, as in Python's `jsonschema`), and the
//! canonical form that idempotency keys and audit hashes are taken over.
//!
//! Owns: every check of an argument object. Never: hand-written type or
//! pattern checks (the library does them), or a network fetch of a remote
//! `$ref` (the crate is built without its resolvers).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Result, ToolError};

/// The arguments as a JSON object: an object is taken as it is; a string must
/// parse to an object (a tool call's `arguments` string). Anything else, or
/// malformed JSON, is [`ToolError::InvalidArguments`] with what was wrong.
pub fn parse_arguments(tool: &str, raw: Value) -> Result<Value> {
    let invalid = |msg: String| ToolError::InvalidArguments { tool: tool.to_string(), errors: vec![msg] };
    match raw {
        Value::Object(_) => Ok(raw),
        Value::Null => Ok(Value::Object(Map::new())),
        Value::String(s) => {
            if s.trim().is_empty() {
                return Ok(Value::Object(Map::new()));
            }
            match serde_json::from_str::<Value>(&s) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(other) => Err(invalid(format!("arguments must be a JSON object, got {}", kind(&other)))),
                Err(e) => Err(invalid(format!("arguments are not valid JSON: {e}"))),
            }
        }
        other => Err(invalid(format!("arguments must be a JSON object, got {}", kind(&other)))),
    }
}

/// [`parse_arguments`] on text.
pub fn parse_arguments_str(tool: &str, raw: &str) -> Result<Value> {
    parse_arguments(tool, Value::String(raw.to_string()))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks `args` against `schema`. `Err` holds one readable message per
/// problem (`date: "2026-1-5" does not match "^[0-9]{4}-..."`); an invalid
/// schema is reported the same way.
pub fn validate(schema: &Value, args: &Value) -> std::result::Result<(), Vec<String>> {
    let validator = jsonschema::draft202012::new(schema).map_err(|e| vec![format!("the tool's schema is invalid: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(args)
        .map(|e| {
            let path = e.instance_path().as_str().trim_start_matches('/').replace('/', ".");
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The required fields of `schema` that `args` does not give. Absent, null
/// and blank strings count as not given (a constrained decoder that leaves a
/// value empty means "the user did not say").
pub fn missing_required(schema: &Value, args: &Value) -> Vec<String> {
    let Some(required) = schema.get("required").and_then(Value::as_array) else { return Vec::new() };
    required
        .iter()
        .filter_map(Value::as_str)
        .filter(|k| match args.get(*k) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            _ => false,
        })
        .map(str::to_string)
        .collect()
}

/// Removes null and blank-string members (values the user did not give), so
/// they neither fail validation nor enter the canonical form.
pub fn drop_empty(args: &mut Value) {
    if let Value::Object(m) = args {
        m.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.trim().is_empty(),
            _ => true,
        });
    }
}

/// Fills the top-level properties that have a `default` in `schema` and are
/// absent from `args` (e.g. `duration_minutes: 30`, `priority: "normal"`).
pub fn apply_defaults(schema: &Value, args: &mut Value) {
    let (Some(props), Value::Object(m)) = (schema.get("properties").and_then(Value::as_object), args) else { return };
    for (name, prop) in props {
        if let Some(d) = prop.get("default") {
            if matches!(m.get(name), None | Some(Value::Null)) {
                m.insert(name.clone(), d.clone());
            }
        }
    }
}

/// `args` with every object's keys sorted, no whitespace: equal arguments
/// give equal text however they were written.
pub fn canonical(args: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's Map keeps insertion order when its `preserve_order`
    // feature is on anywhere in the build: write the keys out ourselves.
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(v, out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&sorted(args), &mut out);
    out
}

/// sha256 (hex) of the canonical arguments: what the audit log records
/// instead of the values.
pub fn arguments_hash(args: &Value) -> String {
    hex::encode(Sha256::digest(canonical(args).as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::builtin_spec;

    fn schema(name: &str) -> Value {
        builtin_spec(name).unwrap().schema
    }

    #[test]
    fn accepts_valid_and_rejects_bad_arguments_with_readable_messages() {
        let s = schema("book_appointment");
        assert!(validate(&s, &json!({"date": "2026-12-08", "time": "10:30", "duration_minutes": 30})).is_ok());
        assert!(validate(&s, &json!({"date": "2026-12-08", "time": "10:30", "topic": "offer"})).is_ok());
        let errs = validate(&s, &json!({"date": "8.12.2026", "time": "10:30", "duration_minutes": 500, "room": "A"})).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("date:")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("duration_minutes:")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("room")), "{errs:?}");
        // an integer, not a string, not a float
        assert!(validate(&s, &json!({"date": "2026-12-08", "time": "10:30", "duration_minutes": "30"})).is_err());
        assert!(validate(&s, &json!({"date": "2026-12-08", "time": "10:30", "duration_minutes": 30.5})).is_err());
        assert!(validate(&s, &json!({"date": "2026-12-08"})).is_err());
        let t = schema("create_ticket");
        assert!(validate(&t, &json!({"subject": "a", "description": "b", "priority": "urgent"})).is_err());
        assert!(validate(&t, &json!({"subject": "a", "description": "b", "priority": "high"})).is_ok());
    }

    #[test]
    fn missing_defaults_and_canonical_form() {
        let s = schema("book_appointment");
        assert_eq!(missing_required(&s, &json!({"date": "2026-12-08", "time": " "})), ["time"]);
        assert_eq!(missing_required(&s, &json!({"time": null})), ["date", "time"]);
        let mut a = json!({"time": "10:00", "date": "2026-12-08"});
        apply_defaults(&s, &mut a);
        assert_eq!(a["duration_minutes"], 30);
        assert!(a.get("topic").is_none());
        let mut t = json!({"subject": "x", "description": "y"});
        apply_defaults(&schema("create_ticket"), &mut t);
        assert_eq!(t["priority"], "normal");
        assert_eq!(canonical(&json!({"b": 1, "a": {"d": [2, {"z": 1, "y": 0}], "c": "x"}})), r#"{"a":{"c":"x","d":[2,{"y":0,"z":1}]},"b":1}"#);
        assert_eq!(arguments_hash(&json!({"b": 1, "a": 2})), arguments_hash(&json!({"a": 2, "b": 1})));
        let mut e = json!({"date": "", "time": null, "topic": "x"});
        drop_empty(&mut e);
        assert_eq!(e, json!({"topic": "x"}));
    }

    #[test]
    fn arguments_may_come_as_a_json_string_but_must_be_an_object() {
        assert_eq!(parse_arguments_str("t", r#"{"product":"NAS"}"#).unwrap(), json!({"product": "NAS"}));
        let e = parse_arguments_str("t", r#"{"product": "NAS""#).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let e = parse_arguments("t", json!([1])).unwrap_err();
        assert!(e.to_string().contains("must be a JSON object"), "{e}");
        assert!(parse_arguments_str("t", "\"x\"").is_err());
        assert_eq!(parse_arguments("t", Value::Null).unwrap(), json!({}));
    }
}
