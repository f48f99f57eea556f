//! The widget gate in process: the whole router with a real engine thread
//! and widget tokens created through tresor-guard, as `tresor widget token
//! create` does.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tresor_guard::widget::NewWidgetToken;
use tresor_guard::workspace::Workspaces;

use crate::tests::{app, call, call_json, TOKEN};

const PAGE: &str = "http://127.0.0.1:7001";

/// The test app with a widget token for `default` made by `f` (allowed origin: [`PAGE`]).
async fn with_token(f: impl FnOnce(&mut NewWidgetToken)) -> (tempfile::TempDir, Router, String) {
    let (dir, app) = app();
    let mut new = NewWidgetToken::new("default", vec![PAGE.into()]);
    f(&mut new);
    let (_, token) = Workspaces::new(dir.path().join("data")).widget_tokens("default").unwrap().create(&new).unwrap();
    // the server re-reads token files at most once a second
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (dir, app, token)
}

fn widget(method: Method, path: &str, token: &str, origin: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    match body {
        Some(v) => b.header(header::CONTENT_TYPE, "application/json").body(Body::from(v.to_string())).unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

fn ask_body(thread: Option<i64>) -> Value {
    json!({"stream": true, "thread": thread, "messages": [{"role": "user", "content": "How many vacation days do full-time employees get?"}]})
}

async fn open_conversation(app: &Router, token: &str) -> i64 {
    let (st, v) = call_json(app, widget(Method::POST, "/api/widget/threads", token, Some(PAGE), Some(json!({})))).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["kb"], "default");
    // the engine's idle timeout, so the widget's idle timer uses the engine's number
    assert_eq!(v["idle_timeout_secs"], 900, "{v}");
    v["id"].as_i64().unwrap()
}

#[tokio::test]
async fn the_script_is_public_and_carries_its_stylesheet() {
    let (_d, app) = app();
    let (st, h, body) = call(&app, Request::get("/widget.js").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    assert!(!body.contains("__TRESOR_WIDGET_CSS__") && body.contains("prefers-color-scheme") && body.contains("window, \"TresorWidget\""));
    assert!(!body.contains("innerHTML") && !body.contains("data:image"), "the widget must stay strict-CSP safe");
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "no CORS for the asset itself");
    let (st, h, _) = call(&app, Request::get("/widget/widget.css").body(Body::empty()).unwrap()).await;
    assert_eq!((st, h[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "text/css; charset=utf-8"));
    let (st, _, _) = call(&app, Request::post("/widget.js").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn cors_only_for_allowed_origins_and_widget_paths() {
    let (_d, app, _t) = with_token(|_| {}).await;
    let pre = |origin: &str, path: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization, content-type")
            .body(Body::empty())
            .unwrap()
    };
    let (st, h, _) = call(&app, pre(PAGE, "/v1/chat/completions")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], PAGE);
    assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().contains("authorization"));
    for (origin, path) in [("http://127.0.0.1:7002", "/v1/chat/completions"), ("http://evil.example", "/api/feedback"), (PAGE, "/api/kb/default/documents")] {
        let (st, h, _) = call(&app, pre(origin, path)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{origin} {path}");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
    // an API token's answers never carry CORS headers, whatever the Origin: from a widget's page it is
    // refused outright (the DNS-rebinding Origin check; a widget origin passes only with a widget token)
    let req = Request::get("/api/kb").header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).header(header::ORIGIN, PAGE).body(Body::empty()).unwrap();
    let (st, h, _) = call(&app, req).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let req = Request::get("/api/kb").header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::empty()).unwrap();
    let (st, h, _) = call(&app, req).await;
    assert_eq!(st, StatusCode::OK);
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn a_widget_token_works_only_from_its_origins_and_only_asks() {
    let (_d, app, token) = with_token(|_| {}).await;
    // wrong or missing origin: 403 before anything else (not even a conversation is opened)
    for origin in [Some("http://127.0.0.1:7002"), Some("https://127.0.0.1:7001"), None] {
        let (st, h, body) = call(&app, widget(Method::POST, "/api/widget/threads", &token, origin, Some(json!({})))).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{origin:?}: {body}");
        assert!(body.contains("origin_not_allowed"), "{body}");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    }
    // every upload, admin and other-knowledge-base route: 403
    for (m, path) in [
        (Method::GET, "/api/kb"),
        (Method::POST, "/api/kb/default/documents?filename=x.md"),
        (Method::GET, "/api/kb/default/search?q=vacation"),
        (Method::GET, "/api/threads"),
        (Method::POST, "/api/threads"),
        (Method::GET, "/api/kpi"),
        (Method::GET, "/api/kpi/dashboard"),
        (Method::GET, "/api/metrics"),
        (Method::GET, "/v1/models"),
        (Method::POST, "/v1/embeddings"),
        (Method::GET, "/api/tools"),
        (Method::POST, "/api/actions/1/confirm"),
        (Method::GET, "/api/nope"),
    ] {
        let (st, h, body) = call(&app, widget(m.clone(), path, &token, Some(PAGE), Some(json!({"input": "x"})))).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{m} {path}: {body}");
        assert!(body.contains("widget_token_forbidden"), "{body}");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], PAGE, "an allowed page may read why");
    }
    let id = open_conversation(&app, &token).await;
    // another knowledge base, client functions, another model, a conversation it did not open: 403
    let mut other_kb = ask_body(Some(id));
    other_kb["kb"] = json!("hr");
    let mut tools = ask_body(Some(id));
    tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    let mut model = ask_body(Some(id));
    model["model"] = json!("smollm2-135m-instruct");
    let (st, v) = call_json(&app, crate::tests::tests_post(&json!({"title": "not the widget's"}))).await;
    assert_eq!(st, StatusCode::CREATED);
    let foreign = v["id"].as_i64().unwrap();
    for body in [other_kb, tools, model, ask_body(Some(foreign))] {
        let (st, _, text) = call(&app, widget(Method::POST, "/v1/chat/completions", &token, Some(PAGE), Some(body.clone()))).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{body}: {text}");
    }
    let (st, _, _) = call(&app, widget(Method::POST, "/api/handoff", &token, Some(PAGE), Some(json!({"conversation_id": foreign})))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // its own conversation: a streamed, grounded answer with CORS for the page
    let (st, h, body) = call(&app, widget(Method::POST, "/v1/chat/completions", &token, Some(PAGE), Some(ask_body(Some(id))))).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], PAGE);
    assert!(body.contains("\"sources\"") && body.contains("vacation.md") && body.contains("data: [DONE]"), "{body}");
    // the turn was saved to the conversation (so handoff and rating name it)
    let (st, v) = call_json(&app, crate::tests::tests_get(&format!("/api/threads/{id}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["messages"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["thread"]["kb"], "default");
    let (st, _, body) = call(&app, widget(Method::POST, "/api/handoff", &token, Some(PAGE), Some(json!({"conversation_id": id, "reason": "asked for a person"})))).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // ending: only its own conversation, only closed | idle; idle before the timeout ends nothing
    let end = |id: i64, reason: &str| widget(Method::POST, "/api/widget/end", &token, Some(PAGE), Some(json!({"conversation_id": id, "reason": reason})));
    let (st, _, _) = call(&app, end(foreign, "closed")).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = call(&app, end(id, "deleted")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = call_json(&app, end(id, "idle")).await;
    assert_eq!((st, &v["ended"], &v["ask_csat"]), (StatusCode::OK, &json!(false), &json!(false)), "{v}");
    let (st, v) = call_json(&app, end(id, "closed")).await;
    assert_eq!((st, &v["ended"], &v["ask_csat"]), (StatusCode::OK, &json!(true), &json!(true)), "{v}");
    let (st, v) = call_json(&app, end(id, "closed")).await;
    assert_eq!((st, &v["ask_csat"]), (StatusCode::OK, &json!(false)), "once: {v}");
    let (st, _, body) = call(&app, widget(Method::POST, "/api/feedback", &token, Some(PAGE), Some(json!({"thread_id": id, "csat": 4})))).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, _, _) = call(&app, widget(Method::POST, "/api/feedback", &token, Some(PAGE), Some(json!({"message_id": 1, "thread_id": id, "csat": 4})))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // the widget's own routes are not for API tokens
    let (st, _, _) = call(&app, crate::tests::tests_post_path("/api/widget/threads", &json!({}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = call(&app, crate::tests::tests_post_path("/api/widget/end", &json!({"conversation_id": id, "reason": "closed"}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // a revoked token stops working
    let root = _d.path().join("data");
    let store = Workspaces::new(&root).widget_tokens("default").unwrap();
    let id0 = store.list().unwrap()[0].id.clone();
    store.revoke(&id0).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (st, _, _) = call(&app, widget(Method::POST, "/api/widget/threads", &token, Some(PAGE), Some(json!({})))).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn per_token_limits_and_the_daily_cap_answer_429_with_cors() {
    let (_d, app, token) = with_token(|n| {
        n.daily_cap = Some(1);
    })
    .await;
    let id = open_conversation(&app, &token).await;
    let (st, _, _) = call(&app, widget(Method::POST, "/v1/chat/completions", &token, Some(PAGE), Some(ask_body(Some(id))))).await;
    assert_eq!(st, StatusCode::OK);
    let (st, h, body) = call(&app, widget(Method::POST, "/v1/chat/completions", &token, Some(PAGE), Some(ask_body(Some(id))))).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("daily_cap"));
    assert!(h.contains_key(header::RETRY_AFTER) && h[header::ACCESS_CONTROL_ALLOW_ORIGIN] == PAGE);
    // the cap counts answers only: a rating still goes through
    let (st, _, _) = call(&app, widget(Method::POST, "/api/feedback", &token, Some(PAGE), Some(json!({"thread_id": id, "csat": 2})))).await;
    assert_eq!(st, StatusCode::CREATED);

    let (_d2, app, token) = with_token(|n| {
        n.visitor_rate_per_min = 2;
    })
    .await;
    open_conversation(&app, &token).await;
    open_conversation(&app, &token).await;
    let (st, h, body) = call(&app, widget(Method::POST, "/api/widget/threads", &token, Some(PAGE), Some(json!({})))).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(h.contains_key(header::RETRY_AFTER));
}
