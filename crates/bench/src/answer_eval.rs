//! Answer evaluation on a gold set (the format of
//! shared/eval/rag_goldset_dev): token F1 of the answer against the
//! reference, citation precision (a cited passage comes from the gold
//! source file), refusal rate on unanswerable questions (the gold set's own,
//! plus — optionally — its answerable questions asked against an unrelated
//! knowledge base), TTFT and total latency p50/p95, tokens per answer.
//!
//! Owns the answer metrics and their table; never touches a user's knowledge
//! bases (the caller ingests the gold documents into a scratch data dir with
//! [`tresor_assistant::scratch`]) and never asserts a score.

use std::path::Path;

use serde::Serialize;
use tresor_assistant::text::token_f1;
use tresor_assistant::{Answer, AskRequest, Assistant, Result};

use crate::retrieval_eval::GoldItem;
use crate::Percentiles;

#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub id: String,
    pub question: String,
    /// "answerable", "unanswerable" or "unrelated_kb".
    pub kind: String,
    pub answer: String,
    pub reference: String,
    pub f1: f32,
    pub refused: bool,
    pub grounded: bool,
    pub extractive: bool,
    /// The model answered a second time with the stricter prompt (its first answer had no supported sentence).
    pub regenerated: bool,
    pub cited: Vec<String>,
    pub citation_precision: Option<f32>,
    pub evidence: Option<f32>,
    pub model: String,
    pub ttft_ms: f64,
    pub total_ms: f64,
    pub pipeline_ms: f64,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub context_tokens: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct AnswerEvalReport {
    pub answerable: usize,
    pub unanswerable: usize,
    pub unrelated: usize,
    /// Mean token F1 over answerable questions (a refusal scores 0).
    pub token_f1: f32,
    /// Share of answerable questions whose answer contains the reference (normalised).
    pub contains_reference: f32,
    /// Share of cited sources that are the gold source file (answered questions with citations).
    pub citation_precision: f32,
    /// Refused / asked, for the gold set's unanswerable questions.
    pub refusal_rate_unanswerable: f32,
    /// Refused / asked, for answerable questions against the unrelated knowledge base.
    pub refusal_rate_unrelated: Option<f32>,
    /// Refused / asked, for answerable questions (lower is better).
    pub false_refusal_rate: f32,
    pub extractive_rate: f32,
    /// Answerable questions that needed the second, stricter try; of those, how many it answered (not extractive).
    pub regenerated_rate: f32,
    pub regenerated_answered_rate: f32,
    pub ttft_ms: Percentiles,
    pub total_ms: Percentiles,
    pub pipeline_ms: Percentiles,
    pub completion_tokens_per_answer: f64,
    pub prompt_tokens_per_answer: f64,
    pub context_tokens_per_answer: f64,
    pub models: Vec<String>,
    pub items: Vec<ItemResult>,
}

fn norm(s: &str) -> String {
    tresor_kb::analyze::words(&s.to_lowercase()).collect::<Vec<_>>().join(" ")
}

/// Asks every gold question against `kb` (and the answerable ones against
/// `unrelated_kb` when given); `progress` hears about each answer.
pub fn evaluate(
    assistant: &mut Assistant,
    kb: &str,
    gold: &[GoldItem],
    unrelated_kb: Option<&str>,
    progress: &mut dyn FnMut(&ItemResult),
) -> Result<AnswerEvalReport> {
    let mut items = Vec::new();
    let mut run = |assistant: &mut Assistant, g: &GoldItem, kb: &str, kind: &str| -> Result<ItemResult> {
        let req = AskRequest { question: g.question.clone(), kb: Some(kb.to_string()), no_cache: true, ..Default::default() };
        let a: Answer = assistant.answer(&req, &mut |_| {})?;
        let refs: Vec<String> = if g.answers.is_empty() { g.answer.clone().into_iter().collect() } else { g.answers.clone() };
        let f1 = if a.refused { 0.0 } else { refs.iter().map(|r| token_f1(&a.answer, r)).fold(0.0, f32::max) };
        let gold_file = g.source_file.as_deref().and_then(|f| Path::new(f).file_name()).map(|f| f.to_string_lossy().into_owned());
        let cited: Vec<String> = a.sources.iter().map(|s| s.source.clone()).collect();
        let citation_precision = match (&gold_file, cited.is_empty(), kind) {
            (Some(f), false, "answerable") => {
                Some(cited.iter().filter(|c| Path::new(c.as_str()).file_name().is_some_and(|n| n.to_string_lossy() == *f)).count() as f32 / cited.len() as f32)
            }
            _ => None,
        };
        let r = ItemResult {
            id: g.id.clone(),
            question: g.question.clone(),
            kind: kind.into(),
            reference: refs.first().cloned().unwrap_or_default(),
            f1,
            refused: a.refused,
            grounded: a.grounded,
            extractive: a.trace.extractive,
            regenerated: a.trace.regeneration.is_some(),
            cited,
            citation_precision,
            evidence: a.trace.evidence,
            model: a.model.clone(),
            ttft_ms: a.timings.ttft_ms,
            total_ms: a.timings.total_ms,
            pipeline_ms: a.timings.pipeline_ms,
            prompt_tokens: a.tokens.prompt,
            completion_tokens: a.tokens.completion,
            context_tokens: a.tokens.context,
            answer: a.answer,
        };
        progress(&r);
        Ok(r)
    };
    for g in gold {
        let kind = if g.answerable { "answerable" } else { "unanswerable" };
        items.push(run(assistant, g, kb, kind)?);
    }
    if let Some(u) = unrelated_kb {
        for g in gold.iter().filter(|g| g.answerable) {
            items.push(run(assistant, g, u, "unrelated_kb")?);
        }
    }
    Ok(summarise(items, gold))
}

