//! Text helpers of the pipeline: normalising questions, content terms
//! (stemmed, stopwords dropped), lexical overlap that tolerates German
//! compounds, and token F1. Telling German from English, stopwords and
//! sentence splitting are `tresor_text`'s (re-exported here).

use std::collections::HashSet;

use tresor_kb::lang::Lang;
pub use tresor_text::lang::language;
pub use tresor_text::sentences::sentences;
pub use tresor_text::words::is_stopword;
use tresor_text::words::{stem, words};

/// The words of a text (letters and digits), as `tresor_text` splits them.
pub fn words_of(text: &str) -> impl Iterator<Item = &str> {
    words(text)
}

/// Questions longer than this are rejected (a pasted document is not a question).
pub const MAX_QUESTION_CHARS: usize = 4000;

/// Trims, drops control characters and collapses whitespace.
pub fn normalise(q: &str) -> String {
    let cleaned: String = q.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The form a question is cached under: normalised, lowercase, without
/// trailing punctuation.
pub fn cache_form(q: &str) -> String {
    normalise(q).to_lowercase().trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace()).to_string()
}

/// Stemmed content words of `text`, in order (duplicates kept).
pub fn content_terms(text: &str, lang: Lang) -> Vec<String> {
    words(text)
        .map(|w| w.to_lowercase())
        .filter(|w| !is_stopword(w) && (w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit())))
        .map(|w| stem(&w, lang))
        .collect()
}

pub fn term_set(text: &str, lang: Lang) -> HashSet<String> {
    content_terms(text, lang).into_iter().collect()
}

/// A content term of the question and how much it counts: its specificity
/// in the knowledge base (inverse document frequency), so that the words
/// naming what is asked ("stock options", "Germany") outweigh the ones every
/// handbook page shares ("employees", "senior").
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WeightedTerm {
    pub term: String,
    pub weight: f32,
}

/// Words that only shape a question after "how" / "wie" ("how long", "how
/// often", "wie oft") or "at" ("at most"): what is asked, not what about.
const HOW_MODIFIERS: &[&str] = &[
    "long", "often", "much", "many", "far", "soon", "old", "big", "large", "high", "frequently", "lange", "oft", "viel",
    "viele", "hoch", "groß", "gross", "weit", "alt", "häufig", "schnell",
];

/// The words of `question`, each with whether it is an interrogative
/// modifier of [`HOW_MODIFIERS`] ("long" in "how long").
fn question_words(question: &str) -> Vec<(String, bool)> {
    let ws: Vec<String> = words(question).map(|w| w.to_lowercase()).collect();
    (0..ws.len())
        .map(|i| {
            let prev = if i > 0 { ws[i - 1].as_str() } else { "" };
            let w = ws[i].as_str();
            let modifier = (matches!(prev, "how" | "wie") && HOW_MODIFIERS.contains(&w)) || (prev == "at" && matches!(w, "most" | "least"));
            (ws[i].clone(), modifier)
        })
        .collect()
}

/// The unique content terms of `question` in `lang`, weighted by `weight`.
/// An interrogative modifier ("how long", "wie oft", "at most") says what
/// kind of answer is asked for, not what it is about: it counts at most
/// like a common word (weight ≤ 1), however rare it is in the documents.
pub fn weighted_terms(question: &str, lang: Lang, weight: &dyn Fn(&str) -> f32) -> Vec<WeightedTerm> {
    let mut out: Vec<WeightedTerm> = Vec::new();
    for (w, modifier) in question_words(question) {
        for t in content_terms(&w, lang) {
            let wt = weight(&t).max(0.0);
            let wt = if modifier { wt.min(1.0) } else { wt };
            match out.iter_mut().find(|x| x.term == t) {
                Some(x) => x.weight = x.weight.max(wt),
                None => out.push(WeightedTerm { term: t, weight: wt }),
            }
        }
    }
    out
}

