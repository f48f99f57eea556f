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
    #[error("constrained decoding: {0}")]
    Grammar(#[from] GrammarError),
}

/// Why a grammar (a JSON Schema or a Lark grammar) could not constrain a
/// generation.
#[derive(Debug, thiserror::Error)]
pub enum GrammarError {
    /// The schema is not a valid JSON Schema (wrong types of keywords, a
    /// `$ref` that points nowhere).
    #[error("invalid JSON Schema: {0}")]
    InvalidSchema(String),
    /// A valid schema that uses a keyword or format the grammar compiler does
    /// not implement (e.g. `not`, `if`/`then`, `uniqueItems`, remote `$ref`s).
    #[error("unsupported JSON Schema feature: {0}")]
    UnsupportedSchema(String),
    /// No value satisfies the schema (e.g. `minimum` above `maximum`).
    #[error("no JSON value satisfies the schema: {0}")]
    Unsatisfiable(String),
    /// A Lark grammar that does not parse or compile.
    #[error("invalid grammar: {0}")]
    InvalidGrammar(String),
    /// The grammar allows no next token and is not complete.
    #[error("the grammar allows no next token and the output is not complete (no accepting path)")]
    DeadEnd,
    /// Generation stopped (token budget, context) before the grammar was complete.
    #[error("generation stopped after {tokens} tokens before the output was complete (raise max_tokens)")]
    Unfinished { tokens: usize },
    /// A token the grammar does not allow was committed, or the matcher failed.
    #[error("the grammar rejected the output: {0}")]
    Rejected(String),
}

impl From<candle_core::Error> for LlmError {
    fn from(e: candle_core::Error) -> Self {
        LlmError::Inference(e.to_string())
    }
}

pub type Result<T, E = LlmError> = std::result::Result<T, E>;
