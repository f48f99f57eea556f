//! `tools.sqlite` in the data dir: the imported data (prices, orders, busy
//! times), what the built-in side-effect tools created (appointments,
//! tickets) and the actions. Encrypted with the workspace key through
//! SQLCipher like every other store; format and invariants in
//! docs/storage.md ("Tools and actions").
//!
//! Owns: the schema and its version, opening (and the recovery of actions a
//! killed process left `running`), and plain reads. Never: parsing import
//! files (`import`), deciding a tool's outcome (`builtin`) or an action's
//! transitions (`actions`).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;

use crate::error::{DbCtx, Result, ToolError};

/// The database file in a data dir.
pub const DB_FILE: &str = "tools.sqlite";
/// `PRAGMA user_version` this program writes.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS prices (
    sku TEXT PRIMARY KEY,
    sku_key TEXT NOT NULL UNIQUE,          -- sku upper-cased, A-Z0-9 only
    product TEXT NOT NULL,
    price TEXT NOT NULL,                   -- as in the CSV: digits, optional dot and 1-2 decimals
    currency TEXT NOT NULL                 -- ISO 4217
);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    order_key TEXT NOT NULL UNIQUE,        -- order_id upper-cased, A-Z0-9 only
    customer TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL               -- ISO date as in the CSV
);
CREATE TABLE IF NOT EXISTS busy (
    id INTEGER PRIMARY KEY,
    uid TEXT,
    summary TEXT,
    start INTEGER NOT NULL,                -- unix seconds, UTC
    end INTEGER NOT NULL,                  -- unix seconds, exclusive; end >= start
    all_day INTEGER NOT NULL DEFAULT 0,
    line INTEGER NOT NULL                  -- BEGIN:VEVENT's line in the imported file
);
CREATE INDEX IF NOT EXISTS busy_start ON busy(start);
CREATE TABLE IF NOT EXISTS imports (
    kind TEXT PRIMARY KEY,                 -- prices | orders | calendar
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    imported_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,                   -- act_ + 12 hex
    idem_key TEXT NOT NULL,                -- sha256(conversation, tool, canonical arguments)
    conversation TEXT NOT NULL,
    tool TEXT NOT NULL,
    source TEXT NOT NULL,                  -- builtin | mcp:NAME
    side_effect INTEGER NOT NULL,
    arguments TEXT NOT NULL,               -- JSON object
    args_hash TEXT NOT NULL,               -- sha256 of the canonical arguments (audit)
    status TEXT NOT NULL,
    result TEXT,                           -- JSON
    error TEXT,
    missing TEXT NOT NULL DEFAULT '[]',    -- JSON array of field names
    attempts INTEGER NOT NULL DEFAULT 0,
    runner_pid INTEGER,                    -- the process that set `running`
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS actions_idem ON actions(idem_key);
CREATE INDEX IF NOT EXISTS actions_conversation ON actions(conversation, created);
CREATE TABLE IF NOT EXISTS appointments (
    id TEXT PRIMARY KEY,                   -- apt_ + 12 hex
    action_id TEXT UNIQUE REFERENCES actions(id),
    date TEXT NOT NULL,
    time TEXT NOT NULL,
    duration_minutes INTEGER NOT NULL,
    topic TEXT,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    tz TEXT NOT NULL,                      -- the opening hours' zone at booking
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,                   -- tkt_ + 12 hex
    action_id TEXT UNIQUE REFERENCES actions(id),
    subject TEXT NOT NULL,                 -- PII-masked
    description TEXT NOT NULL,             -- PII-masked
    priority TEXT NOT NULL,
    created TEXT NOT NULL
);
";

/// The tools database of one data dir. One connection; every method takes
/// `&self` and opens its own transactions.
pub struct ToolStore {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

/// One row of `prices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceRow {
    pub sku: String,
    pub product: String,
    pub price: String,
    pub currency: String,
}

/// One row of `orders`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderRow {
    pub order_id: String,
    pub customer: String,
    pub status: String,
    pub updated_at: String,
}

/// One busy interval from the imported calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BusyRow {
    pub uid: Option<String>,
    pub summary: Option<String>,
    /// Unix seconds.
    pub start: i64,
    pub end: i64,
    pub all_day: bool,
    pub line: u64,
}

/// A booked appointment (`tresor tools appointments --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appointment {
    pub appointment_id: String,
    pub action_id: Option<String>,
    pub date: String,
    pub time: String,
    pub duration_minutes: i64,
    pub topic: Option<String>,
    /// RFC 3339, local offset of the opening hours' zone at booking.
    pub start: String,
    pub end: String,
    pub created: String,
    #[serde(skip)]
    pub start_unix: i64,
    #[serde(skip)]
    pub end_unix: i64,
}

/// A ticket (`tresor tools tickets --json`); subject and description are
/// PII-masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub ticket_id: String,
    pub action_id: Option<String>,
    pub subject: String,
    pub description: String,
    pub priority: String,
    pub created: String,
}

/// What was imported last, per kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportInfo {
    pub kind: String,
    pub file: String,
    pub sha256: String,
    pub rows: i64,
    pub imported_at: String,
}

