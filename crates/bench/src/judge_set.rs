//! Builds a labelled set for the judge ([`crate::judge::JudgeItem`]) from a
//! RAG gold set (shared/eval/rag_goldset_dev format: `question`, `answer`,
//! `answer_spans`, `source_file`, `reference_context`, `answerable`), so the
//! judge's agreement can be measured without hand labels
//! (`tresor eval judge-set`, and `tresor eval judge` on a RAG gold set).
//!
//! Per answerable question: one **faithful** answer — the sentence of the
//! reference passage that holds the gold answer, verbatim — and one
//! **unfaithful** answer made from it by one corruption, taken in turn from
//! those that apply: `number` (a number changed), `name` (a name swapped
//! for one from another passage), `negation` (the claim negated), `foreign`
//! (a sentence from another document's passage, cited with this one's
//! passage). Per unanswerable question: a refusal (faithful) and an
//! `invented` answer without any passage (unfaithful). Each question goes
//! with both its answers to the `dev` or the `heldout` part, by a hash of its
//! id (about `heldout_share` of them held out).
//!
//! Owns: the corruptions and the split. Never: calls a model; deterministic
//! for a given gold set.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::judge::{JudgeItem, Passage};

#[derive(Debug, Clone, Deserialize)]
struct RagItem {
    id: String,
    question: String,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    answers: Vec<String>,
    #[serde(default = "yes")]
    answerable: bool,
    source_file: Option<String>,
    #[serde(default)]
    reference_context: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

fn yes() -> bool {
    true
}

/// True when `text` (a JSONL gold file) looks like a RAG gold set rather
/// than a labelled judge set: its first item has no `label`.
pub fn is_rag_goldset(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .is_some_and(|v| v.get("label").is_none() && v.get("question").is_some())
}

fn held_out(id: &str, share: f64) -> bool {
    let h = Sha256::digest(id.as_bytes());
    let x = u16::from_be_bytes([h[0], h[1]]) as f64 / 65536.0;
    x < share
}

const NUMBER_WORDS: &[(&str, &str)] = &[
    ("once", "twice"),
    ("twice", "three times"),
    ("one", "three"),
    ("two", "four"),
    ("three", "five"),
    ("four", "six"),
    ("five", "seven"),
    ("six", "eight"),
    ("seven", "nine"),
    ("eight", "ten"),
    ("ten", "fifteen"),
    ("twelve", "eighteen"),
];

/// Changes the first number (digits, or a number word) in `s`.
fn corrupt_number(s: &str) -> Option<String> {
    // digits: add a non-zero amount that keeps the width plausible
    let b = s.as_bytes();
    if let Some(start) = b.iter().position(u8::is_ascii_digit) {
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        let n: u64 = s[start..end].parse().ok()?;
        let m = if n < 10 { n + 2 } else { n + n / 2 + 1 };
        return Some(format!("{}{}{}", &s[..start], m, &s[end..]));
    }
    for (w, to) in NUMBER_WORDS {
        if let Some(i) = find_word(s, w) {
            let orig = &s[i..i + w.len()];
            let to = if orig.chars().next().is_some_and(char::is_uppercase) { capitalise(to) } else { to.to_string() };
            return Some(format!("{}{}{}", &s[..i], to, &s[i + w.len()..]));
        }
    }
    None
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// Byte offset of `w` as a whole word in `s`, case-insensitively.
fn find_word(s: &str, w: &str) -> Option<usize> {
    let low = s.to_lowercase();
    if low.len() != s.len() {
        return None;
    }
    let mut from = 0;
    while let Some(i) = low[from..].find(w) {
        let (a, e) = (from + i, from + i + w.len());
        let before = a == 0 || !low[..a].chars().next_back().is_some_and(char::is_alphanumeric);
        let after = e >= low.len() || !low[e..].chars().next().is_some_and(char::is_alphanumeric);
        if before && after {
            return Some(a);
        }
        from = e;
    }
    None
}

/// Capitalised words of `s` that do not start it (candidate names).
fn names_in(s: &str) -> Vec<String> {
    tresor_text::words(s)
        .skip(1)
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase) && w.chars().count() > 2 && w.chars().skip(1).all(char::is_lowercase))
        .filter(|w| !tresor_text::is_stopword(&w.to_lowercase()))
        .map(str::to_string)
        .collect()
}

