//! The measurement endpoints: `GET /api/kpi` (`?since=&until=&by=`: the
//! same report as `tresor kpi --json`), `GET /api/kpi/dashboard` (everything
//! the dashboard screen shows) and `POST /api/handoff` (a conversation is
//! handed to a human: the engine delivers the ticket to the configured target
//! and the response is its receipt, ticket included). Owns their HTTP shapes;
//! the KPIs are tresor-telemetry's, the handoff tresor-assistant's, read
//! through the engine.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tresor_assistant::tresor_telemetry::{self as tel, GroupBy, Window};

use super::{ApiJson, ApiQuery};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ws};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/kpi", get(kpi))
        .route("/api/kpi/dashboard", get(dashboard))
        .route("/api/handoff", post(handoff))
}

#[derive(Deserialize)]
struct KpiQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    by: Option<String>,
}

fn window(q: &KpiQuery) -> ApiResult<Window> {
    let t = |s: &Option<String>| s.as_deref().map(tel::time::parse_time).transpose().map_err(|e| ApiError::bad_request(e.to_string()));
    Ok(Window { since: t(&q.since)?, until: t(&q.until)? })
}

async fn kpi(State(s): State<AppState>, ws: Ws, ApiQuery(q): ApiQuery<KpiQuery>) -> ApiResult<Json<tel::Report>> {
    let w = window(&q)?;
    let by = q.by.as_deref().map(|b| b.parse::<GroupBy>()).transpose().map_err(ApiError::bad_request)?;
    let r = s
        .call(&ws, move |a| -> tresor_assistant::Result<tel::Report> {
            let store = a.events().ok_or_else(|| tresor_assistant::AssistantError::Invalid("telemetry is off in this workspace".into()))?;
            Ok(tel::report(&store.events(&w)?, &w, by, &a.config().telemetry.cost))
        })
        .await??;
    Ok(Json(r))
}

async fn dashboard(State(s): State<AppState>, ws: Ws, ApiQuery(q): ApiQuery<KpiQuery>) -> ApiResult<Json<tel::DashboardData>> {
    let w = window(&q)?;
    Ok(Json(s.call(&ws, move |a| a.dashboard(w)).await??))
}

#[derive(Deserialize)]
struct Handoff {
    conversation_id: i64,
    #[serde(default)]
    reason: Option<String>,
    /// door (a button; default) | offer (the user accepted the assistant's offer) | user_request
    #[serde(default)]
    trigger: Option<String>,
}

/// 201 with the receipt (`ticket_id`, `status` delivered | queued | kept, `target`, `delivered_to`,
/// `error`, `message` for the user, `ticket`); a queued ticket is still 201: it waits in the outbox.
async fn handoff(State(s): State<AppState>, ws: Ws, ApiJson(h): ApiJson<Handoff>) -> ApiResult<(StatusCode, Json<tresor_assistant::HandoffReceipt>)> {
    if let Some(t) = &h.trigger {
        if !["door", "offer", "user_request"].contains(&t.as_str()) {
            return Err(ApiError::bad_request(format!("trigger must be door, offer or user_request, not {t:?}")));
        }
    }
    let actor = ws.actor.to_string();
    let req = tresor_assistant::HandoffRequest { conversation_id: Some(h.conversation_id), reason: h.reason, trigger: h.trigger, actor: Some(actor), ..Default::default() };
    let r = s.call(&ws, move |a| a.handoff_with(&req)).await??;
    Ok((StatusCode::CREATED, Json(r)))
}
