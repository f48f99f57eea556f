//! A bounded load test for a running `tresor serve`: N clients at once, each
//! one streaming `POST /v1/chat/completions` (SSE) over loopback, each with
//! a hard deadline, so the test always stops by itself.
//!
//! Owns: the plain HTTP/1.1 client (std only: a load test should not share
//! the server's stack), reading the SSE stream, what counts as an error (a
//! non-200 status, an error object in the stream, no final chunk with
//! `sources`, no `[DONE]`, a timeout, a broken connection) and the per-client
//! times (time to the first non-empty content delta, and to `[DONE]`).
//! Never: retries a request or hides a failed one (every client is in the
//! report), or asserts timings (the caller reports them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::percentile;

/// What one load test asks.
#[derive(Debug, Clone)]
pub struct LoadTest {
    pub addr: SocketAddr,
    pub token: String,
    /// Client i asks `questions[i % len]`.
    pub questions: Vec<String>,
    pub clients: usize,
    /// Bypass the semantic cache (every client makes the model run).
    pub no_cache: bool,
    /// Each client's deadline from its start; a client past it is an error.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientResult {
    pub client: usize,
    pub question: String,
    pub status: u16,
    /// Request sent → first non-empty content delta (None: no content came).
    pub ttft_ms: Option<f64>,
    /// Request sent → `[DONE]` (or the failure).
    pub total_ms: f64,
    pub content_chunks: usize,
    pub sources: usize,
    pub refused: Option<bool>,
    pub cache_hit: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Spread {
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub completed: usize,
    pub errors: usize,
    pub ttft_ms: Spread,
    pub total_ms: Spread,
    /// First request sent → last client finished.
    pub wall_ms: f64,
    pub per_client: Vec<ClientResult>,
}

fn spread(mut v: Vec<f64>) -> Spread {
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Spread { p50: percentile(&v, 0.5), p95: percentile(&v, 0.95), max: v[v.len() - 1] }
}

/// Runs the clients at once (one OS thread each) and waits for all of them.
pub fn run(t: &LoadTest) -> LoadReport {
    let start = Instant::now();
    let clients = t.clients.max(1);
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let q = if t.questions.is_empty() { "Hello".to_string() } else { t.questions[i % t.questions.len()].clone() };
            let t = t.clone();
            std::thread::spawn(move || one_client(i, &t, q))
        })
        .collect();
    let per_client: Vec<ClientResult> = handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.join().unwrap_or_else(|_| ClientResult {
                error: Some("the client thread panicked".into()),
                ..ClientResult::new(i, String::new())
            })
        })
        .collect();
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let ok: Vec<&ClientResult> = per_client.iter().filter(|c| c.error.is_none()).collect();
    LoadReport {
        clients,
        completed: ok.len(),
        errors: per_client.len() - ok.len(),
        ttft_ms: spread(ok.iter().filter_map(|c| c.ttft_ms).collect()),
        total_ms: spread(ok.iter().map(|c| c.total_ms).collect()),
        wall_ms,
        per_client,
    }
}

impl ClientResult {
    /// A client that has not received anything yet.
    fn new(client: usize, question: String) -> ClientResult {
        ClientResult {
            client,
            question,
            status: 0,
            ttft_ms: None,
            total_ms: 0.0,
            content_chunks: 0,
            sources: 0,
            refused: None,
            cache_hit: None,
            error: None,
        }
    }
}

fn one_client(i: usize, t: &LoadTest, question: String) -> ClientResult {
    let mut r = ClientResult::new(i, question.clone());
    let start = Instant::now();
    if let Err(e) = stream_chat(t, &question, start, &mut r) {
        r.error = Some(e);
    }
    r.total_ms = start.elapsed().as_secs_f64() * 1e3;
    r
}

