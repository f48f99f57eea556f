//! The embeddable web widget's door: `/widget.js` and its stylesheet
//! ([`routes`], public), and the gate ([`gate`]) every request with a widget
//! token passes before the API's own token check.
//!
//! A widget token (tresor-guard's `widget` module) is a publishable key: it
//! sits in page source. So the gate, in this order and before any engine work:
//! 1. answers CORS preflights ([`cors`]) for origins some widget token allows;
//! 2. looks the token up (401 when unknown) and requires the request's
//!    `Origin` to be on the token's list exactly (403 otherwise, no CORS);
//! 3. lets through only the ask-side routes ([`WIDGET_ROUTES`]: answer, open
//!    and end a conversation, hand off, rate), 403 for everything else (uploads,
//!    knowledge bases, threads, KPIs, tools, metrics ...);
//! 4. applies the token's limits: requests per minute for the token and per
//!    visitor (the peer's IP address), answers per UTC day (429);
//! 5. pins the body to the token's scope: `/v1/chat/completions` answers from
//!    the token's knowledge base only (another `kb` is 403), without client
//!    functions or another model, in a conversation this token opened; a
//!    handoff or rating names such a conversation.
//!
//! The request then carries its workspace ([`Ws`], actor `token:<hash prefix>`)
//! and the API's own token check lets it pass; responses get CORS headers for
//! the allowed origin only.
//!
//! Owns: the widget's scope checks, limits and conversation ownership (in
//! memory: a server restart forgets which conversation belongs to which
//! token, and the widget opens a new one). Never: answers, stores or reads
//! documents itself (the routes behind it do), or adds CORS headers for an
//! origin not on a widget token's list.

mod cors;
pub(crate) mod routes;
mod token;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tresor_guard::widget::{WidgetTokenRecord, WIDGET_TOKEN_PREFIX};
use tresor_guard::workspace::Workspaces;

use crate::error::ApiError;
use crate::limits::{RateLimit, RateLimiter};
use crate::state::{AppState, Ws};

pub(crate) use token::WidgetTokens;

/// The only routes a widget token may call (method, path).
pub(crate) const WIDGET_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", routes::THREADS_PATH),
    ("POST", routes::END_PATH),
    ("POST", "/api/handoff"),
    ("POST", "/api/feedback"),
];

/// A request made with a widget token (set by [`gate`] for the handlers).
#[derive(Clone)]
pub(crate) struct WidgetScope {
    pub sha256: Arc<str>,
    pub kb: Arc<str>,
}

/// The widget's server-side state: its tokens, their limiters and counters,
/// and which conversation each token opened.
pub(crate) struct Widget {
    tokens: WidgetTokens,
    body_limit: usize,
    limiters: Mutex<HashMap<String, (Arc<RateLimiter>, Arc<RateLimiter>)>>,
    /// token hash → (UTC day number, answers that day).
    daily: Mutex<HashMap<String, (u64, u32)>>,
    /// (workspace, conversation id) of conversations opened through each token hash.
    conversations: Mutex<HashMap<String, HashSet<(String, i64)>>>,
}

impl Widget {
    pub fn new(workspaces: Workspaces, body_limit: usize) -> Arc<Widget> {
        Arc::new(Widget {
            tokens: WidgetTokens::load(workspaces),
            body_limit,
            limiters: Mutex::new(HashMap::new()),
            daily: Mutex::new(HashMap::new()),
            conversations: Mutex::new(HashMap::new()),
        })
    }

    fn limiters(&self, rec: &WidgetTokenRecord) -> (Arc<RateLimiter>, Arc<RateLimiter>) {
        let mut l = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        l.entry(rec.sha256.clone())
            .or_insert_with(|| {
                (
                    Arc::new(RateLimiter::new(RateLimit::per_minute(rec.rate_per_min))),
                    Arc::new(RateLimiter::new(RateLimit::per_minute(rec.visitor_rate_per_min))),
                )
            })
            .clone()
    }

    /// Counts one answer against the token's daily cap; false when the cap is reached.
    fn take_daily(&self, rec: &WidgetTokenRecord) -> bool {
        let Some(cap) = rec.daily_cap else { return true };
        let day = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0);
        let mut d = self.daily.lock().unwrap_or_else(|p| p.into_inner());
        let e = d.entry(rec.sha256.clone()).or_insert((day, 0));
        if e.0 != day {
            *e = (day, 0);
        }
        if e.1 >= cap {
            return false;
        }
        e.1 += 1;
        true
    }

    /// Records that `scope`'s token opened conversation `id` in `workspace`.
    pub fn own(&self, scope: &WidgetScope, workspace: &str, id: i64) {
        self.conversations.lock().unwrap_or_else(|p| p.into_inner()).entry(scope.sha256.to_string()).or_default().insert((workspace.to_string(), id));
    }

    fn owns(&self, sha256: &str, workspace: &str, id: i64) -> bool {
        self.conversations.lock().unwrap_or_else(|p| p.into_inner()).get(sha256).is_some_and(|s| s.contains(&(workspace.to_string(), id)))
    }
}

fn forbidden(code: &'static str, m: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "permission_error", code, m)
}

/// The bearer token of a request, when it is a widget token.
fn widget_bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    t.starts_with(WIDGET_TOKEN_PREFIX).then(|| t.to_string())
}

fn widget_route(method: &Method, path: &str) -> bool {
    WIDGET_ROUTES.iter().any(|(m, p)| method.as_str() == *m && path == *p)
}

