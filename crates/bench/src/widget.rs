//! The web widget in a real browser: a minimal W3C WebDriver client for
//! Debian's headless Chromium (`chromium` + `chromium-driver`), a loopback
//! page server that embeds the widget under a strict CSP, and the latency
//! comparison of `tresor bench widget` (first streamed text and the whole
//! answer, the widget in the browser vs the API over raw HTTP, alternating).
//!
//! Owns: talking to chromedriver, serving test pages, timing. Never: starts
//! `tresor serve` (the caller passes its address and a widget token) or
//! asserts a speed (the bench reports; the e2e test decides).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The WebDriver key of a shadow root reference.
const SHADOW: &str = "shadow-6066-11e4-a52e-4f735466cecf";

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("chromedriver not found (install Debian's chromium and chromium-driver: scripts/desktop-deps)")]
    NoDriver,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("webdriver: {0}")]
    Driver(String),
}

pub type Result<T> = std::result::Result<T, BrowserError>;

/// One HTTP/1.1 request with a JSON body over a fresh connection; (status, body).
fn http_json(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(900)))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes())?;
    // read by Content-Length (chromedriver keeps the connection open whatever we ask)
    let mut r = BufReader::new(s);
    let mut head = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let len = lower.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
    let body = match len {
        Some(n) => {
            let mut b = vec![0; n];
            r.read_exact(&mut b)?;
            String::from_utf8_lossy(&b).to_string()
        }
        None => {
            let mut b = Vec::new();
            r.read_to_end(&mut b)?;
            let t = String::from_utf8_lossy(&b).to_string();
            if lower.contains("transfer-encoding: chunked") { dechunk(&t) } else { t }
        }
    };
    let v = if body.trim().is_empty() { Value::Null } else { serde_json::from_str(&body).map_err(|e| BrowserError::Driver(format!("{e}: {body}")))? };
    Ok((status, v))
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The chromedriver binary: `$CHROMEDRIVER`, else Debian's `/usr/bin/chromedriver`, else on PATH.
pub fn chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMEDRIVER").map(PathBuf::from).filter(|p| p.is_file()) {
        return Some(p);
    }
    let deb = Path::new("/usr/bin/chromedriver");
    if deb.is_file() {
        return Some(deb.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("chromedriver")).find(|p| p.is_file()))
}

