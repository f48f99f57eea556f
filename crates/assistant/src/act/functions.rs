//! Function calling for a client's own tools (OpenAI's `tools` /
//! `tool_choice` on `/v1/chat/completions`): the client describes functions
//! (name, description, JSON-Schema `parameters`); the engine decides whether
//! to call one and writes its arguments; the client runs it and sends the
//! result back as a `tool` message, and the engine answers from that result.
//!
//! Deciding, by `tool_choice`:
//! - `none`: a normal answer ([`Assistant::answer`]); the functions are ignored.
//! - `auto`: the last user message is routed over the client's function cards
//!   with tresor-tools' router ([`understand::route`]: lexical similarity of
//!   the message to the function's name and description, threshold
//!   [`understand::route::LEXICAL_THRESHOLD`] 0.5 — at least half of the
//!   message's content words match the card, two words at least, or one of a
//!   message of up to three content words). No card reaches it: a normal
//!   answer (built-in tools included). No other heuristic applies to the
//!   client's functions (their names are prefixed for the router, so a client
//!   function named like a built-in does not inherit the built-in's rules).
//! - `required`: one function must be called: the only one, else the
//!   router's best candidate (any score above zero), else the model picks the
//!   name under a grammar whose only values are the functions' names.
//! - `{"type": "function", "function": {"name": N}}`: function N.
//!
//! The model then writes the arguments under grammar-constrained decoding
//! from the function's `parameters` ([`ChatModel::generate_json`]): the
//! arguments are always one JSON object valid for the client's schema. A
//! schema the grammar engine cannot compile is the client's error
//! ([`AssistantError::Invalid`], checked before any model runs), as are a
//! malformed function list and a `tool_choice` naming an unknown function.
//!
//! Tool results (`tool` messages after the assistant's `tool_calls`): the
//! answer is generated from the results as its only passages, numbered [1]…
//! in order, each cited as a source `tool:NAME`; the admin policy's
//! question and output checks apply as to any answer.
//!
//! Owns: the checks on the client's functions, the choice of the function,
//! the argument prompt and its grammar, the answer from tool results, and
//! the audit entries (`function.call`: the function's name and the
//! arguments' hash, never their values). Never: runs a client's function
//! (the client does), or stores the client's functions.

use std::ops::ControlFlow;
use std::time::Instant;

use serde_json::{json, Value};
use tresor_kb::lang::Lang;
use tresor_llm::{ChatMessage, GenerateParams, Grammar, SamplingParams};
use tresor_tools::understand::{self, ToolCard};

use crate::engine::{bare_answer, Answer, AskRequest, Assistant, Source};
use crate::error::{AssistantError, Result};
use crate::route::Intent;
use crate::text::normalise;

/// One function a client offers.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub name: String,
    pub description: String,
    /// The JSON Schema of its arguments (an object schema).
    pub parameters: Value,
}

/// OpenAI's `tool_choice`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    #[default]
    Auto,
    Required,
    /// This function, by name.
    Named(String),
}

/// A function's result as the client sends it back (a `tool` message).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The `tool_call_id` it answers.
    pub call_id: String,
    /// The function's name (from the assistant message's `tool_calls`; else "function").
    pub name: String,
    pub content: String,
}

/// A chat turn with the client's functions.
#[derive(Debug, Clone, Default)]
pub struct FunctionRequest {
    /// The question (the last user message), history, model, actor, knowledge base.
    pub ask: AskRequest,
    pub functions: Vec<FunctionDef>,
    pub choice: ToolChoice,
    /// The results of the function calls of the turn so far (the `tool`
    /// messages after the last user message); non-empty: answer from them.
    pub results: Vec<ToolResult>,
}

/// The call the model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall {
    /// `call_…`, unique per call.
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (one object, valid for the function's schema).
    pub arguments: String,
    /// Why this function (the router's reason, the choice, or the model's pick).
    pub reason: String,
    /// The model that wrote the arguments.
    pub model: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_ms: f64,
}

/// What a turn with functions comes to.
#[derive(Debug, Clone)]
pub enum FunctionOutcome {
    /// Call this function (the client runs it).
    Call(FunctionCall),
    /// A text answer (no function called, or the answer from tool results).
    Answer(Box<Answer>),
}

