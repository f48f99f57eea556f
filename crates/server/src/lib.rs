//! Tresor's local HTTP API: a thin front door to tresor-assistant.
//!
//! - OpenAI-compatible: `GET /v1/models`, `POST /v1/chat/completions` (SSE
//!   streaming and not; the answer's sources in a top-level `sources` field,
//!   on the last chunk when streaming), `POST /v1/embeddings`.
//! - Native: `/api/health`, `/api/metrics` (Prometheus text), `/api/kb`
//!   (list, upload + ingest, search), `/api/threads`, `/api/feedback`.
//!
//! Workspaces: the server serves every workspace of the data root
//! (tresor_guard::workspace). A bearer token belongs to exactly one
//! workspace (its hash is stored there; the `--token` / `api-token` of the
//! serving workspace is scoped to it) and every request runs in the token's
//! workspace: its knowledge bases, threads, cache, audit and key. One
//! [`Assistant`] per workspace, opened on its first request; none of them
//! ever receives another workspace's request.
//!
//! One engine thread owns the assistants (models, knowledge bases, SQLite)
//! and runs jobs in order; requests wait in a bounded queue and get 429 when
//! it is full. Every endpoint but `/api/health` needs a bearer token. Abuse
//! limits ([`limits`]): a token bucket per token (429 with Retry-After),
//! prompt caps in characters and body/upload caps in bytes (413), all with
//! a JSON error body. The server binds loopback unless told otherwise and,
//! on Ctrl-C / SIGTERM, stops accepting and finishes running streams.

pub mod limits;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
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
use tresor_guard::workspace::{TokenIndex, Workspaces};
use tresor_llm::ChatMessage;

use crate::limits::{PromptLimits, RateLimit, RateLimiter, TooLarge};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the engine failed to start: {0}")]
    Engine(String),
    #[error("workspaces: {0}")]
    Workspace(#[from] tresor_guard::workspace::WorkspaceError),
}

pub struct ServeOptions {
    pub addr: SocketAddr,
    /// The data root (every workspace under it is served).
    pub root: PathBuf,
    /// The workspace `token` belongs to (and that is opened at start).
    pub workspace: String,
    /// A plain token scoped to `workspace` (`--token` / the `api-token` file); workspace tokens come from their hashes.
    pub token: String,
    /// Requests in the engine queue (running included) before 429.
    pub max_queue: usize,
    /// Largest JSON body in bytes.
    pub body_limit: usize,
    /// Largest uploaded document in bytes.
    pub upload_limit: usize,
    /// Requests per token (None: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// Prompt caps in characters.
    pub prompt_limits: PromptLimits,
}

/// Default `--rate-limit`: 120 requests a minute per token, all at once at most.
pub const DEFAULT_RATE_LIMIT: &str = "120/min";

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            root: PathBuf::new(),
            workspace: tresor_guard::workspace::DEFAULT.into(),
            token: String::new(),
            max_queue: 32,
            body_limit: 1 << 20,
            upload_limit: 64 << 20,
            rate_limit: Some(RateLimit::per_minute(120)),
            prompt_limits: PromptLimits::default(),
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

/// A job for the engine thread: the workspace it runs in and what to do with
/// that workspace's assistant (or with the error that kept it from opening).
type Job = (Ws, Work);
/// What a job does with its workspace's assistant.
type Work = Box<dyn FnOnce(Result<&mut Assistant, String>) + Send>;

/// Opens a workspace's assistant: (name, data dir) → engine. Runs on the engine thread.
pub type BuildAssistant = Box<dyn FnMut(&str, &FsPath) -> Result<Assistant, String> + Send>;

/// Counters of one workspace (what its own `/api/metrics` shows).
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    rejected: AtomicU64,
    rate_limited: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
}

/// The workspace a request runs in (set by [`auth`] from the token).
#[derive(Clone)]
struct Ws {
    name: Arc<str>,
    dir: Arc<PathBuf>,
    counters: Arc<Counters>,
}

/// Token → workspace, re-read when a token file or the set of workspaces
/// changes (checked at most once a second), so new tokens work and revoked
/// ones stop working while the server runs.
struct Tokens {
    workspaces: Workspaces,
    extra: Vec<(String, String)>,
    index: RwLock<TokenIndex>,
    checked: Mutex<Instant>,
}

impl Tokens {
    fn lookup(&self, token: &str) -> Option<tresor_guard::workspace::TokenMatch> {
        {
            let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            if checked.elapsed() >= Duration::from_secs(1) {
                *checked = Instant::now();
                let stale = self.index.read().unwrap_or_else(|p| p.into_inner()).is_stale(&self.workspaces);
                if stale {
                    match TokenIndex::load(&self.workspaces, &self.extra) {
                        Ok(i) => *self.index.write().unwrap_or_else(|p| p.into_inner()) = i,
                        Err(e) => tracing::warn!("keeping the previous API tokens: {e}"),
                    }
                }
            }
        }
        self.index.read().unwrap_or_else(|p| p.into_inner()).lookup(token).cloned()
    }
}

