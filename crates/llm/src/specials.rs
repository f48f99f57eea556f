//! Control and user-defined pieces written in raw text (`<|im_start|>`,
//! `<start_of_turn>`): found leftmost, longest first, and taken as their
//! tokens before the text between them is encoded — llama.cpp's
//! `parse_special`, and what a `tokenizers` added vocabulary of special
//! tokens does. Both encoders (`spm`, `bpe`) split text here.
//!
//! Owns the matching of special pieces; never encodes the text between them.

use std::collections::HashMap;

pub(crate) struct Specials {
    ids: HashMap<String, u32>,
    /// Their distinct byte lengths, longest first.
    lens: Vec<usize>,
    /// Bytes a special piece may start with.
    first: [bool; 256],
}

/// A piece of text: a special token, or text between them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part<'a> {
    Special(u32),
    Text(&'a str),
}

impl Specials {
    /// `pieces` by id; `ids` the ids matched in raw text (empty pieces never match).
    pub(crate) fn new(pieces: &[String], ids: impl IntoIterator<Item = u32>) -> Specials {
        let ids: HashMap<String, u32> = ids
            .into_iter()
            .filter_map(|id| pieces.get(id as usize).filter(|p| !p.is_empty()).map(|p| (p.clone(), id)))
            .collect();
        let mut lens: Vec<usize> = ids.keys().map(String::len).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        let mut first = [false; 256];
        for p in ids.keys() {
            first[p.as_bytes()[0] as usize] = true;
        }
        Specials { ids, lens, first }
    }

    /// `text` cut at its special pieces, in order (empty text parts left out).
    pub(crate) fn split<'a>(&self, text: &'a str) -> Vec<Part<'a>> {
        let mut parts = Vec::new();
        let (mut raw_start, mut i) = (0, 0);
        while i < text.len() {
            if let Some((id, len)) = self.at(text, i) {
                if raw_start < i {
                    parts.push(Part::Text(&text[raw_start..i]));
                }
                parts.push(Part::Special(id));
                i += len;
                raw_start = i;
            } else {
                i += 1;
            }
        }
        if raw_start < text.len() {
            parts.push(Part::Text(&text[raw_start..]));
        }
        parts
    }

    /// The longest special piece starting at byte `i` (a char boundary or not: checked).
    fn at(&self, text: &str, i: usize) -> Option<(u32, usize)> {
        if !self.first[text.as_bytes()[i] as usize] || !text.is_char_boundary(i) {
            return None;
        }
        self.lens.iter().find_map(|&len| text.get(i..i + len).and_then(|s| self.ids.get(s)).map(|&id| (id, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_the_leftmost_longest_special() {
        let pieces: Vec<String> = ["<a>", "<a>b", "x", "", "é<"].iter().map(|s| s.to_string()).collect();
        let s = Specials::new(&pieces, [0, 1, 3, 4]);
        assert_eq!(s.split("x<a>by<a>"), vec![Part::Text("x"), Part::Special(1), Part::Text("y"), Part::Special(0)]);
        assert_eq!(s.split("<a><a>"), vec![Part::Special(0), Part::Special(0)]);
        assert_eq!(s.split("né<a>"), vec![Part::Text("n"), Part::Special(4), Part::Text("a>")]);
        assert_eq!(s.split(""), vec![]);
        assert_eq!(s.split("plain"), vec![Part::Text("plain")]);
    }
}