/// Function names as OpenAI accepts them.
fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks the client's functions and choice: names, uniqueness, object
/// schemas the grammar engine compiles, and a choice that names a function.
pub fn check_functions(functions: &[FunctionDef], choice: &ToolChoice) -> Result<()> {
    let bad = |m: String| Err(AssistantError::Invalid(m));
    for (i, f) in functions.iter().enumerate() {
        if !valid_name(&f.name) {
            return bad(format!("tools[{i}].function.name {:?} is invalid: use 1 to 64 letters, digits, _ or -", f.name));
        }
        if functions[..i].iter().any(|g| g.name == f.name) {
            return bad(format!("tools[{i}].function.name {:?} is given twice", f.name));
        }
        let Value::Object(m) = &f.parameters else {
            return bad(format!("tools[{i}].function.parameters must be a JSON Schema object (e.g. {{\"type\": \"object\", \"properties\": {{}}}})"));
        };
        if let Some(t) = m.get("type") {
            if t != "object" {
                return bad(format!("tools[{i}].function.parameters must describe a JSON object (\"type\": \"object\"), not {t}"));
            }
        }
        Grammar::json_schema(&f.parameters).map_err(|e| {
            AssistantError::Invalid(format!("tools[{i}].function.parameters of {:?} cannot be used for constrained decoding: {e}", f.name))
        })?;
    }
    match choice {
        ToolChoice::Named(n) if !functions.iter().any(|f| &f.name == n) => {
            let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
            bad(format!("tool_choice names the function {n:?}, which is not in tools (given: {})", if names.is_empty() { "none".into() } else { names.join(", ") }))
        }
        ToolChoice::Required if functions.is_empty() => bad("tool_choice \"required\" needs at least one function in tools".into()),
        _ => Ok(()),
    }
}

/// The router's card of a client function; the prefix keeps it apart from the built-ins' rules.
fn card(f: &FunctionDef) -> ToolCard {
    ToolCard { name: format!("fn.{}", f.name), description_en: f.description.clone(), description_de: f.description.clone(), examples: Vec::new(), read_only: true }
}

fn call_id() -> String {
    use sha2::{Digest, Sha256};
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let h = Sha256::digest(format!("{t}:{n}:{}", std::process::id()).as_bytes());
    format!("call_{}", &hex::encode(h)[..24])
}

/// The schema the model writes under: the client's, with every object that lists its
/// `properties` and says nothing of others closed to them (`additionalProperties: false`).
/// Whatever it allows the client's schema allows; a small model no longer copies the
/// schema's own keys (`type`, `properties`) into the arguments.
fn closed(schema: &Value) -> Value {
    let mut s = schema.clone();
    fn walk(v: &mut Value) {
        let Value::Object(m) = v else { return };
        if m.contains_key("properties") && !m.contains_key("additionalProperties") && !m.contains_key("patternProperties") {
            m.insert("additionalProperties".into(), Value::Bool(false));
        }
        if let Some(Value::Object(props)) = m.get_mut("properties") {
            props.values_mut().for_each(walk);
        }
        if let Some(items) = m.get_mut("items") {
            walk(items);
        }
    }
    walk(&mut s);
    s
}

/// The prompt for a function's arguments: the function and its schema, the conversation, the request.
fn argument_prompt(f: &FunctionDef, history: &[ChatMessage], q: &str) -> Vec<ChatMessage> {
    let desc = if f.description.trim().is_empty() { String::new() } else { format!(" ({})", f.description.trim()) };
    let sys = format!(
        "You call the function `{}`{desc} for the user's request. Answer with one JSON object: its arguments, \
         taken from what the user said.\nArguments schema: {}",
        f.name, f.parameters
    );
    let mut msgs = vec![ChatMessage::system(&sys)];
    msgs.extend(history.iter().cloned());
    msgs.push(ChatMessage::user(q));
    msgs
}