#[derive(Clone)]
struct AppState {
    jobs: std::sync::mpsc::Sender<Job>,
    queue: Arc<Semaphore>,
    max_queue: usize,
    tokens: Arc<Tokens>,
    limiter: Option<Arc<RateLimiter>>,
    prompt_limits: PromptLimits,
    upload_limit: usize,
    started: Instant,
    /// Requests without a valid token (server-wide: they belong to no workspace).
    unauthorized: Arc<AtomicU64>,
    counters: Arc<Mutex<HashMap<String, Arc<Counters>>>>,
}

/// An error as OpenAI clients expect it: `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, message: message.into(), retry_after: None }
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
    fn rate_limited(limit: RateLimit, wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limit_exceeded",
            format!(
                "too many requests for this API token (limit: {} at once, {:.2} per second); retry in {secs} s",
                limit.burst, limit.per_second
            ),
        );
        e.retry_after = Some(secs);
        e
    }
    fn too_large(t: TooLarge) -> Self {
        let code = match t {
            TooLarge::Prompt { .. } => "prompt_too_large",
            TooLarge::Messages { .. } => "messages_too_large",
        };
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", code, t.to_string())
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
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        r
    }
}

impl From<AssistantError> for ApiError {
    fn from(e: AssistantError) -> Self {
        use AssistantError as E;
        match &e {
            E::QuestionTooLong { chars, max } => ApiError::too_large(TooLarge::Prompt { chars: *chars, max: *max }),
            E::EmptyQuestion | E::BadKbName(_) | E::BadFeedback(_) | E::Invalid(_) => ApiError::bad_request(e.to_string()),
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

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A slot in the engine queue, counted in its workspace's in-flight gauge.
struct Permit {
    _slot: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppState {
    fn permit(&self, ws: &Ws) -> ApiResult<Permit> {
        let slot = self.queue.clone().try_acquire_owned().map_err(|_| {
            ws.counters.rejected.fetch_add(1, Ordering::Relaxed);
            ApiError::busy(self.max_queue)
        })?;
        ws.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Permit { _slot: slot, counters: ws.counters.clone() })
    }

    fn counters(&self, workspace: &str) -> Arc<Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry(workspace.to_string()).or_default().clone()
    }

    /// Sends a job to the engine thread, to run with `ws`'s assistant.
    fn send(&self, ws: &Ws, job: Work) -> ApiResult<()> {
        self.jobs.send((ws.clone(), job)).map_err(|_| ApiError::internal("the engine has stopped"))
    }

    /// Runs `f` with `ws`'s assistant on the engine thread and waits for its result.
    async fn call<T: Send + 'static>(&self, ws: &Ws, f: impl FnOnce(&mut Assistant) -> T + Send + 'static) -> ApiResult<T> {
        let (tx, rx) = oneshot::channel();
        self.send(
            ws,
            Box::new(move |a| {
                let _ = tx.send(a.map(f));
            }),
        )?;
        rx.await
            .map_err(|_| ApiError::internal("the engine dropped the request"))?
            .map_err(|e| ApiError::internal(format!("the workspace could not be opened: {e}")))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn auth(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/api/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    // a token only counts while its workspace exists
    let found = given
        .and_then(|t| s.tokens.lookup(t))
        .and_then(|m| s.tokens.workspaces.open(&m.workspace).ok().map(|dir| (m, dir)));
    let Some((m, dir)) = found else {
        s.unauthorized.fetch_add(1, Ordering::Relaxed);
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or wrong bearer token (Authorization: Bearer TOKEN; the token is in the data dir's api-token file, or from `tresor workspace token create NAME`)",
        )
        .into_response();
    };
    let counters = s.counters(&m.workspace);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(l) = &s.limiter {
        if let Err(wait) = l.check(&m.sha256, Instant::now()) {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return ApiError::rate_limited(l.limit(), wait).into_response();
        }
    }
    req.extensions_mut().insert(Ws { name: m.workspace.as_str().into(), dir: Arc::new(dir), counters });
    next.run(req).await
}

/// The router over a running engine.
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

/// Serves until Ctrl-C / SIGTERM. `build` opens a workspace's engine on the
/// engine thread: `opts.workspace`'s at start (so a broken set-up fails
/// now), the others on their first request.
pub fn serve(opts: ServeOptions, mut build: BuildAssistant, on_ready: Box<dyn FnOnce(SocketAddr) + Send>) -> Result<(), ServeError> {
    let workspaces = Workspaces::new(opts.root.clone());
    let first_dir = workspaces.open(&opts.workspace)?;
    let mut extra = Vec::new();
    if !opts.token.is_empty() {
        extra.push((opts.workspace.clone(), opts.token.clone()));
    }
    let index = TokenIndex::load(&workspaces, &extra)?;
    let (jobs, rx) = std::sync::mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let first = opts.workspace.clone();
    let engine = std::thread::Builder::new()
        .name("tresor-engine".into())
        .spawn(move || {
            let mut open: HashMap<Arc<str>, Assistant> = HashMap::new();
            match build(&first, &first_dir) {
                Ok(a) => {
                    open.insert(first.as_str().into(), a);
                    let _ = ready_tx.send(Ok(()));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            while let Ok((ws, job)) = rx.recv() {
                if !open.contains_key(&ws.name) {
                    match build(&ws.name, &ws.dir) {
                        Ok(a) => {
                            tracing::info!(workspace = %ws.name, "opened workspace");
                            open.insert(ws.name.clone(), a);
                        }
                        Err(e) => {
                            job(Err(e));
                            continue;
                        }
                    }
                }
                job(Ok(open.get_mut(&ws.name).expect("opened above")));
            }
        })
        .map_err(|e| ServeError::Engine(e.to_string()))?;
    ready_rx.recv().map_err(|e| ServeError::Engine(e.to_string()))?.map_err(ServeError::Engine)?;
    let state = AppState {
        jobs,
        queue: Arc::new(Semaphore::new(opts.max_queue.max(1))),
        max_queue: opts.max_queue.max(1),
        tokens: Arc::new(Tokens { workspaces, extra, index: RwLock::new(index), checked: Mutex::new(Instant::now()) }),
        limiter: opts.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
        prompt_limits: opts.prompt_limits,
        upload_limit: opts.upload_limit,
        started: Instant::now(),
        unauthorized: Arc::new(AtomicU64::new(0)),
        counters: Arc::new(Mutex::new(HashMap::new())),
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

async fn list_models(State(s): State<AppState>, Extension(ws): Extension<Ws>) -> ApiResult<Json<Value>> {
    let models = s.call(&ws, |a| a.available_models()).await?;
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
    Done(Box<Result<Answer, ApiError>>),
}

async fn chat_completions(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    body: Result<Json<ChatBody>, JsonRejection>,
) -> ApiResult<Response> {
    let Json(body) = body?;
    let permit = s.permit(&ws)?;
    let models = s.call(&ws, |a| a.available_models()).await?;
    let stream = body.stream;
    let (req, model_name) = ask_request(&s, &ws, body, &models)?;
    if req.question.trim().is_empty() {
        return Err(ApiError::bad_request("the last user message is empty"));
    }
    let id = format!("chatcmpl-{}", hex::encode(rand::random::<[u8; 12]>()));
    let created = now();
    if !stream {
        let a = s.call(&ws, move |a| a.answer(&req, &mut |_| {})).await?;
        drop(permit);
        let a = a.map_err(|e| {
            ws.counters.errors.fetch_add(1, Ordering::Relaxed);
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
    let errors = ws.counters.clone();
    s.send(
        &ws,
        Box::new(move |a| {
            let r = match a {
                Ok(a) => a
                    .answer(&req, &mut |piece| {
                        let _ = tx.send(Ev::Text(piece.to_string()));
                    })
                    .map_err(ApiError::from),
                Err(e) => Err(ApiError::internal(format!("the workspace could not be opened: {e}"))),
            };
            if r.is_err() {
                errors.errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx2.send(Ev::Done(Box::new(r)));
            drop(permit);
        }),
    )?;
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
                            Err(e) => pending.push(Event::default().data(e.body().to_string())),
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

async fn embeddings(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    body: Result<Json<EmbedBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body?;
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
    let data: Vec<Value> =
        vecs.into_iter().enumerate().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect();
    Ok(Json(json!({"object": "list", "data": data, "model": body.model.unwrap_or(id),
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})))
}

// ---------------------------------------------------------------- native

async fn health(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION"), "uptime_s": s.started.elapsed().as_secs()}))
}

/// This workspace's numbers only (plus the server-wide count of requests
/// without a valid token, which belong to no workspace).
async fn metrics(State(s): State<AppState>, Extension(ws): Extension<Ws>) -> ApiResult<Response> {
    let (m, cache) = s.call(&ws, |a| (a.metrics.clone(), a.cache_stats().ok())).await?;
    let c = &ws.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
    };
    metric("tresor_http_requests_total", "counter", "HTTP requests received with this workspace's tokens.", c.requests.load(Ordering::Relaxed).to_string());
    metric("tresor_http_rejected_total", "counter", "Requests answered 429 (queue full).", c.rejected.load(Ordering::Relaxed).to_string());
    metric("tresor_http_rate_limited_total", "counter", "Requests answered 429 (per-token rate limit).", c.rate_limited.load(Ordering::Relaxed).to_string());
    metric("tresor_http_unauthorized_total", "counter", "Requests answered 401 (server-wide).", s.unauthorized.load(Ordering::Relaxed).to_string());
    metric("tresor_http_errors_total", "counter", "Answers that failed.", c.errors.load(Ordering::Relaxed).to_string());
    metric("tresor_queue_in_flight", "gauge", "This workspace's requests queued or running in the engine.", c.in_flight.load(Ordering::Relaxed).to_string());
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

async fn list_kbs(State(s): State<AppState>, Extension(ws): Extension<Ws>) -> ApiResult<Json<Value>> {
    let dir = ws.dir.as_ref().clone();
    let kbs = s
        .call(&ws, move |a| {
            let key = a.key().clone();
            kb_names(&dir)
                .into_iter()
                .filter_map(|n| {
                    let kb = tresor_kb::Kb::open_existing(&kb_dir(&dir, &n).ok()?, &key).ok()?;
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

async fn search_kb(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    Path(name): Path<String>,
    q: Result<Query<SearchQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    s.prompt_limits.check(&q.q, [q.q.as_str()]).map_err(ApiError::too_large)?;
    pick_kb(&ws.dir, Some(name.clone()))?;
    let _permit = s.permit(&ws)?;
    let res = s.call(&ws, move |a| a.search(&name, &q.q, q.k.unwrap_or(5))).await??;
    Ok(Json(json!({"data": res.hits, "trace": res.trace})))
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: String,
}

async fn upload(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    Path(name): Path<String>,
    q: Result<Query<UploadQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "upload_too_large",
                format!("the uploaded document is larger than the upload limit of {} bytes (tresor serve --upload-limit)", s.upload_limit),
            )
        } else {
            ApiError::bad_request(format!("could not read the uploaded document: {}", r.body_text()))
        }
    })?;
    kb_dir(&ws.dir, &name)?;
    let file = FsPath::new(&q.filename)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.') && !f.is_empty())
        .ok_or_else(|| ApiError::bad_request("`filename` must be a plain file name, e.g. ?filename=policy.md"))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the uploaded document is empty"));
    }
    let _permit = s.permit(&ws)?;
    let dir = ws.dir.join("uploads").join(&name);
    std::fs::create_dir_all(&dir).map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let path = dir.join(&file);
    std::fs::write(&path, &body).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    // encryption at rest: the knowledge base now holds the document (encrypted); the plaintext upload goes
    let rep = s
        .call(&ws, move |a| {
            let r = a.ingest(&name, std::slice::from_ref(&path), None, &tresor_kb::NoProgress);
            let _ = std::fs::remove_file(&path);
            r
        })
        .await??;
    Ok(Json(serde_json::to_value(rep).unwrap_or_default()))
}

async fn list_threads(State(s): State<AppState>, Extension(ws): Extension<Ws>) -> ApiResult<Json<Value>> {
    let t = s.call(&ws, |a| a.threads().threads()).await??;
    Ok(Json(json!({"data": t})))
}

#[derive(Deserialize)]
struct NewThread {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    kb: Option<String>,
}

async fn create_thread(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    body: Result<Json<NewThread>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(b) = body?;
    let kb = pick_kb(&ws.dir, b.kb)?;
    let title = b.title.unwrap_or_else(|| "New conversation".into());
    let t = s.call(&ws, move |a| a.threads().create_thread(&title, kb.as_deref()).and_then(|id| a.threads().thread(id))).await??;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

async fn get_thread(State(s): State<AppState>, Extension(ws): Extension<Ws>, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let (t, m) = s.call(&ws, move |a| a.threads().thread(id).and_then(|t| Ok((t, a.threads().messages(id)?)))).await??;
    Ok(Json(json!({"thread": t, "messages": m})))
}

async fn delete_thread(State(s): State<AppState>, Extension(ws): Extension<Ws>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    s.call(&ws, move |a| a.threads().delete_thread(id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ThreadMessage {
    content: String,
}

async fn thread_message(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    Path(id): Path<i64>,
    body: Result<Json<ThreadMessage>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    s.prompt_limits.check(&b.content, [b.content.as_str()]).map_err(ApiError::too_large)?;
    let _permit = s.permit(&ws)?;
    let a = s
        .call(&ws, move |a| {
            let kb = a.threads().thread(id)?.kb;
            a.answer(&AskRequest { question: b.content, kb, thread: Some(id), ..Default::default() }, &mut |_| {})
        })
        .await??;
    Ok(Json(serde_json::to_value(a).unwrap_or_default()))
}

async fn feedback(
    State(s): State<AppState>,
    Extension(ws): Extension<Ws>,
    body: Result<Json<Feedback>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(f) = body?;
    let id = s.call(&ws, move |a| a.threads().add_feedback(&f)).await??;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}
