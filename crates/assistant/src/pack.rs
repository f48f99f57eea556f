//! Evidence and context packing. Each retrieved passage gets an evidence
//! score against the question (lexical coverage of the question's content
//! terms, each weighted by its specificity in the knowledge base, blended
//! with the embedding cosine); the best one must pass the
//! evidence threshold, and the passages close to it are packed into the
//! model's window: best first, near-duplicates dropped, long passages cut to
//! the sentences that matter, all within a token budget measured with the
//! chat model's own tokenizer.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tresor_kb::embed::dot;
use tresor_kb::lang::Lang;
use tresor_kb::Hit;

use crate::text::{jaccard, sentences, term_matches, term_set, weighted_coverage, weighted_share, weighted_terms, WeightedTerm};

/// A retrieved passage with what the pipeline measured about it.
#[derive(Debug, Clone, Serialize)]
pub struct Passage {
    #[serde(skip)]
    pub hit: Hit,
    /// The (possibly trimmed) text the model sees.
    pub text: String,
    #[serde(skip)]
    pub embedding: Vec<f32>,
    pub lexical: f32,
    pub cosine: f32,
    pub evidence: f32,
    pub tokens: usize,
    /// The question's content terms in this passage's language, with their weights.
    #[serde(skip)]
    pub q_terms: Vec<WeightedTerm>,
    /// The question terms this passage does not hold at all, most specific first.
    pub missing_terms: Vec<String>,
}

impl Passage {
    pub fn lang(&self) -> Lang {
        Lang::parse(&self.hit.lang).unwrap_or(Lang::En)
    }
    pub fn terms(&self) -> HashSet<String> {
        term_set(&format!("{} {} {}", self.hit.title, self.hit.heading, self.hit.text), self.lang())
    }
}