/// A headless Chromium session behind its own chromedriver (both stopped on drop).
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http_json(self.addr, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A WebDriver element (or shadow root) reference.
#[derive(Debug, Clone)]
pub struct Element(Value);

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width`×`height`.
    pub fn start(width: u32, height: u32) -> Result<Browser> {
        let exe = chromedriver().ok_or(BrowserError::NoDriver)?;
        let port = free_port()?;
        let mut driver = Command::new(exe).arg(format!("--port={port}")).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        // "ChromeDriver was started successfully" on stdout; then the port answers
        let out = driver.stdout.take().expect("piped");
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                line.clear();
            }
        });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = driver.kill();
                return Err(BrowserError::Driver("chromedriver did not start within 20 s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args = vec!["--headless=new".to_string(), "--no-sandbox".into(), "--disable-gpu".into(), "--disable-dev-shm-usage".into()];
        args.push(format!("--window-size={width},{height}"));
        args.push("--no-first-run".into());
        args.push("--disable-extensions".into());
        let mut caps = json!({"browserName": "chrome", "goog:chromeOptions": {"args": args}});
        if let Some(bin) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().find(|p| Path::new(p).is_file()) {
            caps["goog:chromeOptions"]["binary"] = json!(bin);
        }
        let session = match http_json(addr, "POST", "/session", Some(&json!({"capabilities": {"alwaysMatch": caps}}))) {
            Ok((200, v)) if v["value"]["sessionId"].is_string() => v["value"]["sessionId"].as_str().unwrap_or_default().to_string(),
            other => {
                let _ = driver.kill();
                let _ = driver.wait();
                return Err(match other {
                    Err(e) => e,
                    Ok((st, v)) => BrowserError::Driver(format!("new session: {st} {v}")),
                });
            }
        };
        Ok(Browser { driver, addr, session })
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (st, v) = http_json(self.addr, method, &format!("/session/{}{path}", self.session), body.as_ref())?;
        if st != 200 {
            return Err(BrowserError::Driver(format!("{method} {path}: {st} {}", v["value"])));
        }
        Ok(v["value"].clone())
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({"url": url}))).map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd("POST", "/execute/sync", Some(json!({"script": script, "args": args})))
    }

    /// Runs `script` whose last argument is a callback; the value passed to it (within `timeout`).
    pub fn execute_async(&self, script: &str, args: Value, timeout: Duration) -> Result<Value> {
        self.cmd("POST", "/timeouts", Some(json!({"script": timeout.as_millis() as u64})))?;
        self.cmd("POST", "/execute/async", Some(json!({"script": script, "args": args})))
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None)?;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).map_err(|e| BrowserError::Driver(format!("screenshot: {e}")))
    }

    /// A Chrome DevTools Protocol command (e.g. `Emulation.setEmulatedMedia`).
    pub fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.cmd("POST", "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params})))
    }

    /// Light or dark `prefers-color-scheme` for the page.
    pub fn color_scheme(&self, dark: bool) -> Result<()> {
        self.cdp("Emulation.setEmulatedMedia", json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]})).map(|_| ())
    }

    /// The first element matching a CSS selector in the document.
    pub fn find(&self, css: &str) -> Result<Element> {
        self.cmd("POST", "/element", Some(json!({"using": "css selector", "value": css}))).map(Element)
    }

    /// The open shadow root of `host`.
    pub fn shadow_root(&self, host: &Element) -> Result<Element> {
        self.cmd("GET", &format!("/element/{}/shadow", host.id()?), None).map(Element)
    }

    /// Elements matching `css` inside a shadow root.
    pub fn find_in_shadow(&self, root: &Element, css: &str) -> Result<Vec<Element>> {
        let sid = root.0[SHADOW].as_str().ok_or_else(|| BrowserError::Driver(format!("not a shadow root: {}", root.0)))?;
        let v = self.cmd("POST", &format!("/shadow/{sid}/elements"), Some(json!({"using": "css selector", "value": css})))?;
        Ok(v.as_array().cloned().unwrap_or_default().into_iter().map(Element).collect())
    }

    pub fn click(&self, e: &Element) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/click", e.id()?), Some(json!({}))).map(|_| ())
    }

    /// Types `text` into an element (WebDriver key codes: "\u{E007}" is Enter, "\u{E00C}" Escape).
    pub fn send_keys(&self, e: &Element, text: &str) -> Result<()> {
        self.cmd("POST", &format!("/element/{}/value", e.id()?), Some(json!({"text": text}))).map(|_| ())
    }

    /// Presses keys on whatever has the focus (W3C actions).
    pub fn press(&self, keys: &[&str]) -> Result<()> {
        let mut actions = Vec::new();
        for k in keys {
            actions.push(json!({"type": "keyDown", "value": k}));
            actions.push(json!({"type": "keyUp", "value": k}));
        }
        self.cmd("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "kbd", "actions": actions}]}))).map(|_| ())
    }

    pub fn text(&self, e: &Element) -> Result<String> {
        self.cmd("GET", &format!("/element/{}/text", e.id()?), None).map(|v| v.as_str().unwrap_or_default().to_string())
    }
}

impl Element {
    fn id(&self) -> Result<&str> {
        self.0[ELEMENT].as_str().ok_or_else(|| BrowserError::Driver(format!("not an element: {}", self.0)))
    }
}

/// A loopback HTTP server for test pages: `GET /` answers the page set with
/// [`PageServer::set`], with its Content-Security-Policy header. Its origin
/// is `http://127.0.0.1:PORT`, another origin than Tresor's.
pub struct PageServer {
    pub addr: SocketAddr,
    page: Arc<std::sync::Mutex<(String, String)>>,
}

impl PageServer {
    /// Binds a loopback port and serves an empty page until [`PageServer::set`].
    pub fn start() -> Result<PageServer> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let page = Arc::new(std::sync::Mutex::new((String::new(), "default-src 'none'".to_string())));
        let shared = page.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let page = shared.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(match s.try_clone() {
                        Ok(c) => c,
                        Err(_) => return,
                    });
                    let mut first = String::new();
                    let _ = r.read_line(&mut first);
                    let mut line = String::new();
                    while r.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                        line.clear();
                    }
                    let (body, csp) = page.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let resp = if first.starts_with("GET / ") || first.starts_with("GET /?") {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Security-Policy: {csp}\r\nCache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                    };
                    let _ = s.write_all(resp.as_bytes());
                });
            }
        });
        Ok(PageServer { addr, page })
    }

    /// The page and its CSP from now on.
    pub fn set(&self, page: String, csp: String) {
        *self.page.lock().unwrap_or_else(|p| p.into_inner()) = (page, csp);
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The strict page CSP the widget is claimed to work under: scripts and
/// connections only to Tresor, no frames, no inline scripts, no `data:`
/// images, styles only from the page itself (the widget's are a constructed
/// stylesheet), CSP violations reported to nobody but counted by the page.
pub fn strict_csp(tresor_origin: &str) -> String {
    format!("default-src 'none'; script-src {tresor_origin}; connect-src {tresor_origin}; style-src 'self'; img-src 'self'; frame-src 'none'; base-uri 'none'; form-action 'none'")
}

/// A test page embedding the widget: a heading, a paragraph and the one
/// script tag (no inline script anywhere).
pub fn embed_page(tresor_origin: &str, kb: &str, token: &str, lang: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>Intranet</title></head>\n<body>\n<h1>Intranet</h1>\n<p>Questions about the handbook? Ask the assistant at the bottom right.</p>\n<script src=\"{tresor_origin}/widget.js\" data-kb=\"{kb}\" data-token=\"{token}\" data-lang=\"{lang}\" defer></script>\n</body></html>\n"
    )
}

