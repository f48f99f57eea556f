//! Handler tests in process: the whole router (token check, body limit,
//! every resource) driven with `tower::ServiceExt::oneshot`, over a real
//! engine thread and a real [`Assistant`] whose chat model is scripted and
//! whose embedder is the model-free hash embedder. No socket, no models.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tresor_assistant::testing::ScriptedModels;
use tresor_assistant::{Assistant, AssistantConfig};
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::HashEmbedder;

use crate::state::AppState;
use crate::{routes, ServeOptions};

const TOKEN: &str = "test-token";
const QUESTION: &str = "How many vacation days do full-time employees get?";

/// The same grounded answer to every prompt, word by word.
fn models() -> ScriptedModels {
    ScriptedModels::replying("Full-time employees get 30 working days of paid vacation per calendar year [1].")
}

fn key() -> WorkspaceKey {
    WorkspaceKey::from_bytes([9; 32])
}

/// The API over a data root whose default workspace has a `default`
/// knowledge base with one document. Keep the TempDir alive while testing.
fn app() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("vacation.md"),
        "# Vacation policy\n\n## Vacation days\n\nFull-time employees get 30 working days of paid vacation per calendar year. \
         Part-time employees get a pro-rated amount based on their working days per week.\n",
    )
    .unwrap();
    let root = dir.path().join("data");
    tresor_assistant::scratch::ingest_dir(&root, &key(), "default", &docs, &HashEmbedder::new(256)).unwrap();
    let opts = ServeOptions { root, token: TOKEN.into(), rate_limit: None, ..Default::default() };
    let build = Box::new(|_: &str, dir: &Path| {
        Assistant::new(AssistantConfig::default(), dir, &key(), Arc::new(HashEmbedder::new(256)), None, Box::new(models())).map_err(|e| e.to_string())
    });
    let state = AppState::start(&opts, build).unwrap();
    (dir, routes::app(state, opts.body_limit))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).unwrap()
}

fn post_json(path: &str, body: &Value) -> Request<Body> {
    send(Method::POST, path, body.to_string())
}

