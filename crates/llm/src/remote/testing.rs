//! Test support for remote backends (behind the `test-support` feature):
//! a real llama.cpp `llama-server` serving the shipped GGUF, started once
//! per test binary on a loopback port, and [`FaultServer`], a small HTTP
//! server of our own that misbehaves on purpose (junk, silence, a dropped
//! connection, an error status) — the fault injector.
//!
//! Owns: finding and starting the server binary and stopping it when the
//! test process ends. Never: used outside tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// `TRESOR_LLAMA_SERVER`, else `${TRESOR_CACHE:-~/.cache/tresor}/llama.cpp/build/bin/llama-server`
/// (what scripts/peer/build-llama-cpp.sh builds).
pub fn llama_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TRESOR_LLAMA_SERVER") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("TRESOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tresor"));
    cache.join("llama.cpp/build/bin/llama-server")
}

/// The shipped small chat model's GGUF (`TRESOR_MODELS`, else the checkout's `models/`).
pub fn shipped_gguf() -> PathBuf {
    let dir = std::env::var_os("TRESOR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let f = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(f.is_file(), "{} is missing: run `tresor models setup`", f.display());
    f
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running llama-server.
pub struct LlamaServer {
    pub url: String,
    pub port: u16,
    // held for the life of the process: when it ends, the pipe closes and the
    // wrapper shell kills the server (no stray servers after a test binary)
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

impl LlamaServer {
    /// Starts a server for `gguf` on a free loopback port and waits until it
    /// answers `/health`. Panics (the test fails) when the binary is missing.
    pub fn start(gguf: &std::path::Path) -> LlamaServer {
        let bin = llama_server_bin();
        assert!(
            bin.is_file(),
            "{} is missing: run scripts/peer/build-llama-cpp.sh (scripts/test does), or set TRESOR_LLAMA_SERVER",
            bin.display()
        );
        let port = free_port();
        let script = r#""$@" & c=$!; trap 'kill $c 2>/dev/null' EXIT; read _; kill $c 2>/dev/null; wait $c"#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&bin)
            .args(["-m"])
            .arg(gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-c", "2048", "-np", "1", "-t", "2", "--no-webui"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let stdin = child.stdin.take().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        loop {
            if let Ok(r) = ureq::get(&format!("{url}/health")).timeout(Duration::from_secs(2)).call() {
                if r.status() == 200 {
                    break;
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("llama-server exited at start ({status}); run it by hand: {} -m {}", bin.display(), gguf.display());
            }
            assert!(t.elapsed() < Duration::from_secs(120), "llama-server did not become healthy in 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        LlamaServer { url, port, _stdin: Mutex::new(stdin), _child: Mutex::new(child) }
    }

    /// The one server of this test binary, serving the shipped GGUF.
    pub fn shared() -> &'static LlamaServer {
        static SERVER: OnceLock<LlamaServer> = OnceLock::new();
        SERVER.get_or_init(|| LlamaServer::start(&shipped_gguf()))
    }
}

/// How [`FaultServer`] misbehaves.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 200 `text/event-stream` whose body is not SSE JSON.
    Junk,
    /// Accepts, reads the request, then says nothing for this long.
    Silent(Duration),
    /// Streams `n` valid chunks, then closes the connection without `[DONE]`.
    DropAfter(usize),
    /// Answers with this HTTP status and a short body.
    Status(u16),
    /// Fails the first `n` requests with 503, then streams a proper answer `text`.
    FailThenServe(usize, String),
}

/// A loopback HTTP server that answers every request with its [`Fault`]; counts requests.
pub struct FaultServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

impl FaultServer {
    pub fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let fault = fault.clone();
                std::thread::spawn(move || serve(stream, &fault, n));
            }
        });
        FaultServer { url, requests }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn read_request(stream: &mut TcpStream) {
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut len = 0usize;
    let mut line = String::new();
    while r.read_line(&mut line).unwrap_or(0) > 0 {
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let mut body = vec![0; len];
    let _ = r.read_exact(&mut body);
}

fn chunk(text: &str) -> String {
    format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
}

fn serve(mut s: TcpStream, fault: &Fault, n: usize) {
    read_request(&mut s);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
    let _ = match fault {
        Fault::Junk => s.write_all(format!("{head}data: {{\"choices\": [{{\"delta\": \nthis is not json\n\n").as_bytes()),
        Fault::Silent(d) => {
            std::thread::sleep(*d);
            s.write_all(head.as_bytes())
        }
        Fault::DropAfter(k) => {
            let body: String = (0..*k).map(|i| chunk(&format!("word{i} "))).collect();
            s.write_all(format!("{head}{body}").as_bytes())
        }
        Fault::Status(code) => {
            let body = "backend unavailable";
            s.write_all(format!("HTTP/1.1 {code} Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
        }
        Fault::FailThenServe(k, _) if n < *k => {
            let body = "busy";
            s.write_all(format!("HTTP/1.1 503 Busy\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
        }
        Fault::FailThenServe(_, text) => {
            let body: String = text.split_inclusive(' ').map(chunk).collect();
            let end = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
            s.write_all(format!("{head}{body}{end}").as_bytes())
        }
    };
    let _ = s.flush();
}
