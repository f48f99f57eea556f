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

pub(crate) const TOKEN: &str = "test-token-0123456789abcdef0123456789";
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
pub(crate) fn app() -> (tempfile::TempDir, Router) {
    app_with(models(), false)
}

/// [`app`] with the scripted model `m` and, when `tools`, the built-in tools' data imported
/// (prices, orders; tickets need none).
fn app_with(m: ScriptedModels, tools: bool) -> (tempfile::TempDir, Router) {
    let (d, state) = state_with(m, tools, |_| Ok(()));
    (d, routes::app(state, ServeOptions::default().body_limit))
}

/// The engine state under [`app_with`]; `gate` runs before each workspace
/// opens (an error there fails the open, as a broken set-up would).
fn state_with(m: ScriptedModels, tools: bool, gate: impl Fn(&Path) -> Result<(), String> + Send + 'static) -> (tempfile::TempDir, AppState) {
    state_cfg(m, tools, gate, AssistantConfig::default())
}

/// [`state_with`] under the engine configuration `cfg`.
fn state_cfg(m: ScriptedModels, tools: bool, gate: impl Fn(&Path) -> Result<(), String> + Send + 'static, cfg: AssistantConfig) -> (tempfile::TempDir, AppState) {
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
    if tools {
        let files = dir.path().join("tools");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join("prices.csv"), "sku,product,price,currency\nHW-FW-200,Firewall Appliance FW-200,1290.00,EUR\n").unwrap();
        std::fs::write(files.join("orders.csv"), "order_id,customer,status,updated_at\nNL-10234,Hafenlogistik Nord AG,shipped,2026-12-03\n").unwrap();
        assert_eq!(tresor_assistant::tools_data::import_folder(&root, &key(), &files).unwrap(), 2);
    }
    let opts = ServeOptions { root, token: TOKEN.into(), rate_limit: None, ..Default::default() };
    let build = Box::new(move |_: &str, dir: &Path| {
        gate(dir)?;
        Assistant::new(cfg.clone(), dir, &key(), Arc::new(HashEmbedder::new(256)), None, Box::new(m.clone())).map_err(|e| e.to_string())
    });
    let state = AppState::start(&opts, build).unwrap();
    (dir, state)
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
pub(crate) async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

pub(crate) async fn call_json(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, body) = call(app, req).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")))
}

