//! Citations attached after generation. Small models cite badly, so the
//! `[n]` the model may write are stripped; each answer sentence is aligned
//! with the packed passage that supports it best (lexical overlap of its
//! content terms, blended with the embedding cosine of sentence and
//! passage) and gets that passage's number, or is dropped when nothing
//! supports it. When no generated sentence survives, an extractive answer
//! takes the passages' sentences that best match the question. Answers
//! stream in sentence by sentence through `tresor_text`'s
//! [`SentenceStream`] (re-exported here).

use serde::Serialize;
use tresor_kb::embed::dot;

pub use tresor_text::sentences::SentenceStream;

use crate::pack::Passage;
use crate::text::{content_terms, coverage, jaccard, language, sentences, term_set, weighted_coverage};

#[derive(Debug, Clone, Serialize)]
pub struct SentenceCheck {
    pub text: String,
    /// Index into the packed passages of the best supporting passage.
    pub passage: Option<usize>,
    pub lexical: f32,
    pub cosine: f32,
    pub support: f32,
    pub kept: bool,
    /// Why a sentence was dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<String>,
}

/// Words that carry no content in an answer ("the answer is ...", stems).
const FILLER: &[&str] = &["answer", "question", "sourc", "sources", "sourc", "antwort", "frag", "quell", "quellen"];

/// Removes `[n]`, `[n, m]`, `【n】` style markers the model wrote.
pub fn strip_markers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            if let Some(end) = chars[i + 1..].iter().position(|&c| c == ']') {
                let inner: String = chars[i + 1..i + 1 + end].iter().collect();
                if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit() || c == ',' || c == ' ') {
                    i += end + 2;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ").replace(" .", ".").replace(" ,", ",")
}

fn answer_terms(text: &str, lang: tresor_kb::lang::Lang) -> Vec<String> {
    content_terms(text, lang).into_iter().filter(|t| !FILLER.contains(&t.as_str())).collect()
}

/// Why a sentence fails on its form alone (no embedding needed), if it does.
fn form_failure(text: &str, terms: &[String], question: &str, passages: &[Passage]) -> Option<&'static str> {
    if terms.len() < 2 {
        return Some("too few content words");
    }
    if text.trim_end().ends_with('?') {
        return Some("a question, not an answer");
    }
    if text.contains('›') || passages.iter().any(|p| !p.hit.heading.is_empty() && text.trim_end_matches('.').trim() == p.hit.heading.trim()) {
        return Some("repeats a source heading");
    }
    if jaccard(text, question) > 0.75 {
        return Some("repeats the question");
    }
    None
}

/// Whether [`check`] could keep `sentence` at all: false when its form fails or when even a
/// perfect cosine could not lift its lexical support to `threshold` — then the sentence need not
/// be embedded (the verdict is the same without its vector).
pub fn needs_embedding(sentence: &str, question: &str, passages: &[Passage], lexical_weight: f32, threshold: f32) -> bool {
    let text = strip_markers(sentence);
    let lang = language(&text);
    let terms = answer_terms(&text, lang);
    if form_failure(&text, &terms, question, passages).is_some() {
        return false;
    }
    passages.iter().any(|p| {
        let pl = p.lang();
        let t = if pl == lang { terms.clone() } else { content_terms(&text, pl) };
        let lexical = coverage(&t, &term_set(&format!("{} {}", p.hit.heading, p.hit.text), pl), pl);
        lexical_weight * lexical + (1.0 - lexical_weight) >= threshold
    })
}

/// Checks one answer sentence against the passages.
pub fn check(
    sentence: &str,
    svec: Option<&[f32]>,
    qvec: Option<&[f32]>,
    question: &str,
    passages: &[Passage],
    lexical_weight: f32,
    threshold: f32,
) -> SentenceCheck {
    let text = strip_markers(sentence);
    let mut c = SentenceCheck { text: text.clone(), passage: None, lexical: 0.0, cosine: 0.0, support: 0.0, kept: false, dropped: None };
    let lang = language(&text);
    let terms = answer_terms(&text, lang);
    if let Some(why) = form_failure(&text, &terms, question, passages) {
        c.dropped = Some(why.into());
        return c;
    }
    // it must address the question: share a word with it, carry a number, or be close in meaning
    let q_terms = content_terms(question, lang);
    let about = coverage(&q_terms, &term_set(&text, lang), lang) > 0.0
        || !crate::text::numbers(&text).is_empty()
        || matches!((svec, qvec), (Some(a), Some(b)) if a.len() == b.len() && dot(a, b) >= 0.35);
    if !about {
        c.dropped = Some("does not address the question".into());
        return c;
    }
    for (i, p) in passages.iter().enumerate() {
        let pl = p.lang();
        let t = if pl == lang { terms.clone() } else { content_terms(&text, pl) };
        let lexical = coverage(&t, &term_set(&format!("{} {}", p.hit.heading, p.hit.text), pl), pl);
        let cosine = match svec {
            Some(v) if v.len() == p.embedding.len() => dot(v, &p.embedding).max(0.0),
            _ => 0.0,
        };
        let support = lexical_weight * lexical + (1.0 - lexical_weight) * cosine;
        if support > c.support {
            c.passage = Some(i);
            c.lexical = lexical;
            c.cosine = cosine;
            c.support = support;
        }
    }
    let missing: Vec<String> = match c.passage {
        Some(i) => {
            let have = crate::text::numbers(&passages[i].hit.text);
            crate::text::numbers(&text).into_iter().filter(|n| !have.contains(n)).collect()
        }
        None => Vec::new(),
    };
    if !missing.is_empty() {
        c.dropped = Some(format!("number {} is not in the source", missing.join(", ")));
    } else if c.support >= threshold {
        c.kept = true;
    } else {
        c.dropped = Some(format!("support {:.2} below {:.2}", c.support, threshold));
    }
    c
}