/// Swaps the first name of `s` for a name of `pool` that `passage` lacks.
fn corrupt_name(s: &str, passage: &str, pool: &[String]) -> Option<String> {
    let name = names_in(s).into_iter().next()?;
    let other = pool.iter().find(|p| **p != name && !passage.contains(p.as_str()))?;
    let i = find_word(s, &name.to_lowercase())?;
    Some(format!("{}{}{}", &s[..i], other, &s[i + name.len()..]))
}

const NEGATIONS: &[(&str, &str)] = &[
    (" is ", " is not "),
    (" are ", " are not "),
    (" will ", " will not "),
    (" can ", " cannot "),
    (" must ", " must not "),
    (" should ", " should not "),
    (" have ", " do not have "),
    (" has ", " does not have "),
    (" always ", " never "),
];

fn corrupt_negation(s: &str) -> Option<String> {
    NEGATIONS.iter().find(|(a, _)| s.contains(a)).map(|(a, b)| s.replacen(a, b, 1))
}

/// The sentence of `context` that holds `answer` (else the answer itself).
fn answer_sentence(context: &str, answer: &str) -> String {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let a = norm(answer);
    tresor_text::sentences(context).into_iter().map(norm).find(|s| s.contains(&a)).unwrap_or(a)
}

/// The labelled set built from a RAG gold set file.
pub fn build(goldset: &Path, heldout_share: f64) -> Result<Vec<JudgeItem>, String> {
    let text = std::fs::read_to_string(goldset).map_err(|e| format!("{}: {e}", goldset.display()))?;
    let mut rag = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let it: RagItem = serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", goldset.display(), i + 1))?;
        rag.push(it);
    }
    let usable = |r: &RagItem| r.answerable && r.reference_context.as_deref().is_some_and(|c| !c.trim().is_empty()) && r.source_file.is_some();
    let pool: Vec<String> = {
        let mut p: Vec<String> = rag.iter().filter(|r| usable(r)).flat_map(|r| names_in(r.reference_context.as_deref().unwrap_or(""))).collect();
        p.sort();
        p.dedup();
        p
    };
    let sentences: Vec<(String, String)> = rag
        .iter()
        .filter(|r| usable(r))
        .map(|r| (r.source_file.clone().unwrap_or_default(), answer_sentence(r.reference_context.as_deref().unwrap_or(""), &reference(r))))
        .collect();
    let mut out = Vec::new();
    for (i, r) in rag.iter().enumerate() {
        let split = if held_out(&r.id, heldout_share) { "heldout" } else { "dev" }.to_string();
        let base = |answer: String, passages: Vec<Passage>, label: &str, corruption: Option<&str>, suffix: &str| JudgeItem {
            id: format!("{}#{suffix}", r.id),
            question: r.question.clone(),
            answer,
            passages,
            refused: None,
            answerable: r.answerable,
            label: label.into(),
            split: split.clone(),
            corruption: corruption.map(str::to_string),
            lang: r.lang.clone(),
        };
        if !r.answerable {
            let invented = sentences
                .iter()
                .cycle()
                .skip(i)
                .take(sentences.len())
                .find(|(_, s)| s.split_whitespace().count() >= 6 && !s.starts_with('#'))
                .map(|s| s.1.clone())
                .unwrap_or_else(|| "It is 42 days, as the handbook says.".into());
            out.push(base(tresor_text_refusal(r.lang.as_deref()), Vec::new(), "faithful", None, "refusal"));
            out.push(base(invented, Vec::new(), "unfaithful", Some("invented"), "invented"));
            continue;
        }
        if !usable(r) {
            continue;
        }
        let context = r.reference_context.clone().unwrap_or_default();
        let source = r.source_file.clone().unwrap_or_default();
        let passages = vec![Passage { source: source.clone(), text: context.clone() }];
        let good = answer_sentence(&context, &reference(r));
        let mut options: Vec<(&str, String)> = Vec::new();
        if let Some(s) = corrupt_number(&good) {
            options.push(("number", s));
        }
        if let Some(s) = corrupt_name(&good, &context, &pool) {
            options.push(("name", s));
        }
        if let Some(s) = corrupt_negation(&good) {
            options.push(("negation", s));
        }
        let prose = |s: &str| s.split_whitespace().count() >= 6 && !s.starts_with('#') && !s.starts_with('|');
        if let Some((_, s)) = sentences.iter().cycle().skip(i + 7).take(sentences.len()).find(|(src, s)| *src != source && prose(s) && !context.contains(s.as_str())) {
            options.push(("foreign", s.clone()));
        }
        out.push(base(good, passages.clone(), "faithful", None, "ok"));
        if !options.is_empty() {
            let (kind, bad) = options.swap_remove(i % options.len());
            out.push(base(bad, passages, "unfaithful", Some(kind), kind));
        }
    }
    if out.is_empty() {
        return Err(format!("{}: no item with a reference_context to build answers from", goldset.display()));
    }
    Ok(out)
}

