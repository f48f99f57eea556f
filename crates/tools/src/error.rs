//! The one error type of the action layer.
//!
//! Owns: what can go wrong when a tool is described, checked, imported or
//! run, and which failures are *transient* (safe to retry because the tool
//! certainly did not take effect). Never: context for a door (the CLI adds
//! it with anyhow) or PII in a message (argument values are not echoed,
//! only field names and the user's own query where the user must see it).

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::hours::Slot;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool {0:?}")]
    UnknownTool(String),
    /// Arguments that do not satisfy the tool's JSON Schema (or are not a
    /// JSON object at all): one readable message per problem.
    #[error("invalid arguments for {tool}: {}", .errors.join("; "))]
    InvalidArguments { tool: String, errors: Vec<String> },
    #[error("{tool} needs {}", .missing.join(", "))]
    MissingArguments { tool: String, missing: Vec<String> },
    /// A lookup that found nothing good enough. `closest` lists the nearest
    /// candidates ("Product (SKU)"); empty where showing them would leak
    /// other customers' data (order ids).
    #[error("no {what} matches {query:?}{}", closest_text(.closest))]
    NotFound { what: &'static str, query: String, closest: Vec<String> },
    /// The data a built-in tool reads was never imported.
    #[error("no {what} imported yet: run `tresor tools import {what} FILE`")]
    NoData { what: &'static str },
    /// A booking that cannot take place; `free_slots` are offered instead.
    #[error("{reason}{}", slots_text(.free_slots))]
    SlotUnavailable { reason: String, free_slots: Vec<Slot> },
    #[error("{tool} timed out after {ms} ms")]
    Timeout { tool: String, ms: u64 },
    /// A failure that left nothing behind and may go away on a retry (a
    /// busy database, a server that refused the connection).
    #[error("{0} (transient)")]
    Transient(String),
    /// An external tool (MCP) reported an error or returned junk.
    #[error("{tool} failed: {message}")]
    External { tool: String, message: String },
    #[error("no action {0:?}")]
    NoSuchAction(String),
    #[error("action {id} is {status}: cannot {op}")]
    InvalidTransition { id: String, status: String, op: &'static str },
    /// A bad import file: FILE:LINE and what is wrong; nothing was imported.
    #[error("{}:{line}: {message}", .path.display())]
    Import { path: PathBuf, line: u64, message: String },
    #[error("opening hours: {0}")]
    Hours(String),
    #[error("{}: {source}", .path.display())]
    Db { path: PathBuf, source: rusqlite::Error },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Crypto(#[from] tresor_guard::crypto::CryptoError),
}

fn closest_text(c: &[String]) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!("; closest: {}", c.join(", "))
    }
}

fn slots_text(s: &[Slot]) -> String {
    if s.is_empty() {
        "; no free slot in the next two weeks".to_string()
    } else {
        let list: Vec<String> = s.iter().map(|s| format!("{} {}", s.date, s.time)).collect();
        format!("; free slots: {}", list.join(", "))
    }
}

impl ToolError {
    /// True when a retry may succeed and the failed attempt had no effect.
    pub fn is_transient(&self) -> bool {
        match self {
            ToolError::Transient(_) => true,
            ToolError::Db { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    /// A short machine-readable code (`not_found`, `slot_unavailable`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::UnknownTool(_) => "unknown_tool",
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::MissingArguments { .. } => "missing_arguments",
            ToolError::NotFound { .. } => "not_found",
            ToolError::NoData { .. } => "no_data",
            ToolError::SlotUnavailable { .. } => "slot_unavailable",
            ToolError::Timeout { .. } => "timeout",
            ToolError::Transient(_) => "transient",
            ToolError::External { .. } => "external",
            ToolError::NoSuchAction(_) => "no_such_action",
            ToolError::InvalidTransition { .. } => "invalid_transition",
            ToolError::Import { .. } => "import",
            ToolError::Hours(_) => "hours",
            ToolError::Db { .. } | ToolError::Io { .. } | ToolError::Crypto(_) => "internal",
        }
    }

    /// What a failed action keeps as its `result`: the code and, where the
    /// error offers alternatives, those (`closest`, `free_slots`) so an
    /// answer can present them without parsing the message.
    pub fn details(&self) -> Value {
        match self {
            ToolError::NotFound { closest, .. } => json!({"found": false, "code": self.code(), "closest": closest}),
            ToolError::SlotUnavailable { free_slots, .. } => json!({"code": self.code(), "free_slots": free_slots}),
            ToolError::MissingArguments { missing, .. } => json!({"code": self.code(), "missing": missing}),
            ToolError::InvalidArguments { errors, .. } => json!({"code": self.code(), "errors": errors}),
            _ => json!({"code": self.code()}),
        }
    }
}

pub type Result<T, E = ToolError> = std::result::Result<T, E>;

/// `.db(path)` on rusqlite results: the file in the error.
pub(crate) trait DbCtx<T> {
    fn db(self, path: &std::path::Path) -> Result<T>;
}

impl<T> DbCtx<T> for std::result::Result<T, rusqlite::Error> {
    fn db(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| ToolError::Db { path: path.to_path_buf(), source })
    }
}
