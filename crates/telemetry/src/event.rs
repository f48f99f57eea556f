//! The event schema (version [`SCHEMA_VERSION`], documented field by field in
//! docs/events.md): an [`Event`] is an envelope (time, conversation, message,
//! knowledge base) around one [`EventKind`]. [`columns`] is the flat export
//! schema (one row per event, an `event_type` column, every field a column,
//! absent fields null) that the JSONL and Parquet exports write.
//!
//! Owns: the event types, their JSON names and the export columns. Never:
//! stores, computes or sends them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bumped whenever a field changes meaning or is removed (adding an optional field keeps it).
pub const SCHEMA_VERSION: u32 = 1;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened: Unix time in milliseconds, UTC.
    pub ts_ms: i64,
    /// The conversation (the engine's thread id); None for an answer given outside a thread.
    pub conversation_id: Option<i64>,
    /// The assistant message (answer) it is about, when it is about one.
    pub message_id: Option<i64>,
    /// The knowledge base the conversation answers from (None: ungrounded).
    pub kb: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; `event_type` in JSON and in the export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event_type", rename_all = "snake_case")]
pub enum EventKind {
    /// The first message of a conversation was answered.
    ConversationStarted {
        /// The door: `local` (CLI, desktop) or `api` (a token of the HTTP API).
        channel: String,
    },
    /// A conversation was closed (deleted, or closed by a door).
    ConversationEnded { reason: Option<String> },
    /// One answered user message.
    Message(Message),
    /// One tool call of the action layer.
    ToolAction(ToolAction),
    /// Thumbs and/or CSAT and/or a comment on an answer or a conversation.
    Feedback(Feedback),
    /// The conversation was handed to a human.
    Handoff { reason: Option<String> },
    /// An explicit outcome for the conversation (the latest one counts).
    Resolution { outcome: Outcome },
    /// A quality measurement of a knowledge base (`tresor eval retrieval --record`).
    EvalRun(EvalRun),
}

/// One recorded eval run: retrieval quality on a gold set, so the KPIs carry
/// recall and the reranker's lift next to the live traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct EvalRun {
    /// Which eval: `retrieval`.
    pub eval: String,
    /// The gold set's file name (no path).
    pub dataset: String,
    /// Questions scored.
    pub cases: u64,
    /// Recall@1 of the production setting (hybrid + rerank).
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mrr: f64,
    /// Recall@1 with the reranker minus recall@1 without it (hybrid), in points of 1.
    pub rerank_lift: Option<f64>,
}

/// One answer, as the engine's record step saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Message {
    /// `local` or `api`.
    pub channel: String,
    /// small_talk | kb_question | out_of_scope | general | policy
    pub route: String,
    /// The chat model that wrote it ("none": no model ran).
    pub model: String,
    /// The operator's variant label (`[telemetry] variant` in assistant.toml), for A/B comparisons.
    pub variant: String,
    /// A short hash of the engine's answer settings: changes when a knob or the prompt version changes.
    pub prompt_version: String,
    /// de | en
    pub lang: String,
    /// HMAC of the normalised question with a workspace-key-derived secret (16 hex digits).
    pub question_id: String,
    /// HMAC of the question's three most specific word stems: questions about the same thing share it.
    pub topic_id: String,
    /// The question, PII-masked; only with `store_question_text = true`.
    pub question_text: Option<String>,
    /// Prompt tokens (the model's tokenizer).
    pub tokens_in: u64,
    /// Tokens the model wrote.
    pub tokens_out: u64,
    /// Passage tokens packed into the prompt.
    pub tokens_context: u64,
    /// Request start to the first visible answer text, ms.
    pub ttft_ms: f64,
    /// Request start to the answer recorded, ms.
    pub total_ms: f64,
    pub retrieve_ms: f64,
    pub pack_ms: f64,
    pub load_ms: f64,
    pub generate_ms: f64,
    pub validate_ms: f64,
    pub policy_ms: f64,
    pub firewall_ms: f64,
    pub record_ms: f64,
    pub cache_hit: bool,
    /// Every sentence supported by a cited passage.
    pub grounded: bool,
    /// The assistant declined (not in the documents, out of scope, policy, firewall).
    pub refused: bool,
    /// The answer was extracted from the passages (the model's text had no supported sentence).
    pub extractive: bool,
    /// Passages the retrieval returned.
    pub passages_retrieved: u64,
    /// Sources the answer cites.
    pub passages_cited: u64,
}

