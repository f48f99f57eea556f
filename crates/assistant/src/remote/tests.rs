//! Remote models behind the seam: a real llama-server answers; a server that
//! is down, junk or cut off mid-stream, and a policy that forbids it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tresor_llm::remote::testing::{free_port, Fault, FaultServer, LlamaServer};
use tresor_llm::SamplingParams;
use tresor_models::{Catalog, RemoteModels};

use super::*;
use crate::models::{CatalogModels, ModelSource, ModelSpec};

fn shipped_models() -> PathBuf {
    std::env::var_os("TRESOR_MODELS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// A models dir of the test's own (remote.toml is written there) whose local models are the shipped ones.
fn models_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(shipped_models()).unwrap().flatten() {
        std::os::unix::fs::symlink(e.path(), d.path().join(e.file_name())).unwrap();
    }
    d
}

fn allow(url: &str) -> RemotePolicy {
    RemotePolicy { allowed_urls: vec![url.to_string()], ..Default::default() }
}

fn source(dir: &std::path::Path, entry: RemoteEntry, policy: RemotePolicy) -> WithRemote {
    RemoteModels::load(dir).unwrap().add(entry, &Catalog::load(dir).unwrap()).unwrap();
    let local = CatalogModels { models_dir: dir.to_path_buf(), device: tresor_llm::Device::Cpu, context_cap: Some(1024) };
    WithRemote::new(local, policy)
}

/// An entry for chat-small (its local fallback is the shipped SmolLM2) with short timeouts, no
/// retries and a breaker that opens after two failures.
fn quick(id: &str, url: &str) -> RemoteEntry {
    RemoteEntry {
        role: Some(tresor_models::Role::ChatSmall),
        connect_timeout_ms: Some(300),
        read_timeout_ms: Some(1500),
        retries: Some(0),
        breaker_failures: Some(2),
        breaker_cooldown_ms: Some(60_000),
        ..RemoteEntry::new(id, url)
    }
}

fn ask(m: &mut dyn ChatModel) -> (Result<Generation>, String) {
    let params = GenerateParams { max_tokens: 12, sampling: SamplingParams::greedy(), ..Default::default() };
    let mut shown = String::new();
    let r = m.generate(&[ChatMessage::user("What is the capital of France?")], &params, &mut |p| {
        shown.push_str(p);
        ControlFlow::Continue(())
    });
    (r, shown)
}

#[test]
fn llama_server_answers_by_id_and_for_its_role() {
    let server = LlamaServer::shared();
    let dir = models_dir();
    // a loaded CI machine may take seconds to the first token: the real server gets the default read timeout
    let entry = RemoteEntry { read_timeout_ms: None, role: Some(tresor_models::Role::ChatPremium), ..quick("gpu", &server.url) };
    let mut src = source(dir.path(), entry, allow(&server.url));
    for spec in [ModelSpec::Named("gpu".into()), ModelSpec::Role(tresor_models::Role::ChatPremium)] {
        let mut m = src.load(&spec).unwrap();
        let (g, shown) = ask(m.as_mut());
        let g = g.unwrap();
        assert_eq!(g.text, shown);
        assert!(!shown.trim().is_empty(), "{shown:?}");
        let b = m.backend().unwrap();
        assert_eq!((b.kind.as_str(), b.model.as_str()), ("remote", "gpu"), "{b:?}");
        assert_eq!(b.host.as_deref(), Some(format!("127.0.0.1:{}", server.port).as_str()));
        assert_eq!(b.fallback, None);
        assert_eq!(b.tokens.as_deref(), Some("server"), "llama-server reports usage: {b:?}");
        assert_eq!(m.id(), "gpu");
    }
    // chat-small stays local; the remote one is listed as available
    let m = src.load(&ModelSpec::Role(tresor_models::Role::ChatSmall)).unwrap();
    assert_eq!(m.id(), "smollm2-135m-instruct");
    assert!(src.available().iter().any(|(id, role)| id == "gpu" && role == "chat-premium"));
}

#[test]
fn a_server_that_is_down_falls_back_to_local_and_opens_the_breaker() {
    let dir = models_dir();
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut src = source(dir.path(), quick("down", &url), allow(&url));
    let mut m = src.load(&ModelSpec::Role(tresor_models::Role::ChatSmall)).unwrap();
    for call in 0..2 {
        let (g, shown) = ask(m.as_mut());
        assert!(!g.unwrap().text.is_empty() && !shown.is_empty(), "the local model answered");
        let b = m.backend().unwrap();
        assert_eq!(b.kind, "local");
        assert_eq!(b.model, "smollm2-135m-instruct");
        assert_eq!(b.remote_model.as_deref(), Some("down"));
        assert!(b.fallback.as_deref().unwrap().contains("cannot reach"), "{b:?}");
        assert_eq!(b.breaker.as_deref(), Some(if call == 0 { "closed" } else { "open" }), "{b:?}");
        assert_eq!(m.id(), "smollm2-135m-instruct", "the answer names the model that wrote it");
    }
    // open: the server is not even tried; a second handle on the same entry shares the breaker
    let mut again = src.load(&ModelSpec::Named("down".into())).unwrap();
    let (g, _) = ask(again.as_mut());
    g.unwrap();
    let b = again.backend().unwrap();
    assert!(b.fallback.as_deref().unwrap().contains("circuit breaker open"), "{b:?}");
}

#[test]
fn junk_and_slow_servers_fall_back_and_a_cut_stream_is_an_error() {
    let dir = models_dir();
    let junk = FaultServer::start(Fault::Junk);
    let mut src = source(dir.path(), quick("junk", &junk.url), allow(&junk.url));
    let mut m = src.load(&ModelSpec::Named("junk".into())).unwrap();
    let (g, _) = ask(m.as_mut());
    g.unwrap();
    assert!(m.backend().unwrap().fallback.unwrap().contains("malformed"));

    let slow = FaultServer::start(Fault::Silent(Duration::from_secs(120)));
    let mut src = source(dir.path(), quick("slow", &slow.url), allow(&slow.url));
    let mut m = src.load(&ModelSpec::Named("slow".into())).unwrap();
    let t = Instant::now();
    let (g, _) = ask(m.as_mut());
    g.unwrap();
    assert!(m.backend().unwrap().fallback.unwrap().contains("sent nothing"));
    // bounded by the 1.5 s read timeout, not the server's 120 s (the rest is the local model on a busy machine)
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());

    let cut = FaultServer::start(Fault::DropAfter(2));
    let mut src = source(dir.path(), quick("cut", &cut.url), allow(&cut.url));
    let mut m = src.load(&ModelSpec::Named("cut".into())).unwrap();
    let (g, shown) = ask(m.as_mut());
    let e = g.err().expect("no second answer after shown text");
    assert!(matches!(e, AssistantError::Remote { ref id, .. } if id == "cut"), "{e}");
    assert_eq!(shown, "word0 word1 ");
}

#[test]
fn a_workspace_that_forbids_remote_backends_refuses_them() {
    let dir = models_dir();
    let url = format!("http://127.0.0.1:{}", free_port());
    let forbid = RemotePolicy { enabled: Some(false), ..allow(&url) };
    let mut src = source(dir.path(), quick("gpu", &url), forbid);
    let e = src.load(&ModelSpec::Named("gpu".into())).err().unwrap();
    assert!(matches!(&e, AssistantError::RemoteRefused { id, reason } if id == "gpu" && reason.contains("forbidden")), "{e}");
    // routing keeps the tier local: nothing leaves the machine
    let m = src.load(&ModelSpec::Role(tresor_models::Role::ChatSmall)).unwrap();
    assert_eq!(m.id(), "smollm2-135m-instruct");
    assert!(src.available().iter().all(|(id, _)| id != "gpu"));
    // a URL the admin did not list is refused the same way
    src.policy = allow("http://10.9.9.9:8080");
    let e = src.load(&ModelSpec::Named("gpu".into())).err().unwrap();
    assert!(matches!(&e, AssistantError::RemoteRefused { reason, .. } if reason.contains("allowed_urls")), "{e}");
}
