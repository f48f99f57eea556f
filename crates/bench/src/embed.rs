//! `tresor bench embed`: sentences/s of Tresor's MiniLM embedder against
//! sentence-transformers, same model, same passages, same threads,
//! alternating.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tresor_llm::embed::Embedder;
use tresor_llm::Device;

use crate::process;
use crate::{median, ratio, BenchError, Result};

#[derive(Debug, Clone)]
pub struct EmbedBenchOptions {
    pub tresor_exe: PathBuf,
    pub model_id: String,
    pub model_dir: PathBuf,
    pub threads: usize,
    pub passages: usize,
    pub rounds: usize,
    /// (python of the sentence-transformers venv, scripts/peer/st_bench.py)
    pub peer: Option<(PathBuf, PathBuf)>,
    /// Where to write the passages file.
    pub work_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbedWorkerResult {
    /// Tresor's embedder backend: f32, int8 or candle.
    #[serde(default)]
    pub backend: String,
    pub load_ms: f64,
    pub sps: f64,
    pub peak_rss_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EmbedBenchReport {
    pub model: String,
    /// Tresor's embedder backend (f32, int8, candle; TRESOR_EMBED_PRECISION / TRESOR_EMBED_IMPL).
    pub backend: Option<String>,
    pub threads: usize,
    pub passages: usize,
    pub rounds: usize,
    pub tresor_sps: Option<f64>,
    pub tresor_load_ms: Option<f64>,
    pub tresor_rss_mb: Option<f64>,
    pub peer: Option<String>,
    pub peer_sps: Option<f64>,
    pub peer_rss_mb: Option<f64>,
    pub ratio: Option<f64>,
    pub tresor_runs: Vec<f64>,
    pub peer_runs: Vec<f64>,
    pub note: Option<String>,
}

/// The sentence-transformers venv of scripts/peer/setup-st-venv.sh and the
/// bench script beside this source tree.
pub fn find_sentence_transformers() -> Option<(PathBuf, PathBuf)> {
    let cache = crate::cache_dir()?;
    let python = cache.join("venv-st/bin/python");
    let script = std::env::var_os("TRESOR_ST_BENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peer/st_bench.py"));
    // A binary reused from another checkout (shared target dir) names that
    // checkout's script: fall back to the one under the current directory.
    let script = if script.is_file() { script } else { PathBuf::from("scripts/peer/st_bench.py") };
    (python.is_file() && script.is_file()).then_some((python, script))
}

/// Deterministic English-like passages of about 200 word-piece tokens.
pub fn synthetic_passages(n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "the", "employee", "handbook", "describes", "vacation", "policy", "and", "travel", "expenses", "for", "all", "staff",
        "members", "who", "work", "remotely", "or", "in", "the", "office", "security", "updates", "must", "be", "installed",
        "within", "seven", "days", "customers", "can", "request", "a", "refund", "if", "the", "product", "fails", "during",
        "warranty", "period", "managers", "approve", "requests", "before", "booking", "flights", "hotels", "trains", "receipts",
        "are", "submitted", "monthly", "through", "internal", "system", "passwords", "never", "shared", "with", "anyone",
    ];
    let mut rng = tresor_llm::synthetic::XorShift::new(0x9E3779B97F4A7C15);
    (0..n)
        .map(|_| {
            let mut words = Vec::with_capacity(170);
            for i in 0..170 {
                words.push(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize]);
                if i % 17 == 16 {
                    words.push(".");
                }
            }
            words.join(" ")
        })
        .collect()
}

