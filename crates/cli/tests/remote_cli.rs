//! End-to-end with the real `tresor` binary and a real llama-server (issue
//! #23 §2): `models remote add` (only a URL the admin policy lists, the API
//! key from a file and never stored), `models list --json` with
//! `remote: true`, `ask --model ID` answered by the server with the backend
//! in the answer's trace and the audit log, `--role chat-premium` routing,
//! a workspace that forbids remote backends, and `models remote remove`.

use std::path::Path;
use std::process::Output;

mod common;

use common::{json_output, ok_output, Cli};
use tresor_llm::remote::testing::LlamaServer;

/// A models dir of the test's own (remote.toml goes there) holding the shipped models.
fn own_models(dir: &Path) -> std::path::PathBuf {
    let m = dir.join("models");
    std::fs::create_dir_all(&m).unwrap();
    for e in std::fs::read_dir(common::models_dir_with_embedder()).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), m.join(e.file_name())).unwrap();
    }
    m
}

fn run(cli: &Cli, policy: &Path, args: &[&str]) -> Output {
    cli.cmd().env("TRESOR_POLICY", policy).args(args).output().expect("run tresor")
}

#[test]
fn a_remote_model_is_added_listed_asked_audited_forbidden_and_removed() {
    let server = LlamaServer::shared();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cli = Cli::with_models(&home, Some("remote-test-passphrase"), &own_models(dir.path()));
    let policy = dir.path().join("admin-policy.toml");
    std::fs::write(&policy, format!("[remote]\nallowed_urls = [\"{}\"]\n", server.url)).unwrap();
    let key = dir.path().join("api-key");
    std::fs::write(&key, "sk-remote-test-0123456789\n").unwrap();

    // a URL the admin did not list is refused before anything is written
    let o = run(&cli, &policy, &["models", "remote", "add", "other", "--url", "http://10.1.2.3:8080"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("allowed_urls"), "{}", String::from_utf8_lossy(&o.stderr));

    let k = key.to_str().unwrap();
    let args = ["models", "remote", "add", "gpu", "--url", &server.url, "--model", "smollm2", "--api-key-file", k, "--role", "chat-premium"];
    ok_output(&run(&cli, &policy, &args), "models remote add");
    let stored = std::fs::read_to_string(cli.models.join("remote.toml")).unwrap();
    assert!(!stored.contains("sk-remote-test"), "the key is referenced, never stored: {stored}");

    let list = json_output(&run(&cli, &policy, &["models", "list", "--json"]), "models list");
    let rows = list.as_array().unwrap();
    let gpu = rows.iter().find(|r| r["id"] == "gpu").expect("listed");
    assert_eq!(gpu["remote"], true);
    assert_eq!(gpu["role"], "chat-premium");
    assert_eq!(gpu["url"], server.url.as_str());
    assert!(rows.iter().any(|r| r["id"] == "smollm2-135m-instruct" && r["remote"] == false));

    // short answers keep the test quick (the general route writes up to twice this)
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("assistant.toml"), "max_answer_tokens = 24\n").unwrap();

    // asked by id: the server answers, the trace and the audit log say so
    let a = json_output(&run(&cli, &policy, &["ask", "What is the capital of France?", "--model", "gpu", "--json", "--no-cache"]), "ask --model gpu");
    assert_eq!(a["model"], "gpu", "{a}");
    assert_eq!(a["trace"]["backend"]["kind"], "remote", "{a}");
    let host = format!("127.0.0.1:{}", server.port);
    assert_eq!(a["trace"]["backend"]["host"], host.as_str());
    assert!(!a["answer"].as_str().unwrap().trim().is_empty(), "{a}");
    let log = std::fs::read_to_string(home.join("audit/log.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(log.lines().rev().find(|l| l.contains("\"answer\"")).unwrap()).unwrap();
    let backend = &entry["data"]["backend"];
    assert_eq!((backend["kind"].as_str(), backend["model"].as_str(), backend["host"].as_str()), (Some("remote"), Some("gpu"), Some(host.as_str())), "{entry}");
    assert!(!log.contains("sk-remote-test"));

    // routing: a multi-part question goes to chat-premium, which is the remote model
    let a = json_output(&run(&cli, &policy, &["ask", "What is the capital of France? And of Spain?", "--json", "--no-cache"]), "ask (routed)");
    assert_eq!(a["routing"]["role"], "chat-premium", "{a}");
    assert_eq!(a["trace"]["backend"]["kind"], "remote", "{a}");

    // a workspace that forbids remote backends: refused by id, kept local by routing
    std::fs::write(home.join("policy.toml"), "[remote]\nenabled = false\n").unwrap();
    let o = run(&cli, &policy, &["ask", "What is the capital of France?", "--model", "gpu", "--json", "--no-cache"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused") && err.contains("forbidden"), "{err}");
    let a = json_output(&run(&cli, &policy, &["ask", "What is the capital of France? And of Spain?", "--json", "--no-cache"]), "ask (forbidden)");
    assert_eq!(a["trace"]["backend"]["kind"], "local", "{a}");
    assert_eq!(a["model"], "gemma-3-270m", "the local chat-premium model: {a}");
    std::fs::remove_file(home.join("policy.toml")).unwrap();

    ok_output(&run(&cli, &policy, &["models", "remote", "remove", "gpu"]), "models remote remove");
    let list = json_output(&run(&cli, &policy, &["models", "list", "--json"]), "models list");
    assert!(list.as_array().unwrap().iter().all(|r| r["id"] != "gpu"));
    assert!(!run(&cli, &policy, &["models", "remote", "remove", "gpu"]).status.success());
}

#[test]
fn bench_remote_reports_both_sides_and_the_fallback_on_a_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::with_models(&dir.path().join("home"), None, &common::models_dir());
    let r = cli.json(&["--threads", "2", "bench", "remote", "--rounds", "1", "--max-tokens", "4", "--json"]);
    for k in ["local_ttft_ms", "remote_ttft_ms", "local_tokens_per_s", "remote_tokens_per_s", "fallback_ttft_ms", "breaker_open_ttft_ms"] {
        assert!(r[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {r}");
    }
    assert!(r["fallback_reason"].as_str().unwrap().contains("cannot reach"), "{r}");
    assert_eq!(r["remote_ttft_runs"].as_array().unwrap().len(), 1);
}