/// The prompt for the answer from tool results: the results as numbered passages.
fn result_prompt(results: &[ToolResult], history: &[ChatMessage], q: &str, lang: Lang) -> Vec<ChatMessage> {
    let sys = if lang == Lang::De {
        "Beantworte die Frage des Nutzers mit den Ergebnissen der Funktionsaufrufe unten, und nur mit ihnen. \
         Nenne die Werte, die sie liefern, und zitiere das Ergebnis mit seiner Nummer in eckigen Klammern, z. B. [1]."
    } else {
        "Answer the user's question with the results of the function calls below, and only with them. \
         State the values they give and cite the result with its number in brackets, e.g. [1]."
    };
    let mut msgs = vec![ChatMessage::system(sys)];
    msgs.extend(history.iter().cloned());
    let passages: Vec<String> = results.iter().enumerate().map(|(i, r)| format!("[{}] {}: {}", i + 1, r.name, r.content.trim())).collect();
    let (head, ask) = if lang == Lang::De { ("Funktionsergebnisse", "Frage") } else { ("Function results", "Question") };
    msgs.push(ChatMessage::user(format!("{head}:\n{}\n\n{ask}: {q}", passages.join("\n"))));
    msgs
}

/// Content words of `text` (3+ letters, lowercased).
fn words(text: &str) -> Vec<String> {
    tresor_text::words(text).map(|w| w.to_lowercase()).filter(|w| w.chars().count() >= 3 && !tresor_text::is_stopword(w)).collect()
}

impl Assistant {
    /// One chat turn with the client's functions (see the module doc):
    /// a function call, or a text answer streamed to `on_text`.
    pub fn function_call(&mut self, req: &FunctionRequest, on_text: &mut dyn FnMut(&str)) -> Result<FunctionOutcome> {
        check_functions(&req.functions, &req.choice)?;
        if !req.results.is_empty() {
            return self.answer_from_results(req, on_text).map(|a| FunctionOutcome::Answer(Box::new(a)));
        }
        let q = normalise(&req.ask.question);
        if q.is_empty() {
            return Err(AssistantError::EmptyQuestion);
        }
        let lang = crate::text::language(&q);
        // the policy's question checks first: a question it refuses is answered (refused), never turned into a call
        let pre = self.policy_precheck(&q, lang);
        let refused = pre.refusal.is_some() && pre.decision.reason.as_deref() != Some("topic");
        let cards: Vec<ToolCard> = req.functions.iter().map(card).collect();
        let pick = |name: &str| req.functions.iter().find(|f| f.name == name).cloned();
        let chosen: Option<(FunctionDef, String)> = match &req.choice {
            _ if refused => None,
            ToolChoice::None => None,
            ToolChoice::Named(n) => pick(n).map(|f| (f, "tool_choice names it".to_string())),
            ToolChoice::Auto => {
                let d = understand::route(&q, lang, &cards);
                d.tool.and_then(|t| pick(t.trim_start_matches("fn."))).map(|f| (f, format!("router: {} ({:.2})", d.reason, d.score)))
            }
            ToolChoice::Required if req.functions.len() == 1 => Some((req.functions[0].clone(), "tool_choice required; the only function".into())),
            ToolChoice::Required => {
                let d = understand::route(&q, lang, &cards);
                match d.candidates.first() {
                    Some((t, s)) => pick(t.trim_start_matches("fn.")).map(|f| (f, format!("tool_choice required; the router's best candidate ({s:.2})"))),
                    None => Some(self.model_picks(req, &q)?),
                }
            }
        };
        let Some((f, reason)) = chosen else {
            return self.answer(&req.ask, on_text).map(|a| FunctionOutcome::Answer(Box::new(a)));
        };
        self.write_call(req, &f, &q, reason).map(FunctionOutcome::Call)
    }

