//! LLM-as-judge with heuristics beside it (`tresor eval judge`): a judge
//! model grades an answer's faithfulness to the passages it cites and its
//! relevance to the question with a fixed rubric, answering one JSON verdict
//! under a JSON-Schema grammar; cheap heuristics check the same answer
//! (every number and name in it occurs in a cited passage, how much of it
//! the passages cover, whether a refusal is right). Both, and their
//! combination, are compared with gold labels: Cohen's kappa and confusion
//! matrices, on the labelled set's dev and held-out parts, so nobody trusts
//! a judge blindly. A sample of verdicts exports for human review.
//!
//! Owns: the labelled-item format ([`JudgeItem`]), the rubric and verdict
//! schema, the heuristics, kappa, the combination rule and the report.
//! Never: loads a model (the caller passes a [`Grader`]) or asserts a score.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tresor_text::Lang;

/// A cited passage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Passage {
    /// The document it comes from, relative to the docs folder (`docs/x.md` or `x.md`).
    pub source: String,
    pub text: String,
}

/// One labelled answer: the question, the passages the answer cites, the
/// answer, and whether it is faithful to them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JudgeItem {
    pub id: String,
    pub question: String,
    pub answer: String,
    #[serde(default)]
    pub passages: Vec<Passage>,
    /// The answer is a refusal ("not in your documents"). Default: detected from its text.
    #[serde(default)]
    pub refused: Option<bool>,
    /// Whether the documents answer the question (false: a refusal is the right answer).
    #[serde(default = "yes")]
    pub answerable: bool,
    /// "faithful" or "unfaithful".
    pub label: String,
    /// "dev" (rules tuned here) or "heldout" (reported). Default: dev.
    #[serde(default = "dev")]
    pub split: String,
    /// How an unfaithful answer was made (number, name, negation, foreign, invented), for the breakdown.
    #[serde(default)]
    pub corruption: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
}

fn yes() -> bool {
    true
}
fn dev() -> String {
    "dev".into()
}

impl JudgeItem {
    pub fn faithful(&self) -> bool {
        self.label == "faithful"
    }
    pub fn is_refusal(&self) -> bool {
        self.refused.unwrap_or_else(|| looks_like_refusal(&self.answer))
    }
    fn lang(&self) -> Lang {
        self.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| tresor_text::language(&self.question))
    }
}

/// Reads a labelled set (JSONL); a bad line or label is an error naming FILE:LINE.
pub fn load_items(path: &Path) -> Result<Vec<JudgeItem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_items(&text).map_err(|e| format!("{}:{e}", path.display()))
}

pub fn parse_items(text: &str) -> Result<Vec<JudgeItem>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let it: JudgeItem = serde_json::from_str(line).map_err(|e| format!("{}: {e}", i + 1))?;
        if it.label != "faithful" && it.label != "unfaithful" {
            return Err(format!("{}: label {:?} is neither \"faithful\" nor \"unfaithful\"", i + 1, it.label));
        }
        if it.split != "dev" && it.split != "heldout" {
            return Err(format!("{}: split {:?} is neither \"dev\" nor \"heldout\"", i + 1, it.split));
        }
        out.push(it);
    }
    if out.is_empty() {
        return Err("0: no items".into());
    }
    Ok(out)
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '*' | '_' | '`' | '#'))
        .map(|c| match c {
            '’' | '‘' => '\'',
            '“' | '”' => '"',
            c => c,
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Checks that every passage comes from a file under `docs` that contains
/// its text (whitespace, case and markup ignored): a labelled set that does
/// not match its documents is an error, not a score.
pub fn check_passages(items: &[JudgeItem], docs: &Path) -> Result<(), String> {
    let mut cache: BTreeMap<String, String> = BTreeMap::new();
    for it in items {
        for p in &it.passages {
            let rel = p.source.strip_prefix("docs/").unwrap_or(&p.source);
            let file = docs.join(rel);
            if !cache.contains_key(&p.source) {
                let t = std::fs::read_to_string(&file).map_err(|e| format!("item {}: passage source {}: {e}", it.id, file.display()))?;
                cache.insert(p.source.clone(), squash(&t));
            }
            if !cache[&p.source].contains(&squash(&p.text)) {
                return Err(format!("item {}: its passage is not in {}", it.id, file.display()));
            }
        }
    }
    Ok(())
}

const REFUSALS: &[&str] = &[
    "could not find",
    "couldn't find",
    "can't find",
    "cannot find",
    "not in your documents",
    "no answer to this in your documents",
    "don't know",
    "do not know",
    "keine antwort gefunden",
    "nicht in ihren dokumenten",
    "weiß ich nicht",
];

/// A refusal by its wording (English and German).
pub fn looks_like_refusal(answer: &str) -> bool {
    let a = squash(answer);
    REFUSALS.iter().any(|r| a.contains(r))
}

/// What the heuristics found.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Heuristics {
    pub pass: bool,
    /// Numbers in the answer that no cited passage has.
    pub numbers_missing: Vec<String>,
    /// Names (capitalised words not starting a sentence) that no cited passage has.
    pub names_missing: Vec<String>,
    /// Share of the answer's content words (stemmed) found in the passages.
    pub overlap: f64,
    /// A refusal where the documents have no answer, or an answer where they do; None: not applicable.
    pub refusal_ok: Option<bool>,
    pub reasons: Vec<String>,
}

/// The overlap below which an answer is taken as unsupported.
pub const MIN_OVERLAP: f64 = 0.6;

const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty", "thirty", "fifty",
    "hundred", "thousand", "once", "twice", "half", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn",
];