/// One timed answer, each in a fresh conversation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timed {
    pub path: &'static str,
    pub question: String,
    /// Round number (0-based); the warm-up is not a round.
    pub round: usize,
    /// Whether this path asked first in its pair.
    pub first_in_pair: bool,
    /// Request start (the conversation is opened inside the window on both
    /// paths) to the first non-empty answer text the client holds, ms.
    pub first_text_ms: f64,
    /// Request start to the end of the stream, ms.
    pub total_ms: f64,
    /// The engine's own figures from the answer's last chunk (`tresor`, `usage`):
    /// equal cache conditions show as similar prefill and prompt tokens on both paths.
    pub prefill_ms: f64,
    pub prompt_tokens: u64,
    pub cache_hit: bool,
    pub refused: bool,
}

/// What the last chunk of a streamed answer says about how it came about.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub prefill_ms: f64,
    pub generate_ms: f64,
    pub prompt_tokens: u64,
    pub cache_hit: bool,
    pub refused: bool,
}

impl Meta {
    /// From the `tresor` object and `usage` of the last chunk.
    pub fn of(tresor: &Value, usage: &Value) -> Meta {
        Meta {
            prefill_ms: tresor["timings"]["prefill_ms"].as_f64().unwrap_or(0.0),
            generate_ms: tresor["timings"]["generate_ms"].as_f64().unwrap_or(0.0),
            prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            cache_hit: tresor["cache_hit"].as_bool().unwrap_or(false),
            refused: tresor["refused"].as_bool().unwrap_or(false),
        }
    }

    /// Whether the chat model ran (a refusal or a canned reply leaves its KV cache as it was).
    pub fn ran_model(&self) -> bool {
        self.generate_ms > 0.0 && self.prompt_tokens > 0
    }
}

/// One request with an API token over a fresh connection: (status, body) —
/// for small JSON answers (Content-Length or chunked).
fn api_json(addr: SocketAddr, token: &str, path: &str, body: &Value) -> std::result::Result<(u16, Value), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
    let payload = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// Streams one answer in conversation `thread` from `t0` on: (first text, total, meta).
fn stream_api(addr: SocketAddr, token: &str, kb: &str, thread: Option<i64>, question: &str, t0: Instant) -> std::result::Result<(Duration, Duration, Meta), String> {
    let body = json!({"model": "tresor", "stream": true, "no_cache": true, "kb": kb, "thread": thread, "messages": [{"role": "user", "content": question}]}).to_string();
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut first = None;
    let mut meta = Meta::default();
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the stream ended without [DONE]".into());
        }
        let Some(data) = line.trim_end().strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        if first.is_none() && v["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
            first = Some(t0.elapsed());
        }
        if v["tresor"].is_object() {
            meta = Meta::of(&v["tresor"], &v["usage"]);
        }
    }
    let total = t0.elapsed();
    Ok((first.unwrap_or(total), total, meta))
}

