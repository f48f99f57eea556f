//! The handoff's own tables in `assistant.sqlite` (encrypted like the
//! threads): the outbox of tickets (every ticket, delivered or waiting for a
//! retry) and each conversation's end (when, why, whether CSAT was asked).
//!
//! Owns: these two tables. Never: delivery or the decision to ask.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;

use super::ticket::Ticket;
use crate::error::{AssistantError, DbCtx, Result};

pub struct HandoffStore {
    conn: Connection,
    path: PathBuf,
}

/// One outbox row.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    pub ticket_id: String,
    pub conversation_id: Option<i64>,
    /// pending | delivered
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_to: Option<String>,
    pub target: String,
    pub created: i64,
}

impl HandoffStore {
    /// Opens the tables in `path` (the engine's database; the threads table must exist).
    pub fn open(path: &Path, key: &WorkspaceKey) -> Result<Self> {
        let conn = crate::store::open_db(path, key)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS handoff_outbox (
                ticket_id TEXT PRIMARY KEY,
                thread_id INTEGER,
                created INTEGER NOT NULL,
                ticket TEXT NOT NULL,
                target TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                last_error TEXT,
                delivered_to TEXT
            );
            CREATE TABLE IF NOT EXISTS conversation_end (
                thread_id INTEGER PRIMARY KEY REFERENCES threads(id) ON DELETE CASCADE,
                ended INTEGER NOT NULL,
                reason TEXT,
                csat_asked INTEGER NOT NULL DEFAULT 0
            );",
        )
        .db(path)?;
        Ok(HandoffStore { conn, path: path.to_path_buf() })
    }

    /// Keeps `t` in the outbox as pending (before the first try).
    pub fn put(&self, t: &Ticket, target: &str) -> Result<()> {
        let json = serde_json::to_string(t).expect("a ticket serialises");
        self.conn
            .execute(
                "INSERT INTO handoff_outbox(ticket_id, thread_id, created, ticket, target, status) VALUES (?1, ?2, strftime('%s','now'), ?3, ?4, 'pending')",
                params![t.ticket_id, t.conversation_id, json, target],
            )
            .db(&self.path)?;
        Ok(())
    }

    /// The outcome of one try.
    pub fn settle(&self, ticket_id: &str, target: &str, result: &std::result::Result<String, String>) -> Result<()> {
        let (status, to, err) = match result {
            Ok(to) => ("delivered", Some(to.as_str()), None),
            Err(e) => ("pending", None, Some(e.as_str())),
        };
        self.conn
            .execute(
                "UPDATE handoff_outbox SET status = ?2, delivered_to = ?3, last_error = ?4, target = ?5, attempts = attempts + 1 WHERE ticket_id = ?1",
                params![ticket_id, status, to, err, target],
            )
            .db(&self.path)?;
        Ok(())
    }

    /// Pending tickets, oldest first.
    pub fn pending(&self) -> Result<Vec<Ticket>> {
        let mut stmt = self.conn.prepare("SELECT ticket FROM handoff_outbox WHERE status = 'pending' ORDER BY created, ticket_id").db(&self.path)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).db(&self.path)?;
        let mut out = Vec::new();
        for r in rows {
            let text = r.db(&self.path)?;
            let t: Ticket = serde_json::from_str(&text).map_err(|e| AssistantError::Invalid(format!("a ticket in the handoff outbox is not readable: {e}")))?;
            out.push(t);
        }
        Ok(out)
    }

    pub fn entries(&self) -> Result<Vec<OutboxEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT ticket_id, thread_id, status, attempts, last_error, delivered_to, target, created FROM handoff_outbox ORDER BY created, ticket_id")
            .db(&self.path)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OutboxEntry {
                    ticket_id: r.get(0)?,
                    conversation_id: r.get(1)?,
                    status: r.get(2)?,
                    attempts: r.get::<_, i64>(3)? as u32,
                    last_error: r.get(4)?,
                    delivered_to: r.get(5)?,
                    target: r.get(6)?,
                    created: r.get(7)?,
                })
            })
            .db(&self.path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.path)
    }

    /// Marks conversation `thread` ended (the first end counts); returns false when it had ended before.
    pub fn end(&self, thread: i64, reason: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("INSERT OR IGNORE INTO conversation_end(thread_id, ended, reason) VALUES (?1, strftime('%s','now'), ?2)", params![thread, reason])
            .db(&self.path)?;
        Ok(n == 1)
    }

    /// Records that CSAT was asked for `thread`; returns false when it had been asked before.
    pub fn mark_csat_asked(&self, thread: i64) -> Result<bool> {
        let n = self.conn.execute("UPDATE conversation_end SET csat_asked = 1 WHERE thread_id = ?1 AND csat_asked = 0", params![thread]).db(&self.path)?;
        Ok(n == 1)
    }

    /// Whether `thread` has a CSAT rating already.
    pub fn rated(&self, thread: i64) -> Result<bool> {
        let r: Option<i64> = self
            .conn
            .query_row("SELECT 1 FROM feedback WHERE thread_id = ?1 AND csat IS NOT NULL LIMIT 1", params![thread], |r| r.get(0))
            .optional()
            .db(&self.path)?;
        Ok(r.is_some())
    }

    /// Unix time of the thread's last message (None: no messages).
    pub fn last_message_at(&self, thread: i64) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT MAX(created) FROM messages WHERE thread_id = ?1", params![thread], |r| r.get::<_, Option<i64>>(0))
            .db(&self.path)
    }
}
