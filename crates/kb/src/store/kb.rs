//! The knowledge-base handle [`Kb`]: one type for every caller (ingest,
//! retrieve, the assistant, the doors), over one of two backends picked
//! when it is opened from the kb folder: the embedded store (SQLCipher +
//! derived index files, `super::Embedded`) or a PostgreSQL + pgvector store
//! (`super::pg::PgKb`, named by the folder's `store.json`).
//!
//! Owns the choice of backend and the dispatch of every store operation to
//! it (an enum: one predictable branch per call, no trait objects on the hot
//! paths); never SQL, files or index structures of either backend.

use std::path::Path;

use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;

use super::pg::{DroppedStore, PgDocTx, PgKb};
use super::write::EmbeddedDocTx;
use super::{CheckReport, DocInfo, DocMeta, Embedded, Filter, KbInfo, KbStats, NewChunk, QuarantinedChunk, StoredChunk};
use crate::chunk::Chunk;
use crate::error::{KbError, Result};
use crate::index::{Quantization, VectorIndex};
use crate::lang::Lang;
use crate::lexical::LexicalIndex;

/// Which backend a knowledge base is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLCipher database plus index files in the kb folder.
    Embedded,
    /// A PostgreSQL database with pgvector (a team knowledge base).
    Postgres,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded",
            StoreKind::Postgres => "postgres",
        }
    }
}

enum Backend {
    Embedded(Embedded),
    Postgres(PgKb),
}

/// An open knowledge base (either backend).
pub struct Kb {
    b: Backend,
}

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $k:ident => $e:expr) => {
        match &$self.b {
            Backend::Embedded($k) => $e,
            Backend::Postgres($k) => $e,
        }
    };
    (mut $self:ident, $k:ident => $e:expr) => {
        match &mut $self.b {
            Backend::Embedded($k) => $e,
            Backend::Postgres($k) => $e,
        }
    };
}

fn embedded_only(what: &str) -> KbError {
    KbError::Invalid(format!("{what} exists only in the embedded store; this knowledge base is stored in PostgreSQL"))
}

impl Kb {
    /// Opens the knowledge base in `dir`, creating an embedded one if there
    /// is none; `key` is the data key of the workspace it belongs to.
    pub fn open(dir: &Path, key: &WorkspaceKey) -> Result<Kb> {
        if PgKb::configured(dir) {
            return Ok(Kb { b: Backend::Postgres(PgKb::open(dir, key)?) });
        }
        Ok(Kb { b: Backend::Embedded(Embedded::open(dir, key)?) })
    }

    /// Opens an existing knowledge base; `NoSuchKb` if there is none.
    pub fn open_existing(dir: &Path, key: &WorkspaceKey) -> Result<Kb> {
        if !Self::exists(dir) {
            return Err(KbError::NoSuchKb(dir.to_path_buf()));
        }
        Self::open(dir, key)
    }

    /// Whether `dir` holds a knowledge base (of either backend).
    pub fn exists(dir: &Path) -> bool {
        Embedded::exists(dir) || PgKb::configured(dir)
    }

    /// Creates knowledge base `dir` in the PostgreSQL database `url`
    /// (`postgres://USER@HOST:PORT/DB`, no password in it: `password` is
    /// kept sealed with `key` in the folder's `store.key`). Connects and
    /// creates the schema first; on any failure the folder is left as it was.
    pub fn create_postgres(dir: &Path, key: &WorkspaceKey, url: &str, password: Option<&str>) -> Result<Kb> {
        Ok(Kb { b: Backend::Postgres(PgKb::create(dir, key, url, password)?) })
    }

    /// Drops what the knowledge base in `dir` keeps on a server (PostgreSQL: everything it
    /// created there, in one transaction: [`PgKb::drop_store`]); None for an embedded one,
    /// whose store is its folder. The folder itself is the caller's to remove.
    pub fn drop_server_store(dir: &Path, key: &WorkspaceKey) -> Result<Option<DroppedStore>> {
        if PgKb::configured(dir) {
            return PgKb::drop_store(dir, key).map(Some);
        }
        Ok(None)
    }

