//! The BM25 side's text analysis: words, Snowball stemming (German or
//! English by chunk language) and German decompounding, so that a query for
//! "Urlaubsanspruch" finds passages about "Urlaub" and "Anspruch", and
//! "Reisekosten" finds "Kosten einer Reise". FTS5 then indexes the analysed
//! terms (its unicode61 tokenizer folds case and diacritics). Words, stems
//! and stopwords are `tresor_text::words`'s (`words` and `stem` are
//! re-exported here).

use std::collections::HashSet;
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

/// Splits a lowercase German compound into parts whose stems `known`
/// accepts (or the built-in lexicon holds), trying Fugen elements
/// (-s-, -es-, -n-, -en-, -e-, -er-) between parts. `None` if no split.
pub fn split_compound(word: &str, known: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 2 * MIN_PART + 1 || chars.iter().any(|c| !c.is_alphabetic()) {
        return None;
    }
    split_rec(&chars, known, 0).or_else(|| split_tail(&chars, known))
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

fn split_rec(chars: &[char], known: &dyn Fn(&str) -> bool, depth: usize) -> Option<Vec<String>> {
    if depth > 3 {
        return None;
    }
    let n = chars.len();
    // Prefer the longest head that is a known word.
    for i in (MIN_PART..=n.saturating_sub(MIN_PART)).rev() {
        let head: String = chars[..i].iter().collect();
        let tail = &chars[i..];
        let mut heads = vec![head.clone()];
        for l in LINKERS {
            if let Some(h) = head.strip_suffix(l) {
                if h.chars().count() >= MIN_PART {
                    heads.push(h.to_string());
                }
            }
        }
        let Some(h) = heads.into_iter().find(|h| is_known(h, known)) else { continue };
        let tail_s: String = tail.iter().collect();
        if is_known(&tail_s, known) {
            return Some(vec![h, tail_s]);
        }
        if let Some(mut rest) = split_rec(tail, known, depth + 1) {
            let mut v = vec![h];
            v.append(&mut rest);
            return Some(v);
        }
    }
    None
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

    #[test]
    fn fts_match_quotes_terms() {
        assert_eq!(fts_match(&["a\"b".into(), "c".into()]).unwrap(), "\"ab\" OR \"c\"");
        assert_eq!(fts_match(&[]), None);
    }
}
