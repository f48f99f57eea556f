//! Tokenizers built from GGUF metadata (`tokenizer.ggml.*`), producing the
//! same ids as llama.cpp for the same text: special (control and
//! user-defined) tokens written in the text are parsed as special tokens.
//!
//! Two vocab kinds are supported, as in llama.cpp:
//! - `gpt2`: byte-level BPE with merges ([`crate::bpe`]), split first by
//!   the pre-tokenizer regexes that `tokenizer.ggml.pre` names (SmolLM,
//!   GPT-2, Llama 3, Qwen2; the `tokenizers` crate's pre-tokenizers, which
//!   hold no vocabulary), decoded from each id's bytes;
//! - `llama`: SentencePiece-style BPE ranked by token score, with byte
//!   fallback (Llama 2, Mistral, Gemma), encoded and decoded by
//!   [`crate::spm`] without a merge table.
//!
//! Neither keeps the `tokenizers` crate's models: their hash maps of owned
//! strings held ~50 MB for Gemma's 262k pieces and ~11 MB for SmolLM2's
//! 49k pieces and merges; [`crate::pieces`] packs a vocabulary into one
//! buffer. Tests keep both encoders equal to the `tokenizers` models they
//! replace, on the shipped vocabularies.
//!
//! Each id's bytes ([`GgufTokenizer::token_bytes`]) come from the vocabulary
//! itself (byte-level BPE's byte-to-unicode map; SentencePiece's `▁` and
//! `<0xXX>` byte pieces), packed into one buffer: grammar-constrained
//! decoding works on bytes.
//!
//! Owns text <-> ids only; never runs a model.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::bpe::ByteBpe;
use crate::error::{LlmError, Result};
use crate::gguf::{value_as_u64, GgufFile};
use crate::pieces::Pieces;
use crate::spm::Spm;

// GGUF token types (llama.cpp's llama_token_type).
const TOKEN_TYPE_NORMAL: i64 = 1;
const TOKEN_TYPE_UNKNOWN: i64 = 2;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
const TOKEN_TYPE_UNUSED: i64 = 5;
const TOKEN_TYPE_BYTE: i64 = 6;

const GPT2_REGEX: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The kind of vocabulary, as `tokenizer.ggml.model` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// Byte-level BPE (`gpt2`).
    BytePairBpe,
    /// SentencePiece BPE by scores (`llama`).
    SentencePiece,
}

/// What one id stands for in generated output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenBytes<'a> {
    /// Text: these bytes (possibly part of a UTF-8 character, e.g. a byte token).
    Text(&'a [u8]),
    /// A special token (control, unknown or unused): no text of its own; the
    /// string is its name in the vocabulary (`<|im_end|>`).
    Special(&'a str),
}

/// Every id's [`TokenBytes`], packed: the bytes (text, or a special's name)
/// in one buffer and one bit per id for "special".
struct TokenTable {
    bytes: Pieces,
    special: Vec<u64>,
}

impl TokenTable {
    fn get(&self, id: u32) -> Option<TokenBytes<'_>> {
        let b = self.bytes.get(id)?;
        if self.special[id as usize / 64] >> (id % 64) & 1 == 1 {
            // a special's name came from a String
            Some(TokenBytes::Special(std::str::from_utf8(b).unwrap_or_default()))
        } else {
            Some(TokenBytes::Text(b))
        }
    }
}

/// What encodes a vocabulary (and, for SentencePiece, decodes it): the
/// byte-level BPE or the SentencePiece encoder. Cheap to clone (the
/// grammar engine keeps one).
#[derive(Clone)]
pub(crate) enum Encoder {
    Bpe(Arc<ByteBpe>),
    Spm(Arc<Spm>),
}

/// A tokenizer for one GGUF model, plus the special ids generation needs.
#[derive(Clone)]
pub struct GgufTokenizer {
    encoder: Encoder,
    kind: VocabKind,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    /// Ids that end a turn: EOS, EOT and the templates' end-of-turn markers.
    stop_ids: HashSet<u32>,
    /// Control tokens, hidden when text is shown to a person.
    control_ids: HashSet<u32>,
    /// Each id's bytes, computed from the vocabulary at load.
    token_bytes: Arc<TokenTable>,
    /// The grammar engine's view of this vocabulary (costly to build: made
    /// on first use, shared by clones of this tokenizer).
    grammar_env: Arc<OnceLock<Arc<crate::grammar::GrammarEnv>>>,
}

