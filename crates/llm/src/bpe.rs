//! Byte-level BPE encoding (`gpt2` vocabularies: SmolLM, GPT-2, Llama 3,
//! Qwen2), as the `tokenizers` crate's BPE model does it, over packed
//! pieces: the text is cut at its special pieces ([`Specials`]), each
//! fragment split into words by the vocabulary's pre-tokenizer (the
//! `tokenizers` regex splits and GPT-2's byte-to-unicode map: those objects
//! hold no vocabulary), and each word merged pair by pair, the pair of
//! lowest merge rank first (ties: leftmost), starting from its characters.
//! With `ignore_merges` (Llama 3) a word that is itself a piece is that
//! piece. A character that is no piece is dropped, as `tokenizers` does
//! without an unknown token (every byte of GPT-2's alphabet is a piece in
//! real vocabularies).
//!
//! Memory: SmolLM2's 49,152 pieces and 48,900 merges take ~2.5 MB here;
//! `tokenizers`' model kept both directions of the vocabulary as hash maps
//! of owned strings and the merges as a hash map, ~11 MB.
//!
//! Owns text → ids for byte-level BPE vocabularies; never decodes (each
//! id's bytes, in `tokenizer.rs`, do) and never reads the GGUF.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

use crate::pieces::Pieces;
use crate::specials::{Part, Specials};

pub(crate) struct ByteBpe {
    /// Pieces as the vocabulary spells them (GPT-2's alphabet).
    pieces: Pieces,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    pre: PreTokenizerWrapper,
    ignore_merges: bool,
    specials: Specials,
}

struct Symbol {
    id: u32,
    prev: Option<usize>,
    next: Option<usize>,
    alive: bool,
}

impl ByteBpe {
    /// `tokens` by id, `merges` in rank order (`"a b"` split at the
    /// space), `special_ids` the pieces matched in raw text. A merge whose
    /// sides or result are no piece is an error, as in `tokenizers`.
    pub(crate) fn new(
        tokens: &[String],
        merges: &[(String, String)],
        pre: PreTokenizerWrapper,
        ignore_merges: bool,
        special_ids: impl IntoIterator<Item = u32>,
    ) -> Result<ByteBpe, String> {
        let pieces = Pieces::indexed(tokens.iter().map(|t| t.as_bytes())).map_err(|_| "the vocabulary's pieces add up to 4 GiB or more".to_string())?;
        let mut table = HashMap::with_capacity(merges.len());
        let mut joined = String::new();
        for (rank, (a, b)) in merges.iter().enumerate() {
            let id = |p: &str| pieces.find(p.as_bytes()).ok_or_else(|| format!("merge `{a} {b}`: `{p}` is not in the vocabulary"));
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            table.insert((id(a)?, id(b)?), (rank as u32, id(&joined)?));
        }
        table.shrink_to_fit();
        Ok(ByteBpe { pieces, merges: table, pre, ignore_merges, specials: Specials::new(tokens, special_ids) })
    }

    /// The pieces as the vocabulary spells them (`Ġthe`).
    pub(crate) fn pieces(&self) -> &Pieces {
        &self.pieces
    }

