//! The sentence embedder: a BERT encoder (all-MiniLM-L6-v2 by default, any
//! BERT-layout sentence-transformers model from `tresor models pull`):
//! mean pooling over real tokens, L2 normalisation: the same vectors
//! sentence-transformers produces. A folder holding a static token table
//! distilled from such an encoder ([`crate::static_embed`]) loads as the
//! static tier: same tokenizer, a lookup instead of the encoder.
//! On the CPU it runs Tresor's own encoder ([`crate::bert`]: no padding,
//! fused row ops, reused buffers), in int8 ([`crate::i8gemm`], cosine to
//! the f32 vectors ≥ 0.995, tested) where this CPU has a SIMD int8 kernel (AVX-512 VNNI or AVX2)
//! and in f32 otherwise; `TRESOR_EMBED_PRECISION=f32|int8` overrides the
//! choice and `TRESOR_EMBED_IMPL=candle` runs candle-transformers'
//! `BertModel` (the reference, and the path on GPUs).
//! Owns text -> vector only; never stores or searches vectors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub use crate::bert::Precision;
use crate::error::{LlmError, Result};

/// Texts per forward pass of candle's model (padded to the longest).
const BATCH: usize = 32;
/// Tokens per forward pass of Tresor's encoder (no padding): bounds the
/// buffers (~30 MB for MiniLM) while keeping every GEMM large.
const BATCH_TOKENS: usize = 8192;

/// Which implementation runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Tresor's own encoder on the CPU, at this precision.
    Tresor(Precision),
    /// candle-transformers' `BertModel` (reference; GPUs).
    Candle,
    /// A distilled token table ([`crate::static_embed`]): no encoder runs.
    Static,
}