fn send(method: Method, path: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// Status, headers and the whole body as text.
async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn call_json(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = call(app, req).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

#[tokio::test]
async fn health_needs_no_token() {
    let (_d, app) = app();
    let (status, v) = call_json(&app, Request::get("/api/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_s"].is_u64(), "{v}");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401_with_a_json_error() {
    let (_d, app) = app();
    let no_token = Request::get("/v1/models").body(Body::empty()).unwrap();
    let wrong = Request::get("/v1/models").header(header::AUTHORIZATION, "Bearer nope").body(Body::empty()).unwrap();
    for req in [no_token, wrong] {
        let (status, headers, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    // the unauthorized requests are counted server-wide
    let (_, _, metrics) = call(&app, get("/api/metrics")).await;
    assert!(metrics.contains("tresor_http_unauthorized_total 2"), "{metrics}");
}

#[tokio::test]
async fn an_unknown_route_is_404_behind_the_token_check() {
    let (_d, app) = app();
    let (status, _, _) = call(&app, get("/v1/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&app, Request::get("/v1/nothing-here").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no route is probed without a token");
}

#[tokio::test]
async fn a_malformed_body_is_400_with_a_clear_error() {
    let (_d, app) = app();
    for body in ["{not json", r#"{"model": "tresor"}"#, r#"{"messages": "hello"}"#] {
        let (status, v) = call_json(&app, send(Method::POST, "/v1/chat/completions", body.into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("invalid JSON body: "), "{m}");
    }
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &json!({"messages": [{"role": "system", "content": "hi"}]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["message"], "messages has no user message");
    let (status, v) = call_json(&app, post_json("/v1/embeddings", &json!({"input": 5}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("`input` must be a string or an array of strings"), "{v}");
    let (status, v) = call_json(&app, get("/api/kb/default/search")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("invalid query string: "), "{v}");
}

#[tokio::test]
async fn models_lists_the_routed_model_first_then_the_installed_ones() {
    let (_d, app) = app();
    let (status, v) = call_json(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["object"], "list");
    let ids: Vec<(&str, &str)> = v["data"].as_array().unwrap().iter().map(|m| (m["id"].as_str().unwrap(), m["role"].as_str().unwrap())).collect();
    assert_eq!(ids, [("tresor", "routed"), ("scripted", "chat-small")]);
    assert_eq!(v["data"][1]["object"], "model");
    assert_eq!(v["data"][1]["owned_by"], "tresor");
    assert!(v["data"][1]["created"].is_u64());
}

#[tokio::test]
async fn a_chat_completion_answers_with_sources_and_usage() {
    let (_d, app) = app();
    let body = json!({"model": "tresor", "messages": [{"role": "user", "content": QUESTION}]});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "tresor");
    let choice = &v["choices"][0];
    assert_eq!((&choice["index"], &choice["finish_reason"], &choice["message"]["role"]), (&json!(0), &json!("stop"), &json!("assistant")));
    assert!(choice["message"]["content"].as_str().unwrap().contains("30 working days"), "{v}");
    assert!(v["sources"][0]["source"].as_str().unwrap().ends_with("vacation.md"), "{v}");
    assert_eq!(v["sources"][0]["n"], 1);
    let u = &v["usage"];
    assert_eq!(u["total_tokens"].as_u64().unwrap(), u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap());
    assert_eq!(v["tresor"]["grounded"], true, "{v}");
    assert_eq!(v["tresor"]["model"], "scripted");
    for k in ["refused", "cache_hit", "route", "routing", "timings", "lang"] {
        assert!(v["tresor"].get(k).is_some(), "no tresor.{k}: {v}");
    }
    // a model that is not installed
    let body = json!({"model": "gpt-4", "messages": [{"role": "user", "content": QUESTION}]});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn a_streamed_chat_completion_sends_chunks_then_sources_then_done() {
    let (_d, app) = app();
    let body = json!({"stream": true, "no_cache": true, "messages": [{"role": "user", "content": QUESTION}]});
    let (status, headers, text) = call(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.len() >= 3, "{text}");
    let first = &chunks[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
    assert!(first.get("sources").is_none(), "{first}");
    let streamed: String = chunks[1..chunks.len() - 1].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert!(streamed.contains("30 working days"), "{streamed}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last["sources"][0]["source"].as_str().unwrap().ends_with("vacation.md"), "{last}");
    assert!(last["usage"]["total_tokens"].is_u64() && last["tresor"]["grounded"] == true, "{last}");
    assert!(chunks.iter().all(|c| c["id"] == first["id"] && c["model"] == "tresor"), "one id and model for every chunk");
}

#[tokio::test]
async fn embeddings_come_one_per_input_in_order() {
    let (_d, app) = app();
    let (status, v) = call_json(&app, post_json("/v1/embeddings", &json!({"input": ["vacation days", "passwords"]}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!((&data[1]["object"], &data[1]["index"]), (&json!("embedding"), &json!(1)));
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 256);
    assert!(v["model"].is_string() && v["usage"]["prompt_tokens"] == v["usage"]["total_tokens"], "{v}");
}

#[tokio::test]
async fn knowledge_bases_are_listed_and_searched() {
    let (_d, app) = app();
    let (status, v) = call_json(&app, get("/api/kb")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"][0]["name"], "default", "{v}");
    assert_eq!(v["data"][0]["documents"], 1);
    assert!(v["data"][0]["chunks"].as_u64().unwrap() >= 1 && v["data"][0].get("embedder").is_some(), "{v}");
    let (status, v) = call_json(&app, get("/api/kb/default/search?q=vacation%20days&k=2")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(!v["data"].as_array().unwrap().is_empty() && v.get("trace").is_some(), "{v}");
    let (status, v) = call_json(&app, get("/api/kb/nope/search?q=x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn threads_are_created_read_answered_rated_and_deleted() {
    let (_d, app) = app();
    let (status, t) = call_json(&app, post_json("/api/threads", &json!({"title": "Leave"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!((&t["title"], &t["kb"]), (&json!("Leave"), &json!("default")), "the default knowledge base when none is named");
    let id = t["id"].as_i64().unwrap();
    let (status, a) = call_json(&app, post_json(&format!("/api/threads/{id}/messages"), &json!({"content": QUESTION}))).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["thread_id"], id);
    let (status, v) = call_json(&app, get(&format!("/api/threads/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["thread"]["id"], id);
    assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{v}");
    let (status, v) = call_json(&app, get("/api/threads")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let fb = json!({"message_id": a["message_id"], "thumbs": 1});
    let (status, v) = call_json(&app, post_json("/api/feedback", &fb)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert!(v["id"].is_i64(), "{v}");
    let (status, _, _) = call(&app, send(Method::DELETE, &format!("/api/threads/{id}"), String::new())).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = call_json(&app, get(&format!("/api/threads/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn kpi_reflects_answers_feedback_and_handoffs_through_the_api() {
    let (_d, app) = app();
    let (status, v) = call_json(&app, get("/api/kpi")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["conversations"].as_u64(), v["messages"].as_u64()), (Some(0), Some(0)));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, t) = call_json(&app, post_json("/api/threads", &json!({"title": "Leave"}))).await;
        let id = t["id"].as_i64().unwrap();
        let (status, a) = call_json(&app, post_json(&format!("/api/threads/{id}/messages"), &json!({"content": QUESTION}))).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        ids.push((id, a["message_id"].as_i64().unwrap()));
    }
    let fb = json!({"message_id": ids[0].1, "thumbs": 1, "csat": 5});
    assert_eq!(call_json(&app, post_json("/api/feedback", &fb)).await.0, StatusCode::CREATED);
    let (status, _, body) = call(&app, post_json("/api/handoff", &json!({"conversation_id": ids[1].0, "reason": "needs a human"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, v) = call_json(&app, post_json("/api/handoff", &json!({"conversation_id": 999}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    let (status, k) = call_json(&app, get("/api/kpi?by=day")).await;
    assert_eq!(status, StatusCode::OK, "{k}");
    assert_eq!((k["conversations"].as_u64(), k["messages"].as_u64()), (Some(2), Some(2)), "{k}");
    assert_eq!(k["containment_rate"], 0.5);
    assert_eq!(k["escalation_rate"], 0.5);
    assert_eq!(k["csat"], json!({"count": 1, "mean": 5.0, "satisfied_share": 1.0}));
    assert_eq!(k["cache_hit_rate"], 0.5, "the second thread's same question is a cache hit");
    assert_eq!(k["groups"].as_array().unwrap().len(), 1);
    for f in ["refusal_rate", "tool_error_rate", "cost_per_resolved"] {
        assert!(k[f].is_number(), "{f}: {k}");
    }
    assert!(k["ttft_ms"]["p95"].as_f64().unwrap() >= k["ttft_ms"]["p50"].as_f64().unwrap());
    assert!(k["tokens"]["per_conversation"].as_f64().unwrap() > 0.0);
    let (status, v) = call_json(&app, get("/api/kpi?since=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = call_json(&app, get("/api/kpi?by=month")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, d) = call_json(&app, get("/api/kpi/dashboard?since=7d")).await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["kpis"]["conversations"], 2);
    assert_eq!(d["previous"]["conversations"], 0);
    assert_eq!(d["series"].as_array().unwrap().len(), 1);
    assert_eq!(d["stages"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn answers_and_uploads_are_audited_as_the_token_never_the_os_user() {
    let (d, app) = app();
    let body = json!({"model": "tresor", "messages": [{"role": "user", "content": QUESTION}]});
    assert_eq!(call_json(&app, post_json("/v1/chat/completions", &body)).await.0, StatusCode::OK);
    let up = Request::post("/api/kb/default/documents?filename=parking.md")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from("# Parking\n\nPermits are issued by the front desk.\n"))
        .unwrap();
    let (status, _, text) = call(&app, up).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let log = tresor_guard::audit::AuditLog::for_data_dir(&d.path().join("data")).entries(None).unwrap();
    // entry 1: the fixture's own ingest (the OS user); then the API's answer and upload
    let actor = tresor_guard::audit::token_actor(TOKEN);
    let events: Vec<(&str, &str)> = log.iter().map(|e| (e["event"].as_str().unwrap(), e["actor"].as_str().unwrap())).collect();
    assert_eq!(events[1..], [("answer", actor.as_str()), ("kb.ingest", actor.as_str())], "{log:?}");
    assert_ne!(events[0].1, actor.as_str());
    assert!(!log.iter().any(|e| e.to_string().contains(TOKEN)), "the token itself is never logged");
}
