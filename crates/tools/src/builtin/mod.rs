//! The built-in tools over the data an admin imported: one file per tool.
//!
//! Owns: what each built-in tool does with checked arguments, given "now"
//! and the opening hours. A side-effect tool writes through the connection
//! it is handed, so the caller decides the transaction (the action layer
//! commits the appointment or ticket together with the action's success).
//! Never: confirmation, idempotency or retries (`actions`), or argument
//! extraction from text (`understand`).

mod book_appointment;
mod create_ticket;
mod order_status;
mod price_lookup;

use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

pub use book_appointment::export_ics;
pub(crate) use create_ticket::mask as mask_pii;
pub use price_lookup::{match_product, ProductMatch};

use crate::error::{DbCtx, Result, ToolError};
use crate::hours::OpeningHours;
use crate::schema;
use crate::spec::{builtin_spec, BOOK_APPOINTMENT, CREATE_TICKET, ORDER_STATUS, PRICE_LOOKUP};
use crate::store::ToolStore;

/// What a built-in tool may know besides its arguments.
#[derive(Debug, Clone)]
pub struct ExecCtx {
    /// "Now" (`--now` / `TRESOR_NOW` in tests and evals): bookings before it
    /// are refused; tickets and appointments are stamped with it.
    pub now: jiff::Zoned,
    /// The engine's `[tools.hours]`.
    pub hours: OpeningHours,
}

impl ExecCtx {
    /// Now on this machine's clock, in the opening hours' zone, default hours.
    pub fn now_default() -> Result<ExecCtx> {
        let hours = OpeningHours::default();
        let tz = crate::hours::time_zone(&hours.timezone)?;
        Ok(ExecCtx { now: jiff::Timestamp::now().to_zoned(tz), hours })
    }
}

/// Writes the built-in tools' arguments in their schema's form where the
/// meaning is unambiguous: `time` `9:30` / `09:30:00` → `09:30`,
/// `duration_minutes` `"60"` or `60.0` → `60`, `priority` ` High ` → `high`,
/// strings trimmed. Anything else is left for the schema to reject.
pub fn normalise_arguments(tool: &str, args: &mut Value) {
    let Value::Object(m) = args else { return };
    for v in m.values_mut() {
        if let Value::String(s) = v {
            let t = s.trim();
            if t.len() != s.len() {
                *s = t.to_string();
            }
        }
    }
    match tool {
        BOOK_APPOINTMENT => {
            if let Some(Value::String(t)) = m.get_mut("time") {
                let parts: Vec<&str> = t.split(':').collect();
                let ok = |p: &str, max: usize| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit());
                if (parts.len() == 2 || (parts.len() == 3 && parts[2] == "00")) && ok(parts[0], 2) && parts[1].len() == 2 && ok(parts[1], 2) {
                    *t = format!("{:0>2}:{}", parts[0], parts[1]);
                }
            }
            if let Some(d) = m.get_mut("duration_minutes") {
                let n = match d {
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    Value::Number(n) if n.as_i64().is_none() => n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e6).map(|f| f as i64),
                    _ => None,
                };
                if let Some(n) = n {
                    *d = Value::from(n);
                }
            }
        }
        CREATE_TICKET => {
            if let Some(Value::String(p)) = m.get_mut("priority") {
                *p = p.to_lowercase();
            }
        }
        _ => {}
    }
}

/// Parses, defaults and validates `args` for the built-in tool `name`.
pub fn checked_arguments(name: &str, args: Value) -> Result<Value> {
    let spec = builtin_spec(name).ok_or_else(|| ToolError::UnknownTool(name.to_string()))?;
    let mut args = schema::parse_arguments(name, args)?;
    schema::drop_empty(&mut args);
    normalise_arguments(name, &mut args);
    schema::apply_defaults(&spec.schema, &mut args);
    let missing = schema::missing_required(&spec.schema, &args);
    if !missing.is_empty() {
        return Err(ToolError::MissingArguments { tool: name.to_string(), missing });
    }
    schema::validate(&spec.schema, &args).map_err(|errors| ToolError::InvalidArguments { tool: name.to_string(), errors })?;
    Ok(args)
}

