//! Tresor's knowledge base, in pipeline order:
//! [`parse`] → [`chunk`] → [`embed`] → [`store`] / [`index`] → [`retrieve`] → [`rerank`],
//! with [`ingest`] driving the first four. Retrieval quality and speed are
//! measured from outside, in tresor-bench (`retrieval_eval`, `kb`). Storage
//! format: docs/storage.md.
#![forbid(unsafe_code)]

pub mod analyze;
pub mod chunk;
pub mod embed;
pub mod hostile;
pub mod error;
mod index;
pub mod ingest;
pub mod lang;
mod neutralise;
mod lexical;
pub mod parse;
pub mod pii;
pub mod rerank;
pub mod retrieve;
pub mod store;

pub use embed::{HashEmbedder, TextEmbedder};
pub use error::{KbError, Result};
pub use index::Quantization;
pub use ingest::{ingest, IngestOptions, IngestProgress, IngestReport, NoProgress};
pub use rerank::TextReranker;
pub use retrieve::{search, Hit, Mode, RerankChoice, SearchOptions, SearchResult};
pub use store::{CheckReport, DocInfo, Filter, Kb, KbStats, QuarantinedChunk, StoreKind};
