//! The embedder seam. The knowledge base only needs "text in, unit vectors
//! out" plus a token counter for chunk sizing and a stable identity, so the
//! engine's MiniLM (or a multilingual model) plugs in here, and tests use a
//! small deterministic embedder of their own.

use crate::error::{KbError, Result};

pub trait TextEmbedder: Send + Sync {
    /// One L2-normalised vector per text, `dim()` long.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    fn dim(&self) -> usize;
    /// Tokens the model sees for `text` (no special tokens).
    fn count_tokens(&self, text: &str) -> usize;
    /// The model's input limit in tokens (specials included); longer inputs are truncated.
    fn max_tokens(&self) -> usize;
    /// A stable identity: a knowledge base records it and refuses another.
    fn model_id(&self) -> String;
}

impl TextEmbedder for tresor_llm::embed::Embedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        tresor_llm::embed::Embedder::embed(self, texts).map_err(|e| KbError::Embed(e.to_string()))
    }
    fn dim(&self) -> usize {
        tresor_llm::embed::Embedder::dim(self)
    }
    fn count_tokens(&self, text: &str) -> usize {
        tresor_llm::embed::Embedder::count_tokens(self, text)
    }
    fn max_tokens(&self) -> usize {
        tresor_llm::embed::Embedder::max_tokens(self)
    }
    fn model_id(&self) -> String {
        tresor_llm::embed::Embedder::model_id(self).to_string()
    }
}

/// A deterministic, model-free embedder: hashed word and character-trigram
/// features, L2-normalised. Texts that share words and word pieces get
/// similar vectors, which is what tests of chunking, storage and fusion need.
/// Also used by `bench kb` for its synthetic corpora. Not for real retrieval.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dim: usize,
    max_tokens: usize,
}

impl HashEmbedder {
    pub fn new(dim: usize) -> Self {
        HashEmbedder { dim, max_tokens: 256 }
    }
    pub fn with_max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }
    fn vector(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        let lower = text.to_lowercase();
        for (i, w) in crate::analyze::words(&lower).enumerate() {
            if i >= self.max_tokens * 4 {
                break;
            }
            let h = fnv(w.as_bytes());
            v[(h % self.dim as u64) as usize] += 1.0;
            let chars: Vec<char> = format!("#{w}#").chars().collect();
            for t in chars.windows(3) {
                let s: String = t.iter().collect();
                let h = fnv(s.as_bytes());
                let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
                v[((h >> 7) % self.dim as u64) as usize] += 0.3 * sign;
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            v.iter_mut().for_each(|x| *x /= n);
        } else {
            v[0] = 1.0;
        }
        v
    }
}

pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl TextEmbedder for HashEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn count_tokens(&self, text: &str) -> usize {
        // roughly wordpiece: a token per word, one more per 6 chars of long words
        crate::analyze::words(text).map(|w| 1 + w.chars().count() / 7).sum::<usize>()
            + text.chars().filter(|c| c.is_ascii_punctuation()).count()
    }
    fn max_tokens(&self) -> usize {
        self.max_tokens
    }
    fn model_id(&self) -> String {
        format!("hash-embedder-{}", self.dim)
    }
}

/// Cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_embedder_is_deterministic_normalised_and_similarity_aware() {
        let e = HashEmbedder::new(64);
        let v = e.embed(&["vacation days per year", "vacation days each year", "firewall rules"]).unwrap();
        assert_eq!(v[0], e.embed(&["vacation days per year"]).unwrap()[0]);
        for x in &v {
            assert!((dot(x, x) - 1.0).abs() < 1e-4);
        }
        assert!(dot(&v[0], &v[1]) > dot(&v[0], &v[2]));
    }
}
