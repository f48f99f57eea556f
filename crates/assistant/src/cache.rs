//! The semantic cache: a question's normalised form is embedded; an earlier
//! answer for the same knowledge base *version* whose question embedding is
//! at least `similarity_threshold` close is served again. A new version
//! (documents added, changed or removed) invalidates the knowledge base's
//! entries. Hits and misses are counted.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{DbCtx, Result};

pub struct SemanticCache {
    conn: Connection,
    path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

pub struct CacheHit {
    pub answer_json: String,
    pub similarity: f32,
    pub question: String,
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl SemanticCache {
    /// Opens the cache table in `path` (SQLCipher, keyed with the workspace key).
    pub fn open(path: &Path, key: &tresor_guard::crypto::WorkspaceKey) -> Result<Self> {
        let conn = crate::store::open_db(path, key)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS answer_cache (
                id INTEGER PRIMARY KEY,
                kb TEXT NOT NULL,
                kb_version TEXT NOT NULL,
                question TEXT NOT NULL,
                embedding BLOB NOT NULL,
                answer TEXT NOT NULL,
                hits INTEGER NOT NULL DEFAULT 0,
                created INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS answer_cache_kb ON answer_cache(kb, kb_version);
            CREATE TABLE IF NOT EXISTS cache_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .db(path)?;
        Ok(SemanticCache { conn, path: path.to_path_buf() })
    }

    fn bump(&self, name: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO cache_counters(name, value) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
                params![name],
            )
            .db(&self.path)?;
        Ok(())
    }

    /// The closest entry at or above `threshold` for this knowledge base
    /// version; entries of older versions are dropped on the way.
    pub fn lookup(&self, kb: &str, version: &str, qvec: &[f32], threshold: f32) -> Result<Option<CacheHit>> {
        self.conn
            .execute("DELETE FROM answer_cache WHERE kb = ?1 AND kb_version != ?2", params![kb, version])
            .db(&self.path)?;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, question, embedding, answer FROM answer_cache WHERE kb = ?1 AND kb_version = ?2")
            .db(&self.path)?;
        let rows = stmt
            .query_map(params![kb, version], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, String>(3)?))
            })
            .db(&self.path)?;
        let mut best: Option<(f32, i64, String, String)> = None;
        for row in rows {
            let (id, q, emb, ans) = row.db(&self.path)?;
            let v = from_blob(&emb);
            if v.len() != qvec.len() {
                continue;
            }
            let sim: f32 = v.iter().zip(qvec).map(|(a, b)| a * b).sum();
            if sim >= threshold && best.as_ref().is_none_or(|b| sim > b.0) {
                best = Some((sim, id, q, ans));
            }
        }
        drop(stmt);
        match best {
            Some((similarity, id, question, answer_json)) => {
                self.conn.execute("UPDATE answer_cache SET hits = hits + 1 WHERE id = ?1", params![id]).db(&self.path)?;
                self.bump("hits")?;
                Ok(Some(CacheHit { answer_json, similarity, question }))
            }
            None => {
                self.bump("misses")?;
                Ok(None)
            }
        }
    }

    pub fn store(&self, kb: &str, version: &str, question: &str, qvec: &[f32], answer_json: &str, max_entries: usize) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO answer_cache(kb, kb_version, question, embedding, answer, created) VALUES (?1, ?2, ?3, ?4, ?5, strftime('%s','now'))",
                params![kb, version, question, to_blob(qvec), answer_json],
            )
            .db(&self.path)?;
        self.conn
            .execute(
                "DELETE FROM answer_cache WHERE kb = ?1 AND id NOT IN (SELECT id FROM answer_cache WHERE kb = ?1 ORDER BY id DESC LIMIT ?2)",
                params![kb, max_entries as i64],
            )
            .db(&self.path)?;
        Ok(())
    }

    pub fn clear(&self) -> Result<usize> {
        self.conn.execute("DELETE FROM answer_cache", []).db(&self.path)
    }

    pub fn stats(&self) -> Result<CacheStats> {
        let entries: i64 = self.conn.query_row("SELECT COUNT(*) FROM answer_cache", [], |r| r.get(0)).db(&self.path)?;
        let get = |n: &str| -> Result<u64> {
            Ok(self
                .conn
                .query_row("SELECT value FROM cache_counters WHERE name = ?1", params![n], |r| r.get::<_, i64>(0))
                .optional()
                .db(&self.path)?
                .unwrap_or(0) as u64)
        };
        Ok(CacheStats { entries: entries as usize, hits: get("hits")?, misses: get("misses")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn hits_above_threshold_misses_below_and_invalidates_on_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let c = SemanticCache::open(&dir.path().join("a.sqlite"), &tresor_guard::crypto::WorkspaceKey::ephemeral()).unwrap();
        let q = unit(&[1.0, 0.0, 0.1]);
        assert!(c.lookup("kb", "v1", &q, 0.95).unwrap().is_none());
        c.store("kb", "v1", "how many days", &q, "{\"answer\":\"30\"}", 10).unwrap();
        let near = unit(&[1.0, 0.02, 0.1]);
        let hit = c.lookup("kb", "v1", &near, 0.95).unwrap().unwrap();
        assert_eq!(hit.answer_json, "{\"answer\":\"30\"}");
        assert!(hit.similarity > 0.99);
        assert!(c.lookup("kb", "v1", &unit(&[0.0, 1.0, 0.0]), 0.95).unwrap().is_none());
        assert!(c.lookup("other", "v1", &q, 0.95).unwrap().is_none());
        // the knowledge base changed: the old answer is gone
        assert!(c.lookup("kb", "v2", &q, 0.95).unwrap().is_none());
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.hits, s.misses), (0, 1, 4));
    }
}