pub fn run(opts: &EmbedBenchOptions) -> Result<EmbedBenchReport> {
    let passages_file = opts.work_dir.join("bench-passages.txt");
    std::fs::write(&passages_file, synthetic_passages(opts.passages).join("\n"))
        .map_err(|e| BenchError::Output { what: "passages file".into(), reason: e.to_string() })?;
    let mut r = EmbedBenchReport {
        model: opts.model_id.clone(),
        backend: None,
        threads: opts.threads,
        passages: opts.passages,
        rounds: opts.rounds,
        tresor_sps: None,
        tresor_load_ms: None,
        tresor_rss_mb: None,
        peer: None,
        peer_sps: None,
        peer_rss_mb: None,
        ratio: None,
        tresor_runs: vec![],
        peer_runs: vec![],
        note: opts
            .peer
            .is_none()
            .then(|| "sentence-transformers not found: run scripts/peer/setup-st-venv.sh; reporting Tresor only".into()),
    };
    let (mut loads, mut rss, mut peer_rss) = (Vec::new(), Vec::new(), Vec::new());
    let mut peer_ok = opts.peer.is_some();
    for _ in 0..opts.rounds.max(1) {
        let mut cmd = Command::new(&opts.tresor_exe);
        cmd.args(["--threads", &opts.threads.to_string(), "bench", "embed-worker"]).arg(&opts.model_dir).arg(&passages_file);
        let out = process::run("tresor embed worker", &mut cmd)?;
        let w: EmbedWorkerResult = serde_json::from_str(out.stdout.trim())
            .map_err(|e| BenchError::Output { what: "tresor embed worker".into(), reason: e.to_string() })?;
        r.tresor_runs.push(w.sps);
        r.backend = Some(w.backend.clone());
        loads.push(w.load_ms);
        rss.extend(out.peak_rss_mb.or(w.peak_rss_mb));
        if let (Some((python, script)), true) = (&opts.peer, peer_ok) {
            let mut cmd = Command::new(python);
            cmd.arg(script).arg("--passages").arg(&passages_file).args(["--threads", &opts.threads.to_string(), "--repeats", "1"]);
            match process::run("sentence-transformers", &mut cmd).and_then(|o| parse_peer(&o.stdout).map(|p| (p, o.peak_rss_mb))) {
                Ok(((sps, name), mem)) => {
                    r.peer_runs.push(sps);
                    peer_rss.extend(mem);
                    r.peer = Some(name);
                }
                Err(e) => {
                    r.note = Some(format!("peer failed, reporting Tresor only: {e}"));
                    peer_ok = false;
                }
            }
        }
    }
    r.tresor_sps = median(&r.tresor_runs);
    r.tresor_load_ms = median(&loads);
    r.tresor_rss_mb = rss.into_iter().reduce(f64::max);
    r.peer_sps = median(&r.peer_runs);
    r.peer_rss_mb = peer_rss.into_iter().reduce(f64::max);
    r.ratio = ratio(r.tresor_sps, r.peer_sps);
    Ok(r)
}

fn parse_peer(stdout: &str) -> Result<(f64, String)> {
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| BenchError::Output { what: "sentence-transformers".into(), reason: format!("{e}: {stdout}") })?;
    let sps = v["sps"].as_f64().ok_or_else(|| BenchError::Output { what: "sentence-transformers".into(), reason: "no sps".into() })?;
    Ok((sps, v["peer"].as_str().unwrap_or("sentence-transformers").to_string()))
}

/// Inside `tresor bench embed-worker`: load, warm up, embed every passage once.
pub fn worker(model_dir: &Path, device: &Device, passages_file: &Path) -> Result<EmbedWorkerResult> {
    let text = std::fs::read_to_string(passages_file)
        .map_err(|e| BenchError::Output { what: "passages file".into(), reason: e.to_string() })?;
    let passages: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let t = Instant::now();
    let e = Embedder::load(model_dir, device)?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    e.embed(&passages[..passages.len().min(8)])?;
    let t = Instant::now();
    e.embed(&passages)?;
    let sps = passages.len() as f64 / t.elapsed().as_secs_f64();
    Ok(EmbedWorkerResult { backend: e.backend().name().to_string(), load_ms, sps, peak_rss_mb: crate::self_peak_rss_mb() })
}

pub fn table(reports: &[EmbedBenchReport]) -> String {
    let f = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
    let mut s = String::from("| model | backend | threads | passages | tresor sent/s | peer sent/s | ratio | tresor RSS MB | peer RSS MB |\n|---|---|---|---|---|---|---|---|---|\n");
    for x in reports {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            x.model,
            x.backend.as_deref().unwrap_or("–"),
            x.threads,
            x.passages,
            f(x.tresor_sps),
            f(x.peer_sps),
            x.ratio.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "–".into()),
            f(x.tresor_rss_mb),
            f(x.peer_rss_mb)
        ));
    }
    s
}