impl Backend {
    /// The default on `device`: candle off the CPU; on the CPU Tresor's
    /// encoder in int8 where a SIMD int8 kernel runs (AVX-512 VNNI or AVX2), else
    /// in f32; overridden by `TRESOR_EMBED_IMPL=candle` and
    /// `TRESOR_EMBED_PRECISION=f32|int8|auto`.
    pub fn default_for(device: &Device) -> Result<Self> {
        if !device.is_cpu() || std::env::var("TRESOR_EMBED_IMPL").is_ok_and(|v| v == "candle") {
            return Ok(Backend::Candle);
        }
        match std::env::var("TRESOR_EMBED_PRECISION").ok().as_deref() {
            Some("f32") => Ok(Backend::Tresor(Precision::F32)),
            None | Some("") | Some("auto") => {
                Ok(Backend::Tresor(if crate::i8gemm::fast_kernel_available() { Precision::Int8 } else { Precision::F32 }))
            }
            Some("int8") => Ok(Backend::Tresor(Precision::Int8)),
            Some(other) => Err(LlmError::Inference(format!("TRESOR_EMBED_PRECISION={other}: expected f32, int8 or auto"))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Tresor(Precision::F32) => "f32",
            Backend::Tresor(Precision::Int8) => "int8",
            Backend::Candle => "candle",
            Backend::Static => "static",
        }
    }
}

enum Engine {
    Tresor(crate::bert::Encoder),
    Candle(BertModel),
    Static(crate::static_embed::StaticTable),
}

pub struct Embedder {
    engine: Engine,
    backend: Backend,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    max_tokens: usize,
    model_id: String,
}

impl Embedder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from
    /// `dir`, on the default backend ([`Backend::default_for`]). The token
    /// limit comes from `sentence_bert_config.json` (`max_seq_length`) when
    /// present, else 256 (bounded by the model's position table).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, Backend::default_for(device)?)
    }

    /// [`Embedder::load`] on a chosen backend (Tresor's encoder runs on the
    /// CPU only). A static embedder folder ([`crate::static_embed`]) loads as
    /// the static tier whatever the backend.
    pub fn load_with(dir: &Path, device: &Device, backend: Backend) -> Result<Self> {
        if crate::static_embed::is_static_dir(dir) {
            return Self::load_static(dir, device);
        }
        if backend == Backend::Static {
            return Err(LlmError::Load { path: dir.to_path_buf(), reason: "not a static embedder folder (config.json model_type `static`)".into() });
        }
        let files = ModelFiles::open(dir)?;
        let config: BertConfig = files.config()?;
        let max_tokens = read_max_seq_length(dir).unwrap_or(256).min(config.max_position_embeddings);
        let mut tokenizer = files.tokenizer(max_tokens)?;
        // Batches are padded by `batch_tensors` (candle) or not at all.
        tokenizer.with_padding(None);
        let vb = files.var_builder(device)?;
        let engine = match backend {
            Backend::Candle => Engine::Candle(
                BertModel::load(vb, &config).map_err(|e| files.err(format!("weights do not match config.json: {e}")))?,
            ),
            Backend::Tresor(_) if !device.is_cpu() => {
                return Err(files.err("Tresor's embedder runs on the CPU; use TRESOR_EMBED_IMPL=candle on other devices".into()))
            }
            Backend::Static => unreachable!("static folders return above"),
            Backend::Tresor(p) => {
                let calibration = if p == Precision::Int8 { calibration_tokens(&tokenizer)? } else { Vec::new() };
                Engine::Tresor(
                    crate::bert::Encoder::load(vb, &config, p, &calibration)
                        .map_err(|e| files.err(format!("weights do not match config.json: {e}")))?,
                )
            }
        };
        Ok(Embedder {
            engine,
            backend,
            tokenizer,
            device: device.clone(),
            dim: config.hidden_size,
            max_tokens,
            model_id: files.identity()?,
        })
    }

    /// A static embedder folder ([`crate::static_embed`]); any device (the
    /// lookup runs on the CPU).
    fn load_static(dir: &Path, device: &Device) -> Result<Self> {
        let table = crate::static_embed::StaticTable::load(dir)?;
        let files = ModelFiles { dir: dir.to_path_buf(), weights: dir.join(crate::static_embed::WEIGHTS) };
        let mut tokenizer = files.tokenizer(table.config.max_seq_length)?;
        tokenizer.with_padding(None);
        Ok(Embedder {
            backend: Backend::Static,
            tokenizer,
            device: device.clone(),
            dim: table.dim(),
            max_tokens: table.config.max_seq_length,
            model_id: files.identity()?,
            engine: Engine::Static(table),
        })
    }

    /// One L2-normalised vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        if let Engine::Static(table) = &self.engine {
            // no special tokens: they have zero rows anyway
            let enc = self
                .tokenizer
                .encode_batch_fast(texts.to_vec(), false)
                .map_err(|e| LlmError::Inference(format!("embedder tokenization failed: {e}")))?;
            return Ok(enc.iter().map(|e| table.embed_ids(e.get_ids())).collect());
        }
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| LlmError::Inference(format!("embedder tokenization failed: {e}")))?;
        // Longest first, so batches hold texts of similar length (less
        // padding for candle; steadier batch sizes for Tresor's encoder).
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(enc[i].get_ids().len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            match self.engine {
                Engine::Candle(_) | Engine::Static(_) => end = (start + BATCH).min(order.len()),
                Engine::Tresor(_) => {
                    let mut tokens = enc[order[start]].get_ids().len();
                    while end < order.len() && tokens + enc[order[end]].get_ids().len() <= BATCH_TOKENS {
                        tokens += enc[order[end]].get_ids().len();
                        end += 1;
                    }
                }
            }
            let batch: Vec<&tokenizers::Encoding> = order[start..end].iter().map(|&i| &enc[i]).collect();
            for (&i, v) in order[start..end].iter().zip(self.embed_batch(&batch)?) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    fn embed_batch(&self, enc: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        let model = match &self.engine {
            Engine::Tresor(e) => {
                let texts: Vec<(&[u32], &[u32])> = enc.iter().map(|e| (e.get_ids(), e.get_type_ids())).collect();
                return Ok(e.embed(&texts));
            }
            Engine::Candle(m) => m,
            Engine::Static(_) => unreachable!("embed() answers static tables itself"),
        };
        let (ids, type_ids, mask) = batch_tensors(enc, &self.device)?;
        let hidden = model.forward(&ids, &type_ids, Some(&mask))?; // (b, n, h)
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (b, n, 1)
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?; // (b, h)
        let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?; // (b, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let normalized = mean.broadcast_div(&norm)?;
        Ok(normalized.to_vec2::<f32>()?)
    }

    /// One normalised vector per token-id sequence (special tokens
    /// included, as the tokenizer adds them), through the encoder itself:
    /// what [`crate::static_embed::distill`] feeds every vocabulary token
    /// through.
    pub fn embed_ids(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        match &self.engine {
            Engine::Tresor(e) => {
                let types: Vec<Vec<u32>> = seqs.iter().map(|s| vec![0; s.len()]).collect();
                let texts: Vec<(&[u32], &[u32])> = seqs.iter().zip(&types).map(|(s, t)| (s.as_slice(), t.as_slice())).collect();
                Ok(e.embed(&texts))
            }
            Engine::Static(t) => Ok(seqs.iter().map(|s| t.embed_ids(s)).collect()),
            Engine::Candle(_) => Err(LlmError::Inference("embedding token ids needs Tresor's CPU encoder (not TRESOR_EMBED_IMPL=candle)".into())),
        }
    }

    /// The tokenizer (the static tier distils its vocabulary).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The folder this embedder was loaded from is a static table.
    pub fn is_static(&self) -> bool {
        matches!(self.engine, Engine::Static(_))
    }

    /// The implementation (and precision) this embedder runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Longest input in tokens (special tokens included); longer text is cut.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }
    /// Word-piece tokens of `text`, without special tokens.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().len() + e.get_overflowing().iter().map(|o| o.get_ids().len()).sum::<usize>())
            .unwrap_or(0)
    }
    /// A stable identity: the folder name and a hash of the config and
    /// weights' size, so a knowledge base can refuse vectors of another model.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }
}

