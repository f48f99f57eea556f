//! Verifying a knowledge base against the invariants of docs/storage.md:
//! SQLite's and FTS5's integrity checks, chunks against documents and
//! full-text rows, embeddings against the recorded dimensions, and both
//! derived indexes against the database.
//!
//! Owns [`Kb::check`] and its [`CheckReport`]; never repairs anything (it
//! only loads the derived indexes the way a search would).

use serde::Serialize;

use super::Embedded;
use crate::error::{DbCtx, Result};

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub documents: usize,
    pub chunks: usize,
    pub indexed: usize,
    pub problems: Vec<String>,
}

impl Embedded {
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
                    let idx = self.vectors.ix.as_ref().expect("loaded");
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
