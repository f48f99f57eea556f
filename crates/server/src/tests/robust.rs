//! Issue #19 §2: the server keeps serving — a panicking job, a busy
//! workspace, a client that hangs up, a hostile web page (Host / Origin),
//! token guessing, short tokens, and what error bodies may show.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;
use crate::state::Ws;

/// A second workspace with its own token.
fn other_workspace(root: &Path, name: &str) -> (std::path::PathBuf, String) {
    let ws = tresor_guard::workspace::Workspaces::new(root);
    let info = ws.create(name).unwrap();
    let (_, token) = ws.tokens(name).unwrap().create("test").unwrap();
    // the server re-reads token files at most once a second
    std::thread::sleep(Duration::from_millis(1100));
    (info.dir, token)
}

fn ws_of(state: &AppState, name: &str, dir: &Path) -> Ws {
    Ws { name: name.into(), dir: Arc::new(dir.to_path_buf()), counters: state.counters(name), actor: "token:test".into() }
}

fn get_as(path: &str, token: &str) -> Request<Body> {
    Request::get(path).header(header::AUTHORIZATION, format!("Bearer {token}")).body(Body::empty()).unwrap()
}

async fn health(app: &Router) -> Value {
    call_json(app, Request::get("/api/health").body(Body::empty()).unwrap()).await.1
}

