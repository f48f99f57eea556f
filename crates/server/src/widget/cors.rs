//! CORS for the widget: headers only for an origin on a widget token's
//! list, never a wildcard, never for API tokens. A preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) carries no token, so it is answered for
//! an origin some widget token allows and a path a widget may call; anything
//! else gets 403 and no CORS headers (the browser then blocks the request
//! before it is sent). Owns the headers; never decides who may ask.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// The `Origin` header, when there is exactly one readable one.
pub(crate) fn origin(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(header::ORIGIN).iter();
    let first = all.next()?.to_str().ok()?;
    all.next().is_none().then_some(first)
}

/// Whether a request is a CORS preflight.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Adds the CORS headers for `origin` (already checked against the allow-list).
pub(crate) fn allow(resp: &mut Response, origin: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
}

/// The answer to an allowed preflight.
pub(crate) fn preflight(origin: &str) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    allow(&mut r, origin);
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    r
}
