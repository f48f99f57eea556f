//! The BM25 side's text analysis: words, Snowball stemming (German or
//! English by chunk language) and German decompounding, so that a query for
//! "Urlaubsanspruch" finds passages about "Urlaub" and "Anspruch", and
//! "Reisekosten" finds "Kosten einer Reise". FTS5 then indexes the analysed
//! terms (its unicode61 tokenizer folds case and diacritics). Words, stems
//! and stopwords are `tresor_text::words`'s (`words` and `stem` are
//! re-exported here).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

pub use tresor_text::words::{stem, words};
use tresor_text::words::is_stopword;

use crate::lang::Lang;

/// `term` as FTS5's `unicode61 remove_diacritics 2` stores it: lowercase,
/// combining marks removed ("gerät" → "gerat", "café" → "cafe"). Index
/// terms are written unfolded; the vocabulary (fts5vocab) holds them folded.
pub fn fold(term: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if term.is_ascii() {
        return term.to_ascii_lowercase();
    }
    term.nfd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// Frequent German word parts (as German stems), so compounds split even
/// when their parts never occur alone in the document being indexed.
const LEXICON: &[&str] = &[
    "urlaub", "anspruch", "reise", "kosten", "abrechnung", "antrag", "tag", "arbeit", "zeit", "geld", "konto",
    "passwort", "sicherheit", "richtlinie", "gerät", "daten", "schutz", "preis", "liste", "produkt", "kunde",
    "vertrag", "mitarbeiter", "hand", "buch", "stunde", "woche", "monat", "jahr", "frist", "kranken", "krank",
    "meldung", "pauschale", "verpflegung", "übernachtung", "fahrt", "bahn", "flug", "hotel", "beleg", "rechnung",
    "zahlung", "gehalt", "lohn", "steuer", "versicherung", "büro", "heim", "home", "office", "netz", "werk",
    "zugang", "zugriff", "schlüssel", "lizenz", "software", "hardware", "update", "system", "server", "dienst",
    "leistung", "vorgesetzt", "führung", "team", "projekt", "plan", "termin", "sitzung", "urlaubs", "eltern",
    "sonder", "feier", "fort", "bildung", "weiter", "schulung", "dokument", "vorlage", "ordner", "datei", "mail",
    "telefon", "handy", "laptop", "rechner", "drucker", "wartung", "support", "hilfe", "frage", "antwort",
    "kilometer", "geld", "auslage", "erstattung", "genehmigung", "vorschuss", "nacht", "essen", "mahlzeit",
    "rabatt", "lieferung", "versand", "bestellung", "garantie", "rückgabe", "umtausch", "netto", "brutto",
    "wert", "steuer", "teil", "voll", "halb", "über", "ruf", "bereitschaft", "schicht", "vorfall", "virus",
    "phishing", "verschlüsselung", "anmeldung", "faktor", "authentifizierung", "sperre", "bildschirm",
];

fn lexicon() -> &'static HashSet<String> {
    static L: OnceLock<HashSet<String>> = OnceLock::new();
    L.get_or_init(|| LEXICON.iter().map(|w| stem(w, Lang::De)).collect())
}

const LINKERS: &[&str] = &["s", "es", "n", "en", "e", "er", "ens"];
const MIN_PART: usize = 3;

/// The longest word [`split_compound`] tries to split, in characters. The
/// longest German compounds in real use have ~60 letters
/// ("Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz": 63);
/// a longer "word" is a hostile or garbled input and is indexed whole. Together
/// with the memoised search below this bounds the work per word (it runs at
/// ingest and on every search query).
pub const MAX_COMPOUND_CHARS: usize = 64;

/// Splits a lowercase German compound into parts whose stems `known`
/// accepts (or the built-in lexicon holds), trying Fugen elements
/// (-s-, -es-, -n-, -en-, -e-, -er-) between parts. `None` if no split, or
/// if the word is longer than [`MAX_COMPOUND_CHARS`].
pub fn split_compound(word: &str, known: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let chars: Vec<char> = word.chars().take(MAX_COMPOUND_CHARS + 1).collect();
    if chars.len() < 2 * MIN_PART + 1 || chars.len() > MAX_COMPOUND_CHARS || chars.iter().any(|c| !c.is_alphabetic()) {
        return None;
    }
    let mut s = Splitter { chars: &chars, known, head: HashMap::new(), tail: HashMap::new(), rec: HashMap::new() };
    s.rec(0, 0).or_else(|| split_tail(&chars, known))
}

