//! The OpenAI-compatible endpoints: `GET /v1/models`, `POST
//! /v1/chat/completions` (SSE streaming and not; the answer's sources in a
//! top-level `sources` field, on the last chunk when streaming, and Tresor's
//! answer metadata in `tresor`) and `POST /v1/embeddings`. Owns the
//! translation between OpenAI's request/response shapes and the engine's
//! [`AskRequest`] / [`Answer`]; never changes a field name OpenAI clients
//! read.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tresor_assistant::{Answer, AskRequest, ModelChoice, Source, Timings};
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
}

#[derive(Deserialize)]
struct ChatMsg {
    role: String,
    /// A string, or an array of parts whose `text`s count.
    #[serde(default)]
    content: Value,
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
            "assistant" => Some(ChatMessage::assistant(content_text(&m.content))),
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
    Ok((AskRequest { question, kb, history, model, no_cache: body.no_cache, actor: Some(ws.actor.to_string()), ..Default::default() }, requested))
}

/// What the engine thread tells a streaming answer.
enum Ev {
    Text(String),
    Done(Box<Result<Answer, ApiError>>),
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
            usage: None,
            tresor: None,
        }
    }

    /// The last chunk: `finish_reason: stop` with the answer's sources, usage and metadata.
    fn last<'a>(&'a self, a: &'a Answer) -> ChatChunk<'a> {
        ChatChunk { sources: Some(&a.sources), usage: Some(Usage::of(a)), tresor: Some(TresorMeta::of(a)), ..self.chunk(Delta::default(), Some("stop")) }
    }
}

/// One SSE `data:` event holding `v` as JSON.
fn event(v: &impl Serialize) -> Event {
    Event::default().data(serde_json::to_string(v).expect("API bodies serialise"))
}

async fn chat_completions(State(s): State<AppState>, ws: Ws, ApiJson(body): ApiJson<ChatBody>) -> ApiResult<Response> {
    let permit = s.permit(&ws)?;
    let models = s.call(&ws, |a| a.available_models()).await?;
    let stream = body.stream;
    let (req, model) = ask_request(&s, &ws, body, &models)?;
    if req.question.trim().is_empty() {
        return Err(ApiError::bad_request("the last user message is empty"));
    }
    let head = ChunkHead { id: format!("chatcmpl-{}", hex::encode(rand::random::<[u8; 12]>())), created: now(), model };
    if !stream {
        let a = s.call(&ws, move |a| a.answer(&req, &mut |_| {})).await?;
        drop(permit);
        let a = a.map_err(|e| {
            ws.counters.errors.fetch_add(1, Ordering::Relaxed);
            ApiError::from(e)
        })?;
        let done = ChatCompletion {
            id: head.id,
            object: "chat.completion",
            created: head.created,
            model: head.model,
            choices: [Choice { index: 0, message: AssistantMessage { role: "assistant", content: &a.answer }, finish_reason: "stop" }],
            usage: Usage::of(&a),
            sources: &a.sources,
            tresor: TresorMeta::of(&a),
        };
        return Ok(Json(done).into_response());
    }
    let (tx, rx) = mpsc::unbounded_channel::<Ev>();
    let tx2 = tx.clone();
    let counters = ws.counters.clone();
    s.send(
        &ws,
        Box::new(move |a| {
            let r = match a {
                Ok(a) => a
                    .answer(&req, &mut |piece| {
                        let _ = tx.send(Ev::Text(piece.to_string()));
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
    let first = event(&head.chunk(Delta { role: Some("assistant"), content: Some(String::new()) }, None));
    // (events not yet sent, the engine's channel until the answer is done)
    let init: (Vec<Event>, Option<mpsc::UnboundedReceiver<Ev>>) = (vec![first], Some(rx));
    let events = futures_util::stream::unfold(init, move |(mut pending, mut rx)| {
        let head = head.clone();
        async move {
            loop {
                if !pending.is_empty() {
                    let e = pending.remove(0);
                    return Some((Ok::<Event, std::convert::Infallible>(e), (pending, rx)));
                }
                let r = rx.as_mut()?;
                match r.recv().await {
                    Some(Ev::Text(t)) => pending.push(event(&head.chunk(Delta { role: None, content: Some(t) }, None))),
                    Some(Ev::Done(r)) => {
                        match *r {
                            Ok(a) => pending.push(event(&head.last(&a))),
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
