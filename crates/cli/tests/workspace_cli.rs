//! End to end: workspaces (issue 7 §6) and abuse limits (§7) with the real
//! `tresor` binary, the real models and real files. The CLI keeps two
//! workspaces' knowledge bases of the same name apart; `tresor serve` runs
//! every request in its token's workspace (knowledge bases, cache, threads,
//! metrics) and answers 401/404 for another workspace's token and resources;
//! per-token rate limits answer 429 with Retry-After, size caps 413, both
//! with a JSON error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;

use serde_json::{json, Value};

mod common;

use common::{repo, Cli};

fn cli(home: &Path) -> Cli {
    // every workspace's key is unlocked with this passphrase
    Cli::new(home, Some("workspace-test-passphrase"))
}

/// Every file (relative path) under `dir`.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

const ACME_DOC: &str = "# Parking at Acme\n\nAcme employees park in garage ZEBRAFLUX on level two. \
Parking permits for the garage are issued by the facilities desk every January.\n";
const BETA_DOC: &str = "# Parking at Beta\n\nBeta employees park in the QUOKKAMARK lot behind building C. \
Parking permits for the lot are issued by the front office every March.\n";

/// Two doc folders with one file each, of different names and contents.
fn docs(home: &Path) -> (PathBuf, PathBuf) {
    let a = home.join("docs-acme");
    let b = home.join("docs-beta");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("acme-parking.md"), ACME_DOC).unwrap();
    std::fs::write(b.join("beta-parking.md"), BETA_DOC).unwrap();
    (a, b)
}

#[test]
fn cli_workspaces_keep_same_named_knowledge_bases_apart() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let data = h.join("data");
    let (da, db) = docs(h);
    // the default workspace keeps the old layout: the data dir itself
    let vac = h.join("docs-default");
    std::fs::create_dir_all(&vac).unwrap();
    std::fs::copy(repo().join("assets/sample-kb/handbook/vacation-policy.md"), vac.join("vacation-policy.md")).unwrap();
    cli(&data).ok(&["ingest", vac.to_str().unwrap()]);
    assert!(data.join("kb/default").is_dir());

    cli(&data).ok(&["workspace", "create", "acme"]);
    assert!(cli(&data).fails(&["workspace", "create", "acme"]).contains("already exists"));
    cli(&data).ok(&["--workspace", "acme", "ingest", da.to_str().unwrap(), "--kb", "handbook"]);
    // ingest creates a missing workspace, and says so
    let out = cli(&data).run(&["--workspace", "beta", "ingest", db.to_str().unwrap(), "--kb", "handbook"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("created workspace `beta`"));
    assert!(data.join("workspaces/acme/kb/handbook").is_dir() && data.join("workspaces/beta/kb/handbook").is_dir());

    // same KB name, same query: each workspace sees only its own document
    for (ws, own, own_marker, other, other_marker) in
        [("acme", "acme-parking.md", "ZEBRAFLUX", "beta-parking.md", "QUOKKAMARK"), ("beta", "beta-parking.md", "QUOKKAMARK", "acme-parking.md", "ZEBRAFLUX")]
    {
        let hits = cli(&data).json(&["--workspace", ws, "search", "where do employees park? parking permits", "--kb", "handbook", "--json"]);
        let hits = hits.as_array().unwrap();
        assert!(!hits.is_empty(), "{ws}: no hits");
        let all = serde_json::to_string(hits).unwrap();
        assert!(hits.iter().all(|h| h["source"].as_str().unwrap().ends_with(own)), "{ws}: {all}");
        assert!(all.contains(own_marker) && !all.contains(other_marker) && !all.contains(other), "{ws}: {all}");
        let docs = cli(&data).ok(&["--workspace", ws, "kb", "list", "--kb", "handbook"]);
        assert!(docs.contains(own) && !docs.contains(other), "{ws}: {docs}");
        assert!(cli(&data).fails(&["--workspace", ws, "kb", "list"]).contains("does not exist"), "{ws}: the default KB is not shared");
    }
    // the default workspace has no `handbook`, and its own KB is not visible elsewhere
    assert!(cli(&data).fails(&["search", "parking", "--kb", "handbook", "--json"]).contains("handbook"));
    let hits = cli(&data).json(&["search", "where do employees park? parking permits", "--json"]);
    let all = hits.to_string();
    assert!(!all.contains("ZEBRAFLUX") && !all.contains("QUOKKAMARK"), "{all}");
    assert!(cli(&data).fails(&["--workspace", "acme", "search", "vacation", "--kb", "default", "--json"]).contains("default"));

    // unknown workspace: a clear error and nothing created
    let err = cli(&data).fails(&["--workspace", "nope", "search", "parking", "--json"]);
    assert!(err.contains("workspace `nope` does not exist") && err.contains("tresor workspace create nope"), "{err}");
    assert!(!data.join("workspaces/nope").exists());
    // path tricks in names are refused before anything is touched
    for bad in ["../evil", "a/b", ".hidden", "Acme", ""] {
        let err = cli(&data).fails(&["--workspace", bad, "ingest", da.to_str().unwrap()]);
        assert!(err.contains("invalid workspace name"), "{bad}: {err}");
    }
    assert!(!h.join("evil").exists() && !data.join("evil").exists() && !data.join("workspaces/a").exists());

    let list = cli(&data).json(&["workspace", "list", "--json"]);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "acme", "beta"]);

    // removing needs --yes, never the default, and deletes only that workspace
    assert!(cli(&data).fails(&["workspace", "remove", "beta"]).contains("--yes"));
    assert!(data.join("workspaces/beta").is_dir());
    assert!(cli(&data).fails(&["workspace", "remove", "default", "--yes"]).contains("cannot be removed"));
    cli(&data).ok(&["workspace", "remove", "beta", "--yes"]);
    assert!(!data.join("workspaces/beta").exists());
    assert!(data.join("workspaces/acme/kb/handbook").is_dir() && data.join("kb/default").is_dir());
    assert!(cli(&data).fails(&["--workspace", "beta", "kb", "list", "--kb", "handbook"]).contains("workspace `beta` does not exist"));
}

