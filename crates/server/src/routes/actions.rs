//! The action endpoints of the built-in tools: `GET /api/tools` (the tools
//! in force with their schemas), `GET /api/actions/{id}`, `POST
//! /api/actions/{id}/confirm` (optional body `{"now": ISO8601}`: "now" for
//! the booking's checks; runs the action at most once — a second confirm
//! executes nothing and says so) and `POST /api/actions/{id}/decline`.
//! Every change is audited as the token's actor. Owns the HTTP shapes of
//! actions; never runs a tool itself (the engine's action layer does).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tresor_assistant::{Action, ActionReport, ToolSpec};

use super::DataList;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ws};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tools", get(list_tools))
        .route("/api/actions/{id}", get(get_action))
        .route("/api/actions/{id}/confirm", post(confirm))
        .route("/api/actions/{id}/decline", post(decline))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    #[serde(default)]
    now: Option<String>,
}

async fn list_tools(State(s): State<AppState>, ws: Ws) -> ApiResult<Json<DataList<ToolSpec>>> {
    let data = s.call(&ws, |a| a.tools()).await??;
    Ok(Json(DataList { data }))
}

async fn get_action(State(s): State<AppState>, ws: Ws, Path(id): Path<String>) -> ApiResult<Json<Action>> {
    Ok(Json(s.call(&ws, move |a| a.action(&id)).await??))
}

/// The body is optional: empty, or `{"now": "2026-12-07T09:30:00+01:00"}`.
fn confirm_now(body: &[u8]) -> ApiResult<Option<jiff::Timestamp>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let b: ConfirmBody = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e} (expected {{\"now\": ISO8601}} or nothing)")))?;
    b.now
        .map(|n| {
            n.parse::<jiff::Timestamp>()
                .map_err(|e| ApiError::bad_request(format!("`now` {n:?} is not an ISO 8601 time with an offset (e.g. 2026-12-07T09:30:00+01:00): {e}")))
        })
        .transpose()
}

async fn confirm(State(s): State<AppState>, ws: Ws, Path(id): Path<String>, body: Bytes) -> ApiResult<Json<ActionReport>> {
    let now = confirm_now(&body)?;
    let _permit = s.permit(&ws)?;
    let actor = ws.actor.to_string();
    Ok(Json(s.call(&ws, move |a| a.confirm_action(&id, now, Some(&actor))).await??))
}

async fn decline(State(s): State<AppState>, ws: Ws, Path(id): Path<String>) -> ApiResult<Json<ActionReport>> {
    let _permit = s.permit(&ws)?;
    let actor = ws.actor.to_string();
    Ok(Json(s.call(&ws, move |a| a.decline_action(&id, Some(&actor))).await??))
}