    /// Which backend stores this knowledge base.
    pub fn store_kind(&self) -> StoreKind {
        match &self.b {
            Backend::Embedded(_) => StoreKind::Embedded,
            Backend::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// The store kind of the knowledge base in `dir` without opening it.
    pub fn store_kind_of(dir: &Path) -> StoreKind {
        if PgKb::configured(dir) {
            StoreKind::Postgres
        } else {
            StoreKind::Embedded
        }
    }

    /// Where the store lives, for people: the kb folder, or the PostgreSQL URL (no password).
    pub fn location(&self) -> String {
        match &self.b {
            Backend::Embedded(k) => k.dir().display().to_string(),
            Backend::Postgres(k) => k.url().to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        each!(self, k => k.dir())
    }

    /// The SQLite database (embedded) or the `store.json` naming the server (PostgreSQL).
    pub fn db_path(&self) -> &Path {
        each!(self, k => k.db_path())
    }

    /// The workspace key this knowledge base was opened with.
    pub fn key(&self) -> &WorkspaceKey {
        each!(self, k => k.key())
    }

    // ---- settings (schema.rs / pg) ----

    pub fn meta_value(&self, key: &str) -> Result<Option<String>> {
        each!(self, k => k.meta_value(key))
    }

    pub fn set_meta_value(&self, key: &str, value: &str) -> Result<()> {
        each!(self, k => k.set_meta_value(key, value))
    }

    pub fn info(&self) -> Result<KbInfo> {
        each!(self, k => k.info())
    }

    pub fn quantization(&self) -> Result<Quantization> {
        each!(self, k => k.quantization())
    }

    pub fn set_quantization(&mut self, q: Quantization) -> Result<()> {
        each!(mut self, k => k.set_quantization(q))
    }

    pub fn bind_embedder(&mut self, model_id: &str, dim: usize) -> Result<()> {
        each!(mut self, k => k.bind_embedder(model_id, dim))
    }

    // ---- reads ----

    pub fn chunk_count(&self) -> Result<usize> {
        each!(self, k => k.chunk_count())
    }

    pub fn document_count(&self) -> Result<usize> {
        each!(self, k => k.document_count())
    }

    pub fn document_sha(&self, source: &str) -> Result<Option<String>> {
        each!(self, k => k.document_sha(source))
    }

    pub fn sources(&self) -> Result<Vec<String>> {
        each!(self, k => k.sources())
    }

    pub fn list(&self) -> Result<Vec<DocInfo>> {
        each!(self, k => k.list())
    }

    pub fn stats(&self, name: &str) -> Result<KbStats> {
        each!(self, k => k.stats(name))
    }

    pub fn quarantined_count(&self) -> Result<usize> {
        each!(self, k => k.quarantined_count())
    }

    pub fn quarantined(&self) -> Result<Vec<QuarantinedChunk>> {
        each!(self, k => k.quarantined())
    }

    pub(crate) fn has_term(&self, stem: &str) -> bool {
        each!(self, k => k.has_term(stem))
    }

    /// In how many chunks `term` (an analysed stem) occurs.
    pub fn term_docs(&self, term: &str) -> usize {
        each!(self, k => k.term_docs(term))
    }

    /// BM25's inverse document frequency of `term` in a knowledge base of `chunks` chunks.
    pub fn term_idf(&self, term: &str, chunks: usize) -> f32 {
        let n = self.term_docs(term).min(chunks) as f32;
        let total = chunks as f32;
        (1.0 + (total - n + 0.5) / (n + 0.5)).ln()
    }

    pub(crate) fn bm25(&mut self, terms: &[String], n: usize, filter: &Filter, w_head: f64, w_body: f64) -> Result<Vec<(i64, f32)>> {
        each!(mut self, k => k.bm25(terms, n, filter, w_head, w_body))
    }

    /// BM25 through FTS5 (the embedded store's reference ranking).
    pub fn bm25_fts(&self, fts_query: &str, n: usize, filter: &Filter, w_head: f64, w_body: f64) -> Result<Vec<(i64, f32)>> {
        match &self.b {
            Backend::Embedded(k) => k.bm25_fts(fts_query, n, filter, w_head, w_body),
            Backend::Postgres(_) => Err(embedded_only("FTS5's bm25()")),
        }
    }

    pub(crate) fn knn(&mut self, q: &[f32], n: usize, filter: &Filter) -> Result<Vec<(i64, f32)>> {
        each!(mut self, k => k.knn(q, n, filter))
    }

    pub fn chunks_by_id(&self, ids: &[i64]) -> Result<Vec<StoredChunk>> {
        each!(self, k => k.chunks_by_id(ids))
    }

    pub fn embeddings_by_id(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
        each!(self, k => k.embeddings_by_id(ids))
    }

    pub fn chunks_of(&self, source: &str) -> Result<Vec<StoredChunk>> {
        each!(self, k => k.chunks_of(source))
    }

    // ---- writes ----

    /// Starts replacing (or adding) the document `meta.source`: one
    /// transaction; nothing is visible until [`DocTx::commit`].
    pub fn begin_document(&mut self, meta: &DocMeta) -> Result<DocTx<'_>> {
        let inner = match &mut self.b {
            Backend::Embedded(k) => TxInner::Embedded(k.begin_document(meta)?),
            Backend::Postgres(k) => TxInner::Postgres(k.begin_document(meta)?),
        };
        let replaced = match &inner {
            TxInner::Embedded(t) => t.replaced,
            TxInner::Postgres(t) => t.replaced,
        };
        Ok(DocTx { inner, replaced, quarantined: 0, dropped: 0 })
    }

    pub fn remove_source(&mut self, source: &str) -> Result<usize> {
        each!(mut self, k => k.remove_source(source))
    }

    /// A bulk write path for synthetic corpora (benchmarks).
    pub fn bulk_insert(&mut self, docs: &[(DocMeta, Vec<(Chunk, Vec<f32>, Lang)>)]) -> Result<()> {
        each!(mut self, k => k.bulk_insert(docs))
    }

    /// Before a bulk load (benchmarks): PostgreSQL drops its HNSW index
    /// ([`Kb::rebuild_vectors`] builds it after); the embedded store needs nothing.
    pub fn begin_bulk_load(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(_) => Ok(()),
            Backend::Postgres(k) => k.begin_bulk_load(),
        }
    }

    /// Re-analyses every chunk's full-text terms (after an analyser change).
    pub fn rebuild_fts(&mut self) -> Result<usize> {
        each!(mut self, k => k.rebuild_fts())
    }

    /// Verifies the invariants of docs/storage.md.
    pub fn check(&mut self) -> Result<CheckReport> {
        each!(mut self, k => k.check())
    }

    // ---- derived indexes (the embedded store's; PostgreSQL keeps its own in the server) ----

    pub fn index(&mut self) -> Result<&VectorIndex> {
        match &mut self.b {
            Backend::Embedded(k) => k.index(),
            Backend::Postgres(_) => Err(embedded_only("the in-process vector index")),
        }
    }

    pub fn lexical(&mut self) -> Result<&LexicalIndex> {
        match &mut self.b {
            Backend::Embedded(k) => k.lexical(),
            Backend::Postgres(_) => Err(embedded_only("the in-process BM25 index")),
        }
    }

    pub fn rebuild_vectors(&mut self) -> Result<()> {
        each!(mut self, k => k.rebuild_vectors())
    }

    pub fn ensure_lexical(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(k) => k.ensure_lexical(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    pub fn rebuild_lexical(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(k) => k.rebuild_lexical(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    pub fn after_write(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(k) => k.after_write(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    pub fn ensure_index(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(k) => k.ensure_index(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    pub fn save_index(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(k) => k.save_index(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    pub fn save_rebuilt_indexes(&mut self) -> Result<()> {
        match &mut self.b {
            Backend::Embedded(k) => k.save_rebuilt_indexes(),
            Backend::Postgres(_) => Ok(()),
        }
    }
}

enum TxInner<'a> {
    Embedded(EmbeddedDocTx<'a>),
    Postgres(PgDocTx<'a>),
}

/// An open document write: one transaction of either backend.
pub struct DocTx<'a> {
    inner: TxInner<'a>,
    /// The document existed before (its old chunks are gone in this transaction).
    pub replaced: bool,
    /// Chunks quarantined / dropped by the injection firewall in this write.
    pub quarantined: usize,
    pub dropped: usize,
}

impl DocTx<'_> {
    pub fn add(&mut self, chunks: &[NewChunk<'_>]) -> Result<()> {
        match &mut self.inner {
            TxInner::Embedded(t) => t.add(chunks),
            TxInner::Postgres(t) => t.add(chunks),
        }
    }

    pub fn chunks(&self) -> usize {
        match &self.inner {
            TxInner::Embedded(t) => t.chunks(),
            TxInner::Postgres(t) => t.chunks(),
        }
    }

    /// Keeps a chunk aside instead of storing it: no full-text terms, no vector, never retrieved.
    pub fn quarantine(&mut self, chunk: &Chunk, ord: usize, score: f32, reasons: &[String]) -> Result<()> {
        match &mut self.inner {
            TxInner::Embedded(t) => t.quarantine(chunk, ord, score, reasons)?,
            TxInner::Postgres(t) => t.quarantine(chunk, ord, score, reasons)?,
        }
        self.quarantined += 1;
        Ok(())
    }

    /// Sets the final title and language and commits the document.
    pub fn commit(self, title: &str, lang: &str) -> Result<usize> {
        match self.inner {
            TxInner::Embedded(t) => t.commit(title, lang),
            TxInner::Postgres(t) => t.commit(title, lang),
        }
    }
}
