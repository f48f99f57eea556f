//! One knowledge base on disk: a SQLite database (the source of truth:
//! documents, chunks, embeddings, FTS5 terms, an index log) and a usearch
//! HNSW file derived from it. The write order and invariants are in
//! docs/storage.md; in short: every document is replaced in one SQLite
//! transaction that also appends to `index_log`; the vector file names the
//! last log entry it contains and is replaced atomically; opening replays
//! the log past it (or rebuilds from the embeddings), so a kill at any
//! moment leaves a consistent knowledge base.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use crate::error::{DbCtx, IoCtx, KbError, Result};
use crate::index::{Quantization, VectorIndex};
use crate::lexical::LexicalIndex;
use crate::lang::Lang;
use tresor_guard::crypto::WorkspaceKey;

pub const SCHEMA_VERSION: i64 = 2;
const DB_FILE: &str = "kb.sqlite";

/// Schema migrations: entry i brings the database from version i to i+1.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents(
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    format      TEXT NOT NULL,
    lang        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    ingested_at INTEGER NOT NULL
);
CREATE TABLE chunks(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id     INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    heading    TEXT NOT NULL,
    page       INTEGER,
    char_start INTEGER NOT NULL,
    char_end   INTEGER NOT NULL,
    lang       TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    text       TEXT NOT NULL,
    embedding  BLOB NOT NULL,
    UNIQUE(doc_id, ord)
);
CREATE VIRTUAL TABLE chunks_fts USING fts5(head, body, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TABLE index_log(
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    op       INTEGER NOT NULL,      -- 0 = add chunk's vector, 1 = remove it
    chunk_id INTEGER NOT NULL
);
CREATE TRIGGER chunks_after_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.id;
    INSERT INTO index_log(op, chunk_id) VALUES (1, old.id);
END;
"#,
// 2: chunks the injection firewall kept aside at ingestion (never indexed, never retrieved)
r#"
CREATE TABLE quarantine(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id     INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    heading    TEXT NOT NULL,
    page       INTEGER,
    text       TEXT NOT NULL,
    score      REAL NOT NULL,
    reasons    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX quarantine_doc ON quarantine(doc_id);
"#];

pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What a knowledge base records about itself.
#[derive(Debug, Clone, Serialize)]
pub struct KbInfo {
    pub schema_version: i64,
    pub embedder: Option<String>,
    pub dim: Option<usize>,
    pub quantization: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KbStats {
    pub name: String,
    pub path: String,
    pub documents: usize,
    pub chunks: usize,
    pub embedder: Option<String>,
    pub dim: Option<usize>,
    pub quantization: String,
    pub schema_version: i64,
    pub languages: Vec<(String, usize)>,
    pub formats: Vec<(String, usize)>,
    pub db_bytes: u64,
    pub index_bytes: u64,
    /// The sealed BM25 index file (`bm25-<seq>.idx`).
    pub bm25_index_bytes: u64,
    pub pending_index_ops: usize,
    /// Chunks the injection firewall quarantined at ingestion (never retrieved).
    pub quarantined: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocInfo {
    pub source: String,
    pub title: String,
    pub format: String,
    pub lang: String,
    pub chunks: usize,
    pub size: u64,
    pub sha256: String,
    pub mtime: i64,
    pub ingested_at: i64,
    /// Chunks of this document in quarantine.
    pub quarantined: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub documents: usize,
    pub chunks: usize,
    pub indexed: usize,
    pub problems: Vec<String>,
}

/// A chunk the injection firewall kept out of retrieval.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantinedChunk {
    pub source: String,
    /// Position among the document's chunks as parsed.
    pub ord: usize,
    pub heading: String,
    pub page: Option<u32>,
    pub text: String,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// A chunk as stored, for retrieval results.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub id: i64,
    pub source: String,
    pub title: String,
    pub heading: String,
    pub page: Option<u32>,
    pub start: usize,
    pub end: usize,
    pub lang: String,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// Restricts retrieval to some documents.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// SQLite GLOB over the source path (`*` also matches `/`).
    pub source_glob: Option<String>,
    pub lang: Option<Lang>,
}

impl Filter {
    /// Parses `source=GLOB` / `lang=de|en` expressions (all must hold).
    pub fn parse(exprs: &[String]) -> Result<Filter> {
        let mut f = Filter::default();
        for e in exprs {
            let (k, v) = e.split_once('=').ok_or_else(|| KbError::Filter(e.clone()))?;
            match (k.trim(), v.trim()) {
                ("source", g) if !g.is_empty() => f.source_glob = Some(g.to_string()),
                ("lang", l) => f.lang = Some(Lang::parse(l).ok_or_else(|| KbError::Filter(e.clone()))?),
                _ => return Err(KbError::Filter(e.clone())),
            }
        }
        Ok(f)
    }
    pub fn is_empty(&self) -> bool {
        self.source_glob.is_none() && self.lang.is_none()
    }
    /// SQL condition over `d` (documents) and `c` (chunks) plus its
    /// parameters, numbered from `?first`.
    fn sql(&self, first: usize) -> (String, Vec<String>) {
        let mut cond = String::new();
        let mut args = Vec::new();
        if let Some(g) = &self.source_glob {
            cond.push_str(&format!(" AND d.source GLOB ?{}", first + args.len()));
            args.push(g.clone());
        }
        if let Some(l) = self.lang {
            cond.push_str(&format!(" AND c.lang = ?{}", first + args.len()));
            args.push(l.as_str().to_string());
        }
        (cond, args)
    }
}

pub struct Kb {
    dir: PathBuf,
    db_path: PathBuf,
    conn: Connection,
    /// The workspace's data key: SQLCipher key of the database, AEAD key of the vector files.
    key: WorkspaceKey,
    index: Option<VectorIndex>,
    applied_seq: i64,
    index_dirty: bool,
    /// The BM25 index (see [`crate::lexical`]), its log position and whether it changed since saved.
    lexical: Option<LexicalIndex>,
    lexical_seq: i64,
    lexical_dirty: bool,
    /// An index was rebuilt in this process (see [`Kb::save_rebuilt_indexes`]).
    rebuilt: bool,
}

pub(crate) fn f32s_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Kb {
    /// Opens the knowledge base in `dir`, creating it if needed; `key` is
    /// the data key of the workspace it belongs to (encryption at rest).
    pub fn open(dir: &Path, key: &WorkspaceKey) -> Result<Kb> {
        std::fs::create_dir_all(dir).io(dir)?;
        Self::open_inner(dir, key)
    }

    /// Opens an existing knowledge base; `NoSuchKb` if there is none.
    pub fn open_existing(dir: &Path, key: &WorkspaceKey) -> Result<Kb> {
        if !dir.join(DB_FILE).exists() {
            return Err(KbError::NoSuchKb(dir.to_path_buf()));
        }
        Self::open_inner(dir, key)
    }

    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }

    fn open_inner(dir: &Path, key: &WorkspaceKey) -> Result<Kb> {
        let db_path = dir.join(DB_FILE);
        // SQLCipher; a plaintext kb.sqlite from before encryption is migrated here
        let conn = key.open_db_wal(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).db(&db_path)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .db(&db_path)?;
        let mut kb = Kb { dir: dir.to_path_buf(), db_path, conn, key: key.clone(), index: None, applied_seq: 0, index_dirty: false, lexical: None, lexical_seq: 0, lexical_dirty: false, rebuilt: false };
        kb.migrate()?;
        Ok(kb)
    }

    fn migrate(&mut self) -> Result<()> {
        let p = self.db_path.clone();
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db(&p)?;
        if version > SCHEMA_VERSION {
            return Err(KbError::SchemaTooNew { path: p, found: version, supported: SCHEMA_VERSION });
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
            // another process may have migrated while we waited for the lock
            let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).db(&p)?;
            if v > i as i64 {
                continue;
            }
            tx.execute_batch(m).db(&p)?;
            if i == 0 {
                tx.execute("INSERT INTO meta(key, value) VALUES ('created_at', ?1)", [now().to_string()]).db(&p)?;
                tx.execute("INSERT INTO meta(key, value) VALUES ('quantization', 'f16')", []).db(&p)?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).db(&p)?;
            tx.commit().db(&p)?;
        }
        Ok(())
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

    /// A value of the KB's meta table (settings such as `redact_pii`).
    pub fn meta_value(&self, key: &str) -> Result<Option<String>> {
        self.meta(key)
    }

    pub fn set_meta_value(&self, key: &str, value: &str) -> Result<()> {
        self.set_meta(key, value)
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .db(&self.db_path)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [key, value])
            .db(&self.db_path)?;
        Ok(())
    }

    pub fn info(&self) -> Result<KbInfo> {
        Ok(KbInfo {
            schema_version: SCHEMA_VERSION,
            embedder: self.meta("embedder")?,
            dim: self.meta("dim")?.and_then(|d| d.parse().ok()),
            quantization: self.meta("quantization")?.unwrap_or_else(|| "f16".into()),
        })
    }

    pub fn quantization(&self) -> Result<Quantization> {
        Ok(Quantization::parse(&self.info()?.quantization).unwrap_or(Quantization::F16))
    }

    /// Sets the vector quantization; only while the knowledge base has no chunks.
    pub fn set_quantization(&mut self, q: Quantization) -> Result<()> {
        if self.quantization()? == q {
            return Ok(());
        }
        if self.chunk_count()? > 0 {
            return Err(KbError::Invalid(format!(
                "this knowledge base already stores {} vectors; its quantization can only be chosen when it is created",
                self.info()?.quantization
            )));
        }
        self.set_meta("quantization", q.as_str())
    }

    /// Records the embedder on first use; refuses a different one later.
    pub fn bind_embedder(&mut self, model_id: &str, dim: usize) -> Result<()> {
        let info = self.info()?;
        match (&info.embedder, info.dim) {
            (Some(e), Some(d)) if e == model_id && d == dim => Ok(()),
            (Some(e), d) => Err(KbError::EmbedderMismatch {
                path: self.dir.clone(),
                built: e.clone(),
                built_dim: d.unwrap_or(0),
                requested: model_id.to_string(),
                requested_dim: dim,
            }),
            (None, _) => {
                let tx = self.conn.transaction().db(&self.db_path)?;
                tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('embedder', ?1)", [model_id]).db(&self.db_path)?;
                tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('dim', ?1)", [dim.to_string()]).db(&self.db_path)?;
                tx.commit().db(&self.db_path)
            }
        }
    }

    pub fn chunk_count(&self) -> Result<usize> {
        self.conn.query_row("SELECT count(*) FROM chunks", [], |r| r.get::<_, i64>(0)).db(&self.db_path).map(|n| n as usize)
    }

    pub fn document_count(&self) -> Result<usize> {
        self.conn.query_row("SELECT count(*) FROM documents", [], |r| r.get::<_, i64>(0)).db(&self.db_path).map(|n| n as usize)
    }

    /// The stored sha256 of `source`, if it is in the knowledge base.
    pub fn document_sha(&self, source: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT sha256 FROM documents WHERE source = ?1", [source], |r| r.get(0))
            .optional()
            .db(&self.db_path)
    }

    pub fn sources(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare("SELECT source FROM documents ORDER BY source").db(&self.db_path)?;
        let rows = st.query_map([], |r| r.get(0)).db(&self.db_path)?;
        rows.collect::<std::result::Result<Vec<String>, _>>().db(&self.db_path)
    }

    pub fn list(&self) -> Result<Vec<DocInfo>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT source, title, format, lang, chunks, size, sha256, mtime, ingested_at,
                        (SELECT count(*) FROM quarantine q WHERE q.doc_id = documents.id) FROM documents ORDER BY source",
            )
            .db(&self.db_path)?;
        let rows = st
            .query_map([], |r| {
                Ok(DocInfo {
                    source: r.get(0)?,
                    title: r.get(1)?,
                    format: r.get(2)?,
                    lang: r.get(3)?,
                    chunks: r.get::<_, i64>(4)? as usize,
                    size: r.get::<_, i64>(5)? as u64,
                    sha256: r.get(6)?,
                    mtime: r.get(7)?,
                    ingested_at: r.get(8)?,
                    quarantined: r.get::<_, i64>(9)? as usize,
                })
            })
            .db(&self.db_path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.db_path)
    }

    pub fn stats(&self, name: &str) -> Result<KbStats> {
        let info = self.info()?;
        let group = |sql: &str| -> Result<Vec<(String, usize)>> {
            let mut st = self.conn.prepare(sql).db(&self.db_path)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))).db(&self.db_path)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.db_path)
        };
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let db_bytes = size(&self.db_path) + size(&self.db_path.with_extension("sqlite-wal"));
        let index_bytes = self.latest_index_file()?.map(|(_, p)| size(&p)).unwrap_or(0);
        let bm25_index_bytes = self.latest_lexical_file()?.map(|(_, p)| size(&p)).unwrap_or(0);
        Ok(KbStats {
            name: name.to_string(),
            path: self.dir.display().to_string(),
            documents: self.document_count()?,
            chunks: self.chunk_count()?,
            embedder: info.embedder,
            dim: info.dim,
            quantization: info.quantization,
            schema_version: info.schema_version,
            languages: group("SELECT lang, count(*) FROM chunks GROUP BY lang ORDER BY 2 DESC")?,
            formats: group("SELECT format, count(*) FROM documents GROUP BY format ORDER BY 2 DESC")?,
            db_bytes,
            index_bytes,
            bm25_index_bytes,
            pending_index_ops: self
                .conn
                .query_row("SELECT count(*) FROM index_log", [], |r| r.get::<_, i64>(0))
                .db(&self.db_path)? as usize,
            quarantined: self.quarantined_count()?,
        })
    }

    /// Chunks in quarantine, all documents.
    pub fn quarantined_count(&self) -> Result<usize> {
        Ok(self.conn.query_row("SELECT count(*) FROM quarantine", [], |r| r.get::<_, i64>(0)).db(&self.db_path)? as usize)
    }

    /// The quarantined chunks (for review): source, heading, text, score, reasons.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedChunk>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT d.source, q.ord, q.heading, q.page, q.text, q.score, q.reasons FROM quarantine q
                 JOIN documents d ON d.id = q.doc_id ORDER BY d.source, q.ord",
            )
            .db(&self.db_path)?;
        let rows = st
            .query_map([], |r| {
                Ok(QuarantinedChunk {
                    source: r.get(0)?,
                    ord: r.get::<_, i64>(1)? as usize,
                    heading: r.get(2)?,
                    page: r.get::<_, Option<i64>>(3)?.map(|x| x as u32),
                    text: r.get(4)?,
                    score: r.get::<_, f64>(5)? as f32,
                    reasons: serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default(),
                })
            })
            .db(&self.db_path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.db_path)
    }

    // ---- writing documents -------------------------------------------------

    /// Starts replacing (or adding) the document `meta.source`: one
    /// IMMEDIATE transaction that deletes its old chunks and inserts the new
    /// document row. Nothing is visible until [`DocTx::commit`].
    pub fn begin_document(&mut self, meta: &DocMeta) -> Result<DocTx<'_>> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        let old: Option<i64> =
            tx.query_row("SELECT id FROM documents WHERE source = ?1", [&meta.source], |r| r.get(0)).optional().db(&p)?;
        if let Some(id) = old {
            tx.execute("DELETE FROM chunks WHERE doc_id = ?1", [id]).db(&p)?;
            tx.execute("DELETE FROM documents WHERE id = ?1", [id]).db(&p)?;
        }
        tx.execute(
            "INSERT INTO documents(source, title, format, lang, sha256, size, mtime, chunks, ingested_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
            params![meta.source, meta.title, meta.format, meta.lang, meta.sha256, meta.size as i64, meta.mtime, now()],
        )
        .db(&p)?;
        let doc_id = tx.last_insert_rowid();
        Ok(DocTx { tx, path: p, doc_id, n: 0, replaced: old.is_some(), quarantined: 0, dropped: 0 })
    }

    /// Removes a document and its chunks. Returns the number of chunks removed.
    pub fn remove_source(&mut self, source: &str) -> Result<usize> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        let id: Option<i64> =
            tx.query_row("SELECT id FROM documents WHERE source = ?1", [source], |r| r.get(0)).optional().db(&p)?;
        let Some(id) = id else { return Err(KbError::NoSuchSource(source.to_string())) };
        let n = tx.execute("DELETE FROM chunks WHERE doc_id = ?1", [id]).db(&p)?;
        tx.execute("DELETE FROM documents WHERE id = ?1", [id]).db(&p)?;
        tx.commit().db(&p)?;
        self.after_write()?;
        Ok(n)
    }

    // ---- the vector index --------------------------------------------------

    fn index_files(&self) -> Result<Vec<(i64, PathBuf)>> {
        self.derived_files("vectors-", ".usearch")
    }

    /// `<prefix><seq><suffix>` files of the KB directory, by seq.
    fn derived_files(&self, prefix: &str, suffix: &str) -> Result<Vec<(i64, PathBuf)>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&self.dir).io(&self.dir)? {
            let e = e.io(&self.dir)?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(seq) = name.strip_prefix(prefix).and_then(|s| s.strip_suffix(suffix)) {
                if let Ok(seq) = seq.parse::<i64>() {
                    v.push((seq, e.path()));
                }
            }
        }
        v.sort();
        Ok(v)
    }

    fn latest_index_file(&self) -> Result<Option<(i64, PathBuf)>> {
        Ok(self.index_files()?.pop())
    }

    fn index_err(&self, reason: impl ToString) -> KbError {
        KbError::Index { path: self.dir.clone(), reason: reason.to_string() }
    }

    /// Loads the vector index (latest file + log replay, or a rebuild from
    /// the stored embeddings). `NoVectors` if no embedder has been bound.
    pub fn index(&mut self) -> Result<&VectorIndex> {
        if self.index.is_none() {
            self.load_index()?;
        } else {
            self.catch_up()?;
        }
        Ok(self.index.as_ref().expect("loaded"))
    }

    fn load_index(&mut self) -> Result<()> {
        let info = self.info()?;
        let Some(dim) = info.dim else { return Err(KbError::NoVectors { path: self.dir.clone() }) };
        let q = Quantization::parse(&info.quantization).unwrap_or(Quantization::F16);
        let compacted = self.index_compacted_to()?;
        let mut loaded = None;
        if let Some((seq, path)) = self.latest_index_file()? {
            if seq >= compacted {
                let loaded_file = self.key.read_file(&path).map_err(|e| e.to_string());
                match loaded_file.and_then(|bytes| VectorIndex::from_bytes(&bytes, dim, q)) {
                    Ok(idx) => loaded = Some((seq, idx)),
                    Err(e) => tracing::warn!("vector index {} unreadable ({e}); rebuilding from the database", path.display()),
                }
            }
        }
        match loaded {
            Some((seq, idx)) => {
                self.index = Some(idx);
                self.applied_seq = seq;
                self.catch_up()?;
            }
            None => self.rebuild_vectors()?,
        }
        Ok(())
    }

    /// Rebuilds the vector index from the embeddings in SQLite.
    pub fn rebuild_vectors(&mut self) -> Result<()> {
        let info = self.info()?;
        let Some(dim) = info.dim else { return Err(KbError::NoVectors { path: self.dir.clone() }) };
        let q = Quantization::parse(&info.quantization).unwrap_or(Quantization::F16);
        let p = self.db_path.clone();
        let dir = self.dir.clone();
        let ierr = |e: String| KbError::Index { path: dir.clone(), reason: e };
        // one read transaction: the log position and the embeddings agree
        let tx = self.conn.transaction().db(&p)?;
        let seq: i64 = tx
            .query_row("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'index_log'), 0)", [], |r| r.get(0))
            .db(&p)?;
        let n: i64 = tx.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0)).db(&p)?;
        let idx = VectorIndex::new(dim, q, n as usize).map_err(ierr)?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        idx.reserve_more(n as usize, threads).map_err(ierr)?;
        {
            let mut st = tx.prepare("SELECT id, embedding FROM chunks").db(&p)?;
            let mut rows = st.query([]).db(&p)?;
            let mut batch: Vec<(u64, Vec<f32>)> = Vec::with_capacity(4096);
            let flush = |batch: &mut Vec<(u64, Vec<f32>)>| -> std::result::Result<(), String> {
                let per = batch.len().div_ceil(threads).max(1);
                std::thread::scope(|s| {
                    let hs: Vec<_> = batch
                        .chunks(per)
                        .map(|part| {
                            let idx = &idx;
                            s.spawn(move || part.iter().try_for_each(|(k, v)| idx.add_unchecked(*k, v)))
                        })
                        .collect();
                    hs.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err("index thread panicked".into())))
                })?;
                batch.clear();
                Ok(())
            };
            while let Some(r) = rows.next().db(&p)? {
                let id: i64 = r.get(0).db(&p)?;
                let blob: Vec<u8> = r.get(1).db(&p)?;
                batch.push((id as u64, blob_to_f32s(&blob)));
                if batch.len() >= 4096 {
                    flush(&mut batch).map_err(ierr)?;
                }
            }
            flush(&mut batch).map_err(ierr)?;
        }
        tx.commit().db(&p)?;
        self.index = Some(idx);
        self.applied_seq = seq;
        self.index_dirty = true;
        self.rebuilt = true;
        Ok(())
    }

    /// Applies index-log entries that the in-memory index has not seen.
    pub(crate) fn catch_up(&mut self) -> Result<()> {
        if self.index.is_none() {
            return Ok(());
        }
        let compacted = self.index_compacted_to()?;
        if compacted > self.applied_seq {
            // another process saved and compacted past us: reload
            self.index = None;
            return self.load_index();
        }
        let idx = self.index.as_ref().expect("checked");
        let dir = &self.dir;
        let last = replay_index_log(&self.conn, &self.db_path, "c.embedding FROM index_log l LEFT JOIN chunks c ON l.op = 0 AND c.id = l.chunk_id", self.applied_seq, |op, id, r| {
            let res = match (op, r.get::<_, Option<Vec<u8>>>(3).db(&self.db_path)?) {
                (0, Some(b)) => idx.upsert(id as u64, &blob_to_f32s(&b)),
                (0, None) => Ok(()), // deleted since; a later remove entry follows
                _ => idx.remove(id as u64),
            };
            res.map_err(|e| KbError::Index { path: dir.clone(), reason: e })
        })?;
        self.index_dirty |= last > self.applied_seq;
        self.applied_seq = last;
        Ok(())
    }

    /// `meta.index_compacted_to`: index-log entries up to it are gone.
    fn index_compacted_to(&self) -> Result<i64> {
        Ok(self.meta("index_compacted_to")?.and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    /// Writes the derived indexes atomically — the vector index as
    /// `vectors-<seq>.usearch` and the BM25 index as `bm25-<seq>.idx`
    /// (each: sealed, temp file, fsync, rename, fsync dir) — removes older
    /// files, then compacts the index log up to the smaller of the two
    /// seqs, so that each file plus the log still gives the current state.
    /// Either index is loaded first when it is not (the log entries it
    /// needs would otherwise be compacted away).
    pub fn save_index(&mut self) -> Result<()> {
        if self.index.is_none() && self.info()?.dim.is_some() {
            self.load_index()?;
        }
        if self.lexical.is_none() {
            self.load_lexical()?;
        }
        self.catch_up()?;
        self.catch_up_lexical()?;
        let mut compact_to = i64::MAX;
        if self.index.is_some() {
            let seq = self.applied_seq;
            if self.index_dirty || !self.latest_index_file()?.is_some_and(|(s, _)| s == seq) {
                // sealed with the workspace key (AEAD) before it touches the disk
                let bytes = self.index.as_ref().expect("checked").to_bytes().map_err(|e| self.index_err(e))?;
                self.write_sealed(&bytes, "vectors", &format!("vectors-{seq:020}.usearch"))?;
                for (s, path) in self.index_files()? {
                    if s < seq {
                        let _ = std::fs::remove_file(path);
                    }
                }
                self.index_dirty = false;
            }
            compact_to = seq;
        }
        if let Some(lx) = self.lexical.as_mut() {
            let seq = self.lexical_seq;
            if lx.dead_share() > 0.2 {
                lx.compact();
                self.lexical_dirty = true;
            }
            if self.lexical_dirty || !self.latest_lexical_file()?.is_some_and(|(s, _)| s == seq) {
                let bytes = self.lexical.as_ref().expect("checked").to_bytes();
                self.write_sealed(&bytes, "bm25", &format!("bm25-{seq:020}.idx"))?;
                for (s, path) in self.lexical_files()? {
                    if s < seq {
                        let _ = std::fs::remove_file(path);
                    }
                }
                self.lexical_dirty = false;
            }
            compact_to = compact_to.min(seq);
        }
        self.remove_stale_temp_files();
        let seq = compact_to;
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        tx.execute("DELETE FROM index_log WHERE seq <= ?1", [seq]).db(&p)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('index_compacted_to', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(?1 AS INTEGER))",
            [seq.to_string()],
        )
        .db(&p)?;
        tx.commit().db(&p)?;
        Ok(())
    }

    /// Seals `bytes` with the workspace key and writes them as `name`
    /// atomically: `<kind>.tmp-<pid>`, fsync, rename, fsync the directory.
    fn write_sealed(&self, bytes: &[u8], kind: &str, name: &str) -> Result<()> {
        let tmp = self.dir.join(format!("{kind}.tmp-{}", std::process::id()));
        let fin = self.dir.join(name);
        let sealed = self.key.seal(bytes, b"");
        std::fs::File::create(&tmp)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(&sealed)?;
                f.sync_all()
            })
            .io(&tmp)?;
        std::fs::rename(&tmp, &fin).io(&fin)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Saves the indexes when this process had to rebuild one (a missing,
    /// damaged or stale file), so that the next process loads it instead
    /// of rebuilding again. For read paths (search); writers call
    /// [`Kb::save_index`].
    pub fn save_rebuilt_indexes(&mut self) -> Result<()> {
        if self.rebuilt {
            self.save_index()?;
            self.rebuilt = false;
        }
        Ok(())
    }

    // ---- the BM25 index ----------------------------------------------------

    fn lexical_files(&self) -> Result<Vec<(i64, PathBuf)>> {
        self.derived_files("bm25-", ".idx")
    }

    fn latest_lexical_file(&self) -> Result<Option<(i64, PathBuf)>> {
        Ok(self.lexical_files()?.pop())
    }

    fn fts_generation(&self) -> Result<i64> {
        Ok(self.meta("fts_generation")?.and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    /// Loads the BM25 index if it is not loaded, else brings it up to date.
    pub fn ensure_lexical(&mut self) -> Result<()> {
        if self.lexical.is_none() {
            self.load_lexical()
        } else {
            self.catch_up_lexical()
        }
    }

    /// The BM25 index, loaded and current.
    pub fn lexical(&mut self) -> Result<&LexicalIndex> {
        self.ensure_lexical()?;
        Ok(self.lexical.as_ref().expect("loaded"))
    }

    /// The latest `bm25-<seq>.idx` when the log still reaches back to it and
    /// it was built from the current full-text terms, plus log replay; else
    /// a rebuild from `chunks_fts`.
    fn load_lexical(&mut self) -> Result<()> {
        let compacted = self.index_compacted_to()?;
        let generation = self.fts_generation()?;
        if let Some((seq, path)) = self.latest_lexical_file()? {
            if seq >= compacted {
                let loaded = self.key.read_file(&path).map_err(|e| e.to_string()).and_then(|b| LexicalIndex::from_bytes(&b));
                match loaded {
                    Ok(ix) if ix.generation == generation => {
                        self.lexical = Some(ix);
                        self.lexical_seq = seq;
                        self.lexical_dirty = false;
                        return self.catch_up_lexical();
                    }
                    Ok(_) => tracing::info!("BM25 index {} predates `kb rebuild-index`; rebuilding", path.display()),
                    Err(e) => tracing::warn!("BM25 index {} unreadable ({e}); rebuilding from the database", path.display()),
                }
            }
        }
        self.rebuild_lexical()
    }

    /// Rebuilds the BM25 index from the `chunks_fts` rows.
    pub fn rebuild_lexical(&mut self) -> Result<()> {
        let p = self.db_path.clone();
        // one read transaction: the log position and the rows agree
        let tx = self.conn.transaction().db(&p)?;
        let seq: i64 = tx
            .query_row("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'index_log'), 0)", [], |r| r.get(0))
            .db(&p)?;
        let generation: i64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'fts_generation'", [], |r| r.get::<_, String>(0))
            .optional()
            .db(&p)?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut ix = LexicalIndex::new(generation);
        {
            let mut st = tx.prepare("SELECT rowid, head, body FROM chunks_fts ORDER BY rowid").db(&p)?;
            let mut rows = st.query([]).db(&p)?;
            while let Some(r) = rows.next().db(&p)? {
                let id: i64 = r.get(0).db(&p)?;
                let head: String = r.get(1).db(&p)?;
                let body: String = r.get(2).db(&p)?;
                ix.add(id, &head, &body);
            }
        }
        tx.commit().db(&p)?;
        self.lexical = Some(ix);
        self.lexical_seq = seq;
        self.lexical_dirty = true;
        self.rebuilt = true;
        Ok(())
    }

    /// Applies index-log entries the BM25 index has not seen (the terms of
    /// an added chunk come from its `chunks_fts` row).
    fn catch_up_lexical(&mut self) -> Result<()> {
        let Some(lx) = self.lexical.as_ref() else { return Ok(()) };
        let compacted = self.index_compacted_to()?;
        if compacted > self.lexical_seq || lx.generation != self.fts_generation()? {
            // another process compacted past us, or re-analysed the terms: reload
            self.lexical = None;
            return self.load_lexical();
        }
        let lx = self.lexical.as_mut().expect("checked");
        let p = &self.db_path;
        let last = replay_index_log(&self.conn, p, "f.head, f.body FROM index_log l LEFT JOIN chunks_fts f ON l.op = 0 AND f.rowid = l.chunk_id", self.lexical_seq, |op, id, r| {
            match (op, r.get::<_, Option<String>>(3).db(p)?, r.get::<_, Option<String>>(4).db(p)?) {
                (0, Some(head), Some(body)) => lx.add(id, &head, &body),
                (0, _, _) => {} // deleted since; a later remove entry follows
                _ => lx.remove(id),
            }
            Ok(())
        })?;
        self.lexical_dirty |= last > self.lexical_seq;
        self.lexical_seq = last;
        Ok(())
    }

    /// Removes `vectors.tmp-<pid>` / `bm25.tmp-<pid>` files left by processes that died mid-save.
    fn remove_stale_temp_files(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name
                .strip_prefix("vectors.tmp-")
                .or_else(|| name.strip_prefix("bm25.tmp-"))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let alive = if cfg!(target_os = "linux") { Path::new(&format!("/proc/{pid}")).exists() } else { true };
            if pid != std::process::id() && !alive {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    // ---- reading -----------------------------------------------------------

    /// Whether `stem` is a term of the FTS index (for query decompounding).
    pub(crate) fn has_term(&self, stem: &str) -> bool {
        match &self.lexical {
            Some(lx) => lx.has_term(stem),
            None => self.term_docs(stem) > 0,
        }
    }

    /// In how many chunks `term` (an analysed stem, see [`crate::analyze`])
    /// occurs; 0 when it is no term of the index.
    pub fn term_docs(&self, term: &str) -> usize {
        if let Some(lx) = &self.lexical {
            return lx.doc_freq(term);
        }
        self.conn
            .prepare_cached("SELECT doc FROM chunks_vocab WHERE term = ?1")
            .and_then(|mut st| st.query_row([crate::analyze::fold(term)], |r| r.get::<_, i64>(0)).optional())
            .ok()
            .flatten()
            .unwrap_or(0) as usize
    }

    /// How specific `term` is in this knowledge base of `chunks` chunks:
    /// BM25's inverse document frequency, ln(1 + (N − n + 0.5) / (n + 0.5))
    /// with n = [`Kb::term_docs`]. A term no chunk holds gets the highest
    /// value; one in every chunk about 0.
    pub fn term_idf(&self, term: &str, chunks: usize) -> f32 {
        let n = self.term_docs(term).min(chunks) as f32;
        let total = chunks as f32;
        (1.0 + (total - n + 0.5) / (n + 0.5)).ln()
    }

    /// BM25 of the chunks matching any of the analysed `terms`: (chunk id,
    /// score), best first, score = −FTS5's bm25() — computed by the BM25
    /// index ([`crate::lexical`]; loaded if it is not, the caller brings it up to date).
    pub(crate) fn bm25(&mut self, terms: &[String], n: usize, filter: &Filter, w_head: f64, w_body: f64) -> Result<Vec<(i64, f32)>> {
        let allowed = if filter.is_empty() { None } else { Some(self.filtered_ids(filter)?) };
        // `search` brought the index up to date just before (ensure_lexical): no second log read
        if self.lexical.is_none() {
            self.load_lexical()?;
        }
        let lx = self.lexical.as_ref().expect("loaded");
        Ok(match &allowed {
            Some(set) => {
                let f = |id: i64| set.contains(&(id as u64));
                lx.search(terms, n, w_head, w_body, Some(&f))
            }
            None => lx.search(terms, n, w_head, w_body, None),
        })
    }

    /// The same BM25 through FTS5 (`ORDER BY bm25() LIMIT n` over a MATCH
    /// expression, see [`crate::analyze::fts_match`]): the reference the
    /// BM25 index is tested and benchmarked against.
    pub fn bm25_fts(&self, fts_query: &str, n: usize, filter: &Filter, w_head: f64, w_body: f64) -> Result<Vec<(i64, f32)>> {
        let (cond, args) = filter.sql(5);
        let sql = if filter.is_empty() {
            "SELECT rowid, bm25(chunks_fts, ?1, ?2) AS s FROM chunks_fts WHERE chunks_fts MATCH ?3 ORDER BY s LIMIT ?4".to_string()
        } else {
            format!(
                "SELECT chunks_fts.rowid, bm25(chunks_fts, ?1, ?2) AS s FROM chunks_fts
                 JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id
                 WHERE chunks_fts MATCH ?3 {cond} ORDER BY s LIMIT ?4"
            )
        };
        let mut st = self.conn.prepare_cached(&sql).db(&self.db_path)?;
        let mut vals: Vec<Box<dyn rusqlite::ToSql>> =
            vec![Box::new(w_head), Box::new(w_body), Box::new(fts_query.to_string()), Box::new(n as i64)];
        for a in args {
            vals.push(Box::new(a));
        }
        let rows = st
            .query_map(rusqlite::params_from_iter(vals.iter().map(|b| b.as_ref())), |r| {
                Ok((r.get::<_, i64>(0)?, -(r.get::<_, f64>(1)? as f32)))
            })
            .db(&self.db_path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.db_path)
    }

    /// Chunk ids passing `filter`.
    pub(crate) fn filtered_ids(&self, filter: &Filter) -> Result<HashSet<u64>> {
        let (cond, args) = filter.sql(1);
        let sql = format!("SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE 1 {cond}");
        let mut st = self.conn.prepare(&sql).db(&self.db_path)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, i64>(0)).db(&self.db_path)?;
        let mut s = HashSet::new();
        for r in rows {
            s.insert(r.db(&self.db_path)? as u64);
        }
        Ok(s)
    }

    /// Nearest chunks by cosine: (chunk id, similarity), best first.
    pub(crate) fn knn(&mut self, q: &[f32], n: usize, filter: &Filter) -> Result<Vec<(i64, f32)>> {
        let allowed = if filter.is_empty() { None } else { Some(self.filtered_ids(filter)?) };
        let dir = self.dir.clone();
        let idx = self.index()?;
        let hits = match &allowed {
            Some(set) => {
                let f = |k: u64| set.contains(&k);
                idx.search(q, n, Some(&f))
            }
            None => idx.search(q, n, None),
        }
        .map_err(|e| KbError::Index { path: dir, reason: e })?;
        Ok(hits.into_iter().map(|(k, s)| (k as i64, s)).collect())
    }

    /// The chunks with these ids (in the given order; missing ids skipped).
    pub fn chunks_by_id(&self, ids: &[i64]) -> Result<Vec<StoredChunk>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT c.id, d.source, d.title, c.heading, c.page, c.char_start, c.char_end, c.lang, c.text, c.embedding
                 FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?1",
            )
            .db(&self.db_path)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = st.query_row([id], row_to_chunk).optional().db(&self.db_path)?;
            if let Some(c) = row {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The stored embeddings of these chunks (missing ids skipped): what
    /// hybrid fusion needs for candidates the kNN did not return.
    pub fn embeddings_by_id(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
        let mut st = self.conn.prepare_cached("SELECT embedding FROM chunks WHERE id = ?1").db(&self.db_path)?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(b) = st.query_row([id], |r| r.get::<_, Vec<u8>>(0)).optional().db(&self.db_path)? {
                out.push((id, blob_to_f32s(&b)));
            }
        }
        Ok(out)
    }

    /// All chunks of one document, in order.
    pub fn chunks_of(&self, source: &str) -> Result<Vec<StoredChunk>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT c.id, d.source, d.title, c.heading, c.page, c.char_start, c.char_end, c.lang, c.text, c.embedding
                 FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.source = ?1 ORDER BY c.ord",
            )
            .db(&self.db_path)?;
        let rows = st.query_map([source], row_to_chunk).db(&self.db_path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.db_path)
    }

    // ---- maintenance -------------------------------------------------------

    /// Verifies the invariants of docs/storage.md.
    pub fn check(&mut self) -> Result<CheckReport> {
        let p = self.db_path.clone();
        let mut problems = Vec::new();
        let ic: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).db(&p)?;
        if ic != "ok" {
            problems.push(format!("sqlite integrity_check: {ic}"));
        }
        if let Err(e) = self.conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')", []) {
            problems.push(format!("FTS index integrity: {e}"));
        }
        let q = |sql: &str| -> Result<i64> { self.conn.query_row(sql, [], |r| r.get(0)).db(&p) };
        let no_fts = q("SELECT count(*) FROM chunks WHERE id NOT IN (SELECT rowid FROM chunks_fts)")?;
        if no_fts > 0 {
            problems.push(format!("{no_fts} chunks have no full-text entry"));
        }
        let orphan_fts = q("SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT id FROM chunks)")?;
        if orphan_fts > 0 {
            problems.push(format!("{orphan_fts} full-text entries belong to no chunk"));
        }
        let orphans = q("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)")?;
        if orphans > 0 {
            problems.push(format!("{orphans} chunks belong to no document"));
        }
        let bad_counts = q("SELECT count(*) FROM documents d WHERE d.chunks != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)
                             OR (SELECT coalesce(max(ord), -1) FROM chunks c WHERE c.doc_id = d.id) != d.chunks - 1")?;
        if bad_counts > 0 {
            problems.push(format!("{bad_counts} documents whose chunk count or chunk numbering is off"));
        }
        let empty_docs = q("SELECT count(*) FROM documents WHERE chunks = 0")?;
        if empty_docs > 0 {
            problems.push(format!("{empty_docs} documents without chunks"));
        }
        let info = self.info()?;
        let chunks = self.chunk_count()?;
        let mut indexed = 0;
        if let Some(dim) = info.dim {
            let bad_emb = self
                .conn
                .query_row("SELECT count(*) FROM chunks WHERE length(embedding) != ?1", [dim as i64 * 4], |r| r.get::<_, i64>(0))
                .db(&p)?;
            if bad_emb > 0 {
                problems.push(format!("{bad_emb} embeddings are not {dim}-dimensional"));
            }
            match self.index() {
                Ok(_) => {
                    let ids: Vec<i64> = {
                        let mut st = self.conn.prepare("SELECT id FROM chunks").db(&p)?;
                        let rows = st.query_map([], |r| r.get(0)).db(&p)?;
                        rows.collect::<std::result::Result<Vec<_>, _>>().db(&p)?
                    };
                    let idx = self.index.as_ref().expect("loaded");
                    indexed = idx.len();
                    let missing = ids.iter().filter(|id| !idx.contains(**id as u64)).count();
                    if missing > 0 {
                        problems.push(format!("{missing} chunks are missing from the vector index"));
                    }
                    if idx.len() != ids.len() {
                        problems.push(format!("vector index holds {} vectors for {} chunks", idx.len(), ids.len()));
                    }
                }
                Err(e) => problems.push(format!("vector index: {e}")),
            }
        } else if chunks > 0 {
            problems.push("chunks stored but no embedder recorded".into());
        }
        problems.extend(self.check_lexical()?);
        Ok(CheckReport { ok: problems.is_empty(), documents: self.document_count()?, chunks, indexed, problems })
    }

    /// The BM25 index against FTS5: the same live chunks, each with the row
    /// size FTS5 recorded (its `chunks_fts_docsize`), so both tokenise alike
    /// and score with the same statistics.
    fn check_lexical(&mut self) -> Result<Vec<String>> {
        let p = self.db_path.clone();
        let sizes: Vec<(i64, Vec<u8>)> = {
            let mut st = self.conn.prepare("SELECT id, sz FROM chunks_fts_docsize").db(&p)?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db(&p)?;
            rows.collect::<std::result::Result<Vec<_>, _>>().db(&p)?
        };
        let lx = match self.lexical() {
            Ok(lx) => lx,
            Err(e) => return Ok(vec![format!("BM25 index: {e}")]),
        };
        let mut problems = Vec::new();
        let (mut missing, mut wrong) = (0usize, 0usize);
        for (id, sz) in &sizes {
            match lx.doc_len(*id) {
                None => missing += 1,
                Some(len) if len as u64 != fts5_row_size(sz) => wrong += 1,
                Some(_) => {}
            }
        }
        if missing > 0 {
            problems.push(format!("{missing} full-text rows are missing from the BM25 index"));
        }
        if wrong > 0 {
            problems.push(format!("{wrong} chunks have a different length in the BM25 index than in FTS5"));
        }
        if lx.len() != sizes.len() {
            problems.push(format!("BM25 index holds {} chunks for {} full-text rows", lx.len(), sizes.len()));
        }
        Ok(problems)
    }

    /// Re-analyses every chunk's full-text terms (after an analyser change).
    pub fn rebuild_fts(&mut self) -> Result<usize> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        tx.execute("DELETE FROM chunks_fts", []).db(&p)?;
        // a loaded BM25 index (here or in another process) sees the new generation and rebuilds
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('fts_generation', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            [],
        )
        .db(&p)?;
        let mut n = 0;
        {
            let mut st = tx
                .prepare("SELECT c.id, d.title, c.heading, c.lang, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id")
                .db(&p)?;
            let mut ins = tx.prepare("INSERT INTO chunks_fts(rowid, head, body) VALUES (?1, ?2, ?3)").db(&p)?;
            let mut rows = st.query([]).db(&p)?;
            while let Some(r) = rows.next().db(&p)? {
                let id: i64 = r.get(0).db(&p)?;
                let title: String = r.get(1).db(&p)?;
                let heading: String = r.get(2).db(&p)?;
                let lang = Lang::parse(&r.get::<_, String>(3).db(&p)?).unwrap_or(Lang::En);
                let text: String = r.get(4).db(&p)?;
                let (head, body) = fts_terms(&title, &heading, &text, lang, &|_| false);
                ins.execute(params![id, head, body]).db(&p)?;
                n += 1;
            }
        }
        tx.commit().db(&p)?;
        Ok(n)
    }
}