/// Fallback: a known final part (the compound's head noun, which carries
/// its meaning: "Kalenderjahr" → "jahr") after an unknown first part of at
/// least four letters.
fn split_tail(chars: &[char], known: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let n = chars.len();
    (4..=n.saturating_sub(4)).find_map(|i| {
        let tail: String = chars[i..].iter().collect();
        is_known(&tail, known).then(|| vec![chars[..i].iter().collect(), tail])
    })
}

fn is_known(part: &str, known: &dyn Fn(&str) -> bool) -> bool {
    let s = stem(part, Lang::De);
    s.chars().count() >= MIN_PART && (lexicon().contains(&s) || known(&s))
}

/// The depth-first search for a split (longest known head first, at most
/// five parts), memoised: each head span, each tail and each (position,
/// depth) is judged once, so a word of n letters costs O(n²) stems instead
/// of the O(n⁵) of the plain recursion (a 200-letter word of known prefixes
/// took minutes).
struct Splitter<'a> {
    chars: &'a [char],
    known: &'a dyn Fn(&str) -> bool,
    head: HashMap<(usize, usize), Option<String>>,
    tail: HashMap<usize, bool>,
    rec: HashMap<(usize, usize), Option<Vec<String>>>,
}

impl Splitter<'_> {
    /// The known form of `chars[i..j]` (itself, or without a linker).
    fn head(&mut self, i: usize, j: usize) -> Option<String> {
        if let Some(h) = self.head.get(&(i, j)) {
            return h.clone();
        }
        let head: String = self.chars[i..j].iter().collect();
        let mut heads = vec![head.clone()];
        for l in LINKERS {
            if let Some(h) = head.strip_suffix(l) {
                if h.chars().count() >= MIN_PART {
                    heads.push(h.to_string());
                }
            }
        }
        let found = heads.into_iter().find(|h| is_known(h, self.known));
        self.head.insert((i, j), found.clone());
        found
    }

    fn tail_known(&mut self, j: usize) -> bool {
        if let Some(&k) = self.tail.get(&j) {
            return k;
        }
        let t: String = self.chars[j..].iter().collect();
        let k = is_known(&t, self.known);
        self.tail.insert(j, k);
        k
    }

    fn rec(&mut self, i: usize, depth: usize) -> Option<Vec<String>> {
        if depth > 3 {
            return None;
        }
        if let Some(r) = self.rec.get(&(i, depth)) {
            return r.clone();
        }
        let n = self.chars.len();
        let mut found = None;
        // Prefer the longest head that is a known word.
        for j in ((i + MIN_PART)..=n.saturating_sub(MIN_PART)).rev() {
            let Some(h) = self.head(i, j) else { continue };
            if self.tail_known(j) {
                found = Some(vec![h, self.chars[j..].iter().collect()]);
                break;
            }
            if let Some(mut rest) = self.rec(j, depth + 1) {
                let mut v = vec![h];
                v.append(&mut rest);
                found = Some(v);
                break;
            }
        }
        self.rec.insert((i, depth), found.clone());
        found
    }
}

/// The terms FTS5 indexes for a passage in language `lang`: each word's
/// stem, plus the stems of a German compound's parts. `known` says whether
/// a German stem is a word in its own right (e.g. seen in the same text).
pub fn index_terms(text: &str, lang: Lang, known: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    for w in words(text) {
        let lw = w.to_lowercase();
        push(&mut out, &stem(&lw, lang));
        if lang == Lang::De && lw.chars().count() >= 7 {
            if let Some(parts) = split_compound(&lw, known) {
                for p in parts {
                    push(&mut out, &stem(&p, Lang::De));
                }
            }
        }
    }
    out
}

/// German stems of a text's words, for `known` in [`index_terms`].
pub fn german_vocabulary(text: &str) -> HashSet<String> {
    words(text).map(|w| stem(&w.to_lowercase(), Lang::De)).filter(|s| s.chars().count() >= MIN_PART).collect()
}

fn push(out: &mut String, term: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(term);
}

/// The alternative terms of a query (language unknown): German and English
/// stems of every non-stopword, plus the parts of German compounds that the
/// knowledge base knows. Deduplicated, in query order.
pub fn query_terms(query: &str, known: &dyn Fn(&str) -> bool) -> Vec<String> {
    let lower: Vec<String> = words(query).map(|w| w.to_lowercase()).collect();
    let content: Vec<&String> = lower.iter().filter(|w| !is_stopword(w)).collect();
    let ws: Vec<&String> = if content.is_empty() { lower.iter().collect() } else { content };
    let mut terms: Vec<String> = Vec::new();
    let add = |t: String, terms: &mut Vec<String>| {
        if !t.is_empty() && !terms.contains(&t) {
            terms.push(t);
        }
    };
    for w in ws {
        add(stem(w, Lang::De), &mut terms);
        add(stem(w, Lang::En), &mut terms);
        if w.chars().count() >= 7 {
            if let Some(parts) = split_compound(w, known) {
                for p in parts {
                    add(stem(&p, Lang::De), &mut terms);
                }
            }
        }
    }
    terms
}