fn tokens(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '.' || c == ',' || c == '$' || c == '%'))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == ','))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Numbers in `text`: tokens with a digit, and number words.
fn numbers(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tokens(text) {
        let l = t.to_lowercase();
        if t.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&l.as_str()) {
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

/// Names: capitalised words that do not start a sentence, are not stopwords
/// and are not all capitals of one letter ("I").
fn names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in tresor_text::sentences(text) {
        for (i, w) in tresor_text::words(s).enumerate() {
            let first = w.chars().next().unwrap_or(' ');
            if i == 0 || !first.is_uppercase() || w.chars().count() < 2 || tresor_text::is_stopword(&w.to_lowercase()) {
                continue;
            }
            if !out.iter().any(|o| o == w) {
                out.push(w.to_string());
            }
        }
    }
    out
}

fn has_word(hay: &str, word: &str) -> bool {
    let hay = squash(hay);
    let w = word.to_lowercase();
    let b = hay.as_bytes();
    let mut from = 0;
    while let Some(i) = hay[from..].find(&w) {
        let (s, e) = (from + i, from + i + w.len());
        let before = s == 0 || !hay[..s].chars().next_back().is_some_and(char::is_alphanumeric);
        let after = e >= b.len() || !hay[e..].chars().next().is_some_and(char::is_alphanumeric);
        if before && after {
            return true;
        }
        from = s + w.len().max(1);
    }
    false
}

/// The heuristic checks of one item.
pub fn heuristics(item: &JudgeItem) -> Heuristics {
    let lang = item.lang();
    let refused = item.is_refusal();
    let all: String = item.passages.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
    let mut h = Heuristics { pass: true, ..Default::default() };
    if refused {
        // a refusal claims nothing; it is right when the documents have no answer
        let ok = !item.answerable;
        h.refusal_ok = Some(ok);
        h.overlap = 1.0;
        if !ok {
            h.reasons.push("refused, but the documents answer the question".into());
        }
        h.pass = ok;
        return h;
    }
    if item.passages.is_empty() {
        h.refusal_ok = Some(false);
        h.reasons.push("answers without citing any passage".into());
        h.pass = false;
        return h;
    }
    if !item.answerable {
        h.refusal_ok = Some(false);
        h.reasons.push("answers a question the documents do not answer".into());
    }
    h.numbers_missing = numbers(&item.answer).into_iter().filter(|n| !has_word(&all, n)).collect();
    h.names_missing = names(&item.answer).into_iter().filter(|n| !has_word(&all, n)).collect();
    let stems = |t: &str| -> Vec<String> {
        tresor_text::words(t)
            .map(str::to_lowercase)
            .filter(|w| !tresor_text::is_stopword(w))
            .map(|w| tresor_text::stem(&w, lang))
            .collect()
    };
    let have: std::collections::HashSet<String> = stems(&all).into_iter().collect();
    let mine = stems(&item.answer);
    h.overlap = if mine.is_empty() { 1.0 } else { mine.iter().filter(|w| have.contains(*w)).count() as f64 / mine.len() as f64 };
    if !h.numbers_missing.is_empty() {
        h.reasons.push(format!("numbers not in the passages: {}", h.numbers_missing.join(", ")));
    }
    if !h.names_missing.is_empty() {
        h.reasons.push(format!("names not in the passages: {}", h.names_missing.join(", ")));
    }
    if h.overlap < MIN_OVERLAP {
        h.reasons.push(format!("only {:.0} % of its words are in the passages", h.overlap * 100.0));
    }
    h.pass = h.reasons.is_empty();
    h
}

/// The judge's JSON verdict (the grammar guarantees its shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub faithful: bool,
    pub relevant: bool,
}