impl Encoder {
    /// The vocabulary's pieces as it spells them.
    fn pieces(&self) -> &Pieces {
        match self {
            Encoder::Spm(spm) => spm.pieces(),
            Encoder::Bpe(bpe) => bpe.pieces(),
        }
    }

    /// Ids of `text` as [`GgufTokenizer::encode`] without BOS/EOS.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Encoder::Spm(spm) => Ok(spm.encode(text)),
            Encoder::Bpe(bpe) => bpe.encode(text).map_err(|e| LlmError::Inference(format!("tokenization failed: {e}"))),
        }
    }
}

impl GgufTokenizer {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let path = gguf.path.as_path();
        let err = |reason: String| LlmError::Tokenizer { path: path.to_path_buf(), reason };
        let md = gguf.metadata();
        let model = gguf.get_str("tokenizer.ggml.model").ok_or_else(|| err("`tokenizer.ggml.model` is missing".into()))?;
        let tokens: Vec<String> = md
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .ok_or_else(|| err("`tokenizer.ggml.tokens` is missing".into()))?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| err(format!("token is not a string: {e}"))))
            .collect::<Result<_>>()?;
        if tokens.is_empty() {
            return Err(err("the vocabulary is empty".into()));
        }
        let token_types: Vec<i64> = match md.get("tokenizer.ggml.token_type").and_then(|v| v.to_vec().ok()) {
            Some(v) => v.iter().map(|t| value_as_i64(t).unwrap_or(TOKEN_TYPE_NORMAL)).collect(),
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
        };
        if token_types.len() != tokens.len() {
            return Err(err(format!("{} token types for {} tokens", token_types.len(), tokens.len())));
        }
        let get_id = |key: &str| gguf.get_u32(key).filter(|&id| (id as usize) < tokens.len());

        // Control and user-defined tokens are matched in the text first, as
        // llama.cpp does with parse_special.
        let special_ids: Vec<u32> = (0..tokens.len())
            .filter(|&id| (token_types[id] == TOKEN_TYPE_CONTROL || token_types[id] == TOKEN_TYPE_USER_DEFINED) && !tokens[id].is_empty())
            .map(|id| id as u32)
            .collect();
        let control_ids: HashSet<u32> = special_ids.iter().copied().filter(|&id| token_types[id as usize] == TOKEN_TYPE_CONTROL).collect();

        let (encoder, kind) = match model {
            "gpt2" => (Encoder::Bpe(Arc::new(build_byte_level_bpe(gguf, &tokens, &special_ids, path)?)), VocabKind::BytePairBpe),
            "llama" => (Encoder::Spm(Arc::new(build_sentencepiece(gguf, &tokens, &special_ids, path)?)), VocabKind::SentencePiece),
            other => return Err(err(format!("vocabulary type `{other}` is not supported (supported: gpt2, llama)"))),
        };

        let bos_id = get_id("tokenizer.ggml.bos_token_id");
        let eos_id = get_id("tokenizer.ggml.eos_token_id");
        let default_add_bos = kind == VocabKind::SentencePiece;
        let add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos) && bos_id.is_some();
        let add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token").unwrap_or(false) && eos_id.is_some();

        let mut stop_ids: HashSet<u32> = [eos_id, get_id("tokenizer.ggml.eot_token_id")].into_iter().flatten().collect();
        for marker in ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|end|>"] {
            if let Some(id) = tokens.iter().position(|t| t == marker) {
                if control_ids.contains(&(id as u32)) || Some(id as u32) == eos_id {
                    stop_ids.insert(id as u32);
                }
            }
        }
        let mut special = vec![0u64; tokens.len().div_ceil(64)];
        let bytes: Vec<std::borrow::Cow<'_, [u8]>> = tokens
            .iter()
            .zip(&token_types)
            .enumerate()
            .map(|(id, (piece, &ty))| {
                let (b, is_special) = piece_bytes(kind, piece, ty);
                special[id / 64] |= (is_special as u64) << (id % 64);
                b
            })
            .collect();
        let packed = Pieces::packed(bytes.iter().map(|b| &b[..])).map_err(|_| err("the vocabulary's pieces add up to 4 GiB or more".into()))?;
        drop(bytes);
        let token_bytes = Arc::new(TokenTable { bytes: packed, special });
        Ok(GgufTokenizer {
            encoder,
            kind,
            bos_id,
            eos_id,
            add_bos,
            add_eos,
            stop_ids,
            control_ids,
            token_bytes,
            grammar_env: Arc::default(),
        })
    }

    /// Tokenizes like llama.cpp's `llama_tokenize(text, add_special, parse_special = true)`:
    /// with `add_special` the model's BOS (and EOS) are added when its
    /// metadata asks for them.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let enc = self.encoder.encode(text)?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(&enc);
        if add_special && self.add_eos {
            ids.extend(self.eos_id);
        }
        Ok(ids)
    }

    /// `text` with every control token it spells (`<|im_start|>`,
    /// `<start_of_turn>`, `<|eot_id|>`, … whatever this vocabulary marks as
    /// control) broken by a word joiner, so that encoding it never yields a
    /// control id: untrusted text (documents, tool results, user messages)
    /// goes through this before the chat template adds the real markers.
    /// Unchanged (and cheap: one tokenization) when it spells none.
    /// User-defined tokens are left alone, as llama.cpp's parse_special=false does.
    pub fn neutralize(&self, text: &str) -> Result<String> {
        let mut out = text.to_string();
        // a marker broken once cannot re-form; a few rounds cover markers inside markers
        for _ in 0..4 {
            let enc = self.encoder.encode(&out)?;
            let mut found: Vec<String> = enc
                .iter()
                .filter(|id| self.control_ids.contains(id))
                .filter_map(|&id| self.id_to_token(id))
                .filter(|t| t.chars().count() >= 2)
                .collect();
            if found.is_empty() {
                return Ok(out);
            }
            found.sort();
            found.dedup();
            out = crate::template::escape_markers(&out, &found).into_owned();
        }
        Ok(out)
    }

    /// Whether `id` is a control token (BOS, EOS, turn markers).
    pub fn is_control(&self, id: u32) -> bool {
        self.control_ids.contains(&id)
    }

    /// Text of `ids`; with `skip_control` control tokens (BOS, end-of-turn
    /// markers) are left out, as a person should see it.
    pub fn decode(&self, ids: &[u32], skip_control: bool) -> Result<String> {
        let ids: Vec<u32> = if skip_control {
            ids.iter().copied().filter(|id| !self.control_ids.contains(id)).collect()
        } else {
            ids.to_vec()
        };
        match &self.encoder {
            Encoder::Spm(spm) => Ok(spm.decode(&ids)),
            // GPT-2's byte-level decoder: each id's bytes, then UTF-8 (invalid runs as U+FFFD)
            Encoder::Bpe(_) => {
                let mut bytes = Vec::with_capacity(ids.len() * 4);
                for id in ids {
                    match self.token_bytes(id) {
                        Some(TokenBytes::Text(b)) => bytes.extend_from_slice(b),
                        Some(TokenBytes::Special(name)) => bytes.extend_from_slice(name.as_bytes()),
                        None => {}
                    }
                }
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }

    /// The id of a piece as the vocabulary spells it (`Ġthe`, `▁the`, `<|im_end|>`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.encoder.pieces().find(token.as_bytes())
    }
    /// The piece of `id` as the vocabulary spells it.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.encoder.pieces().text(id).map(str::to_string)
    }
    pub fn vocab_size(&self) -> usize {
        self.encoder.pieces().len()
    }
    pub fn kind(&self) -> VocabKind {
        self.kind
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }
    /// Whether the model wants BOS at the start of a sequence.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.contains(&id)
    }
    pub fn stop_ids(&self) -> &HashSet<u32> {
        &self.stop_ids
    }
    /// What encodes this vocabulary (the grammar engine keeps a clone).
    pub(crate) fn encoder(&self) -> &Encoder {
        &self.encoder
    }
    /// What id `id` writes: its bytes, or that it is a special token. None
    /// past the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<TokenBytes<'_>> {
        self.token_bytes.get(id)
    }
    /// Number of entries in the GGUF vocabulary (ids `0..n`).
    pub fn vocab_len(&self) -> usize {
        self.token_bytes.bytes.len()
    }
    /// Heap bytes of the vocabulary tables: each id's bytes, the encoder's
    /// pieces and its scores or merges.
    pub fn table_bytes(&self) -> usize {
        let spm = match &self.encoder {
            Encoder::Spm(spm) => spm.heap_bytes(),
            Encoder::Bpe(bpe) => bpe.heap_bytes(),
        };
        self.token_bytes.bytes.heap_bytes() + 8 * self.token_bytes.special.capacity() + spm
    }
    pub(crate) fn grammar_env_slot(&self) -> &OnceLock<Arc<crate::grammar::GrammarEnv>> {
        &self.grammar_env
    }
}

