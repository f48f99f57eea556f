//! Writing documents to the PostgreSQL store: one transaction per document
//! ([`PgKb::begin_document`] … [`PgDocTx::commit`]) under an advisory lock
//! on its source, so two clients writing the same document serialise and
//! a killed client's open transaction is rolled back by the server; removal,
//! the benchmarks' bulk path and the re-analysis of every chunk's terms.
//!
//! Owns every write to `documents`, `chunks` and `quarantine`; never reads
//! for retrieval. Chunk text and titles arrive here already PII-redacted by
//! ingest; source paths are written in their server form
//! ([`PgKb::server_source`]).

use postgres::{Statement, Transaction};

use super::PgKb;
use crate::chunk::Chunk;
use crate::error::{KbError, Result};
use crate::lang::Lang;
use crate::store::{fts_terms, now, DocMeta, NewChunk};

/// The full-text vector of a chunk: title + heading terms weighted `A`, the
/// passage's `D` (the analysed terms of `fts_terms`, parsed by the `simple`
/// configuration: no second stemming on the server).
const FTS_EXPR: &str = "setweight(to_tsvector('simple', $11), 'A') || setweight(to_tsvector('simple', $12), 'D')";

fn insert_chunk_sql() -> String {
    format!(
        "INSERT INTO chunks(doc_id, ord, heading, page, char_start, char_end, lang, tokens, text, embedding, fts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {FTS_EXPR})"
    )
}

/// An open document write (one PostgreSQL transaction).
pub struct PgDocTx<'a> {
    tx: Transaction<'a>,
    url: String,
    ins: Statement,
    doc_id: i64,
    n: usize,
    pub replaced: bool,
}

fn e(url: &str, what: &str, x: postgres::Error) -> KbError {
    KbError::Store { store: url.to_string(), reason: format!("{what}: {}", super::pg_reason(&x)) }
}

/// Inserts the document row; `source` is the server form of `m.source`, `sealed` the original sealed.
fn insert_document(tx: &mut Transaction<'_>, url: &str, m: &DocMeta, source: &str, sealed: Option<&[u8]>, chunks: usize) -> Result<i64> {
    let row = tx
        .query_one(
            "INSERT INTO documents(source, source_sealed, title, format, lang, sha256, size, mtime, chunks, ingested_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            &[&source, &sealed, &m.title, &m.format, &m.lang, &m.sha256, &(m.size as i64), &m.mtime, &(chunks as i64), &now()],
        )
        .map_err(|x| e(url, "inserting a document", x))?;
    Ok(row.get(0))
}

fn insert_chunk(tx: &mut Transaction<'_>, url: &str, st: &Statement, doc_id: i64, ord: usize, c: &NewChunk<'_>) -> Result<()> {
    let ch = c.chunk;
    let v = pgvector::Vector::from(c.embedding.to_vec());
    tx.execute(
        st,
        &[
            &doc_id,
            &(ord as i32),
            &ch.heading,
            &ch.page.map(|p| p as i32),
            &(ch.start as i64),
            &(ch.end as i64),
            &c.lang.as_str(),
            &(ch.tokens as i32),
            &ch.text,
            &v,
            &c.fts_head,
            &c.fts_body,
        ],
    )
    .map_err(|x| e(url, "inserting a chunk", x))?;
    Ok(())
}

/// Deletes document `source` (its chunks and quarantine rows cascade) inside `tx`; its id if it existed.
fn delete_document(tx: &mut Transaction<'_>, url: &str, source: &str) -> Result<Option<(i64, usize)>> {
    let old = tx.query_opt("SELECT id FROM documents WHERE source = $1", &[&source]).map_err(|x| e(url, "reading a document", x))?;
    let Some(old) = old else { return Ok(None) };
    let id: i64 = old.get(0);
    let n = tx.execute("DELETE FROM chunks WHERE doc_id = $1", &[&id]).map_err(|x| e(url, "deleting chunks", x))?;
    tx.execute("DELETE FROM documents WHERE id = $1", &[&id]).map_err(|x| e(url, "deleting a document", x))?;
    Ok(Some((id, n as usize)))
}

/// Serialises writers of one document across clients (released at commit or rollback).
fn lock_source(tx: &mut Transaction<'_>, url: &str, source: &str) -> Result<()> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", &[&source]).map_err(|x| e(url, "locking a document", x))?;
    Ok(())
}

impl PgDocTx<'_> {
    pub fn add(&mut self, chunks: &[NewChunk<'_>]) -> Result<()> {
        for c in chunks {
            insert_chunk(&mut self.tx, &self.url, &self.ins, self.doc_id, self.n, c)?;
            self.n += 1;
        }
        Ok(())
    }

    pub fn chunks(&self) -> usize {
        self.n
    }

    pub fn quarantine(&mut self, chunk: &Chunk, ord: usize, score: f32, reasons: &[String]) -> Result<()> {
        let reasons = serde_json::to_string(reasons).unwrap_or_else(|_| "[]".into());
        self.tx
            .execute(
                "INSERT INTO quarantine(doc_id, ord, heading, page, text, score, reasons, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[&self.doc_id, &(ord as i32), &chunk.heading, &chunk.page.map(|p| p as i32), &chunk.text, &score, &reasons, &now()],
            )
            .map_err(|x| e(&self.url, "quarantining a chunk", x))?;
        Ok(())
    }

    pub fn commit(mut self, title: &str, lang: &str) -> Result<usize> {
        self.tx
            .execute("UPDATE documents SET chunks = $1, title = $2, lang = $3 WHERE id = $4", &[&(self.n as i64), &title, &lang, &self.doc_id])
            .map_err(|x| e(&self.url, "finishing a document", x))?;
        self.tx.commit().map_err(|x| e(&self.url, "commit", x))?;
        Ok(self.n)
    }
}

