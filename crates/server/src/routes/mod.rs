//! The HTTP surface: one router per resource ([`openai`], [`kb`],
//! [`threads`], [`actions`], [`health`], [`kpi`]) merged in [`app`] under the token check and the
//! body limit, and the extractors the handlers share ([`ApiJson`],
//! [`ApiQuery`]: their rejections answer with the API's JSON error). Owns
//! the route table; never does engine work itself (handlers go through
//! [`AppState`]).

pub(crate) mod actions;
pub(crate) mod health;
pub(crate) mod kb;
pub(crate) mod kpi;
pub(crate) mod openai;
pub(crate) mod threads;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::{middleware, Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::require_token;
use crate::error::ApiError;
use crate::state::AppState;

/// The whole API over a running engine: every resource's router, the token
/// check in front of all of them (unknown paths included), then the audit
/// entry of the request ([`crate::audit`]), the widget's gate in front of the
/// token check (its assets, CORS and widget-token scope: [`crate::widget`];
/// its requests pass the `Origin` check through a hook, the `Host` check
/// never) and the JSON body limit.
pub(crate) fn app(state: AppState, body_limit: usize) -> Router {
    let widget = crate::widget::Widget::new(state.tokens.workspaces().clone(), body_limit);
    // a request the widget gate let in carries its workspace already: its Origin was
    // checked against that widget token's own list (the Host check still applies)
    state.hosts.add_origin_hook(std::sync::Arc::new(|_origin, req| req.extensions().get::<crate::state::Ws>().is_some()));
    Router::new()
        .merge(openai::router())
        .merge(health::router())
        .merge(kb::router(state.upload_limit))
        .merge(threads::router())
        .merge(kpi::router())
        .merge(actions::router())
        .merge(crate::widget::routes::router())
        .layer(middleware::from_fn_with_state(state.clone(), crate::audit::audit_request))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state((state.clone(), widget), crate::widget::gate))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// A JSON body; a malformed one is 400 (413 over the body limit) with the API's error body.
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// A query string; a malformed one is 400 with the API's error body.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(v) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}

/// `{"data": [...]}`: a native list.
#[derive(Serialize)]
pub(crate) struct DataList<T> {
    pub data: Vec<T>,
}

/// Seconds since the Unix epoch (OpenAI's `created`).
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
