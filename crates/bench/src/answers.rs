//! `bench answers`: speed of the answer pipeline on gold-set questions
//! (a benchmark that reports; nothing here asserts timings). Time to first
//! token at the default settings and at fixed context budgets (the model's
//! prefill dominates TTFT, so context tokens are what packing must keep
//! small), the pipeline's own share (everything but model load, prefill
//! and decode), and the latency of a semantic-cache hit.
//!
//! With llama.cpp's `llama-bench` at hand, each answer at the default
//! budget is followed by `llama-bench -p N -n 0` on the same model, N the
//! answer's own prompt token count (alternating, one peer run per answer):
//! the time to the first token the user sees, next to llama.cpp's bare
//! prefill of a prompt that long (no retrieval, no first token, no
//! template: the floor an engine on llama.cpp would start from).
//!
//! Owns the timing runs and their table; never asserts a timing, and leaves
//! the assistant's configuration as it found it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use tresor_assistant::{AskRequest, Assistant, Result};

use crate::{median, Percentiles};

/// llama.cpp's prefill, measured next to Tresor's answers.
pub struct PeerPrefill<'a> {
    /// The `llama-bench` binary ([`crate::llm::find_llama_bench`]).
    pub llama_bench: PathBuf,
    pub threads: usize,
    /// The GGUF file of an answer's model id (None: that model is not a GGUF file the peer can run).
    pub model_path: &'a dyn Fn(&str) -> Option<PathBuf>,
}

/// Time to first visible token at the default budget against llama.cpp's
/// prefill of the same prompt lengths.
#[derive(Debug, Clone, Serialize)]
pub struct PeerPrefillReport {
    /// `llama-bench` (and its build, when it says).
    pub peer: String,
    /// Answers measured on both sides.
    pub answers: usize,
    pub prompt_tokens: Percentiles,
    /// Tresor's time to the first visible token (pipeline share included).
    pub ttft_ms: Percentiles,
    /// llama-bench `-p N -n 0`, N each answer's prompt tokens.
    pub peer_prefill_ms: Percentiles,
    /// Median over answers of TTFT / peer prefill (≤ 1: the user sees Tresor's first token before llama.cpp has read the prompt).
    pub ttft_over_peer_prefill: Option<f64>,
    /// What went wrong with the peer, if anything (the rows measured before stand).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetRow {
    pub budget_tokens: usize,
    pub ttft_ms: Percentiles,
    pub context_tokens_per_answer: f64,
    pub prompt_tokens_per_answer: f64,
}

/// One part of the pipeline share over the questions.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub stage: String,
    pub ms: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct AnswerBenchReport {
    pub questions: usize,
    pub default_budget_tokens: usize,
    pub ttft_ms: Percentiles,
    pub total_ms: Percentiles,
    pub pipeline_ms: Percentiles,
    pub retrieve_ms: Percentiles,
    pub validate_ms: Percentiles,
    /// The pipeline share's parts (policy, firewall, embedding, cache, search, packing, citation check, record).
    pub stages: Vec<StageRow>,
    pub context_tokens_per_answer: f64,
    pub cache_hit_ms: Percentiles,
    pub budgets: Vec<BudgetRow>,
    pub models: Vec<String>,
    /// Prompt tokens per answer at the default budget (what TTFT prefills).
    pub prompt_tokens_per_answer: f64,
    /// TTFT next to llama.cpp's prefill of the same prompt lengths (null without `llama-bench`).
    pub peer_prefill: Option<PeerPrefillReport>,
    /// The first question's pipeline share (one-off work: the policy's topic-example index, the
    /// injection detector, opening the knowledge base); it is asked once before the measured runs.
    pub warmup_pipeline_ms: f64,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}