/// Stage latencies of a [`Message`], in the order of the pipeline (name, ms).
impl Message {
    pub fn stages(&self) -> [(&'static str, f64); 8] {
        [
            ("policy", self.policy_ms),
            ("firewall", self.firewall_ms),
            ("retrieve", self.retrieve_ms),
            ("pack", self.pack_ms),
            ("load", self.load_ms),
            ("generate", self.generate_ms),
            ("validate", self.validate_ms),
            ("record", self.record_ms),
        ]
    }
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ToolAction {
    pub tool: String,
    /// ok | error | denied | timeout
    pub status: String,
    pub latency_ms: f64,
    /// A short class of the failure (`invalid_arguments`, `not_allowed`, `io`, ...), no free text.
    pub error_class: Option<String>,
}

impl ToolAction {
    pub fn failed(&self) -> bool {
        self.status != "ok"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Feedback {
    /// +1 thumbs up, -1 thumbs down.
    pub thumbs: Option<i8>,
    /// Customer satisfaction 1–5.
    pub csat: Option<u8>,
    /// The user's comment, PII-masked.
    pub comment: Option<String>,
}

impl Feedback {
    /// Thumbs down or CSAT 1–2.
    pub fn negative(&self) -> bool {
        self.thumbs == Some(-1) || self.csat.is_some_and(|c| c <= 2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Resolved,
    Escalated,
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Resolved => "resolved",
            Outcome::Escalated => "escalated",
            Outcome::Abandoned => "abandoned",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "resolved" => Ok(Outcome::Resolved),
            "escalated" => Ok(Outcome::Escalated),
            "abandoned" => Ok(Outcome::Abandoned),
            _ => Err(format!("outcome must be resolved, escalated or abandoned, not `{s}`")),
        }
    }
}

impl EventKind {
    /// Every `event_type` this Tresor writes and reads ([`EventKind::name`]'s values).
    pub const NAMES: &'static [&'static str] =
        &["conversation_started", "conversation_ended", "message", "tool_action", "feedback", "handoff", "resolution", "eval_run"];

    /// The `event_type` name.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::ConversationStarted { .. } => "conversation_started",
            EventKind::ConversationEnded { .. } => "conversation_ended",
            EventKind::Message(_) => "message",
            EventKind::ToolAction(_) => "tool_action",
            EventKind::Feedback(_) => "feedback",
            EventKind::Handoff { .. } => "handoff",
            EventKind::Resolution { .. } => "resolution",
            EventKind::EvalRun(_) => "eval_run",
        }
    }
}

impl Event {
    /// An event now.
    pub fn now(conversation_id: Option<i64>, message_id: Option<i64>, kb: Option<String>, kind: EventKind) -> Event {
        Event { ts_ms: crate::time::now_ms(), conversation_id, message_id, kb, kind }
    }
}

/// An event as stored: its id and the schema version it was written with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub event_id: i64,
    pub schema_version: u32,
    #[serde(flatten)]
    pub event: Event,
}

/// A column's type in the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Int64,
    Int32,
    Double,
    Bool,
    Utf8,
}

/// One export column: name, type, unit or values.
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub unit: &'static str,
}

const fn col(name: &'static str, ty: ColumnType, unit: &'static str) -> Column {
    Column { name, ty, unit }
}

