//! The API's errors: [`ApiError`] (status, OpenAI error type and code, message,
//! Retry-After), its JSON body `{"error": {"message", "type", "code"}}`
//! ([`ErrorBody`]), and the mapping from engine errors and extractor
//! rejections to HTTP statuses. Owns every error status the server answers;
//! never decides when to answer one (the handlers and middleware do).

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tresor_assistant::AssistantError;
use tresor_tools::error::ToolError;

use crate::limits::{RateLimit, TooLarge};

/// An error as OpenAI clients expect it: `{"error": {"message", "type", "code"}}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

/// The JSON body of every error answer (and of an error inside an SSE stream).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// Every message passes [`redact`]: no absolute path leaves the server.
    pub(crate) fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, kind, code, message: redact(&message.into()), retry_after: None }
    }
    /// 503 `audit_unavailable`: the request could not be audited, so it does not run.
    pub(crate) fn audit_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "audit_unavailable",
            "the audit log cannot be written, so nothing is answered (the server log says why; `tresor audit verify`, then `tresor audit repair` for a torn last line)",
        )
    }
    /// 403 `forbidden` (a refused `Host` / `Origin`).
    pub(crate) fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "invalid_request_error", "forbidden", m)
    }
    /// 429 `too_many_failed_authentications`: this client guessed wrong too often.
    pub(crate) fn too_many_failures(wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "too_many_failed_authentications",
            format!("too many requests with a missing or wrong token from this address; retry in {secs} s"),
        );
        e.retry_after = Some(secs);
        e
    }
    /// 400 `invalid_request`.
    pub(crate) fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", m)
    }
    /// 404 `not_found`.
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", m)
    }
    /// 409 `conflict`: the resource's state does not allow it.
    pub(crate) fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "invalid_request_error", "conflict", m)
    }
    /// 401 `invalid_api_key` (answered with `WWW-Authenticate: Bearer`).
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or wrong bearer token (Authorization: Bearer TOKEN; the token is in the data dir's api-token file, or from `tresor workspace token create NAME`)",
        )
    }
    /// 429 `queue_full`: the engine queue holds `max` requests.
    pub(crate) fn busy(max: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "queue_full",
            format!("the engine queue is full ({max} requests); retry shortly"),
        )
    }
    /// 429 `rate_limit_exceeded` with Retry-After (whole seconds, at least 1).
    pub(crate) fn rate_limited(limit: RateLimit, wait: Duration) -> Self {
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
    /// 413 for a prompt or messages over the caps.
    pub(crate) fn too_large(t: TooLarge) -> Self {
        let code = match t {
            TooLarge::Prompt { .. } => "prompt_too_large",
            TooLarge::Messages { .. } => "messages_too_large",
        };
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", code, t.to_string())
    }
    /// 500 `internal`.
    pub(crate) fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal", m)
    }
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody { error: ErrorDetail { message: &self.message, kind: self.kind, code: self.code } }
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
            E::NoSuchThread(_) | E::NoSuchMessage(_) | E::NoSuchKb(_) | E::Kb(tresor_kb::KbError::NoSuchKb(_)) => ApiError::not_found(e.to_string()),
            E::Models(_) => ApiError::not_found(e.to_string()),
            E::Tool(ToolError::NoSuchAction(_)) => ApiError::not_found(e.to_string()),
            E::Tool(ToolError::InvalidTransition { .. }) => ApiError::conflict(e.to_string()),
            // the detail (paths, key store, SQLite) is for the server log, not the client
            _ => {
                tracing::error!("engine error: {e}");
                ApiError::internal("the engine failed on this request (the server log has the details)")
            }
        }
    }
}

/// `message` with every absolute file path cut to its last component
/// (`/home/u/.tresor/workspaces/acme/kb/x.sqlite` → `…/x.sqlite`): error bodies
/// never show the data root, a user name or another workspace's name.
/// API paths (`/api/…`, `/v1/…`) stay.
pub(crate) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let chars: Vec<char> = message.chars().collect();
    let mut i = 0;
    let stop = |c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | ',' | ';' | ')' | ']' | '}' | '>');
    while i < chars.len() {
        let c = chars[i];
        let prev_ok = i == 0 || stop(chars[i - 1]) || matches!(chars[i - 1], '(' | '[' | '{' | '<' | '=' | ':');
        let unix = c == '/';
        let windows = c.is_ascii_alphabetic() && chars.get(i + 1) == Some(&':') && matches!(chars.get(i + 2), Some('\\') | Some('/'));
        if prev_ok && (unix || windows) {
            let mut j = i;
            while j < chars.len() && !stop(chars[j]) && !(chars[j] == ':' && chars.get(j + 1).is_none_or(|c| c.is_whitespace())) {
                j += 1;
            }
            let path: String = chars[i..j].iter().collect();
            let seps = path.matches(['/', '\\']).count();
            let api = path.starts_with("/api/") || path.starts_with("/v1/");
            if (seps >= 2 || windows) && !api {
                let last = path.rsplit(['/', '\\']).find(|p| !p.is_empty()).unwrap_or("");
                out.push_str("…/");
                out.push_str(last);
                i = j;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
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
