//! Typed errors of the model runtimes. Every variant names the file (or the
//! model) it is about, so front doors can report them without guessing.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid GGUF file: {reason}")]
    InvalidGguf { path: PathBuf, reason: String },
    #[error("{path} is truncated or corrupt: tensor `{tensor}` needs bytes up to offset {needed}, but the file has {actual} bytes")]
    TruncatedGguf {
        path: PathBuf,
        tensor: String,
        needed: u64,
        actual: u64,
    },
    #[error("{path}: unsupported model architecture `{arch}` (supported: {supported})")]
    UnsupportedArchitecture {
        path: PathBuf,
        arch: String,
        supported: &'static str,
    },
    #[error("{path}: tensor `{tensor}` uses quantization {dtype}, which this runtime cannot run")]
    UnsupportedQuantization {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: tokenizer metadata is missing or invalid: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{path}: cannot load model: {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("the prompt has {tokens} tokens, but the model's context holds {context} (including {reserve} reserved for the answer); shorten the prompt or the conversation")]
    PromptTooLong {
        tokens: usize,
        context: usize,
        reserve: usize,
    },
    #[error("unknown chat template `{0}` (known: chatml, llama3, mistral, gemma)")]
    UnknownTemplate(String),
    #[error("invalid device `{spec}`: {reason}")]
    Device { spec: String, reason: String },
    #[error("invalid sampling parameter: {0}")]
    Sampling(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Inference(e.to_string())
    }
}

pub type Result<T, E = LlmError> = std::result::Result<T, E>;
