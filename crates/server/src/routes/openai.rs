//! The OpenAI-compatible endpoints: `GET /v1/models`, `POST
//! /v1/chat/completions` (SSE streaming and not; the answer's sources in a
//! top-level `sources` field, on the last chunk when streaming, and Tresor's
//! answer metadata in `tresor`; the built-in tools' `actions` next to
//! `sources`; OpenAI function calling with `tools` / `tool_choice`, the
//! calls as `tool_calls` and `tool` messages continuing the conversation,
//! decided by the engine's `Assistant::function_call`) and `POST
//! /v1/embeddings`. Owns the
//! translation between OpenAI's request/response shapes and the engine's
//! [`AskRequest`] / [`Answer`]; never changes a field name OpenAI clients
//! read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tresor_assistant::{Action, Answer, AskRequest, FunctionCall, FunctionDef, FunctionOutcome, FunctionRequest, ModelChoice, Source, Timings, ToolChoice, ToolResult};
use tresor_llm::ChatMessage;

use super::kb::pick_kb;
use super::{now, ApiJson};
use crate::error::{ApiError, ApiResult};
use crate::limits::TooLarge;
use crate::state::{not_opened, AppState, Ws};

/// The model id that lets Tresor route (also `auto` or none).
const ROUTED_MODEL: &str = "tresor";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
}

// ---------------------------------------------------------------- bodies

/// `{"object": "list", "data": [...]}`.
#[derive(Serialize)]
struct ObjectList<T> {
    object: &'static str,
    data: Vec<T>,
}

impl<T> ObjectList<T> {
    fn new(data: Vec<T>) -> Self {
        ObjectList { object: "list", data }
    }
}

#[derive(Serialize)]
struct ModelObject {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    /// `routed` for [`ROUTED_MODEL`], else the model's role (chat-small, ...).
    role: String,
}

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMsg>,
    #[serde(default)]
    stream: bool,
    /// Tresor extension: the knowledge base (default: `default` when it exists).
    #[serde(default)]
    kb: Option<String>,
    /// Tresor extension: skip the semantic cache.
    #[serde(default)]
    no_cache: bool,
    /// Tresor extension: a stored conversation (`/api/threads`): its turns are
    /// the history (`messages` before the last user message are ignored) and
    /// this turn is saved to it, so feedback and handoffs can name it.
    #[serde(default)]
    thread: Option<i64>,
    /// The client's functions: `[{"type": "function", "function": {name, description, parameters}}]`
    /// (checked in [`functions`] for a clear error).
    #[serde(default)]
    tools: Option<Value>,
    /// "none" | "auto" | "required" | `{"type": "function", "function": {"name": N}}`.
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
struct ChatMsg {
    role: String,
    /// A string, or an array of parts whose `text`s count.
    #[serde(default)]
    content: Value,
    /// A `tool` message: the call it answers.
    #[serde(default)]
    tool_call_id: Option<String>,
    /// An assistant message's calls: `[{id, type, function: {name, arguments}}]`.
    #[serde(default)]
    tool_calls: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

/// `chat.completion`: the whole answer at once.
#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: [Choice<'a>; 1],
    usage: Usage,
    sources: &'a [Source],
    /// The engine's actions of built-in tools (`[]` when none ran).
    actions: &'a [Action],
    tresor: TresorMeta<'a>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// `chat.completion.chunk`: one SSE event of a streamed answer; the last one
/// carries `sources`, `usage` and `tresor`.
#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChunkChoice; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    sources: Option<&'a [Source]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actions: Option<&'a [Action]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tresor: Option<TresorMeta<'a>>,
}

#[derive(Serialize)]
struct ChunkChoice {
    index: u32,
    delta: Delta,
    finish_reason: Option<&'static str>,
}

/// The new text of a chunk (`role` on the first one only; nothing on the last).
#[derive(Serialize, Default)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
}