/// The bytes one vocabulary piece stands for. Control, unknown and unused
/// pieces are special. Byte-level BPE pieces are spelt in GPT-2's
/// byte-to-unicode alphabet (a user-defined piece may be plain text: a
/// character outside that alphabet stands for itself); SentencePiece pieces
/// write spaces as `▁`, and `<0xXX>` byte pieces are one raw byte.
/// Returns the bytes and whether they are a special token's name.
fn piece_bytes<'a>(kind: VocabKind, piece: &'a str, ty: i64) -> (std::borrow::Cow<'a, [u8]>, bool) {
    use std::borrow::Cow;
    match ty {
        TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN | TOKEN_TYPE_UNUSED => return (Cow::Borrowed(piece.as_bytes()), true),
        TOKEN_TYPE_BYTE => {
            if let Some(b) = piece.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                return (Cow::Owned(vec![b]), false);
            }
        }
        _ => {}
    }
    match kind {
        VocabKind::BytePairBpe => {
            let mut out = Vec::with_capacity(piece.len());
            for c in piece.chars() {
                match unicode_to_byte(c) {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            (Cow::Owned(out), false)
        }
        VocabKind::SentencePiece if piece.contains('\u{2581}') => (Cow::Owned(piece.replace('\u{2581}', " ").into_bytes()), false),
        VocabKind::SentencePiece => (Cow::Borrowed(piece.as_bytes()), false),
    }
}

/// GPT-2's byte-to-unicode map, inverted: the byte a character of a
/// byte-level BPE piece stands for (printable Latin-1 bytes are themselves,
/// the other 68 bytes are U+0100.. in byte order).
fn unicode_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match cp {
        33..=126 | 161..=172 | 174..=255 => Some(cp as u8),
        // the non-printable bytes in order: 0..=32, 127..=160, 173
        256..=288 => Some((cp - 256) as u8),
        289..=322 => Some((cp - 289 + 127) as u8),
        323 => Some(173),
        _ => None,
    }
}