/// Text the int8 encoder is calibrated on at load (per-channel activation
/// ranges, see `bert::smoothing`): short and long, questions and prose,
/// English and German, as queries and chunks are.
const CALIBRATION: &[&str] = &[
    "Thanks!",
    "How many vacation days do I get?",
    "Wie viele Urlaubstage habe ich im Jahr?",
    "What is the capital of France?",
    "The printer on the third floor needs new toner; order it through the facilities desk.",
    "Security updates must be installed within seven days of release. Devices that miss two updates lose network access until an administrator approves them again.",
    "Die Reisekostenabrechnung wird monatlich über das interne System eingereicht; Belege sind als PDF anzuhängen.",
    "The quarterly report shows revenue of 4.2 million EUR (+12 %), driven by the new subscription plans, while support costs fell by 3 % after the self-service portal launched in March.",
    "def embed(texts): return [model.encode(t) for t in texts]  # batch them instead",
    "Customers can request a refund if the product fails during the warranty period. Refunds are paid to the original payment method within 14 days; shipping costs are not refunded unless the item arrived damaged. Contact support with the order number, a photo of the defect and the date of purchase.",
];

fn calibration_tokens(tokenizer: &Tokenizer) -> Result<Vec<(Vec<u32>, Vec<u32>)>> {
    let enc = tokenizer
        .encode_batch(CALIBRATION.to_vec(), true)
        .map_err(|e| LlmError::Inference(format!("embedder tokenization failed: {e}")))?;
    Ok(enc.iter().map(|e| (e.get_ids().to_vec(), e.get_type_ids().to_vec())).collect())
}

/// The files of a Hugging Face-layout encoder folder.
pub(crate) struct ModelFiles {
    pub dir: PathBuf,
    weights: PathBuf,
}

impl ModelFiles {
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(LlmError::Load { path: dir.to_path_buf(), reason: "not a directory with config.json, model.safetensors and tokenizer.json".into() });
        }
        for f in ["config.json", "tokenizer.json", "model.safetensors"] {
            if !dir.join(f).is_file() {
                return Err(LlmError::Load { path: dir.to_path_buf(), reason: format!("{f} is missing") });
            }
        }
        Ok(ModelFiles { dir: dir.to_path_buf(), weights: dir.join("model.safetensors") })
    }

    pub fn err(&self, reason: String) -> LlmError {
        LlmError::Load { path: self.dir.clone(), reason }
    }

    pub fn config_text(&self) -> Result<String> {
        let p = self.dir.join("config.json");
        std::fs::read_to_string(&p).map_err(|source| LlmError::Io { path: p, source })
    }

    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.config_text()?).map_err(|e| self.err(format!("config.json: {e}")))
    }

    pub fn tokenizer(&self, max_tokens: usize) -> Result<Tokenizer> {
        let p = self.dir.join("tokenizer.json");
        let mut tok = Tokenizer::from_file(&p).map_err(|e| LlmError::Tokenizer { path: p.clone(), reason: e.to_string() })?;
        tok.with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| LlmError::Tokenizer { path: p.clone(), reason: e.to_string() })?;
        let pad = tok.get_padding().cloned().unwrap_or_default();
        tok.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..pad }));
        Ok(tok)
    }

    pub fn var_builder(&self, device: &Device) -> Result<VarBuilder<'static>> {
        // Safety: the file is memory-mapped read-only; Tresor never writes
        // model files while they are loaded (installs use rename).
        unsafe { VarBuilder::from_mmaped_safetensors(&[&self.weights], DType::F32, device) }
            .map_err(|e| self.err(format!("model.safetensors: {e}")))
    }

    pub fn identity(&self) -> Result<String> {
        let size = std::fs::metadata(&self.weights).map(|m| m.len()).unwrap_or(0);
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self.config_text()?.bytes().chain(size.to_le_bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        let name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(format!("{name}@{h:016x}"))
    }
}