/// The rubric, fixed: the same words for every item and every model.
pub const RUBRIC: &str = "You are a strict grader. You check an ANSWER against the PASSAGES it cites.\n\
faithful = true only if every fact in the ANSWER (each number, name, date, amount and claim) is stated in the PASSAGES. \
If the ANSWER adds, changes or contradicts anything, faithful = false. \
A refusal (\"I could not find an answer\") is faithful only when the PASSAGES do not answer the QUESTION.\n\
relevant = true if the ANSWER addresses the QUESTION.\n\
Reply with JSON only: {\"faithful\": true|false, \"relevant\": true|false}.";

/// The verdict's JSON Schema (grammar-constrained decoding).
pub fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "faithful": { "type": "boolean" }, "relevant": { "type": "boolean" } },
        "required": ["faithful", "relevant"],
        "additionalProperties": false
    })
}

/// The user message for one item.
pub fn prompt(item: &JudgeItem) -> String {
    let mut s = format!("QUESTION: {}\n\nPASSAGES:\n", item.question.trim());
    if item.passages.is_empty() {
        s.push_str("(none)\n");
    }
    for (i, p) in item.passages.iter().enumerate() {
        s.push_str(&format!("[{}] {}\n", i + 1, p.text.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    s.push_str(&format!("\nANSWER: {}\n\nIs the ANSWER faithful to the PASSAGES, and relevant to the QUESTION?", item.answer.trim()));
    s
}

/// Grades one item: the judge model (or, in tests, a scripted stand-in).
pub trait Grader {
    fn id(&self) -> String;
    fn grade(&mut self, item: &JudgeItem) -> Result<Verdict, String>;
}

/// A judge on a chat model of the engine, with the rubric as the system
/// message and the verdict schema as the grammar; greedy decoding.
pub struct ModelGrader {
    pub model: Box<dyn tresor_assistant::ChatModel>,
}

impl Grader for ModelGrader {
    fn id(&self) -> String {
        self.model.id().to_string()
    }
    fn grade(&mut self, item: &JudgeItem) -> Result<Verdict, String> {
        let messages = [tresor_llm::ChatMessage::system(RUBRIC), tresor_llm::ChatMessage::user(prompt(item))];
        let params = tresor_llm::GenerateParams {
            max_tokens: 32,
            sampling: tresor_llm::SamplingParams { temperature: 0.0, ..Default::default() },
            ..Default::default()
        };
        let g = self.model.generate_json(&messages, &verdict_schema(), &params, &mut |_| std::ops::ControlFlow::Continue(())).map_err(|e| e.to_string())?;
        serde_json::from_str(&g.text).map_err(|e| format!("verdict {:?}: {e}", g.text))
    }
}

/// Cohen's kappa of two binary labelings; None when it is undefined (both
/// raters give one class only, so chance agreement is 1).
pub fn kappa(gold: &[bool], pred: &[bool]) -> Option<f64> {
    let n = gold.len().min(pred.len());
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let agree = gold.iter().zip(pred).filter(|(a, b)| a == b).count() as f64 / nf;
    let g1 = gold.iter().take(n).filter(|b| **b).count() as f64 / nf;
    let p1 = pred.iter().take(n).filter(|b| **b).count() as f64 / nf;
    let pe = g1 * p1 + (1.0 - g1) * (1.0 - p1);
    if (1.0 - pe).abs() < 1e-12 {
        return None;
    }
    Some((agree - pe) / (1.0 - pe))
}

/// Gold label → predicted label → count.
pub type Confusion = BTreeMap<String, BTreeMap<String, usize>>;

fn label(b: bool) -> String {
    if b { "faithful" } else { "unfaithful" }.into()
}

pub fn confusion(gold: &[bool], pred: &[bool]) -> Confusion {
    let mut m: Confusion = BTreeMap::new();
    for g in [true, false] {
        let row = m.entry(label(g)).or_default();
        for p in [true, false] {
            row.insert(label(p), gold.iter().zip(pred).filter(|(a, b)| **a == g && **b == p).count());
        }
    }
    m
}

/// How the judge and the heuristics combine into one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// Faithful only when both say so (either can veto).
    Both,
    /// Faithful when either says so.
    Either,
}

impl Combine {
    pub fn apply(self, judge: bool, heur: bool) -> bool {
        match self {
            Combine::Both => judge && heur,
            Combine::Either => judge || heur,
        }
    }
}

/// One graded item.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    pub id: String,
    pub split: String,
    pub label: String,
    pub corruption: Option<String>,
    /// None: the judge failed on this item (its error in `judge_error`; counted as unfaithful).
    pub judge: Option<Verdict>,
    pub judge_error: Option<String>,
    pub heuristics: Heuristics,
    pub combined: bool,
}

impl Graded {
    fn judge_faithful(&self) -> bool {
        self.judge.as_ref().is_some_and(|v| v.faithful)
    }
}

/// Kappas of one part of the set.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SplitScores {
    pub items: usize,
    pub combined: Option<f64>,
    pub judge: Option<f64>,
    pub heuristics: Option<f64>,
    pub combined_accuracy: f64,
    pub judge_accuracy: f64,
    pub heuristics_accuracy: f64,
}