fn value_as_i64(v: &candle_core::quantized::gguf_file::Value) -> Option<i64> {
    use candle_core::quantized::gguf_file::Value;
    match v {
        Value::I32(x) => Some(*x as i64),
        Value::I64(x) => Some(*x),
        Value::I8(x) => Some(*x as i64),
        Value::I16(x) => Some(*x as i64),
        other => value_as_u64(other).map(|x| x as i64),
    }
}

fn split(regex: &str, path: &Path) -> Result<PreTokenizerWrapper> {
    Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false)
        .map(PreTokenizerWrapper::Split)
        .map_err(|e| LlmError::Tokenizer { path: path.to_path_buf(), reason: format!("bad pre-tokenizer regex: {e}") })
}

/// `tokenizer.ggml.pre` → the regexes llama.cpp splits with, in order, and
/// whether whole words found in the vocabulary skip merging (Llama 3).
fn pre_tokenizer_regexes(pre: &str) -> (Vec<&'static str>, bool) {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "llama4" => (vec![LLAMA3_REGEX], true),
        "qwen2" | "deepseek-r1-qwen" | "qwen35" => (vec![QWEN2_REGEX], false),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            (vec![r"\p{N}", GPT2_REGEX], false)
        }
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" => {
            (vec![GPT2_REGEX], false)
        }
        other => {
            tracing::warn!(pre = other, "unknown tokenizer.ggml.pre; using the GPT-2 pre-tokenizer");
            (vec![GPT2_REGEX], false)
        }
    }
}

/// The merges of a byte-level BPE vocabulary, in rank order.
fn gguf_merges(gguf: &GgufFile, path: &Path) -> Result<Vec<(String, String)>> {
    let err = |reason: String| LlmError::Tokenizer { path: path.to_path_buf(), reason };
    gguf.metadata()
        .get("tokenizer.ggml.merges")
        .and_then(|v| v.to_vec().ok())
        .ok_or_else(|| err("`tokenizer.ggml.merges` is missing (required for a gpt2 vocabulary)".into()))?
        .iter()
        .map(|m| {
            let m = m.to_string().map_err(|e| err(format!("merge is not a string: {e}")))?;
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| err(format!("merge `{m}` has no space")))
        })
        .collect()
}