mod robust;

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
    // CSAT once per conversation: a second score is refused, and the end says not to ask again
    let (status, v) = call_json(&app, post_json("/api/feedback", &json!({"thread_id": ids[0].0, "csat": 2}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = call_json(&app, post_json(&format!("/api/conversations/{}/end", ids[0].0), &json!({"reason": "closed"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["ended"].as_bool(), v["ask_csat"].as_bool()), (Some(true), Some(false)), "{v}");
    let (status, v) = call_json(&app, post_json("/api/handoff", &json!({"conversation_id": ids[1].0, "reason": "needs a human"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // the receipt: the default folder target under the data dir, the ticket with the conversation
    assert_eq!((v["status"].as_str(), v["target"].as_str()), (Some("delivered"), Some("folder")), "{v}");
    assert!(v["ticket_id"].as_str().unwrap().starts_with("T-") && v["message"].as_str().unwrap().contains("colleague"), "{v}");
    assert_eq!(v["ticket"]["conversation_id"], ids[1].0);
    assert_eq!(v["ticket"]["messages"].as_array().unwrap().len(), 2, "{v}");
    assert!(std::path::Path::new(v["delivered_to"].as_str().unwrap()).exists(), "{v}");
    let (status, v) = call_json(&app, post_json(&format!("/api/conversations/{}/end", ids[1].0), &json!({}))).await;
    assert_eq!((status, v["ask_csat"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    let (status, v) = call_json(&app, post_json("/api/conversations/999/end", &json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
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
    // every API action is audited before it runs (api.request), then the engine's own entry follows
    assert_eq!(
        events[1..],
        [("api.request", actor.as_str()), ("answer", actor.as_str()), ("api.request", actor.as_str()), ("kb.ingest", actor.as_str())],
        "{log:?}"
    );
    assert_eq!(log[1]["data"], json!({"method": "POST", "route": "/v1/chat/completions"}));
    assert_eq!(log[3]["data"], json!({"method": "POST", "route": "/api/kb/{}/documents"}));
    assert_ne!(events[0].1, actor.as_str());
    assert!(!log.iter().any(|e| e.to_string().contains(TOKEN)), "the token itself is never logged");
}

// ---------------------------------------------------------------- function calling and actions

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]}}})
}

/// First the arguments (the scripted generate_json writes them as they are), then the answer text.
fn weather_models() -> ScriptedModels {
    ScriptedModels::replying("{\"city\": \"Paris\", \"unit\": \"c\"}\n---\nIt is 21 degrees and sunny in Paris [1].")
}

fn assert_weather_call(v: &Value) -> String {
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], Value::Null, "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"), "{v}");
    assert_eq!((&call["type"], &call["function"]["name"]), (&json!("function"), &json!("get_weather")));
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments is a JSON string")).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "c"}));
    call["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn required_and_named_tool_choices_give_a_tool_call_with_json_arguments() {
    let (d, app) = app_with(ScriptedModels::replying("{\"city\": \"Paris\", \"unit\": \"c\"}"), false);
    for choice in [json!("required"), json!({"type": "function", "function": {"name": "get_weather"}})] {
        let body = json!({"model": "tresor", "messages": [{"role": "user", "content": "Weather in Paris in celsius, please"}], "tools": [weather_tool()], "tool_choice": choice});
        let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["object"], "chat.completion");
        assert_weather_call(&v);
        assert_eq!((&v["sources"], &v["actions"]), (&json!([]), &json!([])), "{v}");
        assert!(v["usage"]["total_tokens"].is_u64() && v["tresor"]["route"] == "function_call", "{v}");
    }
    // audited as the token, with the function and the arguments' hash, never their values
    let log = tresor_guard::audit::AuditLog::for_data_dir(&d.path().join("data")).entries(None).unwrap();
    let calls: Vec<&Value> = log.iter().filter(|e| e["event"] == "function.call").collect();
    assert_eq!(calls.len(), 2, "{log:?}");
    assert_eq!(calls[0]["actor"], tresor_guard::audit::token_actor(TOKEN).as_str());
    assert!(calls[0].to_string().contains("get_weather") && !calls[0].to_string().contains("Paris"), "{}", calls[0]);
}

#[tokio::test]
async fn auto_routes_over_the_clients_functions_and_answers_normally_without_a_match() {
    let (_d, app) = app_with(weather_models(), false);
    let body = json!({"messages": [{"role": "user", "content": "Get the weather for Paris, please"}], "tools": [weather_tool()]});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_weather_call(&v);
    assert!(v["tresor"]["reason"].as_str().unwrap().starts_with("router:"), "{v}");
    // a question the functions do not fit: the normal, grounded answer
    let (_d2, app) = self::app();
    let body = json!({"messages": [{"role": "user", "content": QUESTION}], "tools": [weather_tool()], "tool_choice": "auto"});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(v["choices"][0]["message"]["content"].as_str().unwrap().contains("30 working days"), "{v}");
    assert!(v["sources"][0]["source"].as_str().unwrap().ends_with("vacation.md"), "{v}");
    assert_eq!(v["actions"], json!([]));
    // "none": the functions are ignored even for a matching request
    let body = json!({"messages": [{"role": "user", "content": "Get the weather for Paris, please"}], "tools": [weather_tool()], "tool_choice": "none"});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
}

#[tokio::test]
async fn a_streamed_tool_call_comes_in_openai_deltas_then_tool_calls_then_done() {
    let (_d, app) = app_with(weather_models(), false);
    let body = json!({"stream": true, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [weather_tool()], "tool_choice": "required"});
    let (status, _, text) = call(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.len() >= 3, "{text}");
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    let tc = &first["tool_calls"][0];
    assert_eq!((&tc["index"], &tc["type"], &tc["function"]["name"]), (&json!(0), &json!("function"), &json!("get_weather")), "{text}");
    assert!(tc["id"].as_str().unwrap().starts_with("call_"));
    let args: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris", "unit": "c"}));
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls", "{last}");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
}

#[tokio::test]
async fn a_tool_message_continues_the_conversation_and_is_the_cited_source() {
    let (_d, app) = app_with(weather_models(), false);
    let q = json!({"role": "user", "content": "What's the weather in Paris?"});
    let body = json!({"messages": [q], "tools": [weather_tool()], "tool_choice": "required"});
    let (_, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    let id = assert_weather_call(&v);
    let msgs = json!([q, v["choices"][0]["message"], {"role": "tool", "tool_call_id": id, "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"}]);
    for stream in [false, true] {
        let body = json!({"messages": msgs, "tools": [weather_tool()], "stream": stream});
        let (status, _, text) = call(&app, post_json("/v1/chat/completions", &body)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let v: Value = if stream {
            let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            assert_eq!(data.last(), Some(&"[DONE]"));
            serde_json::from_str(data[data.len() - 2]).unwrap()
        } else {
            serde_json::from_str(&text).unwrap()
        };
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        assert_eq!(v["sources"][0]["source"], "tool:get_weather", "{v}");
        assert_eq!(v["sources"][0]["n"], 1);
        assert!(v["sources"][0]["snippet"].as_str().unwrap().contains("21"), "{v}");
        assert_eq!(v["tresor"]["route"], "tool_result", "{v}");
        if !stream {
            let content = v["choices"][0]["message"]["content"].as_str().unwrap();
            assert!(content.contains("21") && content.contains("[1]"), "{content}");
        }
    }
}

#[tokio::test]
async fn malformed_tools_and_choices_are_400_never_500() {
    let (_d, app) = app_with(weather_models(), false);
    let user = json!([{"role": "user", "content": "Weather in Paris?"}]);
    let uncompilable = json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}}, "required": ["n"]}}});
    let cases = [
        (json!({"messages": user, "tools": {"type": "function"}}), "`tools` must be an array"),
        (json!({"messages": user, "tools": [{"type": "retrieval"}]}), "tools[0].type must be \"function\""),
        (json!({"messages": user, "tools": [{"type": "function", "function": {"description": "x"}}]}), "tools[0].function.name must be a string"),
        (json!({"messages": user, "tools": [{"type": "function", "function": {"name": "f", "parameters": "object"}}]}), "must be a JSON Schema object"),
        (json!({"messages": user, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]}), "must describe a JSON object"),
        (json!({"messages": user, "tools": [{"type": "function", "function": {"name": "no spaces"}}]}), "is invalid"),
        (json!({"messages": user, "tools": [uncompilable], "tool_choice": "required"}), "constrained decoding"),
        (json!({"messages": user, "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}), "\"nope\", which is not in tools"),
        (json!({"messages": user, "tools": [weather_tool()], "tool_choice": "sometimes"}), "tool_choice \"sometimes\" is not one of"),
        (json!({"messages": user, "tools": [weather_tool()], "tool_choice": {"function": "x"}}), "tool_choice must be"),
        (json!({"messages": user, "tool_choice": "required"}), "needs at least one function"),
        (json!({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "21"}]}), "no tool_call_id"),
    ];
    for (body, want) in cases {
        let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {v}");
    }
}

