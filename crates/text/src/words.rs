//! Words, stopwords and stems: a word is a maximal run of alphanumeric
//! characters (hyphens and apostrophes split words), a stopword is a German
//! or English function word, a stem is the Snowball stem in the text's
//! language.
//!
//! Owns the word boundary, the one stopword list and the stemmers; never
//! decides which language a text is in (see [`crate::lang`]) or what a
//! caller does with the words (indexing, coverage, leak checks).

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

use crate::lang::Lang;

/// Words: maximal runs of alphanumeric characters (hyphens split words).
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

fn stemmer(lang: Lang) -> &'static Stemmer {
    static DE: OnceLock<Stemmer> = OnceLock::new();
    static EN: OnceLock<Stemmer> = OnceLock::new();
    match lang {
        Lang::De => DE.get_or_init(|| Stemmer::create(Algorithm::German)),
        Lang::En => EN.get_or_init(|| Stemmer::create(Algorithm::English)),
    }
}

/// Stem of a lowercase word (a word with a digit is its own stem).
pub fn stem(word: &str, lang: Lang) -> String {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return word.to_string();
    }
    stemmer(lang).stem(word).into_owned()
}

/// Lowercase words that carry no content, German and English together (a
/// query's language is not always known): dropped from the terms of
/// questions, answers and BM25 queries.
pub const STOPWORDS: &[&str] = &[
    // English
    "the", "and", "is", "are", "of", "to", "in", "a", "an", "for", "on", "with", "as", "by", "be", "this", "that", "it",
    "or", "from", "at", "we", "you", "your", "our", "can", "will", "not", "have", "has", "do", "does", "did", "how",
    "what", "when", "where", "which", "who", "whom", "why", "i", "my", "me", "if", "any", "all", "there", "their",
    "they", "was", "were", "been", "should", "must", "may", "about", "into", "than", "then", "so", "per", "each", "many",
    "much", "get", "gets", "got", "its", "these", "those", "would", "could", "also", "some", "such", "one", "us", "am",
    "he", "she", "his", "her", "them", "no", "yes", "up", "out", "please", "tell", "according", "s",
    // German
    "der", "die", "das", "den", "dem", "des", "und", "oder", "ist", "sind", "ein", "eine", "einen", "einem", "einer",
    "eines", "zu", "zum", "zur", "im", "in", "mit", "für", "auf", "von", "vom", "bei", "nach", "aus", "an", "am", "als",
    "wie", "was", "wann", "wo", "wer", "wem", "wen", "welche", "welcher", "welches", "warum", "ich", "du", "sie", "er",
    "es", "wir", "ihr", "mein", "meine", "dein", "deine", "ihre", "ihren", "unser", "unsere", "nicht", "kein", "keine",
    "habe", "hat", "haben", "hast", "bin", "wird", "werden", "kann", "können", "darf", "dürfen", "muss", "müssen",
    "soll", "sollen", "man", "viele", "viel", "gibt", "geben", "sich", "auch", "noch", "nur", "so", "bis", "um", "über",
    "dass", "wenn", "dann", "denn", "mir", "mich", "uns", "euch", "ihm", "ihn", "bitte", "bekomme", "bekommt", "vor",
    "pro", "ab", "durch", "diese", "dieser",
];

/// Whether a lowercase word is in [`STOPWORDS`].
pub fn is_stopword(w: &str) -> bool {
    STOPWORDS.contains(&w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_alphanumeric_runs() {
        assert_eq!(words("Long-term, 30 Tage (ca.)!").collect::<Vec<_>>(), vec!["Long", "term", "30", "Tage", "ca"]);
        assert_eq!(words(" -- ").count(), 0);
    }

    #[test]
    fn stems_by_language_and_keeps_numbers() {
        assert_eq!(stem("vacations", Lang::En), "vacat");
        assert_eq!(stem("urlaubs", Lang::De), "urlaub");
        assert_eq!(stem("2026er", Lang::De), "2026er");
    }

    #[test]
    fn stopwords_cover_both_languages_and_every_cue_word() {
        assert!(is_stopword("the") && is_stopword("der") && is_stopword("bitte"));
        assert!(!is_stopword("urlaub") && !is_stopword("vacation"));
        // a detector cue word is never content
        for w in crate::lang::DE_WORDS.iter().chain(crate::lang::EN_WORDS) {
            let greeting = ["hallo", "moin", "servus", "danke", "tschüss", "guten", "bist", "wieviel", "wieviele"].contains(w);
            assert!(is_stopword(w) || greeting, "{w}");
        }
    }
}
