//! Conversations and feedback in SQLite (`assistant.sqlite` in the data
//! dir): threads with a title, their messages with sources, model and
//! timings, and per-answer thumbs up/down plus a CSAT score 1–5. Feedback
//! and deleted threads are also recorded as telemetry events (`events.sqlite`
//! beside it, tresor-telemetry), so every door that rates an answer — the
//! desktop's own thread store included — feeds the KPIs.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;
use tresor_llm::ChatMessage;

use crate::error::{AssistantError, DbCtx, Result};

/// Opens `assistant.sqlite` through SQLCipher with the workspace key (a
/// plaintext file from before encryption is migrated on first open).
pub(crate) fn open_db(path: &Path, key: &WorkspaceKey) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| AssistantError::Io { path: dir.to_path_buf(), source })?;
    }
    let conn = key.open_db_wal(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).db(path)?;
    conn.pragma_update(None, "foreign_keys", "ON").db(path)?;
    Ok(conn)
}

pub struct ThreadStore {
    conn: Connection,
    path: PathBuf,
    /// The workspace's events (None: `[telemetry] enabled = false`).
    events: Option<tresor_telemetry::EventStore>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ThreadInfo {
    pub id: i64,
    pub title: String,
    pub kb: Option<String>,
    pub created: i64,
    pub updated: i64,
    pub messages: usize,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StoredMessage {
    pub id: i64,
    pub thread_id: i64,
    #[cfg_attr(feature = "ts", ts(type = "'user' | 'assistant'"))]
    pub role: String,
    pub content: String,
    /// The answer's JSON (sources, model, timings, trace) for assistant turns.
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub meta: Option<serde_json::Value>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Feedback {
    /// The answer (assistant message id); None rates the whole thread.
    pub message_id: Option<i64>,
    pub thread_id: Option<i64>,
    /// +1 thumbs up, -1 thumbs down.
    pub thumbs: Option<i8>,
    /// Customer satisfaction 1–5.
    pub csat: Option<u8>,
    pub comment: Option<String>,
}

/// The engine's database file in a data dir (threads, feedback, semantic cache).
pub const DB_FILE: &str = "assistant.sqlite";

impl ThreadStore {
    /// The thread store of a data dir (its own connection: a door may read
    /// threads while an answer holds the engine).
    pub fn for_data_dir(data_dir: &Path, key: &WorkspaceKey) -> Result<Self> {
        Self::open(&data_dir.join(DB_FILE), key)
    }

    /// Opens `path`, and the events beside it per the data dir's `assistant.toml` `[telemetry]`.
    pub fn open(path: &Path, key: &WorkspaceKey) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let cfg = crate::config::AssistantConfig::load(dir)?;
        Self::open_with(path, key, &cfg.telemetry)
    }

    /// Opens `path` with these telemetry settings (the engine passes its own).
    pub fn open_with(path: &Path, key: &WorkspaceKey, telemetry: &tresor_telemetry::TelemetryConfig) -> Result<Self> {
        let conn = open_db(path, key)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS threads (
                id INTEGER PRIMARY KEY,
                title TEXT NOT NULL,
                kb TEXT,
                created INTEGER NOT NULL,
                updated INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY,
                thread_id INTEGER NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                content TEXT NOT NULL,
                meta TEXT,
                created INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS messages_thread ON messages(thread_id, id);
            CREATE TABLE IF NOT EXISTS feedback (
                id INTEGER PRIMARY KEY,
                thread_id INTEGER REFERENCES threads(id) ON DELETE CASCADE,
                message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
                thumbs INTEGER,
                csat INTEGER,
                comment TEXT,
                created INTEGER NOT NULL
            );",
        )
        .db(path)?;
        let events = match telemetry.enabled {
            true => Some(tresor_telemetry::EventStore::open(path.parent().unwrap_or(Path::new(".")), key)?),
            false => None,
        };
        Ok(ThreadStore { conn, path: path.to_path_buf(), events })
    }

    /// Records a conversation-level event (handoff, resolution, end) for thread `id`, which must exist.
    pub fn record_conversation_event(&self, id: i64, kind: tresor_telemetry::EventKind) -> Result<()> {
        let kb = self.thread(id)?.kb;
        let ev = self.events.as_ref().ok_or_else(|| AssistantError::Invalid("telemetry is off in this workspace ([telemetry] enabled = false in assistant.toml)".into()))?;
        ev.record(&tresor_telemetry::Event::now(Some(id), None, kb, kind))?;
        Ok(())
    }

    /// Conversation `id` was handed to a human (`reason` is PII-masked).
    pub fn handoff(&self, id: i64, reason: Option<&str>) -> Result<()> {
        self.record_conversation_event(id, tresor_telemetry::EventKind::Handoff { reason: reason.map(tresor_guard::redact::for_log) })
    }

    /// The workspace's event store (None when telemetry is off).
    pub fn events(&self) -> Option<&tresor_telemetry::EventStore> {
        self.events.as_ref()
    }

    pub fn create_thread(&self, title: &str, kb: Option<&str>) -> Result<i64> {
        let title: String = title.chars().take(80).collect();
        self.conn
            .execute(
                "INSERT INTO threads(title, kb, created, updated) VALUES (?1, ?2, strftime('%s','now'), strftime('%s','now'))",
                params![title, kb],
            )
            .db(&self.path)?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn thread(&self, id: i64) -> Result<ThreadInfo> {
        self.conn
            .query_row(
                "SELECT t.id, t.title, t.kb, t.created, t.updated, (SELECT COUNT(*) FROM messages m WHERE m.thread_id = t.id)
                 FROM threads t WHERE t.id = ?1",
                params![id],
                row_thread,
            )
            .optional()
            .db(&self.path)?
            .ok_or(AssistantError::NoSuchThread(id))
    }

    pub fn threads(&self) -> Result<Vec<ThreadInfo>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT t.id, t.title, t.kb, t.created, t.updated, (SELECT COUNT(*) FROM messages m WHERE m.thread_id = t.id)
                 FROM threads t ORDER BY t.updated DESC, t.id DESC",
            )
            .db(&self.path)?;
        let rows = stmt.query_map([], row_thread).db(&self.path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.path)
    }

    pub fn delete_thread(&self, id: i64) -> Result<()> {
        let kb = self.thread(id)?.kb;
        let n = self.conn.execute("DELETE FROM threads WHERE id = ?1", params![id]).db(&self.path)?;
        if n == 0 {
            return Err(AssistantError::NoSuchThread(id));
        }
        if let Some(ev) = &self.events {
            let kind = tresor_telemetry::EventKind::ConversationEnded { reason: Some("deleted".into()) };
            ev.record(&tresor_telemetry::Event::now(Some(id), None, kb, kind))?;
        }
        Ok(())
    }

    /// A new title (trimmed, at most 80 characters, not empty).
    pub fn rename_thread(&self, id: i64, title: &str) -> Result<()> {
        let title: String = title.trim().chars().take(80).collect();
        if title.is_empty() {
            return Err(AssistantError::Invalid("a thread title cannot be empty".into()));
        }
        let n = self.conn.execute("UPDATE threads SET title = ?2 WHERE id = ?1", params![id, title]).db(&self.path)?;
        if n == 0 {
            return Err(AssistantError::NoSuchThread(id));
        }
        Ok(())
    }

    pub fn add_message(&self, thread_id: i64, role: &str, content: &str, meta: Option<&serde_json::Value>) -> Result<i64> {
        self.thread(thread_id)?;
        let meta = meta.map(|m| m.to_string());
        self.conn
            .execute(
                "INSERT INTO messages(thread_id, role, content, meta, created) VALUES (?1, ?2, ?3, ?4, strftime('%s','now'))",
                params![thread_id, role, content, meta],
            )
            .db(&self.path)?;
        let id = self.conn.last_insert_rowid();
        self.conn.execute("UPDATE threads SET updated = strftime('%s','now') WHERE id = ?1", params![thread_id]).db(&self.path)?;
        Ok(id)
    }

    pub fn messages(&self, thread_id: i64) -> Result<Vec<StoredMessage>> {
        self.thread(thread_id)?;
        let mut stmt = self
            .conn
            .prepare("SELECT id, thread_id, role, content, meta, created FROM messages WHERE thread_id = ?1 ORDER BY id")
            .db(&self.path)?;
        let rows = stmt
            .query_map(params![thread_id], |r| {
                let meta: Option<String> = r.get(4)?;
                Ok(StoredMessage {
                    id: r.get(0)?,
                    thread_id: r.get(1)?,
                    role: r.get(2)?,
                    content: r.get(3)?,
                    meta: meta.and_then(|m| serde_json::from_str(&m).ok()),
                    created: r.get(5)?,
                })
            })
            .db(&self.path)?;
        rows.collect::<std::result::Result<Vec<_>, _>>().db(&self.path)
    }

    /// The thread as chat messages (for follow-ups and history).
    pub fn history(&self, thread_id: i64) -> Result<Vec<ChatMessage>> {
        Ok(self
            .messages(thread_id)?
            .into_iter()
            .map(|m| if m.role == "user" { ChatMessage::user(m.content) } else { ChatMessage::assistant(m.content) })
            .collect())
    }

    pub fn add_feedback(&self, f: &Feedback) -> Result<i64> {
        if f.thumbs.is_none() && f.csat.is_none() && f.comment.is_none() {
            return Err(AssistantError::BadFeedback("give thumbs (up/down), a CSAT score 1-5 or a comment".into()));
        }
        if let Some(t) = f.thumbs {
            if t != 1 && t != -1 {
                return Err(AssistantError::BadFeedback(format!("thumbs must be 1 (up) or -1 (down), not {t}")));
            }
        }
        if let Some(c) = f.csat {
            if !(1..=5).contains(&c) {
                return Err(AssistantError::BadFeedback(format!("CSAT must be 1 to 5, not {c}")));
            }
        }
        let mut thread_id = f.thread_id;
        if let Some(m) = f.message_id {
            let t: Option<i64> = self
                .conn
                .query_row("SELECT thread_id FROM messages WHERE id = ?1 AND role = 'assistant'", params![m], |r| r.get(0))
                .optional()
                .db(&self.path)?;
            let t = t.ok_or(AssistantError::NoSuchMessage(m))?;
            if thread_id.is_some_and(|x| x != t) {
                return Err(AssistantError::BadFeedback(format!("answer {m} is not in thread {}", thread_id.unwrap_or(0))));
            }
            thread_id = Some(t);
        }
        let Some(thread_id) = thread_id else {
            return Err(AssistantError::BadFeedback("name the answer (message_id) or the thread (thread_id)".into()));
        };
        let kb = self.thread(thread_id)?.kb;
        // CSAT is asked once per conversation: a second score is refused (thumbs and comments are not)
        if f.csat.is_some() {
            let rated: Option<i64> = self
                .conn
                .query_row("SELECT 1 FROM feedback WHERE thread_id = ?1 AND csat IS NOT NULL LIMIT 1", params![thread_id], |r| r.get(0))
                .optional()
                .db(&self.path)?;
            if rated.is_some() {
                return Err(AssistantError::BadFeedback(format!("conversation {thread_id} has already been rated (CSAT is given once per conversation)")));
            }
        }
        self.conn
            .execute(
                "INSERT INTO feedback(thread_id, message_id, thumbs, csat, comment, created) VALUES (?1, ?2, ?3, ?4, ?5, strftime('%s','now'))",
                params![thread_id, f.message_id, f.thumbs, f.csat, f.comment],
            )
            .db(&self.path)?;
        let id = self.conn.last_insert_rowid();
        if let Some(ev) = &self.events {
            let kind = tresor_telemetry::EventKind::Feedback(tresor_telemetry::Feedback {
                thumbs: f.thumbs,
                csat: f.csat,
                comment: f.comment.as_deref().map(tresor_guard::redact::for_log),
            });
            ev.record(&tresor_telemetry::Event::now(Some(thread_id), f.message_id, kb, kind))?;
        }
        Ok(id)
    }

    /// The thread of answer `message_id` (None: no such answer).
    pub fn thread_of_message(&self, message_id: i64) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT thread_id FROM messages WHERE id = ?1", params![message_id], |r| r.get(0))
            .optional()
            .db(&self.path)
    }

