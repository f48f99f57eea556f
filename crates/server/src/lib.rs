//! Tresor's local HTTP API: a thin front door to tresor-assistant.
//!
//! - OpenAI-compatible: `GET /v1/models`, `POST /v1/chat/completions` (SSE
//!   streaming and not; the answer's sources in a top-level `sources` field,
//!   on the last chunk when streaming), `POST /v1/embeddings`.
//! - Native: `/api/health`, `/api/metrics` (Prometheus text), `/api/kb`
//!   (list, upload + ingest, search), `/api/threads`, `/api/feedback`.
//!
//! One engine thread owns the [`Assistant`] (models, knowledge bases, SQLite)
//! and runs jobs in order; requests wait in a bounded queue and get 429 when
//! it is full. Every endpoint but `/api/health` needs the bearer token. The
//! server binds loopback unless told otherwise, limits body sizes and, on
//! Ctrl-C / SIGTERM, stops accepting and finishes running streams.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tresor_assistant::engine::{kb_dir, kb_names};
use tresor_assistant::store::Feedback;
use tresor_assistant::{Answer, AskRequest, Assistant, AssistantError};
use tresor_llm::ChatMessage;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the engine failed to start: {0}")]
    Engine(String),
}

pub struct ServeOptions {
    pub addr: SocketAddr,
    pub token: String,
    /// Requests in the engine queue (running included) before 429.
    pub max_queue: usize,
    /// Largest JSON body in bytes.
    pub body_limit: usize,
    /// Largest uploaded document in bytes.
    pub upload_limit: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: String::new(),
            max_queue: 32,
            body_limit: 1 << 20,
            upload_limit: 64 << 20,
        }
    }
}

const TOKEN_FILE: &str = "api-token";

/// The API token: `explicit` when given, else the one stored in the data
/// dir, else a new random one written there with mode 0600. Returns the
/// token and whether it was generated now.
pub fn api_token(data_dir: &FsPath, explicit: Option<&str>) -> Result<(String, bool), ServeError> {
    if let Some(t) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((t.to_string(), false));
    }
    let path = data_dir.join(TOKEN_FILE);
    let io = |source| ServeError::Io { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(|source| ServeError::Io { path: data_dir.to_path_buf(), source })?;
    let token = format!("tresor-{}", hex::encode(rand::random::<[u8; 24]>()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    let mut f = opts.open(&path).map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok((token, true))
}

type Job = Box<dyn FnOnce(&mut Assistant) + Send>;

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    rejected: AtomicU64,
    unauthorized: AtomicU64,
    errors: AtomicU64,
}

#[derive(Clone)]
struct AppState {
    jobs: std::sync::mpsc::Sender<Job>,
    queue: Arc<Semaphore>,
    max_queue: usize,
    token: Arc<String>,
    data_dir: Arc<PathBuf>,
    started: Instant,
    counters: Arc<Counters>,
}

/// An error as OpenAI clients expect it: `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, message: message.into() }
    }
    fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", m)
    }
    fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", m)
    }
    fn busy(max: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "queue_full",
            format!("the engine queue is full ({max} requests); retry shortly"),
        )
    }
    fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal", m)
    }
    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
        }
        r
    }
}

impl From<AssistantError> for ApiError {
    fn from(e: AssistantError) -> Self {
        use AssistantError as E;
        match &e {
            E::EmptyQuestion | E::QuestionTooLong { .. } | E::BadKbName(_) | E::BadFeedback(_) | E::Invalid(_) => {
                ApiError::bad_request(e.to_string())
            }
            E::NoSuchThread(_) | E::NoSuchMessage(_) | E::Kb(tresor_kb::KbError::NoSuchKb(_)) => ApiError::not_found(e.to_string()),
            E::Models(_) => ApiError::not_found(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "body_too_large", r.body_text());
        }
        ApiError::bad_request(format!("invalid JSON body: {}", r.body_text()))
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl AppState {
    fn permit(&self) -> ApiResult<OwnedSemaphorePermit> {
        self.queue.clone().try_acquire_owned().map_err(|_| {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            ApiError::busy(self.max_queue)
        })
    }

    /// Runs `f` on the engine thread and waits for its result.
    async fn call<T: Send + 'static>(&self, f: impl FnOnce(&mut Assistant) -> T + Send + 'static) -> ApiResult<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |a| {
                let _ = tx.send(f(a));
            }))
            .map_err(|_| ApiError::internal("the engine has stopped"))?;
        rx.await.map_err(|_| ApiError::internal("the engine dropped the request"))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    s.counters.requests.fetch_add(1, Ordering::Relaxed);
    if req.uri().path() == "/api/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), s.token.as_bytes()) => next.run(req).await,
        _ => {
            s.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "missing or wrong bearer token (Authorization: Bearer TOKEN; the token is in the data dir's api-token file)",
            )
            .into_response()
        }
    }
}

