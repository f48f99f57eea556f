//! The widget's own routes: the public assets (`GET /widget.js`, the script
//! with its stylesheet built in; `GET /widget/widget.css`, the same
//! stylesheet for browsers without constructable stylesheets), compiled into
//! the binary; `POST /api/widget/threads`, which opens a conversation in
//! the widget token's knowledge base, remembers it as the token's and tells
//! the widget the engine's idle timeout (`[handoff] idle_timeout_secs`, so
//! the widget's idle timer and the engine's rule are one number); and `POST
//! /api/widget/end`, where the widget ends its conversation (`closed` or
//! `idle`, the engine's `end_conversation`) and learns whether to ask for
//! CSAT. Owns these routes' shapes; never serves anything from disk or a CDN.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::{Widget, WidgetScope};
use crate::error::{ApiError, ApiResult};
use crate::routes::ApiJson;
use crate::state::{AppState, Ws};

/// Where the widget opens its conversation.
pub(crate) const THREADS_PATH: &str = "/api/widget/threads";
/// Where the widget ends it.
pub(crate) const END_PATH: &str = "/api/widget/end";

const JS: &str = include_str!("assets/widget.js");
const CSS: &str = include_str!("assets/widget.css");
/// Where the stylesheet goes into the script (as a JSON string literal).
const CSS_SLOT: &str = "\"__TRESOR_WIDGET_CSS__\"";

/// The script as served: `widget.js` with `widget.css` built in.
pub(crate) fn script() -> &'static str {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| JS.replacen(CSS_SLOT, &serde_json::to_string(CSS).expect("a string serialises"), 1))
}

/// The response for a public asset path, if `path` is one.
pub(crate) fn asset(method: &Method, path: &str) -> Option<Response> {
    let (body, ctype) = match path {
        "/widget.js" => (script(), "text/javascript; charset=utf-8"),
        "/widget/widget.css" => (CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    if method != Method::GET && method != Method::HEAD {
        return Some(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed", "GET only").into_response());
    }
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // embeddable from any page (a classic <script>, no CORS needed); the API itself stays origin-checked
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("cross-origin"));
    Some(r)
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(THREADS_PATH, post(open_conversation)).route(END_PATH, post(end_conversation))
}

#[derive(Serialize)]
struct Opened {
    id: i64,
    kb: String,
    /// The engine's idle timeout: the widget ends the conversation as `idle` after this long without
    /// activity (0: never by time).
    idle_timeout_secs: u64,
}

/// `{conversation_id, reason}`; the gate has checked that the token opened the conversation.
#[derive(Deserialize)]
struct End {
    conversation_id: i64,
    reason: String,
}

async fn open_conversation(
    State(s): State<AppState>,
    ws: Ws,
    scope: Option<Extension<WidgetScope>>,
    widget: Option<Extension<Arc<Widget>>>,
) -> ApiResult<(StatusCode, Json<Opened>)> {
    let (Some(Extension(scope)), Some(Extension(widget))) = (scope, widget) else {
        return Err(super::forbidden("widget_token_required", "this route is the widget's: call it with a widget token"));
    };
    let kb = scope.kb.to_string();
    let kb2 = kb.clone();
    let (id, idle_timeout_secs) = s
        .call(&ws, move |a| a.threads().create_thread("Widget conversation", Some(&kb2)).map(|id| (id, a.config().handoff.idle_timeout_secs)))
        .await??;
    widget.own(&scope, &ws.name, id);
    Ok((StatusCode::CREATED, Json(Opened { id, kb, idle_timeout_secs })))
}

/// Ends the widget's conversation: `closed` (the visitor closed the widget) or `idle` (the
/// widget's idle timer; the engine ends it only past its idle timeout). The engine's
/// `{conversation_id, ended, ask_csat, question}`: CSAT is asked once per conversation.
async fn end_conversation(
    State(s): State<AppState>,
    ws: Ws,
    scope: Option<Extension<WidgetScope>>,
    ApiJson(b): ApiJson<End>,
) -> ApiResult<Json<tresor_assistant::EndOutcome>> {
    if scope.is_none() {
        return Err(super::forbidden("widget_token_required", "this route is the widget's: call it with a widget token"));
    }
    if !matches!(b.reason.as_str(), "closed" | "idle") {
        return Err(ApiError::bad_request("reason: closed or idle"));
    }
    let out = s.call(&ws, move |a| a.end_conversation(b.conversation_id, Some(&b.reason))).await??;
    Ok(Json(out))
}
