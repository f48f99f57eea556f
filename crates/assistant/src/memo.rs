//! A small memo in front of the embedder, so one question is embedded once
//! per answer although several steps need its vector: the policy's topic
//! check, the injection firewall's prompt screen (a short prompt is one
//! window: the question itself), the semantic cache, the evidence scores and
//! tresor-kb's vector search (which embeds its query itself).
//!
//! Owns: the last few (text → vector) pairs of short texts. Never changes a
//! vector (a hit returns exactly what the inner embedder returned for the same
//! text) and never keeps long texts (passages, uploads): those go straight
//! through.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tresor_kb::TextEmbedder;

/// Texts longer than this (in bytes) are not memoised.
const MAX_TEXT: usize = 2_000;

pub struct MemoEmbedder {
    inner: Arc<dyn TextEmbedder>,
    slots: usize,
    memo: Mutex<VecDeque<(String, Vec<f32>)>>,
}

impl MemoEmbedder {
    /// Keeps the last `slots` short texts' vectors.
    pub fn new(inner: Arc<dyn TextEmbedder>, slots: usize) -> Self {
        MemoEmbedder { inner, slots: slots.max(1), memo: Mutex::new(VecDeque::new()) }
    }

    fn get(&self, text: &str) -> Option<Vec<f32>> {
        let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.iter().find(|(t, _)| t == text).map(|(_, v)| v.clone())
    }

    fn put(&self, text: &str, v: &[f32]) {
        if text.len() > MAX_TEXT {
            return;
        }
        let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        if memo.iter().any(|(t, _)| t == text) {
            return;
        }
        if memo.len() >= self.slots {
            memo.pop_front();
        }
        memo.push_back((text.to_string(), v.to_vec()));
    }
}

impl TextEmbedder for MemoEmbedder {
    fn embed(&self, texts: &[&str]) -> tresor_kb::Result<Vec<Vec<f32>>> {
        let mut out: Vec<Option<Vec<f32>>> = texts.iter().map(|t| if t.len() <= MAX_TEXT { self.get(t) } else { None }).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let refs: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let vecs = self.inner.embed(&refs)?;
            if vecs.len() != refs.len() {
                return Err(tresor_kb::KbError::Embed(format!("the embedder returned {} vectors for {} texts", vecs.len(), refs.len())));
            }
            for (&i, v) in missing.iter().zip(vecs) {
                self.put(texts[i], &v);
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().map(|v| v.expect("filled above")).collect())
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.inner.count_tokens(text)
    }
    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }
    fn model_id(&self) -> String {
        self.inner.model_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tresor_kb::HashEmbedder;

    /// Counts the texts that reach the inner embedder.
    struct Counting {
        inner: HashEmbedder,
        texts: AtomicUsize,
    }

    impl TextEmbedder for Counting {
        fn embed(&self, texts: &[&str]) -> tresor_kb::Result<Vec<Vec<f32>>> {
            self.texts.fetch_add(texts.len(), Ordering::SeqCst);
            self.inner.embed(texts)
        }
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn count_tokens(&self, text: &str) -> usize {
            self.inner.count_tokens(text)
        }
        fn max_tokens(&self) -> usize {
            self.inner.max_tokens()
        }
        fn model_id(&self) -> String {
            self.inner.model_id()
        }
    }

    #[test]
    fn a_text_is_embedded_once_and_vectors_are_unchanged() {
        let inner = Arc::new(Counting { inner: HashEmbedder::new(64), texts: AtomicUsize::new(0) });
        let memo = MemoEmbedder::new(inner.clone(), 2);
        let direct = HashEmbedder::new(64).embed(&["how many vacation days", "sick leave"]).unwrap();
        let a = memo.embed(&["how many vacation days"]).unwrap();
        let b = memo.embed(&["sick leave", "how many vacation days"]).unwrap();
        assert_eq!(a[0], direct[0]);
        assert_eq!(b[0], direct[1]);
        assert_eq!(b[1], direct[0]);
        assert_eq!(inner.texts.load(Ordering::SeqCst), 2, "the repeated text came from the memo");
        // a third text evicts the oldest
        memo.embed(&["passwords"]).unwrap();
        memo.embed(&["how many vacation days"]).unwrap();
        assert_eq!(inner.texts.load(Ordering::SeqCst), 4);
        // long texts are never kept
        let long = "word ".repeat(1000);
        memo.embed(&[&long]).unwrap();
        memo.embed(&[&long]).unwrap();
        assert_eq!(inner.texts.load(Ordering::SeqCst), 6);
    }
}