/// The names in an English question: capitalised words that do not start
/// a sentence ("Germany", "Kandji", "EOS"), lowercase, in order. German
/// capitalises every noun, so a German question has none.
pub fn names(question: &str, lang: Lang) -> Vec<String> {
    if lang != Lang::En {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for sentence in sentences(question) {
        for w in words(sentence).skip(1) {
            let lw = w.to_lowercase();
            if w.chars().next().is_some_and(char::is_uppercase) && w != "I" && !is_stopword(&lw) && !out.contains(&lw) {
                out.push(lw);
            }
        }
    }
    out
}

/// Codes in `question`: model, version, item or error numbers ("LP-50", "4.3", "E07", "A4",
/// "3.x"): a token with digits and at most three letters in a row, or digits joined by dots.
/// Words with a number in front ("30-jährige", "5-day") are not codes. Lowercase, without `-`.
pub fn codes(question: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in question.split_whitespace() {
        let t = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let has_digit = t.chars().any(|c| c.is_ascii_digit());
        let longest_letters = t.split(|c: char| !c.is_alphabetic()).map(|r| r.chars().count()).max().unwrap_or(0);
        let dotted = t.split('.').count() > 1 && t.split('.').all(|p| !p.is_empty() && (p.chars().all(|c| c.is_ascii_digit()) || p == "x"));
        // "5-day", "30-jährige": a number, then a word
        let number_word = t.split_once('-').is_some_and(|(n, w)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && w.chars().all(|c| c.is_alphabetic() || c == '-'));
        let code = has_digit && t.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.') && ((1..=3).contains(&longest_letters) && !number_word || dotted);
        let norm: String = t.to_lowercase().chars().filter(|&c| c != '-').collect();
        if code && norm.chars().count() >= 2 && !out.contains(&norm) {
            out.push(norm);
        }
    }
    out
}

/// Whether `text` mentions `code` (as [`codes`] writes it), ignoring case, spaces and hyphens
/// ("KM 700" and "km700" are the same model).
pub fn mentions_code(text: &str, code: &str) -> bool {
    let squeezed: String = text.to_lowercase().chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    squeezed.contains(code)
}

/// [`coverage`] with each term counting its weight: Σ weight·match / Σ weight.
pub fn weighted_coverage(terms: &[WeightedTerm], set: &HashSet<String>, lang: Lang) -> f32 {
    weighted_share(terms, &term_matches(terms, set, lang))
}

/// Σ weight·match / Σ weight for `matches` from [`term_matches`] (0 when
/// the terms weigh nothing).
pub fn weighted_share(terms: &[WeightedTerm], matches: &[f32]) -> f32 {
    let total: f32 = terms.iter().map(|t| t.weight).sum();
    if total <= 0.0 {
        return 0.0;
    }
    terms.iter().zip(matches).map(|(t, m)| t.weight * m).sum::<f32>() / total
}

/// How well `set` covers each of `terms` (1 exact, partial for compound parts, 0 absent).
pub fn term_matches(terms: &[WeightedTerm], set: &HashSet<String>, lang: Lang) -> Vec<f32> {
    terms.iter().map(|t| term_score(&t.term, set, lang)).collect()
}

/// Share of `terms` (stems in `lang`) found in `set`: an exact stem counts
/// 1, a term inside a longer word 0.8; in German, otherwise the share of
/// the term's characters covered by the set's words (compounds:
/// "urlaubstag" is covered by "urlaub" and by the "tag" of "arbeitstag"),
/// capped at 0.9 and counted only from half on. English has no such
/// compounds (there "stock" would be half-covered by "block" and "sto…"):
/// only a shared beginning of at least five letters and three quarters of
/// the term counts ("advisori" by "advisor").
pub fn coverage(terms: &[String], set: &HashSet<String>, lang: Lang) -> f32 {
    let uniq: HashSet<&String> = terms.iter().collect();
    if uniq.is_empty() {
        return 0.0;
    }
    let got: f32 = uniq.iter().map(|t| term_score(t, set, lang)).sum();
    got / uniq.len() as f32
}

fn term_score(t: &str, set: &HashSet<String>, lang: Lang) -> f32 {
    if set.contains(t) {
        return 1.0;
    }
    let chars: Vec<char> = t.chars().collect();
    let n = chars.len();
    if n < 4 {
        return 0.0;
    }
    if set.iter().any(|p| p.chars().count() > n && p.contains(t)) {
        return 0.8;
    }
    if lang != Lang::De {
        // a shared beginning of a word the stemmer left apart ("advisori" / "advisor")
        let lcp = set.iter().map(|p| p.chars().zip(chars.iter()).take_while(|(a, b)| a == *b).count()).max().unwrap_or(0);
        let share = lcp as f32 / n as f32;
        return if lcp >= 5 && share >= 0.75 { share.min(0.9) } else { 0.0 };
    }
    let mut covered = vec![false; n];
    for p in set {
        let pl = p.chars().count();
        if pl >= 3 && pl < n {
            if let Some(at) = t.find(p.as_str()) {
                let start = t[..at].chars().count();
                covered[start..start + pl].iter_mut().for_each(|c| *c = true);
            }
        }
    }
    // the longest suffix / prefix of t that some word contains
    for i in 1..n.saturating_sub(2) {
        let suffix: String = chars[i..].iter().collect();
        if set.iter().any(|p| p.contains(suffix.as_str())) {
            covered[i..].iter_mut().for_each(|c| *c = true);
            break;
        }
    }
    for j in (4..n).rev() {
        let prefix: String = chars[..j].iter().collect();
        if set.iter().any(|p| p.contains(prefix.as_str())) {
            covered[..j].iter_mut().for_each(|c| *c = true);
            break;
        }
    }
    let share = covered.iter().filter(|c| **c).count() as f32 / n as f32;
    if share >= 0.5 {
        share.min(0.9)
    } else {
        0.0
    }
}

/// The numbers (digit runs) in a text.
pub fn numbers(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.trim_start_matches('0').to_string()).collect()
}