/// The export schema, in column order (docs/events.md lists the same).
pub const COLUMNS: &[Column] = {
    use ColumnType::*;
    &[
        col("event_id", Int64, "id"),
        col("schema_version", Int32, "version"),
        col("ts_ms", Int64, "Unix ms, UTC"),
        col("event_type", Utf8, "conversation_started|conversation_ended|message|tool_action|feedback|handoff|resolution|eval_run"),
        col("conversation_id", Int64, "id"),
        col("message_id", Int64, "id"),
        col("kb", Utf8, "name"),
        col("channel", Utf8, "local|api"),
        col("route", Utf8, "small_talk|kb_question|out_of_scope|general|policy"),
        col("model", Utf8, "model id"),
        col("variant", Utf8, "label"),
        col("prompt_version", Utf8, "hash"),
        col("lang", Utf8, "de|en"),
        col("question_id", Utf8, "keyed hash"),
        col("topic_id", Utf8, "keyed hash"),
        col("question_text", Utf8, "PII-masked text, opt-in"),
        col("tokens_in", Int64, "tokens"),
        col("tokens_out", Int64, "tokens"),
        col("tokens_context", Int64, "tokens"),
        col("ttft_ms", Double, "ms"),
        col("total_ms", Double, "ms"),
        col("retrieve_ms", Double, "ms"),
        col("pack_ms", Double, "ms"),
        col("load_ms", Double, "ms"),
        col("generate_ms", Double, "ms"),
        col("validate_ms", Double, "ms"),
        col("policy_ms", Double, "ms"),
        col("firewall_ms", Double, "ms"),
        col("record_ms", Double, "ms"),
        col("cache_hit", Bool, "bool"),
        col("grounded", Bool, "bool"),
        col("refused", Bool, "bool"),
        col("extractive", Bool, "bool"),
        col("passages_retrieved", Int64, "count"),
        col("passages_cited", Int64, "count"),
        col("tool", Utf8, "tool name"),
        col("status", Utf8, "ok|error|denied|timeout"),
        col("latency_ms", Double, "ms"),
        col("error_class", Utf8, "class"),
        col("thumbs", Int32, "+1|-1"),
        col("csat", Int32, "1-5"),
        col("comment", Utf8, "PII-masked text"),
        col("reason", Utf8, "text (handoff, conversation_ended)"),
        col("outcome", Utf8, "resolved|escalated|abandoned"),
        col("eval", Utf8, "retrieval"),
        col("dataset", Utf8, "gold set file name"),
        col("cases", Int64, "count"),
        col("recall_at_1", Double, "0-1"),
        col("recall_at_5", Double, "0-1"),
        col("mrr", Double, "0-1"),
        col("rerank_lift", Double, "recall@1 difference"),
    ]
};

impl StoredEvent {
    /// The event as one export row: every column of [`COLUMNS`], absent ones null.
    pub fn row(&self) -> Map<String, Value> {
        let mut fields = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let mut row = Map::new();
        for c in COLUMNS {
            row.insert(c.name.to_string(), fields.remove(c.name).unwrap_or(Value::Null));
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_of_every_kind_is_a_column() {
        let kinds = vec![
            EventKind::ConversationStarted { channel: "local".into() },
            EventKind::ConversationEnded { reason: Some("closed".into()) },
            EventKind::Message(Message { question_text: Some("x".into()), ..Default::default() }),
            EventKind::ToolAction(ToolAction { error_class: Some("io".into()), ..Default::default() }),
            EventKind::Feedback(Feedback { thumbs: Some(1), csat: Some(4), comment: Some("ok".into()) }),
            EventKind::Handoff { reason: Some("r".into()) },
            EventKind::Resolution { outcome: Outcome::Resolved },
            EventKind::EvalRun(EvalRun { eval: "retrieval".into(), dataset: "g.jsonl".into(), cases: 3, recall_at_1: 0.5, recall_at_5: 1.0, mrr: 0.7, rerank_lift: Some(0.1) }),
        ];
        assert_eq!(kinds.len(), EventKind::NAMES.len(), "a kind is missing from this test or from EventKind::NAMES");
        for k in kinds {
            assert!(EventKind::NAMES.contains(&k.name()), "EventKind::NAMES lacks {}", k.name());
            let e = StoredEvent { event_id: 1, schema_version: SCHEMA_VERSION, event: Event { ts_ms: 5, conversation_id: Some(2), message_id: Some(3), kb: Some("kb".into()), kind: k } };
            let v = serde_json::to_value(&e).unwrap();
            for key in v.as_object().unwrap().keys() {
                assert!(COLUMNS.iter().any(|c| c.name == key), "field `{key}` of {} has no export column", e.event.kind.name());
            }
            let row = e.row();
            assert_eq!(row.len(), COLUMNS.len());
            assert_eq!(row["event_type"], e.event.kind.name());
            // the JSON round-trips
            let back: Event = serde_json::from_value(v).unwrap();
            assert_eq!(back, e.event);
        }
    }

    #[test]
    fn docs_list_every_column() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md")).expect("docs/events.md");
        for c in COLUMNS {
            assert!(doc.contains(&format!("`{}`", c.name)), "docs/events.md does not document column `{}`", c.name);
        }
        assert!(doc.contains(&format!("Schema version: {SCHEMA_VERSION}")), "docs/events.md names another schema version");
    }
}
