//! The reranker seam: a reranker scores (query, passage) pairs; higher is
//! more relevant. Two kinds:
//! - [`CrossEncoder`]: a pulled cross-encoder (ms-marco-MiniLM, bge); its
//!   order replaces the retrieval order. Used by default when installed.
//! - [`SentenceMaxSim`]: no extra model; the knowledge base's own embedder
//!   embeds each candidate's sentences and scores a passage by its best
//!   sentence's cosine to the query. A chunk embedding averages ~256 tokens;
//!   the sentence that answers a question is usually much closer to it than
//!   the chunk as a whole. Blended 50/50 with the fused retrieval score
//!   (both min-max normalised) over the top 10, it is what `--rerank` uses
//!   when no cross-encoder is installed (it costs an embedder call over
//!   ~50–100 sentences per query, so it is not on by default). With an
//!   English-only embedder (the shipped MiniLM) it declines German queries:
//!   there it scrambled good hybrid results instead of improving them.
//!
//! Rerankers only score; they never touch the store.

use tresor_text::sentences::Splitter;

use crate::embed::{dot, TextEmbedder};
use crate::error::{KbError, Result};
use crate::lang::{detect, Lang};

pub trait TextReranker: Send + Sync {
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>>;
    fn model_id(&self) -> String;
    /// Weight of this reranker's score against the fused retrieval score
    /// (both min-max normalised over the reranked candidates); 1.0 = the
    /// reranker's order alone.
    fn weight(&self) -> f32 {
        1.0
    }
    /// Whether passages come with their title and heading line (as embedded).
    fn with_heading(&self) -> bool {
        true
    }
    /// At most this many of the best candidates are reranked.
    fn max_passages(&self) -> usize {
        usize::MAX
    }
    /// Whether this reranker can judge `query` (a model that knows one
    /// language cannot judge another); when not, results stay unreranked.
    fn covers(&self, _query: &str) -> bool {
        true
    }
}

/// Whether an embedder, by its model id, knows English only. Unknown
/// models count as English-only (the shipped all-MiniLM-L6-v2 is); known
/// multilingual families are recognised by name.
pub fn english_only(model_id: &str) -> bool {
    let id = model_id.to_lowercase();
    !["multilingual", "labse", "xlm", "bge-m3", "distiluse", "german", "gbert"].iter().any(|m| id.contains(m))
}

/// Sentence-level max-sim with the knowledge base's embedder (see the module comment).
pub struct SentenceMaxSim<'a> {
    pub embedder: &'a dyn TextEmbedder,
    /// Candidates scored (default 10).
    pub top: usize,
    /// Blend weight against the retrieval score (default 0.5).
    pub weight: f32,
}

impl<'a> SentenceMaxSim<'a> {
    pub fn new(embedder: &'a dyn TextEmbedder) -> Self {
        SentenceMaxSim { embedder, top: 10, weight: 0.5 }
    }
}

/// The sentences of a passage: its lines, each split at sentence ends;
/// fragments of fewer than three characters are dropped.
pub fn passage_sentences(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Splitter::lines().split(text).into_iter().filter(|s| s.chars().count() >= 3).collect();
    if out.is_empty() && !text.trim().is_empty() {
        out.push(text.trim());
    }
    out
}

impl TextReranker for SentenceMaxSim<'_> {
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        let mut texts: Vec<&str> = vec![query];
        let mut owner: Vec<usize> = Vec::new();
        for (i, p) in passages.iter().enumerate() {
            for s in passage_sentences(p) {
                texts.push(s);
                owner.push(i);
            }
        }
        let vecs = self.embedder.embed(&texts)?;
        let (q, sv) = vecs.split_first().ok_or_else(|| KbError::Rerank("no vector for the query".into()))?;
        if sv.len() != owner.len() {
            return Err(KbError::Rerank(format!("{} vectors for {} sentences", sv.len(), owner.len())));
        }
        let mut best = vec![f32::NEG_INFINITY; passages.len()];
        for (v, &i) in sv.iter().zip(&owner) {
            best[i] = best[i].max(dot(q, v));
        }
        // an empty passage ranks last
        Ok(best.into_iter().map(|b| if b.is_finite() { b } else { -1.0 }).collect())
    }
    fn model_id(&self) -> String {
        format!("sentence-maxsim:{}", self.embedder.model_id())
    }
    fn weight(&self) -> f32 {
        self.weight
    }
    fn with_heading(&self) -> bool {
        false
    }
    fn max_passages(&self) -> usize {
        self.top
    }
    fn covers(&self, query: &str) -> bool {
        !english_only(&self.embedder.model_id()) || detect(query) != Some(Lang::De)
    }
}

/// The engine's cross-encoder with the id it was resolved under.
pub struct CrossEncoder {
    pub inner: tresor_llm::rerank::Reranker,
    pub id: String,
}

impl TextReranker for CrossEncoder {
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        self.inner.score(query, passages).map_err(|e| KbError::Rerank(e.to_string()))
    }
    fn model_id(&self) -> String {
        self.id.clone()
    }
}
