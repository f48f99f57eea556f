//! The reranker seam: a cross-encoder scores (query, passage) pairs; higher
//! is more relevant. Optional: retrieval works without one and says so.

use crate::error::{KbError, Result};

pub trait TextReranker: Send + Sync {
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>>;
    fn model_id(&self) -> String;
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