/// The folder name inside an embedder's model id (`name@hash`, see
/// [`Embedder::model_id`]): where a knowledge base's embedder is looked for.
pub fn model_folder(model_id: &str) -> Option<&str> {
    model_id.rsplit_once('@').map(|(name, _)| name).filter(|n| !n.is_empty())
}

/// Input ids, token type ids and attention mask of a padded batch.
pub(crate) fn batch_tensors<E: std::borrow::Borrow<tokenizers::Encoding>>(enc: &[E], device: &Device) -> Result<(Tensor, Tensor, Tensor)> {
    let n = enc.iter().map(|e| e.borrow().get_ids().len()).max().unwrap_or(0);
    let b = enc.len();
    let mut ids = Vec::with_capacity(b * n);
    let mut types = Vec::with_capacity(b * n);
    let mut mask = Vec::with_capacity(b * n);
    for e in enc {
        let e = e.borrow();
        let pad = n - e.get_ids().len();
        ids.extend(e.get_ids().iter().copied().chain(std::iter::repeat_n(0, pad)));
        types.extend(e.get_type_ids().iter().copied().chain(std::iter::repeat_n(0, pad)));
        mask.extend(e.get_attention_mask().iter().copied().chain(std::iter::repeat_n(0, pad)));
    }
    Ok((
        Tensor::from_vec(ids, (b, n), device)?,
        Tensor::from_vec(types, (b, n), device)?,
        Tensor::from_vec(mask, (b, n), device)?,
    ))
}

fn read_max_seq_length(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("max_seq_length")?.as_u64().map(|x| x as usize)
}

#[cfg(test)]
pub(crate) mod tiny {
    //! A tiny randomly initialised BERT (weights, config, tokenizer) written
    //! by the tests themselves.
    use std::collections::HashMap;
    use std::path::Path;

    use candle_core::{Device, Tensor};
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::Tokenizer;

    pub const HIDDEN: usize = 16;
    const WORDS: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sits", "on", "mat", "dog", "runs", "stock", "market", "fell", "what", "is", "a", "?", "."];

