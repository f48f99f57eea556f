//! End-to-end: the real `tresor serve` on loopback, driven over raw HTTP and
//! by the real `openai` Python client (installed with pip into a venv the
//! test creates under the target dir and reuses).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

mod common;

use common::repo;

const TOKEN: &str = "test-token-123-0123456789abcdef0123";

struct Server {
    child: Child,
    addr: String,
    _home: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tresor(home: &Path) -> Command {
    // the data dir is encrypted: its key is unlocked with this passphrase
    common::tresor_with(home, Some("serve-test-passphrase"))
}

/// A server over a knowledge base with the English vacation policy.
fn start(extra: &[&str]) -> Server {
    let home = tempfile::tempdir().unwrap();
    let docs = home.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(repo().join("assets/sample-kb/handbook/vacation-policy.md"), docs.join("vacation-policy.md")).unwrap();
    let out = tresor(home.path()).args(["ingest", docs.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut serve = tresor(home.path());
    serve.args(["serve", "--addr", "127.0.0.1:0"]).args(extra);
    let (child, addr) = common::spawn_server(serve);
    Server { child, addr, _home: home }
}

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status: u16 = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn token_health_models_metrics_native_api_and_limits() {
    let srv = start(&["--token", TOKEN, "--max-queue", "1", "--body-limit", "2000"]);
    let a = srv.addr.as_str();
    assert_eq!(http(a, "GET", "/api/health", None, None).0, 200);
    let (st, body) = http(a, "GET", "/v1/models", None, None);
    assert_eq!(st, 401, "{body}");
    assert!(body.contains("invalid_api_key"));
    assert_eq!(http(a, "GET", "/v1/models", Some("wrong"), None).0, 401);
    let (st, body) = http(a, "GET", "/v1/models", Some(TOKEN), None);
    assert_eq!(st, 200);
    assert!(body.contains("\"tresor\"") && body.contains("smollm2-135m-instruct"), "{body}");
    let (st, body) = http(a, "GET", "/api/kb", Some(TOKEN), None);
    assert_eq!(st, 200);
    assert!(body.contains("\"name\":\"default\""), "{body}");
    let (st, body) = http(a, "GET", "/api/kb/default/search?q=vacation%20days&k=2", Some(TOKEN), None);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("vacation-policy.md"));
    // bad input: clear errors
    let (st, body) = http(a, "POST", "/v1/chat/completions", Some(TOKEN), Some("{\"messages\": 5}"));
    assert_eq!(st, 400, "{body}");
    let (st, _) = http(a, "POST", "/v1/chat/completions", Some(TOKEN), Some(&format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}", "x".repeat(3000))));
    assert_eq!(st, 413);
    let (st, body) = http(a, "POST", "/v1/chat/completions", Some(TOKEN), Some("{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("model_not_found"));
    // threads and feedback
    let (st, body) = http(a, "POST", "/api/threads", Some(TOKEN), Some("{\"title\":\"t\"}"));
    assert_eq!(st, 201, "{body}");
    let tid = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"].as_i64().unwrap();
    let (st, body) = http(a, "POST", &format!("/api/threads/{tid}/messages"), Some(TOKEN), Some("{\"content\":\"Hello!\"}"));
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(a, "GET", &format!("/api/threads/{tid}"), Some(TOKEN), None);
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mid = v["messages"][1]["id"].as_i64().unwrap();
    let (st, body) = http(a, "POST", "/api/feedback", Some(TOKEN), Some(&format!("{{\"message_id\":{mid},\"thumbs\":1,\"csat\":5}}")));
    assert_eq!(st, 201, "{body}");
    let (st, _) = http(a, "POST", "/api/feedback", Some(TOKEN), Some(&format!("{{\"message_id\":{mid},\"csat\":7}}")));
    assert_eq!(st, 400);
    // a full queue answers 429: one slow streaming answer holds the only slot
    let slow = "{\"stream\":true,\"no_cache\":true,\"messages\":[{\"role\":\"user\",\"content\":\"How many vacation days do full-time employees get?\"}]}";
    let addr2 = srv.addr.clone();
    let first = std::thread::spawn(move || http(&addr2, "POST", "/v1/chat/completions", Some(TOKEN), Some(slow)));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (st, body) = http(a, "POST", "/v1/chat/completions", Some(TOKEN), Some(slow));
    assert_eq!(st, 429, "{body}");
    let (st, body) = first.join().unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("\"sources\"") && body.contains("data: [DONE]"), "{body}");
    let (st, body) = http(a, "GET", "/api/metrics", Some(TOKEN), None);
    assert_eq!(st, 200);
    assert!(body.contains("tresor_http_rejected_total 1") && body.contains("# TYPE tresor_answers_total counter"), "{body}");
}

fn venv_python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let py = venv.join("bin/python");
    let ok = |py: &Path| Command::new(py).args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if py.exists() && ok(&py) {
        return Some(py);
    }
    let st = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().ok()?;
    if !st.success() {
        return None;
    }
    let st = Command::new(venv.join("bin/pip")).args(["install", "-q", "openai"]).status().ok()?;
    (st.success() && ok(&py)).then_some(py)
}

const CLIENT: &str = r#"
import sys, openai
base, token = sys.argv[1], sys.argv[2]
c = openai.OpenAI(base_url=base + "/v1", api_key=token)
ids = [m.id for m in c.models.list().data]
assert "tresor" in ids and "smollm2-135m-instruct" in ids, ids
q = [{"role": "user", "content": "How many vacation days do full-time employees get?"}]
r = c.chat.completions.create(model="tresor", messages=q)
d = r.model_dump()
assert "30" in r.choices[0].message.content, d
assert d["sources"][0]["source"].endswith("vacation-policy.md"), d
assert d["sources"][0]["n"] == 1
assert r.usage.prompt_tokens > 0
text, last = "", None
for ch in c.chat.completions.create(model="tresor", messages=q, stream=True, extra_body={"no_cache": True}):
    if ch.choices and ch.choices[0].delta.content:
        text += ch.choices[0].delta.content
    last = ch
assert "30" in text, text
ld = last.model_dump()
assert last.choices[0].finish_reason == "stop", ld
assert ld["sources"][0]["source"].endswith("vacation-policy.md"), ld
e = c.embeddings.create(model="all-minilm-l6-v2", input=["vacation days", "passwords"])
assert len(e.data) == 2 and len(e.data[0].embedding) == 384
try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong").models.list()
    raise SystemExit("expected 401")
except openai.AuthenticationError:
    pass
print("openai client ok")
"#;

#[test]
fn the_openai_python_client_lists_models_chats_streams_embeds_and_gets_401() {
    let Some(py) = venv_python() else {
        if std::env::var_os("TRESOR_SKIP_PY_CLIENT").is_some() {
            eprintln!("skipped: no openai client (pip install failed) and TRESOR_SKIP_PY_CLIENT is set");
            return;
        }
        panic!("could not create a venv with the openai client (pip install openai); set TRESOR_SKIP_PY_CLIENT=1 offline");
    };
    let srv = start(&[]);
    // the generated token sits in the data dir with mode 0600
    let token_path = srv._home.path().join("api-token");
    let token = std::fs::read_to_string(&token_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let out = Command::new(py).args(["-c", CLIENT, &format!("http://{}", srv.addr), token.trim()]).output().unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("openai client ok"));
}

/// The issue's load check, cheap: 16 streaming chat requests at once (4 questions, cache on, so
/// the model runs a few times and the engine queue still holds 16 streams); every one must end
/// with a final chunk carrying `sources` and `[DONE]`, none with an error. No timings asserted.
#[test]
fn sixteen_concurrent_streaming_clients_all_finish_without_error() {
    let srv = start(&["--token", TOKEN, "--rate-limit", "off"]);
    let questions = [
        "How many vacation days do full-time employees get?",
        "Who approves vacation requests?",
        "Can unused vacation days be carried over?",
        "Hello!",
    ];
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let addr = srv.addr.clone();
            let q = questions[i % questions.len()];
            std::thread::spawn(move || {
                let body = format!("{{\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"{q}\"}}]}}");
                (q, http(&addr, "POST", "/v1/chat/completions", Some(TOKEN), Some(&body)))
            })
        })
        .collect();
    for c in clients {
        let (q, (st, body)) = c.join().expect("client thread");
        assert_eq!(st, 200, "{q}: {body}");
        assert!(body.contains("data: [DONE]"), "{q}: no [DONE]: {body}");
        assert!(body.contains("\"finish_reason\":\"stop\"") && body.contains("\"sources\""), "{q}: no final chunk: {body}");
        assert!(!body.contains("\"error\""), "{q}: {body}");
    }
    let (st, body) = http(&srv.addr, "GET", "/api/metrics", Some(TOKEN), None);
    assert_eq!(st, 200);
    assert!(body.contains("tresor_answers_total 16") && body.contains("tresor_http_errors_total 0"), "{body}");
}

/// `tresor bench serve` starts its own scratch server, sends the clients at once and reports each one.
#[test]
fn bench_serve_reports_every_client_and_no_errors() {
    let home = tempfile::tempdir().unwrap();
    let docs = home.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::copy(repo().join("assets/sample-kb/handbook/vacation-policy.md"), docs.join("vacation-policy.md")).unwrap();
    let gold = home.path().join("gold.jsonl");
    std::fs::write(
        &gold,
        "{\"id\":\"a\",\"question\":\"How many vacation days do full-time employees get?\",\"answerable\":true}\n\
         {\"id\":\"b\",\"question\":\"What is the capital of Peru?\",\"answerable\":false}\n",
    )
    .unwrap();
    let out = tresor(&home.path().join("unused"))
        .args(["bench", "serve", "--clients", "4", "--cache", "--timeout", "300", "--json", "--goldset"])
        .arg(&gold)
        .arg("--docs")
        .arg(&docs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["clients"].as_u64(), v["completed"].as_u64(), v["errors"].as_u64()), (Some(4), Some(4), Some(0)), "{v}");
    let per = v["per_client"].as_array().unwrap();
    assert_eq!(per.len(), 4);
    for c in per {
        assert_eq!(c["status"], 200, "{c}");
        assert!(c["ttft_ms"].as_f64().is_some() && c["sources"].as_u64() >= Some(1), "{c}");
        assert_eq!(c["question"], "How many vacation days do full-time employees get?");
    }
    // bad input: a clear error, nothing started
    let out = tresor(&home.path().join("unused")).args(["bench", "serve", "--goldset"]).arg(&gold).args(["--docs", "/nonexistent"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"), "{}", String::from_utf8_lossy(&out.stderr));
}
