//! Answer evaluation on a gold set (the format of
//! shared/eval/rag_goldset_dev): token F1 of the answer against the
//! reference, citation precision per file (a cited passage comes from the
//! gold source file) and per passage (the cited passage itself holds the
//! reference), refusal rate on unanswerable questions (the gold set's own,
//! plus — optionally — its answerable questions asked against an unrelated
//! knowledge base), extractive share, time to the first visible token and to
//! the model's first token, total latency p50/p95, tokens per answer — over
//! all questions and per language (the question's). Each answerable question
//! whose answer misses the reference gets its cause ([`Miss`]): the packed
//! passages lack it (retrieval), the chosen evidence sentences lack it (the
//! choice), or the evidence held it and the answer lost it (generation).
//! A gold set splits by
//! document into a fit half and a held-out half ([`split`]): the answer
//! choice's weights are fitted on the one (`answer_choice`), figures are
//! reported on the other.
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

/// Which half of a gold set, split by document (see [`split`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// The documents the answer choice's weights were fitted on.
    Fit,
    /// The other documents: what the figures are reported on.
    HeldOut,
    /// Every question.
    All,
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Split, String> {
        match s {
            "fit" => Ok(Split::Fit),
            "held-out" | "heldout" => Ok(Split::HeldOut),
            "all" => Ok(Split::All),
            o => Err(format!("`{o}`: expected fit, held-out or all")),
        }
    }
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Fit => "fit",
            Split::HeldOut => "held-out",
            Split::All => "all",
        }
    }
}

/// The half of the gold set a question belongs to: its source documents sorted by name, every
/// second one (from the first) fits, the others are held out; a question without a source
/// (unanswerable) goes by its position among those.
pub fn half_of(gold: &[GoldItem], i: usize) -> Split {
    let mut docs: Vec<&str> = gold.iter().filter_map(|g| g.source_file.as_deref()).collect();
    docs.sort();
    docs.dedup();
    let pos = match gold[i].source_file.as_deref() {
        Some(f) => docs.iter().position(|d| *d == f).unwrap_or(0),
        None => gold[..i].iter().filter(|g| g.source_file.is_none()).count(),
    };
    if pos % 2 == 0 { Split::Fit } else { Split::HeldOut }
}

/// The questions of `which` half (all of them for [`Split::All`]).
pub fn split(gold: &[GoldItem], which: Split) -> Vec<GoldItem> {
    (0..gold.len()).filter(|&i| which == Split::All || half_of(gold, i) == which).map(|i| gold[i].clone()).collect()
}

/// The question's language (en / de), as the engine tells it.
pub fn lang_of(question: &str) -> String {
    tresor_assistant::text::language(question).as_str().to_string()
}

/// Why an answerable question's answer lacks the reference: the first stage that lost it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Miss {
    /// Refused ("not in your documents").
    Refused,
    /// No packed passage holds the reference.
    Retrieval,
    /// A packed passage holds it, the chosen evidence sentences do not.
    Choice,
    /// The chosen evidence holds it, the answer does not (the model's sentence lost it).
    Generation,
}

