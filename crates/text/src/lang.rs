//! German or English: the one detector, by function words and umlauts.
//! Cheap, good enough to pick a stemmer for a chunk, to label documents
//! (`lang` in metadata) and to answer in the question's language.
//!
//! Owns the [`Lang`] enum and the cue words per language; never guesses a
//! third language (text that is neither counts as undecided).

use std::fmt;

use crate::words::words;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "de" => Some(Lang::De),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// German cue words (function words, question words, greetings). A word in
/// both lists ("in", "an") counts for neither.
pub const DE_WORDS: &[&str] = &[
    "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "einen", "einem", "einer", "zu", "den", "dem", "des",
    "mit", "für", "auf", "sich", "im", "auch", "bei", "wird", "werden", "von", "oder", "sind", "wir", "sie", "es",
    "ich", "nach", "aus", "wie", "kann", "können", "muss", "müssen", "wenn", "noch", "nur", "über", "vor", "zum",
    "zur", "bis", "pro", "ab", "dass", "als", "am", "an", "in", "hat", "haben", "wer", "was", "wann", "wo", "viele",
    "welche", "welcher", "welches", "gibt", "mein", "meine", "ihr", "ihre", "durch", "diese", "dieser", "darf",
    "habe", "wieviel", "wieviele", "warum", "bekomme", "hallo", "moin", "servus", "danke", "tschüss", "guten", "bist",
    "du",
];

/// English cue words (function words, question words).
pub const EN_WORDS: &[&str] = &[
    "the", "and", "is", "are", "of", "to", "in", "a", "an", "for", "on", "with", "as", "by", "be", "this", "that",
    "it", "or", "from", "at", "we", "you", "your", "our", "can", "will", "not", "have", "has", "do", "does", "how",
    "what", "when", "where", "which", "who", "why", "i", "my", "if", "any", "all", "there", "their", "they", "was",
    "were", "been", "should", "must", "may", "about", "into", "than", "then", "so", "per", "each", "many", "much",
    "get",
];

/// Words read at most: the start of a long document decides its language.
const MAX_WORDS: usize = 4000;

/// German vs. English from (up to) the first 4000 words: a cue word counts
/// 2 for its language, a word with an umlaut or ß 1 for German. `None`
/// when there is no evidence either way (or exactly as much for both).
pub fn detect(text: &str) -> Option<Lang> {
    let (mut de, mut en) = (0usize, 0usize);
    for w in words(text).take(MAX_WORDS) {
        let lw = w.to_lowercase();
        if DE_WORDS.contains(&lw.as_str()) {
            de += 2;
        }
        if EN_WORDS.contains(&lw.as_str()) {
            en += 2;
        }
        if lw.contains(['ä', 'ö', 'ü', 'ß']) {
            de += 1;
        }
    }
    match de.cmp(&en) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(Lang::De),
        std::cmp::Ordering::Less => Some(Lang::En),
    }
}

/// [`detect`], English when unsure: the language to answer in.
pub fn language(text: &str) -> Lang {
    detect(text).unwrap_or(Lang::En)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_german_and_english() {
        assert_eq!(detect("Der Urlaubsanspruch beträgt 30 Tage pro Jahr und wird anteilig gewährt."), Some(Lang::De));
        assert_eq!(detect("Employees are entitled to 30 days of vacation per year."), Some(Lang::En));
        assert_eq!(detect("12345 67890"), None);
    }

    #[test]
    fn language_is_english_when_unsure() {
        assert_eq!(language("Wie viele Urlaubstage habe ich?"), Lang::De);
        assert_eq!(language("Wer genehmigt Reisen?"), Lang::De);
        assert_eq!(language("How many vacation days do I get?"), Lang::En);
        assert_eq!(language("hotel limit Munich"), Lang::En);
        assert_eq!(language(""), Lang::En);
    }

    #[test]
    fn lang_round_trips_through_its_code() {
        for l in [Lang::De, Lang::En] {
            assert_eq!(Lang::parse(l.as_str()), Some(l));
            assert_eq!(l.to_string(), l.as_str());
        }
        assert_eq!(Lang::parse("fr"), None);
    }
}