#[test]
fn workspace_tokens_are_printed_once_and_stored_as_hashes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert!(cli(h).fails(&["workspace", "token", "create", "acme"]).contains("does not exist"));
    cli(h).ok(&["workspace", "create", "acme"]);
    let token = cli(h).ok(&["workspace", "token", "create", "acme", "--label", "ci"]).trim().to_string();
    assert!(token.starts_with("tresor-ws-") && token.len() > 60, "{token}");
    let again = cli(h).ok(&["workspace", "token", "create", "acme"]).trim().to_string();
    assert_ne!(token, again);
    // no file anywhere holds the token itself
    for f in files_under(h) {
        let bytes = std::fs::read(h.join(&f)).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&token[10..]), "{f} holds the token");
    }
    let list = cli(h).json(&["workspace", "token", "list", "acme", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["label"], "ci");
    assert!(!serde_json::to_string(list).unwrap().contains(&token[10..]));
    let id = list[0]["id"].as_str().unwrap().to_string();
    cli(h).ok(&["workspace", "token", "revoke", "acme", &id]);
    assert_eq!(cli(h).json(&["workspace", "token", "list", "acme", "--json"]).as_array().unwrap().len(), 1);
    assert!(cli(h).fails(&["workspace", "token", "revoke", "acme", &id]).contains("no token"));
}

#[test]
fn ask_refuses_a_huge_question_with_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let q = "How many vacation days do I get? ".repeat(200);
    let err = cli(home.path()).fails(&["ask", &q, "--json"]);
    assert!(err.contains("characters") && err.contains("4000"), "{err}");
}