fn scores(g: &[&Graded], combine: Combine) -> SplitScores {
    let gold: Vec<bool> = g.iter().map(|x| x.label == "faithful").collect();
    let j: Vec<bool> = g.iter().map(|x| x.judge_faithful()).collect();
    let h: Vec<bool> = g.iter().map(|x| x.heuristics.pass).collect();
    let c: Vec<bool> = j.iter().zip(&h).map(|(a, b)| combine.apply(*a, *b)).collect();
    let acc = |p: &[bool]| if gold.is_empty() { 0.0 } else { gold.iter().zip(p).filter(|(a, b)| a == b).count() as f64 / gold.len() as f64 };
    SplitScores {
        items: g.len(),
        combined: kappa(&gold, &c),
        judge: kappa(&gold, &j),
        heuristics: kappa(&gold, &h),
        combined_accuracy: acc(&c),
        judge_accuracy: acc(&j),
        heuristics_accuracy: acc(&h),
    }
}

/// Per corruption kind: how many unfaithful answers of that kind each rater caught.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Caught {
    pub n: usize,
    pub judge: usize,
    pub heuristics: usize,
    pub combined: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct JudgeReport {
    pub model: String,
    pub items: usize,
    pub dev_items: usize,
    pub heldout_items: usize,
    /// The part the headline kappas are on: "heldout" when the set has one, else "all".
    pub reported_on: String,
    /// How the verdicts combine; chosen on the dev part when not given.
    pub combine: Combine,
    /// Cohen's kappa of the combined verdict with the gold labels (on `reported_on`).
    pub kappa: Option<f64>,
    pub judge_kappa: Option<f64>,
    pub heuristics_kappa: Option<f64>,
    /// Gold → judge's verdict (on `reported_on`).
    pub confusion: Confusion,
    pub confusion_heuristics: Confusion,
    pub confusion_combined: Confusion,
    pub dev: SplitScores,
    pub heldout: SplitScores,
    pub all: SplitScores,
    /// Share of items the judge called relevant.
    pub judge_relevant_rate: f64,
    pub judge_errors: usize,
    pub by_corruption: BTreeMap<String, Caught>,
    pub ms_per_item: f64,
    pub graded: Vec<Graded>,
}

