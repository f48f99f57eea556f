//! Retrieval evaluation on a gold set (the format of
//! shared/eval/rag_goldset_dev: JSONL with `question`, `answers`,
//! `answer_spans[{text,start_in_file}]`, `source_file`, `answerable`).
//! A retrieved chunk is relevant when it comes from the question's source
//! file and its character span overlaps an answer span or its text contains
//! an answer (markup ignored; answers can occur more than once in a file). Reports recall@1/5/10, MRR and nDCG@10.
//!
//! Owns the gold-set format ([`GoldItem`], also read by [`crate::answer_eval`],
//! `bench answers` and `bench serve`) and the retrieval metrics; never
//! touches a user's knowledge bases ([`temp_kb_dir`]) and never asserts a score.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tresor_kb::error::IoCtx;
use tresor_kb::rerank::SentenceMaxSim;
use tresor_kb::retrieve::Fusion;
use tresor_kb::store::StoredChunk;
use tresor_kb::{search, Hit, Kb, KbError, Mode, RerankChoice, Result, SearchOptions, TextEmbedder, TextReranker};

#[derive(Debug, Clone, Deserialize)]
pub struct GoldItem {
    pub id: String,
    pub question: String,
    #[serde(default)]
    pub answers: Vec<String>,
    #[serde(default)]
    pub answer: Option<String>,
    #[serde(default = "yes")]
    pub answerable: bool,
    #[serde(default)]
    pub answer_spans: Vec<GoldSpan>,
    pub source_file: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoldSpan {
    pub text: String,
    pub start_in_file: usize,
}

pub fn load_goldset(path: &Path) -> Result<Vec<GoldItem>> {
    let text = std::fs::read_to_string(path).io(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: GoldItem = serde_json::from_str(line)
            .map_err(|e| KbError::Goldset { path: path.to_path_buf(), line: i + 1, reason: e.to_string() })?;
        out.push(item);
    }
    if out.is_empty() {
        return Err(KbError::Goldset { path: path.to_path_buf(), line: 0, reason: "no questions".into() });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeMetrics {
    pub mode: String,
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub mrr: f64,
    pub ndcg_at_10: f64,
    pub ms_per_query: f64,
    /// Questions with no relevant chunk in the top 5.
    pub missed_at_5: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub goldset: String,
    pub docs: String,
    pub questions: usize,
    pub skipped_unanswerable: usize,
    pub documents: usize,
    pub chunks: usize,
    pub embedder: String,
    pub reranker: Option<String>,
    pub rerank_note: Option<String>,
    pub modes: Vec<ModeMetrics>,
}

impl EvalReport {
    /// The report as a telemetry `eval_run` event (`tresor eval retrieval --record`):
    /// hybrid+rerank is the production setting; the lift is its recall@1 over hybrid's.
    pub fn eval_run(&self) -> tresor_assistant::tresor_telemetry::EvalRun {
        let mode = |m: &str| self.modes.iter().find(|x| x.mode == m);
        let (prod, plain) = (mode("hybrid+rerank").or_else(|| mode("hybrid")), mode("hybrid"));
        let dataset = Path::new(&self.goldset).file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_else(|| self.goldset.clone());
        tresor_assistant::tresor_telemetry::EvalRun {
            eval: "retrieval".into(),
            dataset,
            cases: self.questions as u64,
            recall_at_1: prod.map_or(0.0, |m| m.recall_at_1),
            recall_at_5: prod.map_or(0.0, |m| m.recall_at_5),
            mrr: prod.map_or(0.0, |m| m.mrr),
            rerank_lift: match (mode("hybrid+rerank"), plain) {
                (Some(r), Some(h)) => Some(r.recall_at_1 - h.recall_at_1),
                _ => None,
            },
        }
    }
}

fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '*' | '_' | '[' | ']' | '`' | '#'))
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The gold file a source path corresponds to (`docs/x.md` ↔ `<DIR>/x.md`).
fn same_file(source: &str, docs: &Path, gold: &str) -> bool {
    let rel = gold.strip_prefix("docs/").unwrap_or(gold);
    Path::new(source) == docs.join(rel) || Path::new(source).ends_with(rel)
}

struct Judge<'a> {
    item: &'a GoldItem,
    docs: &'a Path,
}

impl Judge<'_> {
    fn relevant(&self, source: &str, start: usize, end: usize, text: &str) -> bool {
        let Some(gold) = &self.item.source_file else { return false };
        if !same_file(source, self.docs, gold) {
            return false;
        }
        let overlaps = self.item.answer_spans.iter().any(|s| {
            let e = s.start_in_file + s.text.chars().count();
            start < e && s.start_in_file < end
        });
        if overlaps {
            return true;
        }
        // the answer may occur more than once in the file; any chunk of it
        // that contains the answer (markup ignored) answers the question
        let t = normalize(text);
        self.item.answers.iter().chain(self.item.answer.iter()).any(|a| t.contains(&normalize(a)))
    }
    fn hit(&self, h: &Hit) -> bool {
        self.relevant(&h.source, h.char_start, h.char_end, &h.text)
    }
    fn stored(&self, c: &StoredChunk) -> bool {
        self.relevant(&c.source, c.start, c.end, &c.text)
    }
}