// ---------------------------------------------------------------- the server

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(home: &Path, extra: &[&str]) -> Server {
    let mut serve = cli(home).cmd();
    serve.args(["serve", "--addr", "127.0.0.1:0"]).args(extra);
    let (child, addr) = common::spawn_server(serve);
    Server { child, addr }
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.body))
    }
}

/// One HTTP/1.1 request with a raw body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or_default();
    req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    // the server may answer (413) before it read the whole body
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status: u16 = resp.split_whitespace().nth(1).unwrap_or_else(|| panic!("no status: {resp}")).parse().unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").map(|(h, b)| (h.to_string(), b.to_string())).unwrap_or_default();
    Resp { status, head, body }
}

fn get(addr: &str, path: &str, token: &str) -> Resp {
    http(addr, "GET", path, Some(token), None)
}

fn post(addr: &str, path: &str, token: &str, body: &Value) -> Resp {
    http(addr, "POST", path, Some(token), Some(body.to_string().as_bytes()))
}

fn ask(addr: &str, token: &str, q: &str) -> Value {
    let r = post(addr, "/v1/chat/completions", token, &json!({"kb": "handbook", "messages": [{"role": "user", "content": q}]}));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn new_token(home: &Path, ws: &str) -> String {
    cli(home).ok(&["workspace", "token", "create", ws]).trim().to_string()
}

#[test]
fn serve_runs_every_request_in_its_tokens_workspace() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let data = h.join("data");
    // same KB name, different documents: Acme has the real vacation policy, Beta its own
    let da = h.join("docs-acme");
    std::fs::create_dir_all(&da).unwrap();
    std::fs::copy(repo().join("assets/sample-kb/handbook/vacation-policy.md"), da.join("vacation-policy.md")).unwrap();
    let db = h.join("docs-beta");
    std::fs::create_dir_all(&db).unwrap();
    std::fs::write(
        db.join("beta-leave.md"),
        "# Beta leave rules\n\nAt Beta, full-time employees get 12 vacation days per year. \
Vacation days are requested in the QUOKKAMARK portal.\n",
    )
    .unwrap();
    cli(&data).ok(&["--workspace", "acme", "ingest", da.to_str().unwrap(), "--kb", "handbook"]);
    cli(&data).ok(&["--workspace", "beta", "ingest", db.to_str().unwrap(), "--kb", "handbook"]);
    let ta = new_token(&data, "acme");
    let tb = new_token(&data, "beta");
    let srv = start(&data, &["--token", "legacy-default-token-0123456789abcdef"]);
    let a = srv.addr.as_str();

    // tokens: each works, a wrong one does not
    assert_eq!(get(a, "/v1/models", &ta).status, 200);
    assert_eq!(get(a, "/v1/models", &tb).status, 200);
    assert_eq!(get(a, "/v1/models", "legacy-default-token-0123456789abcdef").status, 200);
    assert_eq!(get(a, "/v1/models", &format!("{ta}0")).status, 401);
    assert_eq!(http(a, "GET", "/api/kb", None, None).status, 401);

    // knowledge base listings and search per workspace
    let kb_a = get(a, "/api/kb", &ta);
    assert_eq!(kb_a.json()["data"][0]["name"], "handbook", "{}", kb_a.body);
    assert_eq!(kb_a.json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(get(a, "/api/kb", "legacy-default-token-0123456789abcdef").json()["data"], json!([]));
    let sa = get(a, "/api/kb/handbook/search?q=vacation%20days&k=5", &ta);
    assert_eq!(sa.status, 200, "{}", sa.body);
    assert!(sa.body.contains("vacation-policy.md") && !sa.body.contains("beta-leave") && !sa.body.contains("QUOKKAMARK"), "{}", sa.body);
    let sb = get(a, "/api/kb/handbook/search?q=vacation%20days&k=5", &tb);
    assert!(sb.body.contains("beta-leave.md") && !sb.body.contains("vacation-policy"), "{}", sb.body);
    // the default workspace's token reaches neither
    assert_eq!(get(a, "/api/kb/handbook/search?q=vacation", "legacy-default-token-0123456789abcdef").status, 404);

    // the same question in both: each answers from its own documents
    let q = "How many vacation days do full-time employees get?";
    let ra = ask(a, &ta, q);
    let rb = ask(a, &tb, q);
    let sources = |r: &Value| -> Vec<String> {
        r["sources"].as_array().unwrap().iter().map(|s| s["source"].as_str().unwrap().to_string()).collect()
    };
    assert!(!sources(&ra).is_empty() && sources(&ra).iter().all(|s| s.ends_with("vacation-policy.md")), "{ra}");
    assert!(!sources(&rb).is_empty() && sources(&rb).iter().all(|s| s.ends_with("beta-leave.md")), "{rb}");
    assert!(!ra.to_string().contains("QUOKKAMARK") && !ra.to_string().contains("beta-leave"), "{ra}");
    assert!(!rb.to_string().contains("vacation-policy"), "{rb}");
    assert_eq!(ra["tresor"]["cache_hit"], false);
    assert_eq!(rb["tresor"]["cache_hit"], false, "Beta must not hit Acme's cache: {rb}");
    // a cache entry of Acme is a hit in Acme only
    let ra2 = ask(a, &ta, q);
    assert_eq!(ra2["tresor"]["cache_hit"], true, "{ra2}");
    assert_eq!(sources(&ra2), sources(&ra));

    // uploads land in the uploader's workspace only
    let up = http(a, "POST", "/api/kb/handbook/documents?filename=acme-garage.md", Some(&ta), Some(b"# Garage\n\nThe Acme garage code is ZEBRAFLUX-7.\n"));
    assert_eq!(up.status, 200, "{}", up.body);
    assert!(get(a, "/api/kb/handbook/search?q=garage%20code", &ta).body.contains("ZEBRAFLUX"));
    assert!(!get(a, "/api/kb/handbook/search?q=garage%20code", &tb).body.contains("ZEBRAFLUX"));
    assert!(!data.join("uploads").exists() && !data.join("workspaces/beta/uploads").exists());
    // encryption at rest: the plaintext upload is deleted once ingested (Acme's knowledge base holds it, encrypted)
    assert!(!data.join("workspaces/acme/uploads/handbook/acme-garage.md").exists());
    assert_eq!(get(a, "/api/kb", &tb).json()["data"][0]["documents"], 1);
    assert_eq!(get(a, "/api/kb", &ta).json()["data"][0]["documents"], 2);

    // threads: Beta's thread is not Acme's to read, delete or rate
    let t = post(a, "/api/threads", &tb, &json!({"title": "beta-secret-thread", "kb": "handbook"}));
    assert_eq!(t.status, 201, "{}", t.body);
    let tid = t.json()["id"].as_i64().unwrap();
    let m = post(a, &format!("/api/threads/{tid}/messages"), &tb, &json!({"content": "Hello!"}));
    assert_eq!(m.status, 200, "{}", m.body);
    let msgs = get(a, &format!("/api/threads/{tid}"), &tb).json();
    let mid = msgs["messages"][1]["id"].as_i64().unwrap();
    let r = get(a, &format!("/api/threads/{tid}"), &ta);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!r.body.contains("beta-secret-thread"));
    let r = get(a, "/api/threads", &ta);
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("beta-secret-thread"), "{}", r.body);
    assert!(get(a, "/api/threads", &tb).body.contains("beta-secret-thread"));
    assert_eq!(http(a, "DELETE", &format!("/api/threads/{tid}"), Some(&ta), None).status, 404);
    assert_eq!(post(a, &format!("/api/threads/{tid}/messages"), &ta, &json!({"content": "Hello!"})).status, 404);
    assert_eq!(post(a, "/api/feedback", &ta, &json!({"message_id": mid, "thumbs": -1})).status, 404);
    assert_eq!(get(a, &format!("/api/threads/{tid}"), &tb).status, 200, "Beta's thread survived Acme's attempts");
    // a thread created in Acme naming Beta-only data fails
    assert_eq!(post(a, "/api/threads", &ta, &json!({"kb": "nope"})).status, 404);

    // metrics per workspace
    let ma = get(a, "/api/metrics", &ta).body;
    let mb = get(a, "/api/metrics", &tb).body;
    assert!(ma.contains("tresor_answers_total 2\n") && ma.contains("tresor_cache_hits_total 1\n"), "{ma}");
    assert!(mb.contains("tresor_answers_total 2\n") && mb.contains("tresor_cache_hits_total 0\n"), "{mb}");

    // a revoked token stops working while the server runs
    let list = cli(&data).json(&["workspace", "token", "list", "beta", "--json"]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    cli(&data).ok(&["workspace", "token", "revoke", "beta", &id]);
    let mut status = 200;
    for _ in 0..50 {
        status = get(a, "/v1/models", &tb).status;
        if status == 401 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 401, "a revoked token still works");
    // a token created while the server runs works right away (after the reload)
    let tb2 = new_token(&data, "beta");
    // the server re-reads token files at most once a second; polling with a token it does not know
    // yet would count as failed authentications (10 per client IP, then 429)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut status = 401;
    for _ in 0..50 {
        status = get(a, "/api/kb", &tb2).status;
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 200);
    assert_eq!(get(a, "/v1/models", &ta).status, 200);
}