/// The pre-tokenizer `tokenizer.ggml.pre` names (regex splits, then GPT-2's
/// byte-to-unicode map) and whether whole words skip merging.
fn byte_level_pre_tokenizer(gguf: &GgufFile, path: &Path) -> Result<(PreTokenizerWrapper, bool)> {
    let pre = gguf.get_str("tokenizer.ggml.pre").unwrap_or("default");
    let (regexes, ignore_merges) = pre_tokenizer_regexes(pre);
    let mut pre_tokenizers = regexes.into_iter().map(|r| split(r, path)).collect::<Result<Vec<_>>>()?;
    pre_tokenizers.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)));
    Ok((PreTokenizerWrapper::Sequence(PreTokenizerSequence::new(pre_tokenizers)), ignore_merges))
}

fn build_byte_level_bpe(gguf: &GgufFile, tokens: &[String], special_ids: &[u32], path: &Path) -> Result<ByteBpe> {
    let merges = gguf_merges(gguf, path)?;
    let (pre, ignore_merges) = byte_level_pre_tokenizer(gguf, path)?;
    ByteBpe::new(tokens, &merges, pre, ignore_merges, special_ids.iter().copied())
        .map_err(|reason| LlmError::Tokenizer { path: path.to_path_buf(), reason: format!("cannot build BPE: {reason}") })
}

/// A SentencePiece vocabulary: [`Spm`] (llama.cpp's SPM algorithm by
/// scores, which needs no merge table; it decodes too).
fn build_sentencepiece(gguf: &GgufFile, tokens: &[String], special_ids: &[u32], path: &Path) -> Result<Spm> {
    let err = |reason: String| LlmError::Tokenizer { path: path.to_path_buf(), reason };
    let scores: Vec<f32> = match gguf.metadata().get("tokenizer.ggml.scores").and_then(|v| v.to_vec().ok()) {
        Some(v) => v.iter().map(|s| s.to_f32().unwrap_or(0.0)).collect(),
        None => (0..tokens.len()).map(|i| -(i as f32)).collect(),
    };
    if scores.len() != tokens.len() {
        return Err(err(format!("{} scores for {} tokens", scores.len(), tokens.len())));
    }
    let unk_id = gguf.get_u32("tokenizer.ggml.unknown_token_id").filter(|&id| (id as usize) < tokens.len());
    let add_space_prefix = gguf.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
    Spm::new(tokens, scores, special_ids.iter().copied(), unk_id, add_space_prefix)
        .map_err(|_| err("the vocabulary's pieces add up to 4 GiB or more".into()))
}


