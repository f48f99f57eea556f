//! `create_ticket {"subject", "description", "priority"}` → `{ticket_id,
//! subject, description, priority, created}`.
//!
//! Owns: PII masking before anything is stored — subject and description go
//! through tresor-guard's detector and are masked (`[EMAIL]`, `[PHONE]`,
//! `[IBAN]`, ...), the form every other log-like record in Tresor uses.
//! Never: storing the unmasked text.

use std::path::Path;

use rusqlite::{params, Connection};
use serde_json::{json, Value};
use tresor_guard::redact;

use super::{arg_str, ExecCtx};
use crate::error::{DbCtx, Result};
use crate::hours::rfc3339;
use crate::store::new_id;

/// `text` with every detected PII span masked.
pub(crate) fn mask(text: &str) -> String {
    redact::apply(text, redact::Setting::Mask, None)
}

pub(super) fn run(conn: &Connection, path: &Path, args: &Value, ctx: &ExecCtx, action: Option<&str>) -> Result<Value> {
    let subject = mask(arg_str(args, "subject").trim());
    let description = mask(arg_str(args, "description").trim());
    let priority = args.get("priority").and_then(Value::as_str).unwrap_or("normal").to_string();
    let id = new_id("tkt_");
    let created = rfc3339(&ctx.now);
    conn.execute(
        "INSERT INTO tickets(id, action_id, subject, description, priority, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, action, subject, description, priority, created],
    )
    .db(path)?;
    Ok(json!({"ticket_id": id, "subject": subject, "description": description, "priority": priority, "created": created}))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ctx, dev_store};
    use super::*;
    use crate::builtin::execute;

    #[test]
    fn stores_the_ticket_pii_masked_with_default_priority() {
        let (_d, s) = dev_store();
        let v = execute(
            &s,
            "create_ticket",
            &json!({"subject": "VPN down", "description": "Please call me at +49 170 1234567 or write to anna.schmidt@example.com"}),
            &ctx("2026-12-07T08:30:00Z"),
        )
        .unwrap();
        assert_eq!(v["priority"], "normal");
        assert_eq!(v["created"], "2026-12-07T09:30:00+01:00");
        let d = v["description"].as_str().unwrap();
        assert!(!d.contains("anna.schmidt") && !d.contains("1234567"), "{d}");
        assert!(d.contains("[EMAIL]"), "{d}");
        let stored = s.tickets().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].ticket_id, v["ticket_id"].as_str().unwrap());
        assert_eq!(stored[0].description, d);
        assert!(stored[0].ticket_id.starts_with("tkt_") && stored[0].ticket_id.len() == 16);
        let e = execute(&s, "create_ticket", &json!({"subject": "x", "description": "y", "priority": "urgent"}), &ctx("2026-12-07T08:30:00Z"));
        assert!(e.is_err());
        assert_eq!(s.tickets().unwrap().len(), 1);
    }
}
