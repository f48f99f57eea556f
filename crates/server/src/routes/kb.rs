//! The knowledge-base endpoints: `GET /api/kb` (the workspace's knowledge
//! bases with their sizes), `GET /api/kb/{name}/search?q=&k=` and `POST
//! /api/kb/{name}/documents?filename=` (upload one document and ingest it).
//! Owns the checks on knowledge-base names and uploads; never keeps an
//! uploaded document in plaintext after its ingest (the knowledge base holds
//! it, encrypted).

use std::path::Path as FsPath;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tresor_assistant::library::kb_dir;
use tresor_kb::retrieve::Trace;
use tresor_kb::{Hit, IngestReport};

use super::{ApiQuery, DataList};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Ws};

/// Uploads have their own body limit (`upload_limit` bytes), not the JSON one.
pub(crate) fn router(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/api/kb", get(list_kbs))
        .route("/api/kb/{name}/search", get(search_kb))
        .route("/api/kb/{name}/documents", post(upload).layer(DefaultBodyLimit::max(upload_limit)))
}

#[derive(Serialize)]
struct KbSummary {
    name: String,
    documents: usize,
    chunks: usize,
    embedder: Option<String>,
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
    #[serde(default)]
    k: Option<usize>,
}

#[derive(Serialize)]
struct SearchResponse {
    data: Vec<Hit>,
    trace: Trace,
}

#[derive(Deserialize)]
struct UploadQuery {
    filename: String,
}

/// The knowledge base a request names, which must exist (404), or else
/// `default` when the workspace has one.
pub(crate) fn pick_kb(data_dir: &FsPath, kb: Option<String>) -> ApiResult<Option<String>> {
    Ok(tresor_assistant::library::pick_kb(data_dir, kb.as_deref())?)
}

async fn list_kbs(State(s): State<AppState>, ws: Ws) -> ApiResult<Json<DataList<KbSummary>>> {
    let data = s
        .call(&ws, move |a| {
            let lib = a.library(None);
            lib.names()
                .into_iter()
                .filter_map(|n| {
                    let st = lib.open(&n).ok()?.stats(&n).ok()?;
                    Some(KbSummary { name: n, documents: st.documents, chunks: st.chunks, embedder: st.embedder })
                })
                .collect()
        })
        .await?;
    Ok(Json(DataList { data }))
}

async fn search_kb(State(s): State<AppState>, ws: Ws, Path(name): Path<String>, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult<Json<SearchResponse>> {
    s.prompt_limits.check(&q.q, [q.q.as_str()]).map_err(ApiError::too_large)?;
    pick_kb(&ws.dir, Some(name.clone()))?;
    let _permit = s.permit(&ws)?;
    let res = s.call(&ws, move |a| a.search(&name, &q.q, q.k.unwrap_or(5))).await??;
    Ok(Json(SearchResponse { data: res.hits, trace: res.trace }))
}

async fn upload(
    State(s): State<AppState>,
    ws: Ws,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<IngestReport>> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "upload_too_large",
                format!("the uploaded document is larger than the upload limit of {} bytes (tresor serve --upload-limit)", s.upload_limit),
            )
        } else {
            ApiError::bad_request(format!("could not read the uploaded document: {}", r.body_text()))
        }
    })?;
    kb_dir(&ws.dir, &name)?;
    let file = FsPath::new(&q.filename)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.starts_with('.') && !f.is_empty())
        .ok_or_else(|| ApiError::bad_request("`filename` must be a plain file name, e.g. ?filename=policy.md"))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the uploaded document is empty"));
    }
    let _permit = s.permit(&ws)?;
    let dir = ws.dir.join("uploads").join(&name);
    let path = dir.join(&file);
    // off the async workers: a 64 MB write must not stall other workspaces' requests
    let p = path.clone();
    tokio::task::spawn_blocking(move || write_upload(&dir, &p, &body))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| {
            tracing::error!("saving an upload to {}: {e}", path.display());
            ApiError::internal(format!("could not save the uploaded document: {}", e.kind()))
        })?;
    // encryption at rest: the knowledge base now holds the document (encrypted); the plaintext upload goes
    let actor = ws.actor.clone();
    let path2 = path.clone();
    let rep = s
        .call(&ws, move |a| {
            let r = a.ingest(&name, std::slice::from_ref(&path), Some(&actor), &tresor_kb::NoProgress);
            let _ = std::fs::remove_file(&path);
            r
        })
        .await;
    if rep.is_err() {
        // the job never ran (or panicked before its clean-up): no plaintext stays behind
        let _ = std::fs::remove_file(&path2);
    }
    Ok(Json(rep??))
}

/// Writes an upload with mode 0600 from creation (the plaintext lives only
/// until its ingest; a crash in between leaves it for the server's start-up
/// sweep, [`crate::state::sweep_uploads`]).
fn write_upload(dir: &FsPath, path: &FsPath, body: &[u8]) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    use std::io::Write;
    let mut f = o.open(path)?;
    f.write_all(body)?;
    f.sync_all()
}
