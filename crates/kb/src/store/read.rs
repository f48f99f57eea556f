//! Reading a knowledge base: documents and their statistics, quarantined
//! chunks, chunks and embeddings by id, retrieval filters, and the
//! search-side reads (term statistics, BM25 through the BM25 index or
//! through FTS5, kNN through the vector index).
//!
//! Owns every query that only reads the source-of-truth tables and the
//! result types it returns; never writes (the derived indexes are loaded on
//! demand through `store::derived`).

use std::collections::HashSet;
use std::path::Path;

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::derived::latest_file;
use super::{blob_to_f32s, Embedded};
use crate::error::{DbCtx, KbError, Result};
use crate::index::VectorIndex;
use crate::lang::Lang;
use crate::lexical::LexicalIndex;

#[derive(Debug, Clone, Serialize)]
pub struct KbStats {
    pub name: String,
    /// `embedded` (SQLCipher + index files in the kb folder) or `postgres`.
    pub store: String,
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
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
    pub(super) fn sql(&self, first: usize) -> (String, Vec<String>) {
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

impl Embedded {
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
        let index_bytes = latest_file::<VectorIndex>(&self.dir)?.map(|(_, p)| size(&p)).unwrap_or(0);
        let bm25_index_bytes = latest_file::<LexicalIndex>(&self.dir)?.map(|(_, p)| size(&p)).unwrap_or(0);
        Ok(KbStats {
            name: name.to_string(),
            store: "embedded".into(),
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

    /// Whether `stem` is a term of the FTS index (for query decompounding).
    pub(crate) fn has_term(&self, stem: &str) -> bool {
        match &self.bm25.ix {
            Some(lx) => lx.has_term(stem),
            None => self.term_docs(stem) > 0,
        }
    }

    /// In how many chunks `term` (an analysed stem, see [`crate::analyze`])
    /// occurs; 0 when it is no term of the index.
    pub fn term_docs(&self, term: &str) -> usize {
        if let Some(lx) = &self.bm25.ix {
            return lx.doc_freq(term);
        }
        self.conn
            .prepare_cached("SELECT doc FROM chunks_vocab WHERE term = ?1")
            .and_then(|mut st| st.query_row([crate::analyze::fold(term)], |r| r.get::<_, i64>(0)).optional())
            .ok()
            .flatten()
            .unwrap_or(0) as usize
    }

    /// BM25 of the chunks matching any of the analysed `terms`: (chunk id,
    /// score), best first, score = −FTS5's bm25() — computed by the BM25
    /// index ([`crate::lexical`]; loaded if it is not, the caller brings it up to date).
    pub(crate) fn bm25(&mut self, terms: &[String], n: usize, filter: &Filter, w_head: f64, w_body: f64) -> Result<Vec<(i64, f32)>> {
        let allowed = if filter.is_empty() { None } else { Some(self.filtered_ids(filter)?) };
        // `search` brought the index up to date just before (ensure_lexical): no second log read
        if self.bm25.ix.is_none() {
            self.load::<LexicalIndex>()?;
        }
        let lx = self.bm25.ix.as_ref().expect("loaded");
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

