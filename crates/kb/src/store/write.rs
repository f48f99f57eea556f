//! Writing documents: [`Kb::begin_document`] opens one IMMEDIATE transaction
//! that replaces a document, [`EmbeddedDocTx`] adds its chunks (row, FTS terms,
//! `op=0` index-log entry) or quarantines them, and commits; removal, the
//! benchmarks' bulk path and the re-analysis of every chunk's FTS terms.
//!
//! Owns every write to `documents`, `chunks`, `chunks_fts`, `quarantine` and
//! the `op=0` index-log entries (the schema's trigger logs removals); never
//! the derived index files (writers call [`Kb::after_write`] /
//! [`Kb::save_index`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{f32s_to_blob, now, Embedded};
use crate::chunk::Chunk;
use crate::error::{DbCtx, KbError, Result};
use crate::lang::Lang;

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
    pub chunk: &'a Chunk,
    pub lang: Lang,
    pub embedding: &'a [f32],
    pub fts_head: String,
    pub fts_body: String,
}

/// An open document write (one SQLite transaction).
pub struct EmbeddedDocTx<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
    doc_id: i64,
    n: usize,
    pub replaced: bool,
}

/// The analysed FTS terms of a chunk: (title + heading path, passage).
pub(crate) fn fts_terms(title: &str, heading: &str, text: &str, lang: Lang, known: &dyn Fn(&str) -> bool) -> (String, String) {
    let local = if lang == Lang::De { crate::analyze::german_vocabulary(&format!("{heading} {text}")) } else { HashSet::new() };
    let k = |s: &str| local.contains(s) || known(s);
    let head = crate::analyze::index_terms(&format!("{title} {heading}"), lang, &k);
    let body = crate::analyze::index_terms(text, lang, &k);
    (head, body)
}

/// Inserts a document row with `chunks` chunks; returns its id.
fn insert_document(tx: &Connection, p: &Path, m: &DocMeta, chunks: usize) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO documents(source, title, format, lang, sha256, size, mtime, chunks, ingested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .db(p)?
    .execute(params![m.source, m.title, m.format, m.lang, m.sha256, m.size as i64, m.mtime, chunks as i64, now()])
    .db(p)?;
    Ok(tx.last_insert_rowid())
}

/// Inserts `c` as chunk `ord` of document `doc_id`, with its FTS row and
/// its `op=0` index-log entry: the one way a chunk enters the database.
fn insert_chunk(tx: &Connection, p: &Path, doc_id: i64, ord: usize, c: &NewChunk<'_>) -> Result<()> {
    let ch = c.chunk;
    tx.prepare_cached(
        "INSERT INTO chunks(doc_id, ord, heading, page, char_start, char_end, lang, tokens, text, embedding)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .db(p)?
    .execute(params![
        doc_id,
        ord as i64,
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
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO chunks_fts(rowid, head, body) VALUES (?1, ?2, ?3)").db(p)?.execute(params![id, c.fts_head, c.fts_body]).db(p)?;
    tx.prepare_cached("INSERT INTO index_log(op, chunk_id) VALUES (0, ?1)").db(p)?.execute([id]).db(p)?;
    Ok(())
}

impl EmbeddedDocTx<'_> {
    pub fn add(&mut self, chunks: &[NewChunk<'_>]) -> Result<()> {
        for c in chunks {
            insert_chunk(&self.tx, &self.path, self.doc_id, self.n, c)?;
            self.n += 1;
        }
        Ok(())
    }

    pub fn chunks(&self) -> usize {
        self.n
    }

    /// Keeps a chunk aside instead of storing it: no FTS row, no vector, never retrieved.
    pub fn quarantine(&mut self, chunk: &Chunk, ord: usize, score: f32, reasons: &[String]) -> Result<()> {
        let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into());
        self.tx
            .prepare_cached(
                "INSERT INTO quarantine(doc_id, ord, heading, page, text, score, reasons, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .db(&self.path)?
            .execute(params![self.doc_id, ord as i64, chunk.heading, chunk.page.map(|x| x as i64), chunk.text, score as f64, reasons, now()])
            .db(&self.path)?;
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

impl Embedded {
    /// Starts replacing (or adding) the document `meta.source`: one
    /// IMMEDIATE transaction that deletes its old chunks and inserts the new
    /// document row. Nothing is visible until [`EmbeddedDocTx::commit`].
    pub fn begin_document(&mut self, meta: &DocMeta) -> Result<EmbeddedDocTx<'_>> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        let old: Option<i64> =
            tx.query_row("SELECT id FROM documents WHERE source = ?1", [&meta.source], |r| r.get(0)).optional().db(&p)?;
        if let Some(id) = old {
            tx.execute("DELETE FROM chunks WHERE doc_id = ?1", [id]).db(&p)?;
            tx.execute("DELETE FROM documents WHERE id = ?1", [id]).db(&p)?;
        }
        let doc_id = insert_document(&tx, &p, meta, 0)?;
        Ok(EmbeddedDocTx { tx, path: p, doc_id, n: 0, replaced: old.is_some() })
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

    /// A bulk write path for synthetic corpora (benchmarks): documents of
    /// pre-embedded chunks, one transaction per call.
    pub fn bulk_insert(&mut self, docs: &[(DocMeta, Vec<(Chunk, Vec<f32>, Lang)>)]) -> Result<()> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        for (m, chunks) in docs {
            let doc_id = insert_document(&tx, &p, m, chunks.len())?;
            for (i, (ch, emb, lang)) in chunks.iter().enumerate() {
                let (fts_head, fts_body) = fts_terms(&m.title, &ch.heading, &ch.text, *lang, &|_| false);
                insert_chunk(&tx, &p, doc_id, i, &NewChunk { chunk: ch, lang: *lang, embedding: emb, fts_head, fts_body })?;
            }
        }
        tx.commit().db(&p)
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