    pub fn write(dir: &Path, seed: u64, with_head: bool) {
        std::fs::create_dir_all(dir).unwrap();
        let layers = 2;
        let config = serde_json::json!({
            "architectures": [if with_head { "BertForSequenceClassification" } else { "BertModel" }],
            "vocab_size": WORDS.len(), "hidden_size": HIDDEN, "num_hidden_layers": layers,
            "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "max_position_embeddings": 64, "type_vocab_size": 2,
            "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "classifier_dropout": null, "model_type": "bert", "num_labels": 1
        });
        std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();

        let dev = Device::Cpu;
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut rnd = |shape: &[usize], scale: f32| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5) * 2.0 * scale
                })
                .collect();
            Tensor::from_vec(v, shape, &dev).unwrap()
        };
        let pre = if with_head { "bert." } else { "" };
        let mut t: HashMap<String, Tensor> = HashMap::new();
        let h = HIDDEN;
        t.insert(format!("{pre}embeddings.word_embeddings.weight"), rnd(&[WORDS.len(), h], 0.5));
        t.insert(format!("{pre}embeddings.position_embeddings.weight"), rnd(&[64, h], 0.1));
        t.insert(format!("{pre}embeddings.token_type_embeddings.weight"), rnd(&[2, h], 0.1));
        t.insert(format!("{pre}embeddings.LayerNorm.weight"), Tensor::ones(h, candle_core::DType::F32, &dev).unwrap());
        t.insert(format!("{pre}embeddings.LayerNorm.bias"), rnd(&[h], 0.01));
        for l in 0..layers {
            let p = format!("{pre}encoder.layer.{l}");
            for (name, o, i) in [
                ("attention.self.query", h, h),
                ("attention.self.key", h, h),
                ("attention.self.value", h, h),
                ("attention.output.dense", h, h),
                ("intermediate.dense", 32, h),
                ("output.dense", h, 32),
            ] {
                t.insert(format!("{p}.{name}.weight"), rnd(&[o, i], 0.3));
                t.insert(format!("{p}.{name}.bias"), rnd(&[o], 0.05));
            }
            for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
                t.insert(format!("{p}.{ln}.weight"), Tensor::ones(h, candle_core::DType::F32, &dev).unwrap());
                t.insert(format!("{p}.{ln}.bias"), rnd(&[h], 0.01));
            }
        }
        if with_head {
            t.insert("bert.pooler.dense.weight".into(), rnd(&[h, h], 0.3));
            t.insert("bert.pooler.dense.bias".into(), rnd(&[h], 0.05));
            t.insert("classifier.weight".into(), rnd(&[1, h], 0.5));
            t.insert("classifier.bias".into(), rnd(&[1], 0.1));
        }
        candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();

        let vocab: HashMap<String, u32> = WORDS.iter().enumerate().map(|(i, w)| (w.to_string(), i as u32)).collect();
        let wp = WordPiece::builder().vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>()).unk_token("[UNK]".into()).build().unwrap();
        let mut tok = Tokenizer::new(wp);
        tok.with_normalizer(Some(BertNormalizer::default()));
        tok.with_pre_tokenizer(Some(BertPreTokenizer));
        tok.with_post_processor(Some(
            TemplateProcessing::builder()
                .try_single("[CLS] $A [SEP]")
                .unwrap()
                .try_pair("[CLS] $A [SEP] $B:1 [SEP]:1")
                .unwrap()
                .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
                .build()
                .unwrap(),
        ));
        tok.save(dir.join("tokenizer.json"), false).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_embedder_normalised_and_padding_invariant() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write(dir.path(), 1, false);
        let e = Embedder::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(e.dim(), tiny::HIDDEN);
        let texts = ["the cat sits on the mat .", "dog", "what is a stock market ?"];
        let batch = e.embed(&texts).unwrap();
        for (t, v) in texts.iter().zip(&batch) {
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{norm}");
            // Alone (no padding) it must give the same vector as in a padded batch.
            let single = &e.embed(&[t]).unwrap()[0];
            let diff = single.iter().zip(v).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(diff < 1e-5, "padding changed the vector of {t:?} by {diff}");
        }
        assert_ne!(batch[0], batch[1]);
        assert_eq!(e.count_tokens("the cat sits"), 3);
        assert!(e.model_id().contains('@'));
    }

    fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn own_encoder_matches_candles_bert() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write(dir.path(), 3, false);
        let texts = ["the cat sits on the mat .", "dog", "what is a stock market ?", "", "the dog runs on the mat . the cat sits ."];
        let reference = Embedder::load_with(dir.path(), &Device::Cpu, Backend::Candle).unwrap().embed(&texts).unwrap();
        let f32s = Embedder::load_with(dir.path(), &Device::Cpu, Backend::Tresor(Precision::F32)).unwrap();
        assert_eq!(f32s.backend().name(), "f32");
        let got = f32s.embed(&texts).unwrap();
        assert_eq!(got.len(), texts.len());
        let d = max_diff(&reference, &got);
        assert!(d < 1e-5, "own f32 encoder differs from candle's BertModel by {d}");
        let int8 = Embedder::load_with(dir.path(), &Device::Cpu, Backend::Tresor(Precision::Int8)).unwrap().embed(&texts).unwrap();
        for (a, b) in reference.iter().zip(&int8) {
            let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            assert!(cos > 0.99, "int8 cosine {cos}");
        }
        assert!(max_diff(&reference, &int8) > 0.0, "int8 gave bit-identical vectors: not quantized?");
    }

    #[test]
    fn order_and_batching_do_not_change_vectors() {
        let dir = tempfile::tempdir().unwrap();
        tiny::write(dir.path(), 5, false);
        let e = Embedder::load_with(dir.path(), &Device::Cpu, Backend::Tresor(Precision::F32)).unwrap();
        let words = ["the", "cat", "sits", "on", "mat", "dog", "runs", "."];
        // Enough texts of varied length to span several token batches.
        let texts: Vec<String> = (0..300).map(|i| (0..(i % 50) + 1).map(|j| words[(i * 7 + j) % words.len()]).collect::<Vec<_>>().join(" ")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let all = e.embed(&refs).unwrap();
        for i in [0, 17, 149, 299] {
            let one = e.embed(&[refs[i]]).unwrap();
            let d = max_diff(&one, &all[i..=i]);
            assert!(d < 1e-5, "text {i} differs by {d} alone vs in a batch");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Embedder::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("config.json is missing"), "{err}");
    }
}