/// Scores `hits` (with their stored embeddings, same order) against the
/// question. `term_weight` says how much a question term (a stem in the
/// passage's language) counts: its specificity in the knowledge base
/// (`Kb::term_idf`); `&|_| 1.0` weighs every term the same.
pub fn score(
    question: &str,
    qvec: &[f32],
    hits: Vec<(Hit, Vec<f32>)>,
    lexical_weight: f32,
    term_weight: &dyn Fn(&str) -> f32,
) -> Vec<Passage> {
    // the question's weighted terms once per passage language (each weight is a vocabulary lookup)
    let mut by_lang: HashMap<Lang, Vec<WeightedTerm>> = HashMap::new();
    let mut out: Vec<Passage> = hits
        .into_iter()
        .map(|(hit, emb)| {
            let lang = Lang::parse(&hit.lang).unwrap_or(Lang::En);
            let q_terms = by_lang.entry(lang).or_insert_with(|| weighted_terms(question, lang, term_weight)).clone();
            let p_terms = term_set(&format!("{} {} {}", hit.title, hit.heading, hit.text), lang);
            let matches = term_matches(&q_terms, &p_terms, lang);
            let lexical = weighted_share(&q_terms, &matches);
            let mut missing: Vec<&WeightedTerm> = q_terms.iter().zip(&matches).filter(|(_, m)| **m == 0.0).map(|(t, _)| t).collect();
            missing.sort_by(|a, b| b.weight.total_cmp(&a.weight));
            let missing_terms = missing.into_iter().map(|t| t.term.clone()).collect();
            let cosine = if emb.len() == qvec.len() { dot(qvec, &emb).max(0.0) } else { 0.0 };
            let evidence = lexical_weight * lexical + (1.0 - lexical_weight) * cosine;
            Passage { text: hit.text.clone(), hit, embedding: emb, lexical, cosine, evidence, tokens: 0, q_terms, missing_terms }
        })
        .collect();
    out.sort_by(|a, b| b.evidence.total_cmp(&a.evidence));
    out
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PackReport {
    pub candidates: usize,
    pub packed: usize,
    pub below_evidence: usize,
    pub duplicates: usize,
    pub trimmed: usize,
    pub tokens: usize,
    pub budget: usize,
}

/// Packs the passages (sorted best first) whose evidence is at least
/// `relative` × the best one's into `budget` tokens, at most `max` passages.
pub fn pack(
    scored: Vec<Passage>,
    budget: usize,
    max: usize,
    relative: f32,
    count_tokens: &dyn Fn(&str) -> usize,
) -> (Vec<Passage>, PackReport) {
    let mut rep = PackReport { candidates: scored.len(), budget, ..Default::default() };
    let best = scored.first().map(|p| p.evidence).unwrap_or(0.0);
    let mut out: Vec<Passage> = Vec::new();
    let mut used = 0usize;
    for mut p in scored {
        if out.len() >= max || used >= budget {
            break;
        }
        if p.evidence < best * relative {
            rep.below_evidence += 1;
            continue;
        }
        if out.iter().any(|q| jaccard(&q.hit.text, &p.hit.text) > 0.8 || q.hit.text.contains(p.hit.text.trim())) {
            rep.duplicates += 1;
            continue;
        }
        let left = budget - used;
        let header = format!("[{}] {}\n", out.len() + 1, label(&p.hit));
        let head_tokens = count_tokens(&header);
        let mut tokens = count_tokens(&p.text) + head_tokens;
        if tokens > left {
            let trimmed = trim_to(&p.q_terms, &p.text, left.saturating_sub(head_tokens), p.lang(), count_tokens);
            if trimmed.is_empty() {
                continue;
            }
            p.text = trimmed;
            tokens = count_tokens(&p.text) + head_tokens;
            rep.trimmed += 1;
        }
        p.tokens = tokens;
        used += tokens;
        out.push(p);
    }
    rep.packed = out.len();
    rep.tokens = used;
    (out, rep)
}

/// "title › heading (p. N)" for a passage header.
pub fn label(h: &Hit) -> String {
    let mut s = h.title.clone();
    if !h.heading.is_empty() && h.heading != h.title {
        s.push_str(" › ");
        s.push_str(&h.heading);
    }
    if let Some(p) = h.page {
        s.push_str(&format!(" (p. {p})"));
    }
    s
}

/// The sentences of `text` that best cover the question's terms `q`, in
/// their original order, within `budget` tokens.
pub fn trim_to(q: &[WeightedTerm], text: &str, budget: usize, lang: Lang, count_tokens: &dyn Fn(&str) -> usize) -> String {
    let sents = sentences(text);
    let mut ranked: Vec<(usize, f32)> =
        sents.iter().enumerate().map(|(i, s)| (i, weighted_coverage(q, &term_set(s, lang), lang) - i as f32 * 1e-3)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut keep: Vec<usize> = Vec::new();
    let mut used = 0;
    for (i, _) in ranked {
        let t = count_tokens(sents[i]) + 1;
        if used + t > budget {
            continue;
        }
        used += t;
        keep.push(i);
    }
    keep.sort();
    keep.iter().map(|&i| sents[i]).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn hit(id: i64, text: &str) -> Hit {
        Hit {
            rank: id as usize,
            score: 1.0,
            source: format!("doc{id}.md"),
            title: format!("Doc {id}"),
            heading: "Section".into(),
            page: None,
            chunk_id: id,
            text: text.into(),
            lang: "en".into(),
            char_start: 0,
            char_end: text.len(),
            bm25_rank: None,
            vector_rank: None,
            rerank_score: None,
        }
    }

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    #[test]
    fn scores_packs_dedups_and_trims_within_budget() {
        let q = "How many vacation days do full-time employees get?";
        let hits = vec![
            (hit(1, "Passwords need twelve characters."), vec![]),
            (hit(2, "Full-time employees get 30 days of paid vacation per year. Requests go through the portal."), vec![]),
            (hit(3, "Full-time employees get 30 days of paid vacation per year. Requests go through the portal!"), vec![]),
            (hit(4, &format!("Vacation days for employees: {} Part-time employees get fewer days.", "Filler text here. ".repeat(30))), vec![]),
        ];
        let scored = score(q, &[], hits, 1.0, &|_| 1.0);
        assert_eq!(scored[0].hit.chunk_id, 2);
        assert_eq!(scored.last().unwrap().hit.chunk_id, 1);
        let (packed, rep) = pack(scored, 40, 3, 0.5, &words);
        let ids: Vec<i64> = packed.iter().map(|p| p.hit.chunk_id).collect();
        assert_eq!(ids, vec![2, 4], "{rep:?}");
        assert_eq!(rep.duplicates, 1);
        assert_eq!(rep.trimmed, 1);
        assert!(rep.tokens <= 40, "{rep:?}");
        assert!(packed[1].text.contains("Vacation days for employees") || packed[1].text.contains("Part-time"), "{}", packed[1].text);
    }
}