/// Runs the questions against `kb`: once at the engine's settings (then
/// again, served from the cache), then once per context budget with a
/// one-token answer (TTFT only).
pub fn run(
    assistant: &mut Assistant,
    kb: &str,
    questions: &[String],
    budgets: &[usize],
    peer: Option<&PeerPrefill>,
    progress: &mut dyn FnMut(&str),
) -> Result<AnswerBenchReport> {
    assistant.clear_cache()?;
    let base = assistant.config().clone();
    let ask = |a: &mut Assistant, q: &str, no_cache: bool| {
        a.answer(&AskRequest { question: q.to_string(), kb: Some(kb.to_string()), no_cache, ..Default::default() }, &mut |_| {})
    };
    // a warm engine is what a server or the desktop app runs; the cold start is reported on its own
    let warmup_pipeline_ms = match questions.first() {
        Some(q) => ask(assistant, q, true)?.timings.pipeline_ms,
        None => 0.0,
    };
    progress(&format!("warm-up: pipeline share {warmup_pipeline_ms:.0} ms"));
    let (mut ttft, mut total, mut pipe, mut retr, mut val, mut ctx, mut hit) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut models = Vec::new();
    let mut prompt = Vec::new();
    // (tresor ttft, peer prefill, prompt tokens) per answer measured on both sides
    let mut paired: Vec<(f64, f64, f64)> = Vec::new();
    let (mut peer_name, mut peer_note) = (None::<String>, None::<String>);
    let stage_names = ["policy", "firewall", "embed", "cache", "search", "pack", "validate", "record"];
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); stage_names.len()];
    for (i, q) in questions.iter().enumerate() {
        let a = ask(assistant, q, false)?;
        let t = &a.timings;
        for (v, x) in stages.iter_mut().zip([t.policy_ms, t.firewall_ms, t.embed_ms, t.cache_ms, t.search_ms, t.pack_ms, t.validate_ms, t.record_ms]) {
            v.push(x);
        }
        if !a.refused && a.tokens.completion > 0 {
            let visible = a.timings.ttft_ms - a.timings.load_ms;
            ttft.push(visible);
            ctx.push(a.tokens.context as f64);
            prompt.push(a.tokens.prompt as f64);
            models.push(a.model.clone());
            if let (Some(p), true) = (peer, peer_note.is_none()) {
                match (p.model_path)(&a.model) {
                    None => peer_note = Some(format!("model `{}` is not a GGUF file llama-bench can run", a.model)),
                    Some(path) => match llama_bench_prefill_ms(&p.llama_bench, &path, p.threads, a.tokens.prompt) {
                        Ok((ms, name)) => {
                            progress(&format!("  llama-bench -p {}: prefill {ms:.0} ms", a.tokens.prompt));
                            paired.push((visible, ms, a.tokens.prompt as f64));
                            peer_name = Some(name);
                        }
                        Err(e) => peer_note = Some(format!("llama-bench failed: {e}")),
                    },
                }
            }
        }
        total.push(a.timings.total_ms - a.timings.load_ms);
        pipe.push(a.timings.pipeline_ms);
        retr.push(a.timings.retrieve_ms);
        val.push(a.timings.validate_ms);
        let again = ask(assistant, q, false)?;
        if again.cache_hit {
            hit.push(again.timings.total_ms);
        }
        progress(&format!("default {}/{}: ttft {:.0} ms, cache hit {:.1} ms", i + 1, questions.len(), a.timings.ttft_ms, again.timings.total_ms));
    }
    let mut rows = Vec::new();
    for &b in budgets {
        let cfg = assistant.config_mut();
        cfg.context_tokens = b;
        cfg.max_passages = 12;
        cfg.passage_relative_evidence = 0.0;
        cfg.max_answer_tokens = 1;
        cfg.retrieve_k = 12;
        let (mut t, mut c, mut p) = (vec![], vec![], vec![]);
        for q in questions {
            let a = ask(assistant, q, true)?;
            if a.tokens.prompt > 0 {
                t.push(a.timings.ttft_ms - a.timings.load_ms);
                c.push(a.tokens.context as f64);
                p.push(a.tokens.prompt as f64);
            }
        }
        progress(&format!("budget {b}: ttft p50 {:.0} ms over {} answers", Percentiles::of(t.clone()).p50, t.len()));
        rows.push(BudgetRow { budget_tokens: b, ttft_ms: Percentiles::of(t), context_tokens_per_answer: mean(&c), prompt_tokens_per_answer: mean(&p) });
    }
    *assistant.config_mut() = base.clone();
    models.sort();
    models.dedup();
    let peer_prefill = peer.map(|p| PeerPrefillReport {
        peer: peer_name.unwrap_or_else(|| p.llama_bench.display().to_string()),
        answers: paired.len(),
        prompt_tokens: Percentiles::of(paired.iter().map(|x| x.2).collect()),
        ttft_ms: Percentiles::of(paired.iter().map(|x| x.0).collect()),
        peer_prefill_ms: Percentiles::of(paired.iter().map(|x| x.1).collect()),
        ttft_over_peer_prefill: median(&paired.iter().filter(|x| x.1 > 0.0).map(|x| x.0 / x.1).collect::<Vec<_>>()),
        note: peer_note,
    });
    Ok(AnswerBenchReport {
        questions: questions.len(),
        default_budget_tokens: base.context_tokens,
        ttft_ms: Percentiles::of(ttft),
        total_ms: Percentiles::of(total),
        pipeline_ms: Percentiles::of(pipe),
        retrieve_ms: Percentiles::of(retr),
        validate_ms: Percentiles::of(val),
        stages: stage_names.iter().zip(stages).map(|(n, v)| StageRow { stage: n.to_string(), ms: Percentiles::of(v) }).collect(),
        context_tokens_per_answer: mean(&ctx),
        cache_hit_ms: Percentiles::of(hit),
        budgets: rows,
        models,
        prompt_tokens_per_answer: mean(&prompt),
        peer_prefill,
        warmup_pipeline_ms,
    })
}

