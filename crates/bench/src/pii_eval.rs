//! Scoring of PII detections against a gold set (`tresor eval pii`):
//! per-type precision, recall and F1, micro totals, overall and per
//! language (the cases' `lang`), under two matching
//! rules. *exact*: same type and the same start and end. *overlap*: same
//! type and at least one character in common (a prediction counts as
//! correct when it overlaps a gold span, a gold span as found when a
//! prediction overlaps it). Gold types Tresor does not detect (LOCATION,
//! ORGANIZATION, NRP, ...) are ignored, and so are predictions of types the
//! gold set never uses. Detector-agnostic: the predictions of Presidio are
//! scored by the same code.
//!
//! Owns the matching rules and the scores; never runs a detector (the caller
//! passes the predictions) and never asserts a score.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use tresor_guard::pii::PiiType;

/// One evaluation case (`cases.jsonl` line).
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub id: String,
    #[serde(default)]
    pub lang: String,
    pub text: String,
    #[serde(default)]
    pub spans: Vec<GoldSpan>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GoldSpan {
    pub start: usize,
    pub end: usize,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A predicted span in code points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pred {
    pub start: usize,
    pub end: usize,
    pub kind: PiiType,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Counts {
    /// predictions that match a gold span
    pub tp: usize,
    /// predictions that match none
    pub fp: usize,
    /// gold spans found
    pub found: usize,
    /// gold spans
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Counts {
    fn finish(&mut self) {
        let preds = self.tp + self.fp;
        self.precision = if preds == 0 { if self.support == 0 { 1.0 } else { 0.0 } } else { self.tp as f64 / preds as f64 };
        self.recall = if self.support == 0 { 1.0 } else { self.found as f64 / self.support as f64 };
        self.f1 = if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        };
        for v in [&mut self.precision, &mut self.recall, &mut self.f1] {
            *v = (*v * 1000.0).round() / 1000.0;
        }
    }

    fn add(&mut self, o: &Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.found += o.found;
        self.support += o.support;
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Scores {
    pub per_type: BTreeMap<String, Counts>,
    pub micro: Counts,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub exact: Scores,
    pub overlap: Scores,
    /// The same scores per language (`lang` of the cases; `""` when unset).
    pub per_lang: BTreeMap<String, LangReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LangReport {
    pub cases: usize,
    pub exact: Scores,
    pub overlap: Scores,
}

/// Gold spans of a case that Tresor has a type for.
pub fn gold(case: &Case) -> Vec<Pred> {
    case.spans
        .iter()
        .filter_map(|g| PiiType::from_name(&g.kind).map(|kind| Pred { start: g.start, end: g.end, kind }))
        .collect()
}

/// Scores `preds[i]` against `cases[i]`, overall and per language.
pub fn score(cases: &[Case], preds: &[Vec<Pred>]) -> Report {
    let (exact, overlap) = score_flat(cases, preds);
    let mut per_lang = BTreeMap::new();
    let langs: std::collections::BTreeSet<&str> = cases.iter().map(|c| c.lang.as_str()).collect();
    for lang in langs {
        let (cs, ps): (Vec<Case>, Vec<Vec<Pred>>) =
            cases.iter().zip(preds).filter(|(c, _)| c.lang == lang).map(|(c, p)| (c.clone(), p.clone())).unzip();
        let (exact, overlap) = score_flat(&cs, &ps);
        per_lang.insert(lang.to_string(), LangReport { cases: cs.len(), exact, overlap });
    }
    Report { exact, overlap, per_lang }
}

fn score_flat(cases: &[Case], preds: &[Vec<Pred>]) -> (Scores, Scores) {
    let golds: Vec<Vec<Pred>> = cases.iter().map(gold).collect();
    let gold_types: std::collections::BTreeSet<PiiType> = golds.iter().flatten().map(|g| g.kind).collect();
    let mut report = (Scores::default(), Scores::default());
    for (exact, scores) in [(true, &mut report.0), (false, &mut report.1)] {
        let mut per: BTreeMap<PiiType, Counts> = gold_types.iter().map(|&t| (t, Counts::default())).collect();
        for (g, p) in golds.iter().zip(preds) {
            let hit = |a: &Pred, b: &Pred| {
                a.kind == b.kind && if exact { a.start == b.start && a.end == b.end } else { a.start < b.end && b.start < a.end }
            };
            for gs in g {
                let c = per.get_mut(&gs.kind).unwrap();
                c.support += 1;
                if p.iter().any(|ps| hit(ps, gs)) {
                    c.found += 1;
                }
            }
            for ps in p {
                let Some(c) = per.get_mut(&ps.kind) else { continue };
                if g.iter().any(|gs| hit(ps, gs)) {
                    c.tp += 1;
                } else {
                    c.fp += 1;
                }
            }
        }
        let mut micro = Counts::default();
        for (t, mut c) in per {
            micro.add(&c);
            c.finish();
            scores.per_type.insert(t.as_str().to_string(), c);
        }
        micro.finish();
        scores.micro = micro;
    }
    report
}

/// Parses JSONL cases; a bad line is an error naming the line.
pub fn parse_cases(jsonl: &str) -> Result<Vec<Case>, String> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str::<Case>(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_overlap_scoring() {
        let cases = parse_cases(
            r#"{"id":"a","text":"Anna Berg, anna@x.de","spans":[{"start":0,"end":9,"type":"PERSON"},{"start":11,"end":20,"type":"EMAIL"},{"start":0,"end":4,"type":"LOCATION"}]}
{"id":"b","text":"nothing","spans":[]}"#,
        )
        .unwrap();
        let preds = vec![
            vec![Pred { start: 0, end: 4, kind: PiiType::Person }, Pred { start: 11, end: 20, kind: PiiType::Email }],
            vec![Pred { start: 0, end: 7, kind: PiiType::Email }],
        ];
        let r = score(&cases, &preds);
        assert_eq!(r.per_lang.len(), 1, "both cases have no lang");
        assert_eq!(r.per_lang[""].overlap, r.overlap);
        assert_eq!(r.exact.per_type["PERSON"].recall, 0.0);
        assert_eq!(r.overlap.per_type["PERSON"].recall, 1.0);
        assert_eq!(r.exact.per_type["EMAIL"].precision, 0.5);
        assert_eq!(r.overlap.micro.support, 2, "LOCATION is not counted");
        assert_eq!(r.overlap.micro.tp, 2);
        assert_eq!(r.overlap.micro.fp, 1);
        assert!(parse_cases("{bad").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn per_language_scores_split_the_cases() {
        let cases = parse_cases(
            r#"{"id":"d","lang":"de","text":"Herr Max Roth","spans":[{"start":5,"end":13,"type":"PERSON"}]}
{"id":"e","lang":"en","text":"Mr Sam Lee","spans":[{"start":3,"end":10,"type":"PERSON"}]}"#,
        )
        .unwrap();
        let preds = vec![vec![Pred { start: 5, end: 13, kind: PiiType::Person }], vec![Pred { start: 0, end: 2, kind: PiiType::Person }]];
        let r = score(&cases, &preds);
        assert_eq!(r.per_lang["de"].overlap.per_type["PERSON"].recall, 1.0);
        assert_eq!(r.per_lang["en"].overlap.per_type["PERSON"].recall, 0.0);
        assert_eq!(r.per_lang["en"].overlap.micro.fp, 1);
        assert_eq!(r.overlap.micro.recall, 0.5);
        assert_eq!(r.per_lang["de"].cases, 1);
    }
}