/// The router over a running engine (exposed for tests).
fn router(state: AppState, opts: &ServeOptions) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/api/health", get(health))
        .route("/api/metrics", get(metrics))
        .route("/api/kb", get(list_kbs))
        .route("/api/kb/{name}/search", get(search_kb))
        .route("/api/kb/{name}/documents", post(upload).layer(DefaultBodyLimit::max(opts.upload_limit)))
        .route("/api/threads", get(list_threads).post(create_thread))
        .route("/api/threads/{id}", get(get_thread).delete(delete_thread))
        .route("/api/threads/{id}/messages", post(thread_message))
        .route("/api/feedback", post(feedback))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(opts.body_limit))
        .with_state(state)
}

/// Serves until Ctrl-C / SIGTERM. `build` creates the engine on its own thread.
pub fn serve(
    opts: ServeOptions,
    data_dir: PathBuf,
    build: Box<dyn FnOnce() -> Result<Assistant, String> + Send>,
    on_ready: Box<dyn FnOnce(SocketAddr) + Send>,
) -> Result<(), ServeError> {
    let (jobs, rx) = std::sync::mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let engine = std::thread::Builder::new()
        .name("tresor-engine".into())
        .spawn(move || {
            let mut a = match build() {
                Ok(a) => {
                    let _ = ready_tx.send(Ok(()));
                    a
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(job) = rx.recv() {
                job(&mut a);
            }
        })
        .map_err(|e| ServeError::Engine(e.to_string()))?;
    ready_rx.recv().map_err(|e| ServeError::Engine(e.to_string()))?.map_err(ServeError::Engine)?;
    let state = AppState {
        jobs,
        queue: Arc::new(Semaphore::new(opts.max_queue.max(1))),
        max_queue: opts.max_queue.max(1),
        token: Arc::new(opts.token.clone()),
        data_dir: Arc::new(data_dir),
        started: Instant::now(),
        counters: Arc::new(Counters::default()),
    };
    let app = router(state, &opts);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Engine(e.to_string()))?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(opts.addr).await.map_err(|source| ServeError::Bind { addr: opts.addr, source })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind { addr: opts.addr, source })?;
        on_ready(local);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|source| ServeError::Bind { addr: local, source })
    })?;
    drop(engine);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing running requests");
}

// ---------------------------------------------------------------- OpenAI-compatible

const ROUTED_MODEL: &str = "tresor";

async fn list_models(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let models = s.call(|a| a.available_models()).await?;
    let created = now();
    let mut data = vec![json!({"id": ROUTED_MODEL, "object": "model", "created": created, "owned_by": "tresor", "role": "routed"})];
    for (id, role) in models {
        data.push(json!({"id": id, "object": "model", "created": created, "owned_by": "tresor", "role": role}));
    }
    Ok(Json(json!({"object": "list", "data": data})))
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
    #[serde(default)]
    content: Value,
}

fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

fn pick_kb(data_dir: &FsPath, kb: Option<String>) -> ApiResult<Option<String>> {
    match kb {
        Some(k) => {
            let dir = kb_dir(data_dir, &k).map_err(ApiError::from)?;
            if !tresor_kb::Kb::exists(&dir) {
                return Err(ApiError::not_found(format!("knowledge base `{k}` does not exist")));
            }
            Ok(Some(k))
        }
        None => Ok(kb_names(data_dir).into_iter().find(|n| n == "default")),
    }
}

fn ask_request(s: &AppState, body: ChatBody, models: &[(String, String)]) -> ApiResult<(AskRequest, String)> {
    let last_user = body.messages.iter().rposition(|m| m.role == "user").ok_or_else(|| ApiError::bad_request("messages has no user message"))?;
    let question = content_text(&body.messages[last_user].content);
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
    let kb = pick_kb(&s.data_dir, body.kb)?;
    Ok((AskRequest { question, kb, history, model, no_cache: body.no_cache, ..Default::default() }, requested))
}

fn tresor_meta(a: &Answer) -> Value {
    json!({
        "grounded": a.grounded, "refused": a.refused, "cache_hit": a.cache_hit, "route": a.route,
        "routing": a.routing, "model": a.model, "timings": a.timings, "lang": a.lang,
    })
}

fn usage(a: &Answer) -> Value {
    json!({"prompt_tokens": a.tokens.prompt, "completion_tokens": a.tokens.completion, "total_tokens": a.tokens.prompt + a.tokens.completion})
}

enum Ev {
    Text(String),
    Done(Box<Result<Answer, AssistantError>>),
}

