//! Synthetic Llama-architecture GGUF files with random weights: for loader
//! tests of shapes and tokenizer kinds we cannot ship (Llama 3 style
//! byte-level BPE with the `llama-bpe` pre-tokenizer, the llama3 template),
//! and for speed benchmarks of model shapes like Llama-3.2-1B, whose speed
//! does not depend on the weights' values.
//! Owns writing such files; the runtime never reads anything from here.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::error::{LlmError, Result};

/// xorshift64: cheap, deterministic values for synthetic weights and the
/// kernels' tests (not for anything that needs real randomness).
pub struct XorShift(u64);

impl XorShift {
    /// Starts from `state` as given (must not be 0).
    pub fn new(state: u64) -> XorShift {
        XorShift(state)
    }

    /// Starts from a small seed, spread over the bits (never 0).
    pub fn seeded(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next state.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next value in [0, 1), 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The shape of a Llama-family transformer.
#[derive(Debug, Clone, Copy)]
pub struct LlamaShape {
    pub vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub n_ff: usize,
    pub context: usize,
    /// Whether the output projection is the token embedding (no `output.weight`).
    pub tied: bool,
}

impl LlamaShape {
    /// Llama-3.2-1B: 16 layers, 2048 wide, 32 heads / 8 KV heads, FFN 8192, vocab 128256.
    pub const LLAMA_3_2_1B: LlamaShape =
        LlamaShape { vocab: 128_256, n_embd: 2048, n_layer: 16, n_head: 32, n_kv_head: 8, n_ff: 8192, context: 4096, tied: true };

    /// Llama-3.1-8B: 32 layers, 4096 wide, 32 heads / 8 KV heads, FFN 14336, vocab 128256, its own output projection.
    pub const LLAMA_3_1_8B: LlamaShape =
        LlamaShape { vocab: 128_256, n_embd: 4096, n_layer: 32, n_head: 32, n_kv_head: 8, n_ff: 14_336, context: 8192, tied: false };

    /// A tiny model for tests (Q4_K needs rows of 256).
    pub const TINY: LlamaShape = LlamaShape { vocab: 512, n_embd: 256, n_layer: 2, n_head: 4, n_kv_head: 2, n_ff: 512, context: 256, tied: true };
}

/// GPT-2's byte → printable character map used by byte-level BPE vocabularies.
fn byte_to_char(b: u8) -> char {
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("valid char")
}

const SPECIALS: [&str; 4] = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"];

/// Writes a Llama-architecture GGUF with random weights in `dtype`
/// (norms in f32), a Llama 3 style tokenizer (byte-level BPE, `llama-bpe`,
/// a few merges) and the Llama 3 chat template.
pub fn write_llama_gguf(path: &Path, shape: LlamaShape, dtype: GgmlDType, seed: u64) -> Result<()> {
    let err = |e: candle_core::Error| LlmError::Load { path: path.to_path_buf(), reason: format!("writing synthetic GGUF: {e}") };
    let dev = Device::Cpu;
    let s = shape;
    let head_dim = s.n_embd / s.n_head;

    // Vocabulary: 256 byte tokens, merged words, specials, then filler.
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_to_char(b).to_string()).collect();
    let mut merges = Vec::new();
    for word in ["Ġthe", "Ġcat", "Ġsat", "ĠParis", "in", "er", "ĠHallo"] {
        let chars: Vec<char> = word.chars().collect();
        let mut acc = chars[0].to_string();
        for c in &chars[1..] {
            merges.push(format!("{acc} {c}"));
            acc.push(*c);
            if !tokens.contains(&acc) {
                tokens.push(acc.clone());
            }
        }
    }
    let first_special = tokens.len() as u32;
    tokens.extend(SPECIALS.iter().map(|t| t.to_string()));
    let mut filler = 0;
    while tokens.len() < s.vocab {
        tokens.push(format!("<filler_{filler}>"));
        filler += 1;
    }
    let types: Vec<Value> = (0..tokens.len() as u32)
        .map(|i| Value::I32(if (first_special..first_special + SPECIALS.len() as u32).contains(&i) { 3 } else { 1 }))
        .collect();

    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("tresor-synthetic-llama".into())),
        ("llama.context_length", Value::U32(s.context as u32)),
        ("llama.embedding_length", Value::U32(s.n_embd as u32)),
        ("llama.block_count", Value::U32(s.n_layer as u32)),
        ("llama.feed_forward_length", Value::U32(s.n_ff as u32)),
        ("llama.attention.head_count", Value::U32(s.n_head as u32)),
        ("llama.attention.head_count_kv", Value::U32(s.n_kv_head as u32)),
        ("llama.rope.dimension_count", Value::U32(head_dim as u32)),
        ("llama.rope.freq_base", Value::F32(500_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("llama-bpe".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens.iter().map(|t| Value::String(t.clone())).collect())),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", Value::Array(merges.iter().map(|m| Value::String(m.clone())).collect())),
        ("tokenizer.ggml.bos_token_id", Value::U32(first_special)),
        ("tokenizer.ggml.eos_token_id", Value::U32(first_special + 1)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
        (
            "tokenizer.chat_template",
            Value::String("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}".into()),
        ),
    ];

    let mut rng = XorShift::new(seed);
    let mut rand_tensor = |rows: usize, cols: usize| -> candle_core::Result<QTensor> {
        // values in [-0.05, 0.05)
        let v: Vec<f32> = (0..rows * cols).map(|_| (rng.next_f32() - 0.5) * 0.1).collect();
        QTensor::quantize(&Tensor::from_vec(v, (rows, cols), &dev)?, dtype)
    };
    let ones = |n: usize| -> candle_core::Result<QTensor> { QTensor::quantize(&Tensor::ones(n, candle_core::DType::F32, &dev)?, GgmlDType::F32) };

    let kv = s.n_kv_head * head_dim;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), rand_tensor(s.vocab, s.n_embd).map_err(err)?),
        ("output_norm.weight".into(), ones(s.n_embd).map_err(err)?),
    ];
    for l in 0..s.n_layer {
        let p = format!("blk.{l}");
        tensors.push((format!("{p}.attn_norm.weight"), ones(s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.attn_q.weight"), rand_tensor(s.n_embd, s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.attn_k.weight"), rand_tensor(kv, s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.attn_v.weight"), rand_tensor(kv, s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.attn_output.weight"), rand_tensor(s.n_embd, s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.ffn_norm.weight"), ones(s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.ffn_gate.weight"), rand_tensor(s.n_ff, s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.ffn_up.weight"), rand_tensor(s.n_ff, s.n_embd).map_err(err)?));
        tensors.push((format!("{p}.ffn_down.weight"), rand_tensor(s.n_embd, s.n_ff).map_err(err)?));
    }
    if !s.tied {
        // after the layers, so the tied shapes' weights stay what they were
        tensors.push(("output.weight".into(), rand_tensor(s.vocab, s.n_embd).map_err(err)?));
    }

    let tmp = path.with_extension("gguf.partial");
    let io = |source| LlmError::Io { path: path.to_path_buf(), source };
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).map_err(err)?;
    std::io::Write::flush(&mut f).map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}
