//! Tresor's model runtimes on candle: quantized GGUF chat models with their
//! tokenizers, chat templates and sampling (`model`, `tokenizer`,
//! `template`, `sampling`), grammar-constrained decoding (`constrain`,
//! `grammar`), the sentence embedder (`embed`, and its static
//! tier `static_embed`) and the
//! cross-encoder reranker (`rerank`). Each model is a module with a plain
//! `load` / `forward` API.
//!
//! `remote` is the other kind of chat model: an OpenAI-compatible server
//! reached over HTTP (streaming, timeouts, retries, a circuit breaker).
//!
//! This crate runs models; it never downloads them (that is `tresor-models`)
//! and never decides what to ask them (that is the assistant).

pub mod attention;
pub mod bert;
mod bpe;
pub mod constrain;
pub mod device;
pub mod embed;
pub mod error;
pub mod gemma;
pub mod gguf;
pub mod grammar;
pub mod i8gemm;
pub mod kv;
pub mod llama;
#[cfg(test)]
mod logit_stats;
#[cfg(test)]
mod test_models;
pub mod mapped;
pub mod model;
mod pieces;
mod pool;
pub mod qmatmul;
pub mod remote;
pub mod rerank;
pub mod sampling;
mod specials;
mod spm;
pub mod static_embed;
pub mod synthetic;
pub mod template;
pub mod tokenizer;

pub use candle_core::Device;
pub use device::{device_from_str, set_cpu_threads};
pub use constrain::{TokenConstraint, TokenMask};
pub use error::{GrammarError, LlmError, Result};
pub use grammar::{Grammar, GrammarConstraint};
pub use model::{FinishReason, GenerateParams, Generation, LlmModel, LoadOptions, TokenCounts};
pub use sampling::SamplingParams;
pub use template::{ChatMessage, ChatTemplate, Role};
pub use tokenizer::{GgufTokenizer, TokenBytes};
