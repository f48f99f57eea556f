//! Typed errors of the answer engine. Front doors add context.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    #[error("the question is empty")]
    EmptyQuestion,
    #[error("the question is too long ({chars} characters; at most {max})")]
    QuestionTooLong { chars: usize, max: usize },
    #[error("invalid knowledge base name `{0}` (use letters, digits, - and _)")]
    BadKbName(String),
    #[error("knowledge base `{0}` does not exist (ingest something into it first: tresor ingest PATH --kb {0})")]
    NoSuchKb(String),
    #[error(transparent)]
    Kb(#[from] tresor_kb::KbError),
    /// Encryption at rest: wrong key or passphrase, a file sealed by another key.
    #[error(transparent)]
    Crypto(#[from] tresor_guard::crypto::CryptoError),
    #[error(transparent)]
    Llm(#[from] tresor_llm::LlmError),
    #[error(transparent)]
    Models(#[from] tresor_models::ModelsError),
    /// No installed model serves a role the engine needs.
    #[error("finding the {role} model: {source}")]
    NoModel { role: &'static str, source: tresor_models::ModelsError },
    #[error("loading the {what} from {path}: {source}")]
    ModelLoad { what: &'static str, path: PathBuf, source: tresor_llm::LlmError },
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: rusqlite::Error },
    #[error("config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no thread with id {0}")]
    NoSuchThread(i64),
    #[error("no answer with id {0}")]
    NoSuchMessage(i64),
    #[error("invalid feedback: {0}")]
    BadFeedback(String),
    #[error("goldset {path} line {line}: {reason}")]
    Goldset { path: PathBuf, line: usize, reason: String },
    #[error("{0}")]
    Invalid(String),
    /// The model cannot do what was asked (e.g. a scripted or remote model
    /// without grammar-constrained decoding).
    #[error("model `{model}` does not support {what}")]
    Unsupported { model: String, what: &'static str },
    /// The policy does not let prompts go to this remote backend (not listed, or forbidden here).
    #[error("remote model `{id}` refused: {reason}")]
    RemoteRefused { id: String, reason: String },
    /// The remote backend failed after part of the answer was shown (no fallback then).
    #[error("remote model `{id}`: {source}")]
    Remote { id: String, source: tresor_llm::remote::RemoteError },
    #[error("policy: {0}")]
    Policy(#[from] tresor_guard::policy::PolicyError),
    /// A tool, its data or an action (tresor-tools).
    #[error(transparent)]
    Tool(#[from] tresor_tools::error::ToolError),
    #[error("telemetry: {0}")]
    Telemetry(#[from] tresor_telemetry::TelemetryError),
    #[error("audit log: {0}")]
    Audit(#[from] tresor_guard::audit::AuditError),
}

pub type Result<T, E = AssistantError> = std::result::Result<T, E>;

pub(crate) trait DbCtx<T> {
    fn db(self, path: &std::path::Path) -> Result<T>;
}

impl<T> DbCtx<T> for std::result::Result<T, rusqlite::Error> {
    fn db(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| AssistantError::Db { path: path.to_path_buf(), source })
    }
}
