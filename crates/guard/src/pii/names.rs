//! Name gazetteers compiled into the binary (`crates/guard/data/*.txt`):
//! common German, English and international first names, particles that
//! join name parts (`van der`), and words that must never be taken as a
//! name (function words, months, street/form words, and first names that
//! are also ordinary words: they only count next to a surname or a cue).
//! Lists are one entry per whitespace-separated word; `#` starts a comment.

use std::collections::HashSet;
use std::sync::OnceLock;

const FIRST_DE: &str = include_str!("../../data/first_names_de.txt");
const FIRST_EN: &str = include_str!("../../data/first_names_en.txt");
const FIRST_INTL: &str = include_str!("../../data/first_names_intl.txt");
const NOT_NAMES: &str = include_str!("../../data/not_names.txt");
const AMBIGUOUS: &str = include_str!("../../data/ambiguous_first_names.txt");

fn words(src: &str) -> impl Iterator<Item = String> + '_ {
    src.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_lowercase)
}

fn set(cell: &'static OnceLock<HashSet<String>>, srcs: &[&'static str]) -> &'static HashSet<String> {
    cell.get_or_init(|| srcs.iter().flat_map(|s| words(s)).collect())
}

/// Lower-cased first names (DE, EN, international).
pub fn first_names() -> &'static HashSet<String> {
    static S: OnceLock<HashSet<String>> = OnceLock::new();
    set(&S, &[FIRST_DE, FIRST_EN, FIRST_INTL])
}

/// Words that are never part of a person name.
pub fn not_names() -> &'static HashSet<String> {
    static S: OnceLock<HashSet<String>> = OnceLock::new();
    set(&S, &[NOT_NAMES])
}

/// First names that are also common words (May, Will, Ernst, August): they
/// never count alone.
pub fn ambiguous() -> &'static HashSet<String> {
    static S: OnceLock<HashSet<String>> = OnceLock::new();
    set(&S, &[AMBIGUOUS])
}

/// `true` when every hyphen-separated part of `word` is a known first name
/// (`Hans-Peter`), compared case-insensitively.
pub fn is_first_name(word: &str) -> bool {
    let fnames = first_names();
    let lower = word.to_lowercase();
    !lower.is_empty() && lower.split('-').all(|p| fnames.contains(p)) && !not_names().contains(&lower)
}

pub fn is_not_name(word: &str) -> bool {
    let lower = word.to_lowercase();
    not_names().contains(&lower) || lower.split('-').any(|p| not_names().contains(p) && p.len() > 3)
}

pub fn is_ambiguous(word: &str) -> bool {
    ambiguous().contains(&word.to_lowercase())
}

/// Name particles that may stand between first name and surname.
pub fn is_particle(word: &str) -> bool {
    matches!(
        word,
        "van" | "von" | "der" | "den" | "de" | "del" | "della" | "di" | "da" | "dos" | "das" | "du" | "la" | "le"
            | "ten" | "ter" | "zu" | "vom" | "zum" | "bin" | "ibn" | "al" | "el" | "y" | "st." | "mac" | "van't"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gazetteers_are_large_and_loaded() {
        assert!(first_names().len() > 2000, "only {} first names", first_names().len());
        for n in ["Jürgen", "Hans-Peter", "Elizabeth", "Mehmet", "Zoë", "Friederike"] {
            assert!(is_first_name(n), "{n}");
        }
        for w in ["Straße", "The", "Montag", "IBAN"] {
            assert!(!is_first_name(w), "{w}");
        }
        assert!(is_ambiguous("May") && is_ambiguous("Will"));
    }
}
