//! The conversation endpoints: `/api/threads` (list, create),
//! `/api/threads/{id}` (read with its messages, delete),
//! `POST /api/threads/{id}/messages` (ask within the thread, which keeps the
//! history and the thread's knowledge base), `POST /api/conversations/{id}/end`
//! (a door closed the conversation: whether to ask for CSAT now) and
//! `POST /api/feedback` (thumbs / CSAT / comment on an answer or a thread;
//! `offer_handoff` when negative). Owns the HTTP shapes of
//! threads; never stores anything itself (the assistant's thread store does).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tresor_assistant::store::{Feedback, StoredMessage, ThreadInfo};
use tresor_assistant::{Answer, AskRequest};

use super::kb::pick_kb;
use super::{ApiJson, DataList};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ws};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/threads", get(list_threads).post(create_thread))
        .route("/api/threads/{id}", get(get_thread).delete(delete_thread))
        .route("/api/threads/{id}/messages", post(thread_message))
        .route("/api/conversations/{id}/end", post(end_conversation))
        .route("/api/feedback", post(feedback))
}

#[derive(Deserialize)]
struct NewThread {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    kb: Option<String>,
}

#[derive(Serialize)]
struct ThreadDetail {
    thread: ThreadInfo,
    messages: Vec<StoredMessage>,
}

#[derive(Deserialize)]
struct ThreadMessage {
    content: String,
}

async fn list_threads(State(s): State<AppState>, ws: Ws) -> ApiResult<Json<DataList<ThreadInfo>>> {
    let data = s.call(&ws, |a| a.threads().threads()).await??;
    Ok(Json(DataList { data }))
}

async fn create_thread(State(s): State<AppState>, ws: Ws, ApiJson(b): ApiJson<NewThread>) -> ApiResult<(StatusCode, Json<ThreadInfo>)> {
    let kb = pick_kb(&ws.dir, b.kb)?;
    let title = b.title.unwrap_or_else(|| "New conversation".into());
    let t = s.call(&ws, move |a| a.threads().create_thread(&title, kb.as_deref()).and_then(|id| a.threads().thread(id))).await??;
    Ok((StatusCode::CREATED, Json(t)))
}

async fn get_thread(State(s): State<AppState>, ws: Ws, Path(id): Path<i64>) -> ApiResult<Json<ThreadDetail>> {
    let (thread, messages) = s.call(&ws, move |a| a.threads().thread(id).and_then(|t| Ok((t, a.threads().messages(id)?)))).await??;
    Ok(Json(ThreadDetail { thread, messages }))
}

async fn delete_thread(State(s): State<AppState>, ws: Ws, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    s.call(&ws, move |a| a.threads().delete_thread(id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

async fn thread_message(State(s): State<AppState>, ws: Ws, Path(id): Path<i64>, ApiJson(b): ApiJson<ThreadMessage>) -> ApiResult<Json<Answer>> {
    s.prompt_limits.check(&b.content, [b.content.as_str()]).map_err(ApiError::too_large)?;
    let _permit = s.permit(&ws)?;
    let actor = ws.actor.to_string();
    let a = s
        .call(&ws, move |a| {
            let kb = a.threads().thread(id)?.kb;
            a.answer(&AskRequest { question: b.content, kb, thread: Some(id), actor: Some(actor), ..Default::default() }, &mut |_| {})
        })
        .await??;
    Ok(Json(a))
}

/// `{id, offer_handoff, offer}`: the feedback's id, and the offer of a human after a negative rating.
async fn feedback(State(s): State<AppState>, ws: Ws, ApiJson(f): ApiJson<Feedback>) -> ApiResult<(StatusCode, Json<tresor_assistant::FeedbackOutcome>)> {
    let out = s.call(&ws, move |a| a.feedback(&f)).await??;
    Ok((StatusCode::CREATED, Json(out)))
}

#[derive(Deserialize, Default)]
struct EndBody {
    /// closed (default) | idle (ends it only past `[handoff] idle_timeout_secs`) | another word for the events
    #[serde(default)]
    reason: Option<String>,
}

/// `{conversation_id, ended, ask_csat, question}`: CSAT is asked once per conversation.
async fn end_conversation(State(s): State<AppState>, ws: Ws, Path(id): Path<i64>, body: axum::body::Bytes) -> ApiResult<Json<tresor_assistant::EndOutcome>> {
    // the body is optional: none means "closed"
    let b: EndBody = if body.iter().all(u8::is_ascii_whitespace) {
        EndBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let reason = b.reason;
    if reason.as_deref().is_some_and(|r| r.is_empty() || r.len() > 40 || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        return Err(ApiError::bad_request("reason: a short word (closed, idle, ...)"));
    }
    let out = s.call(&ws, move |a| a.end_conversation(id, reason.as_deref())).await??;
    Ok(Json(out))
}