/// Middleware in front of the API's token check: serves the widget's
/// assets, answers preflights and gates widget-token requests (see the
/// module doc). Requests with an API token pass through untouched.
pub(crate) async fn gate(State((s, w)): State<(AppState, Arc<Widget>)>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if let Some(r) = routes::asset(req.method(), &path) {
        return r;
    }
    if cors::is_preflight(req.method(), req.headers()) {
        let origin = cors::origin(req.headers()).map(str::to_string);
        let method_ok = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok()).and_then(|m| m.parse::<Method>().ok());
        return match (origin, method_ok) {
            (Some(o), Some(m)) if widget_route(&m, &path) && w.tokens.origin_known(&o) => cors::preflight(&o),
            _ => forbidden("origin_not_allowed", "no widget token allows this origin and path").into_response(),
        };
    }
    let Some(token) = widget_bearer(&req) else {
        return next.run(req).await;
    };
    let Some((m, dir)) = w.tokens.lookup(&token) else {
        s.unauthorized.fetch_add(1, Ordering::Relaxed);
        return ApiError::unauthorized().into_response();
    };
    let rec = m.record;
    // the origin first: a page that may not use this token gets nothing, not even a limit spent
    let origin = match cors::origin(req.headers()) {
        Some(o) if rec.allows_origin(o) => o.to_string(),
        _ => return forbidden("origin_not_allowed", "this widget token is not allowed on this page's origin").into_response(),
    };
    let mut resp = match scoped(&s, &w, &m.workspace, dir, &rec, &token, req, next).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    cors::allow(&mut resp, &origin);
    resp
}

/// Steps 3–5 of the gate for a known token on an allowed origin.
#[allow(clippy::too_many_arguments)]
async fn scoped(s: &AppState, w: &Arc<Widget>, workspace: &str, dir: std::path::PathBuf, rec: &WidgetTokenRecord, token: &str, req: Request, next: Next) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    if !widget_route(req.method(), &path) {
        return Err(forbidden("widget_token_forbidden", format!("a widget token may only ask (not {} {path})", req.method())));
    }
    let counters = s.counters(workspace);
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let (per_token, per_visitor) = w.limiters(rec);
    let now = Instant::now();
    let visitor = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_else(|| "unknown".into());
    if let Err(wait) = per_token.check(&rec.sha256, now) {
        counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::rate_limited(per_token.limit(), wait));
    }
    if let Err(wait) = per_visitor.check(&format!("{}|{visitor}", rec.sha256), now) {
        counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::rate_limited(per_visitor.limit(), wait));
    }
    let (mut parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, w.body_limit)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "body_too_large", format!("the body is over {} bytes", w.body_limit)))?;
    let body = pin_body(w, workspace, rec, &path, &bytes)?;
    if path == "/v1/chat/completions" && !w.take_daily(rec) {
        counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let secs = 86_400 - SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() % 86_400).unwrap_or(0);
        let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "daily_cap", "this widget has answered its questions for today; try again tomorrow").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, secs.into());
        return Ok(r);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    let actor: Arc<str> = tresor_guard::audit::token_actor(token).into();
    parts.extensions.insert(Ws { name: workspace.into(), dir: Arc::new(dir), counters, actor });
    parts.extensions.insert(w.clone());
    parts.extensions.insert(WidgetScope { sha256: rec.sha256.as_str().into(), kb: rec.kb.as_str().into() });
    Ok(next.run(Request::from_parts(parts, Body::from(body))).await)
}

/// The body a widget request may send, pinned to the token's scope (403
/// when it reaches beyond it). Unparseable bodies pass unchanged: the
/// handler answers them with its own 400.
fn pin_body(w: &Widget, workspace: &str, rec: &WidgetTokenRecord, path: &str, bytes: &[u8]) -> Result<Vec<u8>, ApiError> {
    let Ok(Value::Object(mut v)) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(bytes.to_vec());
    };
    let owned = |id: Option<i64>| id.is_some_and(|id| w.owns(&rec.sha256, workspace, id));
    let not_yours = || forbidden("widget_token_forbidden", "this conversation was not opened with this widget token");
    match path {
        "/v1/chat/completions" => {
            match v.get("kb") {
                None | Some(Value::Null) => {}
                Some(Value::String(k)) if *k == rec.kb => {}
                Some(_) => return Err(forbidden("widget_token_forbidden", format!("this widget token answers from knowledge base `{}` only", rec.kb))),
            }
            for key in ["tools", "tool_choice"] {
                if !matches!(v.get(key), None | Some(Value::Null)) {
                    return Err(forbidden("widget_token_forbidden", "a widget token may only ask (no client functions)"));
                }
            }
            if !matches!(v.get("model").and_then(Value::as_str), None | Some("tresor" | "auto" | "")) {
                return Err(forbidden("widget_token_forbidden", "a widget token answers with the routed model only"));
            }
            if v.get("messages").and_then(Value::as_array).is_some_and(|ms| ms.iter().any(|m| m.get("role").and_then(Value::as_str) == Some("tool"))) {
                return Err(forbidden("widget_token_forbidden", "a widget token may only ask (no tool results)"));
            }
            match v.get("thread") {
                None | Some(Value::Null) => {}
                Some(t) if owned(t.as_i64()) => {}
                Some(_) => return Err(not_yours()),
            }
            v.insert("kb".into(), Value::String(rec.kb.clone()));
            v.remove("no_cache");
        }
        "/api/handoff" | routes::END_PATH => {
            if !owned(v.get("conversation_id").and_then(Value::as_i64)) {
                return Err(not_yours());
            }
        }
        "/api/feedback" => {
            if !matches!(v.get("message_id"), None | Some(Value::Null)) || !owned(v.get("thread_id").and_then(Value::as_i64)) {
                return Err(forbidden("widget_token_forbidden", "a widget rates the conversation it opened (thread_id), not single messages"));
            }
        }
        _ => {}
    }
    Ok(serde_json::to_vec(&v).expect("a JSON value serialises"))
}

#[cfg(test)]
mod tests;
