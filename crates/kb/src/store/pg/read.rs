//! Reading the PostgreSQL store: documents and statistics, quarantined
//! chunks, chunks and embeddings by id, retrieval filters, the two
//! retrievers (full-text ranking over the `tsvector` column, kNN through the
//! pgvector HNSW index) and `kb check`.
//!
//! BM25's equivalent here: Σ over the query terms of idf(term) ·
//! `ts_rank_cd` (cover density, head terms weighted `w_head` and passage
//! terms `w_body`, normalised by 1 + log(length)), with idf computed as the
//! embedded BM25 computes it from the term's document frequency (counted
//! through the GIN index, capped at [`super::DF_CAP`]). Its recall against
//! the embedded BM25 is measured, not assumed (crates/kb/tests/postgres.rs,
//! `tresor eval retrieval`).
//!
//! Owns every read query of the PostgreSQL store; never writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::Row;

use super::{PgKb, DF_CAP};
use crate::error::Result;
use crate::store::{CheckReport, DocInfo, Filter, KbStats, QuarantinedChunk, StoredChunk};

const CHUNK_COLS: &str = "c.id, d.source, d.title, c.heading, c.page, c.char_start, c.char_end, c.lang, c.text, c.embedding, d.source_sealed";

fn row_to_chunk(kb: &PgKb, r: &Row) -> StoredChunk {
    StoredChunk {
        id: r.get(0),
        source: kb.shown_source(r.get(1), r.get::<_, Option<&[u8]>>(10)),
        title: r.get(2),
        heading: r.get(3),
        page: r.get::<_, Option<i32>>(4).map(|p| p as u32),
        start: r.get::<_, i64>(5) as usize,
        end: r.get::<_, i64>(6) as usize,
        lang: r.get(7),
        text: r.get(8),
        embedding: r.get::<_, pgvector::Vector>(9).to_vec(),
    }
}

