//! A quantized chat model loaded from GGUF: the llama family (Llama 2/3,
//! Mistral, SmolLM) and Gemma 3 through Tresor's own forward passes
//! ([`crate::llama`], [`crate::gemma`] on the CPU), Qwen2 through
//! candle-transformers' quantized model. Plain `load` / `forward` /
//! `generate`.
//!
//! Generation streams text through a callback, stops on EOS, stop strings,
//! the token budget, the context length or cancellation, and reuses the KV
//! cache when a prompt extends the previous one (the next turn of the same
//! conversation). [`LlmModel::generate_constrained`] runs the same loop under
//! a [`TokenConstraint`] (a grammar). Owns inference; never touches files
//! other than the GGUF.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{quantized_gemma3, quantized_llama, quantized_qwen2};
use serde::Serialize;

use crate::constrain::{restrict_logits, Step, TokenConstraint};
use crate::error::{LlmError, Result};
use crate::gguf::GgufFile;
use crate::sampling::{Sampler, SamplingParams};
use crate::template::{ChatMessage, ChatTemplate};
use crate::tokenizer::GgufTokenizer;

/// Context used when a model supports more and the caller sets no cap:
/// rotary tables and the KV cache are sized by it.
pub const DEFAULT_MAX_CONTEXT: usize = 32_768;

/// Architectures this runtime runs, as GGUF names them.
pub const SUPPORTED_ARCHITECTURES: &str = "llama, mistral, qwen2, gemma3";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Llama,
    Qwen2,
    Gemma3,
}

