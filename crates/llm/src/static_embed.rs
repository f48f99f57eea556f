//! The static sentence embedder: one vector per vocabulary token, distilled
//! from a sentence encoder; a text's vector is the L2-normalised sum of its
//! tokens' rows. No attention, no context: a table lookup per token, so it
//! embeds at tokenizer speed (hundreds of times the encoder's rate on a
//! laptop CPU) at lower quality. It is the bulk-ingest tier; its quality is
//! measured on the retrieval gold set (crates/kb/README.md).
//!
//! Distillation follows model2vec's recipe: every vocabulary token alone
//! (`[CLS] token [SEP]`) through the encoder, mean-pooled and normalised as
//! the encoder's own sentence vectors are, then weighted by `ln(1 + rank)`
//! with rank the token's vocabulary position (WordPiece vocabularies are
//! frequency ordered, so frequent tokens weigh less, as in IDF/SIF).
//! Special and unused tokens get zero rows.
//!
//! On disk, a folder (loaded by [`crate::embed::Embedder::load`] like any
//! embedder folder):
//! - `config.json`: `{"model_type": "static", "dim", "vocab", "max_seq_length",
//!   "source", "weighting"}`;
//! - `tokenizer.json`: the source encoder's tokenizer, unchanged (chunk token
//!   counts are the same under both);
//! - `embeddings.safetensors`: one F32 tensor `embeddings`, vocab × dim,
//!   already weighted.
//!
//! Owns the table format, distillation and lookup; never runs the encoder
//! itself (the caller passes it in) and never writes outside its folder.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{LlmError, Result};

/// The weights file of a static embedder folder.
pub const WEIGHTS: &str = "embeddings.safetensors";
/// `config.json`'s `model_type` of a static embedder folder.
pub const MODEL_TYPE: &str = "static";

/// `config.json` of a static embedder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticConfig {
    pub model_type: String,
    pub dim: usize,
    pub vocab: usize,
    /// Tokens of a text that count (the source encoder's limit, for chunking).
    pub max_seq_length: usize,
    /// The encoder it was distilled from (its model id).
    pub source: String,
    pub weighting: String,
}

/// Whether `dir` holds a static embedder (its `config.json` says so).
pub fn is_static_dir(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("model_type").and_then(|m| m.as_str()) == Some(MODEL_TYPE))
}

/// The token table.
pub struct StaticTable {
    pub config: StaticConfig,
    /// vocab × dim, row-major, weighted.
    rows: Vec<f32>,
}