#[test]
fn serve_rate_limits_per_token_and_caps_sizes_with_json_errors() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    cli(&data).ok(&["workspace", "create", "acme"]);
    let t1 = new_token(&data, "acme");
    let t2 = new_token(&data, "acme");
    assert!(cli(&data).fails(&["--workspace", "nope", "serve"]).contains("does not exist"));
    assert!(cli(&data).fails(&["serve", "--rate-limit", "0/min"]).contains("at least 1"));
    let srv = start(
        &data,
        &["--rate-limit", "6/min", "--upload-limit", "1000", "--max-prompt-chars", "100", "--max-messages-chars", "300", "--body-limit", "20000"],
    );
    let a = srv.addr.as_str();
    let user = |c: String| json!({"role": "user", "content": c});

    // sizes (t1: 5 requests)
    let r = post(a, "/v1/chat/completions", &t1, &json!({"messages": [user("x".repeat(101))]}));
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "prompt_too_large");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("101 characters; the limit is 100"), "{}", r.body);
    let r = post(a, "/v1/chat/completions", &t1, &json!({"messages": [user("ä".repeat(100)), user("ü".repeat(100)), user("ö".repeat(100)), user("short?".into())]}));
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "messages_too_large");
    let r = http(a, "POST", "/api/kb/handbook/documents?filename=big.md", Some(&t1), Some("# Big\n\n".repeat(300).as_bytes()));
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "upload_too_large");
    assert!(!data.join("workspaces/acme/kb/handbook").exists(), "a refused upload ingested nothing");
    let r = get(a, &format!("/api/kb/handbook/search?q={}", "y".repeat(101)), &t1);
    assert_eq!(r.status, 413, "{}", r.body);
    let r = post(a, "/v1/chat/completions", &t1, &json!({"messages": [user("z".repeat(30000))]}));
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "body_too_large");

    // rate limit: t2's bucket of 6 empties, t1 keeps its last request
    for i in 0..6 {
        assert_eq!(get(a, "/api/kb", &t2).status, 200, "request {i}");
    }
    let r = get(a, "/api/kb", &t2);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    let retry = r
        .head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("no Retry-After: {}", r.head));
    assert!((1..=10).contains(&retry), "{retry}");
    let m = get(a, "/api/metrics", &t1);
    assert_eq!(m.status, 200, "{}", m.body);
    assert!(m.body.contains("tresor_http_rate_limited_total 1\n"), "{}", m.body);
    assert_eq!(get(a, "/api/kb", &t1).status, 429, "t1 used its 6");
}