enum Weights {
    Llama(crate::llama::LlamaWeights),
    /// candle's own implementation, for A/B runs (`TRESOR_LLAMA_IMPL=candle`).
    CandleLlama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    /// Tresor's Gemma 3 forward (the CPU default).
    Gemma(crate::gemma::GemmaWeights),
    /// candle's implementation: other devices, and A/B runs
    /// (`TRESOR_GEMMA_IMPL=candle`). Its mask breaks for several tokens
    /// after a cached prefix, so it never reuses one (see `forward`).
    CandleGemma3(quantized_gemma3::ModelWeights),
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Template name (`chatml`, `llama3`, `mistral`, `gemma`); None: from the GGUF.
    pub chat_template: Option<String>,
    /// Cap the context below what the model supports (to bound memory).
    pub context_length: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops before any of these strings; they are not emitted.
    pub stop: Vec<String>,
    /// Set to true from another thread to stop generation.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams { max_tokens: 256, sampling: SamplingParams::default(), stop: Vec::new(), cancel: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn (EOS / end-of-turn token).
    Eos,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` reached.
    Length,
    /// The context window is full.
    ContextFull,
    /// Cancelled by the caller.
    Cancelled,
}

/// Where a [`Generation`]'s token counts (`tokens.len()`, `prompt_tokens`) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenCounts {
    /// Counted by this process's tokenizer (a local model).
    #[default]
    Tokenizer,
    /// Reported by a remote server (the `usage` of its stream).
    Server,
    /// Estimated: a remote server that reports no `usage` (completion tokens: the streamed
    /// pieces; prompt tokens: `remote::estimate_tokens` of the messages).
    Estimated,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
    /// Whether the counts are exact (tokenizer, server) or estimated.
    pub token_counts: TokenCounts,
    /// Prompt tokens whose KV entries were reused from the previous call.
    pub reused_prompt_tokens: usize,
    pub prefill_ms: f64,
    /// Time to first token (prefill plus the first sample).
    pub ttft_ms: f64,
    pub total_ms: f64,
    /// Generated tokens per second after the first token.
    pub decode_tps: f64,
}

pub struct LlmModel {
    path: PathBuf,
    arch: Architecture,
    weights: Weights,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    context_length: usize,
    device: Device,
    /// Tokens whose keys/values sit in the KV cache, in order.
    cached: Vec<u32>,
}

impl LlmModel {
    /// Loads a GGUF model. Bad files give a typed error naming the file.
    pub fn load(path: &Path, device: &Device, opts: &LoadOptions) -> Result<Self> {
        let gguf = GgufFile::open(path)?;
        let arch_name = gguf.architecture()?;
        let arch = match arch_name.as_str() {
            "llama" | "mistral" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            "gemma3" => Architecture::Gemma3,
            other => {
                return Err(LlmError::UnsupportedArchitecture {
                    path: path.to_path_buf(),
                    arch: other.to_string(),
                    supported: SUPPORTED_ARCHITECTURES,
                })
            }
        };
        let tokenizer = GgufTokenizer::from_gguf(&gguf)?;
        let template = match (&opts.chat_template, gguf.get_str("tokenizer.chat_template")) {
            (Some(name), jinja) => match ChatTemplate::from_name(name)? {
                // Keep the GGUF's default system prompt when names agree.
                ChatTemplate::ChatMl { .. } => jinja
                    .and_then(ChatTemplate::detect)
                    .filter(|t| matches!(t, ChatTemplate::ChatMl { .. }))
                    .unwrap_or(ChatTemplate::ChatMl { default_system: None }),
                t => t,
            },
            (None, Some(jinja)) => ChatTemplate::detect(jinja).unwrap_or_else(|| fallback_template(arch)),
            (None, None) => fallback_template(arch),
        };
        let candle_llama = std::env::var("TRESOR_LLAMA_IMPL").is_ok_and(|v| v == "candle");
        let candle_gemma = !device.is_cpu() || std::env::var("TRESOR_GEMMA_IMPL").is_ok_and(|v| v == "candle");
        let arch_max = match arch {
            Architecture::Llama if candle_llama => quantized_llama::MAX_SEQ_LEN,
            Architecture::Llama => DEFAULT_MAX_CONTEXT,
            Architecture::Gemma3 if candle_gemma => quantized_gemma3::MAX_SEQ_LEN,
            Architecture::Gemma3 => DEFAULT_MAX_CONTEXT,
            Architecture::Qwen2 => usize::MAX,
        };
        let mut context_length = gguf.context_length().unwrap_or(2048).min(arch_max);
        if let Some(cap) = opts.context_length {
            context_length = context_length.min(cap.max(16));
        }

        let GgufFile { content, mut reader, .. } = gguf;
        let load_err = |reason: String| LlmError::Load { path: path.to_path_buf(), reason };
        // Tresor's own CPU forwards read their weights in place from a
        // mapping of the file (crate::mapped); candle's loaders copy.
        let own = match arch {
            Architecture::Llama => !candle_llama,
            Architecture::Gemma3 => !candle_gemma,
            Architecture::Qwen2 => false,
        };
        let map = own && device.is_cpu() && crate::mapped::mmap_enabled();
        // candle's loaders index metadata freely; turn any panic on odd
        // metadata into an error instead of taking the process down.
        let weights = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> candle_core::Result<Weights> {
            Ok(match arch {
                Architecture::Llama if candle_llama => {
                    Weights::CandleLlama(quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)?)
                }
                Architecture::Llama if map => {
                    let mut m = crate::mapped::MappedGguf::new(reader.get_ref(), &content)?;
                    let w = crate::llama::LlamaWeights::load(&content, &mut m, device, context_length)?;
                    m.settle();
                    Weights::Llama(w)
                }
                Architecture::Llama => Weights::Llama(crate::llama::LlamaWeights::from_gguf(content, &mut reader, device, context_length)?),
                Architecture::Qwen2 => Weights::Qwen2(quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, device)?),
                Architecture::Gemma3 if candle_gemma => {
                    Weights::CandleGemma3(quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, device)?)
                }
                Architecture::Gemma3 if map => {
                    let mut m = crate::mapped::MappedGguf::new(reader.get_ref(), &content)?;
                    let w = crate::gemma::GemmaWeights::from_tensors(&content, &mut m, device, context_length)?;
                    m.settle();
                    Weights::Gemma(w)
                }
                Architecture::Gemma3 => Weights::Gemma(crate::gemma::GemmaWeights::from_gguf(content, &mut reader, device, context_length)?),
            })
        }))
        .map_err(|_| load_err("the loader panicked on this file's metadata".into()))?
        .map_err(|e| load_err(e.to_string()))?;

        Ok(LlmModel {
            path: path.to_path_buf(),
            arch,
            weights,
            tokenizer,
            template,
            context_length,
            device: device.clone(),
            cached: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn architecture(&self) -> Architecture {
        self.arch
    }
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }
    pub fn context_length(&self) -> usize {
        self.context_length
    }
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Prompt ids for a conversation, rendered with the chat template and
    /// ending where the assistant's answer starts. Every message's content is
    /// untrusted text (documents, tool results, the user): control tokens it
    /// spells are neutralised first, so only the template's own markers
    /// become control ids (issue 19 §3).
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let safe: Vec<ChatMessage> = messages
            .iter()
            .map(|m| Ok(ChatMessage { role: m.role, content: self.tokenizer.neutralize(&m.content)? }))
            .collect::<Result<_>>()?;
        let text = self.template.render(&safe, true);
        let mut ids = self.tokenizer.encode(&text, false)?;
        if let Some(bos) = self.tokenizer.bos_id().filter(|_| self.tokenizer.adds_bos()) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// Prompt ids for raw text (special tokens parsed; BOS as the model wants,
    /// never twice).
    pub fn raw_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text, true)?;
        if let Some(bos) = self.tokenizer.bos_id() {
            if ids.len() >= 2 && ids[0] == bos && ids[1] == bos {
                ids.remove(0);
            }
        }
        Ok(ids)
    }

    /// Forgets the KV cache.
    pub fn reset(&mut self) {
        match &mut self.weights {
            Weights::Llama(m) => m.clear_kv_cache(),
            Weights::CandleLlama(m) => m.clear_kv_cache(),
            Weights::Qwen2(m) => m.clear_kv_cache(),
            Weights::Gemma(m) => m.clear_kv_cache(),
            Weights::CandleGemma3(_) => {} // position 0 resets every layer's cache
        }
        self.cached.clear();
    }

    /// Runs `tokens` at position `pos` (the cache must hold exactly `pos`
    /// tokens) and returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(LlmError::Inference("forward called with no tokens".into()));
        }
        if pos + tokens.len() > self.context_length {
            return Err(LlmError::PromptTooLong { tokens: pos + tokens.len(), context: self.context_length, reserve: 0 });
        }
        if pos == 0 || (pos < self.cached.len() && self.can_truncate_cache()) {
            self.cached.truncate(pos);
        } else if pos != self.cached.len() {
            return Err(LlmError::Inference(format!("forward at position {pos}, but the cache holds {}", self.cached.len())));
        }
        if pos > 0 && tokens.len() > 1 && !self.can_chunk_after_prefix() {
            return Err(LlmError::Inference(
                "candle's Gemma 3 cannot run several tokens after a cached prefix (its mask breaks); start at position 0 or use Tresor's forward".into(),
            ));
        }
        let logits = match (&mut self.weights, pos) {
            (Weights::Llama(m), p) => m.forward(tokens, p)?,
            (Weights::Gemma(m), p) => m.forward(tokens, p)?,
            (w, p) => {
                let x = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
                match w {
                    Weights::Llama(_) | Weights::Gemma(_) => unreachable!("handled above"),
                    Weights::CandleLlama(m) => m.forward(&x, p)?,
                    Weights::Qwen2(m) => m.forward(&x, p)?,
                    Weights::CandleGemma3(m) => m.forward(&x, p)?,
                }
            }
        };
        self.cached.extend_from_slice(tokens);
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    /// Whether the KV cache can drop a suffix (Tresor's own forwards can;
    /// candle's models only reset).
    fn can_truncate_cache(&self) -> bool {
        matches!(self.weights, Weights::Llama(_) | Weights::Gemma(_))
    }

    /// Whether several tokens may run after a cached prefix (all but
    /// candle's Gemma 3, whose mask then hides the prefix).
    fn can_chunk_after_prefix(&self) -> bool {
        !matches!(self.weights, Weights::CandleGemma3(_))
    }

    /// Generates an answer to `prompt` (token ids), streaming text pieces to
    /// `on_text`; returning `ControlFlow::Break` from it stops generation.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.run(prompt, params, None, on_text)
    }

    /// [`generate`](Self::generate) under `constraint`: each step samples only
    /// among the tokens it allows (the others' logits are `-inf`), the
    /// model's stop tokens only while it is accepting, tokens it forces run
    /// without sampling, and generation ends when it is finished (reported
    /// as [`FinishReason::Eos`]). Stop strings, the token budget and
    /// cancellation still apply: a [`FinishReason::Length`] output may be
    /// incomplete (ask the constraint's `is_accepting`).
    pub fn generate_constrained(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        constraint: &mut dyn TokenConstraint,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.run(prompt, params, Some(constraint), on_text)
    }

    /// The generation loop of both.
    fn run(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        mut constraint: Option<&mut dyn TokenConstraint>,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let start = Instant::now();
        if prompt.is_empty() {
            return Err(LlmError::Inference("the prompt is empty".into()));
        }
        if prompt.len() >= self.context_length {
            return Err(LlmError::PromptTooLong { tokens: prompt.len(), context: self.context_length, reserve: 1 });
        }
        let mut sampler = Sampler::new(params.sampling.clone())?;

        // Reuse the KV cache for the prefix this prompt shares with what it
        // holds (the next turn of a conversation); at least one token must
        // run to get logits.
        let shared = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count().min(prompt.len() - 1);
        let mut reuse = if shared == self.cached.len() || (shared > 0 && self.can_truncate_cache()) { shared } else { 0 };
        if prompt.len() - reuse > 1 && !self.can_chunk_after_prefix() {
            reuse = 0;
        }
        if reuse == 0 {
            self.reset();
        }
        let mut logits = self.forward(&prompt[reuse..], reuse)?;
        let prefill_ms = ms(start);

        let mut history: Vec<u32> = prompt.to_vec();
        let mut generated: Vec<u32> = Vec::new();
        let mut stream = TextStream::new(&params.stop);
        let mut ttft_ms = 0.0;
        let mut decode_start = Instant::now();
        let finish = loop {
            if params.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                break FinishReason::Cancelled;
            }
            // The next tokens: one sampled, or (under a constraint) the ones
            // it forces, or one sampled among those it allows.
            let step: Vec<u32> = match constraint.as_deref_mut() {
                None => vec![sampler.sample(&mut logits, &history)],
                Some(c) => {
                    let room = params.max_tokens.saturating_sub(generated.len()).min(self.context_length - history.len()).max(1);
                    let mut forced = c.forced()?;
                    forced.truncate(room);
                    if !forced.is_empty() {
                        forced
                    } else {
                        match restrict_logits(c, &mut logits, self.tokenizer.stop_ids().iter().copied())? {
                            Step::Sample => vec![sampler.sample(&mut logits, &history)],
                            Step::End => break FinishReason::Eos,
                        }
                    }
                }
            };
            if generated.is_empty() {
                ttft_ms = ms(start);
                decode_start = Instant::now();
            }
            if step.len() == 1 && self.tokenizer.is_stop(step[0]) {
                break FinishReason::Eos;
            }
            if let Some(c) = constraint.as_deref_mut() {
                for &t in &step {
                    c.commit(t)?;
                }
            }
            generated.extend_from_slice(&step);
            history.extend_from_slice(&step);
            let text = self.tokenizer.decode(&generated, true)?;
            let (piece, hit_stop) = stream.push(&text);
            if !piece.is_empty() && on_text(piece).is_break() {
                break FinishReason::Cancelled;
            }
            if hit_stop {
                break FinishReason::StopString;
            }
            if constraint.as_deref().is_some_and(|c| c.is_finished()) {
                break FinishReason::Eos;
            }
            if generated.len() >= params.max_tokens {
                break FinishReason::Length;
            }
            if history.len() >= self.context_length {
                break FinishReason::ContextFull;
            }
            logits = self.forward_steps(&step, history.len() - step.len())?;
        };
        if finish != FinishReason::StopString {
            let rest = stream.finish();
            if !rest.is_empty() {
                let _ = on_text(rest);
            }
        }
        let decode_secs = decode_start.elapsed().as_secs_f64();
        Ok(Generation {
            text: stream.emitted().to_string(),
            prompt_tokens: prompt.len(),
            token_counts: TokenCounts::Tokenizer,
            reused_prompt_tokens: reuse,
            prefill_ms,
            ttft_ms,
            total_ms: ms(start),
            decode_tps: if generated.len() > 1 && decode_secs > 0.0 { (generated.len() - 1) as f64 / decode_secs } else { 0.0 },
            tokens: generated,
            finish,
        })
    }

    /// Runs the tokens of one step (several when a constraint forced them)
    /// and returns the last one's logits.
    fn forward_steps(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>> {
        if tokens.len() == 1 || self.can_chunk_after_prefix() {
            return self.forward(tokens, pos);
        }
        let mut logits = Vec::new();
        for (i, &t) in tokens.iter().enumerate() {
            logits = self.forward(&[t], pos + i)?;
        }
        Ok(logits)
    }
}

fn fallback_template(arch: Architecture) -> ChatTemplate {
    match arch {
        Architecture::Gemma3 => ChatTemplate::Gemma,
        Architecture::Qwen2 | Architecture::Llama => ChatTemplate::ChatMl { default_system: None },
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Turns the growing decoded text into pieces safe to show: never half a
/// UTF-8 character, never the start of a stop string that may yet complete.
struct TextStream<'a> {
    stops: &'a [String],
    emitted: String,
    /// Full decoded text seen last.
    text: String,
}

impl<'a> TextStream<'a> {
    fn new(stops: &'a [String]) -> Self {
        TextStream { stops, emitted: String::new(), text: String::new() }
    }

    /// Takes the whole decoded text so far; returns the new piece to show and
    /// whether a stop string was reached.
    fn push(&mut self, text: &str) -> (&str, bool) {
        self.text = text.to_string();
        let from = self.emitted.len();
        if !self.text.is_char_boundary(from) || !self.text.starts_with(self.emitted.as_str()) {
            // Decoding changed earlier text (rare merges); hold until stable.
            return ("", false);
        }
        // A stop string anywhere after what the caller has seen (it may
        // straddle the boundary) ends the text there.
        let search_from = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let window_start = floor_boundary(&self.text, from.saturating_sub(search_from));
        if let Some(cut) = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[window_start..].find(s.as_str()).map(|i| window_start + i))
            .min()
        {
            let cut = cut.max(from);
            self.emitted.push_str(&self.text[from..cut]);
            return (&self.emitted[from..], true);
        }
        let mut safe = self.text.len();
        if self.text.ends_with('\u{FFFD}') {
            safe = self.text.trim_end_matches('\u{FFFD}').len();
        }
        // Hold back a tail that could begin a stop string.
        for s in self.stops.iter().filter(|s| !s.is_empty()) {
            for k in (1..s.len()).rev() {
                if s.is_char_boundary(k) && self.text[..safe].ends_with(&s[..k]) {
                    safe = safe.min(self.text.len() - k);
                    break;
                }
            }
        }
        let safe = floor_boundary(&self.text, safe.max(from));
        self.emitted.push_str(&self.text[from..safe]);
        (&self.emitted[from..], false)
    }

    /// What was held back, at the end of generation.
    fn finish(&mut self) -> &str {
        let from = self.emitted.len();
        if self.text.starts_with(self.emitted.as_str()) && self.text.len() > from {
            let rest = self.text[from..].trim_end_matches('\u{FFFD}').to_string();
            self.emitted.push_str(&rest);
        }
        &self.emitted[from..]
    }

    fn emitted(&self) -> &str {
        &self.emitted
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], steps: &[&str]) -> (Vec<String>, bool, String) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut ts = TextStream::new(&stops);
        let mut pieces = Vec::new();
        let mut hit = false;
        for s in steps {
            let (p, h) = ts.push(s);
            pieces.push(p.to_string());
            if h {
                hit = true;
                break;
            }
        }
        if !hit {
            pieces.push(ts.finish().to_string());
        }
        (pieces, hit, ts.emitted().to_string())
    }

    #[test]
    fn stream_emits_increments() {
        let (p, hit, all) = run(&[], &["Hel", "Hello", "Hello world"]);
        assert_eq!(p, vec!["Hel", "lo", " world", ""]);
        assert!(!hit);
        assert_eq!(all, "Hello world");
    }

    #[test]
    fn stream_holds_partial_utf8_and_stop_prefixes() {
        let (p, _, all) = run(&["\nUser:"], &["Gr\u{FFFD}", "Grü", "Grüß\n", "Grüß\nUs", "Grüß\nUser:"]);
        assert_eq!(p, vec!["Gr", "ü", "ß", "", ""]);
        assert_eq!(all, "Grüß");
    }

    #[test]
    fn stream_stop_string_in_one_step() {
        let (_, hit, all) = run(&["END"], &["abc", "abcdefENDxyz"]);
        assert!(hit);
        assert_eq!(all, "abcdef");
    }

    #[test]
    fn stream_releases_held_tail_at_finish() {
        let (_, hit, all) = run(&["STOP"], &["go ST"]);
        assert!(!hit);
        assert_eq!(all, "go ST");
    }
}
