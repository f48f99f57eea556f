//! SentencePiece-style BPE encoding by piece scores, as llama.cpp's
//! `llm_tokenizer_spm` does it: the text's characters are merged pairwise,
//! highest-scoring resulting piece first (ties: leftmost), as long as the
//! merged text is itself a piece of the vocabulary; a character that is no
//! piece is written as its UTF-8 byte pieces (`<0xXX>`; llama.cpp's
//! re-segmentation along the merges never applies otherwise: every merged
//! symbol is a piece). No merge table: a merge is a vocabulary lookup of the
//! two symbols' concatenated text. Gemma's 262k-piece vocabulary would need
//! one entry per (piece, split point) — the Hugging Face BPE this replaces
//! held hundreds of thousands of them, most of the tokenizer's memory.
//!
//! Before merging, control and user-defined pieces written in the text are
//! taken as those tokens (leftmost, longest first; llama.cpp's
//! `parse_special`), and each other fragment gets SentencePiece's
//! normalization: a `▁` prefix when the vocabulary asks for one, spaces as `▁`.
//!
//! Decoding is the Hugging Face SentencePiece decoder chain that
//! `tokenizer.rs` used to build (`▁` → space, runs of `<0xXX>` byte pieces
//! as their bytes — one U+FFFD per byte where they are not UTF-8 — and one
//! leading space dropped where the vocabulary prefixes one); a test keeps
//! the two equal on Gemma's vocabulary.
//!
//! Owns text ↔ ids for SentencePiece vocabularies, with the pieces packed
//! ([`Pieces`]); never reads the GGUF itself (`tokenizer.rs` hands it the
//! pieces).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::pieces::{Pieces, TooLarge};
use crate::specials::{Part, Specials};

/// The pieces, scores and special pieces of one vocabulary.
pub(crate) struct Spm {
    /// Piece text by id, and id by piece text.
    pieces: Pieces,
    scores: Vec<f32>,
    /// `<0xXX>` ids, by byte.
    byte_ids: Vec<Option<u32>>,
    unk_id: Option<u32>,
    add_space_prefix: bool,
    /// Control and user-defined pieces matched in raw text.
    specials: Specials,
}

/// The byte a `<0xXX>` piece stands for.
fn byte_piece(piece: &str) -> Option<u8> {
    piece.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')).filter(|h| h.len() == 2).and_then(|h| u8::from_str_radix(h, 16).ok())
}

struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// The max-heap pops the highest score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(other.left.cmp(&self.left))
    }
}

impl Spm {
    /// `pieces` and `scores` by id; `specials` the ids matched in raw text.
    pub(crate) fn new(pieces: &[String], scores: Vec<f32>, specials: impl IntoIterator<Item = u32>, unk_id: Option<u32>, add_space_prefix: bool) -> Result<Spm, TooLarge> {
        let mut byte_ids = vec![None; 256];
        for (id, p) in pieces.iter().enumerate() {
            if let Some(b) = byte_piece(p) {
                byte_ids[b as usize].get_or_insert(id as u32);
            }
        }
        let specials = Specials::new(pieces, specials);
        let packed = Pieces::indexed(pieces.iter().map(|p| p.as_bytes()))?;
        Ok(Spm { pieces: packed, scores, byte_ids, unk_id, add_space_prefix, specials })
    }

    /// The pieces as the vocabulary spells them (`▁the`, `<0x0A>`).
    pub(crate) fn pieces(&self) -> &Pieces {
        &self.pieces
    }

    fn piece_id(&self, piece: &str) -> Option<u32> {
        self.pieces.find(piece.as_bytes())
    }

