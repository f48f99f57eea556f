//! The data the built-in tools read, imported by an admin into the
//! workspace's encrypted tool store: the price list, the orders, the
//! calendar's busy times. Every door imports through here, and every import
//! is audited (`tools.import`: kind, rows, file name through
//! `redact::for_log`; never the rows).
//!
//! Owns: which file is which kind, the audit entry. Never: the formats'
//! validation (tresor-tools' `import`: errors name FILE:LINE and import
//! nothing).

use std::path::Path;

use serde_json::json;
use tresor_guard::crypto::WorkspaceKey;
use tresor_tools::import::{self, ImportReport};
use tresor_tools::store::ToolStore;

use crate::error::{AssistantError, Result};

pub use crate::act::tools_in_force;

/// The kinds `tresor tools import KIND FILE` knows.
pub const KINDS: &[&str] = &["prices", "orders", "calendar"];

/// Imports `path` as `kind` (prices | orders | calendar) into `data_dir`'s tool store, audited as `actor`'s.
pub fn import(data_dir: &Path, key: &WorkspaceKey, workspace: &str, actor: Option<&str>, kind: &str, path: &Path) -> Result<ImportReport> {
    let store = ToolStore::open(data_dir, key)?;
    let report = match kind {
        "prices" => import::import_prices(&store, path)?,
        "orders" => import::import_orders(&store, path)?,
        "calendar" => import::import_calendar(&store, path)?,
        other => return Err(AssistantError::Invalid(format!("unknown tool data `{other}` (one of: {})", KINDS.join(", ")))),
    };
    let source = tresor_guard::redact::for_log(&path.display().to_string());
    crate::policy::audit_event(data_dir, workspace, actor, "tools.import", json!({ "kind": kind, "source": source, "report": report }))?;
    Ok(report)
}

/// Imports whatever of `prices.csv`, `orders.csv` and `calendar.ics` a folder holds (evaluation
/// set-ups); returns how many files it imported.
pub fn import_folder(data_dir: &Path, key: &WorkspaceKey, folder: &Path) -> Result<usize> {
    let mut n = 0;
    for (kind, file) in [("prices", "prices.csv"), ("orders", "orders.csv"), ("calendar", "calendar.ics")] {
        let p = folder.join(file);
        if p.is_file() {
            import(data_dir, key, "scratch", None, kind, &p)?;
            n += 1;
        }
    }
    Ok(n)
}