impl StaticTable {
    /// Reads `config.json` and `embeddings.safetensors` of `dir`, checking
    /// that the tensor's shape is the config's.
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |reason: String| LlmError::Load { path: dir.to_path_buf(), reason };
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| LlmError::Io { path: cfg_path.clone(), source })?;
        let config: StaticConfig = serde_json::from_str(&text).map_err(|e| bad(format!("config.json: {e}")))?;
        if config.model_type != MODEL_TYPE {
            return Err(bad(format!("config.json: model_type `{}` is not `{MODEL_TYPE}`", config.model_type)));
        }
        let weights = dir.join(WEIGHTS);
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|e| bad(format!("{WEIGHTS}: {e}")))?;
        let t = tensors.get("embeddings").ok_or_else(|| bad(format!("{WEIGHTS} has no `embeddings` tensor")))?;
        if t.dims() != [config.vocab, config.dim] {
            return Err(bad(format!("{WEIGHTS}: embeddings are {:?}, config.json says {} × {}", t.dims(), config.vocab, config.dim)));
        }
        let rows = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        if rows.iter().any(|v| !v.is_finite()) {
            return Err(bad(format!("{WEIGHTS}: embeddings contain NaN or infinite values")));
        }
        Ok(StaticTable { config, rows })
    }

    pub fn dim(&self) -> usize {
        self.config.dim
    }

    /// The normalised sum of the rows of `ids` (ids outside the vocabulary
    /// are skipped); all zeros when no token has a row.
    pub fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let d = self.config.dim;
        let mut v = vec![0f32; d];
        for &id in ids {
            let id = id as usize;
            if id < self.config.vocab {
                for (a, b) in v.iter_mut().zip(&self.rows[id * d..(id + 1) * d]) {
                    *a += b;
                }
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 1e-12 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

/// The ids that get a row: everything but special tokens and WordPiece's
/// `[unusedN]` placeholders.
fn distilled_ids(tokenizer: &tokenizers::Tokenizer) -> Vec<(u32, bool)> {
    let vocab = tokenizer.get_vocab(true);
    let special: std::collections::HashSet<u32> = tokenizer.get_added_tokens_decoder().keys().copied().collect();
    let mut ids: Vec<(u32, bool)> = vocab
        .iter()
        .map(|(tok, &id)| {
            let placeholder = tok.len() > 2 && tok.starts_with('[') && tok.ends_with(']');
            (id, !(special.contains(&id) || placeholder))
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Distils a static table from `encoder` (a function from token-id
/// sequences, specials included, to normalised sentence vectors) into
/// `out`: `tokenizer.json` copied from `source_dir`, the weighted table and
/// `config.json`, each written to a temporary name first and renamed, the
/// config last (a folder without a config is not an embedder, so a killed
/// distillation leaves nothing loadable half-written).
pub fn distill(
    encoder: &dyn Fn(&[Vec<u32>]) -> Result<Vec<Vec<f32>>>,
    tokenizer: &tokenizers::Tokenizer,
    source_dir: &Path,
    source_id: &str,
    max_seq_length: usize,
    out: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<StaticConfig> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LlmError::Io { path: path.clone(), source }
    };
    let cls = tokenizer.token_to_id("[CLS]");
    let sep = tokenizer.token_to_id("[SEP]");
    let ids = distilled_ids(tokenizer);
    let vocab = ids.last().map_or(0, |(id, _)| *id as usize + 1);
    let wanted: Vec<u32> = ids.iter().filter(|(_, keep)| *keep).map(|(id, _)| *id).collect();
    if wanted.is_empty() {
        return Err(LlmError::Load { path: source_dir.to_path_buf(), reason: "the tokenizer has no vocabulary to distil".into() });
    }
    let mut rows: Vec<f32> = Vec::new();
    let mut dim = 0usize;
    const BATCH: usize = 1024;
    for (b, chunk) in wanted.chunks(BATCH).enumerate() {
        let seqs: Vec<Vec<u32>> = chunk.iter().map(|&id| cls.into_iter().chain([id]).chain(sep).collect()).collect();
        let vecs = encoder(&seqs)?;
        if vecs.len() != seqs.len() {
            return Err(LlmError::Inference("the encoder returned the wrong number of vectors".into()));
        }
        for (&id, v) in chunk.iter().zip(&vecs) {
            if dim == 0 {
                dim = v.len();
                rows = vec![0f32; vocab * dim];
            }
            if v.len() != dim {
                return Err(LlmError::Inference("the encoder returned vectors of different sizes".into()));
            }
            let w = (1.0 + id as f32).ln();
            for (r, x) in rows[id as usize * dim..(id as usize + 1) * dim].iter_mut().zip(v) {
                *r = w * x;
            }
        }
        progress(((b + 1) * BATCH).min(wanted.len()), wanted.len());
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    // replacing one: it stops being an embedder until the new config lands
    match std::fs::remove_file(out.join("config.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(out)(e)),
        _ => {}
    }
    let tok_src = source_dir.join("tokenizer.json");
    let tok_tmp = out.join("tokenizer.json.tmp");
    std::fs::copy(&tok_src, &tok_tmp).map_err(io(&tok_src))?;
    std::fs::rename(&tok_tmp, out.join("tokenizer.json")).map_err(io(out))?;
    let table = Tensor::from_vec(rows, (vocab, dim), &Device::Cpu)?;
    let w_tmp = out.join(format!("{WEIGHTS}.tmp"));
    candle_core::safetensors::save(&std::collections::HashMap::from([("embeddings".to_string(), table)]), &w_tmp)
        .map_err(|e| LlmError::Load { path: w_tmp.clone(), reason: format!("writing: {e}") })?;
    std::fs::rename(&w_tmp, out.join(WEIGHTS)).map_err(io(out))?;
    let config = StaticConfig {
        model_type: MODEL_TYPE.into(),
        dim,
        vocab,
        max_seq_length,
        source: source_id.to_string(),
        weighting: "ln(1 + vocabulary rank)".into(),
    };
    let c_tmp = out.join("config.json.tmp");
    std::fs::write(&c_tmp, serde_json::to_string_pretty(&config).expect("config serialises")).map_err(io(&c_tmp))?;
    std::fs::rename(&c_tmp, out.join("config.json")).map_err(io(out))?;
    Ok(config)
}

/// Where the static tier of the encoder in `source_dir` lives by default: a
/// sibling folder `<name>-static`.
pub fn default_dir(source_dir: &Path) -> std::path::PathBuf {
    let name = source_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "embedder".into());
    source_dir.with_file_name(format!("{name}-static"))
}

/// [`distill`] from a loaded encoder (Tresor's CPU encoder; not a static
/// table itself).
pub fn distill_embedder(
    encoder: &crate::embed::Embedder,
    source_dir: &Path,
    out: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<StaticConfig> {
    if encoder.is_static() {
        return Err(LlmError::Load { path: source_dir.to_path_buf(), reason: "already a static embedder: distil from a sentence encoder".into() });
    }
    distill(&|seqs| encoder.embed_ids(seqs), encoder.tokenizer(), source_dir, encoder.model_id(), encoder.max_tokens(), out, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{tiny, Embedder};

    fn distilled(dir: &Path) -> (Embedder, std::path::PathBuf) {
        let src = dir.join("tiny-bert");
        tiny::write(&src, 11, false);
        let enc = Embedder::load(&src, &Device::Cpu).unwrap();
        let out = default_dir(&src);
        let last = std::cell::Cell::new((0, 0));
        let cfg = distill_embedder(&enc, &src, &out, &|d, t| last.set((d, t))).unwrap();
        assert_eq!(out.file_name().unwrap(), "tiny-bert-static");
        assert_eq!((cfg.dim, cfg.vocab), (tiny::HIDDEN, 19));
        assert_eq!(last.get(), (15, 15), "progress ends at every token but [PAD] [UNK] [CLS] [SEP]");
        (enc, out)
    }

    /// A text's vector is the normalised sum over its tokens of the
    /// encoder's own vector for `[CLS] token [SEP]` times ln(1 + id): checked
    /// against the encoder directly, not against the table.
    #[test]
    fn static_vectors_follow_the_recipe_from_the_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let (enc, out) = distilled(dir.path());
        let st = Embedder::load(&out, &Device::Cpu).unwrap();
        assert!(st.is_static() && st.backend().name() == "static");
        assert_eq!((st.dim(), st.max_tokens()), (enc.dim(), enc.max_tokens()));
        assert_ne!(st.model_id(), enc.model_id(), "a knowledge base must tell the two apart");
        let text = "the cat sits on the mat";
        let ids = enc.tokenizer().encode(text, false).unwrap().get_ids().to_vec();
        let (cls, sep) = (enc.tokenizer().token_to_id("[CLS]").unwrap(), enc.tokenizer().token_to_id("[SEP]").unwrap());
        let mut want = vec![0f32; enc.dim()];
        for &id in &ids {
            let v = enc.embed_ids(&[vec![cls, id, sep]]).unwrap().remove(0);
            for (w, x) in want.iter_mut().zip(v) {
                *w += (1.0 + id as f32).ln() * x;
            }
        }
        let n = want.iter().map(|x| x * x).sum::<f32>().sqrt();
        want.iter_mut().for_each(|x| *x /= n);
        let got = st.embed(&[text, "dog runs"]).unwrap();
        let diff = got[0].iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-5, "static vector differs from the recipe by {diff}");
        for v in &got {
            assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // token counts (chunk sizes) are the encoder's
        assert_eq!(st.count_tokens("the stock market fell"), enc.count_tokens("the stock market fell"));
        // a text of unknown or special tokens only has no direction
        assert!(st.embed(&["[CLS]"]).unwrap()[0].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn damaged_tables_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (_, out) = distilled(dir.path());
        let weights = out.join(WEIGHTS);
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let e = Embedder::load(&out, &Device::Cpu).err().expect("a truncated table must not load").to_string();
        assert!(e.contains(WEIGHTS), "{e}");
        std::fs::write(&weights, &bytes).unwrap();
        let cfg = out.join("config.json");
        let text = std::fs::read_to_string(&cfg).unwrap().replace("\"dim\": 16", "\"dim\": 32");
        std::fs::write(&cfg, text).unwrap();
        let e = Embedder::load(&out, &Device::Cpu).err().expect("a shape mismatch must not load").to_string();
        assert!(e.contains("config.json says 19 × 32"), "{e}");
    }
}