/// Tokens in a row of FTS5's `_docsize` table: one SQLite varint per column.
fn fts5_row_size(sz: &[u8]) -> u64 {
    let (mut total, mut pos) = (0u64, 0usize);
    while pos < sz.len() {
        let mut v = 0u64;
        for i in 0..9 {
            let Some(&c) = sz.get(pos) else { break };
            pos += 1;
            if i == 8 {
                v = (v << 8) | c as u64;
                break;
            }
            v = (v << 7) | (c & 0x7f) as u64;
            if c & 0x80 == 0 {
                break;
            }
        }
        total += v;
    }
    total
}

fn row_to_chunk(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredChunk> {
    Ok(StoredChunk {
        id: r.get(0)?,
        source: r.get(1)?,
        title: r.get(2)?,
        heading: r.get(3)?,
        page: r.get::<_, Option<i64>>(4)?.map(|p| p as u32),
        start: r.get::<_, i64>(5)? as usize,
        end: r.get::<_, i64>(6)? as usize,
        lang: r.get(7)?,
        text: r.get(8)?,
        embedding: blob_to_f32s(&r.get::<_, Vec<u8>>(9)?),
    })
}

/// The analysed FTS terms of a chunk: (title + heading path, passage).
pub(crate) fn fts_terms(title: &str, heading: &str, text: &str, lang: Lang, known: &dyn Fn(&str) -> bool) -> (String, String) {
    let local = if lang == Lang::De { crate::analyze::german_vocabulary(&format!("{heading} {text}")) } else { HashSet::new() };
    let k = |s: &str| local.contains(s) || known(s);
    let head = crate::analyze::index_terms(&format!("{title} {heading}"), lang, &k);
    let body = crate::analyze::index_terms(text, lang, &k);
    (head, body)
}

/// Calls `apply(op, chunk_id, row)` for each index-log entry after `since`,
/// in order; `select` is what follows `SELECT l.seq, l.op, l.chunk_id, `
/// (the columns from index 3 on and the FROM clause over `index_log l`).
/// Returns the last seq applied (`since` when there was none).
fn replay_index_log(
    conn: &Connection,
    path: &Path,
    select: &str,
    since: i64,
    mut apply: impl FnMut(i64, i64, &rusqlite::Row<'_>) -> Result<()>,
) -> Result<i64> {
    let sql = format!("SELECT l.seq, l.op, l.chunk_id, {select} WHERE l.seq > ?1 ORDER BY l.seq");
    let mut st = conn.prepare_cached(&sql).db(path)?;
    let mut rows = st.query([since]).db(path)?;
    let mut last = since;
    while let Some(r) = rows.next().db(path)? {
        let seq: i64 = r.get(0).db(path)?;
        apply(r.get(1).db(path)?, r.get(2).db(path)?, r)?;
        last = seq;
    }
    Ok(last)
}

/// Metadata of a document being written.
#[derive(Debug, Clone)]
pub struct DocMeta {
    pub source: String,
    pub title: String,
    pub format: String,
    pub lang: String,
    pub sha256: String,
    pub size: u64,
    pub mtime: i64,
}

/// A chunk ready to store.
pub struct NewChunk<'a> {
    pub chunk: &'a crate::chunk::Chunk,
    pub lang: Lang,
    pub embedding: &'a [f32],
    pub fts_head: String,
    pub fts_body: String,
}

/// An open document write (one SQLite transaction).
pub struct DocTx<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
    doc_id: i64,
    n: usize,
    pub replaced: bool,
    /// Chunks quarantined / dropped by the injection firewall in this write.
    pub quarantined: usize,
    pub dropped: usize,
}