impl Usage {
    fn of(a: &Answer) -> Usage {
        Usage { prompt_tokens: a.tokens.prompt, completion_tokens: a.tokens.completion, total_tokens: a.tokens.prompt + a.tokens.completion }
    }
}

/// Tresor's extension: how the answer came about.
#[derive(Serialize)]
struct TresorMeta<'a> {
    grounded: bool,
    refused: bool,
    cache_hit: bool,
    route: &'a str,
    routing: &'a ModelChoice,
    model: &'a str,
    timings: &'a Timings,
    lang: &'a str,
}

impl<'a> TresorMeta<'a> {
    fn of(a: &'a Answer) -> Self {
        TresorMeta {
            grounded: a.grounded,
            refused: a.refused,
            cache_hit: a.cache_hit,
            route: &a.route,
            routing: &a.routing,
            model: &a.model,
            timings: &a.timings,
            lang: &a.lang,
        }
    }
}

#[derive(Deserialize)]
struct EmbedBody {
    /// A string or an array of strings (checked in the handler, for a clear error).
    input: Value,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Serialize)]
struct EmbeddingList {
    object: &'static str,
    data: Vec<Embedding>,
    model: String,
    usage: EmbedUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Serialize)]
struct EmbedUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

// ---------------------------------------------------------------- handlers

async fn list_models(State(s): State<AppState>, ws: Ws) -> ApiResult<Json<ObjectList<ModelObject>>> {
    let models = s.call(&ws, |a| a.available_models()).await?;
    let created = now();
    let model = |id: String, role: String| ModelObject { id, object: "model", created, owned_by: "tresor", role };
    let mut data = vec![model(ROUTED_MODEL.into(), "routed".into())];
    data.extend(models.into_iter().map(|(id, role)| model(id, role)));
    Ok(Json(ObjectList::new(data)))
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The engine's request for a chat body: the last user message is the
/// question, the user/assistant messages before it the history. Returns it
/// with the model name to answer under.
fn ask_request(s: &AppState, ws: &Ws, body: ChatBody, models: &[(String, String)]) -> ApiResult<(AskRequest, String)> {
    let last_user = body.messages.iter().rposition(|m| m.role == "user").ok_or_else(|| ApiError::bad_request("messages has no user message"))?;
    let question = content_text(&body.messages[last_user].content);
    let texts: Vec<String> = body.messages.iter().map(|m| content_text(&m.content)).collect();
    s.prompt_limits.check(&question, texts.iter().map(String::as_str)).map_err(ApiError::too_large)?;
    let history: Vec<ChatMessage> = body.messages[..last_user]
        .iter()
        .filter_map(|m| match m.role.as_str() {
            "user" => Some(ChatMessage::user(content_text(&m.content))),
            "assistant" if !content_text(&m.content).trim().is_empty() => Some(ChatMessage::assistant(content_text(&m.content))),
            _ => None,
        })
        .collect();
    let requested = body.model.clone().unwrap_or_else(|| ROUTED_MODEL.into());
    let model = match requested.as_str() {
        ROUTED_MODEL | "auto" | "" => None,
        m if models.iter().any(|(id, _)| id == m) => Some(m.to_string()),
        m => {
            let known: Vec<&str> = models.iter().map(|(id, _)| id.as_str()).collect();
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("model `{m}` is not installed (use `{ROUTED_MODEL}` or one of: {})", known.join(", ")),
            ));
        }
    };
    let kb = pick_kb(&ws.dir, body.kb)?;
    Ok((AskRequest { question, kb, history, thread: body.thread, model, no_cache: body.no_cache, actor: Some(ws.actor.to_string()), ..Default::default() }, requested))
}

