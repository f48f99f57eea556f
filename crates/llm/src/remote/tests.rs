//! The client against a real llama-server (the shipped GGUF) and against
//! the fault injector.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::testing::{free_port, Fault, FaultServer, LlamaServer};
use super::*;
use crate::SamplingParams;

fn greedy(max_tokens: usize) -> GenerateParams {
    GenerateParams { max_tokens, sampling: SamplingParams::greedy(), ..Default::default() }
}

fn quick(url: &str) -> RemoteConfig {
    RemoteConfig {
        connect_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(800),
        retries: 0,
        backoff: Duration::from_millis(10),
        ..RemoteConfig::new(url)
    }
}

fn collect(c: &RemoteClient, params: &GenerateParams) -> (Result<Generation, RemoteError>, Vec<String>) {
    let mut pieces = Vec::new();
    let r = c.generate(&[ChatMessage::user("What is the capital of France?")], params, &mut |p| {
        pieces.push(p.to_string());
        ControlFlow::Continue(())
    });
    (r, pieces)
}

#[test]
fn urls_give_the_endpoint_and_a_host_without_credentials() {
    assert_eq!(endpoint("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080/v1/chat/completions");
    assert_eq!(endpoint("https://gw.example/v1/").unwrap(), "https://gw.example/v1/chat/completions");
    assert_eq!(endpoint("http://h:1/v1/chat/completions").unwrap(), "http://h:1/v1/chat/completions");
    assert!(matches!(endpoint("ftp://h/x"), Err(RemoteError::BadUrl(_))));
    assert_eq!(url_host("https://user:secret@gw.example:8443/v1").as_deref(), Some("gw.example:8443"));
}

#[test]
fn llama_server_streams_a_greedy_answer() {
    let server = LlamaServer::shared();
    let c = RemoteClient::new(RemoteConfig { model: Some("smollm2".into()), ..RemoteConfig::new(&server.url) }).unwrap();
    let (r, pieces) = collect(&c, &greedy(24));
    let g = r.unwrap();
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");
    assert_eq!(pieces.concat(), g.text);
    assert!(!g.text.trim().is_empty());
    assert!(g.prompt_tokens > 5, "usage reported: {}", g.prompt_tokens);
    assert_eq!(g.token_counts, TokenCounts::Server, "llama-server reports usage with include_usage");
    assert!(!g.tokens.is_empty() && g.tokens.len() <= 24);
    assert!(g.ttft_ms > 0.0 && g.ttft_ms <= g.total_ms);
    // greedy is deterministic: the same text again
    let (again, _) = collect(&c, &greedy(24));
    assert_eq!(again.unwrap().text, g.text);
    // the token budget is the server's finish reason
    let (short, _) = collect(&c, &greedy(3));
    let short = short.unwrap();
    assert_eq!(short.finish, FinishReason::Length, "{short:?}");
    assert_eq!(short.tokens.len(), 3);
    // the caller stops it
    let mut n = 0;
    let g = c
        .generate(&[ChatMessage::user("Count from one to fifty.")], &greedy(64), &mut |_| {
            n += 1;
            if n == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!(g.finish, FinishReason::Cancelled);
}

#[test]
fn a_server_that_is_down_is_a_retryable_connect_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let c = RemoteClient::new(RemoteConfig { retries: 2, ..quick(&url) }).unwrap();
    let t = Instant::now();
    let (r, pieces) = collect(&c, &greedy(8));
    let e = r.unwrap_err();
    assert!(matches!(e, RemoteError::Connect { .. }) && e.retryable(), "{e}");
    assert!(pieces.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(30), "two retries with backoff 10 + 20 ms");
}

#[test]
fn a_slow_server_times_out_and_is_retried() {
    let f = FaultServer::start(Fault::Silent(Duration::from_secs(5)));
    let c = RemoteClient::new(RemoteConfig { retries: 1, ..quick(&f.url) }).unwrap();
    let t = Instant::now();
    let (r, _) = collect(&c, &greedy(8));
    let e = r.unwrap_err();
    assert!(matches!(e, RemoteError::Timeout { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(4), "bounded by the read timeout, not the server: {:?}", t.elapsed());
    assert_eq!(f.requests(), 2, "one retry");
}

#[test]
fn junk_is_a_malformed_error_and_not_retried() {
    let f = FaultServer::start(Fault::Junk);
    let c = RemoteClient::new(RemoteConfig { retries: 3, ..quick(&f.url) }).unwrap();
    let (r, pieces) = collect(&c, &greedy(8));
    assert!(matches!(r, Err(RemoteError::Malformed(_))), "{r:?}");
    assert!(pieces.is_empty());
    assert_eq!(f.requests(), 1);
}

#[test]
fn a_mid_stream_disconnect_is_an_error_after_the_shown_text() {
    let f = FaultServer::start(Fault::DropAfter(3));
    let c = RemoteClient::new(RemoteConfig { retries: 3, ..quick(&f.url) }).unwrap();
    let (r, pieces) = collect(&c, &greedy(8));
    assert!(matches!(r, Err(RemoteError::Disconnected { tokens: 3, .. })), "{r:?}");
    assert_eq!(pieces.len(), 3);
    assert_eq!(f.requests(), 1, "text was shown: never retried (it would repeat)");
}

#[test]
fn busy_answers_are_retried_with_backoff_until_one_serves() {
    let f = FaultServer::start(Fault::FailThenServe(2, "Paris is the capital.".into()));
    let c = RemoteClient::new(RemoteConfig { retries: 2, ..quick(&f.url) }).unwrap();
    let (r, _) = collect(&c, &greedy(8));
    let g = r.unwrap();
    assert_eq!(g.text, "Paris is the capital.");
    assert_eq!(f.requests(), 3);
    // this server reports no usage: the counts are estimated, and the result says so
    assert_eq!(g.token_counts, TokenCounts::Estimated);
    assert_eq!(g.tokens.len(), 4, "one per streamed piece");
    assert_eq!(g.prompt_tokens, estimate_tokens("What is the capital of France?"));
    let f = FaultServer::start(Fault::Status(401));
    let c = RemoteClient::new(RemoteConfig { retries: 2, ..quick(&f.url) }).unwrap();
    let (r, _) = collect(&c, &greedy(8));
    assert!(matches!(r, Err(RemoteError::Status { status: 401, .. })), "{r:?}");
    assert_eq!(f.requests(), 1, "a 401 is not retried");
}