/// An FTS5 MATCH expression that ORs the terms (each quoted, so no term is
/// read as FTS5 syntax). `None` when there is nothing to search for.
pub fn fts_match(terms: &[String]) -> Option<String> {
    if terms.is_empty() {
        return None;
    }
    Some(terms.iter().map(|t| format!("\"{}\"", t.replace('"', ""))).collect::<Vec<_>>().join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_matches_unicode61() {
        assert_eq!(fold("gerät"), "gerat");
        assert_eq!(fold("Café"), "cafe");
        assert_eq!(fold("straße"), "straße");
        assert_eq!(fold("urlaub"), "urlaub");
    }

    #[test]
    fn splits_german_compounds_with_linking_s() {
        let none = |_: &str| false;
        let stems = |w: &str, k: &dyn Fn(&str) -> bool| {
            split_compound(w, k).map(|v| v.iter().map(|p| stem(p, Lang::De)).collect::<Vec<_>>())
        };
        assert_eq!(stems("urlaubsanspruch", &none).unwrap(), vec!["urlaub", "anspruch"]);
        assert_eq!(stems("reisekostenabrechnung", &none).unwrap(), vec![stem("reise", Lang::De), stem("kosten", Lang::De), stem("abrechnung", Lang::De)]);
        assert_eq!(split_compound("haus", &none), None);
        // unknown first part, known head noun
        assert_eq!(stems("kalenderjahr", &none).unwrap()[1], "jahr");
        // parts known from the text itself
        let vocab = german_vocabulary("Die Zwiebel und der Kuchen");
        let known = |s: &str| vocab.contains(s);
        assert_eq!(stems("zwiebelkuchen", &known).unwrap(), vec![stem("zwiebel", Lang::De), stem("kuchen", Lang::De)]);
    }

    #[test]
    fn index_and_query_terms_meet_on_stems_and_parts() {
        let none = |_: &str| false;
        let idx = index_terms("Jeder Mitarbeiter hat 30 Tage Urlaub im Jahr.", Lang::De, &none);
        let q = query_terms("Wie hoch ist mein Urlaubsanspruch?", &none);
        assert!(q.iter().any(|t| idx.split(' ').any(|i| i == t)), "{q:?} vs {idx}");
        let idx_en = index_terms("Employees are entitled to vacation days.", Lang::En, &none);
        let q_en = query_terms("how many vacation days is an employee entitled to", &none);
        assert!(q_en.iter().filter(|t| idx_en.split(' ').any(|i| i == *t)).count() >= 3);
        assert!(!q_en.contains(&"the".to_string()));
    }

    /// Issue 19: a 200+-letter word of known prefixes with no split made the
    /// plain recursion explore ~n⁵ heads (minutes at 200 letters; it runs on
    /// search queries too). Failed (ran for minutes) before the memoised search.
    #[test]
    fn hostile_long_compounds_end_quickly() {
        let none = |_: &str| false;
        let t = std::time::Instant::now();
        // 60 letters of known prefixes and an unknown end: the worst case under the cap
        let w = format!("{}q", "reise".repeat(12));
        assert_eq!(split_compound(&w, &none).map(|v| v.len()).unwrap_or(0) <= 5, true);
        let w = format!("{}qq", "urlaubs".repeat(8));
        let _ = split_compound(&w, &none);
        // 200+ letters: indexed whole
        let long = "reise".repeat(41);
        assert_eq!(split_compound(&long, &none), None);
        let q = query_terms(&format!("{long} {}", "kosten".repeat(40)), &none);
        assert!(!q.is_empty());
        let idx = index_terms(&long, Lang::De, &none);
        assert!(!idx.is_empty());
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        // the memo keeps the answers of the plain search
        assert_eq!(split_compound("reisekostenabrechnung", &none).unwrap().len(), 3);
    }

    #[test]
    fn fts_match_quotes_terms() {
        assert_eq!(fts_match(&["a\"b".into(), "c".into()]).unwrap(), "\"ab\" OR \"c\"");
        assert_eq!(fts_match(&[]), None);
    }
}
