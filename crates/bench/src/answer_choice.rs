//! Fitting and measuring the answer-sentence choice (`tresor eval answers
//! --fit-choice`): for every answerable gold question, the engine's candidate
//! sentences with their features (`Assistant::answer_candidates`, no model
//! generates anything); the weights of `tresor_assistant::choice` are
//! searched on a grid to maximise "the chosen sentences hold the reference"
//! on the fit half of the documents, and every weighting is reported on the
//! held-out half as well, per language — beside the old choice (lexical
//! coverage and passage rank only) and the weights the engine ships
//! ([`choice::FITTED`]).
//!
//! Owns: the grid, the objective and their table. Never: changes the
//! shipped weights (a person copies them into `choice.rs`), or asserts a score.

use std::collections::BTreeMap;

use serde::Serialize;
use tresor_assistant::choice::{self, Candidate, ChoiceWeights};
use tresor_assistant::{Assistant, Result};

use crate::answer_eval::{half_of, lang_of, Split};
use crate::retrieval_eval::GoldItem;

/// One answerable question's candidates and references.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: String,
    pub lang: String,
    pub half: Split,
    pub refs: Vec<String>,
    pub candidates: Vec<Candidate>,
}

/// Share of questions answered (chosen sentences hold a reference), per half and language.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Scores {
    /// "fit/en", "held-out/de", "fit/all", … → share.
    pub share: BTreeMap<String, f32>,
    /// Questions behind each share.
    pub n: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub weights: ChoiceWeights,
    pub scores: Scores,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChoiceReport {
    /// Questions whose packed passages hold the reference at all (the ceiling of any choice).
    pub reachable: Scores,
    pub rows: Vec<Row>,
    /// How many sentences the answer takes (the engine's `extractive_sentences`).
    pub sentences: usize,
}

fn norm(s: &str) -> String {
    tresor_kb::analyze::words(&s.to_lowercase()).collect::<Vec<_>>().join(" ")
}

fn holds(text: &str, refs: &[String]) -> bool {
    let t = norm(text);
    refs.iter().any(|r| !norm(r).is_empty() && t.contains(&norm(r)))
}

/// The candidates of every answerable question of `gold` (asked against `kb`).
pub fn collect(assistant: &mut Assistant, kb: &str, gold: &[GoldItem], progress: &mut dyn FnMut(&str)) -> Result<Vec<Question>> {
    let mut out = Vec::new();
    for (i, g) in gold.iter().enumerate() {
        if !g.answerable {
            continue;
        }
        let refs: Vec<String> = if g.answers.is_empty() { g.answer.clone().into_iter().collect() } else { g.answers.clone() };
        let candidates = assistant.answer_candidates(kb, &g.question)?;
        progress(&format!("{:<16} {} candidates", g.id, candidates.len()));
        out.push(Question { id: g.id.clone(), lang: lang_of(&g.question), half: half_of(gold, i), refs, candidates });
    }
    Ok(out)
}

/// How `w` does on the questions, per half and language.
pub fn score(qs: &[Question], w: &ChoiceWeights, n: usize) -> Scores {
    let mut hit: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for q in qs {
        let chosen = choice::choose(&q.candidates, w, n);
        let ok = holds(&chosen.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(" "), &q.refs);
        for key in [format!("{}/{}", q.half.as_str(), q.lang), format!("{}/all", q.half.as_str())] {
            let e = hit.entry(key).or_default();
            e.0 += ok as usize;
            e.1 += 1;
        }
    }
    Scores { share: hit.iter().map(|(k, (a, b))| (k.clone(), *a as f32 / *b as f32)).collect(), n: hit.iter().map(|(k, (_, b))| (k.clone(), *b)).collect() }
}

/// The grid searched (every combination).
fn grid() -> Vec<ChoiceWeights> {
    let mut v = Vec::new();
    for cosine in [0.0, 0.5, 1.0, 1.5, 2.0] {
        for answer_type in [0.0, 0.1, 0.2, 0.3, 0.5, 0.8] {
            for rank in [0.0, 0.1, 0.2, 0.4, 0.8] {
                for lexical in [0.0, 0.25, 0.5, 1.0, 1.5] {
                    v.push(ChoiceWeights { cosine, answer_type, rank, lexical });
                }
            }
        }
    }
    v
}

