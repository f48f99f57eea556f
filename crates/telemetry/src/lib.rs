//! Tresor's measurement layer: what happened, how fast, at what cost, and
//! what the documents do not answer.
//!
//! [`event`] is the versioned schema (docs/events.md): one [`Event`] per
//! conversation start/end, message, tool action, feedback, handoff and
//! resolution. [`EventStore`] keeps them in the workspace's encrypted
//! `events.sqlite` (questions only as keyed ids and topic clusters; their
//! PII-masked text only when [`TelemetryConfig::store_question_text`] is on).
//! Every KPI ([`kpi`], docs/kpi.md), the content gaps, the [`dashboard`]
//! data, the [`export`] (JSONL, Parquet) and the cost [`simulate`]or read that
//! one table.
//!
//! Owns: the schema, the store, the KPI formulas, the cost model. Never:
//! runs a model, reads a knowledge base, sends anything anywhere (export
//! writes a file the user names), or keeps a counter outside the events table.
#![forbid(unsafe_code)]

pub mod config;
pub mod cost;
pub mod dashboard;
pub mod event;
pub mod export;
pub mod kpi;
pub mod question;
pub mod simulate;
pub mod store;
pub mod time;

pub use config::TelemetryConfig;
pub use cost::{CloudPrice, CostTable};
pub use dashboard::{dashboard, DashboardData, Tile};
pub use event::{EvalRun, Event, EventKind, Feedback, Message, Outcome, StoredEvent, ToolAction, SCHEMA_VERSION};
pub use kpi::{compute, compute_by, report, Gap, GroupBy, Kpis, Report, RetrievalKpi};
pub use simulate::{simulate, Scenario, Simulation};
pub use store::{EventStore, Window, EVENTS_FILE};

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{}: {source}", path.display())]
    Db { path: std::path::PathBuf, source: rusqlite::Error },
    #[error(transparent)]
    Crypto(#[from] tresor_guard::crypto::CryptoError),
    #[error("{}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("event {id} in {}: {reason}", path.display())]
    Corrupt { path: std::path::PathBuf, id: i64, reason: String },
    #[error("parquet {}: {reason}", path.display())]
    Parquet { path: std::path::PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = TelemetryError> = std::result::Result<T, E>;
