//! The events table in `events.sqlite` in the workspace's data dir, encrypted
//! with the workspace key (SQLCipher, WAL) like every database there. One
//! row per event: the envelope in columns (time, type, conversation, message,
//! knowledge base) for the queries, the event's JSON beside them.
//!
//! Owns: the file, the table, record / query / purge and the question keys.
//! Never: computes a KPI (kpi.rs) or keeps text the settings did not allow.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use tresor_guard::crypto::WorkspaceKey;

use crate::event::{Event, EventKind, StoredEvent, SCHEMA_VERSION};
use crate::question::QuestionKeys;
use crate::{Result, TelemetryError};

/// The events database in a data dir.
pub const EVENTS_FILE: &str = "events.sqlite";

/// A time window: `since <= ts_ms < until` (either end open when None).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Window {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    pub fn contains(&self, ts: i64) -> bool {
        self.since.is_none_or(|s| ts >= s) && self.until.is_none_or(|u| ts < u)
    }
}

pub struct EventStore {
    conn: Connection,
    path: PathBuf,
    keys: QuestionKeys,
    /// Events of a kind this Tresor does not know (a newer one added it without a schema bump),
    /// skipped by [`EventStore::events`] since this store was opened.
    skipped_unknown: std::cell::Cell<u64>,
}

trait Ctx<T> {
    fn db(self, path: &Path) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn db(self, path: &Path) -> Result<T> {
        self.map_err(|source| TelemetryError::Db { path: path.to_path_buf(), source })
    }
}

impl EventStore {
    /// `events.sqlite` in `data_dir` (created when missing).
    pub fn open(data_dir: &Path, key: &WorkspaceKey) -> Result<EventStore> {
        Self::open_path(&data_dir.join(EVENTS_FILE), key)
    }

