//! Tresor's local HTTP API: a thin front door to tresor-assistant.
//!
//! - OpenAI-compatible: `GET /v1/models`, `POST /v1/chat/completions` (SSE
//!   streaming and not; the answer's sources in a top-level `sources` field,
//!   on the last chunk when streaming, and the built-in tools' `actions`;
//!   function calling with `tools` / `tool_choice`), `POST /v1/embeddings`.
//! - Native: `/api/health`, `/api/metrics` (Prometheus text), `/api/kb`
//!   (list, upload + ingest, search), `/api/threads`, `/api/feedback`,
//!   `/api/tools`, `/api/actions/{id}` (read, confirm, decline).
//!
//! Workspaces: the server serves every workspace of the data root
//! (tresor_guard::workspace). A bearer token belongs to exactly one
//! workspace (its hash is stored there; the `--token` / `api-token` of the
//! serving workspace is scoped to it) and every request runs in the token's
//! workspace: its knowledge bases, threads, cache, audit and key. One
//! [`Assistant`](tresor_assistant::Assistant) per workspace, opened on its first request; none of them
//! ever receives another workspace's request.
//!
//! One engine thread owns the assistants (models, knowledge bases, SQLite)
//! and runs jobs in order; requests wait in a bounded queue and get 429 when
//! it is full. Every endpoint but `/api/health` needs a bearer token. Abuse
//! limits ([`limits`]): a token bucket per token (429 with Retry-After),
//! prompt caps in characters and body/upload caps in bytes (413), all with
//! a JSON error body. The server binds loopback unless told otherwise and,
//! on Ctrl-C / SIGTERM, stops accepting and finishes running streams.
//!
//! Widget: `GET /widget.js` (public) and widget tokens (their own kind: one
//! workspace and knowledge base, ask-only, an origin allow-list with CORS for
//! those origins only, per-token and per-visitor limits, a daily cap) are the
//! `widget` module's, a gate in front of the token check.
//!
//! Robustness (issue #19): one worker thread per workspace, each job under
//! `catch_unwind` (a panic fails one request; `/api/health` says `degraded`
//! while a workspace cannot be reopened); a queue per workspace; a stream
//! whose client goes away cancels its generation; `Host` / `Origin` checked
//! against DNS rebinding ([`origin`]); failed authentications limited per
//! client IP; tokens of fewer than [`MIN_TOKEN_CHARS`] characters refused;
//! error bodies carry no absolute path ([`ApiError`] redacts them).
//!
//! Modules: `auth` (tokens, workspace selection), `widget` (the web widget's assets and gate), `origin` (Host/Origin), `audit` (every request audited first), `state` (the engine
//! thread and its queue), `error` ([`ApiError`] and its JSON body) and
//! `routes` (a router per resource: OpenAI-compatible, knowledge bases,
//! threads, actions, health and metrics).

mod audit;
mod auth;
mod error;
pub mod limits;
pub mod origin;
mod routes;
mod state;
mod widget;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use auth::{api_token, MIN_TOKEN_CHARS};
pub use error::ApiError;
pub use state::BuildAssistant;

use crate::limits::{PromptLimits, RateLimit};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the engine failed to start: {0}")]
    Engine(String),
    #[error("the API token has {chars} characters; at least {min} are required (a short token can be guessed: omit --token to have one generated)")]
    WeakToken { chars: usize, min: usize },
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
    /// Host names besides localhost and the bound address that may appear in
    /// `Host` / `Origin` (`--allow-host`; [`origin`]).
    pub allowed_hosts: Vec<String>,
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
            allowed_hosts: Vec::new(),
        }
    }
}

/// Serves until Ctrl-C / SIGTERM. `build` opens a workspace's engine on the
/// engine thread: `opts.workspace`'s at start (so a broken set-up fails
/// now), the others on their first request.
pub fn serve(opts: ServeOptions, build: BuildAssistant, on_ready: Box<dyn FnOnce(SocketAddr) + Send>) -> Result<(), ServeError> {
    // a widget token file the server cannot read stops it here, as an API token file does
    tresor_guard::widget::WidgetTokenIndex::load(&tresor_guard::workspace::Workspaces::new(opts.root.clone()))?;
    let state = AppState::start(&opts, build)?;
    let hosts = state.hosts.clone();
    let app = routes::app(state, opts.body_limit);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Engine(e.to_string()))?;
    rt.block_on(async {
        let listener =
            tokio::net::TcpListener::bind(opts.addr).await.map_err(|source| ServeError::Bind { addr: opts.addr, source })?;
        let local = listener.local_addr().map_err(|source| ServeError::Bind { addr: opts.addr, source })?;
        hosts.set_bound(local);
        on_ready(local);
        // the peer address is the widget's per-visitor rate-limit key
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|source| ServeError::Bind { addr: local, source })
    })?;
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

#[cfg(test)]
mod tests;
