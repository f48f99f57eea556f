//! A vocabulary's pieces packed into one buffer: the bytes of every id, and
//! (when indexed) the id of a piece by binary search over the ids sorted by
//! their bytes. Gemma 3's 262,144 pieces take about 4 MB here; as the
//! `tokenizers` crate's two hash maps of owned strings (piece → id, id →
//! piece) plus one owned `Vec<u8>` per id they took about 65 MB, a fifth of
//! the model's resident memory.
//!
//! Invariants: `ends[i]` is the end of piece `i` in `bytes` (its start is
//! `ends[i - 1]`, or 0), so `ends` never decreases and its last entry is
//! `bytes.len()`; `by_text` is empty (not indexed) or holds every id once,
//! ordered by (bytes, id).
//!
//! Owns piece storage and lookup; never tokenizes.

use std::cmp::Ordering;

pub(crate) struct Pieces {
    bytes: Vec<u8>,
    ends: Vec<u32>,
    by_text: Vec<u32>,
}

/// A vocabulary whose pieces add up to 4 GiB or more (u32 offsets).
#[derive(Debug)]
pub(crate) struct TooLarge;

impl Pieces {
    /// The pieces in id order, without the piece → id index ([`Pieces::find`]
    /// then finds nothing).
    pub(crate) fn packed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Pieces, TooLarge> {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for p in pieces {
            bytes.extend_from_slice(p);
            ends.push(u32::try_from(bytes.len()).map_err(|_| TooLarge)?);
        }
        bytes.shrink_to_fit();
        ends.shrink_to_fit();
        Ok(Pieces { bytes, ends, by_text: Vec::new() })
    }

    /// The pieces in id order, with the piece → id index.
    pub(crate) fn indexed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Pieces, TooLarge> {
        let mut p = Pieces::packed(pieces)?;
        let mut by_text: Vec<u32> = (0..p.ends.len() as u32).collect();
        by_text.sort_unstable_by(|&a, &b| p.piece(a).cmp(p.piece(b)).then(a.cmp(&b)));
        p.by_text = by_text;
        Ok(p)
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of piece `id`, None past the vocabulary.
    pub(crate) fn get(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.bytes[start..end])
    }

    /// Piece `id` as text (None past the vocabulary or, never for pieces
    /// read from GGUF strings, when it is not UTF-8).
    pub(crate) fn text(&self, id: u32) -> Option<&str> {
        self.get(id).and_then(|b| std::str::from_utf8(b).ok())
    }

    fn piece(&self, id: u32) -> &[u8] {
        self.get(id).unwrap_or_default()
    }

    /// The id of the piece spelt `text`; where a piece repeats, its last id
    /// (what a map filled in id order keeps, as llama.cpp's `token_to_id`
    /// and the `tokenizers` vocabulary do).
    pub(crate) fn find(&self, text: &[u8]) -> Option<u32> {
        let after = self.by_text.partition_point(|&id| self.piece(id).cmp(text) != Ordering::Greater);
        let id = *self.by_text.get(after.checked_sub(1)?)?;
        (self.piece(id) == text).then_some(id)
    }

    /// Heap bytes held (for the memory tests).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + 4 * (self.ends.capacity() + self.by_text.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_piece_is_found_by_its_bytes_and_a_repeat_finds_its_last_id() {
        let words: [&[u8]; 7] = [b"b", b"", b"abc", b"a", b"ab", b"b", b"\xE2\x96\x81the"];
        let p = Pieces::indexed(words.iter().copied()).unwrap();
        assert_eq!(p.len(), 7);
        for (id, w) in words.iter().enumerate() {
            assert_eq!(p.get(id as u32), Some(*w));
        }
        assert_eq!(p.get(7), None);
        assert_eq!(p.find(b"a"), Some(3));
        assert_eq!(p.find(b"ab"), Some(4));
        assert_eq!(p.find(b"abc"), Some(2));
        assert_eq!(p.find(b"b"), Some(5), "the last of a repeated piece");
        assert_eq!(p.find(b""), Some(1));
        assert_eq!(p.find("▁the".as_bytes()), Some(6));
        for absent in [&b"abcd"[..], b"c", b"\xE2", b"aa", b"0"] {
            assert_eq!(p.find(absent), None, "{absent:?}");
        }
        // not indexed: get only
        let q = Pieces::packed(words.iter().copied()).unwrap();
        assert_eq!(q.get(2), Some(&b"abc"[..]));
        assert_eq!(q.find(b"abc"), None);
    }

    #[test]
    fn an_empty_vocabulary_finds_nothing() {
        let p = Pieces::indexed(std::iter::empty()).unwrap();
        assert_eq!((p.len(), p.get(0), p.find(b"")), (0, None, None));
    }
}