/// The API path, a fresh conversation each time: `POST /api/threads` then a
/// streamed `/v1/chat/completions` in it (no semantic cache), timed from
/// before opening the conversation — as the widget opens its own inside
/// `ask()` — to the first content delta and to `[DONE]`.
pub fn time_api(addr: SocketAddr, token: &str, kb: &str, question: &str) -> std::result::Result<Timed, String> {
    let t0 = Instant::now();
    let (st, v) = api_json(addr, token, "/api/threads", &json!({"title": "bench widget", "kb": kb}))?;
    let thread = v["id"].as_i64().ok_or_else(|| format!("opening a conversation: {st} {v}"))?;
    let (first, total, m) = stream_api(addr, token, kb, Some(thread), question, t0)?;
    Ok(Timed {
        path: "api",
        question: question.into(),
        first_text_ms: ms(first),
        total_ms: ms(total),
        prefill_ms: m.prefill_ms,
        prompt_tokens: m.prompt_tokens,
        cache_hit: m.cache_hit,
        refused: m.refused,
        ..Timed::default()
    })
}

/// The lead-in of the flush question (see [`flush`]).
pub const FLUSH_LEAD: &str = "In one sentence: ";

/// An unmeasured answer before every measured one, on the API without a
/// conversation: the chat model reuses the KV cache of the prefix a prompt
/// shares with the previous one, so the second path to ask a question got
/// the first path's prefill for free (one token) and answered in a few ms.
/// After a flush both paths find the same cache: the flush's prompt. Its
/// question is the measured one with [`FLUSH_LEAD`] (same passages, so it
/// is answered, not refused, whenever the question is). The meta says
/// whether the model ran.
pub fn flush(addr: SocketAddr, token: &str, kb: &str, question: &str) -> std::result::Result<Meta, String> {
    stream_api(addr, token, kb, None, &format!("{FLUSH_LEAD}{question}"), Instant::now()).map(|(_, _, m)| m)
}

/// The script that times one `TresorWidget.ask` in a freshly loaded page: to
/// the first text in the new answer element and to the promise's resolution;
/// with the answer's `tresor` metadata (which `ask()` passes on).
pub const TIME_WIDGET_JS: &str = r#"
const [q, done] = arguments;
const root = document.getElementById('tresor-widget').shadowRoot;
const before = root.querySelectorAll('[data-tresor-role=answer]').length;
let first = null, t0 = 0;
const mo = new MutationObserver(() => {
  const a = root.querySelectorAll('[data-tresor-role=answer]')[before];
  if (first === null && a && a.querySelector('.text') && a.querySelector('.text').textContent.length > 0) first = performance.now() - t0;
});
mo.observe(root, {subtree: true, childList: true, characterData: true});
t0 = performance.now();
window.TresorWidget.ask(q).then(r => { mo.disconnect(); const total = performance.now() - t0; done({ok: true, first: first === null ? total : first, total, refused: r.refused, tresor: r.tresor || null, usage: r.usage || null}); },
                                e => { mo.disconnect(); done({ok: false, error: String(e && e.message || e), status: e && e.status}); });
"#;