    /// `required` with several functions and no router candidate: the model picks the name under a grammar.
    fn model_picks(&mut self, req: &FunctionRequest, q: &str) -> Result<(FunctionDef, String)> {
        let names: Vec<&str> = req.functions.iter().map(|f| f.name.as_str()).collect();
        let list: Vec<String> = req.functions.iter().map(|f| format!("- {}: {}", f.name, f.description.trim())).collect();
        let schema = json!({"type": "object", "properties": {"name": {"enum": names}}, "required": ["name"], "additionalProperties": false});
        let msgs = vec![
            ChatMessage::system(format!("Pick the function that serves the user's request. Functions:\n{}\nAnswer with {{\"name\": ...}}.", list.join("\n"))),
            ChatMessage::user(q),
        ];
        let params = GenerateParams { max_tokens: 48, sampling: SamplingParams::greedy(), stop: Vec::new(), cancel: req.ask.cancel.clone() };
        let model = self.tool_model()?;
        let g = model.generate_json(&msgs, &schema, &params, &mut |_| ControlFlow::Continue(()))?;
        let name = serde_json::from_str::<Value>(&g.text).ok().and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string));
        match name.and_then(|n| req.functions.iter().find(|f| f.name == n).cloned()) {
            Some(f) => Ok((f, "tool_choice required; the model picked it".into())),
            None => Err(AssistantError::Invalid(format!("the model's pick of a function did not name one: {:?}", g.text))),
        }
    }

    /// The model writes `f`'s arguments under its schema's grammar; checked again, audited.
    fn write_call(&mut self, req: &FunctionRequest, f: &FunctionDef, q: &str, reason: String) -> Result<FunctionCall> {
        let t = Instant::now();
        let history = req.ask.history.clone();
        let msgs = argument_prompt(f, &history, q);
        let params = GenerateParams { max_tokens: 384, sampling: SamplingParams::greedy(), stop: Vec::new(), cancel: req.ask.cancel.clone() };
        let (_, _, model) = self.answer_model(q, req.ask.model.as_deref())?;
        let g = model.generate_json(&msgs, &closed(&f.parameters), &params, &mut |_| ControlFlow::Continue(()))?;
        let model_id = model.id().to_string();
        // the grammar guarantees a valid object; a model without one (or a grammar subset the
        // validator reads differently) is caught here, and nothing invalid reaches the client
        // (the model's fault, not the client's: an invalid-arguments tool error, never a 400)
        let invalid = |errors: Vec<String>| AssistantError::Tool(tresor_tools::error::ToolError::InvalidArguments { tool: f.name.clone(), errors });
        let args = tresor_tools::schema::parse_arguments_str(&f.name, g.text.trim()).map_err(AssistantError::Tool)?;
        tresor_tools::schema::validate(&f.parameters, &args).map_err(invalid)?;
        let call = FunctionCall {
            id: call_id(),
            name: f.name.clone(),
            arguments: serde_json::to_string(&args).expect("a Value serialises"),
            reason,
            model: model_id,
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.tokens.len(),
            total_ms: t.elapsed().as_secs_f64() * 1e3,
        };
        let hash = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(tresor_tools::schema::canonical(&args).as_bytes()))
        };
        self.audit("function.call", req.ask.actor.as_deref(), json!({"call_id": call.id, "function": call.name, "argument_hash": hash, "model": call.model}))?;
        Ok(call)
    }

    /// The answer from the client's tool results: generated with the results as its only
    /// passages, each a cited source `tool:NAME`; policy-checked and audited like any answer.
    fn answer_from_results(&mut self, req: &FunctionRequest, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let t0 = Instant::now();
        let q = normalise(&req.ask.question);
        let lang = crate::text::language(if q.is_empty() { &req.results[0].content } else { &q });
        let pre = self.policy_precheck(&q, lang);
        if pre.refusal.is_some() && pre.decision.reason.as_deref() != Some("topic") {
            return self.policy_refuse(pre, &q, lang, &req.ask, t0, on_text);
        }
        let policy = self.gate.policy.clone();
        let mut og = pre.output_guard(&policy, lang);
        let msgs = result_prompt(&req.results, &req.ask.history, &q, lang);
        let mut params = self.gen_params(self.config().max_answer_tokens * 2);
        params.cancel = req.ask.cancel.clone();
        let (choice, load_ms, model) = self.answer_model(&q, req.ask.model.as_deref())?;
        let mut raw = String::new();
        let g = model.generate(&msgs, &params, &mut |piece| {
            raw.push_str(piece);
            ControlFlow::Continue(())
        })?;
        let model_id = model.id().to_string();
        let mut text = raw.trim().to_string();
        if text.is_empty() {
            let r = &req.results[0];
            text = crate::act::reply::result(&r.name, &Value::String(r.content.trim().to_string()), lang);
        }
        if !(1..=req.results.len()).any(|n| text.contains(&format!("[{n}]"))) {
            text.push_str(" [1]");
        }
        let mut out = og.push(&text);
        out.push_str(&og.finish(false));
        if !out.is_empty() {
            on_text(&out);
        }
        let mut a = bare_answer(out, Intent::General, lang, choice);
        a.route = "tool_result".into();
        a.model = model_id;
        a.sources = req
            .results
            .iter()
            .enumerate()
            .map(|(i, r)| Source {
                n: i + 1,
                source: format!("tool:{}", r.name),
                title: r.name.clone(),
                heading: r.call_id.clone(),
                page: None,
                snippet: r.content.chars().take(400).collect(),
                chunk_id: 0,
            })
            .collect();
        // grounded: the answer states something the results say (a content word of theirs)
        let said: Vec<String> = req.results.iter().flat_map(|r| words(&r.content)).collect();
        a.grounded = words(&a.answer).iter().any(|w| said.contains(w));
        a.timings.load_ms = load_ms;
        a.timings.generate_ms = g.total_ms;
        a.timings.prefill_ms = g.prefill_ms;
        a.timings.ttft_ms = g.ttft_ms + load_ms;
        a.tokens.prompt = g.prompt_tokens;
        a.tokens.completion = g.tokens.len();
        self.policy_settle(&mut a, og, pre);
        a.timings.total_ms = t0.elapsed().as_secs_f64() * 1e3;
        self.audit_answer(&req.ask, &q, &a)?;
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> FunctionDef {
        FunctionDef {
            name: "get_weather".into(),
            description: "Get the current weather for a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]}),
        }
    }

    #[test]
    fn bad_functions_and_choices_are_the_clients_error() {
        assert!(check_functions(&[weather()], &ToolChoice::Auto).is_ok());
        let mut f = weather();
        f.name = "get weather!".into();
        assert!(check_functions(&[f], &ToolChoice::Auto).unwrap_err().to_string().contains("is invalid"));
        let mut f = weather();
        f.parameters = json!("object");
        assert!(check_functions(&[f], &ToolChoice::Auto).unwrap_err().to_string().contains("must be a JSON Schema object"));
        let mut f = weather();
        f.parameters = json!({"type": "string"});
        assert!(check_functions(&[f], &ToolChoice::Auto).unwrap_err().to_string().contains("must describe a JSON object"));
        let mut f = weather();
        f.parameters = json!({"type": "object", "properties": {"x": {"type": "integer", "minimum": 5, "maximum": 1}}, "required": ["x"]});
        assert!(check_functions(&[f], &ToolChoice::Auto).unwrap_err().to_string().contains("constrained decoding"));
        assert!(check_functions(&[weather(), weather()], &ToolChoice::Auto).unwrap_err().to_string().contains("twice"));
        let e = check_functions(&[weather()], &ToolChoice::Named("nope".into())).unwrap_err().to_string();
        assert!(e.contains("\"nope\"") && e.contains("get_weather"), "{e}");
        assert!(check_functions(&[], &ToolChoice::Required).is_err());
    }

    #[test]
    fn the_model_writes_under_a_closed_copy_of_the_schema() {
        let c = closed(&json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "l": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}}}}));
        assert_eq!(c["additionalProperties"], false);
        assert_eq!(c["properties"]["a"]["additionalProperties"], false);
        assert_eq!(c["properties"]["l"]["items"]["additionalProperties"], false);
        let open = json!({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}});
        assert_eq!(closed(&open), open, "a schema that says what other keys may be is left as it is");
    }

    #[test]
    fn result_prompt_numbers_the_results() {
        let r = vec![ToolResult { call_id: "call_1".into(), name: "get_weather".into(), content: "{\"temp\": 21}".into() }];
        let m = result_prompt(&r, &[], "How warm is it?", Lang::En);
        assert!(m.last().unwrap().content.contains("[1] get_weather: {\"temp\": 21}"), "{:?}", m);
    }
}