/// Grades every item with the judge and the heuristics, and scores them
/// against the gold labels. `combine`: None chooses the rule with the higher
/// combined kappa on the dev part (ties: `both`).
pub fn evaluate(items: &[JudgeItem], grader: &mut dyn Grader, combine: Option<Combine>, progress: &mut dyn FnMut(&Graded)) -> JudgeReport {
    let t0 = std::time::Instant::now();
    let mut graded = Vec::with_capacity(items.len());
    for it in items {
        let h = heuristics(it);
        let (judge, judge_error) = match grader.grade(it) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        let g = Graded { id: it.id.clone(), split: it.split.clone(), label: it.label.clone(), corruption: it.corruption.clone(), judge, judge_error, heuristics: h, combined: false };
        progress(&g);
        graded.push(g);
    }
    let ms_per_item = t0.elapsed().as_secs_f64() * 1e3 / items.len().max(1) as f64;
    let dev: Vec<&Graded> = graded.iter().filter(|g| g.split == "dev").collect();
    let combine = combine.unwrap_or_else(|| {
        let k = |c| scores(&dev, c).combined.unwrap_or(f64::NEG_INFINITY);
        if k(Combine::Either) > k(Combine::Both) {
            Combine::Either
        } else {
            Combine::Both
        }
    });
    for g in &mut graded {
        g.combined = combine.apply(g.judge_faithful(), g.heuristics.pass);
    }
    let dev: Vec<&Graded> = graded.iter().filter(|g| g.split == "dev").collect();
    let held: Vec<&Graded> = graded.iter().filter(|g| g.split == "heldout").collect();
    let all: Vec<&Graded> = graded.iter().collect();
    let (reported_on, rep) = if held.is_empty() { ("all", &all) } else { ("heldout", &held) };
    let gold: Vec<bool> = rep.iter().map(|g| g.label == "faithful").collect();
    let j: Vec<bool> = rep.iter().map(|g| g.judge_faithful()).collect();
    let h: Vec<bool> = rep.iter().map(|g| g.heuristics.pass).collect();
    let c: Vec<bool> = rep.iter().map(|g| g.combined).collect();
    let head = scores(rep, combine);
    let mut by_corruption: BTreeMap<String, Caught> = BTreeMap::new();
    for g in graded.iter().filter(|g| g.label == "unfaithful") {
        let e = by_corruption.entry(g.corruption.clone().unwrap_or_else(|| "unnamed".into())).or_default();
        e.n += 1;
        e.judge += !g.judge_faithful() as usize;
        e.heuristics += !g.heuristics.pass as usize;
        e.combined += !g.combined as usize;
    }
    let judged: Vec<&Verdict> = graded.iter().filter_map(|g| g.judge.as_ref()).collect();
    JudgeReport {
        model: grader.id(),
        items: graded.len(),
        dev_items: dev.len(),
        heldout_items: held.len(),
        reported_on: reported_on.into(),
        combine,
        kappa: head.combined,
        judge_kappa: head.judge,
        heuristics_kappa: head.heuristics,
        confusion: confusion(&gold, &j),
        confusion_heuristics: confusion(&gold, &h),
        confusion_combined: confusion(&gold, &c),
        dev: scores(&dev, combine),
        heldout: scores(&held, combine),
        all: scores(&all, combine),
        judge_relevant_rate: if judged.is_empty() { 0.0 } else { judged.iter().filter(|v| v.relevant).count() as f64 / judged.len() as f64 },
        judge_errors: graded.iter().filter(|g| g.judge.is_none()).count(),
        by_corruption,
        ms_per_item,
        graded,
    }
}

/// `n` verdicts for human review, as JSONL lines: the item, the judge's and
/// the heuristics' verdicts, and an empty `human_label` to fill in.
/// Disagreements with the gold label come first, then the rest in set order.
pub fn review_sample(items: &[JudgeItem], report: &JudgeReport, n: usize) -> Vec<Value> {
    let mut order: Vec<usize> = (0..report.graded.len()).collect();
    order.sort_by_key(|&i| {
        let g = &report.graded[i];
        (g.combined == (g.label == "faithful"), i)
    });
    order
        .into_iter()
        .take(n)
        .map(|i| {
            let (it, g) = (&items[i], &report.graded[i]);
            json!({
                "id": it.id,
                "question": it.question,
                "passages": it.passages,
                "answer": it.answer,
                "gold_label": it.label,
                "judge": g.judge,
                "judge_error": g.judge_error,
                "heuristics": g.heuristics,
                "combined": label(g.combined),
                "human_label": null,
            })
        })
        .collect()
}

/// The report as a short text block.
pub fn summary(r: &JudgeReport) -> String {
    let f = |k: Option<f64>| k.map(|k| format!("{k:.3}")).unwrap_or_else(|| "undefined".into());
    let mut s = format!(
        "judge {} on {} items ({} dev, {} held out); combine = {:?} (chosen on dev unless given)\n",
        r.model, r.items, r.dev_items, r.heldout_items, r.combine
    );
    s.push_str("| part | items | kappa combined | kappa judge | kappa heuristics | acc combined | acc judge | acc heuristics |\n|---|---|---|---|---|---|---|---|\n");
    for (name, p) in [("dev", &r.dev), ("heldout", &r.heldout), ("all", &r.all)] {
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} |\n",
            p.items,
            f(p.combined),
            f(p.judge),
            f(p.heuristics),
            p.combined_accuracy,
            p.judge_accuracy,
            p.heuristics_accuracy
        ));
    }
    s.push_str(&format!("judge confusion on {} (gold → judge): ", r.reported_on));
    for (g, row) in &r.confusion {
        s.push_str(&format!("{g} → {} faithful / {} unfaithful; ", row["faithful"], row["unfaithful"]));
    }
    s.push_str(&format!("\njudge errors {}, relevant {:.3}, {:.0} ms/item\n", r.judge_errors, r.judge_relevant_rate, r.ms_per_item));
    s.push_str("caught per corruption (judge / heuristics / combined of n): ");
    for (k, c) in &r.by_corruption {
        s.push_str(&format!("{k} {}/{}/{} of {}; ", c.judge, c.heuristics, c.combined, c.n));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