    /// (thumbs up, thumbs down, mean CSAT) over all feedback.
    pub fn feedback_summary(&self) -> Result<(u64, u64, Option<f64>)> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(thumbs = 1), 0), COALESCE(SUM(thumbs = -1), 0), AVG(csat) FROM feedback",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64, r.get::<_, Option<f64>>(2)?)),
            )
            .db(&self.path)
    }
}

fn row_thread(r: &rusqlite::Row<'_>) -> rusqlite::Result<ThreadInfo> {
    Ok(ThreadInfo {
        id: r.get(0)?,
        title: r.get(1)?,
        kb: r.get(2)?,
        created: r.get(3)?,
        updated: r.get(4)?,
        messages: r.get::<_, i64>(5)? as usize,
    })
}

/// Fits a conversation into `budget` tokens without a model: the newest
/// turns verbatim, the older ones as one line listing their questions (the
/// engine has the model summarise them instead: see `history.rs`).
pub fn fit_history(history: &[ChatMessage], budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<ChatMessage> {
    let (older, kept) = crate::history::split(history, budget, count);
    let list = crate::history::question_list(older);
    if list.is_empty() {
        return kept.to_vec();
    }
    crate::history::with_summary_line(&list, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_messages_and_feedback_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = ThreadStore::open(&dir.path().join("a.sqlite"), &WorkspaceKey::ephemeral()).unwrap();
        let t = s.create_thread("Vacation", Some("default")).unwrap();
        s.add_message(t, "user", "How many days?", None).unwrap();
        let a = s.add_message(t, "assistant", "30 days [1].", Some(&serde_json::json!({"model": "m"}))).unwrap();
        let h = s.history(t).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(s.messages(t).unwrap()[1].meta.as_ref().unwrap()["model"], "m");
        assert_eq!(s.threads().unwrap()[0].messages, 2);
        s.add_feedback(&Feedback { message_id: Some(a), thumbs: Some(1), csat: Some(5), ..Default::default() }).unwrap();
        s.add_feedback(&Feedback { thread_id: Some(t), thumbs: Some(-1), ..Default::default() }).unwrap();
        assert_eq!(s.feedback_summary().unwrap(), (1, 1, Some(5.0)));
        // each feedback is also a telemetry event of its thread
        let ev = s.events().unwrap().events(&Default::default()).unwrap();
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| e.event.conversation_id == Some(t) && e.event.kind.name() == "feedback"));
        assert_eq!(ev[0].event.message_id, Some(a));
        assert!(matches!(s.add_feedback(&Feedback { message_id: Some(a), csat: Some(9), ..Default::default() }), Err(AssistantError::BadFeedback(_))));
        assert!(matches!(s.add_feedback(&Feedback { message_id: Some(999), thumbs: Some(1), ..Default::default() }), Err(AssistantError::NoSuchMessage(999))));
        assert!(matches!(s.add_message(42, "user", "x", None), Err(AssistantError::NoSuchThread(42))));
        s.rename_thread(t, "  Urlaub 2026 ").unwrap();
        assert_eq!(s.thread(t).unwrap().title, "Urlaub 2026");
        assert!(matches!(s.rename_thread(t, "   "), Err(AssistantError::Invalid(_))));
        assert!(matches!(s.rename_thread(77, "x"), Err(AssistantError::NoSuchThread(77))));
        s.delete_thread(t).unwrap();
        assert!(s.threads().unwrap().is_empty());
    }

    #[test]
    fn long_history_is_summarised() {
        let mut h = Vec::new();
        for i in 0..10 {
            h.push(ChatMessage::user(format!("question number {i} about vacation")));
            h.push(ChatMessage::assistant("an answer with several words in it"));
        }
        let words = |s: &str| s.split_whitespace().count();
        let fit = fit_history(&h, 40, &words);
        assert!(fit[0].content.starts_with("Earlier in this conversation"), "{:?}", fit[0]);
        assert!(fit.len() < h.len());
        assert_eq!(fit.last().unwrap().content, "an answer with several words in it");
        assert_eq!(fit_history(&h[..2], 100, &words).len(), 2);
    }
}
