//! The widget's own routes: the public assets (`GET /widget.js`, the script
//! with its stylesheet built in; `GET /widget/widget.css`, the same
//! stylesheet for browsers without constructable stylesheets), compiled into
//! the binary, and `POST /api/widget/threads`, which opens a conversation in
//! the widget token's knowledge base and remembers it as the token's. Owns
//! these routes' shapes; never serves anything from disk or a CDN.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Serialize;

use super::{Widget, WidgetScope};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ws};

/// Where the widget opens its conversation.
pub(crate) const THREADS_PATH: &str = "/api/widget/threads";

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
    Router::new().route(THREADS_PATH, post(open_conversation))
}

#[derive(Serialize)]
struct Opened {
    id: i64,
    kb: String,
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
    let id = s.call(&ws, move |a| a.threads().create_thread("Widget conversation", Some(&kb2))).await??;
    widget.own(&scope, &ws.name, id);
    Ok((StatusCode::CREATED, Json(Opened { id, kb })))
}
