//! A knowledge base's store, behind one handle [`Kb`] (see `kb.rs`) with two
//! backends: the embedded store below, and a PostgreSQL + pgvector store for
//! a team ([`pg`], docs/storage.md "PostgreSQL store"). The kb folder's
//! `store.json` picks the backend; without one it is the embedded store.
//!
//! The embedded store: one knowledge base on disk: a SQLite database (the source of truth:
//! documents, chunks, embeddings, FTS5 terms, an index log) and two files
//! derived from it, the usearch HNSW vector index and the BM25 index. The
//! write order and invariants are in docs/storage.md; in short: every
//! document is replaced in one SQLite transaction that also appends to
//! `index_log`; each derived file names the last log entry it contains and
//! is replaced atomically; opening replays the log past it (or rebuilds from
//! the database), so a kill at any moment leaves a consistent knowledge base.
//!
//! Owns the embedded store's handle (opening, the database connection, the workspace
//! key) and the encoding of the embedding column; never the SQL of its parts,
//! which live in the submodules: `schema` (version, migrations, `meta`),
//! `write` (documents in and out), `read` (listing, statistics, chunk and
//! search reads), `derived` (the vector and BM25 files' one lifecycle) and
//! `check` (invariant verification).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::error::{DbCtx, IoCtx, Result};
use crate::index::VectorIndex;
use crate::lexical::LexicalIndex;
use tresor_guard::crypto::WorkspaceKey;

mod check;
mod derived;
mod kb;
pub mod pg;
mod read;
mod schema;
mod write;

pub use check::CheckReport;
pub use read::{DocInfo, Filter, KbStats, QuarantinedChunk, StoredChunk};
pub use schema::{KbInfo, SCHEMA_VERSION};
pub use kb::{DocTx, Kb, StoreKind};
pub use write::{DocMeta, NewChunk};
pub(crate) use write::fts_terms;

use derived::DerivedIndex;

const DB_FILE: &str = "kb.sqlite";

pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The embedded store: SQLCipher database plus the derived index files.
pub(crate) struct Embedded {
    dir: PathBuf,
    db_path: PathBuf,
    conn: Connection,
    /// The workspace's data key: SQLCipher key of the database, AEAD key of the derived files.
    key: WorkspaceKey,
    /// The HNSW vector index (see [`crate::index`]) and the BM25 index (see
    /// [`crate::lexical`]): each with its log position and whether it changed since saved.
    vectors: DerivedIndex<VectorIndex>,
    bm25: DerivedIndex<LexicalIndex>,
}

/// The `chunks.embedding` column: dim × f32, little endian.
pub(crate) fn f32s_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Embedded {
    /// Opens the knowledge base in `dir`, creating it if needed; `key` is
    /// the data key of the workspace it belongs to (encryption at rest).
    pub fn open(dir: &Path, key: &WorkspaceKey) -> Result<Embedded> {
        std::fs::create_dir_all(dir).io(dir)?;
        Self::open_inner(dir, key)
    }

    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }

    fn open_inner(dir: &Path, key: &WorkspaceKey) -> Result<Embedded> {
        let db_path = dir.join(DB_FILE);
        // SQLCipher; a plaintext kb.sqlite from before encryption is migrated here
        let conn = key.open_db_wal(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).db(&db_path)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .db(&db_path)?;
        let mut kb = Embedded { dir: dir.to_path_buf(), db_path, conn, key: key.clone(), vectors: DerivedIndex::default(), bm25: DerivedIndex::default() };
        kb.migrate()?;
        Ok(kb)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The workspace key this knowledge base was opened with.
    pub fn key(&self) -> &WorkspaceKey {
        &self.key
    }
}