/// SQuAD-style token F1 (lowercase, punctuation and articles dropped).
pub fn token_f1(pred: &str, gold: &str) -> f32 {
    let norm = |s: &str| -> Vec<String> {
        words(&s.to_lowercase())
            .filter(|w| !matches!(*w, "a" | "an" | "the" | "der" | "die" | "das"))
            .map(|w| w.to_string())
            .collect()
    };
    let p = norm(pred);
    let g = norm(gold);
    if p.is_empty() || g.is_empty() {
        return if p.is_empty() && g.is_empty() { 1.0 } else { 0.0 };
    }
    let mut counts: std::collections::HashMap<&str, i32> = std::collections::HashMap::new();
    for w in &g {
        *counts.entry(w).or_default() += 1;
    }
    let mut same = 0;
    for w in &p {
        if let Some(c) = counts.get_mut(w.as_str()) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let prec = same as f32 / p.len() as f32;
    let rec = same as f32 / g.len() as f32;
    2.0 * prec * rec / (prec + rec)
}

/// Word-set Jaccard similarity (lowercase words).
pub fn jaccard(a: &str, b: &str) -> f32 {
    let sa: HashSet<String> = words(a).map(|w| w.to_lowercase()).collect();
    let sb: HashSet<String> = words(b).map(|w| w.to_lowercase()).collect();
    if sa.is_empty() && sb.is_empty() {
        return 1.0;
    }
    sa.intersection(&sb).count() as f32 / sa.union(&sb).count() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_model_version_and_item_numbers() {
        assert_eq!(codes("When will Ledgerline 4.3 be released?"), ["4.3"]);
        assert_eq!(codes("How do I pair the LP-50 with my phone?"), ["lp50"]);
        assert_eq!(codes("Was bedeutet E07 auf der KM 700?"), ["e07"]);
        assert_eq!(codes("What does one A4 page in colour cost? Is 3.x still supported?"), ["a4", "3.x"]);
        // numbers with a word, amounts, times and plain numbers are not codes
        assert!(codes("Was kostet ein Ausweis für eine 30-jährige Person, 19 Jahre, 1,8 Liter, um 9:30?").is_empty());
        assert!(codes("Is a 5-day trip over 250 EUR allowed?").is_empty());
        assert!(mentions_code("Die KM 700 Plus hat …", "km700") && mentions_code("Model LP-40", "lp40") && !mentions_code("Model LP-40", "lp50"));
    }

    #[test]
    fn normalises_questions() {
        // (telling German from English is tested in tresor_text::lang)
        assert_eq!(normalise("  Wie viele\tUrlaubstage\n habe ich? "), "Wie viele Urlaubstage habe ich?");
        assert_eq!(cache_form("How many Vacation days?? "), "how many vacation days");
    }

    #[test]
    fn weighted_coverage_lets_the_specific_term_decide() {
        let q = "How many stock options does a new senior programmer receive?";
        let weight = |t: &str| if t == stem("stock", Lang::En) || t == stem("options", Lang::En) { 4.0 } else { 1.0 };
        let wq = weighted_terms(q, Lang::En, &weight);
        assert_eq!(wq.iter().filter(|t| t.weight == 4.0).count(), 2, "{wq:?}");
        let table_row = term_set("Senior Programmer (L3): you receive new projects.", Lang::En);
        let plain = coverage(&content_terms(q, Lang::En), &table_row, Lang::En);
        let weighted = weighted_coverage(&wq, &table_row, Lang::En);
        assert!(plain > 0.6 && weighted < 0.4, "{plain} {weighted}");
        assert_eq!(term_matches(&wq, &table_row, Lang::En).iter().filter(|m| **m == 0.0).count(), 2);
        // equal weights are plain coverage
        let ones = weighted_terms(q, Lang::En, &|_| 1.0);
        assert!((weighted_coverage(&ones, &table_row, Lang::En) - plain).abs() < 1e-6);
        assert_eq!(weighted_coverage(&weighted_terms("the of", Lang::En, &weight), &table_row, Lang::En), 0.0);
        // "how long" / "wie oft" / "at most" say what is asked: they count like a common word
        let rare = |_: &str| 5.0;
        let w = |q: &str, l: Lang| weighted_terms(q, l, &rare).into_iter().map(|t| (t.term, t.weight)).collect::<Vec<_>>();
        let en = w("How long is the sabbatical and how often, at most?", Lang::En);
        assert_eq!(en.iter().filter(|(_, x)| *x == 5.0).map(|(t, _)| t.clone()).collect::<Vec<_>>(), vec![stem("sabbatical", Lang::En)]);
        assert_eq!(en.iter().filter(|(_, x)| *x == 1.0).count(), 3, "{en:?}");
        assert_eq!(w("Wie oft darf ich fehlen?", Lang::De), vec![("oft".to_string(), 1.0), (stem("fehlen", Lang::De), 5.0)]);
        assert!(w("Is long-term disability covered?", Lang::En).iter().all(|(_, x)| *x == 5.0));
    }

    #[test]
    fn names_are_the_capitalised_words_inside_english_sentences() {
        assert_eq!(names("Which health insurer covers employees in Germany?", Lang::En), vec!["germany"]);
        assert_eq!(names("What does EOS stand for? Is it used at Basecamp and I think 37signals?", Lang::En), vec!["eos", "basecamp"]);
        assert!(names("Wie viele Urlaubstage bekommen Mitarbeiter in Deutschland?", Lang::De).is_empty());
        assert!(names("How many vacation days do I get?", Lang::En).is_empty());
    }

    #[test]
    fn coverage_handles_stems_and_compounds() {
        let q = content_terms("Wie hoch ist der Urlaubsanspruch?", Lang::De);
        let p = term_set("Vollzeitbeschäftigte haben Anspruch auf 30 Tage Urlaub.", Lang::De);
        assert!(coverage(&q, &p, Lang::De) > 0.3, "{q:?} {p:?}");
        let q = content_terms("How many vacation days do employees get?", Lang::En);
        let p = term_set("Full-time employees get 30 working days of paid vacation.", Lang::En);
        assert!(coverage(&q, &p, Lang::En) > 0.9);
        let far = term_set("Passwords must have twelve characters.", Lang::En);
        assert_eq!(coverage(&q, &far, Lang::En), 0.0);
        // no partial credit in English: "stock" is not half of "block"
        let stock = content_terms("stock options", Lang::En);
        assert_eq!(coverage(&stock, &term_set("Block the stop button.", Lang::En), Lang::En), 0.0);
        let advisory = content_terms("advisory", Lang::En);
        assert!(coverage(&advisory, &term_set("Serve as an advisor.", Lang::En), Lang::En) > 0.8);
        // a compound is covered by its parts, better than by one part alone
        let q = content_terms("Wie viele Urlaubstage habe ich?", Lang::De);
        let both = coverage(&q, &term_set("Der Urlaub beträgt 30 Arbeitstage pro Jahr.", Lang::De), Lang::De);
        let one = coverage(&q, &term_set("Dieses Kapitel regelt Urlaub und Krankmeldungen.", Lang::De), Lang::De);
        assert!(both > one && one > 0.0, "{both} {one}");
        assert_eq!(numbers("30 Tage, 9:30 Uhr, 2026"), vec!["30", "9", "30", "2026"]);
    }

    #[test]
    fn token_f1_is_squad_like() {
        assert_eq!(token_f1("about 3 months", "about 3 months"), 1.0);
        assert!((token_f1("It takes about 3 months.", "about 3 months") - 0.75).abs() < 1e-6);
        assert_eq!(token_f1("nothing", "about 3 months"), 0.0);
    }
}