impl PgKb {
    pub fn begin_document(&mut self, meta: &DocMeta) -> Result<PgDocTx<'_>> {
        self.forget_terms();
        let url = self.url.clone();
        let (source, sealed) = self.server_source(&meta.source)?;
        let mut tx = self.client.get_mut().transaction().map_err(|x| e(&url, "begin", x))?;
        lock_source(&mut tx, &url, &source)?;
        let mut old = delete_document(&mut tx, &url, &source)?;
        if source != meta.source {
            // stored in clear before the path was redacted (an older Tresor): replaced too
            let legacy = delete_document(&mut tx, &url, &meta.source)?;
            old = old.or(legacy);
        }
        let doc_id = insert_document(&mut tx, &url, meta, &source, sealed.as_deref(), 0)?;
        let ins = tx.prepare(&insert_chunk_sql()).map_err(|x| e(&url, "prepare", x))?;
        Ok(PgDocTx { tx, url, ins, doc_id, n: 0, replaced: old.is_some() })
    }

    /// Removes document `source`: a path as ingested, or a source as the server holds it
    /// (another client's document this one cannot unseal is listed that way).
    pub fn remove_source(&mut self, source: &str) -> Result<usize> {
        self.forget_terms();
        let url = self.url.clone();
        let (server, _) = self.server_source(source)?;
        let mut tx = self.client.get_mut().transaction().map_err(|x| e(&url, "begin", x))?;
        lock_source(&mut tx, &url, &server)?;
        let mut gone = delete_document(&mut tx, &url, &server)?;
        if gone.is_none() && server != source {
            gone = delete_document(&mut tx, &url, source)?;
        }
        let Some((_, n)) = gone else {
            return Err(KbError::NoSuchSource(source.to_string()));
        };
        tx.commit().map_err(|x| e(&url, "commit", x))?;
        Ok(n)
    }

    /// Documents of pre-embedded chunks, one transaction per call (benchmarks).
    pub fn bulk_insert(&mut self, docs: &[(DocMeta, Vec<(Chunk, Vec<f32>, Lang)>)]) -> Result<()> {
        self.forget_terms();
        let url = self.url.clone();
        let sources = docs.iter().map(|(m, _)| self.server_source(&m.source)).collect::<Result<Vec<_>>>()?;
        let mut tx = self.client.get_mut().transaction().map_err(|x| e(&url, "begin", x))?;
        let ins = tx.prepare(&insert_chunk_sql()).map_err(|x| e(&url, "prepare", x))?;
        for ((m, chunks), (source, sealed)) in docs.iter().zip(&sources) {
            lock_source(&mut tx, &url, source)?;
            delete_document(&mut tx, &url, source)?;
            let doc_id = insert_document(&mut tx, &url, m, source, sealed.as_deref(), chunks.len())?;
            for (i, (ch, emb, lang)) in chunks.iter().enumerate() {
                let (fts_head, fts_body) = fts_terms(&m.title, &ch.heading, &ch.text, *lang, &|_| false);
                insert_chunk(&mut tx, &url, &ins, doc_id, i, &NewChunk { chunk: ch, lang: *lang, embedding: emb, fts_head, fts_body })?;
            }
        }
        tx.commit().map_err(|x| e(&url, "commit", x))
    }

    /// Re-analyses every chunk's full-text terms (after an analyser change), in one transaction.
    pub fn rebuild_fts(&mut self) -> Result<usize> {
        self.forget_terms();
        let url = self.url.clone();
        let mut tx = self.client.get_mut().transaction().map_err(|x| e(&url, "begin", x))?;
        let rows = tx
            .query("SELECT c.id, d.title, c.heading, c.lang, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id FOR UPDATE OF c", &[])
            .map_err(|x| e(&url, "reading chunks", x))?;
        let up = tx
            .prepare("UPDATE chunks SET fts = setweight(to_tsvector('simple', $2), 'A') || setweight(to_tsvector('simple', $3), 'D') WHERE id = $1")
            .map_err(|x| e(&url, "prepare", x))?;
        for r in &rows {
            let id: i64 = r.get(0);
            let lang = Lang::parse(r.get::<_, &str>(3)).unwrap_or(Lang::En);
            let (head, body) = fts_terms(r.get(1), r.get(2), r.get(4), lang, &|_| false);
            tx.execute(&up, &[&id, &head, &body]).map_err(|x| e(&url, "updating terms", x))?;
        }
        tx.commit().map_err(|x| e(&url, "commit", x))?;
        Ok(rows.len())
    }
}
