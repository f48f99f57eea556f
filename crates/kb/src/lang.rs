//! German/English detection by stopword counts: cheap, good enough to pick a
//! stemmer for a chunk and to label documents (`lang` in metadata).

use std::fmt;

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

pub(crate) const DE_STOP: &[&str] = &[
    "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "einen", "einem", "einer", "zu", "den", "dem", "des",
    "mit", "für", "auf", "sich", "im", "auch", "bei", "wird", "werden", "von", "oder", "sind", "wir", "sie", "es",
    "ich", "sie", "nach", "aus", "wie", "kann", "können", "muss", "müssen", "wenn", "noch", "nur", "über", "vor",
    "zum", "zur", "bis", "pro", "ab", "dass", "als", "am", "an", "in", "hat", "haben", "wer", "was", "wann", "wo",
    "wie", "viele", "welche", "welcher", "gibt", "mein", "meine", "ihr", "ihre", "durch", "diese", "dieser", "einen",
];

pub(crate) const EN_STOP: &[&str] = &[
    "the", "and", "is", "are", "of", "to", "in", "a", "an", "for", "on", "with", "as", "by", "be", "this", "that",
    "it", "or", "from", "at", "we", "you", "your", "our", "can", "will", "not", "have", "has", "do", "does", "how",
    "what", "when", "where", "which", "who", "why", "i", "my", "if", "any", "all", "there", "their", "they", "was",
    "were", "been", "should", "must", "may", "about", "into", "than", "then", "so", "per", "each", "many", "much",
];

pub(crate) fn is_stopword(w: &str) -> bool {
    DE_STOP.contains(&w) || EN_STOP.contains(&w)
}

/// Detects German vs. English from (up to) the first 4000 words.
/// Returns `None` when there is no evidence either way.
pub fn detect(text: &str) -> Option<Lang> {
    let (mut de, mut en) = (0usize, 0usize);
    for w in crate::analyze::words(text).take(4000) {
        let lw = w.to_lowercase();
        if DE_STOP.contains(&lw.as_str()) {
            de += 2;
        }
        if EN_STOP.contains(&lw.as_str()) {
            en += 2;
        }
        if lw.contains(['ä', 'ö', 'ü', 'ß']) {
            de += 1;
        }
    }
    if de == en {
        None
    } else if de > en {
        Some(Lang::De)
    } else {
        Some(Lang::En)
    }
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
}