/// The client's functions, choice and tool results of a chat body, when
/// function calling is asked for (`tools`, a `tool_choice` other than
/// none/auto, or `tool` messages after the last user message); None: a plain
/// answer. Malformed shapes are 400 with what is wrong; the engine checks
/// the rest (names, schemas, the named function).
fn functions(body: &ChatBody) -> ApiResult<Option<(Vec<FunctionDef>, ToolChoice, Vec<ToolResult>)>> {
    let bad = |m: String| Err(ApiError::bad_request(m));
    let mut defs = Vec::new();
    match &body.tools {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            for (i, t) in tools.iter().enumerate() {
                if t.get("type").and_then(Value::as_str) != Some("function") {
                    return bad(format!("tools[{i}].type must be \"function\" (the only kind of tool supported)"));
                }
                let Some(f) = t.get("function").filter(|f| f.is_object()) else {
                    return bad(format!("tools[{i}].function must be an object with a `name`"));
                };
                let Some(name) = f.get("name").and_then(Value::as_str) else {
                    return bad(format!("tools[{i}].function.name must be a string"));
                };
                let description = match f.get("description") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(d)) => d.clone(),
                    Some(_) => return bad(format!("tools[{i}].function.description must be a string")),
                };
                let parameters = match f.get("parameters") {
                    None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
                    Some(p) => p.clone(),
                };
                defs.push(FunctionDef { name: name.to_string(), description, parameters });
            }
        }
        Some(_) => return bad("`tools` must be an array of {\"type\": \"function\", \"function\": {...}}".into()),
    }
    let choice = match &body.tool_choice {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(c)) => match c.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => return bad(format!("tool_choice {other:?} is not one of \"none\", \"auto\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}")),
        },
        Some(v) => match v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
            Some(n) if v.get("type").and_then(Value::as_str) == Some("function") => ToolChoice::Named(n.to_string()),
            _ => return bad("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}".into()),
        },
    };
    // the tool results of this turn: `tool` messages after the last user message, named by the call they answer
    let last_user = body.messages.iter().rposition(|m| m.role == "user");
    let after = last_user.map_or(0, |i| i + 1);
    let mut results = Vec::new();
    for (i, m) in body.messages.iter().enumerate().skip(after) {
        if m.role != "tool" {
            continue;
        }
        let Some(id) = m.tool_call_id.clone() else {
            return bad(format!("messages[{i}] has role \"tool\" but no tool_call_id"));
        };
        let name = body.messages[..i]
            .iter()
            .filter_map(|a| a.tool_calls.as_ref().and_then(Value::as_array))
            .flatten()
            .find(|c| c.get("id").and_then(Value::as_str) == Some(id.as_str()))
            .and_then(|c| c.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).map(str::to_string))
            .or_else(|| m.name.clone())
            .unwrap_or_else(|| "function".into());
        results.push(ToolResult { call_id: id, name, content: content_text(&m.content) });
    }
    let wanted = !defs.is_empty() || !results.is_empty() || matches!(choice, ToolChoice::Required | ToolChoice::Named(_));
    Ok(wanted.then_some((defs, choice, results)))
}

/// What the engine thread tells a streaming answer.
enum Ev {
    Text(String),
    Done(Box<Result<FunctionOutcome, ApiError>>),
}

/// The id, creation time and model name every chunk of one answer repeats.
#[derive(Clone)]
struct ChunkHead {
    id: String,
    created: u64,
    model: String,
}