    /// Heap bytes of the pieces and merges (for the memory tests; the hash
    /// table's control bytes and slack counted roughly).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.pieces.heap_bytes() + self.merges.capacity() * (std::mem::size_of::<((u32, u32), (u32, u32))>() + 1)
    }

    /// Ids of `text` (no BOS/EOS).
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        for part in self.specials.split(text) {
            match part {
                Part::Special(id) => out.push(id),
                Part::Text(t) => {
                    let mut words = PreTokenizedString::from(t);
                    self.pre.pre_tokenize(&mut words).map_err(|e| e.to_string())?;
                    for (word, _, _) in words.get_splits(OffsetReferential::Original, OffsetType::Byte) {
                        self.encode_word(word, &mut out);
                    }
                }
            }
        }
        Ok(out)
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = self.pieces.find(word.as_bytes()) {
                out.push(id);
                return;
            }
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
        let mut buf = [0u8; 4];
        for c in word.chars() {
            if let Some(id) = self.pieces.find(c.encode_utf8(&mut buf).as_bytes()) {
                let k = symbols.len();
                symbols.push(Symbol { id, prev: k.checked_sub(1), next: Some(k + 1), alive: true });
            }
        }
        let Some(last) = symbols.last_mut() else { return };
        last.next = None;
        // (rank, left position, left id, right id): the lowest rank first, then the leftmost
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32, u32)>> = BinaryHeap::new();
        let pair = |l: usize, symbols: &[Symbol], queue: &mut BinaryHeap<Reverse<(u32, usize, u32, u32)>>| {
            let Some(r) = symbols[l].next else { return };
            if let Some(&(rank, _)) = self.merges.get(&(symbols[l].id, symbols[r].id)) {
                queue.push(Reverse((rank, l, symbols[l].id, symbols[r].id)));
            }
        };
        for l in 0..symbols.len() {
            pair(l, &symbols, &mut queue);
        }
        while let Some(Reverse((_, l, left, right))) = queue.pop() {
            // stale: one side was merged into something else since this pair was queued
            let Some(r) = symbols[l].next.filter(|_| symbols[l].alive) else { continue };
            if symbols[l].id != left || symbols[r].id != right {
                continue;
            }
            let (_, merged) = self.merges[&(left, right)];
            symbols[l].id = merged;
            symbols[r].alive = false;
            let next = symbols[r].next;
            symbols[l].next = next;
            if let Some(n) = next {
                symbols[n].prev = Some(l);
            }
            if let Some(p) = symbols[l].prev {
                pair(p, &symbols, &mut queue);
            }
            pair(l, &symbols, &mut queue);
        }
        let mut k = Some(0);
        while let Some(s) = k {
            out.push(symbols[s].id);
            k = symbols[s].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;

    fn bpe(tokens: &[&str], merges: &[(&str, &str)], ignore_merges: bool) -> ByteBpe {
        let tokens: Vec<String> = tokens.iter().map(|s| s.to_string()).collect();
        let merges: Vec<(String, String)> = merges.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let pre = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, true));
        ByteBpe::new(&tokens, &merges, pre, ignore_merges, [0]).unwrap()
    }

    #[test]
    fn merges_by_rank_then_leftmost() {
        // ids: 0 <s>, 1 a, 2 b, 3 c, 4 ab, 5 bc, 6 abc, 7 aa
        let toks = ["<s>", "a", "b", "c", "ab", "bc", "abc", "aa"];
        // "bc" ranks before "ab": a·bc, then a + bc → abc
        let b = bpe(&toks, &[("b", "c"), ("a", "b"), ("a", "bc"), ("a", "a")], false);
        assert_eq!(b.encode("abc").unwrap(), vec![6]);
        assert_eq!(b.encode("ab").unwrap(), vec![4]);
        // equal ranks: the leftmost pair first (aa·a, not a·aa)
        assert_eq!(b.encode("aaa").unwrap(), vec![7, 1]);
        // specials from the raw text; a character without a piece is dropped
        assert_eq!(b.encode("ab<s>cz").unwrap(), vec![4, 0, 3]);
        assert_eq!(b.encode("").unwrap(), Vec::<u32>::new());
        // a word that is a piece, with ignore_merges, is that piece even where merges would not reach it
        let b = bpe(&toks, &[("a", "b")], true);
        assert_eq!(b.encode("abc").unwrap(), vec![6]);
        let b = bpe(&toks, &[("a", "b")], false);
        assert_eq!(b.encode("abc").unwrap(), vec![4, 3]);
    }

    #[test]
    fn a_merge_outside_the_vocabulary_is_an_error() {
        let tokens: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let pre = || PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, true));
        let err = ByteBpe::new(&tokens, &[("a".into(), "b".into())], pre(), false, []).err().unwrap();
        assert!(err.contains("`ab` is not in the vocabulary"), "{err}");
        assert!(ByteBpe::new(&tokens, &[("a".into(), "x".into())], pre(), false, []).is_err());
    }
}