/// Loads `url` (the embedding page) afresh and waits for `window.TresorWidget`:
/// a new widget with no conversation yet.
pub fn fresh_page(b: &Browser, url: &str) -> std::result::Result<(), String> {
    b.goto(url).map_err(|e| e.to_string())?;
    let ready = b
        .execute_async("const done = arguments[0]; const t = () => window.TresorWidget ? done(true) : setTimeout(t, 20); t();", json!([]), Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    if ready != json!(true) {
        return Err("the widget did not load on the test page".into());
    }
    Ok(())
}

/// The widget path: `TresorWidget.ask` in a page loaded afresh (so a new
/// conversation, opened inside the timed window).
pub fn time_widget(b: &Browser, page_url: &str, question: &str) -> std::result::Result<Timed, String> {
    fresh_page(b, page_url)?;
    let v = b.execute_async(TIME_WIDGET_JS, json!([question]), Duration::from_secs(600)).map_err(|e| e.to_string())?;
    if v["ok"] != json!(true) {
        return Err(format!("the widget failed: {v}"));
    }
    let m = Meta::of(&v["tresor"], &v["usage"]);
    Ok(Timed {
        path: "widget",
        question: question.into(),
        first_text_ms: v["first"].as_f64().unwrap_or(0.0),
        total_ms: v["total"].as_f64().unwrap_or(0.0),
        prefill_ms: m.prefill_ms,
        prompt_tokens: m.prompt_tokens,
        cache_hit: m.cache_hit,
        refused: v["refused"].as_bool().unwrap_or(false),
        ..Timed::default()
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Median of a list (0 when empty).
pub fn median(v: Vec<f64>) -> f64 {
    crate::median(&v).unwrap_or(0.0)
}


/// p50 / p95 of one path and one measure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    pub p50_ms: f64,
    pub p95_ms: f64,
}

impl Spread {
    fn of(v: Vec<f64>) -> Spread {
        Spread { p50_ms: median(v.clone()), p95_ms: crate::nearest_rank(v, 0.95) }
    }
}

/// Where and how the comparison ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Conditions {
    pub cpu: String,
    pub device: String,
    pub threads: Option<usize>,
    pub load_average_before: Option<String>,
    pub load_average_after: Option<String>,
    /// Every measured answer ran after a flush that ran the model (see [`flush`]).
    pub flushes_ran_model: bool,
    pub semantic_cache: &'static str,
}

/// The comparison `tresor bench widget` prints.
#[derive(Debug, Serialize)]
pub struct WidgetBench {
    pub runs: Vec<Timed>,
    pub api_first_text: Spread,
    pub widget_first_text: Spread,
    pub api_total: Spread,
    pub widget_total: Spread,
    /// widget p50 / API p50 of the first text (1.0: the same).
    pub first_text_ratio: f64,
    /// widget p50 − API p50 of the first text, ms.
    pub first_text_overhead_ms: f64,
    /// Measured answers that came from a cache (must be 0 for a fair comparison).
    pub cache_hits: usize,
    pub conditions: Conditions,
}

impl WidgetBench {
    pub fn of(runs: Vec<Timed>, conditions: Conditions) -> WidgetBench {
        let pick = |p: &str, f: fn(&Timed) -> f64| Spread::of(runs.iter().filter(|t| t.path == p).map(f).collect());
        let (a1, w1) = (pick("api", |t| t.first_text_ms), pick("widget", |t| t.first_text_ms));
        let (a2, w2) = (pick("api", |t| t.total_ms), pick("widget", |t| t.total_ms));
        let ratio = if a1.p50_ms > 0.0 { (w1.p50_ms / a1.p50_ms * 1000.0).round() / 1000.0 } else { 0.0 };
        WidgetBench {
            first_text_overhead_ms: ((w1.p50_ms - a1.p50_ms) * 100.0).round() / 100.0,
            first_text_ratio: ratio,
            cache_hits: runs.iter().filter(|t| t.cache_hit).count(),
            api_first_text: a1,
            widget_first_text: w1,
            api_total: a2,
            widget_total: w2,
            runs,
            conditions,
        }
    }

    pub fn table(&self) -> String {
        let mut s = String::from("round path    1st question                                     first text ms   total ms  prefill ms  prompt tok\n");
        // `*` in the 1st column: that path asked first in its pair
        for t in &self.runs {
            let q: String = t.question.chars().take(44).collect();
            s.push_str(&format!(
                "{:>5} {:<7} {:<3} {:<45} {:>10.1} {:>10.1} {:>11.1} {:>11}\n",
                t.round,
                t.path,
                if t.first_in_pair { "*" } else { "" },
                q,
                t.first_text_ms,
                t.total_ms,
                t.prefill_ms,
                t.prompt_tokens
            ));
        }
        s.push_str(&format!(
            "\nfirst text p50 / p95: api {:.1} / {:.1} ms, widget {:.1} / {:.1} ms (widget/api p50 ratio {:.3}, widget − api {:+.1} ms)\ntotal p50 / p95:      api {:.1} / {:.1} ms, widget {:.1} / {:.1} ms\n",
            self.api_first_text.p50_ms,
            self.api_first_text.p95_ms,
            self.widget_first_text.p50_ms,
            self.widget_first_text.p95_ms,
            self.first_text_ratio,
            self.first_text_overhead_ms,
            self.api_total.p50_ms,
            self.api_total.p95_ms,
            self.widget_total.p50_ms,
            self.widget_total.p95_ms
        ));
        let c = &self.conditions;
        s.push_str(&format!(
            "conditions: a fresh conversation per answer on both paths; semantic cache {}; a model-running flush before every answer ({}); cache hits among measured answers: {}\ncpu: {}; device {}; threads {}; load average (1 min) before / after: {} / {}\n",
            c.semantic_cache,
            if c.flushes_ran_model { "all ran the model" } else { "SOME DID NOT RUN THE MODEL: the comparison may be unequal" },
            self.cache_hits,
            c.cpu,
            c.device,
            c.threads.map(|t| t.to_string()).unwrap_or_else(|| "default".into()),
            c.load_average_before.as_deref().unwrap_or("?"),
            c.load_average_after.as_deref().unwrap_or("?")
        ));
        s
    }
}

/// Which path asks first for question `q` of round `round`: it alternates
/// every pair and every round (with an even number of questions a plain
/// per-pair alternation would give each question the same order every round).
pub fn api_first(round: usize, q: usize) -> bool {
    (round + q) % 2 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(path: &'static str, first: f64, total: f64) -> Timed {
        Timed { path, question: "q".into(), first_text_ms: first, total_ms: total, ..Timed::default() }
    }

    #[test]
    fn chunked_bodies_percentiles_and_the_ratio() {
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut runs: Vec<Timed> = (1..=20).map(|i| timed("api", 100.0 + i as f64, 900.0)).collect();
        runs.extend((1..=20).map(|i| timed("widget", 110.0 + i as f64, 905.0)));
        runs[3].cache_hit = true;
        let b = WidgetBench::of(runs, Conditions { cpu: "test cpu".into(), flushes_ran_model: true, ..Conditions::default() });
        assert_eq!(b.api_first_text, Spread { p50_ms: 110.5, p95_ms: 119.0 });
        assert_eq!(b.widget_first_text, Spread { p50_ms: 120.5, p95_ms: 129.0 });
        assert_eq!(b.first_text_overhead_ms, 10.0);
        assert_eq!(b.first_text_ratio, 1.09);
        assert_eq!(b.cache_hits, 1);
        let t = b.table();
        assert!(t.contains("ratio 1.090") && t.contains("+10.0 ms") && t.contains("test cpu") && t.contains("cache hits among measured answers: 1"), "{t}");
    }

    #[test]
    fn the_order_alternates_per_pair_and_per_round() {
        // two questions, two rounds: each question is asked API-first once and widget-first once
        assert!(api_first(0, 0) && !api_first(0, 1));
        assert!(!api_first(1, 0) && api_first(1, 1));
        // one question: the order flips every round
        assert_ne!(api_first(0, 0), api_first(1, 0));
    }

    #[test]
    fn the_meta_says_whether_the_model_ran() {
        let ran = Meta::of(&json!({"timings": {"prefill_ms": 12.0, "generate_ms": 80.0}, "cache_hit": false, "refused": false}), &json!({"prompt_tokens": 300}));
        assert!(ran.ran_model() && ran.prompt_tokens == 300 && ran.prefill_ms == 12.0);
        let refused = Meta::of(&json!({"timings": {"prefill_ms": 0.0, "generate_ms": 0.0}, "refused": true}), &json!({"prompt_tokens": 0}));
        assert!(!refused.ran_model() && refused.refused);
    }

    #[test]
    fn the_strict_csp_names_only_tresor_for_scripts_and_connections() {
        let csp = strict_csp("http://127.0.0.1:8080");
        assert!(csp.contains("script-src http://127.0.0.1:8080;") && csp.contains("connect-src http://127.0.0.1:8080;"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("data:"));
        let page = embed_page("http://127.0.0.1:8080", "default", "tresor-wd-x", "en");
        assert_eq!(page.matches("<script").count(), 1, "one external script, nothing inline");
        assert!(page.contains("src=\"http://127.0.0.1:8080/widget.js\""));
    }
}