async fn chat_completions(State(s): State<AppState>, body: Result<Json<ChatBody>, JsonRejection>) -> ApiResult<Response> {
    let Json(body) = body?;
    let permit = s.permit()?;
    let models = s.call(|a| a.available_models()).await?;
    let stream = body.stream;
    let (req, model_name) = ask_request(&s, body, &models)?;
    if req.question.trim().is_empty() {
        return Err(ApiError::bad_request("the last user message is empty"));
    }
    let id = format!("chatcmpl-{}", hex::encode(rand::random::<[u8; 12]>()));
    let created = now();
    if !stream {
        let a = s.call(move |a| a.answer(&req, &mut |_| {})).await?;
        drop(permit);
        let a = a.map_err(|e| {
            s.counters.errors.fetch_add(1, Ordering::Relaxed);
            ApiError::from(e)
        })?;
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a.answer}, "finish_reason": "stop"}],
            "usage": usage(&a), "sources": a.sources, "tresor": tresor_meta(&a),
        }))
        .into_response());
    }
    let (tx, rx) = mpsc::unbounded_channel::<Ev>();
    let tx2 = tx.clone();
    s.jobs
        .send(Box::new(move |a| {
            let r = a.answer(&req, &mut |piece| {
                let _ = tx.send(Ev::Text(piece.to_string()));
            });
            let _ = tx2.send(Ev::Done(Box::new(r)));
            drop(permit);
        }))
        .map_err(|_| ApiError::internal("the engine has stopped"))?;
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model_name,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), None);
    // (events, rx, finished)
    let init: (Vec<Event>, Option<mpsc::UnboundedReceiver<Ev>>) = (vec![Event::default().data(first.to_string())], Some(rx));
    let events = futures_util::stream::unfold(init, move |(mut pending, mut rx)| {
        let chunk = chunk.clone();
        async move {
            loop {
                if !pending.is_empty() {
                    let e = pending.remove(0);
                    return Some((Ok::<Event, std::convert::Infallible>(e), (pending, rx)));
                }
                let r = rx.as_mut()?;
                match r.recv().await {
                    Some(Ev::Text(t)) => pending.push(Event::default().data(chunk(json!({"content": t}), None).to_string())),
                    Some(Ev::Done(r)) => {
                        match *r {
                            Ok(a) => {
                                let mut last = chunk(json!({}), Some("stop"));
                                last["sources"] = json!(a.sources);
                                last["usage"] = usage(&a);
                                last["tresor"] = tresor_meta(&a);
                                pending.push(Event::default().data(last.to_string()));
                            }
                            Err(e) => pending.push(Event::default().data(ApiError::from(e).body().to_string())),
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

#[derive(Deserialize)]
struct EmbedBody {
    input: Value,
    #[serde(default)]
    model: Option<String>,
}

async fn embeddings(State(s): State<AppState>, body: Result<Json<EmbedBody>, JsonRejection>) -> ApiResult<Json<Value>> {
    let Json(body) = body?;
    let texts: Vec<String> = match &body.input {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) if a.iter().all(Value::is_string) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        _ => return Err(ApiError::bad_request("`input` must be a string or an array of strings (token arrays are not supported)")),
    };
    if texts.is_empty() || texts.len() > 256 {
        return Err(ApiError::bad_request("`input` must hold 1 to 256 texts"));
    }
    let _permit = s.permit()?;
    let embedder = s.call(|a| a.embedder_arc()).await?;
    let (vecs, tokens, id) = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = texts.iter().map(|t| embedder.count_tokens(t)).sum();
        embedder.embed(&refs).map(|v| (v, tokens, embedder.model_id()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let data: Vec<Value> =
        vecs.into_iter().enumerate().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect();
    Ok(Json(json!({"object": "list", "data": data, "model": body.model.unwrap_or(id),
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})))
}

// ---------------------------------------------------------------- native

async fn health(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "uptime_s": s.started.elapsed().as_secs()}))
}

async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let (m, cache) = s.call(|a| (a.metrics.clone(), a.cache_stats().ok())).await?;
    let c = &s.counters;
    let in_flight = s.max_queue - s.queue.available_permits();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
    };
    metric("tresor_http_requests_total", "counter", "HTTP requests received.", c.requests.load(Ordering::Relaxed).to_string());
    metric("tresor_http_rejected_total", "counter", "Requests answered 429 (queue full).", c.rejected.load(Ordering::Relaxed).to_string());
    metric("tresor_http_unauthorized_total", "counter", "Requests answered 401.", c.unauthorized.load(Ordering::Relaxed).to_string());
    metric("tresor_http_errors_total", "counter", "Answers that failed.", c.errors.load(Ordering::Relaxed).to_string());
    metric("tresor_queue_in_flight", "gauge", "Requests queued or running in the engine.", in_flight.to_string());
    metric("tresor_answers_total", "counter", "Answers given.", m.answers.to_string());
    metric("tresor_answers_refused_total", "counter", "Answers that declined (not found, out of scope).", m.refused.to_string());
    metric("tresor_answers_grounded_total", "counter", "Answers with every sentence supported by a cited source.", m.grounded.to_string());
    metric("tresor_answers_extractive_total", "counter", "Answers taken from the passages after the model's text failed validation.", m.extractive.to_string());
    metric("tresor_cache_hits_total", "counter", "Semantic cache hits (this process).", m.cache_hits.to_string());
    if let Some(cs) = cache {
        metric("tresor_cache_entries", "gauge", "Semantic cache entries.", cs.entries.to_string());
        metric("tresor_cache_lookups_hit_total", "counter", "Semantic cache hits (all time).", cs.hits.to_string());
        metric("tresor_cache_lookups_miss_total", "counter", "Semantic cache misses (all time).", cs.misses.to_string());
    }
    metric("tresor_answer_ttft_ms_sum", "counter", "Sum of time to first token over answers, ms.", format!("{:.1}", m.ttft_ms_sum));
    metric("tresor_answer_total_ms_sum", "counter", "Sum of answer latency, ms.", format!("{:.1}", m.total_ms_sum));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn list_kbs(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let dir = s.data_dir.as_ref().clone();
    let kbs = s
        .call(move |_| {
            kb_names(&dir)
                .into_iter()
                .filter_map(|n| {
                    let kb = tresor_kb::Kb::open_existing(&kb_dir(&dir, &n).ok()?).ok()?;
                    let st = kb.stats(&n).ok()?;
                    Some(json!({"name": n, "documents": st.documents, "chunks": st.chunks, "embedder": st.embedder}))
                })
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(json!({"data": kbs})))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    #[serde(default)]
    k: Option<usize>,
}

async fn search_kb(State(s): State<AppState>, Path(name): Path<String>, Query(q): Query<SearchQuery>) -> ApiResult<Json<Value>> {
    pick_kb(&s.data_dir, Some(name.clone()))?;
    let _permit = s.permit()?;
    let res = s.call(move |a| a.search(&name, &q.q, q.k.unwrap_or(5))).await??;
    Ok(Json(json!({"data": res.hits, "trace": res.trace})))
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: String,
}

async fn upload(State(s): State<AppState>, Path(name): Path<String>, Query(q): Query<UploadQuery>, body: Bytes) -> ApiResult<Json<Value>> {
    kb_dir(&s.data_dir, &name)?;
    let file = FsPath::new(&q.filename)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.') && !f.is_empty())
        .ok_or_else(|| ApiError::bad_request("`filename` must be a plain file name, e.g. ?filename=policy.md"))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the uploaded document is empty"));
    }
    let _permit = s.permit()?;
    let dir = s.data_dir.join("uploads").join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let path = dir.join(&file);
    std::fs::write(&path, &body).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    let rep = s.call(move |a| a.ingest(&name, &[path])).await??;
    Ok(Json(serde_json::to_value(rep).unwrap_or_default()))
}

async fn list_threads(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let t = s.call(|a| a.threads().threads()).await??;
    Ok(Json(json!({"data": t})))
}

#[derive(Deserialize)]
struct NewThread {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    kb: Option<String>,
}

async fn create_thread(State(s): State<AppState>, body: Result<Json<NewThread>, JsonRejection>) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(b) = body?;
    let kb = pick_kb(&s.data_dir, b.kb)?;
    let title = b.title.unwrap_or_else(|| "New conversation".into());
    let t = s.call(move |a| a.threads().create_thread(&title, kb.as_deref()).and_then(|id| a.threads().thread(id))).await??;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

async fn get_thread(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (t, m) = s.call(move |a| a.threads().thread(id).and_then(|t| Ok((t, a.threads().messages(id)?)))).await??;
    Ok(Json(json!({"thread": t, "messages": m})))
}

async fn delete_thread(State(s): State<AppState>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    s.call(move |a| a.threads().delete_thread(id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ThreadMessage {
    content: String,
}

async fn thread_message(State(s): State<AppState>, Path(id): Path<i64>, body: Result<Json<ThreadMessage>, JsonRejection>) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    let _permit = s.permit()?;
    let a = s
        .call(move |a| {
            let kb = a.threads().thread(id)?.kb;
            a.answer(&AskRequest { question: b.content, kb, thread: Some(id), ..Default::default() }, &mut |_| {})
        })
        .await??;
    Ok(Json(serde_json::to_value(a).unwrap_or_default()))
}

async fn feedback(State(s): State<AppState>, body: Result<Json<Feedback>, JsonRejection>) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(f) = body?;
    let id = s.call(move |a| a.threads().add_feedback(&f)).await??;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}