#[tokio::test]
async fn built_in_actions_are_listed_confirmed_once_declined_and_audited() {
    let (d, app) = app_with(ScriptedModels::replying("{\"subject\": \"Printer broken\"}"), true);
    let (status, v) = call_json(&app, get("/api/tools")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"order_status") && names.contains(&"create_ticket") && !names.contains(&"book_appointment"), "no calendar imported: {names:?}");
    assert_eq!(v["data"][0]["schema"]["type"], "object", "{v}");
    // a read-only tool runs at once; its action is in the OpenAI answer's extras
    let body = json!({"messages": [{"role": "user", "content": "Where is my order NL-10234?"}]});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((&v["actions"][0]["tool"], &v["actions"][0]["status"]), (&json!("order_status"), &json!("succeeded")), "{v}");
    assert_eq!(v["sources"][0]["source"], "tool:order_status");
    // a side effect waits for confirmation (the native thread endpoint returns the actions too)
    let (_, t) = call_json(&app, post_json("/api/threads", &json!({"title": "Printer"}))).await;
    let path = format!("/api/threads/{}/messages", t["id"]);
    let (status, a) = call_json(&app, post_json(&path, &json!({"content": "Please open a ticket: the printer on floor 2 is broken"}))).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let act = &a["actions"][0];
    assert_eq!((&act["tool"], &act["status"]), (&json!("create_ticket"), &json!("needs_confirmation")), "{a}");
    let id = act["id"].as_str().unwrap().to_string();
    let (status, v) = call_json(&app, get(&format!("/api/actions/{id}"))).await;
    assert_eq!((status, &v["status"]), (StatusCode::OK, &json!("needs_confirmation")), "{v}");
    let confirm = format!("/api/actions/{id}/confirm");
    let (status, v) = call_json(&app, send(Method::POST, &confirm, String::new())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((&v["outcome"], &v["action"]["status"]), (&json!("executed"), &json!("succeeded")), "{v}");
    assert!(v["action"]["result"]["ticket_id"].is_string(), "{v}");
    let (status, v) = call_json(&app, post_json(&confirm, &json!({"now": "2026-12-07T09:30:00+01:00"}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "already_done", "{v}");
    assert!(v["message"].as_str().unwrap().contains("nothing was executed"), "{v}");
    // declining what has run is a conflict; unknown ids are 404; a bad `now` is 400
    let (status, v) = call_json(&app, send(Method::POST, &format!("/api/actions/{id}/decline"), String::new())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "conflict");
    for (m, p) in [(Method::GET, "/api/actions/act_nope".to_string()), (Method::POST, "/api/actions/act_nope/confirm".into()), (Method::POST, "/api/actions/act_nope/decline".into())] {
        let (status, v) = call_json(&app, send(m, &p, String::new())).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{p}: {v}");
    }
    for bad in [json!({"now": "tomorrow"}), json!({"when": "x"})] {
        let (status, v) = call_json(&app, post_json(&confirm, &bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // a second ticket, declined: nothing runs, and it cannot be confirmed into running afterwards
    let (_, a) = call_json(&app, post_json(&path, &json!({"content": "Please open a ticket: the coffee machine on floor 3 leaks water"}))).await;
    let id2 = a["actions"][0]["id"].as_str().unwrap().to_string();
    let (status, v) = call_json(&app, send(Method::POST, &format!("/api/actions/{id2}/decline"), String::new())).await;
    assert_eq!((status, &v["action"]["status"]), (StatusCode::OK, &json!("declined")), "{v}");
    let (_, v) = call_json(&app, send(Method::POST, &format!("/api/actions/{id2}/confirm"), String::new())).await;
    assert_ne!(v["action"]["status"], "succeeded", "{v}");
    // the run and the decline are audited as the token
    let log = tresor_guard::audit::AuditLog::for_data_dir(&d.path().join("data")).entries(None).unwrap();
    let actor = tresor_guard::audit::token_actor(TOKEN);
    let runs: Vec<&Value> = log.iter().filter(|e| e["event"] == "tool.run" && e["data"]["tool"] == "create_ticket").collect();
    assert_eq!(runs.len(), 1, "confirming twice runs once: {log:?}");
    assert_eq!(runs[0]["actor"], actor.as_str());
    assert!(log.iter().any(|e| e["event"] == "tool.decline" && e["actor"] == actor.as_str()), "{log:?}");
}

#[tokio::test]
async fn required_with_several_functions_and_no_router_cue_lets_the_model_pick_under_a_grammar() {
    // first the pick (the name under a grammar of the names), then the arguments
    let (_d, app) = app_with(ScriptedModels::replying("{\"name\": \"get_time\"}\n---\n{\"zone\": \"Europe/Paris\"}"), false);
    let time = json!({"type": "function", "function": {"name": "get_time", "description": "Current time in a time zone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}});
    let body = json!({"messages": [{"role": "user", "content": "xyzzy"}], "tools": [weather_tool(), time], "tool_choice": "required"});
    let (status, v) = call_json(&app, post_json("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_time", "{v}");
    assert_eq!(serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(), json!({"zone": "Europe/Paris"}));
    assert!(v["tresor"]["reason"].as_str().unwrap().contains("the model picked it"), "{v}");
}

/// A POST of `body` to `/api/threads` with the API token (for the widget's tests).
pub(crate) fn tests_post(body: &Value) -> Request<Body> {
    post_json("/api/threads", body)
}

/// A POST of `body` to `path` with the API token.
pub(crate) fn tests_post_path(path: &str, body: &Value) -> Request<Body> {
    post_json(path, body)
}

/// A GET of `path` with the API token.
pub(crate) fn tests_get(path: &str) -> Request<Body> {
    get(path)
}