impl ToolStore {
    /// Opens (creating) `tools.sqlite` in `data_dir`.
    pub fn open(data_dir: &Path, key: &WorkspaceKey) -> Result<ToolStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| ToolError::Io { path: data_dir.to_path_buf(), source })?;
        Self::open_file(&data_dir.join(DB_FILE), key)
    }

    /// Opens (creating) the database at `path`; applies the schema; reports
    /// actions left `running` by a process that is gone as failed.
    pub fn open_file(path: &Path, key: &WorkspaceKey) -> Result<ToolStore> {
        let conn = key.open_db_wal(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).db(path)?;
        conn.pragma_update(None, "foreign_keys", "ON").db(path)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db(path)?;
        if version > SCHEMA_VERSION {
            return Err(ToolError::Db {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidParameterName(format!(
                    "schema version {version} is newer than this program's {SCHEMA_VERSION}: update Tresor"
                )),
            });
        }
        if version < SCHEMA_VERSION {
            conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")).db(path)?;
        }
        let store = ToolStore { conn, path: path.to_path_buf() };
        store.recover_interrupted()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction taken at once (`BEGIN IMMEDIATE`), so two
    /// processes confirming the same action serialise on it.
    pub(crate) fn write_tx(&self) -> Result<Transaction<'_>> {
        Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).db(&self.path)
    }

    pub fn prices(&self) -> Result<Vec<PriceRow>> {
        let mut stmt = self.conn.prepare("SELECT sku, product, price, currency FROM prices ORDER BY sku").db(&self.path)?;
        let rows = stmt
            .query_map([], |r| Ok(PriceRow { sku: r.get(0)?, product: r.get(1)?, price: r.get(2)?, currency: r.get(3)? }))
            .db(&self.path)?;
        rows.collect::<std::result::Result<_, _>>().db(&self.path)
    }

    pub fn orders(&self) -> Result<Vec<OrderRow>> {
        let mut stmt = self.conn.prepare("SELECT order_id, customer, status, updated_at FROM orders ORDER BY order_id").db(&self.path)?;
        let rows = stmt
            .query_map([], |r| Ok(OrderRow { order_id: r.get(0)?, customer: r.get(1)?, status: r.get(2)?, updated_at: r.get(3)? }))
            .db(&self.path)?;
        rows.collect::<std::result::Result<_, _>>().db(&self.path)
    }

    pub fn busy(&self) -> Result<Vec<BusyRow>> {
        busy_on(&self.conn, &self.path)
    }

    pub fn appointments(&self) -> Result<Vec<Appointment>> {
        appointments_on(&self.conn, &self.path)
    }

    pub fn tickets(&self) -> Result<Vec<Ticket>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, action_id, subject, description, priority, created FROM tickets ORDER BY created, id")
            .db(&self.path)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Ticket {
                    ticket_id: r.get(0)?,
                    action_id: r.get(1)?,
                    subject: r.get(2)?,
                    description: r.get(3)?,
                    priority: r.get(4)?,
                    created: r.get(5)?,
                })
            })
            .db(&self.path)?;
        rows.collect::<std::result::Result<_, _>>().db(&self.path)
    }

    /// The last import of `kind` (prices, orders, calendar), if any.
    pub fn import_info(&self, kind: &str) -> Result<Option<ImportInfo>> {
        self.conn
            .query_row("SELECT kind, file, sha256, rows, imported_at FROM imports WHERE kind = ?1", params![kind], |r| {
                Ok(ImportInfo { kind: r.get(0)?, file: r.get(1)?, sha256: r.get(2)?, rows: r.get(3)?, imported_at: r.get(4)? })
            })
            .optional()
            .db(&self.path)
    }

    /// True when data for `kind` was imported (what a built-in tool needs
    /// before the engine offers it).
    pub fn has_data(&self, kind: &str) -> Result<bool> {
        Ok(self.import_info(kind)?.is_some())
    }
}

pub(crate) fn busy_on(conn: &Connection, path: &Path) -> Result<Vec<BusyRow>> {
    let mut stmt = conn.prepare("SELECT uid, summary, start, end, all_day, line FROM busy ORDER BY start, id").db(path)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(BusyRow {
                uid: r.get(0)?,
                summary: r.get(1)?,
                start: r.get(2)?,
                end: r.get(3)?,
                all_day: r.get::<_, i64>(4)? != 0,
                line: r.get::<_, i64>(5)? as u64,
            })
        })
        .db(path)?;
    rows.collect::<std::result::Result<_, _>>().db(path)
}

pub(crate) fn appointments_on(conn: &Connection, path: &Path) -> Result<Vec<Appointment>> {
    let mut stmt = conn
        .prepare("SELECT id, action_id, date, time, duration_minutes, topic, start, end, created, tz FROM appointments ORDER BY start, id")
        .db(path)?;
    let rows = stmt
        .query_map([], |r| {
            let start: i64 = r.get(6)?;
            let end: i64 = r.get(7)?;
            let tz: String = r.get(9)?;
            let tz = crate::hours::time_zone(&tz).unwrap_or(jiff::tz::TimeZone::UTC);
            Ok(Appointment {
                appointment_id: r.get(0)?,
                action_id: r.get(1)?,
                date: r.get(2)?,
                time: r.get(3)?,
                duration_minutes: r.get(4)?,
                topic: r.get(5)?,
                start: local(start, &tz),
                end: local(end, &tz),
                created: r.get(8)?,
                start_unix: start,
                end_unix: end,
            })
        })
        .db(path)?;
    rows.collect::<std::result::Result<_, _>>().db(path)
}

fn local(unix: i64, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| crate::hours::rfc3339(&t.to_zoned(tz.clone())))
        .unwrap_or_default()
}

/// A new id: `prefix` + 12 random hex digits.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_encrypted_and_versioned() {
        let dir = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::ephemeral();
        let s = ToolStore::open(dir.path(), &key).unwrap();
        assert!(s.prices().unwrap().is_empty());
        assert!(!s.has_data("prices").unwrap());
        drop(s);
        let bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        assert!(!bytes.starts_with(b"SQLite format 3"), "tools.sqlite must be encrypted");
        assert!(ToolStore::open(dir.path(), &WorkspaceKey::ephemeral()).is_err(), "another key must not open it");
        let s = ToolStore::open(dir.path(), &key).unwrap();
        let v: i64 = s.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