/// `llama-bench -m MODEL -t THREADS -p N -n 0 -r 1 -o json`: the time to
/// prefill N tokens (ms), and the peer's name with its build.
pub fn llama_bench_prefill_ms(exe: &Path, model: &Path, threads: usize, n: usize) -> std::result::Result<(f64, String), String> {
    let mut cmd = Command::new(exe);
    cmd.arg("-m").arg(model).args(["-t", &threads.to_string(), "-p", &n.max(1).to_string(), "-n", "0", "-r", "1", "-o", "json"]);
    let out = crate::process::run("llama-bench", &mut cmd).map_err(|e| e.to_string())?;
    parse_prefill(&out.stdout, n.max(1))
}

/// The `n_prompt = n` row of llama-bench's JSON: `n / avg_ts` seconds.
fn parse_prefill(stdout: &str, n: usize) -> std::result::Result<(f64, String), String> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(stdout.trim()).map_err(|e| format!("its JSON: {e}"))?;
    let row = rows
        .iter()
        .find(|r| r["n_prompt"].as_u64() == Some(n as u64) && r["n_gen"].as_u64() == Some(0))
        .ok_or_else(|| format!("no n_prompt = {n} row in its JSON"))?;
    let tps = row["avg_ts"].as_f64().filter(|t| *t > 0.0).ok_or("no avg_ts in its row")?;
    let name = match row["build_commit"].as_str() {
        Some(c) => format!("llama.cpp llama-bench {c}"),
        None => "llama.cpp llama-bench".into(),
    };
    Ok((n as f64 / tps * 1000.0, name))
}