fn reference(r: &RagItem) -> String {
    r.answers.first().cloned().or_else(|| r.answer.clone()).unwrap_or_default()
}

fn tresor_text_refusal(lang: Option<&str>) -> String {
    match lang {
        Some("de") => "Dazu habe ich in Ihren Dokumenten keine Antwort gefunden.".into(),
        _ => "I could not find an answer to this in your documents.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruptions_change_the_claim() {
        assert_eq!(corrupt_number("Meet-ups are 1 week long.").unwrap(), "Meet-ups are 3 week long.");
        assert_eq!(corrupt_number("We pay $1000 a year.").unwrap(), "We pay $1501 a year.");
        assert_eq!(corrupt_number("We meet twice a year.").unwrap(), "We meet three times a year.");
        assert!(corrupt_number("No numbers here.").is_none());
        let pool = vec!["Andrea".to_string(), "Jason".to_string()];
        assert_eq!(corrupt_name("You meet with Andrea today.", "Andrea explains", &pool).unwrap(), "You meet with Jason today.");
        assert_eq!(corrupt_negation("The COO is in charge.").unwrap(), "The COO is not in charge.");
        assert_eq!(answer_sentence("First thing. Most people are up to speed in about 3 months. Then more.", "about 3 months"), "Most people are up to speed in about 3 months.");
    }

    #[test]
    fn builds_balanced_items_from_a_rag_goldset_with_a_stable_split() {
        let d = tempfile::tempdir().unwrap();
        let g = d.path().join("g.jsonl");
        let lines = [
            r#"{"id":"a","question":"How long?","answer":"about 3 months","answerable":true,"source_file":"docs/x.md","reference_context":"Intro. People are up to speed in about 3 months.","lang":"en"}"#,
            r#"{"id":"b","question":"Who runs it?","answer":"Jason","answerable":true,"source_file":"docs/y.md","reference_context":"The meeting is run by Jason Fried every week.","lang":"en"}"#,
            r#"{"id":"c","question":"What is the moon made of?","answer":null,"answerable":false,"source_file":null,"reference_context":null,"lang":"en"}"#,
        ];
        std::fs::write(&g, lines.join("\n")).unwrap();
        assert!(is_rag_goldset(&lines.join("\n")));
        assert!(!is_rag_goldset(r#"{"id":"x","question":"q","answer":"a","label":"faithful"}"#));
        let items = build(&g, 0.5).unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(items.iter().filter(|i| i.faithful()).count(), 3);
        assert_eq!(items[0].answer, "People are up to speed in about 3 months.");
        assert_eq!(items[0].passages[0].source, "docs/x.md");
        assert!(items[1].corruption.is_some() && items[1].answer != items[0].answer);
        assert_eq!(items[4].answer, "I could not find an answer to this in your documents.");
        assert!(items[5].passages.is_empty() && items[5].corruption.as_deref() == Some("invented"));
        // both answers of a question share its split, and the split is deterministic
        for pair in items.chunks(2) {
            assert_eq!(pair[0].split, pair[1].split);
        }
        assert_eq!(build(&g, 0.5).unwrap(), items);
        assert!(build(&g, 0.0).unwrap().iter().all(|i| i.split == "dev"));
        assert!(build(&g, 1.0).unwrap().iter().all(|i| i.split == "heldout"));
    }
}
