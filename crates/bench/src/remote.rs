//! `tresor bench remote`: the same GGUF answered locally (tresor-llm) and by
//! llama.cpp's `llama-server` over the OpenAI-compatible API (tresor-llm's
//! `remote` client), alternating rounds — TTFT (first visible token) and
//! decode tokens/s of each — then the fallback: the server is killed and the
//! engine's remote model (`tresor_assistant::remote::RemoteChat`) must answer
//! from the local model; the time to its first visible token with the default
//! retries, and once the circuit breaker is open.
//!
//! Owns: starting and stopping its own server, the rounds and the report.
//! Never: asserts a speed (the report is the result).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tresor_assistant::models::{ChatModel, LlmChat};
use tresor_assistant::remote::{breaker_for, RemoteChat};
use tresor_guard::policy::RemotePolicy;
use tresor_llm::remote::{RemoteClient, RemoteConfig};
use tresor_llm::{ChatMessage, Device, GenerateParams, LlmModel, LoadOptions, SamplingParams};
use tresor_models::RemoteEntry;

use crate::{median, BenchError, Result};

pub struct RemoteBenchOptions {
    /// The GGUF both sides run.
    pub gguf: PathBuf,
    /// The llama-server binary (default: [`find_llama_server`]).
    pub server_bin: Option<PathBuf>,
    /// Threads of both sides.
    pub threads: usize,
    pub rounds: usize,
    pub max_tokens: usize,
    pub prompt: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteBenchReport {
    pub model: String,
    pub server: String,
    pub threads: usize,
    pub rounds: usize,
    pub max_tokens: usize,
    /// Medians over rounds: first visible token (ms) and decode tokens/s.
    pub local_ttft_ms: f64,
    pub remote_ttft_ms: f64,
    pub local_tokens_per_s: f64,
    pub remote_tokens_per_s: f64,
    pub local_ttft_runs: Vec<f64>,
    pub remote_ttft_runs: Vec<f64>,
    /// Server killed: request start to the local model's first visible token, with the
    /// default retries and backoff (the remote failure, then the fallback's TTFT).
    pub fallback_ttft_ms: f64,
    /// The same once the circuit breaker is open (the server is not tried).
    pub breaker_open_ttft_ms: f64,
    /// Why the fallback happened, as the answer's trace says it.
    pub fallback_reason: String,
}

/// `$TRESOR_LLAMA_SERVER`, else the build of scripts/peer/build-llama-cpp.sh under `$TRESOR_CACHE`.
pub fn find_llama_server() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRESOR_LLAMA_SERVER").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let p = crate::cache_dir()?.join("llama.cpp/build/bin/llama-server");
    p.is_file().then_some(p)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(bin: &Path, gguf: &Path, threads: usize) -> Result<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|source| BenchError::Spawn { what: "a loopback port".into(), source })?;
    let child = Command::new(bin)
        .arg("-m")
        .arg(gguf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-c", "2048", "-np", "1", "-t", &threads.to_string(), "--no-webui"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn { what: bin.display().to_string(), source })?;
    let mut server = Server(child);
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    loop {
        if ureq::get(&format!("{url}/health")).timeout(Duration::from_secs(2)).call().is_ok_and(|r| r.status() == 200) {
            return Ok((server, url));
        }
        if let Ok(Some(s)) = server.0.try_wait() {
            return Err(BenchError::Failed { what: "llama-server".into(), status: s.to_string(), stderr: "exited at start".into() });
        }
        if t.elapsed() > Duration::from_secs(120) {
            return Err(BenchError::Failed { what: "llama-server".into(), status: "timeout".into(), stderr: "not healthy in 120 s".into() });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (ttft ms to the first non-empty piece, decode tokens/s) of one generation.
fn measure(run: &mut dyn FnMut(&mut dyn FnMut(&str) -> ControlFlow<()>) -> std::result::Result<tresor_llm::Generation, String>) -> Result<(f64, f64)> {
    let t0 = Instant::now();
    let mut first = None;
    let g = run(&mut |p| {
        if first.is_none() && !p.trim().is_empty() {
            first = Some(t0.elapsed().as_secs_f64() * 1e3);
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| BenchError::Output { what: "generation".into(), reason: e })?;
    Ok((first.unwrap_or(g.total_ms), g.decode_tps))
}

pub fn run(opts: &RemoteBenchOptions) -> Result<RemoteBenchReport> {
    let bin = opts.server_bin.clone().or_else(find_llama_server).ok_or_else(|| BenchError::Failed {
        what: "llama-server".into(),
        status: "not found".into(),
        stderr: "run scripts/peer/build-llama-cpp.sh (or set TRESOR_LLAMA_SERVER)".into(),
    })?;
    tresor_llm::set_cpu_threads(opts.threads);
    let (server, url) = start_server(&bin, &opts.gguf, opts.threads)?;
    let mut local = LlmModel::load(&opts.gguf, &Device::Cpu, &LoadOptions { chat_template: None, context_length: Some(2048) })?;
    let client = RemoteClient::new(RemoteConfig::new(&url)).map_err(|e| BenchError::Output { what: "remote client".into(), reason: e.to_string() })?;
    let msgs = [ChatMessage::user(&opts.prompt)];
    // no stop strings, greedy, a fixed budget: both sides write the same number of tokens
    let params = GenerateParams { max_tokens: opts.max_tokens, sampling: SamplingParams::greedy(), ..Default::default() };
    let prompt = local.chat_prompt(&msgs)?;
    // warm-up: one of each, not counted
    measure(&mut |f| local.generate(&prompt, &params, f).map_err(|e| e.to_string()))?;
    measure(&mut |f| client.generate(&msgs, &params, f).map_err(|e| e.to_string()))?;
    let (mut lt, mut ls, mut rt, mut rs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..opts.rounds.max(1) {
        let (t, s) = measure(&mut |f| local.generate(&prompt, &params, f).map_err(|e| e.to_string()))?;
        lt.push(t);
        ls.push(s);
        let (t, s) = measure(&mut |f| client.generate(&msgs, &params, f).map_err(|e| e.to_string()))?;
        rt.push(t);
        rs.push(s);
    }

    // the server dies: the engine's remote model falls back to the local one
    let entry = RemoteEntry { breaker_failures: Some(1), ..RemoteEntry::new("bench-remote", &url) };
    let policy = RemotePolicy { allowed_urls: vec![url.clone()], ..Default::default() };
    let mut spare = Some(LlmChat { id: "local".into(), model: local });
    let loader = Box::new(move || -> tresor_assistant::Result<Box<dyn ChatModel>> {
        Ok(Box::new(spare.take().expect("the fallback loads once")) as Box<dyn ChatModel>)
    });
    let mut remote = RemoteChat::new(&entry, &policy, Arc::new(Mutex::new(breaker_for(&entry))), loader)
        .map_err(|e| BenchError::Output { what: "remote model".into(), reason: e.to_string() })?;
    // the local model is already loaded (moved into the fallback): the figure is the failed
    // remote call plus the local TTFT, not a model load
    drop(server);
    let (fallback_ttft_ms, _) = measure(&mut |f| remote.generate(&msgs, &params, f).map_err(|e| e.to_string()))?;
    let fallback_reason = remote.backend().and_then(|b| b.fallback).unwrap_or_default();
    let (breaker_open_ttft_ms, _) = measure(&mut |f| remote.generate(&msgs, &params, f).map_err(|e| e.to_string()))?;
    let m = |v: &[f64]| median(v).unwrap_or(0.0);
    Ok(RemoteBenchReport {
        model: opts.gguf.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        server: bin.display().to_string(),
        threads: opts.threads,
        rounds: opts.rounds.max(1),
        max_tokens: opts.max_tokens,
        local_ttft_ms: m(lt.as_slice()),
        remote_ttft_ms: m(rt.as_slice()),
        local_tokens_per_s: m(ls.as_slice()),
        remote_tokens_per_s: m(rs.as_slice()),
        local_ttft_runs: lt,
        remote_ttft_runs: rt,
        fallback_ttft_ms,
        breaker_open_ttft_ms,
        fallback_reason,
    })
}

pub fn table(r: &RemoteBenchReport) -> String {
    format!(
        "model {} · {} threads · {} rounds · {} tokens\n\
         {:<34} {:>10} {:>10}\n\
         {:<34} {:>10.1} {:>10.1}\n\
         {:<34} {:>10.1} {:>10.1}\n\
         fallback when the server dies: first token after {:.0} ms (default retries), {:.0} ms with the breaker open\n\
         ({})\n",
        r.model, r.threads, r.rounds, r.max_tokens,
        "", "local", "remote",
        "TTFT, first visible token (ms)", r.local_ttft_ms, r.remote_ttft_ms,
        "decode tokens/s", r.local_tokens_per_s, r.remote_tokens_per_s,
        r.fallback_ttft_ms, r.breaker_open_ttft_ms, r.fallback_reason
    )
}