impl Miss {
    pub fn as_str(self) -> &'static str {
        match self {
            Miss::Refused => "refused",
            Miss::Retrieval => "retrieval",
            Miss::Choice => "choice",
            Miss::Generation => "generation",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    pub id: String,
    pub question: String,
    /// The question's language (en / de).
    pub lang: String,
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
    /// Share of the cited passages whose own text holds the reference (answerable, with citations).
    pub citation_precision_passage: Option<f32>,
    pub evidence: Option<f32>,
    /// The evidence sentences the engine chose (shown to the model; the extractive answer).
    pub chosen: Vec<String>,
    /// The three best candidate sentences with their features (`choice::Candidate`), to see why.
    pub candidates: Vec<tresor_assistant::choice::Candidate>,
    /// The kind of fact the question asks for, as the engine read it.
    pub answer_type: Option<tresor_assistant::choice::AnswerType>,
    /// Answerable and the answer lacks the reference: where it was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miss: Option<Miss>,
    pub model: String,
    /// To the first token the user saw (validated sentence, extractive fallback or refusal).
    pub ttft_ms: f64,
    /// To the chat model's first generated token (0: no model ran).
    pub model_first_token_ms: f64,
    pub total_ms: f64,
    pub pipeline_ms: f64,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub context_tokens: usize,
}

/// The answer measures of one language's questions.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LangReport {
    pub answerable: usize,
    pub unanswerable: usize,
    pub contains_reference: f32,
    pub token_f1: f32,
    pub citation_precision: f32,
    pub citation_precision_passage: f32,
    pub extractive_rate: f32,
    pub refusal_rate_unanswerable: f32,
    pub false_refusal_rate: f32,
    /// Answerable answered and unanswerable refused, over both.
    pub refusal_correct: f32,
    /// To the first visible token (what the user waits for).
    pub ttft_ms: Percentiles,
    /// To the model's first generated token (answers where a model ran).
    pub model_first_token_ms: Percentiles,
    /// Answerable questions whose answer lacks the reference, by where it was lost ([`Miss`]).
    pub misses: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct AnswerEvalReport {
    /// Which half of the gold set these figures are on: fit, held-out or all (see [`split`]).
    pub split: String,
    pub answerable: usize,
    pub unanswerable: usize,
    pub unrelated: usize,
    /// Mean token F1 over answerable questions (a refusal scores 0).
    pub token_f1: f32,
    /// Share of answerable questions whose answer contains the reference (normalised).
    pub contains_reference: f32,
    /// Share of cited sources that are the gold source file (answered questions with citations).
    pub citation_precision: f32,
    /// Share of cited passages whose own text holds the reference.
    pub citation_precision_passage: f32,
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
    /// To the first visible token.
    pub ttft_ms: Percentiles,
    /// To the model's first generated token.
    pub model_first_token_ms: Percentiles,
    pub total_ms: Percentiles,
    pub pipeline_ms: Percentiles,
    pub completion_tokens_per_answer: f64,
    pub prompt_tokens_per_answer: f64,
    pub context_tokens_per_answer: f64,
    pub models: Vec<String>,
    /// The same measures per language of the question (en, de).
    pub by_lang: std::collections::BTreeMap<String, LangReport>,
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
        let citation_precision_passage = if kind == "answerable" && !a.sources.is_empty() && !refs.is_empty() {
            let ids: Vec<i64> = a.sources.iter().map(|s| s.chunk_id).collect();
            let (kbh, _) = assistant.kb(kb)?;
            let texts: Vec<String> = kbh.chunks_by_id(&ids).map_err(tresor_assistant::AssistantError::from)?.into_iter().map(|c| norm(&c.text)).collect();
            let holds = texts.iter().filter(|t| refs.iter().any(|r| !norm(r).is_empty() && t.contains(&norm(r)))).count();
            Some(holds as f32 / ids.len() as f32)
        } else {
            None
        };
        let holds_ref = |t: &str| refs.iter().any(|r| !norm(r).is_empty() && norm(t).contains(&norm(r)));
        let chosen: Vec<String> =
            tresor_assistant::choice::choose(&a.trace.evidence_sentences, &tresor_assistant::choice::FITTED, assistant.config().extractive_sentences)
                .into_iter()
                .map(|c| c.0)
                .collect();
        let miss = if kind != "answerable" || refs.is_empty() || (holds_ref(&a.answer) && !a.refused) {
            None
        } else if a.refused {
            Some(Miss::Refused)
        } else if holds_ref(&chosen.join(" ")) {
            Some(Miss::Generation)
        } else {
            let packed: Vec<i64> = a.trace.passages.iter().filter(|p| p.packed).map(|p| p.chunk_id).collect();
            let (kbh, _) = assistant.kb(kb)?;
            let texts = kbh.chunks_by_id(&packed).map_err(tresor_assistant::AssistantError::from)?;
            Some(if texts.iter().any(|c| holds_ref(&c.text)) { Miss::Choice } else { Miss::Retrieval })
        };
        let citation_precision = match (&gold_file, cited.is_empty(), kind) {
            (Some(f), false, "answerable") => {
                Some(cited.iter().filter(|c| Path::new(c.as_str()).file_name().is_some_and(|n| n.to_string_lossy() == *f)).count() as f32 / cited.len() as f32)
            }
            _ => None,
        };
        let r = ItemResult {
            id: g.id.clone(),
            question: g.question.clone(),
            lang: lang_of(&g.question),
            kind: kind.into(),
            reference: refs.first().cloned().unwrap_or_default(),
            f1,
            refused: a.refused,
            grounded: a.grounded,
            extractive: a.trace.extractive,
            regenerated: a.trace.regeneration.is_some(),
            cited,
            citation_precision,
            citation_precision_passage,
            evidence: a.trace.evidence,
            chosen,
            candidates: a.trace.evidence_sentences.clone(),
            answer_type: a.trace.answer_type,
            miss,
            model: a.model.clone(),
            ttft_ms: a.timings.ttft_ms,
            model_first_token_ms: a.timings.model_first_token_ms,
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

fn mean_of(v: &[f32]) -> f32 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f32>() / v.len() as f32 }
}

fn contains_ref(i: &ItemResult, g: Option<&&GoldItem>) -> bool {
    !i.refused
        && g.is_some_and(|g| {
            let a = norm(&i.answer);
            g.answers.iter().chain(g.answer.iter()).any(|r| !norm(r).is_empty() && a.contains(&norm(r)))
        })
}

fn lang_report(items: &[&ItemResult], refs: &std::collections::HashMap<&str, &GoldItem>) -> LangReport {
    let ans: Vec<&ItemResult> = items.iter().copied().filter(|i| i.kind == "answerable").collect();
    let una: Vec<&ItemResult> = items.iter().copied().filter(|i| i.kind == "unanswerable").collect();
    let share = |v: &[&ItemResult], f: &dyn Fn(&ItemResult) -> bool| if v.is_empty() { 0.0 } else { v.iter().filter(|i| f(i)).count() as f32 / v.len() as f32 };
    let both: Vec<&ItemResult> = ans.iter().chain(una.iter()).copied().collect();
    LangReport {
        answerable: ans.len(),
        unanswerable: una.len(),
        contains_reference: share(&ans, &|i| contains_ref(i, refs.get(i.id.as_str()))),
        token_f1: mean_of(&ans.iter().map(|i| i.f1).collect::<Vec<_>>()),
        citation_precision: mean_of(&ans.iter().filter_map(|i| i.citation_precision).collect::<Vec<_>>()),
        citation_precision_passage: mean_of(&ans.iter().filter_map(|i| i.citation_precision_passage).collect::<Vec<_>>()),
        extractive_rate: share(&ans, &|i| i.extractive),
        refusal_rate_unanswerable: share(&una, &|i| i.refused),
        false_refusal_rate: share(&ans, &|i| i.refused),
        refusal_correct: share(&both, &|i| i.refused == (i.kind == "unanswerable")),
        ttft_ms: Percentiles::of(both.iter().map(|i| i.ttft_ms).collect()),
        model_first_token_ms: Percentiles::of(both.iter().filter(|i| i.model_first_token_ms > 0.0).map(|i| i.model_first_token_ms).collect()),
        misses: ans.iter().filter_map(|i| i.miss).fold(Default::default(), |mut m, x| {
            *m.entry(x.as_str().to_string()).or_default() += 1;
            m
        }),
    }
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
    let contains = |i: &ItemResult| contains_ref(i, refs.get(i.id.as_str()));
    let mut langs: Vec<&str> = items.iter().map(|i| i.lang.as_str()).collect();
    langs.sort();
    langs.dedup();
    let by_lang = langs
        .iter()
        .map(|l| (l.to_string(), lang_report(&items.iter().filter(|i| i.lang == *l).collect::<Vec<_>>(), &refs)))
        .collect();
    let mut models: Vec<String> = generated.iter().map(|i| i.model.clone()).collect();
    models.sort();
    models.dedup();
    AnswerEvalReport {
        split: Split::All.as_str().into(),
        citation_precision_passage: mean_of(&ans.iter().filter_map(|i| i.citation_precision_passage).collect::<Vec<_>>()),
        model_first_token_ms: Percentiles::of(items.iter().filter(|i| i.model_first_token_ms > 0.0).map(|i| i.model_first_token_ms).collect()),
        by_lang,
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
        // the first visible token of every answer (refusals and extractive answers are what the user saw)
        ttft_ms: Percentiles::of(items.iter().map(|i| i.ttft_ms).collect()),
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
    let mut s = format!("split: {} (by document; see `--split`)\n\n| metric | value |\n|---|---|\n", r.split);
    let mut row = |k: &str, v: String| s.push_str(&format!("| {k} | {v} |\n"));
    row("answerable questions", r.answerable.to_string());
    row("token F1 (answerable)", format!("{:.3}", r.token_f1));
    row("answer contains the reference", format!("{:.3}", r.contains_reference));
    row("citation precision (file)", format!("{:.3}", r.citation_precision));
    row("citation precision (passage holds the reference)", format!("{:.3}", r.citation_precision_passage));
    row("false refusals (answerable)", format!("{:.3}", r.false_refusal_rate));
    row("extractive fallback (answerable)", format!("{:.3}", r.extractive_rate));
    row("second try (answerable) / of those answered by it", format!("{:.3} / {:.3}", r.regenerated_rate, r.regenerated_answered_rate));
    row(&format!("refusal rate, unanswerable ({})", r.unanswerable), format!("{:.3}", r.refusal_rate_unanswerable));
    if let Some(u) = r.refusal_rate_unrelated {
        row(&format!("refusal rate, unrelated KB ({})", r.unrelated), format!("{u:.3}"));
    }
    row("TTFT, first visible token, p50 / p95 (ms)", format!("{:.0} / {:.0}", r.ttft_ms.p50, r.ttft_ms.p95));
    row("model's first token p50 / p95 (ms)", format!("{:.0} / {:.0}", r.model_first_token_ms.p50, r.model_first_token_ms.p95));
    row("total p50 / p95 (ms)", format!("{:.0} / {:.0}", r.total_ms.p50, r.total_ms.p95));
    row("pipeline share p50 / p95 (ms)", format!("{:.0} / {:.0}", r.pipeline_ms.p50, r.pipeline_ms.p95));
    row("completion tokens / answer", format!("{:.1}", r.completion_tokens_per_answer));
    row("prompt tokens / answer", format!("{:.1}", r.prompt_tokens_per_answer));
    row("context tokens / answer", format!("{:.1}", r.context_tokens_per_answer));
    row("models", r.models.join(", "));
    if !r.by_lang.is_empty() {
        s.push_str(&format!("\nper language ({} split)\n\n| lang | answerable | contains ref | token F1 | cit. prec. file | cit. prec. passage | extractive | refusal correct | refused unanswerable | misses: refused / retrieval / choice / generation | TTFT visible p50 / p95 (ms) | model first token p50 / p95 (ms) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n", r.split));
        for (l, x) in &r.by_lang {
            s.push_str(&format!(
                "| {l} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} ({}) | {} | {:.0} / {:.0} | {:.0} / {:.0} |\n",
                x.answerable,
                x.contains_reference,
                x.token_f1,
                x.citation_precision,
                x.citation_precision_passage,
                x.extractive_rate,
                x.refusal_correct,
                x.refusal_rate_unanswerable,
                x.unanswerable,
                [Miss::Refused, Miss::Retrieval, Miss::Choice, Miss::Generation].map(|m| x.misses.get(m.as_str()).copied().unwrap_or(0).to_string()).join(" / "),
                x.ttft_ms.p50,
                x.ttft_ms.p95,
                x.model_first_token_ms.p50,
                x.model_first_token_ms.p95
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, file: Option<&str>) -> GoldItem {
        serde_json::from_value(serde_json::json!({"id": id, "question": "q?", "answers": ["a"], "answerable": file.is_some(), "source_file": file})).unwrap()
    }

    #[test]
    fn the_halves_split_by_document_and_cover_every_question_once() {
        let gold = vec![item("1", Some("docs/b.md")), item("2", Some("docs/a.md")), item("3", Some("docs/b.md")), item("4", None), item("5", Some("docs/c.md")), item("6", None)];
        let fit = split(&gold, Split::Fit);
        let held = split(&gold, Split::HeldOut);
        assert_eq!(fit.len() + held.len(), gold.len());
        // a.md and c.md fit, b.md is held out: no document in both halves
        let ids = |v: &[GoldItem]| v.iter().map(|g| g.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&fit), ["2", "4", "5"]);
        assert_eq!(ids(&held), ["1", "3", "6"]);
        assert_eq!(split(&gold, Split::All).len(), 6);
    }
}
