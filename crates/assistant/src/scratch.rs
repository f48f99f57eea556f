//! Scratch data folders and knowledge bases for runs that must not touch a
//! user's data: the engine's own tests, and the evaluation, benchmark and
//! attack runs of tresor-bench.
//!
//! Owns: making a temporary data dir and ingesting a folder into a named
//! knowledge base under a data dir. Never: picks a user's data dir or key
//! (the caller passes both), or keeps anything after the [`tempfile::TempDir`]
//! is dropped.

use std::path::{Path, PathBuf};

use tresor_kb::{IngestOptions, NoProgress, TextEmbedder};

use crate::error::Result;
use crate::library::Library;

/// Ingests `docs` into knowledge base `name` under `data_dir` (a scratch dir
/// for evaluation), encrypted with `key` (the assistant's: [`crate::Assistant::key`]).
/// Goes through the engine's [`Library`] like any ingestion (screened with
/// the policy's injection action; its audit entries stay in the scratch dir).
pub fn ingest_dir(data_dir: &Path, key: &tresor_guard::crypto::WorkspaceKey, name: &str, docs: &Path, embedder: &dyn TextEmbedder) -> Result<tresor_kb::IngestReport> {
    Library::new(data_dir, "scratch", key).ingest(name, embedder, &[docs.to_path_buf()], &IngestOptions::default(), &NoProgress)
}

/// A scratch data dir for an evaluation run (removed when dropped).
pub fn scratch_dir() -> Result<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::Builder::new()
        .prefix("tresor-eval-answers-")
        .tempdir()
        .map_err(|source| crate::error::AssistantError::Io { path: std::env::temp_dir(), source })?;
    let p = t.path().to_path_buf();
    Ok((t, p))
}