/// Fits on the fit half (mean share over its languages) and reports both halves.
pub fn fit(qs: &[Question], n: usize) -> ChoiceReport {
    // every language counts the same (mean of the per-language shares on the fit half); ties go to
    // the weights whose single best sentence holds the reference more often
    let fit_share = |s: &Scores| {
        let v: Vec<f32> = s.share.iter().filter(|(k, _)| k.starts_with("fit/") && *k != "fit/all").map(|(_, v)| *v).collect();
        if v.is_empty() { 0.0 } else { v.iter().sum::<f32>() / v.len() as f32 }
    };
    let mut best: Option<((f32, f32), ChoiceWeights, Scores)> = None;
    for w in grid() {
        let s = score(qs, &w, n);
        let f = (fit_share(&s), fit_share(&score(qs, &w, 1)));
        if best.as_ref().is_none_or(|(b, _, _)| f.0 > b.0 + 1e-6 || (f.0 > b.0 - 1e-6 && f.1 > b.1 + 1e-6)) {
            best = Some((f, w, s));
        }
    }
    let (_, bw, bs) = best.unwrap_or(((0.0, 0.0), choice::FITTED, Scores::default()));
    let old = ChoiceWeights { cosine: 0.0, answer_type: 0.0, rank: 0.05, lexical: 1.0 };
    let mut reach: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for q in qs {
        let ok = q.candidates.iter().any(|c| holds(&c.text, &q.refs));
        for key in [format!("{}/{}", q.half.as_str(), q.lang), format!("{}/all", q.half.as_str())] {
            let e = reach.entry(key).or_default();
            e.0 += ok as usize;
            e.1 += 1;
        }
    }
    ChoiceReport {
        reachable: Scores { share: reach.iter().map(|(k, (a, b))| (k.clone(), *a as f32 / *b as f32)).collect(), n: reach.iter().map(|(k, (_, b))| (k.clone(), *b)).collect() },
        rows: vec![
            Row { name: "old: lexical coverage + rank".into(), weights: old, scores: score(qs, &old, n) },
            Row { name: "shipped (choice::FITTED)".into(), weights: choice::FITTED, scores: score(qs, &choice::FITTED, n) },
            Row { name: "best on the fit half (this run)".into(), weights: bw, scores: bs },
            Row { name: "cosine only".into(), weights: ChoiceWeights { cosine: 1.0, answer_type: 0.0, rank: 0.0, lexical: 0.0 }, scores: score(qs, &ChoiceWeights { cosine: 1.0, answer_type: 0.0, rank: 0.0, lexical: 0.0 }, n) },
        ],
        sentences: n,
    }
}

pub fn table(r: &ChoiceReport) -> String {
    let keys: Vec<String> = r.reachable.share.keys().cloned().collect();
    let mut s = format!("Chosen answer sentences ({} at most) hold the reference; fit = documents the weights were fitted on, held-out = the others.\n\n| choice | weights (cosine, type, rank, lexical) |", r.sentences);
    for k in &keys {
        s.push_str(&format!(" {k} ({}) |", r.reachable.n.get(k).copied().unwrap_or(0)));
    }
    s.push_str(&format!("\n|---|---|{}\n", "---|".repeat(keys.len())));
    let mut line = |name: &str, w: Option<&ChoiceWeights>, sc: &Scores| {
        let ws = w.map(|w| format!("{}, {}, {}, {}", w.cosine, w.answer_type, w.rank, w.lexical)).unwrap_or_default();
        s.push_str(&format!("| {name} | {ws} |"));
        for k in &keys {
            s.push_str(&format!(" {:.3} |", sc.share.get(k).copied().unwrap_or(0.0)));
        }
        s.push('\n');
    };
    line("reachable (some candidate holds it)", None, &r.reachable);
    for row in &r.rows {
        line(&row.name, Some(&row.weights), &row.scores);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(text: &str, cosine: f32, answer_type: f32, lexical: f32) -> Candidate {
        Candidate { text: text.into(), passage: 0, index: 0, cosine, answer_type, rank: 1.0, lexical }
    }

    #[test]
    fn the_fit_is_chosen_on_the_fit_half_and_reported_on_both() {
        // fit: the answer is the sentence with the answer type, not the one sharing words
        let q = |half, id: &str| Question {
            id: id.into(),
            lang: "en".into(),
            half,
            refs: vec!["120 EUR".into()],
            candidates: vec![cand("Taxis are allowed at night on trips.", 0.5, 0.0, 0.9), cand("The hotel limit is 120 EUR per night.", 0.5, 1.0, 0.4)],
        };
        let qs = vec![q(Split::Fit, "a"), q(Split::Fit, "b"), q(Split::HeldOut, "c")];
        let r = fit(&qs, 1);
        let best = r.rows.iter().find(|r| r.name.starts_with("best")).unwrap();
        assert_eq!(best.scores.share["fit/all"], 1.0);
        assert_eq!(best.scores.share["held-out/en"], 1.0);
        let old = &r.rows[0];
        assert_eq!(old.scores.share["fit/all"], 0.0, "lexical coverage alone picks the taxi sentence");
        assert_eq!(r.reachable.n["fit/all"], 2);
        assert!(table(&r).contains("| held-out/en (1) |"));
    }
}