/// Scores one mode over the answerable questions.
fn score_mode(
    kb: &mut Kb,
    items: &[&GoldItem],
    docs: &Path,
    label: &str,
    opts: &SearchOptions,
    embedder: &dyn TextEmbedder,
    reranker: Option<&dyn TextReranker>,
) -> Result<ModeMetrics> {
    let (mut r1, mut r5, mut r10, mut mrr, mut ndcg) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut missed = Vec::new();
    let t = std::time::Instant::now();
    for item in items {
        let judge = Judge { item, docs };
        let res = search(kb, &item.question, Some(embedder), reranker, opts)?;
        let rel: Vec<bool> = res.hits.iter().map(|h| judge.hit(h)).collect();
        let first = rel.iter().position(|r| *r);
        if first.is_none_or(|p| p >= 5) {
            missed.push(item.id.clone());
        }
        if let Some(p) = first {
            if p < 1 {
                r1 += 1.0;
            }
            if p < 5 {
                r5 += 1.0;
            }
            if p < 10 {
                r10 += 1.0;
            }
            mrr += 1.0 / (p + 1) as f64;
        }
        // nDCG@10 with binary gains; ideal = all relevant chunks of the file first
        let dcg: f64 = rel.iter().take(10).enumerate().filter(|(_, r)| **r).map(|(i, _)| 1.0 / ((i + 2) as f64).log2()).sum();
        let total_rel = match &item.source_file {
            Some(gold) => {
                let src = kb.sources()?.into_iter().find(|s| same_file(s, docs, gold));
                match src {
                    Some(s) => kb.chunks_of(&s)?.iter().filter(|c| judge.stored(c)).count(),
                    None => 0,
                }
            }
            None => 0,
        }
        .clamp(1, 10);
        let idcg: f64 = (0..total_rel).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
        ndcg += dcg / idcg;
    }
    let n = items.len().max(1) as f64;
    Ok(ModeMetrics {
        mode: label.to_string(),
        questions: items.len(),
        recall_at_1: r1 / n,
        recall_at_5: r5 / n,
        recall_at_10: r10 / n,
        mrr: mrr / n,
        ndcg_at_10: ndcg / n,
        ms_per_query: t.elapsed().as_secs_f64() * 1e3 / n,
        missed_at_5: missed,
    })
}

/// Evaluates bm25, vector, hybrid (the configured fusion), hybrid with the
/// other fusion (`hybrid-rrf` or `hybrid-convex`) and hybrid+rerank on `kb`,
/// which must hold the gold set's documents ingested from `docs`.
/// hybrid+rerank uses `reranker` (a cross-encoder) when given, else
/// sentence max-sim with the embedder (named in `reranker` and `rerank_note`).
pub fn evaluate(
    kb: &mut Kb,
    gold: &[GoldItem],
    goldset: &Path,
    docs: &Path,
    embedder: &dyn TextEmbedder,
    reranker: Option<&dyn TextReranker>,
    base: &SearchOptions,
) -> Result<EvalReport> {
    let items: Vec<&GoldItem> = gold.iter().filter(|g| g.answerable && g.source_file.is_some()).collect();
    let mut modes = Vec::new();
    let other = match base.fusion {
        Fusion::Convex => Fusion::Rrf,
        Fusion::Rrf => Fusion::Convex,
    };
    let other_label = format!("hybrid-{}", other.as_str());
    for (label, mode, fusion) in [
        ("bm25", Mode::Bm25, base.fusion),
        ("vector", Mode::Vector, base.fusion),
        ("hybrid", Mode::Hybrid, base.fusion),
        (other_label.as_str(), Mode::Hybrid, other),
    ] {
        let opts = SearchOptions { k: 10, mode, fusion, rerank: RerankChoice::Off, ..base.clone() };
        modes.push(score_mode(kb, &items, docs, label, &opts, embedder, None)?);
    }
    let maxsim = SentenceMaxSim::new(embedder);
    let (rr, rerank_note): (&dyn TextReranker, _) = match reranker {
        Some(rr) => (rr, None),
        None => (&maxsim, Some(format!("no cross-encoder installed: hybrid+rerank is {}", maxsim.model_id()))),
    };
    let opts = SearchOptions { k: 10, mode: Mode::Hybrid, rerank: RerankChoice::On, ..base.clone() };
    modes.push(score_mode(kb, &items, docs, "hybrid+rerank", &opts, embedder, Some(rr))?);
    Ok(EvalReport {
        goldset: goldset.display().to_string(),
        docs: docs.display().to_string(),
        questions: items.len(),
        skipped_unanswerable: gold.len() - items.len(),
        documents: kb.document_count()?,
        chunks: kb.chunk_count()?,
        embedder: embedder.model_id(),
        reranker: Some(rr.model_id()),
        rerank_note,
        modes,
    })
}

/// Markdown table of a report.
pub fn table(r: &EvalReport) -> String {
    let mut s = String::from("| mode | recall@1 | recall@5 | recall@10 | MRR | nDCG@10 | ms/query |\n|---|---|---|---|---|---|---|\n");
    for m in &r.modes {
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} |\n",
            m.mode, m.recall_at_1, m.recall_at_5, m.recall_at_10, m.mrr, m.ndcg_at_10, m.ms_per_query
        ));
    }
    s
}

/// A fresh temporary directory for an evaluation knowledge base.
pub fn temp_kb_dir() -> Result<(tempfile::TempDir, PathBuf)> {
    let d = tempfile::Builder::new().prefix("tresor-eval-").tempdir().map_err(|e| KbError::Io { path: std::env::temp_dir(), source: e })?;
    let p = d.path().join("kb");
    Ok((d, p))
}
