//! Every API action is audited before it runs: an `api.request` entry
//! (`actor` = the token's `token:<id>`, `data` = `{method, route}` with the
//! route's template, never ids, queries or bodies) is appended to the
//! token's workspace's audit log before the handler starts, so before the
//! first byte of any answer. When the entry cannot be written (full disk, a
//! torn log waiting for `tresor audit repair`, an unwritable file) the
//! request is refused with 503 `audit_unavailable` and nothing runs:
//! no generation, no ingest, no byte of an answer.
//!
//! The engine's own entries (`answer`, `kb.*`, actions) follow with the same
//! actor and the details. Owns: the `api.request` entry. Never: logs a token,
//! a question or a path.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tresor_guard::audit::{AuditLog, Event};

use crate::error::ApiError;
use crate::state::{AppState, Ws};

/// The literal segments of the API's routes; any other segment is a name or
/// an id, logged as `{}` (the log names the action, not what it touched:
/// the engine's own entries say that, redacted).
const LITERALS: &[&str] = &[
    "api", "v1", "actions", "confirm", "decline", "feedback", "handoff", "kb", "documents", "search", "kpi", "dashboard", "metrics", "threads",
    "messages", "tools", "chat", "completions", "embeddings", "models",
];

/// `/api/kb/handbook/search` → `/api/kb/{}/search`.
pub(crate) fn route_of(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).take(8).map(|s| if LITERALS.contains(&s) { s } else { "{}" }).collect();
    format!("/{}", segs.join("/"))
}

/// Middleware (inside the token check): the `api.request` entry, or 503.
pub(crate) async fn audit_request(State(_s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(ws) = req.extensions().get::<Ws>().cloned() else {
        // `/api/health`: no token, no workspace, nothing to audit
        return next.run(req).await;
    };
    let route = route_of(req.uri().path());
    let ev = Event {
        event: "api.request".into(),
        actor: ws.actor.to_string(),
        workspace: ws.name.to_string(),
        data: serde_json::json!({"method": req.method().as_str(), "route": route}),
    };
    let dir = ws.dir.clone();
    match tokio::task::spawn_blocking(move || AuditLog::for_data_dir(&dir).append(&ev)).await {
        Ok(Ok(_)) => next.run(req).await,
        Ok(Err(e)) => {
            tracing::error!(workspace = %ws.name, "refusing a request: the audit log cannot be written: {e}");
            ApiError::audit_unavailable().into_response()
        }
        Err(e) => {
            tracing::error!(workspace = %ws.name, "refusing a request: the audit write failed: {e}");
            ApiError::audit_unavailable().into_response()
        }
    }
}
