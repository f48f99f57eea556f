//! Filling a tool's arguments: the extractor's values (what the user said,
//! parsed by tresor-tools' `understand`), and the model for what only a model
//! can write (a ticket's subject line from the user's description) — under
//! the tool's JSON-Schema grammar, narrowed so that the model can emit
//! nothing else: an extracted value is a `const`, a typed value the user did
//! not give (an order id, a date, a time) can only be `null` (it stays
//! missing, never invented), and the free-text field is a bounded string.
//! When the narrowed grammar admits exactly one object, the model is not run.
//!
//! `FillMode::Free` lets the model write the whole object without the
//! grammar (the same prompt, the extracted values as hints) and parses what
//! it wrote — only to measure what the grammar changes (`tresor eval tools
//! --model-arguments free`). `FillMode::Off` uses the extractor alone.
//!
//! Owns: the narrowed schema, the prompt, parsing the model's object.
//! Never: validates against the tool's own schema (the action store does,
//! again, before anything runs) or decides whether the tool runs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tresor_kb::lang::Lang;
use tresor_llm::{ChatMessage, GenerateParams, SamplingParams};
use tresor_tools::spec::ToolSpec;

use crate::engine::Assistant;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    #[default]
    Grammar,
    Free,
    Off,
}

impl std::str::FromStr for FillMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "grammar" | "on" => Ok(FillMode::Grammar),
            "free" => Ok(FillMode::Free),
            "off" => Ok(FillMode::Off),
            _ => Err(format!("unknown model-arguments mode `{s}` (grammar, free or off)")),
        }
    }
}

pub(crate) struct Filled {
    /// The arguments object, or why the model's output is not one (free mode only).
    pub value: std::result::Result<Value, String>,
    pub model_ran: bool,
}

/// Free-text fields a model may write when the user's message holds their
/// substance but the extractor could not phrase them: `(tool, field, from)`.
const MODEL_WRITES: &[(&str, &str, &str)] = &[("create_ticket", "subject", "description")];

fn writable(spec: &ToolSpec, field: &str, extracted: &Map<String, Value>) -> bool {
    MODEL_WRITES.iter().any(|(t, f, from)| *t == spec.name && *f == field && extracted.contains_key(*from))
}

/// The tool's schema narrowed to what this message allows (see the module doc);
/// None when it admits exactly one object (nothing for the model to choose).
pub(crate) fn narrowed_schema(spec: &ToolSpec, extracted: &Map<String, Value>) -> Option<Value> {
    if !spec.is_builtin() {
        // an MCP tool: the router gives no arguments, the model writes them all under the
        // server's own schema (and a side effect still waits for the user's yes)
        return Some(spec.schema.clone());
    }
    let props = spec.schema.get("properties").and_then(Value::as_object)?;
    let mut out = Map::new();
    let mut free = false;
    for (name, prop) in props {
        let p = if let Some(v) = extracted.get(name) {
            json!({ "const": v })
        } else if writable(spec, name, extracted) {
            free = true;
            let mut p = prop.clone();
            if let Some(o) = p.as_object_mut() {
                o.insert("minLength".into(), json!(3));
                o.insert("maxLength".into(), json!(80));
            }
            p
        } else {
            json!({ "type": "null" })
        };
        out.insert(name.clone(), p);
    }
    free.then(|| {
        json!({
            "type": "object",
            "properties": out,
            "required": props.keys().collect::<Vec<_>>(),
            "additionalProperties": false,
        })
    })
}

fn prompt(spec: &ToolSpec, q: &str, lang: Lang, hints: Option<&Map<String, Value>>) -> Vec<ChatMessage> {
    let desc = if lang == Lang::De && !spec.description_de.is_empty() { &spec.description_de } else { &spec.description_en };
    let mut sys = format!(
        "You fill in the arguments of the tool `{}` ({desc}) for the user's request. Reply with one JSON object. \
         Use only what the user said; write null for anything the user did not say. A subject is a short summary line.",
        spec.name
    );
    if let Some(h) = hints {
        sys.push_str(&format!("\nArguments schema: {}\nValues already known: {}", spec.schema, Value::Object(h.clone())));
    }
    vec![ChatMessage::system(&sys), ChatMessage::user(q)]
}

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// The first JSON object in `text` (the unconstrained model may wrap it in prose or a code fence).
fn first_object(text: &str) -> std::result::Result<Value, String> {
    let start = text.find('{').ok_or_else(|| format!("the model wrote no JSON object: {:?}", text.chars().take(120).collect::<String>()))?;
    let mut de = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
    match de.next() {
        Some(Ok(v @ Value::Object(_))) => Ok(v),
        Some(Ok(_)) => Err("the model's tool call is not a JSON object".into()),
        Some(Err(e)) => Err(format!("the model's tool call is not valid JSON: {e}")),
        None => Err("the model wrote no JSON object".into()),
    }
}

pub(crate) fn arguments(a: &mut Assistant, spec: &ToolSpec, q: &str, lang: Lang, extracted: &Map<String, Value>) -> Result<Filled> {
    let mode = a.config().tools.model_arguments;
    let params = GenerateParams { max_tokens: 160, sampling: SamplingParams::greedy(), stop: Vec::new(), cancel: None };
    match mode {
        FillMode::Off => Ok(Filled { value: Ok(Value::Object(extracted.clone())), model_ran: false }),
        FillMode::Grammar => {
            let Some(schema) = narrowed_schema(spec, extracted) else {
                return Ok(Filled { value: Ok(Value::Object(extracted.clone())), model_ran: false });
            };
            let msgs = prompt(spec, q, lang, None);
            let model = a.tool_model()?;
            let g = model.generate_json(&msgs, &schema, &params, &mut |_| std::ops::ControlFlow::Continue(()))?;
            // the grammar guarantees an object of the narrowed schema; parse defensively all the same
            let value = serde_json::from_str::<Value>(&g.text).map(without_nulls).map_err(|e| format!("grammar output did not parse: {e}"));
            Ok(Filled { value, model_ran: true })
        }
        FillMode::Free => {
            let msgs = prompt(spec, q, lang, Some(extracted));
            let model = a.tool_model()?;
            let g = model.generate(&msgs, &params, &mut |_| std::ops::ControlFlow::Continue(()))?;
            Ok(Filled { value: first_object(&g.text).map(without_nulls), model_ran: true })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracted_values_are_consts_and_unsaid_typed_values_can_only_be_null() {
        let spec = tresor_tools::spec::builtin_spec("create_ticket").unwrap();
        let ex: Map<String, Value> = serde_json::from_value(json!({"description": "printer on fire", "priority": "high"})).unwrap();
        let s = narrowed_schema(&spec, &ex).expect("the subject is the model's to write");
        assert_eq!(s["properties"]["description"], json!({"const": "printer on fire"}));
        assert_eq!(s["properties"]["priority"], json!({"const": "high"}));
        assert_eq!(s["properties"]["subject"]["maxLength"], json!(80));
        let order = tresor_tools::spec::builtin_spec("order_status").unwrap();
        assert!(narrowed_schema(&order, &Map::new()).is_none(), "nothing to write: an absent order id stays missing");
    }

    #[test]
    fn the_free_models_object_is_found_or_the_call_is_malformed() {
        assert_eq!(first_object("Sure! ```json\n{\"order_id\": \"NL-1\"}\n```").unwrap(), json!({"order_id": "NL-1"}));
        assert!(first_object("{\"order_id\": ").is_err());
        assert!(first_object("no json here").is_err());
    }
}
