//! Topic detection: does a question fall under one of the policy's topics?
//! A keyword on word boundaries, or cosine similarity of the question's
//! embedding to one of the topic's example prompts at or above its threshold.
//!
//! Owns: the example index ([`TopicIndex`], built with the caller's
//! embedder), matching ([`TopicHit`]), the word-boundary term match every
//! policy check uses ([`contains_term`]) and the localised topic refusal.
//! Never: embeds anything itself or keeps the question.

use serde::Serialize;

use super::{Policy, TopicAction};

/// The example prompts' embeddings, built once per policy with the caller's embedder.
#[derive(Debug, Clone, Default)]
pub struct TopicIndex {
    /// (topic index in `Policy::topics`, embedding)
    examples: Vec<(usize, Vec<f32>)>,
}

impl TopicIndex {
    pub fn len(&self) -> usize {
        self.examples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
    /// The example embeddings in [`Policy::index`] order (for a cache).
    pub fn vectors(&self) -> Vec<&[f32]> {
        self.examples.iter().map(|(_, v)| v.as_slice()).collect()
    }
}

/// A question matched a topic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicHit {
    pub topic: String,
    pub action: TopicAction,
    /// "keyword" or "similarity".
    pub via: String,
    /// Highest cosine similarity to one of the topic's examples (1.0 for a keyword).
    pub score: f32,
}

impl Policy {
    /// Embeds every enabled topic's examples (in batches) with `embed`.
    pub fn index<E>(&self, mut embed: impl FnMut(&[&str]) -> std::result::Result<Vec<Vec<f32>>, E>) -> std::result::Result<TopicIndex, E> {
        let mut texts: Vec<(usize, &str)> = Vec::new();
        for (i, t) in self.topics.iter().enumerate().filter(|(_, t)| t.enabled) {
            texts.extend(t.examples_de.iter().chain(&t.examples_en).map(|e| (i, e.as_str())));
        }
        let mut examples = Vec::with_capacity(texts.len());
        for batch in texts.chunks(16) {
            let strs: Vec<&str> = batch.iter().map(|(_, s)| *s).collect();
            let vecs = embed(&strs)?;
            examples.extend(batch.iter().map(|(i, _)| *i).zip(vecs));
        }
        Ok(TopicIndex { examples })
    }

    /// Every active topic the question matches, best first: a keyword match
    /// (score 1.0) or cosine similarity to one of its examples at or above the
    /// threshold. `qvec` is the question's embedding (same embedder as the index).
    pub fn detect_topics(&self, index: &TopicIndex, question: &str, qvec: Option<&[f32]>) -> (Vec<TopicHit>, Option<(String, f32)>) {
        let lower = question.to_lowercase();
        let mut best_sim: Vec<f32> = vec![f32::MIN; self.topics.len()];
        if let Some(q) = qvec {
            for (ti, e) in &index.examples {
                let s = cosine(q, e);
                if s > best_sim[*ti] {
                    best_sim[*ti] = s;
                }
            }
        }
        let active: Vec<&str> = self.active_topics().map(|t| t.name.as_str()).collect();
        let mut hits = Vec::new();
        let mut nearest: Option<(String, f32)> = None;
        for (i, t) in self.topics.iter().enumerate() {
            if !active.contains(&t.name.as_str()) {
                continue;
            }
            if best_sim[i] > f32::MIN && nearest.as_ref().is_none_or(|(_, s)| best_sim[i] > *s) {
                nearest = Some((t.name.clone(), best_sim[i]));
            }
            if t.keywords.iter().any(|k| contains_term(&lower, k)) {
                hits.push(TopicHit { topic: t.name.clone(), action: t.action, via: "keyword".into(), score: 1.0 });
            } else if best_sim[i] >= t.threshold.unwrap_or(self.detection_threshold) {
                hits.push(TopicHit { topic: t.name.clone(), action: t.action, via: "similarity".into(), score: best_sim[i] });
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        (hits, nearest)
    }

    /// The localised refusal for a refused topic: names the topic and says why.
    pub fn refusal(&self, topic: &str, lang: &str) -> String {
        let t = self.topic(topic);
        let title = t.map(|t| t.title.get(lang).to_string()).unwrap_or_else(|| topic.to_string());
        let reason = t.map(|t| t.reason.get(lang).to_string()).unwrap_or_default();
        if lang == "de" {
            format!("Diese Frage beantworte ich nicht – sie fällt unter „{title}“, und die Richtlinie schließt das aus: {reason}")
        } else {
            format!("I can't answer this question – it falls under \"{title}\", which the policy excludes: {reason}")
        }
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut d, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na.sqrt() * nb.sqrt())
    }
}

/// `term` (lowercase; a trailing `*` matches any word ending) occurs in
/// `lower` on word boundaries.
pub fn contains_term(lower: &str, term: &str) -> bool {
    let (term, prefix) = match term.strip_suffix('*') {
        Some(t) => (t, true),
        None => (term, false),
    };
    if term.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(i) = lower[from..].find(term) {
        let s = from + i;
        let e = s + term.len();
        if on_word_boundaries(lower, s, e, prefix) {
            return true;
        }
        from = s + lower[s..].chars().next().map(|c| c.len_utf8()).unwrap_or(1);
    }
    false
}

/// `lower[start..end]` starts a word and (unless `open_end`) ends one.
pub(super) fn on_word_boundaries(lower: &str, start: usize, end: usize, open_end: bool) -> bool {
    let before_ok = lower[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
    let after_ok = open_end || lower[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
    before_ok && after_ok
}
