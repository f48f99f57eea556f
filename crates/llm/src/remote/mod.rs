//! A chat model on another machine: the OpenAI-compatible
//! `POST /v1/chat/completions` with `stream: true` (llama.cpp's
//! `llama-server`, vLLM, a company gateway), read as server-sent events
//! (`sse.rs`), with connect and read timeouts and retries with exponential
//! backoff for failures before the first token. `breaker.rs` is the circuit
//! breaker its caller keeps per backend.
//!
//! Owns: the request body (messages, sampling, stop strings), the stream's
//! parsing into text pieces and a [`Generation`], which failures may be
//! retried, and the typed [`RemoteError`]. Never: whether a backend may be
//! used (the admin policy, checked by the assistant), the API key's storage
//! (tresor-models), or what happens after a failure (the assistant falls back).

mod breaker;
pub mod sse;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;

pub use breaker::{Breaker, BreakerState};

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::model::{FinishReason, GenerateParams, Generation, TokenCounts};
use crate::template::{ChatMessage, Role};
use sse::Line;

/// Why a remote generation failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host} answered HTTP {status}: {body}")]
    Status { host: String, status: u16, body: String },
    #[error("{host} sent nothing for {ms} ms ({phase})")]
    Timeout { host: String, ms: u64, phase: &'static str },
    #[error("malformed stream: {0}")]
    Malformed(String),
    #[error("the server reported an error: {0}")]
    Server(String),
    #[error("{host} closed the stream after {tokens} tokens, before its end")]
    Disconnected { host: String, tokens: usize },
    #[error("invalid remote backend URL `{0}` (an http:// or https:// base URL)")]
    BadUrl(String),
}

