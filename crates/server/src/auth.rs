//! Who may call the API and in which workspace: the serving workspace's API
//! token file ([`api_token`]), the token → workspace index ([`Tokens`],
//! re-read while the server runs) and the bearer-token middleware
//! ([`require_token`]) that picks the request's workspace and applies the
//! per-token rate limit. Owns authentication and workspace selection; never
//! stores or logs a plain token beyond the serving workspace's own
//! `api-token` file (the index and the rate limiter key on hashes).

use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tresor_guard::workspace::{TokenIndex, TokenMatch, Workspaces};

use crate::error::ApiError;
use crate::state::{AppState, Ws};
use crate::ServeError;

const TOKEN_FILE: &str = "api-token";

/// The one path served without a token.
const OPEN_PATH: &str = "/api/health";

/// The API token: `explicit` when given, else the one stored in the data
/// dir, else a new random one written there with mode 0600. Returns the
/// token and whether it was generated now.
pub fn api_token(data_dir: &FsPath, explicit: Option<&str>) -> Result<(String, bool), ServeError> {
    if let Some(t) = explicit.map(str::trim).filter(|t| !t.is_empty()) {
        check_token_length(t)?;
        return Ok((t.to_string(), false));
    }
    let path = data_dir.join(TOKEN_FILE);
    let io = |source| ServeError::Io { path: path.clone(), source };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            check_token_length(t.trim())?;
            return Ok((t.trim().to_string(), false));
        }
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

/// Fewest characters of an API token (`--token`, TRESOR_API_TOKEN, the
/// `api-token` file): a shorter one can be guessed.
pub const MIN_TOKEN_CHARS: usize = 32;

/// A token shorter than [`MIN_TOKEN_CHARS`] is refused.
pub(crate) fn check_token_length(t: &str) -> Result<(), ServeError> {
    let n = t.chars().count();
    if n < MIN_TOKEN_CHARS {
        return Err(ServeError::WeakToken { chars: n, min: MIN_TOKEN_CHARS });
    }
    Ok(())
}

/// Token → workspace, re-read when a token file or the set of workspaces
/// changes (checked at most once a second), so new tokens work and revoked
/// ones stop working while the server runs.
pub(crate) struct Tokens {
    workspaces: Workspaces,
    extra: Vec<(String, String)>,
    index: RwLock<TokenIndex>,
    checked: Mutex<Instant>,
}

impl Tokens {
    /// Every workspace's tokens, plus the plain `token` scoped to `workspace` (none when empty).
    pub fn load(workspaces: Workspaces, workspace: &str, token: &str) -> Result<Tokens, ServeError> {
        let mut extra = Vec::new();
        if !token.is_empty() {
            check_token_length(token)?;
            extra.push((workspace.to_string(), token.to_string()));
        }
        let index = TokenIndex::load(&workspaces, &extra)?;
        Ok(Tokens { workspaces, extra, index: RwLock::new(index), checked: Mutex::new(Instant::now()) })
    }

    pub fn workspaces(&self) -> &Workspaces {
        &self.workspaces
    }

    fn lookup(&self, token: &str) -> Option<TokenMatch> {
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

    /// The token's workspace and its data dir; a token only counts while its workspace exists.
    fn workspace(&self, token: &str) -> Option<(TokenMatch, std::path::PathBuf)> {
        let m = self.lookup(token)?;
        let dir = self.workspaces.open(&m.workspace).ok()?;
        Some((m, dir))
    }
}

/// The bearer token of a request (`Authorization: Bearer TOKEN`).
fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The client's IP as the rate limit of failed authentications keys it
/// (`-` when the server runs without connection info, as in-process tests do).
fn client_ip(req: &Request) -> String {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_else(|| "-".into())
}

/// Middleware: every request passes the `Host` / `Origin` check (403,
/// [`crate::origin`]); every path but `/api/health` needs a valid bearer
/// token (401 otherwise; a client IP with too many failed tries gets 429
/// for every request until its bucket refills) and stays within the
/// token's rate limit (429); the request then carries its workspace
/// ([`Ws`]) for the handlers.
pub(crate) async fn require_token(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Err(refused) = s.hosts.check(&req) {
        tracing::warn!("refused: {refused}");
        return ApiError::forbidden(refused.to_string()).into_response();
    }
    // the open path; or a widget token's request, already checked and scoped by crate::widget::gate
    if req.uri().path() == OPEN_PATH || req.extensions().get::<Ws>().is_some() {
        return next.run(req).await;
    }
    let ip = client_ip(&req);
    if let Some(wait) = s.auth_failures.blocked(&ip, Instant::now()) {
        s.unauthorized.fetch_add(1, Ordering::Relaxed);
        return ApiError::too_many_failures(wait).into_response();
    }
    let Some((m, dir)) = bearer(&req).and_then(|t| s.tokens.workspace(t)) else {
        s.unauthorized.fetch_add(1, Ordering::Relaxed);
        let _ = s.auth_failures.check(&ip, Instant::now());
        return ApiError::unauthorized().into_response();
    };
    let counters = s.counters(&m.workspace);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(l) = &s.limiter {
        if let Err(wait) = l.check(&m.sha256, Instant::now()) {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return ApiError::rate_limited(l.limit(), wait).into_response();
        }
    }
    let actor: Arc<str> = bearer(&req).map(tresor_guard::audit::token_actor).unwrap_or_default().into();
    req.extensions_mut().insert(Ws { name: m.workspace.as_str().into(), dir: Arc::new(dir), counters, actor });
    next.run(req).await
}

/// Handlers take the request's workspace as an argument (`ws: Ws`); it is
/// there on every path [`require_token`] guards.
impl<S: Send + Sync> FromRequestParts<S> for Ws {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Ws, ApiError> {
        parts.extensions.get::<Ws>().cloned().ok_or_else(|| ApiError::internal("no workspace on this request (not behind the token check)"))
    }
}