#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::decoders::DecoderWrapper;
    use tokenizers::models::bpe::BPE;
    use tokenizers::{AddedToken, Tokenizer};

    type Vocab = ahash::AHashMap<String, u32>;
    use tokenizers::decoders::byte_fallback::ByteFallback;
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::decoders::sequence::Sequence as DecoderSequence;
    use tokenizers::decoders::strip::Strip;
    use tokenizers::normalizers::Replace;

    use crate::test_models::shipped;

    /// A GGUF vocabulary's pieces and token types, as the file has them.
    fn gguf_vocab(gguf: &GgufFile) -> (Vec<String>, Vec<i64>) {
        let md = gguf.metadata();
        let tokens: Vec<String> = md["tokenizer.ggml.tokens"].to_vec().unwrap().iter().map(|v| v.to_string().unwrap().clone()).collect();
        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v.to_vec().unwrap().iter().map(|v| value_as_i64(v).unwrap()).collect(),
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
        };
        (tokens, types)
    }

    /// The control and user-defined pieces as `tokenizers` special tokens (what Tresor added before).
    fn add_specials(tok: &mut Tokenizer, tokens: &[String], types: &[i64]) {
        let specials: Vec<AddedToken> = (0..tokens.len())
            .filter(|&id| matches!(types[id], TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED) && !tokens[id].is_empty())
            .map(|id| AddedToken::from(tokens[id].clone(), true))
            .collect();
        tok.add_special_tokens(&specials);
    }

    /// The Hugging Face SentencePiece decoder Tresor used before
    /// `Spm::decode` (vocabulary plus specials, the decoder chain of
    /// `tokenizers`' Llama/Gemma tokenizers).
    fn hf_decoder(gguf: &GgufFile) -> Tokenizer {
        let (tokens, types) = gguf_vocab(gguf);
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect();
        let bpe = BPE::builder().vocab_and_merges(vocab, Vec::new()).byte_fallback(true).fuse_unk(true).unk_token("<unk>".into()).build().unwrap();
        let mut decoders = vec![
            DecoderWrapper::Replace(Replace::new("▁", " ").unwrap()),
            DecoderWrapper::ByteFallback(ByteFallback::default()),
            DecoderWrapper::Fuse(Fuse::default()),
        ];
        if gguf.get_bool("tokenizer.ggml.add_space_prefix").unwrap_or(true) {
            decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
        }
        let mut tok = Tokenizer::new(bpe);
        tok.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(decoders))));
        add_specials(&mut tok, &tokens, &types);
        tok
    }

    /// The `tokenizers` byte-level BPE Tresor used before `bpe.rs` (the
    /// same pre-tokenizer, the vocabulary and merges, the specials added).
    fn hf_byte_level(gguf: &GgufFile) -> Tokenizer {
        let path = gguf.path.as_path();
        let (tokens, types) = gguf_vocab(gguf);
        let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let (pre, ignore_merges) = byte_level_pre_tokenizer(gguf, path).unwrap();
        let bpe = BPE::builder().vocab_and_merges(vocab, gguf_merges(gguf, path).unwrap()).ignore_merges(ignore_merges).build().unwrap();
        let mut tok = Tokenizer::new(bpe);
        tok.with_pre_tokenizer(Some(pre));
        tok.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevelDecoder::default())));
        add_specials(&mut tok, &tokens, &types);
        tok
    }

    /// Random text from a pool that exercises the pre-tokenizers: words,
    /// contractions, digit runs, whitespace runs and newlines, punctuation,
    /// accents, CJK, emoji, and the vocabulary's special pieces.
    fn random_text(rng: &mut crate::synthetic::XorShift, specials: &[&str]) -> String {
        const POOL: &[&str] = &[
            "the", " the", "The", "cat", " sat", "'s", "'re", "n't", "I'm", " 1", "2024", "12345678", " ", "  ", "   ", "\n", "\n\n", "\t", " \n ",
            ".", ",", "!?", "...", "(", ")", "\"", "-", "—", "é", "Grüße", "naïve", "東京", "日本語", "🙂", "👍🏽", "ß", "Ωmega", "x", "_", "$", "%", "&&", "<", ">",
        ];
        let n = 1 + (rng.next_u64() % 16) as usize;
        let mut s = String::new();
        for _ in 0..n {
            if !specials.is_empty() && rng.next_u64().is_multiple_of(12) {
                s.push_str(specials[(rng.next_u64() % specials.len() as u64) as usize]);
            } else {
                s.push_str(POOL[(rng.next_u64() % POOL.len() as u64) as usize]);
            }
        }
        s
    }

    /// Byte-level vocabularies encode and decode as the `tokenizers` BPE
    /// did: SmolLM2's (the `smollm` pre-tokenizer) and a synthetic Llama 3
    /// vocabulary (its regex and `ignore_merges`), 3000 random texts each,
    /// plus every 5th id alone.
    #[test]
    fn byte_level_bpe_equals_the_hugging_face_bpe() {
        let dir = tempfile::tempdir().unwrap();
        let llama3 = dir.path().join("tiny-llama3.gguf");
        crate::synthetic::write_llama_gguf(&llama3, crate::synthetic::LlamaShape::TINY, candle_core::quantized::GgmlDType::F32, 7).unwrap();
        for path in [shipped("SmolLM2-135M-Instruct.Q4_1.gguf"), llama3] {
            let gguf = GgufFile::open(&path).unwrap();
            let t = GgufTokenizer::from_gguf(&gguf).unwrap();
            assert_eq!(t.kind(), VocabKind::BytePairBpe);
            let hf = hf_byte_level(&gguf);
            assert_eq!(t.vocab_size(), hf.get_vocab_size(true));
            let specials: Vec<String> = t.control_ids.iter().filter_map(|&id| t.id_to_token(id)).collect();
            let specials: Vec<&str> = specials.iter().map(String::as_str).collect();
            let mut rng = crate::synthetic::XorShift::new(0xD1B54A32D192ED03);
            for round in 0..3000 {
                let text = random_text(&mut rng, &specials);
                let ours = t.encode(&text, false).unwrap();
                let theirs = hf.encode_fast(text.as_str(), false).unwrap().get_ids().to_vec();
                assert_eq!(ours, theirs, "{}: round {round}: {text:?}", path.display());
                assert_eq!(t.decode(&ours, false).unwrap(), hf.decode(&ours, false).unwrap(), "{}: round {round}", path.display());
            }
            let n = t.vocab_len() as u32;
            for id in (0..n).step_by(5) {
                assert_eq!(t.decode(&[id], false).unwrap(), hf.decode(&[id], false).unwrap(), "{}: id {id}", path.display());
                assert_eq!(t.id_to_token(id), hf.id_to_token(id), "{}: id {id}", path.display());
            }
        }
    }

    /// SmolLM2's vocabulary tables stay small (the `tokenizers` model held ~11 MB).
    #[test]
    fn smollm2_vocabulary_tables_stay_small() {
        let t = GgufTokenizer::from_gguf(&GgufFile::open(&shipped("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap()).unwrap();
        let mb = t.table_bytes() as f64 / (1024.0 * 1024.0);
        assert!(mb < 4.0, "SmolLM2's vocabulary tables take {mb:.1} MB");
    }

    /// Gemma's vocabulary decodes as the `tokenizers` decoder did: random id
    /// sequences (byte pieces, specials, `▁` pieces, ids past the end),
    /// each id alone, and text round trips.
    #[test]
    fn sentencepiece_decoding_equals_the_hugging_face_decoder() {
        let gguf = GgufFile::open(&shipped("gemma-3-270m-q4_k_m.gguf")).unwrap();
        let t = GgufTokenizer::from_gguf(&gguf).unwrap();
        assert_eq!(t.kind(), VocabKind::SentencePiece);
        let hf = hf_decoder(&gguf);
        let n = t.vocab_len() as u32;
        assert_eq!(t.vocab_size(), n as usize);
        let bytes: Vec<u32> = (0..=255u8).filter_map(|b| t.token_to_id(&format!("<0x{b:02X}>"))).collect();
        assert_eq!(bytes.len(), 256, "Gemma has every byte piece");
        let mut rng = crate::synthetic::XorShift::new(0x9E3779B97F4A7C15);
        for round in 0..3000 {
            let len = 1 + (rng.next_u64() % 12) as usize;
            let ids: Vec<u32> = (0..len)
                .map(|_| match rng.next_u64() % 8 {
                    // runs of byte pieces: valid UTF-8 or not
                    0..=2 => bytes[(rng.next_u64() % 256) as usize],
                    3 => n + (rng.next_u64() % 5) as u32,
                    _ => (rng.next_u64() % n as u64) as u32,
                })
                .collect();
            assert_eq!(t.decode(&ids, false).unwrap(), hf.decode(&ids, false).unwrap(), "round {round}: {ids:?}");
        }
        for id in (0..n).step_by(7) {
            assert_eq!(t.decode(&[id], false).unwrap(), hf.decode(&[id], false).unwrap(), "id {id}");
            assert_eq!(t.id_to_token(id), hf.id_to_token(id), "id {id}");
        }
        for text in ["Hello world", " two  spaces", "Grüße, 東京 🙂\n\tend", "<start_of_turn>user\nHi<end_of_turn>"] {
            let ids = t.encode(text, false).unwrap();
            assert_eq!(t.decode(&ids, false).unwrap(), text);
            assert_eq!(hf.decode(&ids, false).unwrap(), text);
        }
    }

    /// The tables Tresor keeps for Gemma's 262k pieces stay small (they were
    /// ~65 MB as `tokenizers` hash maps and one `Vec` per id).
    #[test]
    fn gemma_vocabulary_tables_stay_small() {
        let gguf = GgufFile::open(&shipped("gemma-3-270m-q4_k_m.gguf")).unwrap();
        let t = GgufTokenizer::from_gguf(&gguf).unwrap();
        let mb = t.table_bytes() as f64 / (1024.0 * 1024.0);
        assert!(mb < 12.0, "Gemma's vocabulary tables take {mb:.1} MB");
        // every piece is found by its spelling (the last id of a repeated piece)
        for id in (0..t.vocab_len() as u32).step_by(13) {
            let piece = t.id_to_token(id).unwrap();
            let found = t.token_to_id(&piece).unwrap();
            assert_eq!(t.id_to_token(found).unwrap(), piece);
            assert!(found >= id, "id {id} `{piece}` found as {found}");
        }
    }
}