/// Runs the built-in tool `name` on its own (outside the action layer: no
/// confirmation, no idempotency). A side effect is committed before this
/// returns `Ok`; on `Err` nothing was written.
pub fn execute(store: &ToolStore, name: &str, args: &Value, ctx: &ExecCtx) -> Result<Value> {
    let args = checked_arguments(name, args.clone())?;
    let tx = store.write_tx()?;
    let out = execute_on(&tx, store.path(), name, &args, ctx, None)?;
    tx.commit().db(store.path())?;
    Ok(out)
}

/// Runs `name` on `conn` (inside the caller's transaction). `args` must be
/// checked already ([`checked_arguments`]). `action` links a created
/// appointment or ticket to its action.
pub(crate) fn execute_on(conn: &Connection, path: &Path, name: &str, args: &Value, ctx: &ExecCtx, action: Option<&str>) -> Result<Value> {
    match name {
        PRICE_LOOKUP => price_lookup::run(conn, path, args),
        ORDER_STATUS => order_status::run(conn, path, args),
        BOOK_APPOINTMENT => book_appointment::run(conn, path, args, ctx, action),
        CREATE_TICKET => create_ticket::run(conn, path, args, ctx, action),
        other => Err(ToolError::UnknownTool(other.to_string())),
    }
}

/// The string argument `key` (present after [`checked_arguments`]).
fn arg_str<'a>(args: &'a Value, key: &str) -> &'a str {
    args.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The import kind a built-in tool reads (`prices`, `orders`, `calendar`),
/// None for tools that need no import (tickets).
pub fn data_kind(tool: &str) -> Option<&'static str> {
    match tool {
        PRICE_LOOKUP => Some("prices"),
        ORDER_STATUS => Some("orders"),
        BOOK_APPOINTMENT => Some("calendar"),
        _ => None,
    }
}

/// The built-in tools whose data has been imported (`create_ticket` needs
/// none): what the engine offers when the policy names no `[tools] allowed`.
pub fn available(store: &ToolStore) -> Result<Vec<crate::spec::ToolSpec>> {
    let mut out = Vec::new();
    for spec in crate::spec::builtins() {
        let ready = match data_kind(&spec.name) {
            Some(kind) => store.has_data(kind)?,
            None => true,
        };
        if ready {
            out.push(spec);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_is_available_once_its_data_is_imported() {
        let dir = tempfile::tempdir().unwrap();
        let s = ToolStore::open(dir.path(), &testutil::key()).unwrap();
        let names = |s: &ToolStore| available(s).unwrap().into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(&s), ["create_ticket"]);
        crate::import::import_orders(&s, &crate::import::tests::dev("orders.csv")).unwrap();
        assert_eq!(names(&s), ["order_status", "create_ticket"]);
        let e = execute(&s, "price_lookup", &serde_json::json!({"product": "x"}), &testutil::ctx("2026-12-07T08:30:00Z")).unwrap_err();
        assert!(e.to_string().contains("tresor tools import prices"), "{e}");
        let (_d, full) = testutil::dev_store();
        assert_eq!(names(&full).len(), 4);
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use tresor_guard::crypto::WorkspaceKey;

    use super::*;
    use crate::import;

    /// The key of [`dev_store`]'s stores (to open them again).
    pub fn key() -> WorkspaceKey {
        WorkspaceKey::from_bytes([9; 32])
    }

    /// A store with the three dev files imported.
    pub fn dev_store() -> (tempfile::TempDir, ToolStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ToolStore::open(dir.path(), &key()).unwrap();
        import::import_prices(&s, &import::tests::dev("prices.csv")).unwrap();
        import::import_orders(&s, &import::tests::dev("orders.csv")).unwrap();
        import::import_calendar(&s, &import::tests::dev("calendar.ics")).unwrap();
        (dir, s)
    }

    pub fn ctx(now: &str) -> ExecCtx {
        let tz = crate::hours::time_zone("Europe/Berlin").unwrap();
        let now = now.parse::<jiff::Timestamp>().unwrap().to_zoned(tz);
        ExecCtx { now, hours: OpeningHours::default() }
    }
}