fn stream_chat(t: &LoadTest, question: &str, start: Instant, r: &mut ClientResult) -> Result<(), String> {
    let body = json!({"model": "tresor", "stream": true, "no_cache": t.no_cache, "messages": [{"role": "user", "content": question}]}).to_string();
    let mut s = TcpStream::connect_timeout(&t.addr, t.timeout).map_err(|e| format!("connect: {e}"))?;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        t.addr,
        t.token,
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut raw: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let mut head: Option<(u16, bool, usize)> = None; // (status, chunked, body start)
    let mut events = SseReader::default();
    let mut done = false;
    while !done {
        let left = t.timeout.checked_sub(start.elapsed()).filter(|d| !d.is_zero()).ok_or("timed out")?;
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Err("timed out".into()),
            Err(e) => return Err(format!("read: {e}")),
        };
        raw.extend_from_slice(&buf[..n]);
        if head.is_none() {
            let Some(end) = find(&raw, b"\r\n\r\n") else { continue };
            let h = String::from_utf8_lossy(&raw[..end]).to_string();
            let status: u16 = h.split_whitespace().nth(1).and_then(|x| x.parse().ok()).ok_or_else(|| format!("bad status line: {h:.80}"))?;
            r.status = status;
            let chunked = h.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.to_ascii_lowercase().contains("chunked"));
            head = Some((status, chunked, end + 4));
        }
        let (status, chunked, at) = head.expect("set above");
        if status != 200 {
            continue; // read the error body to the end
        }
        let body = if chunked { dechunk(&raw[at..]) } else { raw[at..].to_vec() };
        for data in events.feed(&body) {
            if data == "[DONE]" {
                done = true;
                break;
            }
            let v: Value = serde_json::from_str(&data).map_err(|e| format!("a data line is not JSON ({e}): {data:.120}"))?;
            if v.get("error").is_some() {
                return Err(format!("error in the stream: {}", v["error"]));
            }
            let delta = &v["choices"][0]["delta"];
            if delta["content"].as_str().is_some_and(|c| !c.is_empty()) {
                r.content_chunks += 1;
                if r.ttft_ms.is_none() {
                    r.ttft_ms = Some(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            if let Some(src) = v.get("sources").and_then(Value::as_array) {
                r.sources = src.len();
                r.refused = v["tresor"]["refused"].as_bool();
                r.cache_hit = v["tresor"]["cache_hit"].as_bool();
            }
        }
    }
    match head {
        None => Err("no response".into()),
        Some((status, _, at)) if status != 200 => Err(format!("HTTP {status}: {:.200}", String::from_utf8_lossy(&raw[at..]))),
        Some(_) if !done => Err("the stream ended without [DONE]".into()),
        Some(_) if r.refused.is_none() => Err("no final chunk with sources".into()),
        Some(_) if r.content_chunks == 0 => Err("no content".into()),
        Some(_) => Ok(()),
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// The complete chunks of a chunked body so far (an unfinished last chunk is left out).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(b, b"\r\n") {
        let size = std::str::from_utf8(&b[..eol]).ok().and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 || b.len() < eol + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

/// Turns the body seen so far into the `data:` payloads of complete events not returned before.
#[derive(Default)]
struct SseReader {
    seen: usize,
}

impl SseReader {
    fn feed(&mut self, body: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
        let complete = match text.rfind("\n\n") {
            Some(i) => &text[..i + 2],
            None => return Vec::new(),
        };
        let events: Vec<&str> = complete.split("\n\n").filter(|e| !e.trim().is_empty()).collect();
        let new: Vec<String> = events
            .iter()
            .skip(self.seen)
            .map(|e| e.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect::<Vec<_>>().join("\n"))
            .collect();
        self.seen = events.len();
        // keep-alive comments carry no data
        new.into_iter().filter(|d| !d.is_empty()).collect()
    }
}

/// A one-table summary of a report.
pub fn table(r: &LoadReport) -> String {
    let mut s = format!(
        "{} streaming clients at once: {} completed, {} errors, {:.0} ms for all\n\n| measure | p50 | p95 | max |\n|---|---|---|---|\n",
        r.clients, r.completed, r.errors, r.wall_ms
    );
    s.push_str(&format!("| TTFT (ms) | {:.0} | {:.0} | {:.0} |\n", r.ttft_ms.p50, r.ttft_ms.p95, r.ttft_ms.max));
    s.push_str(&format!("| total (ms) | {:.0} | {:.0} | {:.0} |\n", r.total_ms.p50, r.total_ms.p95, r.total_ms.max));
    s.push_str("\n| client | status | TTFT (ms) | total (ms) | sources | error |\n|---|---|---|---|---|---|\n");
    for c in &r.per_client {
        s.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} |\n",
            c.client,
            c.status,
            c.ttft_ms.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into()),
            c.total_ms,
            c.sources,
            c.error.as_deref().unwrap_or("")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_sse_is_read_event_by_event() {
        let ev1 = "data: {\"a\":1}\n\n";
        let ev2 = "data: [DONE]\n\n";
        let body = format!("{:x}\r\n{ev1}\r\n{:x}\r\n{ev2}\r\n0\r\n\r\n", ev1.len(), ev2.len());
        let half = &body.as_bytes()[..body.find("data: [DONE]").unwrap()];
        let mut r = SseReader::default();
        assert_eq!(r.feed(&dechunk(half)), vec!["{\"a\":1}".to_string()]);
        assert_eq!(r.feed(&dechunk(body.as_bytes())), vec!["[DONE]".to_string()]);
        assert!(r.feed(&dechunk(body.as_bytes())).is_empty());
        assert_eq!(spread(vec![3.0, 1.0, 2.0]).p50, 2.0);
    }

    #[test]
    fn a_closed_port_is_an_error_per_client_not_a_panic() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = run(&LoadTest { addr, token: "t".into(), questions: vec!["q".into()], clients: 3, no_cache: true, timeout: Duration::from_secs(5) });
        assert_eq!((r.clients, r.completed, r.errors), (3, 0, 3));
        assert!(r.per_client.iter().all(|c| c.error.as_deref().unwrap().starts_with("connect")));
    }
}
