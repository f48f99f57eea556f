//! `bench answers`: speed of the answer pipeline on gold-set questions
//! (a benchmark that reports; nothing here asserts timings). Time to first
//! token at the default settings and at fixed context budgets (the model's
//! prefill dominates TTFT, so context tokens are what packing must keep
//! small), the pipeline's own share (everything but model load, prefill
//! and decode), and the latency of a semantic-cache hit.
//!
//! Owns the timing runs and their table; never asserts a timing, and leaves
//! the assistant's configuration as it found it.

use serde::Serialize;
use tresor_assistant::{AskRequest, Assistant, Result};

use crate::Percentiles;

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
    let stage_names = ["policy", "firewall", "embed", "cache", "search", "pack", "validate", "record"];
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); stage_names.len()];
    for (i, q) in questions.iter().enumerate() {
        let a = ask(assistant, q, false)?;
        let t = &a.timings;
        for (v, x) in stages.iter_mut().zip([t.policy_ms, t.firewall_ms, t.embed_ms, t.cache_ms, t.search_ms, t.pack_ms, t.validate_ms, t.record_ms]) {
            v.push(x);
        }
        if !a.refused && a.tokens.completion > 0 {
            ttft.push(a.timings.ttft_ms - a.timings.load_ms);
            ctx.push(a.tokens.context as f64);
            models.push(a.model.clone());
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
        warmup_pipeline_ms,
    })
}

pub fn table(r: &AnswerBenchReport) -> String {
    let mut s = format!(
        "{} questions; default context budget {} tokens; models {}\n\n| measure | p50 | p95 |\n|---|---|---|\n",
        r.questions,
        r.default_budget_tokens,
        r.models.join(", ")
    );
    for (name, p) in [
        ("TTFT (ms)", &r.ttft_ms),
        ("total (ms)", &r.total_ms),
        ("pipeline share (ms)", &r.pipeline_ms),
        ("  of which retrieval (ms)", &r.retrieve_ms),
        ("  of which citation check (ms)", &r.validate_ms),
        ("semantic-cache hit (ms)", &r.cache_hit_ms),
    ] {
        s.push_str(&format!("| {name} | {:.1} | {:.1} |\n", p.p50, p.p95));
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