impl RemoteError {
    /// Worth another try (nothing was shown yet): the server was unreachable,
    /// busy (HTTP 408/429/5xx), or slow to start.
    pub fn retryable(&self) -> bool {
        match self {
            RemoteError::Connect { .. } | RemoteError::Timeout { .. } => true,
            RemoteError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Where and how to reach one backend.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Base URL: `http://host:port` or `http://host:port/v1` (the endpoint is `…/v1/chat/completions`).
    pub url: String,
    /// The `model` field of the request (llama-server ignores it; vLLM and gateways route on it).
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the first token or between two chunks.
    pub read_timeout: Duration,
    /// Extra attempts after a retryable failure before the first token.
    pub retries: u32,
    /// Delay before the first retry; doubled for each further one.
    pub backoff: Duration,
}

impl RemoteConfig {
    pub fn new(url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            model: None,
            api_key: None,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(60),
            retries: 2,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Tokens of `text` in a remote model's tokenizer, which is not here: a conservative estimate
/// (3 characters a token) for packing prompts, and for a server that reports no `usage`.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(3)
}

/// `http://host:port/...` → `host:port` (what logs and the audit log may name).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?; // never user:password@
    (!host.is_empty()).then(|| host.to_string())
}

/// The chat-completions endpoint of a base URL.
pub fn endpoint(url: &str) -> Result<String, RemoteError> {
    if url_host(url).is_none() {
        return Err(RemoteError::BadUrl(url.to_string()));
    }
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/chat/completions").unwrap_or(base);
    Ok(if base.ends_with("/v1") { format!("{base}/chat/completions") } else { format!("{base}/v1/chat/completions") })
}

pub struct RemoteClient {
    cfg: RemoteConfig,
    endpoint: String,
    host: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteClient").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl RemoteClient {
    pub fn new(cfg: RemoteConfig) -> Result<RemoteClient, RemoteError> {
        let endpoint = endpoint(&cfg.url)?;
        let host = url_host(&cfg.url).unwrap_or_default();
        // no overall timeout: an answer may stream for minutes; silence is bounded by timeout_read
        let agent = ureq::AgentBuilder::new().timeout_connect(cfg.connect_timeout).timeout_read(cfg.read_timeout).build();
        Ok(RemoteClient { cfg, endpoint, host, agent })
    }

    /// `host:port` of the backend.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.cfg
    }

    /// Streams a chat completion, retrying failures before the first token
    /// ([`RemoteError::retryable`]) with exponential backoff. Text pieces go
    /// to `on_text` as they arrive; `Break` or `params.cancel` stop it.
    /// `Generation::tokens` holds one placeholder (0) per completion token:
    /// the ids are the server's. The counts are the server's `usage` when it
    /// reports one (`stream_options.include_usage`), else estimated, and
    /// `Generation::token_counts` says which. Returns the last error when
    /// every attempt failed.
    pub fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, RemoteError> {
        let body = self.body(messages, params);
        let prompt_estimate: usize = messages.iter().map(|m| estimate_tokens(&m.content)).sum();
        let mut attempt = 0;
        loop {
            let mut shown = false;
            let r = self.attempt(&body, params, prompt_estimate, &mut |p| {
                shown = true;
                on_text(p)
            });
            match r {
                Ok(g) => return Ok(g),
                Err(e) if !shown && e.retryable() && attempt < self.cfg.retries => {
                    let wait = self.cfg.backoff.saturating_mul(1u32 << attempt.min(16));
                    tracing::debug!(host = %self.host, attempt, error = %e, "remote backend: retrying in {wait:?}");
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn body(&self, messages: &[ChatMessage], params: &GenerateParams) -> Value {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                json!({ "role": role, "content": m.content })
            })
            .collect();
        let s = &params.sampling;
        let mut body = json!({
            "messages": msgs,
            "stream": true,
            "stream_options": { "include_usage": true },
            "max_tokens": params.max_tokens,
            "temperature": s.temperature,
        });
        if let Some(m) = &self.cfg.model {
            body["model"] = json!(m);
        }
        if s.temperature > 0.0 {
            body["top_p"] = json!(s.top_p);
            body["seed"] = json!(s.seed);
            if s.top_k > 0 {
                body["top_k"] = json!(s.top_k); // llama-server, vLLM: an extension of the API
            }
        }
        if (s.repeat_penalty - 1.0).abs() > f32::EPSILON {
            body["repeat_penalty"] = json!(s.repeat_penalty); // llama-server's name
        }
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        body
    }

    fn attempt(
        &self,
        body: &Value,
        params: &GenerateParams,
        prompt_estimate: usize,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, RemoteError> {
        let t0 = Instant::now();
        let mut req = self.agent.post(&self.endpoint).set("Accept", "text/event-stream");
        if let Some(k) = &self.cfg.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = req.send_json(body.clone()).map_err(|e| self.request_error(e))?;
        let mut reader = BufReader::new(resp.into_reader());
        let (mut text, mut pieces) = (String::new(), 0usize);
        let (mut ttft_ms, mut prompt_tokens, mut completion_tokens) = (None::<f64>, None, None);
        let mut finish = None;
        let mut line = String::new();
        let mut done = false;
        loop {
            if params.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                finish = Some(FinishReason::Cancelled);
                break;
            }
            line.clear();
            let n = match reader.read_line(&mut line) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                    let phase = if pieces == 0 { "before the first token" } else { "between two chunks" };
                    return Err(RemoteError::Timeout { host: self.host.clone(), ms: self.cfg.read_timeout.as_millis() as u64, phase });
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(RemoteError::Malformed(format!("not UTF-8 text: {e}"))),
                Err(_) => return Err(RemoteError::Disconnected { host: self.host.clone(), tokens: pieces }),
            };
            if n == 0 {
                break;
            }
            match sse::parse_line(&line)? {
                Line::Skip => {}
                Line::Done => {
                    done = true;
                    break;
                }
                Line::Data(c) => {
                    prompt_tokens = c.prompt_tokens.or(prompt_tokens);
                    completion_tokens = c.completion_tokens.or(completion_tokens);
                    if let Some(f) = c.finish.as_deref() {
                        finish = Some(match f {
                            "length" => FinishReason::Length,
                            "stop" if !params.stop.is_empty() && params.stop.iter().any(|s| text.ends_with(s.as_str())) => FinishReason::StopString,
                            _ => FinishReason::Eos,
                        });
                    }
                    if !c.text.is_empty() {
                        ttft_ms.get_or_insert_with(|| ms(t0));
                        pieces += 1;
                        text.push_str(&c.text);
                        if on_text(&c.text).is_break() {
                            finish = Some(FinishReason::Cancelled);
                            break;
                        }
                    }
                }
            }
        }
        if !done && finish.is_none() {
            // EOF without `[DONE]` or a finish reason: the connection dropped mid-answer
            return Err(RemoteError::Disconnected { host: self.host.clone(), tokens: pieces });
        }
        let total_ms = ms(t0);
        let ttft = ttft_ms.unwrap_or(total_ms);
        let counts = if completion_tokens.is_some() && prompt_tokens.is_some() { TokenCounts::Server } else { TokenCounts::Estimated };
        // llama-server streams one token a chunk; for other servers the pieces are an estimate
        let n = completion_tokens.unwrap_or(pieces);
        Ok(Generation {
            text,
            tokens: vec![0; n],
            finish: finish.unwrap_or(FinishReason::Eos),
            prompt_tokens: prompt_tokens.unwrap_or(prompt_estimate),
            token_counts: counts,
            reused_prompt_tokens: 0,
            prefill_ms: ttft,
            ttft_ms: ttft,
            total_ms,
            decode_tps: if n > 1 && total_ms > ttft { (n - 1) as f64 / ((total_ms - ttft) / 1e3) } else { 0.0 },
        })
    }

    fn request_error(&self, e: ureq::Error) -> RemoteError {
        let host = self.host.clone();
        match e {
            ureq::Error::Status(status, resp) => {
                let body: String = resp.into_string().unwrap_or_default().chars().take(300).collect();
                RemoteError::Status { host, status, body }
            }
            ureq::Error::Transport(t) => {
                let timed_out = std::error::Error::source(&t)
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .is_some_and(|io| matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock))
                    || t.to_string().contains("timed out");
                if timed_out {
                    let connect = t.kind() == ureq::ErrorKind::ConnectionFailed;
                    let (ms, phase) = if connect {
                        (self.cfg.connect_timeout.as_millis() as u64, "connecting")
                    } else {
                        (self.cfg.read_timeout.as_millis() as u64, "before the response")
                    };
                    RemoteError::Timeout { host, ms, phase }
                } else {
                    RemoteError::Connect { host, reason: t.to_string() }
                }
            }
        }
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests;