/// A SQLite GLOB (`*`, `?`, `[…]`, `[!…]`; case-sensitive) as an anchored POSIX regex.
pub(crate) fn glob_to_regex(g: &str) -> String {
    let mut out = String::from("^");
    let mut chars = g.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'!') || chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                for d in chars.by_ref() {
                    if d == '\\' {
                        out.push_str("\\\\");
                        continue;
                    }
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            c if "\\.^$|()+{}".contains(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('$');
    out
}

/// The filter as SQL over `d` and `c` with parameters numbered from `$first`.
fn filter_sql(f: &Filter, first: usize) -> (String, Vec<String>) {
    let mut cond = String::new();
    let mut args = Vec::new();
    if let Some(g) = &f.source_glob {
        cond.push_str(&format!(" AND d.source ~ ${}", first + args.len()));
        args.push(glob_to_regex(g));
    }
    if let Some(l) = f.lang {
        cond.push_str(&format!(" AND c.lang = ${}", first + args.len()));
        args.push(l.as_str().to_string());
    }
    (cond, args)
}

impl PgKb {
    fn count(&self, sql: &str) -> Result<usize> {
        let r = self.client.borrow_mut().query_one(sql, &[]).map_err(|e| self.e("counting", e))?;
        Ok(r.get::<_, i64>(0) as usize)
    }

    pub fn chunk_count(&self) -> Result<usize> {
        self.count("SELECT count(*) FROM chunks")
    }

    pub fn document_count(&self) -> Result<usize> {
        self.count("SELECT count(*) FROM documents")
    }

    pub fn quarantined_count(&self) -> Result<usize> {
        self.count("SELECT count(*) FROM quarantine")
    }

    pub fn document_sha(&self, source: &str) -> Result<Option<String>> {
        let (source, _) = self.server_source(source)?;
        let r = self
            .client
            .borrow_mut()
            .query_opt("SELECT sha256 FROM documents WHERE source = $1", &[&source])
            .map_err(|e| self.e("reading a document", e))?;
        Ok(r.map(|r| r.get(0)))
    }

    pub fn sources(&self) -> Result<Vec<String>> {
        let rows = self.client.borrow_mut().query("SELECT source, source_sealed FROM documents", &[]).map_err(|e| self.e("listing", e))?;
        let mut v: Vec<String> = rows.iter().map(|r| self.shown_source(r.get(0), r.get(1))).collect();
        v.sort();
        Ok(v)
    }

    pub fn list(&self) -> Result<Vec<DocInfo>> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT source, title, format, lang, chunks, size, sha256, mtime, ingested_at,
                        (SELECT count(*) FROM quarantine q WHERE q.doc_id = documents.id), source_sealed FROM documents",
                &[],
            )
            .map_err(|e| self.e("listing", e))?;
        let mut docs: Vec<DocInfo> = rows
            .iter()
            .map(|r| DocInfo {
                source: self.shown_source(r.get(0), r.get(10)),
                title: r.get(1),
                format: r.get(2),
                lang: r.get(3),
                chunks: r.get::<_, i64>(4) as usize,
                size: r.get::<_, i64>(5) as u64,
                sha256: r.get(6),
                mtime: r.get(7),
                ingested_at: r.get(8),
                quarantined: r.get::<_, i64>(9) as usize,
            })
            .collect();
        docs.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(docs)
    }

    pub fn stats(&self, name: &str) -> Result<KbStats> {
        let info = self.info()?;
        let group = |sql: &str| -> Result<Vec<(String, usize)>> {
            let rows = self.client.borrow_mut().query(sql, &[]).map_err(|e| self.e("statistics", e))?;
            Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as usize)).collect())
        };
        let size = |sql: &str| -> Result<u64> {
            let r = self.client.borrow_mut().query_one(sql, &[]).map_err(|e| self.e("statistics", e))?;
            Ok(r.get::<_, Option<i64>>(0).unwrap_or(0) as u64)
        };
        Ok(KbStats {
            name: name.to_string(),
            store: "postgres".into(),
            path: self.url.clone(),
            documents: self.document_count()?,
            chunks: self.chunk_count()?,
            embedder: info.embedder,
            dim: info.dim,
            quantization: info.quantization,
            schema_version: info.schema_version,
            languages: group("SELECT lang, count(*) FROM chunks GROUP BY lang ORDER BY 2 DESC")?,
            formats: group("SELECT format, count(*) FROM documents GROUP BY format ORDER BY 2 DESC")?,
            db_bytes: size(
                "SELECT (pg_table_size('tresor_kb.chunks') + pg_table_size('tresor_kb.documents') + pg_table_size('tresor_kb.quarantine'))::bigint",
            )?,
            index_bytes: size("SELECT pg_relation_size(to_regclass('tresor_kb.chunks_hnsw'))::bigint")?,
            bm25_index_bytes: size("SELECT pg_relation_size('tresor_kb.chunks_fts')::bigint")?,
            pending_index_ops: 0,
            quarantined: self.quarantined_count()?,
        })
    }

    pub fn quarantined(&self) -> Result<Vec<QuarantinedChunk>> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT d.source, q.ord, q.heading, q.page, q.text, q.score, q.reasons, d.source_sealed FROM quarantine q
                 JOIN documents d ON d.id = q.doc_id",
                &[],
            )
            .map_err(|e| self.e("quarantine", e))?;
        let mut v: Vec<QuarantinedChunk> = rows
            .iter()
            .map(|r| QuarantinedChunk {
                source: self.shown_source(r.get(0), r.get(7)),
                ord: r.get::<_, i32>(1) as usize,
                heading: r.get(2),
                page: r.get::<_, Option<i32>>(3).map(|p| p as u32),
                text: r.get(4),
                score: r.get(5),
                reasons: serde_json::from_str(r.get(6)).unwrap_or_default(),
            })
            .collect();
        v.sort_by(|a, b| (&a.source, a.ord).cmp(&(&b.source, b.ord)));
        Ok(v)
    }

    pub(crate) fn has_term(&self, stem: &str) -> bool {
        self.term_docs(stem) > 0
    }

    /// In how many chunks `term` occurs (up to [`DF_CAP`]); cached for a minute.
    pub fn term_docs(&self, term: &str) -> usize {
        let term = crate::analyze::fold(term);
        {
            let mut c = self.df_cache.borrow_mut();
            if c.0.elapsed() > Duration::from_secs(60) {
                *c = (Instant::now(), HashMap::new());
            }
            if let Some(n) = c.1.get(&term) {
                return *n;
            }
        }
        let n = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM chunks WHERE fts @@ plainto_tsquery('simple', $1) LIMIT $2) s",
                &[&term, &DF_CAP],
            )
            .map(|r| r.get::<_, i64>(0) as usize)
            .unwrap_or(0);
        self.df_cache.borrow_mut().1.insert(term, n);
        n
    }

    /// Σ idf(t) · ts_rank_cd over the chunks matching any term (see the module comment): (chunk id, score), best first.
    pub(crate) fn bm25(&mut self, terms: &[String], n: usize, filter: &Filter, w_head: f64, w_body: f64) -> Result<Vec<(i64, f32)>> {
        let terms: Vec<String> = terms.iter().filter(|t| self.term_docs(t) > 0).cloned().collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let total = self.chunk_count()?;
        let idf: Vec<f32> = terms.iter().map(|t| {
            let d = self.term_docs(t).min(total) as f32;
            (1.0 + (total as f32 - d + 0.5) / (d + 0.5)).ln()
        }).collect();
        // $1 weights, $2 limit, then per term: the term ($3, $5, …) and its idf ($4, $6, …)
        let weights: Vec<f32> = vec![w_body as f32, 0.0, 0.0, w_head as f32];
        let limit = n as i64;
        let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(weights), Box::new(limit)];
        let mut score = Vec::new();
        let mut any = Vec::new();
        for (i, (t, w)) in terms.iter().zip(&idf).enumerate() {
            let (pt, pw) = (3 + 2 * i, 4 + 2 * i);
            score.push(format!("${pw}::real * ts_rank_cd($1::real[], c.fts, plainto_tsquery('simple', ${pt}), 1)"));
            any.push(format!("plainto_tsquery('simple', ${pt})"));
            args.push(Box::new(t.clone()));
            args.push(Box::new(*w));
        }
        let (cond, fargs) = filter_sql(filter, args.len() + 1);
        for a in fargs {
            args.push(Box::new(a));
        }
        let join = if filter.source_glob.is_some() { "JOIN documents d ON d.id = c.doc_id" } else { "" };
        let sql = format!(
            "SELECT c.id, ({})::real AS s FROM chunks c {join} WHERE c.fts @@ ({}) {cond} ORDER BY s DESC, c.id LIMIT $2",
            score.join(" + "),
            any.join(" || ")
        );
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
        let rows = self.client.get_mut().query(&sql, &params).map_err(|e| super::err(&self.url, "full-text search", super::pg_reason(&e)))?;
        Ok(rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, f32>(1))).collect())
    }

    /// Nearest chunks by cosine through the HNSW index: (chunk id, similarity), best first.
    pub(crate) fn knn(&mut self, q: &[f32], n: usize, filter: &Filter) -> Result<Vec<(i64, f32)>> {
        let v = pgvector::Vector::from(q.to_vec());
        let limit = n as i64;
        let (cond, fargs) = filter_sql(filter, 3);
        let join = if filter.source_glob.is_some() { "JOIN documents d ON d.id = c.doc_id" } else { "" };
        let sql = format!(
            "SELECT c.id, (1 - (c.embedding <=> $1))::real FROM chunks c {join} WHERE true {cond} ORDER BY c.embedding <=> $1 LIMIT $2"
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&v, &limit];
        for a in &fargs {
            params.push(a);
        }
        let rows = self.client.get_mut().query(&sql, &params).map_err(|e| super::err(&self.url, "vector search", super::pg_reason(&e)))?;
        let mut hits: Vec<(i64, f32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // a filtered scan in relaxed order may return near-ties out of order
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(hits)
    }

    pub fn chunks_by_id(&self, ids: &[i64]) -> Result<Vec<StoredChunk>> {
        let sql = format!("SELECT {CHUNK_COLS} FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ANY($1)");
        let rows = self.client.borrow_mut().query(&sql, &[&ids]).map_err(|e| self.e("reading chunks", e))?;
        let mut by: HashMap<i64, StoredChunk> = rows.iter().map(|r| (r.get::<_, i64>(0), row_to_chunk(self, r))).collect();
        Ok(ids.iter().filter_map(|id| by.remove(id)).collect())
    }

    pub fn embeddings_by_id(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>> {
        let rows =
            self.client.borrow_mut().query("SELECT id, embedding FROM chunks WHERE id = ANY($1)", &[&ids]).map_err(|e| self.e("reading embeddings", e))?;
        let mut by: HashMap<i64, Vec<f32>> = rows.iter().map(|r| (r.get::<_, i64>(0), r.get::<_, pgvector::Vector>(1).to_vec())).collect();
        Ok(ids.iter().filter_map(|id| by.remove(id).map(|v| (*id, v))).collect())
    }

    pub fn chunks_of(&self, source: &str) -> Result<Vec<StoredChunk>> {
        let (source, _) = self.server_source(source)?;
        let sql = format!("SELECT {CHUNK_COLS} FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.source = $1 ORDER BY c.ord");
        let rows = self.client.borrow_mut().query(&sql, &[&source]).map_err(|e| self.e("reading chunks", e))?;
        Ok(rows.iter().map(|r| row_to_chunk(self, r)).collect())
    }

    /// Verifies the invariants of docs/storage.md ("PostgreSQL store").
    pub fn check(&mut self) -> Result<CheckReport> {
        let mut problems = Vec::new();
        let orphans = self.count("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)")?;
        if orphans > 0 {
            problems.push(format!("{orphans} chunks belong to no document"));
        }
        let bad_counts = self.count(
            "SELECT count(*) FROM documents d WHERE d.chunks != (SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)
               OR (SELECT coalesce(max(ord), -1) FROM chunks c WHERE c.doc_id = d.id) != d.chunks - 1",
        )?;
        if bad_counts > 0 {
            problems.push(format!("{bad_counts} documents whose chunk count or chunk numbering is off"));
        }
        let empty_docs = self.count("SELECT count(*) FROM documents WHERE chunks = 0")?;
        if empty_docs > 0 {
            problems.push(format!("{empty_docs} documents without chunks"));
        }
        let no_terms = self.count("SELECT count(*) FROM chunks WHERE fts = ''::tsvector AND length(trim(text)) > 0 AND text ~ '[[:alnum:]]'")?;
        if no_terms > 0 {
            problems.push(format!("{no_terms} chunks with text have no full-text terms"));
        }
        let info = self.info()?;
        let chunks = self.chunk_count()?;
        let mut indexed = 0;
        if let Some(dim) = info.dim {
            let bad = self
                .client
                .borrow_mut()
                .query_one("SELECT count(*) FROM chunks WHERE vector_dims(embedding) != $1", &[&(dim as i32)])
                .map_err(|e| self.e("check", e))?
                .get::<_, i64>(0);
            if bad > 0 {
                problems.push(format!("{bad} embeddings are not {dim}-dimensional"));
            }
            let valid: Option<bool> = self
                .client
                .borrow_mut()
                .query_opt(
                    "SELECT i.indisvalid AND i.indisready FROM pg_index i WHERE i.indexrelid = to_regclass('tresor_kb.chunks_hnsw')",
                    &[],
                )
                .map_err(|e| self.e("check", e))?
                .map(|r| r.get(0));
            match valid {
                Some(true) => indexed = chunks,
                Some(false) => problems.push("the HNSW vector index is not valid (REINDEX: tresor kb rebuild-index)".into()),
                None => problems.push("the HNSW vector index is missing".into()),
            }
        } else if chunks > 0 {
            problems.push("chunks stored but no embedder recorded".into());
        }
        let fts_valid: Option<bool> = self
            .client
            .borrow_mut()
            .query_opt("SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('tresor_kb.chunks_fts')", &[])
            .map_err(|e| self.e("check", e))?
            .map(|r| r.get(0));
        if fts_valid != Some(true) {
            problems.push("the full-text (GIN) index is missing or not valid".into());
        }
        Ok(CheckReport { ok: problems.is_empty(), documents: self.document_count()?, chunks, indexed, problems })
    }
}

#[cfg(test)]
mod tests {
    use super::glob_to_regex;

    #[test]
    fn globs_become_anchored_regexes() {
        assert_eq!(glob_to_regex("docs/*.md"), "^docs/.*\\.md$");
        assert_eq!(glob_to_regex("a?[!x]"), "^a.[^x]$");
        assert_eq!(glob_to_regex("(x)+"), "^\\(x\\)\\+$");
    }
}