impl ChunkHead {
    fn chunk<'a>(&'a self, delta: Delta, finish: Option<&'static str>) -> ChatChunk<'a> {
        ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [ChunkChoice { index: 0, delta, finish_reason: finish }],
            sources: None,
            actions: None,
            usage: None,
            tresor: None,
        }
    }

    /// The last chunk: `finish_reason: stop` with the answer's sources, actions, usage and metadata.
    fn last<'a>(&'a self, a: &'a Answer) -> ChatChunk<'a> {
        ChatChunk { sources: Some(&a.sources), actions: Some(&a.actions), usage: Some(Usage::of(a)), tresor: Some(TresorMeta::of(a)), ..self.chunk(Delta::default(), Some("stop")) }
    }

    /// A function call as OpenAI streams it: the call's id and name (with the role), the
    /// arguments in pieces, then `finish_reason: tool_calls` with usage and Tresor's extras.
    fn call_chunks(&self, c: &FunctionCall) -> Vec<Value> {
        let head = |delta: Value, finish: Value| {
            serde_json::json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut out = vec![head(
            serde_json::json!({"role": "assistant", "content": null,
                "tool_calls": [{"index": 0, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}]}),
            Value::Null,
        )];
        let chars: Vec<char> = c.arguments.chars().collect();
        for piece in chars.chunks(24) {
            let piece: String = piece.iter().collect();
            out.push(head(serde_json::json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), Value::Null));
        }
        let mut last = head(serde_json::json!({}), "tool_calls".into());
        let extra = call_extras(c);
        for (k, v) in extra.as_object().expect("an object") {
            last[k] = v.clone();
        }
        out.push(last);
        out
    }

    /// `chat.completion` with one function call.
    fn call_completion(&self, c: &FunctionCall) -> Value {
        let mut v = serde_json::json!({"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}]},
                "finish_reason": "tool_calls"}]});
        for (k, x) in call_extras(c).as_object().expect("an object") {
            v[k] = x.clone();
        }
        v
    }
}

/// Usage and Tresor's extras of a function call (no sources, no actions: nothing ran).
fn call_extras(c: &FunctionCall) -> Value {
    serde_json::json!({
        "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens, "total_tokens": c.prompt_tokens + c.completion_tokens},
        "sources": [], "actions": [],
        "tresor": {"route": "function_call", "reason": c.reason, "model": c.model, "timings": {"total_ms": c.total_ms}},
    })
}

/// One SSE `data:` event holding `v` as JSON.
fn event(v: &impl Serialize) -> Event {
    Event::default().data(serde_json::to_string(v).expect("API bodies serialise"))
}

/// The whole answer at once.
fn completion(head: ChunkHead, a: &Answer) -> Response {
    let done = ChatCompletion {
        id: head.id,
        object: "chat.completion",
        created: head.created,
        model: head.model,
        choices: [Choice { index: 0, message: AssistantMessage { role: "assistant", content: &a.answer }, finish_reason: "stop" }],
        usage: Usage::of(a),
        sources: &a.sources,
        actions: &a.actions,
        tresor: TresorMeta::of(a),
    };
    Json(done).into_response()
}