impl DocTx<'_> {
    pub fn add(&mut self, chunks: &[NewChunk<'_>]) -> Result<()> {
        let p = &self.path;
        let mut ins = self
            .tx
            .prepare_cached(
                "INSERT INTO chunks(doc_id, ord, heading, page, char_start, char_end, lang, tokens, text, embedding)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .db(p)?;
        let mut fts = self.tx.prepare_cached("INSERT INTO chunks_fts(rowid, head, body) VALUES (?1, ?2, ?3)").db(p)?;
        let mut log = self.tx.prepare_cached("INSERT INTO index_log(op, chunk_id) VALUES (0, ?1)").db(p)?;
        for c in chunks {
            let ch = c.chunk;
            ins.execute(params![
                self.doc_id,
                self.n as i64,
                ch.heading,
                ch.page.map(|x| x as i64),
                ch.start as i64,
                ch.end as i64,
                c.lang.as_str(),
                ch.tokens as i64,
                ch.text,
                f32s_to_blob(c.embedding)
            ])
            .db(p)?;
            let id = self.tx.last_insert_rowid();
            fts.execute(params![id, c.fts_head, c.fts_body]).db(p)?;
            log.execute([id]).db(p)?;
            self.n += 1;
        }
        Ok(())
    }

    pub fn chunks(&self) -> usize {
        self.n
    }

    /// Keeps a chunk aside instead of storing it: no FTS row, no vector, never retrieved.
    pub fn quarantine(&mut self, chunk: &crate::chunk::Chunk, ord: usize, score: f32, reasons: &[String]) -> Result<()> {
        let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into());
        self.tx
            .prepare_cached(
                "INSERT INTO quarantine(doc_id, ord, heading, page, text, score, reasons, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .db(&self.path)?
            .execute(params![self.doc_id, ord as i64, chunk.heading, chunk.page.map(|x| x as i64), chunk.text, score as f64, reasons, now()])
            .db(&self.path)?;
        self.quarantined += 1;
        Ok(())
    }

    /// Sets the final title and language and commits the document.
    pub fn commit(self, title: &str, lang: &str) -> Result<usize> {
        self.tx
            .execute("UPDATE documents SET chunks = ?1, title = ?2, lang = ?3 WHERE id = ?4", params![self.n as i64, title, lang, self.doc_id])
            .db(&self.path)?;
        self.tx.commit().db(&self.path)?;
        Ok(self.n)
    }
}

impl Kb {
    /// After a commit: brings the loaded indexes up to date.
    pub fn after_write(&mut self) -> Result<()> {
        if self.index.is_some() {
            self.catch_up()?;
        }
        if self.lexical.is_some() {
            self.catch_up_lexical()?;
        }
        Ok(())
    }

    /// Loads (or creates) the vector and BM25 indexes so that writes update them.
    pub fn ensure_index(&mut self) -> Result<()> {
        if self.index.is_none() {
            self.load_index()?;
        }
        if self.lexical.is_none() {
            self.load_lexical()?;
        }
        Ok(())
    }

    /// A bulk write path for synthetic corpora (benchmarks): documents of
    /// pre-embedded chunks, one transaction per call.
    pub fn bulk_insert(&mut self, docs: &[(DocMeta, Vec<(crate::chunk::Chunk, Vec<f32>, Lang)>)]) -> Result<()> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        {
            let mut doc = tx
                .prepare_cached(
                    "INSERT INTO documents(source, title, format, lang, sha256, size, mtime, chunks, ingested_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .db(&p)?;
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO chunks(doc_id, ord, heading, page, char_start, char_end, lang, tokens, text, embedding)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .db(&p)?;
            let mut fts = tx.prepare_cached("INSERT INTO chunks_fts(rowid, head, body) VALUES (?1, ?2, ?3)").db(&p)?;
            let mut log = tx.prepare_cached("INSERT INTO index_log(op, chunk_id) VALUES (0, ?1)").db(&p)?;
            for (m, chunks) in docs {
                doc.execute(params![m.source, m.title, m.format, m.lang, m.sha256, m.size as i64, m.mtime, chunks.len() as i64, now()])
                    .db(&p)?;
                let doc_id = tx.last_insert_rowid();
                for (i, (ch, emb, lang)) in chunks.iter().enumerate() {
                    ins.execute(params![
                        doc_id,
                        i as i64,
                        ch.heading,
                        ch.page.map(|x| x as i64),
                        ch.start as i64,
                        ch.end as i64,
                        lang.as_str(),
                        ch.tokens as i64,
                        ch.text,
                        f32s_to_blob(emb)
                    ])
                    .db(&p)?;
                    let id = tx.last_insert_rowid();
                    let (h, b) = fts_terms(&m.title, &ch.heading, &ch.text, *lang, &|_| false);
                    fts.execute(params![id, h, b]).db(&p)?;
                    log.execute([id]).db(&p)?;
                }
            }
        }
        tx.commit().db(&p)
    }
}