fn summarise(items: Vec<ItemResult>, gold: &[GoldItem]) -> AnswerEvalReport {
    let of = |k: &str| items.iter().filter(|i| i.kind == k).collect::<Vec<_>>();
    let ans = of("answerable");
    let una = of("unanswerable");
    let unr = of("unrelated_kb");
    let rate = |v: &[&ItemResult], f: &dyn Fn(&ItemResult) -> bool| {
        if v.is_empty() { 0.0 } else { v.iter().filter(|i| f(i)).count() as f32 / v.len() as f32 }
    };
    let mean = |v: &[&ItemResult], f: &dyn Fn(&ItemResult) -> f64| {
        if v.is_empty() { 0.0 } else { v.iter().map(|i| f(i)).sum::<f64>() / v.len() as f64 }
    };
    let precisions: Vec<f32> = ans.iter().filter_map(|i| i.citation_precision).collect();
    let generated: Vec<&ItemResult> = items.iter().filter(|i| !i.refused).collect();
    let refs: std::collections::HashMap<&str, &GoldItem> = gold.iter().map(|g| (g.id.as_str(), g)).collect();
    let contains = |i: &ItemResult| {
        !i.refused
            && refs.get(i.id.as_str()).is_some_and(|g| {
                let a = norm(&i.answer);
                g.answers.iter().chain(g.answer.iter()).any(|r| !norm(r).is_empty() && a.contains(&norm(r)))
            })
    };
    let mut models: Vec<String> = generated.iter().map(|i| i.model.clone()).collect();
    models.sort();
    models.dedup();
    AnswerEvalReport {
        answerable: ans.len(),
        unanswerable: una.len(),
        unrelated: unr.len(),
        token_f1: if ans.is_empty() { 0.0 } else { ans.iter().map(|i| i.f1).sum::<f32>() / ans.len() as f32 },
        contains_reference: rate(&ans, &contains),
        citation_precision: if precisions.is_empty() { 0.0 } else { precisions.iter().sum::<f32>() / precisions.len() as f32 },
        refusal_rate_unanswerable: rate(&una, &|i| i.refused),
        refusal_rate_unrelated: (!unr.is_empty()).then(|| rate(&unr, &|i| i.refused)),
        false_refusal_rate: rate(&ans, &|i| i.refused),
        extractive_rate: rate(&ans, &|i| i.extractive),
        regenerated_rate: rate(&ans, &|i| i.regenerated),
        regenerated_answered_rate: {
            let re: Vec<&ItemResult> = ans.iter().copied().filter(|i| i.regenerated).collect();
            rate(&re, &|i| !i.extractive && !i.refused)
        },
        ttft_ms: Percentiles::of(generated.iter().filter(|i| i.completion_tokens > 0).map(|i| i.ttft_ms).collect()),
        total_ms: Percentiles::of(items.iter().map(|i| i.total_ms).collect()),
        pipeline_ms: Percentiles::of(items.iter().map(|i| i.pipeline_ms).collect()),
        completion_tokens_per_answer: mean(&generated, &|i| i.completion_tokens as f64),
        prompt_tokens_per_answer: mean(&generated, &|i| i.prompt_tokens as f64),
        context_tokens_per_answer: mean(&generated, &|i| i.context_tokens as f64),
        models,
        items,
    }
}

/// The report as a Markdown table.
pub fn table(r: &AnswerEvalReport) -> String {
    let mut s = String::from("| metric | value |\n|---|---|\n");
    let mut row = |k: &str, v: String| s.push_str(&format!("| {k} | {v} |\n"));
    row("answerable questions", r.answerable.to_string());
    row("token F1 (answerable)", format!("{:.3}", r.token_f1));
    row("answer contains the reference", format!("{:.3}", r.contains_reference));
    row("citation precision", format!("{:.3}", r.citation_precision));
    row("false refusals (answerable)", format!("{:.3}", r.false_refusal_rate));
    row("extractive fallback (answerable)", format!("{:.3}", r.extractive_rate));
    row("second try (answerable) / of those answered by it", format!("{:.3} / {:.3}", r.regenerated_rate, r.regenerated_answered_rate));
    row(&format!("refusal rate, unanswerable ({})", r.unanswerable), format!("{:.3}", r.refusal_rate_unanswerable));
    if let Some(u) = r.refusal_rate_unrelated {
        row(&format!("refusal rate, unrelated KB ({})", r.unrelated), format!("{u:.3}"));
    }
    row("TTFT p50 / p95 (ms)", format!("{:.0} / {:.0}", r.ttft_ms.p50, r.ttft_ms.p95));
    row("total p50 / p95 (ms)", format!("{:.0} / {:.0}", r.total_ms.p50, r.total_ms.p95));
    row("pipeline share p50 / p95 (ms)", format!("{:.0} / {:.0}", r.pipeline_ms.p50, r.pipeline_ms.p95));
    row("completion tokens / answer", format!("{:.1}", r.completion_tokens_per_answer));
    row("prompt tokens / answer", format!("{:.1}", r.prompt_tokens_per_answer));
    row("context tokens / answer", format!("{:.1}", r.context_tokens_per_answer));
    row("models", r.models.join(", "));
    s
}