    /// Heap bytes held by the pieces and scores (for the memory tests).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.pieces.heap_bytes() + 4 * self.scores.capacity()
    }

    /// Text of `ids` (ids past the vocabulary are skipped; special pieces
    /// are written as they are spelt).
    pub(crate) fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        let mut run: Vec<u8> = Vec::new();
        let flush = |run: &mut Vec<u8>, out: &mut String| {
            match std::str::from_utf8(run) {
                Ok(s) => out.push_str(s),
                Err(_) => out.extend(std::iter::repeat_n('\u{FFFD}', run.len())),
            }
            run.clear();
        };
        for &id in ids {
            let Some(piece) = self.pieces.text(id) else { continue };
            match byte_piece(piece) {
                Some(b) => run.push(b),
                None => {
                    flush(&mut run, &mut out);
                    out.extend(piece.chars().map(|c| if c == '▁' { ' ' } else { c }));
                }
            }
        }
        flush(&mut run, &mut out);
        if self.add_space_prefix && out.starts_with(' ') {
            out.remove(0);
        }
        out
    }

    /// Ids of `text` (no BOS/EOS: the caller adds them).
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        for part in self.specials.split(text) {
            match part {
                Part::Special(id) => out.push(id),
                Part::Text(t) => self.encode_fragment(t, &mut out),
            }
        }
        out
    }

    fn encode_fragment(&self, raw: &str, out: &mut Vec<u32>) {
        if raw.is_empty() {
            return;
        }
        let mut text = String::with_capacity(raw.len() + 3);
        if self.add_space_prefix {
            text.push('▁');
        }
        for c in raw.chars() {
            text.push(if c == ' ' { '▁' } else { c });
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (k, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol { start, len: c.len_utf8(), prev: k.checked_sub(1), next: Some(k + 1) });
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut queue = BinaryHeap::new();
        let try_add = |left: Option<usize>, right: Option<usize>, symbols: &[Symbol], queue: &mut BinaryHeap<Bigram>| {
            let (Some(l), Some(r)) = (left, right) else { return };
            let (start, size) = (symbols[l].start, symbols[l].len + symbols[r].len);
            let Some(id) = self.piece_id(&text[start..start + size]) else { return };
            let Some(&score) = self.scores.get(id as usize) else { return };
            queue.push(Bigram { left: l, right: r, score, size });
        };
        for k in 1..symbols.len() {
            try_add(Some(k - 1), Some(k), &symbols, &mut queue);
        }
        while let Some(b) = queue.pop() {
            let (ln, rn) = (symbols[b.left].len, symbols[b.right].len);
            // one side was merged into something else since this pair was queued
            if ln == 0 || rn == 0 || ln + rn != b.size {
                continue;
            }
            symbols[b.left].len += rn;
            symbols[b.right].len = 0;
            let next = symbols[b.right].next;
            symbols[b.left].next = next;
            if let Some(n) = next {
                symbols[n].prev = Some(b.left);
            }
            let prev = symbols[b.left].prev;
            try_add(prev, Some(b.left), &symbols, &mut queue);
            try_add(Some(b.left), next, &symbols, &mut queue);
        }
        let mut k = if symbols.is_empty() { None } else { Some(0) };
        while let Some(s) = k {
            let piece = &text[symbols[s].start..symbols[s].start + symbols[s].len];
            match self.piece_id(piece) {
                Some(id) => out.push(id),
                None => piece.bytes().for_each(|b| out.extend(self.byte_ids[b as usize].or(self.unk_id))),
            }
            k = symbols[s].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(pieces: &[&str]) -> Vec<String> {
        pieces.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merges_by_score_then_leftmost_and_falls_back_to_bytes() {
        let mut pieces = vec!["<unk>", "<start>", "▁", "a", "b", "c", "ab", "bc", "▁ab", "abc"];
        let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        pieces.extend(bytes.iter().map(String::as_str));
        let p = vocab(&pieces);
        // "bc" outscores "ab": a + bc first, then a + bc → abc (a piece)
        let mut scores = vec![0.0f32; p.len()];
        scores[6] = -5.0; // ab
        scores[7] = -1.0; // bc
        scores[8] = -2.0; // ▁ab
        scores[9] = -3.0; // abc
        let spm = Spm::new(&p, scores.clone(), [1], Some(0), false).unwrap();
        assert_eq!(spm.encode("abc"), vec![9]);
        assert_eq!(spm.encode("ab"), vec![6]);
        // a space becomes ▁: ab first, then ▁ + ab
        assert_eq!(spm.encode(" ab"), vec![8]);
        // specials are taken from the raw text, the fragments around them encoded alone
        assert_eq!(spm.encode("ab<start>bc"), vec![6, 1, 7]);
        // an unknown character: its UTF-8 bytes
        assert_eq!(spm.encode("é"), vec![10 + 0xC3, 10 + 0xA9]);
        // the space prefix
        let spm = Spm::new(&p, scores, [1], Some(0), true).unwrap();
        assert_eq!(spm.encode("ab"), vec![8]);
        assert_eq!(spm.encode(""), Vec::<u32>::new());
    }

    /// Merging stops where the concatenation is no piece; a character
    /// without a piece and without byte pieces is unknown.
    #[test]
    fn stops_where_no_piece_exists() {
        let p = vocab(&["<unk>", "x", "y", "xy", "z"]);
        let spm = Spm::new(&p, vec![0.0, 0.0, 0.0, -1.0, 0.0], [], Some(0), false).unwrap();
        assert_eq!(spm.encode("xyz"), vec![3, 4]);
        assert_eq!(spm.encode("q"), vec![0], "no byte pieces: unknown");
    }

    #[test]
    fn decodes_spaces_byte_runs_and_the_prefix_space() {
        let mut pieces = vec!["<unk>", "<start>", "▁the", "▁", "é", "a"];
        let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        pieces.extend(bytes.iter().map(String::as_str));
        let p = vocab(&pieces);
        let byte = |b: u8| 6 + b as u32;
        let spm = Spm::new(&p, vec![0.0; p.len()], [1], Some(0), true).unwrap();
        // the leading space of the prefix goes, once
        assert_eq!(spm.decode(&[2, 3, 2]), "the  the");
        assert_eq!(spm.decode(&[3, 3, 5]), " a");
        // byte pieces that make UTF-8 are that character; where they do not, one U+FFFD per byte
        assert_eq!(spm.decode(&[5, byte(0xC3), byte(0xA9), 5]), "aéa");
        assert_eq!(spm.decode(&[5, byte(0xE2), byte(0x82), 5, byte(0xFF)]), "a\u{FFFD}\u{FFFD}a\u{FFFD}");
        // specials as spelt; ids past the vocabulary skipped
        assert_eq!(spm.decode(&[1, 4, 99_999, 0]), "<start>é<unk>");
        assert_eq!(spm.decode(&[]), "");
        let spm = Spm::new(&p, vec![0.0; p.len()], [1], Some(0), false).unwrap();
        assert_eq!(spm.decode(&[2, 2]), " the the");
        assert_eq!((spm.piece_id("▁the"), spm.pieces().text(2), spm.pieces().len()), (Some(2), Some("▁the"), 262));
    }
}