async fn chat_completions(State(s): State<AppState>, ws: Ws, ApiJson(body): ApiJson<ChatBody>) -> ApiResult<Response> {
    let fns = functions(&body)?;
    let permit = s.permit(&ws)?;
    let models = s.call(&ws, |a| a.available_models()).await?;
    let stream = body.stream;
    let (mut req, model) = ask_request(&s, &ws, body, &models)?;
    // set when the client goes away (the stream is dropped): the engine stops generating
    let cancel = Arc::new(AtomicBool::new(false));
    req.cancel = Some(cancel.clone());
    if req.question.trim().is_empty() && fns.as_ref().is_none_or(|(_, _, r)| r.is_empty()) {
        return Err(ApiError::bad_request("the last user message is empty"));
    }
    // the engine's job: a plain answer, or a turn with the client's functions
    let run = move |a: &mut tresor_assistant::Assistant, on_text: &mut dyn FnMut(&str)| -> tresor_assistant::Result<FunctionOutcome> {
        match fns {
            Some((functions, choice, results)) => a.function_call(&FunctionRequest { ask: req, functions, choice, results }, on_text),
            None => a.answer(&req, on_text).map(|x| FunctionOutcome::Answer(Box::new(x))),
        }
    };
    let head = ChunkHead { id: format!("chatcmpl-{}", hex::encode(rand::random::<[u8; 12]>())), created: now(), model };
    if !stream {
        // the client hanging up drops this future, and the guard stops the generation
        let _guard = CancelOnDrop(cancel);
        let a = s.call(&ws, move |a| run(a, &mut |_| {})).await?;
        drop(permit);
        let a = a.map_err(|e| {
            ws.counters.errors.fetch_add(1, Ordering::Relaxed);
            ApiError::from(e)
        })?;
        return Ok(match a {
            FunctionOutcome::Answer(a) => completion(head, &a),
            FunctionOutcome::Call(c) => Json(head.call_completion(&c)).into_response(),
        });
    }
    let (tx, rx) = mpsc::unbounded_channel::<Ev>();
    let tx2 = tx.clone();
    let gone = cancel.clone();
    let counters = ws.counters.clone();
    s.send(
        &ws,
        Box::new(move |a| {
            let r = match a {
                Ok(a) => run(a, &mut |piece| {
                    if tx.send(Ev::Text(piece.to_string())).is_err() {
                        gone.store(true, Ordering::Relaxed);
                    }
                })
                .map_err(ApiError::from),
                Err(e) => Err(not_opened(e)),
            };
            if r.is_err() {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx2.send(Ev::Done(Box::new(r)));
            drop(permit);
        }),
    )?;
    // the role chunk goes first, once the engine says whether text or a function call follows
    // (events not yet sent, whether the role chunk went out, the engine's channel until done)
    let init: (Vec<Event>, bool, Option<mpsc::UnboundedReceiver<Ev>>, CancelOnDrop) = (Vec::new(), false, Some(rx), CancelOnDrop(cancel));
    let events = futures_util::stream::unfold(init, move |(mut pending, mut started, mut rx, guard)| {
        let head = head.clone();
        async move {
            loop {
                if !pending.is_empty() {
                    let e = pending.remove(0);
                    return Some((Ok::<Event, std::convert::Infallible>(e), (pending, started, rx, guard)));
                }
                let r = rx.as_mut()?;
                let role = |started: &mut bool, pending: &mut Vec<Event>| {
                    if !*started {
                        pending.push(event(&head.chunk(Delta { role: Some("assistant"), content: Some(String::new()) }, None)));
                        *started = true;
                    }
                };
                match r.recv().await {
                    Some(Ev::Text(t)) => {
                        role(&mut started, &mut pending);
                        pending.push(event(&head.chunk(Delta { role: None, content: Some(t) }, None)));
                    }
                    Some(Ev::Done(r)) => {
                        match *r {
                            Ok(FunctionOutcome::Answer(a)) => {
                                role(&mut started, &mut pending);
                                pending.push(event(&head.last(&a)));
                            }
                            Ok(FunctionOutcome::Call(c)) => pending.extend(head.call_chunks(&c).iter().map(event)),
                            Err(e) => pending.push(event(&e.body())),
                        }
                        pending.push(Event::default().data("[DONE]"));
                        rx = None;
                    }
                    None => return None,
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// Raises the cancel flag of a generation when dropped: the stream that
/// holds it is dropped when its client disconnects (or when it has ended,
/// when the flag no longer matters).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn embeddings(State(s): State<AppState>, ws: Ws, ApiJson(body): ApiJson<EmbedBody>) -> ApiResult<Json<EmbeddingList>> {
    let texts: Vec<String> = match &body.input {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => return Err(ApiError::bad_request("`input` must be a string or an array of strings (token arrays are not supported)")),
    };
    if texts.is_empty() || texts.len() > 256 {
        return Err(ApiError::bad_request("`input` must hold 1 to 256 texts"));
    }
    let total: usize = texts.iter().map(|t| t.chars().count()).sum();
    if total > s.prompt_limits.max_messages_chars {
        return Err(ApiError::too_large(TooLarge::Messages { chars: total, max: s.prompt_limits.max_messages_chars }));
    }
    let _permit = s.permit(&ws)?;
    let embedder = s.call(&ws, |a| a.embedder_arc()).await?;
    let (vecs, tokens, id) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = texts.iter().map(|t| embedder.count_tokens(t)).sum();
        embedder.embed(&refs).map(|v| (v, tokens, embedder.model_id()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let data = vecs.into_iter().enumerate().map(|(index, embedding)| Embedding { object: "embedding", index, embedding }).collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model: body.model.unwrap_or(id),
        usage: EmbedUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}
