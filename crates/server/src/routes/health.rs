//! Liveness and numbers: `GET /api/health` (served without a token) and `GET
//! /api/metrics` (Prometheus text: the token's workspace's own counters and
//! answer metrics, plus the server-wide count of requests without a valid
//! token). Owns the metric names; never shows one workspace's numbers to
//! another workspace's token.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::error::ApiResult;
use crate::state::{AppState, Ws};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/health", get(health)).route("/api/metrics", get(metrics))
}

#[derive(Serialize)]
struct Health {
    /// `ok`, or `degraded` while a workspace's engine is down (failed to
    /// open, or to reopen after a panic) or a worker was lost.
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    engine: EngineInfo,
}

/// Numbers only: health is served without a token, so it names no workspace.
#[derive(Serialize)]
struct EngineInfo {
    /// Worker threads running (one per opened workspace).
    workers: u64,
    /// Requests that panicked in the engine since start (each failed alone).
    panics: u64,
    /// Workspaces whose engine is down now.
    down: usize,
}

async fn health(State(s): State<AppState>) -> Json<Health> {
    let h = s.health();
    let engine = EngineInfo {
        workers: h.workers.load(Ordering::Relaxed),
        panics: h.panics.load(Ordering::Relaxed),
        down: h.down.lock().unwrap_or_else(|p| p.into_inner()).len(),
    };
    Json(Health { status: h.status(), version: env!("CARGO_PKG_VERSION"), uptime_s: s.started.elapsed().as_secs(), engine })
}

/// This workspace's numbers only (plus the server-wide count of requests
/// without a valid token, which belong to no workspace).
async fn metrics(State(s): State<AppState>, ws: Ws) -> ApiResult<Response> {
    let (m, cache) = s.call(&ws, |a| (a.metrics.clone(), a.cache_stats().ok())).await?;
    let c = &ws.counters;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, v: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
    };
    metric("tresor_http_requests_total", "counter", "HTTP requests received with this workspace's tokens.", c.requests.load(Ordering::Relaxed).to_string());
    metric("tresor_http_rejected_total", "counter", "Requests answered 429 (queue full).", c.rejected.load(Ordering::Relaxed).to_string());
    metric("tresor_http_rate_limited_total", "counter", "Requests answered 429 (per-token rate limit).", c.rate_limited.load(Ordering::Relaxed).to_string());
    metric("tresor_http_unauthorized_total", "counter", "Requests answered 401 (server-wide).", s.unauthorized.load(Ordering::Relaxed).to_string());
    metric("tresor_http_errors_total", "counter", "Answers that failed.", c.errors.load(Ordering::Relaxed).to_string());
    metric("tresor_queue_in_flight", "gauge", "This workspace's requests queued or running in the engine.", c.in_flight.load(Ordering::Relaxed).to_string());
    metric("tresor_answers_total", "counter", "Answers given.", m.answers.to_string());
    metric("tresor_answers_refused_total", "counter", "Answers that declined (not found, out of scope).", m.refused.to_string());
    metric("tresor_answers_grounded_total", "counter", "Answers with every sentence supported by a cited source.", m.grounded.to_string());
    metric("tresor_answers_extractive_total", "counter", "Answers taken from the passages after the model's text failed validation.", m.extractive.to_string());
    metric("tresor_cache_hits_total", "counter", "Semantic cache hits (this process).", m.cache_hits.to_string());
    if let Some(cs) = cache {
        metric("tresor_cache_entries", "gauge", "Semantic cache entries.", cs.entries.to_string());
        metric("tresor_cache_lookups_hit_total", "counter", "Semantic cache hits (all time).", cs.hits.to_string());
        metric("tresor_cache_lookups_miss_total", "counter", "Semantic cache misses (all time).", cs.misses.to_string());
    }
    metric("tresor_answer_ttft_ms_sum", "counter", "Sum of time to first token over answers, ms.", format!("{:.1}", m.ttft_ms_sum));
    metric("tresor_answer_total_ms_sum", "counter", "Sum of answer latency, ms.", format!("{:.1}", m.total_ms_sum));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
