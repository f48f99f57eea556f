//! `order_status {"order_id": string}` → `{order_id, status, updated_at}`.
//!
//! The id is compared as A–Z0–9, upper case (`nl 10240`, `NL10240`,
//! `nl-10240` all find `NL-10240`, which is what the result names); a bare
//! number of 4+ digits finds the one order whose id ends in it.
//!
//! Owns: the lookup. Never: the customer's name in the result, or other
//! orders' ids in a "not found" (that would let anyone list the orders).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::arg_str;
use crate::error::{DbCtx, Result, ToolError};
use crate::import::normalise_id;

pub(super) fn run(conn: &Connection, path: &Path, args: &Value) -> Result<Value> {
    let query = arg_str(args, "order_id").trim().to_string();
    let any: Option<i64> = conn.query_row("SELECT 1 FROM orders LIMIT 1", [], |r| r.get(0)).optional().db(path)?;
    if any.is_none() {
        return Err(ToolError::NoData { what: "orders" });
    }
    let key = normalise_id(&query);
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(String, String, String)> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) };
    let mut found = conn
        .query_row("SELECT order_id, status, updated_at FROM orders WHERE order_key = ?1", params![key], row)
        .optional()
        .db(path)?;
    if found.is_none() && key.len() >= 4 && key.chars().all(|c| c.is_ascii_digit()) {
        let mut stmt = conn.prepare("SELECT order_id, status, updated_at FROM orders WHERE order_key LIKE '%' || ?1").db(path)?;
        let hits = stmt.query_map(params![key], row).db(path)?.collect::<std::result::Result<Vec<_>, _>>().db(path)?;
        if hits.len() == 1 {
            found = hits.into_iter().next();
        }
    }
    match found {
        Some((order_id, status, updated_at)) => Ok(json!({"order_id": order_id, "status": status, "updated_at": updated_at})),
        None => Err(ToolError::NotFound { what: "order", query, closest: Vec::new() }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ctx, dev_store};
    use super::*;
    use crate::builtin::execute;

    #[test]
    fn ids_in_any_spelling_find_the_stored_order() {
        let (_d, s) = dev_store();
        let c = ctx("2026-12-07T08:30:00Z");
        for q in ["NL-10240", "nl 10240", "NL10240", "nl-10240", " NL 10 240 ", "10240"] {
            let v = execute(&s, "order_status", &json!({"order_id": q}), &c).unwrap();
            assert_eq!(v, json!({"order_id": "NL-10240", "status": "shipped", "updated_at": "2026-12-05"}), "{q:?}");
        }
        for q in ["NL-99999", "10", "NL-1024"] {
            let e = execute(&s, "order_status", &json!({"order_id": q}), &c).unwrap_err();
            match e {
                ToolError::NotFound { closest, .. } => assert!(closest.is_empty()),
                other => panic!("{q}: {other:?}"),
            }
        }
    }
}