pub fn table(r: &AnswerBenchReport) -> String {
    let mut s = format!(
        "{} questions; default context budget {} tokens; models {}\n\n| measure | p50 | p95 |\n|---|---|---|\n",
        r.questions,
        r.default_budget_tokens,
        r.models.join(", ")
    );
    for (name, p) in [
        ("TTFT, first visible token (ms)", &r.ttft_ms),
        ("total (ms)", &r.total_ms),
        ("pipeline share (ms)", &r.pipeline_ms),
        ("  of which retrieval (ms)", &r.retrieve_ms),
        ("  of which citation check (ms)", &r.validate_ms),
        ("semantic-cache hit (ms)", &r.cache_hit_ms),
    ] {
        s.push_str(&format!("| {name} | {:.1} | {:.1} |\n", p.p50, p.p95));
    }
    s.push_str(&format!("\nprompt tokens per answer at the default budget: {:.0}\n", r.prompt_tokens_per_answer));
    if let Some(p) = &r.peer_prefill {
        s.push_str(&format!(
            "\nTTFT against {}'s prefill of the same prompt lengths ({} answers, alternating; the peer runs `-p N -n 0`, N each answer's prompt tokens):\n\n| measure | p50 | p95 |\n|---|---|---|\n| prompt tokens | {:.0} | {:.0} |\n| Tresor TTFT, first visible token (ms) | {:.1} | {:.1} |\n| llama.cpp prefill (ms) | {:.1} | {:.1} |\n",
            p.peer, p.answers, p.prompt_tokens.p50, p.prompt_tokens.p95, p.ttft_ms.p50, p.ttft_ms.p95, p.peer_prefill_ms.p50, p.peer_prefill_ms.p95
        ));
        if let Some(x) = p.ttft_over_peer_prefill {
            s.push_str(&format!("\nTTFT / llama.cpp prefill, median over answers: {x:.2}×\n"));
        }
        if let Some(n) = &p.note {
            s.push_str(&format!("\nnote: {n}\n"));
        }
    }
    s.push_str(&format!("\nfirst question (cold: policy index, detector, knowledge base opened), pipeline share: {:.0} ms\n", r.warmup_pipeline_ms));
    s.push_str("\n| pipeline stage | p50 (ms) | p95 (ms) |\n|---|---|---|\n");
    for st in &r.stages {
        s.push_str(&format!("| {} | {:.1} | {:.1} |\n", st.stage, st.ms.p50, st.ms.p95));
    }
    s.push_str(&format!("\ncontext tokens per answer: {:.0}\n\n| context budget | context tokens | prompt tokens | TTFT p50 (ms) | TTFT p95 (ms) |\n|---|---|---|---|---|\n", r.context_tokens_per_answer));
    for b in &r.budgets {
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            b.budget_tokens, b.context_tokens_per_answer, b.prompt_tokens_per_answer, b.ttft_ms.p50, b.ttft_ms.p95
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(p50: f64, p95: f64) -> Percentiles {
        Percentiles { p50, p95 }
    }

    /// llama-bench's JSON (the fields this reads, as its `-o json` writes them).
    const LLAMA_BENCH_JSON: &str = r#"[
      {"build_commit": "abc1234", "n_prompt": 640, "n_gen": 0, "avg_ts": 1280.0, "model_filename": "m.gguf"}
    ]"#;

    #[test]
    fn prefill_time_from_llama_bench_json() {
        let (ms, name) = parse_prefill(LLAMA_BENCH_JSON, 640).unwrap();
        assert!((ms - 500.0).abs() < 1e-9, "{ms}");
        assert_eq!(name, "llama.cpp llama-bench abc1234");
        assert!(parse_prefill(LLAMA_BENCH_JSON, 512).unwrap_err().contains("n_prompt = 512"));
        assert!(parse_prefill("not json", 640).is_err());
    }

    #[test]
    fn table_shows_ttft_next_to_the_peer_prefill() {
        let mut r = AnswerBenchReport {
            questions: 2,
            default_budget_tokens: 1000,
            ttft_ms: p(400.0, 450.0),
            total_ms: p(900.0, 1000.0),
            pipeline_ms: p(30.0, 40.0),
            retrieve_ms: p(10.0, 12.0),
            validate_ms: p(1.0, 2.0),
            stages: vec![],
            context_tokens_per_answer: 600.0,
            cache_hit_ms: p(2.0, 3.0),
            budgets: vec![],
            models: vec!["gemma-3-270m".into()],
            prompt_tokens_per_answer: 700.0,
            peer_prefill: Some(PeerPrefillReport {
                peer: "llama.cpp llama-bench abc1234".into(),
                answers: 2,
                prompt_tokens: p(700.0, 720.0),
                ttft_ms: p(400.0, 450.0),
                peer_prefill_ms: p(500.0, 520.0),
                ttft_over_peer_prefill: Some(0.8),
                note: None,
            }),
            warmup_pipeline_ms: 100.0,
        };
        let t = table(&r);
        assert!(t.contains("| Tresor TTFT, first visible token (ms) | 400.0 | 450.0 |"), "{t}");
        assert!(t.contains("| llama.cpp prefill (ms) | 500.0 | 520.0 |"), "{t}");
        assert!(t.contains("median over answers: 0.80×"), "{t}");
        assert!(t.contains("prompt tokens per answer at the default budget: 700"), "{t}");
        r.peer_prefill = None;
        assert!(!table(&r).contains("llama.cpp prefill"));
    }
}