    pub fn open_path(path: &Path, key: &WorkspaceKey) -> Result<EventStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| TelemetryError::Io { path: dir.to_path_buf(), source })?;
        }
        let conn = key.open_db_wal(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).db(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY,
                schema_version INTEGER NOT NULL,
                ts_ms INTEGER NOT NULL,
                event_type TEXT NOT NULL,
                conversation_id INTEGER,
                message_id INTEGER,
                kb TEXT,
                data TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS events_ts ON events(ts_ms);
            CREATE INDEX IF NOT EXISTS events_message ON events(message_id);
            CREATE INDEX IF NOT EXISTS events_conversation ON events(conversation_id);",
        )
        .db(path)?;
        Ok(EventStore { conn, path: path.to_path_buf(), keys: QuestionKeys::new(key), skipped_unknown: std::cell::Cell::new(0) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This workspace's question and topic ids.
    pub fn keys(&self) -> &QuestionKeys {
        &self.keys
    }

    /// Appends one event; returns its id.
    pub fn record(&self, e: &Event) -> Result<i64> {
        let data = serde_json::to_string(&e.kind).map_err(|err| TelemetryError::Invalid(err.to_string()))?;
        self.conn
            .execute(
                "INSERT INTO events(schema_version, ts_ms, event_type, conversation_id, message_id, kb, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![SCHEMA_VERSION, e.ts_ms, e.kind.name(), e.conversation_id, e.message_id, e.kb, data],
            )
            .db(&self.path)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The events in `w`, oldest first.
    pub fn events(&self, w: &Window) -> Result<Vec<StoredEvent>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, schema_version, ts_ms, conversation_id, message_id, kb, data, event_type FROM events
                 WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms, id",
            )
            .db(&self.path)?;
        let rows = stmt
            .query_map(params![w.since.unwrap_or(i64::MIN), w.until.unwrap_or(i64::MAX)], |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, u32>(1)?, r.get::<_, i64>(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                    (r.get::<_, String>(6)?, r.get::<_, String>(7)?),
                ))
            })
            .db(&self.path)?;
        let mut out = Vec::new();
        for row in rows {
            let ((id, v, ts_ms, conversation_id, message_id, kb), (data, event_type)) = row.db(&self.path)?;
            if v > SCHEMA_VERSION {
                return Err(self.corrupt(id, format!("written with schema version {v}; this Tresor reads up to {SCHEMA_VERSION}")));
            }
            let kind: EventKind = match serde_json::from_str(&data) {
                Ok(kind) => kind,
                // A kind added later without a schema bump (adding a kind keeps the version):
                // skipped and counted, never misread and never a reason to refuse the others.
                Err(_) if !EventKind::NAMES.contains(&event_type.as_str()) => {
                    self.skipped_unknown.set(self.skipped_unknown.get() + 1);
                    continue;
                }
                Err(e) => return Err(self.corrupt(id, format!("unreadable event: {e}"))),
            };
            out.push(StoredEvent { event_id: id, schema_version: v, event: Event { ts_ms, conversation_id, message_id, kb, kind } });
        }
        Ok(out)
    }

    /// How many events of an unknown kind [`EventStore::events`] has skipped since this store was
    /// opened (written by a newer Tresor; the doors report the count).
    pub fn skipped_unknown(&self) -> u64 {
        self.skipped_unknown.get()
    }

    fn corrupt(&self, id: i64, reason: String) -> TelemetryError {
        TelemetryError::Corrupt { path: self.path.clone(), id, reason }
    }

    /// The conversation and knowledge base of the message event for answer `message_id`.
    pub fn message_context(&self, message_id: i64) -> Result<Option<(Option<i64>, Option<String>)>> {
        self.conn
            .query_row(
                "SELECT conversation_id, kb FROM events WHERE message_id = ?1 AND event_type = 'message' ORDER BY id LIMIT 1",
                params![message_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .db(&self.path)
    }

    /// The knowledge base of conversation `id`'s first message event (None when it has none).
    pub fn conversation_kb(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT kb FROM events WHERE conversation_id = ?1 AND event_type = 'message' ORDER BY id LIMIT 1", params![id], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()
            .db(&self.path)?
            .flatten())
    }

    /// Number of events (all time).
    pub fn count(&self) -> Result<u64> {
        self.conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0)).db(&self.path).map(|n| n as u64)
    }

    /// Deletes the events older than `days` days; returns how many.
    pub fn purge_older_than(&self, days: u32) -> Result<usize> {
        self.purge_before(crate::time::now_ms() - days as i64 * 86_400_000)
    }

    /// Deletes the events before `ts_ms`; returns how many.
    pub fn purge_before(&self, ts_ms: i64) -> Result<usize> {
        self.conn.execute("DELETE FROM events WHERE ts_ms < ?1", params![ts_ms]).db(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Feedback, Message};

    #[test]
    fn events_round_trip_through_the_encrypted_file_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::from_bytes([3; 32]);
        let s = EventStore::open(dir.path(), &key).unwrap();
        let m = Message { route: "kb_question".into(), model: "m".into(), tokens_in: 10, ttft_ms: 5.0, ..Default::default() };
        let old = Event { ts_ms: 1_000, conversation_id: Some(1), message_id: Some(2), kb: Some("default".into()), kind: EventKind::Message(m.clone()) };
        s.record(&old).unwrap();
        let new = Event::now(Some(1), Some(2), None, EventKind::Feedback(Feedback { thumbs: Some(1), ..Default::default() }));
        s.record(&new).unwrap();
        let all = s.events(&Window::default()).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].event, old);
        assert_eq!(all[1].event, new);
        assert_eq!(s.events(&Window { since: Some(2_000), until: None }).unwrap().len(), 1);
        assert_eq!(s.message_context(2).unwrap(), Some((Some(1), Some("default".into()))));
        drop(s);
        // encrypted: another key cannot read it, no plain text on disk
        assert!(EventStore::open(dir.path(), &WorkspaceKey::from_bytes([4; 32])).is_err());
        let raw = std::fs::read(dir.path().join(EVENTS_FILE)).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"kb_question"));
        let s = EventStore::open(dir.path(), &key).unwrap();
        assert_eq!(s.purge_older_than(1).unwrap(), 1);
        assert_eq!(s.count().unwrap(), 1);
    }

    #[test]
    fn a_corrupt_row_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::from_bytes([3; 32]);
        let s = EventStore::open(dir.path(), &key).unwrap();
        s.conn.execute("INSERT INTO events(schema_version, ts_ms, event_type, data) VALUES (1, 5, 'message', '{oops')", []).unwrap();
        let e = s.events(&Window::default()).unwrap_err().to_string();
        assert!(e.contains("event 1") && e.contains("unreadable"), "{e}");
    }

    #[test]
    fn a_kind_from_a_newer_tresor_is_skipped_and_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::from_bytes([3; 32]);
        let s = EventStore::open(dir.path(), &key).unwrap();
        s.record(&Event { ts_ms: 4, conversation_id: Some(1), message_id: None, kb: None, kind: EventKind::ConversationStarted { channel: "local".into() } }).unwrap();
        // same schema version, a kind this build has never heard of
        s.conn
            .execute("INSERT INTO events(schema_version, ts_ms, event_type, data) VALUES (1, 5, 'survey_sent', '{\"event_type\":\"survey_sent\",\"to\":3}')", [])
            .unwrap();
        let evs = s.events(&Window::default()).unwrap();
        assert_eq!(evs.len(), 1, "the known event is still read");
        assert_eq!(s.skipped_unknown(), 1);
        // a known kind that does not parse is still corruption, not skipped
        s.conn.execute("INSERT INTO events(schema_version, ts_ms, event_type, data) VALUES (1, 6, 'feedback', '{\"event_type\":\"feedback\",\"thumbs\":\"x\"}')", []).unwrap();
        assert!(s.events(&Window::default()).unwrap_err().to_string().contains("unreadable"));
    }
}
