//! Typed errors of the knowledge base. Front doors add context; the library
//! says what went wrong and with which file or knowledge base.

use std::path::PathBuf;

use crate::parse::ParseError;

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: rusqlite::Error },
    /// The PostgreSQL store (`store` is its URL, which never holds a password).
    #[error("PostgreSQL store {store}: {reason}")]
    Store { store: String, reason: String },
    #[error("vector index {path}: {reason}")]
    Index { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: ParseError },
    #[error("embedder: {0}")]
    Embed(String),
    #[error("reranker: {0}")]
    Rerank(String),
    #[error(
        "knowledge base {path} was built with embedder `{built}` ({built_dim} dims) but `{requested}` ({requested_dim} dims) is in use; \
         use the same embedder (--embed-model) or ingest into a new knowledge base (--kb NAME)"
    )]
    EmbedderMismatch { path: PathBuf, built: String, built_dim: usize, requested: String, requested_dim: usize },
    #[error("knowledge base {path} has schema version {found}; this Tresor supports up to {supported}: upgrade Tresor")]
    SchemaTooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("knowledge base {0} does not exist (ingest something into it first: tresor ingest PATH --kb NAME)")]
    NoSuchKb(PathBuf),
    #[error("knowledge base {path} has no vectors yet: run `tresor ingest` first, or search with --mode bm25")]
    NoVectors { path: PathBuf },
    #[error("no document with source `{0}` in this knowledge base (see `tresor kb list`)")]
    NoSuchSource(String),
    #[error("invalid filter `{0}`: expected KEY=VALUE with KEY one of source (a glob, e.g. source=docs/*.md) or lang (de|en)")]
    Filter(String),
    #[error("goldset {path} line {line}: {reason}")]
    Goldset { path: PathBuf, line: usize, reason: String },
    #[error("invalid option: {0}")]
    Invalid(String),
    /// Encryption at rest: wrong key, a file sealed by another key, a key-file problem.
    #[error(transparent)]
    Crypto(#[from] tresor_guard::crypto::CryptoError),
}

pub type Result<T, E = KbError> = std::result::Result<T, E>;

/// Attach a path to rusqlite errors.
pub(crate) trait DbCtx<T> {
    fn db(self, path: &std::path::Path) -> Result<T>;
}

impl<T> DbCtx<T> for std::result::Result<T, rusqlite::Error> {
    fn db(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| KbError::Db { path: path.to_path_buf(), source })
    }
}

/// Attach a path to I/O errors (public for the measurement code in tresor-bench).
pub trait IoCtx<T> {
    fn io(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoCtx<T> for std::result::Result<T, std::io::Error> {
    fn io(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| KbError::Io { path: path.to_path_buf(), source })
    }
}
