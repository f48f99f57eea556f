//! The knowledge base's SQLite schema and its settings: [`SCHEMA_VERSION`],
//! the migrations that bring a database to it, and the `meta` table
//! (embedder and dimensions, quantization, the index log's compaction point,
//! the FTS generation).
//!
//! Owns the DDL, the migrations and the `meta` helpers; never documents,
//! chunks or the derived index files.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::{now, Embedded};
use crate::error::{DbCtx, KbError, Result};
use crate::index::Quantization;

pub const SCHEMA_VERSION: i64 = 2;

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

/// What a knowledge base records about itself.
#[derive(Debug, Clone, Serialize)]
pub struct KbInfo {
    pub schema_version: i64,
    pub embedder: Option<String>,
    pub dim: Option<usize>,
    pub quantization: String,
}

/// A value of the `meta` table of the database `conn` (at `path`, for errors).
pub(super) fn meta(conn: &Connection, path: &Path, key: &str) -> Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().db(path)
}

/// A numeric `meta` value; 0 when absent (`index_compacted_to`, `fts_generation`).
pub(super) fn meta_i64(conn: &Connection, path: &Path, key: &str) -> Result<i64> {
    Ok(meta(conn, path, key)?.and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// What the database `conn` records about itself.
pub(super) fn info(conn: &Connection, path: &Path) -> Result<KbInfo> {
    Ok(KbInfo {
        schema_version: SCHEMA_VERSION,
        embedder: meta(conn, path, "embedder")?,
        dim: meta(conn, path, "dim")?.and_then(|d| d.parse().ok()),
        quantization: meta(conn, path, "quantization")?.unwrap_or_else(|| "f16".into()),
    })
}

impl Embedded {
    pub(super) fn migrate(&mut self) -> Result<()> {
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

    /// A value of the KB's meta table (settings such as `redact_pii`).
    pub fn meta_value(&self, key: &str) -> Result<Option<String>> {
        meta(&self.conn, &self.db_path, key)
    }

    pub fn set_meta_value(&self, key: &str, value: &str) -> Result<()> {
        self.set_meta(key, value)
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", [key, value])
            .db(&self.db_path)?;
        Ok(())
    }

    pub fn info(&self) -> Result<KbInfo> {
        info(&self.conn, &self.db_path)
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
}