/// The passages' sentences that best match the question: (sentence, passage index).
pub fn extractive(passages: &[Passage], n: usize) -> Vec<(String, usize)> {
    let mut cands: Vec<(f32, usize, usize, String)> = Vec::new();
    for (pi, p) in passages.iter().enumerate() {
        let lang = p.lang();
        for (si, s) in sentences(&p.text).into_iter().enumerate() {
            if s.split_whitespace().count() < 3 {
                continue;
            }
            // prefer the better passage and earlier sentences on ties
            let score = weighted_coverage(&p.q_terms, &term_set(&s, lang), lang) + 0.05 * p.evidence - 0.001 * si as f32;
            cands.push((score, pi, si, s.to_string()));
        }
    }
    cands.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut picked: Vec<(f32, usize, usize, String)> = cands.into_iter().filter(|c| c.0 > 0.0).take(n).collect();
    // keep only sentences near the best one's score
    if let Some(best) = picked.first().map(|c| c.0) {
        picked.retain(|c| c.0 >= best * 0.9);
    }
    picked.sort_by_key(|c| (c.1, c.2));
    picked.into_iter().map(|c| (c.3, c.1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::score;

    fn passages() -> Vec<Passage> {
        let mk = |id: i64, text: &str| {
            let mut h = crate::pack::tests::hit(id, text);
            h.heading = String::new();
            (h, vec![])
        };
        score(
            "How many vacation days do full-time employees get?",
            &[],
            vec![
                mk(1, "Full-time employees get 30 working days of paid vacation per calendar year. Part-time employees get a pro-rated amount."),
                mk(2, "Report sick to your manager before 9:30 on the first day."),
            ],
            1.0,
            &|_| 1.0,
        )
    }

    fn check_(s: &str, _: Option<&[f32]>, q: &str, p: &[Passage], w: f32, t: f32) -> SentenceCheck {
        check(s, None, None, q, p, w, t)
    }

    #[test]
    fn numbers_must_come_from_the_source_and_sentences_must_address_the_question() {
        let p = passages();
        let q = "How many vacation days do full-time employees get?";
        let wrong = check_("Full-time employees get 70 working days of paid vacation per calendar year.", None, q, &p, 1.0, 0.45);
        assert!(!wrong.kept);
        assert!(wrong.dropped.as_deref().unwrap().contains("number 70"), "{wrong:?}");
        let off = check_("Report sick to your manager.", None, q, &p, 1.0, 0.45);
        assert_eq!(off.dropped.as_deref(), Some("does not address the question"));
    }

    #[test]
    fn strips_model_markers() {
        assert_eq!(strip_markers("You get 30 days [1][2]. More [3, 4] text【x】"), "You get 30 days. More text【x】");
        assert_eq!(strip_markers("Array [a] stays"), "Array [a] stays");
    }

    #[test]
    fn keeps_supported_sentences_and_drops_invented_ones() {
        let p = passages();
        let q = "How many vacation days do full-time employees get?";
        let ok = check_("Full-time employees get 30 days of paid vacation [2].", None, q, &p, 1.0, 0.45);
        assert!(ok.kept, "{ok:?}");
        assert_eq!(p[ok.passage.unwrap()].hit.chunk_id, 1);
        assert_eq!(ok.text, "Full-time employees get 30 days of paid vacation.");
        let bad = check_("The moon is made of green cheese.", None, q, &p, 1.0, 0.45);
        assert!(!bad.kept);
        let echo = check_("How many vacation days do full-time employees get.", None, q, &p, 1.0, 0.45);
        assert_eq!(echo.dropped.as_deref(), Some("repeats the question"));
        let asks = check_("Do full-time employees get paid vacation days?", None, q, &p, 1.0, 0.45);
        assert_eq!(asks.dropped.as_deref(), Some("a question, not an answer"));
        let filler = check_("The answer to this question would be.", None, q, &p, 1.0, 0.45);
        assert_eq!(filler.dropped.as_deref(), Some("too few content words"));
        let head = check_("Vacation policy › Vacation days", None, q, &p, 1.0, 0.45);
        assert_eq!(head.dropped.as_deref(), Some("repeats a source heading"));
        let sick = check_("Report sick before 9:30.", None, q, &p, 1.0, 0.45);
        assert_eq!(p[sick.passage.unwrap()].hit.chunk_id, 2);
    }

    #[test]
    fn extractive_answer_takes_the_matching_sentence() {
        let p = passages();
        let ex = extractive(&p, 2);
        assert_eq!(ex[0].0, "Full-time employees get 30 working days of paid vacation per calendar year.");
    }

    #[test]
    fn sentences_that_cannot_pass_are_not_embedded_and_keep_their_verdict() {
        let ps = passages();
        let q = "How many vacation days do full-time employees get?";
        // unrelated words: no perfect cosine could lift it; a question: fails on its form
        for s in ["Bananas are yellow and penguins swim.", "How many vacation days?"] {
            assert!(!needs_embedding(s, q, &ps, 0.6, 0.55), "{s}");
            assert!(!check(s, None, None, q, &ps, 0.6, 0.55).kept, "{s}");
        }
        assert!(needs_embedding("Full-time employees get 30 vacation days.", q, &ps, 0.6, 0.55));
    }
}