#[tokio::test]
async fn a_panicking_request_fails_alone_and_health_tells_the_truth() {
    let fail_open = Arc::new(AtomicBool::new(false));
    let f = fail_open.clone();
    let (d, state) = state_with(models(), false, move |_| if f.load(Ordering::Relaxed) { Err("disk gone".into()) } else { Ok(()) });
    let app = routes::app(state.clone(), 1 << 20);
    let ws = ws_of(&state, "default", &d.path().join("data"));

    let e = state.call(&ws, |_| -> () { panic!("a bug in one request") }).await.unwrap_err();
    assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // the engine is still there: the same workspace answers the next request
    assert!(state.call(&ws, |a| a.available_models()).await.is_ok());
    let (status, _, _) = call(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    let h = health(&app).await;
    assert_eq!((h["status"].as_str(), h["engine"]["panics"].as_u64(), h["engine"]["down"].as_u64()), (Some("ok"), Some(1), Some(0)), "{h}");

    // a panic whose reopen fails leaves the workspace down: health says so, requests get a clean 500
    fail_open.store(true, Ordering::Relaxed);
    let _ = state.call(&ws, |_| -> () { panic!("again") }).await;
    // the caller hears of the panic as it unwinds; the worker then reopens (and fails)
    let mut h = health(&app).await;
    for _ in 0..100 {
        if h["engine"]["panics"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        h = health(&app).await;
    }
    assert_eq!((h["status"].as_str(), h["engine"]["down"].as_u64()), (Some("degraded"), Some(1)), "{h}");
    let (status, _, body) = call(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(!body.contains("disk gone"), "the open error stays in the log: {body}");
    // once the cause is gone the next request reopens it
    fail_open.store(false, Ordering::Relaxed);
    let (status, _, _) = call(&app, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health(&app).await["status"], "ok");
}

#[tokio::test]
async fn a_busy_workspace_does_not_starve_another() {
    let (d, state) = state_with(models(), false, |_| Ok(()));
    let app = routes::app(state.clone(), 1 << 20);
    let root = d.path().join("data");
    let (other_dir, other_token) = other_workspace(&root, "other");
    let _ = other_dir;
    // the default workspace's engine is busy (a long generation or a 64 MB ingest)
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let busy = ws_of(&state, "default", &root);
    let (s2, b2) = (state.clone(), busy.clone());
    let held = tokio::spawn(async move {
        s2.call(&b2, move |_| {
            let _ = wait.recv_timeout(Duration::from_secs(30));
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // and its queue is full
    let mut permits = Vec::new();
    while let Ok(p) = state.permit(&busy) {
        permits.push(p);
    }
    let r = tokio::time::timeout(Duration::from_secs(10), call(&app, get_as("/v1/models", &other_token))).await;
    let (status, _, body) = r.expect("another workspace's request waited on the busy one");
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = call(&app, get_as("/api/kb/nothing/search?q=x", &other_token)).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "the other workspace's queue is its own");
    release.send(()).unwrap();
    held.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_that_hangs_up_stops_its_generation() {
    // two supported sentences (the first is streamed once the second begins), then repeats the
    // validator drops while the model goes on
    let sentence = "Full-time employees get 30 working days of paid vacation per calendar year [1]. \
                    Part-time employees get a pro-rated amount based on their working days per week [1]. ";
    let m = ScriptedModels::replying(&sentence.repeat(75));
    *m.word_delay.lock().unwrap() = Duration::from_millis(4);
    let words = m.words.clone();
    let total = sentence.split_whitespace().count() * 75;
    // the repeats are dropped by the validator; the model is not stopped for them here
    let cfg = AssistantConfig { max_unsupported_run: usize::MAX, ..Default::default() };
    let (_d, state) = state_cfg(m, false, |_| Ok(()), cfg);
    let app = routes::app(state, 1 << 20);
    let body = json!({"model": "tresor", "stream": true, "no_cache": true, "messages": [{"role": "user", "content": QUESTION}]});
    let r = app.clone().oneshot(post_json("/v1/chat/completions", &body)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.into_body();
    let first = tokio::time::timeout(Duration::from_secs(20), stream.frame()).await.expect("a first chunk").unwrap().unwrap();
    assert!(first.is_data());
    let w1 = words.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(words.load(Ordering::Relaxed) > w1, "still generating while the client reads ({w1} of {total} words)");
    drop(stream); // the client hangs up
    tokio::time::sleep(Duration::from_millis(200)).await;
    let w3 = words.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let w4 = words.load(Ordering::Relaxed);
    assert_eq!(w3, w4, "the generation went on after the client left");
    assert!(w4 < total / 2, "stopped early: {w4} of {total} words");
    // and the engine is free for the next request at once
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(5), call(&app, get("/v1/models"))).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_403_before_the_token() {
    let (_d, app) = app();
    let with = |host: &str, origin: Option<&str>, path: &str| {
        let mut b = Request::get(path).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).header(header::HOST, host);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::empty()).unwrap()
    };
    // DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends its Host
    for (host, origin, path) in [
        ("evil.example:8080", None, "/v1/models"),
        ("evil.example:8080", None, "/api/health"),
        ("127.0.0.1:8080", Some("https://evil.example"), "/v1/models"),
        ("localhost:8080", Some("null"), "/v1/models"),
    ] {
        let (status, v) = call_json(&app, with(host, origin, path)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host} {origin:?} {path}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    for host in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        let (status, _, _) = call(&app, with(host, None, "/v1/models")).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn guessing_tokens_is_rate_limited_per_client() {
    let (_d, app) = app();
    let wrong = || Request::get("/v1/models").header(header::AUTHORIZATION, "Bearer tresor-guess-0000000000000000000000000000").body(Body::empty()).unwrap();
    for i in 0..crate::limits::AUTH_FAILURES.burst {
        assert_eq!(call(&app, wrong()).await.0, StatusCode::UNAUTHORIZED, "try {i}");
    }
    let (status, headers, body) = call(&app, wrong()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(body.contains("too_many_failed_authentications"), "{body}");
    // while blocked, a right token learns nothing either
    assert_eq!(call(&app, get("/v1/models")).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn tokens_shorter_than_32_characters_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let e = crate::api_token(d.path(), Some("hunter2")).unwrap_err();
    assert!(e.to_string().contains("at least 32"), "{e}");
    assert!(crate::api_token(d.path(), Some(&"x".repeat(32))).is_ok());
    // a short token left in the api-token file is refused too
    std::fs::write(d.path().join("api-token"), "short").unwrap();
    assert!(crate::api_token(d.path(), None).is_err());
    std::fs::remove_file(d.path().join("api-token")).unwrap();
    let (generated, new) = crate::api_token(d.path(), None).unwrap();
    assert!(new && generated.len() >= crate::MIN_TOKEN_CHARS);
    // and the server does not start with one
    let root = d.path().join("root");
    tresor_guard::workspace::Workspaces::new(&root).ensure("default").unwrap();
    let opts = ServeOptions { root, token: "short-token".into(), ..Default::default() };
    let r = AppState::start(&opts, Box::new(|_: &str, _: &Path| Err("never built".to_string())));
    assert!(matches!(r, Err(crate::ServeError::WeakToken { .. })));
}

#[tokio::test]
async fn error_bodies_never_show_paths_or_other_workspaces() {
    let broken = "secret-other-ws";
    let (d, state) = state_with(models(), false, move |dir| {
        if dir.to_string_lossy().contains(broken) {
            Err(format!("cannot open {}/key.json: keyring: org.freedesktop.secrets DBus error", dir.display()))
        } else {
            Ok(())
        }
    });
    let app = routes::app(state.clone(), 1 << 20);
    let root = d.path().join("data");
    let (_, broken_token) = other_workspace(&root, broken);
    // an upload whose save fails: `uploads` is a file
    std::fs::write(root.join("uploads"), "in the way").unwrap();
    let up = |kb: &str, file: &str| {
        Request::post(format!("/api/kb/{kb}/documents?filename={file}")).header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::from("text")).unwrap()
    };
    let ws = ws_of(&state, "default", &root);
    let panic_path = root.join("kb").join("default").display().to_string();
    let e = state.call(&ws, move |_| -> () { panic!("index out of range at {panic_path}") }).await.unwrap_err();
    let mut bodies = vec![serde_json::to_string(&e.body()).unwrap()];
    let reqs = vec![
        up("default", "policy.md"),
        up("nope", "x.md"),
        up("default", "..%2F..%2Fetc%2Fpasswd"),
        get("/api/kb/missing/search?q=x"),
        get("/api/threads/does-not-exist"),
        get("/api/actions/does-not-exist"),
        post_json("/v1/chat/completions", &json!({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]})),
        post_json("/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "hi"}], "kb": "../../etc"})),
        send(Method::POST, "/v1/chat/completions", "{not json".into()),
        get_as("/v1/models", &broken_token),
        get_as("/api/kb", &broken_token),
    ];
    let mut statuses = Vec::new();
    for r in reqs {
        let (status, _, body) = call(&app, r).await;
        assert!(status.is_client_error() || status.is_server_error(), "{status} {body}");
        statuses.push(status.as_u16());
        bodies.push(body);
    }
    // the failures are the ones meant: the broken workspace's and the upload's are 500s, not 401s
    assert_eq!(statuses[0], 500, "{}", bodies[1]);
    assert_eq!(statuses[statuses.len() - 2..], [500, 500], "{bodies:?}");
    let root_s = root.display().to_string();
    let tmp = d.path().display().to_string();
    for b in &bodies {
        assert!(!b.contains(&root_s) && !b.contains(&tmp), "an absolute path in an error body: {b}");
        assert!(!b.contains(broken), "another workspace's name in an error body: {b}");
        assert!(!b.to_lowercase().contains("keyring") && !b.contains("DBus"), "key store internals in an error body: {b}");
    }
}

#[test]
fn redaction_cuts_paths_to_their_last_component() {
    use crate::error::redact;
    assert_eq!(redact("/home/ann/.tresor/workspaces/acme/kb/x.sqlite: disk full"), "…/x.sqlite: disk full");
    assert_eq!(redact("reading `C:\\Users\\ann\\tresor\\key.json` failed"), "reading `…/key.json` failed");
    assert_eq!(redact("POST /api/kb/default/documents?filename=x"), "POST /api/kb/default/documents?filename=x");
    assert_eq!(redact("use N/min or off"), "use N/min or off");
}

#[tokio::test]
async fn nothing_is_answered_when_the_audit_log_cannot_be_written() {
    let m = models();
    let words = m.words.clone();
    let (d, app) = app_with(m, false);
    let audit = d.path().join("data").join("audit");
    // a log that cannot be appended to (a folder where the file should be: fails for root too)
    std::fs::remove_file(audit.join("log.jsonl")).unwrap();
    std::fs::create_dir(audit.join("log.jsonl")).unwrap();
    for stream in [false, true] {
        let body = json!({"model": "tresor", "stream": stream, "no_cache": true, "messages": [{"role": "user", "content": QUESTION}]});
        let (status, _, text) = call(&app, post_json("/v1/chat/completions", &body)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert!(text.contains("audit_unavailable") && !text.contains("30 working days"), "{text}");
    }
    let up = Request::post("/api/kb/default/documents?filename=x.md").header(header::AUTHORIZATION, format!("Bearer {TOKEN}")).body(Body::from("# X\n\ntext\n")).unwrap();
    assert_eq!(call(&app, up).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(words.load(Ordering::Relaxed), 0, "no generation ran");
    // a working log again: served, and audited first
    std::fs::remove_dir(audit.join("log.jsonl")).unwrap();
    std::fs::remove_file(audit.join("checkpoints.jsonl")).unwrap();
    assert_eq!(call(&app, get("/v1/models")).await.0, StatusCode::OK);
}
